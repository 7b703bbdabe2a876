//! Consumer scheduling's two services: `GuardianConsumers` (operators:
//! pools, bindings, the plan) and `ConsumerScheduler` (workers: join,
//! heartbeat, leave). Thin handlers: check, write through Raft or ask the
//! leader's scheduler, convert.

use std::collections::{BTreeMap, BTreeSet};

use guardian_kafka::KafkaAdmin;
use guardian_proto::consumers::{
    BindingKey, BindingRecord, ConsumersCmd, PoolShare, WorkerPool, WorkerRecord,
};
use guardian_proto::domain::Command;
use guardian_proto::pb;
use serde_json::json;

use super::Call;
use crate::consumers::Part;
use crate::error::ApiError;

fn cmd(c: ConsumersCmd) -> Command {
    Command::Consumers(Box::new(c))
}

fn part(p: pb::ConsumerPartition, field: &str) -> Result<Part, ApiError> {
    if p.cluster.is_empty() || p.topic.is_empty() || p.group.is_empty() {
        return Err(ApiError::invalid(
            field,
            "cluster, topic and group must not be empty",
        ));
    }
    if p.partition < 0 {
        return Err(ApiError::invalid(
            format!("{field}.partition"),
            format!("must be >= 0, got {}", p.partition),
        ));
    }
    Ok((
        BindingKey {
            cluster: p.cluster,
            topic: p.topic,
            group: p.group,
        },
        p.partition,
    ))
}

fn part_pb(p: &Part) -> pb::ConsumerPartition {
    pb::ConsumerPartition {
        cluster: p.0.cluster.clone(),
        topic: p.0.topic.clone(),
        group: p.0.group.clone(),
        partition: p.1,
    }
}

pub async fn create_worker_pool(
    api: &Call<'_>,
    r: pb::CreateWorkerPoolRequest,
) -> Result<pb::ConsumersEmpty, ApiError> {
    api.write(cmd(ConsumersCmd::CreatePool {
        pool: WorkerPool {
            name: r.name,
            description: r.description,
            created_ms: 0,
        },
    }))
    .await?;
    Ok(pb::ConsumersEmpty {})
}

pub async fn delete_worker_pool(
    api: &Call<'_>,
    r: pb::DeleteWorkerPoolRequest,
) -> Result<pb::ConsumersEmpty, ApiError> {
    api.write(cmd(ConsumersCmd::DeletePool { name: r.name }))
        .await?;
    Ok(pb::ConsumersEmpty {})
}

pub async fn bind(api: &Call<'_>, r: pb::BindRequest) -> Result<pb::ConsumersEmpty, ApiError> {
    api.write(cmd(ConsumersCmd::Bind {
        binding: BindingRecord {
            key: BindingKey {
                cluster: r.cluster,
                topic: r.topic,
                group: r.group,
            },
            pools: r
                .pools
                .into_iter()
                .map(|p| PoolShare {
                    pool: p.pool,
                    ratio: p.ratio,
                })
                .collect(),
            created_ms: 0,
        },
    }))
    .await?;
    api.consumers.poke();
    Ok(pb::ConsumersEmpty {})
}

pub async fn unbind(api: &Call<'_>, r: pb::UnbindRequest) -> Result<pb::ConsumersEmpty, ApiError> {
    api.write(cmd(ConsumersCmd::Unbind {
        key: BindingKey {
            cluster: r.cluster,
            topic: r.topic,
            group: r.group,
        },
    }))
    .await?;
    Ok(pb::ConsumersEmpty {})
}

