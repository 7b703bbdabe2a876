//! Operator workflows on the executor's procedure: how each [`Intent`]
//! shapes the live model before planning ([`shape`]), and what follows
//! an execution's end (`Executor::reconcile`): a decommissioned broker
//! is drained again while Kafka's own placer puts new partitions on it,
//! and marked empty (ready to shut down) when it holds nothing; a broker
//! released from a tenant pool leaves the pool only once the tenant has
//! no replica on it (data is never stranded).

use std::collections::BTreeMap;

use guardian_kafka::ClusterMetadata;
use guardian_planner::balance::Goals;
use guardian_planner::model::BrokerSpec;
use guardian_proto::domain::Command;
use guardian_proto::execution::{
    ClusterControls, ControlsCmd, DrainState, ExecState, ExecutionCmd, Intent,
};

use super::live_model::LiveModel;
use super::propose::forced_only;
use super::{Executor, ProposeRequest};
use crate::error::ApiError;
use crate::raft::Controller;

/// The pool a broker being released is planned in: one of its own, so
/// its tenant's replicas must leave and nothing arrives.
pub fn releasing_pool(broker: i32) -> String {
    format!("(broker {broker} being released)")
}

/// Applies `intent` to the live model and gives the goals to plan with:
/// a drain, a pool release and an IDC migration move only what they must
/// (every goal off); a pool grow balances the tenant's topics only.
pub fn shape(live: &mut LiveModel, intent: &Intent, goals: &Goals) -> Result<Goals, ApiError> {
    match intent {
        Intent::Rebalance | Intent::Revert { .. } => {
            note_empty(live);
            Ok(goals.clone())
        }
        Intent::Roll { .. } => Err(ApiError::invalid(
            "intent",
            "a rolling restart has no plan (Executor::propose_roll)",
        )),
        Intent::Decommission { broker } => {
            let b = broker_mut(live, *broker)?;
            b.decommission = true;
            b.excluded = false;
            Ok(forced_only())
        }
        Intent::PoolAdd { tenant, broker } => {
            let b = broker_mut(live, *broker)?;
            b.pool = tenant.clone();
            for t in &mut live.spec.topics {
                if t.pool != *tenant {
                    t.pinned = true;
                }
            }
            note_empty(live);
            Ok(goals.clone())
        }
        Intent::PoolRelease { broker, .. } => {
            let b = broker_mut(live, *broker)?;
            b.pool = releasing_pool(*broker);
            Ok(forced_only())
        }
        Intent::MigrateIdc { topic, idc } => {
            if !live.spec.brokers.iter().any(|b| b.idc == *idc && b.alive) {
                let mut known: Vec<&str> =
                    live.spec.brokers.iter().map(|b| b.idc.as_str()).collect();
                known.sort_unstable();
                known.dedup();
                return Err(ApiError::FailedPrecondition {
                    reason: format!(
                        "no live broker of cluster {:?} is in IDC {idc:?} (the registry has IDCs {known:?}; `guardian broker add --idc` labels them)",
                        live.spec.name
                    ),
                });
            }
            let mut found = false;
            for t in &mut live.spec.topics {
                if t.name == *topic {
                    found = true;
                    t.policy.idcs = vec![idc.clone()];
                    t.policy.min_idcs = 1;
                    t.pinned = false;
                } else {
                    t.pinned = true;
                }
            }
            if !found {
                return Err(ApiError::NotFound {
                    what: format!("topic {topic:?} in cluster {:?}", live.spec.name),
                });
            }
            Ok(forced_only())
        }
    }
}

/// The live model's broker `id`, or `NOT_FOUND`.
fn broker_mut(live: &mut LiveModel, id: i32) -> Result<&mut BrokerSpec, ApiError> {
    let cluster = live.spec.name.clone();
    live.spec
        .brokers
        .iter_mut()
        .find(|b| b.id == id)
        .ok_or(ApiError::NotFound {
            what: format!("broker {id} in cluster {cluster:?}"),
        })
}

/// Says which live brokers hold no replica yet: a newly added broker is
/// filled by the next balance.
fn note_empty(live: &mut LiveModel) {
    let empty: Vec<String> = live
        .spec
        .brokers
        .iter()
        .filter(|b| b.alive && !b.decommission && !b.excluded)
        .filter(|b| {
            !live
                .spec
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.replicas.iter().any(|r| r.broker == b.id))
        })
        .map(|b| b.id.to_string())
        .collect();
    if !empty.is_empty() {
        live.warnings.push(format!(
            "brokers {} hold no replica yet (newly added?): this balance fills them",
            empty.join(", ")
        ));
    }
}

