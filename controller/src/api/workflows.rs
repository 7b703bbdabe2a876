//! Operator workflows: a cluster's standing controls (`GetControls`,
//! `UpdateControls`: freeze, exclusions, maintenance), what a workflow
//! records before its plan is made ([`prepare`]: a decommission, a pool
//! grow or release, an IDC policy), and `CreateTopic`, which places a new
//! topic's replicas on brokers **and dirs** with the placement planner.

use std::collections::BTreeMap;
use std::time::Duration;

use guardian_kafka::types::NewTopic as KafkaNewTopic;
use guardian_kafka::TopicPartition;
use guardian_meta_store::CommandResponse;
use guardian_planner::model::ClusterModel;
use guardian_planner::placement::{self, NewTopic};
use guardian_proto::domain::{Command, PlacementPolicy};
use guardian_proto::execution::{ClusterControls, ControlsCmd, DrainState, ExecutionCmd, Intent};
use guardian_proto::pb;

use super::{unexpected, Call};
use crate::error::ApiError;

fn controls_json(c: &ClusterControls) -> Result<pb::ControlsJson, ApiError> {
    serde_json::to_string(c)
        .map(|json| pb::ControlsJson { json })
        .map_err(|e| ApiError::Internal {
            reason: e.to_string(),
        })
}

pub async fn get_controls(
    api: &Call<'_>,
    r: pb::GetControlsRequest,
) -> Result<pb::ControlsJson, ApiError> {
    let st = api.cluster_state(&r.cluster, r.stale).await?;
    controls_json(&st.executions.controls_of(&r.cluster))
}

fn controls_cmd(cluster: &str, cmd: ControlsCmd) -> Command {
    Command::Execution(Box::new(ExecutionCmd::Controls {
        cluster: cluster.to_string(),
        cmd,
    }))
}

pub async fn update_controls(
    api: &Call<'_>,
    r: pb::UpdateControlsRequest,
) -> Result<pb::ControlsJson, ApiError> {
    drop(api.cluster_state(&r.cluster, false).await?);
    let cmd: ControlsCmd = serde_json::from_str(&r.cmd)
        .map_err(|e| ApiError::invalid("cmd", format!("not a controls change: {e}")))?;
    if let ControlsCmd::ExcludeTopics {
        patterns,
        remove: false,
    } = &cmd
    {
        // Refused here, so a stored pattern always compiles.
        crate::executor::live_model::Exclusions::new(patterns, false)
            .map_err(|e| ApiError::invalid("topics", e))?;
    }
    match api.write(controls_cmd(&r.cluster, cmd)).await? {
        CommandResponse::Done => {}
        other => return Err(unexpected(other)),
    }
    controls_json(&api.ctl.state().executions.controls_of(&r.cluster))
}

/// Records what a workflow needs before its plan (so the next plans and
/// the executor see it) and returns the commands that undo it, should
/// the proposal fail.
pub async fn prepare(
    api: &Call<'_>,
    cluster: &str,
    intent: &Intent,
) -> Result<Vec<Command>, ApiError> {
    let (broker_pool, prior_policy) = {
        let st = api.ctl.state();
        let pool = |b: i32| {
            st.registry
                .brokers
                .get(&(cluster.to_string(), b))
                .map(|b| b.pool.clone())
        };
        let policy = match intent {
            Intent::MigrateIdc { topic, .. } => st
                .registry
                .policies
                .get(&(cluster.to_string(), topic.clone()))
                .cloned(),
            _ => None,
        };
        let b = match intent {
            Intent::Decommission { broker }
            | Intent::PoolAdd { broker, .. }
            | Intent::PoolRelease { broker, .. } => Some((*broker, pool(*broker))),
            _ => None,
        };
        if let Intent::Revert { of } = intent {
            let e = st
                .executions
                .by_id
                .get(of)
                .ok_or_else(|| ApiError::NotFound {
                    what: format!("execution {of}"),
                })?;
            if e.cluster != cluster {
                return Err(ApiError::invalid(
                    "cluster",
                    format!("execution {of} ran on cluster {:?}", e.cluster),
                ));
            }
            if !e.state.terminal() {
                return Err(ApiError::FailedPrecondition {
                    reason: format!(
                        "execution {of} is {}: cancel it (which reverts its moves) or wait for it to end",
                        e.state.name()
                    ),
                });
            }
        }
        (b, policy)
    };
    if let Some((b, None)) = broker_pool {
        return Err(ApiError::NotFound {
            what: format!("broker {b} of cluster {cluster:?}"),
        });
    }
    let done = |r: CommandResponse| match r {
        CommandResponse::Done | CommandResponse::Pool { .. } => Ok(()),
        other => Err(unexpected(other)),
    };
    let mut undo = Vec::new();
    match intent {
        Intent::Rebalance | Intent::Revert { .. } | Intent::Roll { .. } => {}
        Intent::Decommission { broker } => {
            done(
                api.write(controls_cmd(
                    cluster,
                    ControlsCmd::Decommission {
                        broker: *broker,
                        state: Some(DrainState::Draining),
                    },
                ))
                .await?,
            )?;
            undo.push(controls_cmd(
                cluster,
                ControlsCmd::Decommission {
                    broker: *broker,
                    state: None,
                },
            ));
        }
        Intent::PoolAdd { tenant, broker } => {
            let current = broker_pool.and_then(|(_, p)| p).flatten();
            if current.as_deref() != Some(tenant.as_str()) {
                done(
                    api.write(Command::AssignPool {
                        tenant: tenant.clone(),
                        cluster: cluster.to_string(),
                        broker_ids: vec![*broker],
                    })
                    .await?,
                )?;
                undo.push(Command::ReleasePool {
                    tenant: tenant.clone(),
                    cluster: cluster.to_string(),
                    broker_ids: vec![*broker],
                });
            }
        }
        Intent::PoolRelease { tenant, broker } => {
            done(
                api.write(controls_cmd(
                    cluster,
                    ControlsCmd::Release {
                        broker: *broker,
                        tenant: Some(tenant.clone()),
                    },
                ))
                .await?,
            )?;
            undo.push(controls_cmd(
                cluster,
                ControlsCmd::Release {
                    broker: *broker,
                    tenant: None,
                },
            ));
        }
        Intent::MigrateIdc { topic, idc } => {
            let policy = PlacementPolicy {
                cluster: cluster.to_string(),
                topic: Some(topic.clone()),
                allowed_idcs: vec![idc.clone()],
                allowed_racks: Vec::new(),
                replicas_per_idc: BTreeMap::new(),
            };
            policy.validate()?;
            match api.write(Command::SetPolicy(policy)).await? {
                CommandResponse::Done | CommandResponse::Policy(_) => {}
                other => return Err(unexpected(other)),
            }
            undo.push(match prior_policy {
                Some(p) => Command::SetPolicy(p),
                None => Command::RemovePolicy {
                    cluster: cluster.to_string(),
                    topic: Some(topic.clone()),
                },
            });
        }
    }
    Ok(undo)
}