/// Pools, workers (with the leader's liveness), bindings, and every
/// partition's target owner and who runs it.
pub async fn get_consumers(
    api: &Call<'_>,
    r: pb::ConsumersRequest,
) -> Result<pb::ConsumersJson, ApiError> {
    api.ctl.read_barrier(r.stale).await?;
    let live = api.consumers.liveness();
    let lag_of: BTreeMap<
        Part,
        (
            crate::consumers::lag::Window,
            crate::consumers::lag::LagStatus,
        ),
    > = api
        .consumers
        .lag_view(None)
        .into_iter()
        .map(|(p, w, s)| (p, (w, s)))
        .collect();
    let running = api.consumers.running();
    let st = api.ctl.state();
    let c = &st.consumers;
    let workers: Vec<_> = c
        .workers
        .values()
        .map(|w| {
            let l = live.get(&w.id);
            json!({
                "id": w.id,
                "pool": w.pool,
                "capacity": w.capacity,
                "labels": w.labels,
                "joined_ms": w.joined_ms,
                "last_heartbeat_ms_ago": l.map(|x| x.0),
                "running": l.map(|x| x.1),
                "owns": c.plans.values().map(|p| p.owners.values().filter(|o| **o == w.id).count()).sum::<usize>(),
            })
        })
        .collect();
    let bindings: Vec<_> = c
        .bindings
        .values()
        .map(|b| {
            let plan = c.plans.get(&b.key);
            let partitions: Vec<_> = plan
                .map(|p| {
                    p.owners
                        .iter()
                        .map(|(part, owner)| {
                            let on = running
                                .get(&(b.key.clone(), *part))
                                .cloned()
                                .unwrap_or_default();
                            let state = match on.as_slice() {
                                [] => "starting",
                                [x] if x == owner => "running",
                                _ => "handing-off",
                            };
                            let lag = lag_of.get(&(b.key.clone(), *part));
                            json!({
                                "partition": part,
                                "owner": owner,
                                "running_on": on,
                                "state": state,
                                "lag": lag.and_then(|(w, _)| w.latest().map(|l| l.lag())),
                                "lag_status": lag.map(|(_, s)| s.name()),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let group_status = lag_of
                .iter()
                .filter(|(p, _)| p.0 == b.key)
                .map(|(_, (_, s))| *s)
                .max();
            let total_lag: i64 = lag_of
                .iter()
                .filter(|(p, _)| p.0 == b.key)
                .filter_map(|(_, (w, _))| w.latest().map(|l| l.lag()))
                .sum();
            json!({
                "cluster": b.key.cluster,
                "topic": b.key.topic,
                "group": b.key.group,
                "lag": total_lag,
                "lag_status": group_status.map(|s| s.name()),
                "pools": b.pools.iter().map(|s| json!({"pool": s.pool, "ratio": s.ratio})).collect::<Vec<_>>(),
                "epoch": plan.map_or(0, |p| p.epoch),
                "partitions": partitions,
            })
        })
        .collect();
    let desired = api.consumers.desired_workers(&st);
    let predicted = api.consumers.predicted();
    let pools: Vec<_> = c
        .pools
        .values()
        .map(|p| {
            json!({
                "name": p.name,
                "description": p.description,
                "workers": c.workers.values().filter(|w| w.pool == p.name).count(),
                "autoscaling": desired.get(&p.name),
                // The last plan round's prediction (leader): CPU spread
                // (max ÷ mean utilisation − 1) and its feasibility bound.
                "cpu_spread": predicted.get(&p.name).map(|l| l.cpu_spread),
                "spread_bound": predicted.get(&p.name).map(|l| l.spread_bound),
            })
        })
        .collect();
    Ok(pb::ConsumersJson {
        json: json!({
            "epoch": c.epoch,
            "pools": pools,
            "workers": workers,
            "bindings": bindings,
            "leader_view": api.ctl.ensure_leader().is_ok(),
        })
        .to_string(),
    })
}

pub async fn join(api: &Call<'_>, r: pb::JoinRequest) -> Result<pb::JoinResponse, ApiError> {
    api.ctl.ensure_leader()?;
    let id = r.worker_id.clone();
    api.write(cmd(ConsumersCmd::Join {
        worker: WorkerRecord {
            id: r.worker_id,
            pool: r.pool,
            capacity: r.capacity,
            labels: r.labels.into_iter().collect::<BTreeMap<_, _>>(),
            joined_ms: 0,
        },
    }))
    .await?;
    api.consumers.joined(&id);
    api.consumers.poke();
    let cfg = &api.consumers.cfg;
    Ok(pb::JoinResponse {
        heartbeat_ms: cfg.heartbeat_ms,
        lease_ms: cfg.lease_ms,
    })
}

pub async fn heartbeat(
    api: &Call<'_>,
    r: pb::HeartbeatRequest,
) -> Result<pb::HeartbeatResponse, ApiError> {
    if r.worker_id.is_empty() {
        return Err(ApiError::invalid("worker_id", "must not be empty"));
    }
    let mut running = BTreeSet::new();
    for (i, p) in r.running.into_iter().enumerate() {
        running.insert(part(p, &format!("running[{i}]"))?);
    }
    let mut cpu = BTreeMap::new();
    for (i, s) in r.stats.into_iter().enumerate() {
        let field = format!("stats[{i}]");
        let p = part(
            s.partition
                .ok_or_else(|| ApiError::invalid(format!("{field}.partition"), "required"))?,
            &format!("{field}.partition"),
        )?;
        if !(s.cpu_cores.is_finite() && s.cpu_cores >= 0.0) {
            return Err(ApiError::invalid(
                format!("{field}.cpu_cores"),
                "must be a finite number >= 0",
            ));
        }
        cpu.insert(p, s.cpu_cores);
    }
    let mut changed = api.consumers.subscribe();
    let mut a = api
        .consumers
        .heartbeat(&api.ctl, &r.worker_id, running.clone(), cpu)?;
    let cfg = &api.consumers.cfg;
    // Long-poll: nothing for the worker to do → hold the answer until its
    // assignment changes or the wait is up.
    let pending = a.pending.clone();
    let idle = |a: &crate::consumers::Assignment| {
        a.assigned.len() == running.len()
            && a.assigned.iter().all(|p| running.contains(p))
            && a.pending == pending
    };
    if r.wait_ms > 0 && idle(&a) {
        let until = tokio::time::Instant::now()
            + std::time::Duration::from_millis(r.wait_ms.min(cfg.heartbeat_ms));
        while let Ok(Ok(())) = tokio::time::timeout_at(until, changed.changed()).await {
            a = api.consumers.assignment(&api.ctl, &r.worker_id, &running)?;
            if !idle(&a) {
                break;
            }
        }
    }
    Ok(pb::HeartbeatResponse {
        epoch: a.epoch,
        assigned: a.assigned.iter().map(part_pb).collect(),
        pending: a.pending.iter().map(part_pb).collect(),
        clusters: a
            .clusters
            .into_iter()
            .map(|(cluster, bootstrap_servers)| pb::ClusterBootstrap {
                cluster,
                bootstrap_servers,
            })
            .collect(),
        heartbeat_ms: cfg.heartbeat_ms,
        lease_ms: cfg.lease_ms,
    })
}

pub async fn leave(api: &Call<'_>, r: pb::LeaveRequest) -> Result<pb::LeaveResponse, ApiError> {
    if r.worker_id.is_empty() {
        return Err(ApiError::invalid("worker_id", "must not be empty"));
    }
    api.write(cmd(ConsumersCmd::Leave {
        id: r.worker_id.clone(),
    }))
    .await?;
    // It committed and stopped everything before leaving: its partitions
    // go to their new owners now, not after its lease.
    api.consumers.left(&r.worker_id);
    api.consumers.poke();
    Ok(pb::LeaveResponse {})
}

/// Lag per partition: the leader's readings for the bound groups of the
/// topic (or the one named); an unbound group is read from Kafka now.
pub async fn get_partition_lag(
    api: &Call<'_>,
    r: pb::PartitionLagRequest,
) -> Result<pb::PartitionLagResponse, ApiError> {
    if r.cluster.is_empty() {
        return Err(ApiError::invalid("cluster", "must not be empty"));
    }
    if r.topic.is_empty() {
        return Err(ApiError::invalid("topic", "must not be empty"));
    }
    api.ctl.ensure_leader()?;
    let (cluster_known, bound): (bool, Vec<BindingKey>) = {
        let st = api.ctl.state();
        (
            st.registry.clusters.contains_key(&r.cluster),
            st.consumers
                .bindings
                .keys()
                .filter(|k| {
                    k.cluster == r.cluster
                        && k.topic == r.topic
                        && (r.group.is_empty() || k.group == r.group)
                })
                .cloned()
                .collect(),
        )
    };
    if !cluster_known {
        return Err(ApiError::NotFound {
            what: format!("cluster {:?}", r.cluster),
        });
    }
    let now = crate::time::now_ms();
    let mut out = Vec::new();
    if bound.is_empty() {
        if r.group.is_empty() {
            return Err(ApiError::NotFound {
                what: format!(
                    "a consumer binding of topic {:?} on cluster {:?} (name a group to read any group's lag)",
                    r.topic, r.cluster
                ),
            });
        }
        let k = api.executor.client(&api.ctl, &r.cluster)?;
        let lag = k
            .consumer_lag(&r.group)
            .await
            .map_err(|e| ApiError::FailedPrecondition {
                reason: format!("lag of group {:?} on {:?}: {e}", r.group, r.cluster),
            })?;
        for l in lag.into_iter().filter(|l| l.topic == r.topic) {
            out.push(pb::PartitionLag {
                group: r.group.clone(),
                partition: l.partition,
                committed: l.committed,
                log_end: l.log_end,
                lag: l.lag,
                status: String::new(),
                age_ms: 0,
                error: String::new(),
            });
        }
        return Ok(pb::PartitionLagResponse { partitions: out });
    }
    for key in &bound {
        for ((k, p), w, status) in api.consumers.lag_view(Some(key)) {
            let latest = w.latest();
            out.push(pb::PartitionLag {
                group: k.group.clone(),
                partition: p,
                committed: latest.map_or(-1, |l| l.committed),
                log_end: latest.map_or(-1, |l| l.log_end),
                lag: latest.map_or(-1, |l| l.lag()),
                status: status.name().into(),
                age_ms: latest.map_or(0, |l| now.saturating_sub(l.at_ms)),
                error: w.error.clone().unwrap_or_default(),
            });
        }
    }
    Ok(pb::PartitionLagResponse { partitions: out })
}