/// Replicas per broker, all topics (`tenant` = only topics of that
/// tenant: bound to it, or with most replicas in its pool).
fn replicas_on(
    md: &ClusterMetadata,
    broker: i32,
    tenant: Option<&str>,
    pools: &BTreeMap<i32, String>,
    c: &ClusterControls,
) -> usize {
    md.topics
        .iter()
        .filter(|t| match tenant {
            None => true,
            // Internal topics belong to no tenant (and are not planned).
            Some(_) if t.name.starts_with("__") => false,
            Some(tenant) => topic_tenant(t, pools, c).as_deref() == Some(tenant),
        })
        .flat_map(|t| &t.partitions)
        .filter(|p| p.replicas.contains(&broker))
        .count()
}

/// A topic's tenant: its binding, else the pool holding most of its
/// replicas (none for the shared pool).
pub fn topic_tenant(
    t: &guardian_kafka::TopicInfo,
    pools: &BTreeMap<i32, String>,
    c: &ClusterControls,
) -> Option<String> {
    if let Some(x) = c.topic_tenants.get(&t.name) {
        return Some(x.clone());
    }
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &t.partitions {
        for b in &p.replicas {
            *n.entry(pools.get(b).map_or("", |s| s)).or_default() += 1;
        }
    }
    n.into_iter()
        .max_by_key(|(name, k)| (*k, std::cmp::Reverse(*name)))
        .map(|(p, _)| p.to_string())
        .filter(|p| !p.is_empty())
}

/// How long a tenant's topic may be missing from Kafka before its
/// binding goes (see `forget_deleted_topics`).
pub const UNBIND_AFTER_MS: u64 = 30_000;

impl Executor {
    /// Carries standing workflows forward, for every cluster not frozen
    /// and with no execution running: see the module docs.
    pub(super) async fn reconcile(&self, ctl: &Controller) {
        let work: Vec<(String, ClusterControls)> = {
            let st = ctl.state();
            st.executions
                .controls
                .iter()
                .filter(|(_, c)| {
                    !c.frozen
                        && (!c.decommission.is_empty()
                            || !c.releasing.is_empty()
                            || !c.topic_tenants.is_empty())
                })
                .filter(|(name, _)| st.executions.active_on(name).is_none())
                .map(|(n, c)| (n.clone(), c.clone()))
                .collect()
        };
        for (cluster, c) in work {
            if let Err(err) = self.reconcile_cluster(ctl, &cluster, &c).await {
                tracing::warn!(%cluster, %err, "carrying a workflow forward failed; retrying");
            }
        }
    }