/// Kafka's rule for topic names.
fn valid_topic(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 249 {
        return Err(ApiError::invalid("name", "must be 1 to 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(ApiError::invalid("name", "must not be \".\" or \"..\""));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ApiError::invalid(
            "name",
            format!("{c:?} is not allowed (ASCII letters, digits, '.', '_', '-')"),
        ));
    }
    Ok(())
}

pub async fn create_topic(
    api: &Call<'_>,
    r: pb::CreateTopicRequest,
) -> Result<pb::CreateTopicResponse, ApiError> {
    drop(api.cluster_state(&r.cluster, false).await?);
    valid_topic(&r.name)?;
    if r.partitions == 0 {
        return Err(ApiError::invalid("partitions", "must be >= 1"));
    }
    if r.replication_factor == 0 || r.replication_factor > 255 {
        return Err(ApiError::invalid("replication_factor", "must be 1 to 255"));
    }
    if !(r.bytes_in_per_partition.is_finite() && r.bytes_in_per_partition >= 0.0) {
        return Err(ApiError::invalid(
            "bytes_in_per_partition",
            "must be a finite number >= 0",
        ));
    }
    if !r.tenant.is_empty() && !api.ctl.state().registry.tenants.contains_key(&r.tenant) {
        return Err(ApiError::NotFound {
            what: format!("tenant {:?}", r.tenant),
        });
    }
    api.ctl.ensure_leader()?;
    let k = api.executor.client(&api.ctl, &r.cluster)?;
    let (mut live, _) = api.executor.live(&api.ctl, &r.cluster, &k).await?;
    if !live.capacity_known {
        // Weights of 1 are no capacity: the room check needs real ones.
        for b in &mut live.spec.brokers {
            b.nw_in_capacity = 0.0;
            b.cpu_capacity = 0.0;
        }
        live.warnings.push(
            "network/CPU capacity not registered: room for the expected traffic checked on disks only"
                .into(),
        );
    }
    if live.spec.topics.iter().any(|t| t.name == r.name) {
        return Err(ApiError::AlreadyExists {
            what: format!("topic {:?} in cluster {:?}", r.name, r.cluster),
        });
    }
    let policy = {
        let st = api.ctl.state();
        crate::executor::live_model::policy(&st.registry, &r.cluster, &r.name)
    };
    let m = ClusterModel::from_spec(&live.spec).map_err(|e| ApiError::FailedPrecondition {
        reason: format!("live model: {e}"),
    })?;
    let want = NewTopic {
        name: r.name.clone(),
        partitions: r.partitions,
        replication_factor: r.replication_factor as u8,
        bytes_in_per_partition: r.bytes_in_per_partition,
        size_per_partition: r.size_per_partition,
        pool: r.tenant.clone(),
        policy,
        max_disk_fill: 0.95,
    };
    let placed = placement::place(&m, &want).map_err(|e| match e {
        guardian_planner::error::PlacementError::Invalid { field, reason } => {
            ApiError::invalid(field, reason)
        }
        guardian_planner::error::PlacementError::UnknownPool { pool } => {
            ApiError::FailedPrecondition {
                reason: format!(
                    "tenant {pool:?} has no usable broker in cluster {:?} (`guardian pool add`)",
                    r.cluster
                ),
            }
        }
        other => ApiError::FailedPrecondition {
            reason: other.to_string(),
        },
    })?;
    let assignment: Vec<Vec<i32>> = placed
        .partitions
        .iter()
        .map(|p| p.iter().map(|(b, _)| *b).collect())
        .collect();
    let mut configs: Vec<(String, String)> = r
        .configs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    configs.sort();
    let request = KafkaNewTopic {
        name: r.name.clone(),
        partitions: r.partitions as i32,
        replication_factor: r.replication_factor as i16,
        assignment: assignment.clone(),
        configs,
    };
    let kafka_err = |what: &str, e: guardian_kafka::KafkaError| ApiError::FailedPrecondition {
        reason: format!("{what} on Kafka cluster {:?}: {e}", r.cluster),
    };
    let mut warnings = live.warnings.clone();
    if r.dry_run {
        k.create_topics_validate(std::slice::from_ref(&request))
            .await
            .map_err(|e| kafka_err("CreateTopics (validate only)", e))?
            .into_iter()
            .try_for_each(|(_, res)| res)
            .map_err(|e| kafka_err("CreateTopics (validate only)", e))?;
    } else {
        // The dir of each replica, recorded by its broker before the
        // replica exists (it creates it there).
        let mut by_broker: BTreeMap<i32, Vec<(TopicPartition, String)>> = BTreeMap::new();
        for (i, p) in placed.partitions.iter().enumerate() {
            for (b, dir) in p {
                by_broker
                    .entry(*b)
                    .or_default()
                    .push((TopicPartition::new(r.name.clone(), i as i32), dir.clone()));
            }
        }
        for (b, moves) in &by_broker {
            k.alter_replica_log_dirs(*b, moves)
                .await
                .map_err(|e| kafka_err(&format!("AlterReplicaLogDirs on broker {b}"), e))?;
        }
        if !r.tenant.is_empty() {
            match api
                .write(controls_cmd(
                    &r.cluster,
                    ControlsCmd::BindTopic {
                        topic: r.name.clone(),
                        tenant: Some(r.tenant.clone()),
                    },
                ))
                .await?
            {
                CommandResponse::Done => {}
                other => return Err(unexpected(other)),
            }
        }
        let created = k
            .create_topics(std::slice::from_ref(&request))
            .await
            .and_then(|r| r.into_iter().try_for_each(|(_, res)| res));
        if let Err(e) = created {
            if !r.tenant.is_empty() {
                let _ = api
                    .write(controls_cmd(
                        &r.cluster,
                        ControlsCmd::BindTopic {
                            topic: r.name.clone(),
                            tenant: None,
                        },
                    ))
                    .await;
            }
            return Err(kafka_err("CreateTopics", e));
        }
        // A broker that restarted in between forgot the dir: check, and
        // move the (still empty) replica where it belongs.
        warnings.extend(settle_dirs(&k, &by_broker).await);
    }
    let json = serde_json::json!({
        "cluster": r.cluster,
        "topic": r.name,
        "tenant": r.tenant,
        "dry_run": r.dry_run,
        "partitions": placed.partitions.iter().enumerate().map(|(i, p)| serde_json::json!({
            "partition": i,
            "replicas": p.iter().map(|(b, d)| serde_json::json!({"broker": b, "dir": d})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "warnings": warnings,
    });
    Ok(pb::CreateTopicResponse {
        json: json.to_string(),
    })
}

/// Waits (≤ 10 s) until every new replica is in its chosen dir, moving
/// any the broker put elsewhere; returns what could not be settled.
async fn settle_dirs(
    k: &guardian_kafka::KafkaClient,
    by_broker: &BTreeMap<i32, Vec<(TopicPartition, String)>>,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut moved = false;
    loop {
        let mut wrong: BTreeMap<i32, Vec<(TopicPartition, String)>> = BTreeMap::new();
        let mut missing = 0usize;
        for (b, want) in by_broker {
            let Ok(dirs) = k.describe_log_dirs(*b).await else {
                missing += want.len();
                continue;
            };
            for (tp, dir) in want {
                let at = dirs.iter().find(|d| {
                    d.replicas
                        .iter()
                        .any(|x| x.topic == tp.topic && x.partition == tp.partition && !x.is_future)
                });
                match at {
                    None => missing += 1,
                    Some(d) if d.path != *dir => {
                        wrong.entry(*b).or_default().push((tp.clone(), dir.clone()))
                    }
                    Some(_) => {}
                }
            }
        }
        if wrong.is_empty() && missing == 0 {
            return Vec::new();
        }
        if tokio::time::Instant::now() >= deadline {
            let mut out = Vec::new();
            if missing > 0 {
                out.push(format!(
                    "{missing} replicas not yet reported by their brokers"
                ));
            }
            for (b, w) in wrong {
                out.push(format!(
                    "broker {b}: {} replicas are being moved to their chosen dirs",
                    w.len()
                ));
            }
            return out;
        }
        if !wrong.is_empty() && !moved {
            for (b, w) in &wrong {
                let _ = k.alter_replica_log_dirs(*b, w).await;
            }
            moved = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