    async fn reconcile_cluster(
        &self,
        ctl: &Controller,
        cluster: &str,
        c: &ClusterControls,
    ) -> Result<(), ApiError> {
        let k = self.client(ctl, cluster)?;
        let md = k
            .metadata()
            .await
            .map_err(|e| ApiError::FailedPrecondition {
                reason: format!("Metadata of Kafka cluster {cluster:?}: {e}"),
            })?;
        let pools: BTreeMap<i32, String> = {
            let st = ctl.state();
            st.registry
                .brokers
                .iter()
                .filter(|((cl, _), _)| cl == cluster)
                .filter_map(|((_, id), b)| b.pool.clone().map(|p| (*id, p)))
                .collect()
        };
        // The latest execution of an intent, and whether it finished done.
        let latest_done = |intent: &Intent| {
            let st = ctl.state();
            st.executions
                .by_id
                .values()
                .rev()
                .find(|e| e.cluster == cluster && e.intent == *intent)
                .map(|e| (e.id, e.state == ExecState::Done))
        };
        let controls = |cmd: ControlsCmd| {
            Command::Execution(Box::new(ExecutionCmd::Controls {
                cluster: cluster.to_string(),
                cmd,
            }))
        };
        self.forget_deleted_topics(ctl, cluster, c, &md).await?;
        for (&b, &state) in &c.decommission {
            let n = replicas_on(&md, b, None, &pools, c);
            let intent = Intent::Decommission { broker: b };
            match (n, state) {
                (0, DrainState::Draining) => {
                    ctl.write(controls(ControlsCmd::Decommission {
                        broker: b,
                        state: Some(DrainState::Empty),
                    }))
                    .await?;
                    tracing::info!(%cluster, broker = b, "decommissioned broker is empty: ready to shut down");
                }
                (0, DrainState::Empty) => {}
                (_, _) => {
                    if state == DrainState::Empty {
                        ctl.write(controls(ControlsCmd::Decommission {
                            broker: b,
                            state: Some(DrainState::Draining),
                        }))
                        .await?;
                    }
                    if let Some((id, true)) = latest_done(&intent) {
                        self.follow_up(ctl, cluster, intent, id, format!(
                            "decommission of broker {b} continues: {n} replicas arrived or remained after execution {id}"
                        ))
                        .await?;
                    }
                }
            }
        }
        for (&b, tenant) in &c.releasing {
            let n = replicas_on(&md, b, Some(tenant), &pools, c);
            let intent = Intent::PoolRelease {
                tenant: tenant.clone(),
                broker: b,
            };
            if n == 0 {
                ctl.write(Command::ReleasePool {
                    tenant: tenant.clone(),
                    cluster: cluster.to_string(),
                    broker_ids: vec![b],
                })
                .await?;
                ctl.write(controls(ControlsCmd::Release {
                    broker: b,
                    tenant: None,
                }))
                .await?;
                tracing::info!(%cluster, broker = b, %tenant, "broker released from the tenant's pool: it holds none of the tenant's replicas");
            } else if let Some((id, true)) = latest_done(&intent) {
                self.follow_up(ctl, cluster, intent, id, format!(
                    "release of broker {b} from tenant {tenant:?} continues: {n} of its replicas remain after execution {id}"
                ))
                .await?;
            }
        }
        Ok(())
    }

    /// A topic bound to a tenant that Kafka no longer has (deleted) loses
    /// its binding once it has been missing for [`UNBIND_AFTER_MS`] (a
    /// `topic create` binds just before CreateTopics), so a new topic of
    /// the same name is no tenant's until bound again.
    async fn forget_deleted_topics(
        &self,
        ctl: &Controller,
        cluster: &str,
        c: &ClusterControls,
        md: &guardian_kafka::ClusterMetadata,
    ) -> Result<(), ApiError> {
        let now = crate::time::now_ms();
        let gone: Vec<String> = {
            let mut since = self.unbound_since.lock().unwrap_or_else(|p| p.into_inner());
            since.retain(|(cl, t), _| {
                cl != cluster
                    || (c.topic_tenants.contains_key(t) && !md.topics.iter().any(|x| x.name == *t))
            });
            c.topic_tenants
                .keys()
                .filter(|t| !md.topics.iter().any(|x| x.name == **t))
                .filter(|t| {
                    let at = *since
                        .entry((cluster.to_string(), (*t).clone()))
                        .or_insert(now);
                    now.saturating_sub(at) >= UNBIND_AFTER_MS
                })
                .cloned()
                .collect()
        };
        for topic in gone {
            ctl.write(Command::Execution(Box::new(ExecutionCmd::Controls {
                cluster: cluster.to_string(),
                cmd: ControlsCmd::BindTopic {
                    topic: topic.clone(),
                    tenant: None,
                },
            })))
            .await?;
            tracing::info!(%cluster, %topic, "topic deleted from Kafka: its tenant binding is removed");
        }
        Ok(())
    }

    /// Proposes and approves the next round of a workflow an operator
    /// approved (execution `after`).
    async fn follow_up(
        &self,
        ctl: &Controller,
        cluster: &str,
        intent: Intent,
        after: u64,
        note: String,
    ) -> Result<(), ApiError> {
        let r = ProposeRequest {
            cluster: cluster.to_string(),
            goals: Goals::default(),
            max_moves_per_broker: None,
            dry_run: false,
            by: format!("the executor (continuing execution {after})"),
            note: Some(note),
            intent,
            approve: true,
        };
        // An approved plan that moves nothing is not stored (`propose`).
        let p = self.propose(ctl, &r).await?;
        if p.execution.is_none() {
            tracing::warn!(%cluster, after, unplaced = ?p.summary.unplaced, "workflow cannot continue: the plan moves nothing");
            return Ok(());
        }
        tracing::info!(%cluster, after, next = p.execution.map_or(0, |e| e.id), "workflow continues");
        Ok(())
    }
}
