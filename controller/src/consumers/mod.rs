//! Consumer scheduling on the leader: the plan loop and the workers'
//! soft state.
//!
//! Replicated (through Raft, `guardian_meta_store::state::consumers`):
//! pools, workers that joined, bindings, and each binding's target owners
//! under a plan epoch. Soft (here, rebuilt by a new leader from the next
//! heartbeats): each worker's last heartbeat, the partitions it reports
//! running and their measured CPU.
//!
//! - **Plan**: every `interval-ms`, and at once when a worker joins or
//!   leaves, [`guardian_planner::consumer::plan_consumers`] runs over the
//!   workers, the bindings (partition counts from Kafka's metadata), the
//!   measured CPU and the groups' lag; changed owners are written as a
//!   new epoch.
//! - **Handoff** (commit before release): a worker is told to run a
//!   partition only when it is its target owner **and** no other worker
//!   whose lease may still be running reports it running. The old owner
//!   drops it from its answer, stops, commits synchronously, and reports
//!   it no longer running; only then is it free. A worker silent for
//!   `lease-ms` has fenced itself (the worker library stops everything);
//!   after `lease-ms + lease-margin-ms` its partitions are free.
//! - **A new leader** grants nothing that is not already running for
//!   `lease-ms + lease-margin-ms` after it starts: until then it cannot
//!   know what the previous leader's workers run.
//! - **Expiry**: a worker silent for `session-timeout-ms` (counted from
//!   the later of its last heartbeat and this leader's start) leaves
//!   (a Raft write); its partitions go to others, who resume from the
//!   committed offsets.
//! - **Lag** ([`lag`]): every `lag-sample-ms` the leader reads each bound
//!   group's committed offsets and its partitions' log ends; a window of
//!   samples per partition gives a Burrow-style status and the lag the
//!   planner weighs, `GetPartitionLag` answers and `/metrics` exports.
//! - **Autoscaling signal**: per pool, the workers its measured load and
//!   its lag ask for ([`Scheduler::desired_workers`]).

pub mod lag;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardian_planner::consumer::{self as planner, ConsumerOptions};
use guardian_proto::consumers::{BindingKey, ConsumersCmd};
use guardian_proto::domain::Command;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::raft::Controller;

/// `[consumers]`: consumer scheduling.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ConsumersConfig {
    /// How often the leader replans (also at once on a join or leave).
    pub interval_ms: u64,
    /// How often workers heartbeat.
    pub heartbeat_ms: u64,
    /// A worker without a successful heartbeat for this long stops all its
    /// partitions (its own clock).
    pub lease_ms: u64,
    /// Added to the lease before its partitions go to others (clock rates).
    pub lease_margin_ms: u64,
    /// A worker silent this long leaves its pool.
    pub session_timeout_ms: u64,
    /// The planner's band around each pool's mean utilisation.
    pub tolerance: f64,
    /// How often the leader reads the bound groups' lag.
    pub lag_sample_ms: u64,
    /// The autoscaling signal's target: the CPU share of its capacity a
    /// worker should use (capacity counted in cores).
    pub target_utilisation: f64,
}

impl Default for ConsumersConfig {
    fn default() -> Self {
        ConsumersConfig {
            interval_ms: 30_000,
            heartbeat_ms: 1_000,
            lease_ms: 6_000,
            lease_margin_ms: 1_000,
            session_timeout_ms: 15_000,
            tolerance: 0.05,
            lag_sample_ms: 5_000,
            target_utilisation: 0.7,
        }
    }
}

impl ConsumersConfig {
    /// Errors name the key.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        for (k, v) in [
            ("consumers.interval-ms", self.interval_ms),
            ("consumers.heartbeat-ms", self.heartbeat_ms),
            ("consumers.lease-ms", self.lease_ms),
            ("consumers.session-timeout-ms", self.session_timeout_ms),
            ("consumers.lag-sample-ms", self.lag_sample_ms),
        ] {
            if v == 0 {
                return Err((k, "must be > 0"));
            }
        }
        if self.lease_ms < 2 * self.heartbeat_ms {
            return Err(("consumers.lease-ms", "must be >= 2 × heartbeat-ms"));
        }
        if self.session_timeout_ms < self.lease_ms + self.lease_margin_ms {
            return Err((
                "consumers.session-timeout-ms",
                "must be >= lease-ms + lease-margin-ms",
            ));
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(("consumers.tolerance", "must be in [0, 1)"));
        }
        if !(self.target_utilisation > 0.0 && self.target_utilisation <= 1.0) {
            return Err(("consumers.target-utilisation", "must be in (0, 1]"));
        }
        Ok(())
    }
}

/// A partition of a binding.
pub type Part = (BindingKey, i32);

/// What the leader knows of a worker from its heartbeats.
#[derive(Debug, Clone)]
struct Live {
    last: Instant,
    running: BTreeSet<Part>,
    cpu: BTreeMap<Part, f64>,
}

#[derive(Default)]
struct Soft {
    since: Option<Instant>,
    workers: BTreeMap<String, Live>,
    /// Partition counts of the bound topics, from the last lag sample.
    counts: BTreeMap<BindingKey, i32>,
    /// Each bound group partition's lag window.
    lag: BTreeMap<Part, lag::Window>,
    last_plan: Option<Instant>,
    last_sample: Option<Instant>,
    /// The last plan round's predicted load per pool.
    predicted: BTreeMap<String, planner::PoolLoad>,
}

/// The leader's scheduler.
pub struct Scheduler {
    pub cfg: ConsumersConfig,
    soft: Mutex<Soft>,
    wake: Notify,
    poked: std::sync::atomic::AtomicBool,
    executor: Arc<crate::executor::Executor>,
    /// Bumped whenever an assignment may have changed (a plan stored, a
    /// worker started or released a partition, a worker left): held
    /// heartbeats (long-poll) look again.
    changed: tokio::sync::watch::Sender<u64>,
}

/// A worker's view after a heartbeat.
pub struct Assignment {
    pub epoch: u64,
    pub assigned: Vec<Part>,
    /// Planned for it, still held by the previous owner.
    pub pending: Vec<Part>,
    pub clusters: BTreeMap<String, Vec<String>>,
}

impl Scheduler {
    /// The last plan round's predicted load per pool (leader soft state).
    pub fn predicted(&self) -> BTreeMap<String, planner::PoolLoad> {
        self.soft().predicted.clone()
    }

    pub fn new(cfg: ConsumersConfig, executor: Arc<crate::executor::Executor>) -> Self {
        Self {
            cfg,
            soft: Mutex::default(),
            wake: Notify::new(),
            poked: std::sync::atomic::AtomicBool::new(false),
            executor,
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// A worker left (after committing and stopping every partition): it
    /// holds nothing any more.
    pub fn left(&self, worker: &str) {
        self.soft().workers.remove(worker);
        self.bump();
    }

    /// Held heartbeats look again.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver for [`Scheduler::bump`]s (subscribe before reading the
    /// assignment, so no change between the two is missed).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn soft(&self) -> std::sync::MutexGuard<'_, Soft> {
        self.soft.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the soft state (leadership lost).
    pub fn clear(&self) {
        *self.soft() = Soft::default();
    }

    fn lease_plus_margin(&self) -> Duration {
        Duration::from_millis(self.cfg.lease_ms + self.cfg.lease_margin_ms)
    }

    /// A worker joined (or rejoined) through this leader: its session
    /// starts now, before its first heartbeat.
    pub fn joined(&self, worker: &str) {
        let mut soft = self.soft();
        let now = Instant::now();
        let l = soft
            .workers
            .entry(worker.to_string())
            .or_insert_with(|| Live {
                last: now,
                running: BTreeSet::new(),
                cpu: BTreeMap::new(),
            });
        l.last = now;
    }

    /// Replan soon (a worker joined or left, a binding changed).
    pub fn poke(&self) {
        self.poked.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// A worker's heartbeat: records what it runs, answers what it may run.
    pub fn heartbeat(
        &self,
        ctl: &Controller,
        worker: &str,
        running: BTreeSet<Part>,
        cpu: BTreeMap<Part, f64>,
    ) -> Result<Assignment, ApiError> {
        ctl.ensure_leader()?;
        let st = ctl.state();
        if !st.consumers.workers.contains_key(worker) {
            return Err(ApiError::NotFound {
                what: format!("worker {worker:?} (it has not joined, or left: call Join)"),
            });
        }
        let now = Instant::now();
        let mut soft = self.soft();
        soft.since.get_or_insert(now);
        let before = soft.workers.insert(
            worker.to_string(),
            Live {
                last: now,
                running: running.clone(),
                cpu,
            },
        );
        if before.is_none_or(|b| b.running != running) {
            self.bump();
        }
        drop(soft);
        drop(st);
        self.assignment(ctl, worker, &running)
    }

    /// What `worker`, running `running`, may run now: its partitions in the
    /// plan, less those another worker may still hold (running them, its
    /// lease not yet lapsed), and none at all until this leader has seen
    /// heartbeats for a lease and a margin (a worker the previous leader
    /// heard from may still run them).
    pub fn assignment(
        &self,
        ctl: &Controller,
        worker: &str,
        running: &BTreeSet<Part>,
    ) -> Result<Assignment, ApiError> {
        ctl.ensure_leader()?;
        let st = ctl.state();
        if !st.consumers.workers.contains_key(worker) {
            return Err(ApiError::NotFound {
                what: format!("worker {worker:?} (it has not joined, or left: call Join)"),
            });
        }
        let now = Instant::now();
        let soft = self.soft();
        let since = soft.since.unwrap_or(now);
        let warm = now.duration_since(since) >= self.lease_plus_margin();
        // Running elsewhere, by a worker whose lease may not have lapsed.
        let held_elsewhere = |p: &Part| {
            soft.workers.iter().any(|(id, l)| {
                id != worker
                    && l.running.contains(p)
                    && now.duration_since(l.last) < self.lease_plus_margin()
            })
        };
        let mut assigned = Vec::new();
        let mut pending = Vec::new();
        let mut clusters = BTreeMap::new();
        for (k, plan) in &st.consumers.plans {
            for (p, owner) in &plan.owners {
                if owner != worker {
                    continue;
                }
                let part = (k.clone(), *p);
                if let Some(c) = st.registry.clusters.get(&k.cluster) {
                    clusters
                        .entry(k.cluster.clone())
                        .or_insert_with(|| c.bootstrap_servers.clone());
                }
                if running.contains(&part) || (warm && !held_elsewhere(&part)) {
                    assigned.push(part);
                } else {
                    pending.push(part);
                }
            }
        }
        Ok(Assignment {
            epoch: st.consumers.epoch,
            assigned,
            pending,
            clusters,
        })
    }

    /// Each worker's liveness as the leader sees it: (id, ms since its
    /// last heartbeat, partitions it reports running). Empty on followers.
    pub fn liveness(&self) -> BTreeMap<String, (u64, usize)> {
        let soft = self.soft();
        soft.workers
            .iter()
            .map(|(id, l)| {
                (
                    id.clone(),
                    (l.last.elapsed().as_millis() as u64, l.running.len()),
                )
            })
            .collect()
    }

    /// Who runs each partition (as reported).
    pub fn running(&self) -> BTreeMap<Part, Vec<String>> {
        let soft = self.soft();
        let mut out: BTreeMap<Part, Vec<String>> = BTreeMap::new();
        for (id, l) in &soft.workers {
            for p in &l.running {
                out.entry(p.clone()).or_default().push(id.clone());
            }
        }
        out
    }

    /// The leader loop: expiry every heartbeat interval, a plan every
    /// interval or when poked.
    pub async fn run(self: Arc<Self>, ctl: Controller, stop: CancellationToken) {
        self.soft().since = Some(Instant::now());
        let tick = Duration::from_millis(self.cfg.heartbeat_ms);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
            if let Err(e) = self.expire(&ctl).await {
                tracing::warn!(error = %e, "consumer scheduling: expiring workers failed");
            }
            let due = self
                .soft()
                .last_plan
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(self.cfg.interval_ms));
            let poked = self.take_poke();
            let sample_due = self
                .soft()
                .last_sample
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(self.cfg.lag_sample_ms));
            if sample_due || due || poked {
                if let Err(e) = self.sample(&ctl).await {
                    tracing::warn!(error = %e, "consumer scheduling: reading lag failed");
                }
                self.soft().last_sample = Some(Instant::now());
            }
            if due || poked {
                match self.plan_round(&ctl).await {
                    Ok(()) => self.soft().last_plan = Some(Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "consumer scheduling: plan round failed"),
                }
            }
        }
    }

    fn take_poke(&self) -> bool {
        self.poked.swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Workers silent for the session timeout leave (a Raft write).
    async fn expire(&self, ctl: &Controller) -> Result<(), ApiError> {
        let timeout = Duration::from_millis(self.cfg.session_timeout_ms);
        let gone: Vec<String> = {
            let st = ctl.state();
            let soft = self.soft();
            let since = soft.since.unwrap_or_else(Instant::now);
            st.consumers
                .workers
                .keys()
                .filter(|id| {
                    let last = soft.workers.get(*id).map_or(since, |l| l.last.max(since));
                    last.elapsed() >= timeout
                })
                .cloned()
                .collect()
        };
        for id in gone {
            tracing::info!(worker = %id, "consumer scheduling: worker silent past the session timeout leaves");
            ctl.write(Command::Consumers(Box::new(ConsumersCmd::Leave {
                id: id.clone(),
            })))
            .await?;
            self.soft().workers.remove(&id);
            self.bump();
            self.poke();
        }
        Ok(())
    }

    /// One plan: inputs from the replicated state, Kafka and heartbeats;
    /// the changed owners written under a new epoch.
    pub async fn plan_round(&self, ctl: &Controller) -> Result<(), ApiError> {
        ctl.ensure_leader()?;
        let (workers, bindings, plans, epoch) = {
            let st = ctl.state();
            let c = &st.consumers;
            (
                c.workers.values().cloned().collect::<Vec<_>>(),
                c.bindings.values().cloned().collect::<Vec<_>>(),
                c.plans.clone(),
                c.epoch,
            )
        };
        if bindings.is_empty() {
            return Ok(());
        }
        // Partition counts and lag from the last sample.
        let (counts, lag): (BTreeMap<BindingKey, i32>, BTreeMap<Part, u64>) = {
            let soft = self.soft();
            (
                soft.counts.clone(),
                soft.lag
                    .iter()
                    .filter_map(|(p, w)| w.latest().map(|l| (p.clone(), l.lag() as u64)))
                    .collect(),
            )
        };
        let cpu: BTreeMap<Part, f64> = {
            let soft = self.soft();
            soft.workers
                .values()
                .flat_map(|l| l.cpu.iter().map(|(p, c)| (p.clone(), *c)))
                .collect()
        };
        let pw: Vec<planner::Worker> = workers
            .iter()
            .map(|w| planner::Worker {
                id: w.id.clone(),
                pool: w.pool.clone(),
                capacity: w.capacity,
            })
            .collect();
        let pb: Vec<planner::Binding> = bindings
            .iter()
            .map(|b| {
                let n = counts.get(&b.key).copied().unwrap_or(0);
                let owners = plans.get(&b.key).map(|p| &p.owners);
                planner::Binding {
                    cluster: b.key.cluster.clone(),
                    topic: b.key.topic.clone(),
                    group: b.key.group.clone(),
                    pools: b
                        .pools
                        .iter()
                        .map(|s| planner::PoolShare {
                            pool: s.pool.clone(),
                            ratio: s.ratio,
                        })
                        .collect(),
                    partitions: (0..n)
                        .map(|p| {
                            let part = (b.key.clone(), p);
                            planner::PartitionLoad {
                                partition: p,
                                cpu: cpu.get(&part).copied(),
                                lag: lag.get(&part).copied().unwrap_or(0),
                                owner: owners.and_then(|o| o.get(&p).cloned()),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let opts = ConsumerOptions {
            tolerance: self.cfg.tolerance,
            ..ConsumerOptions::default()
        };
        let t = Instant::now();
        let plan = planner::plan_consumers(&pw, &pb, &opts).map_err(|e| ApiError::Internal {
            reason: format!("consumer planner: {e}"),
        })?;
        crate::metrics::METRICS
            .consumers_plan_seconds
            .observe(crate::metrics::since(t));
        let mut next: BTreeMap<BindingKey, BTreeMap<i32, String>> = bindings
            .iter()
            .map(|b| (b.key.clone(), BTreeMap::new()))
            .collect();
        for a in &plan.assignments {
            let key = &bindings[a.binding].key;
            next.get_mut(key)
                .expect("a binding of the plan")
                .insert(a.partition, a.worker.clone());
        }
        self.soft().predicted = plan
            .pools
            .iter()
            .map(|p| (p.pool.clone(), p.clone()))
            .collect();
        let changed: Vec<(BindingKey, BTreeMap<i32, String>)> = next
            .into_iter()
            .filter(|(k, o)| plans.get(k).map(|p| &p.owners) != Some(o))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        tracing::info!(
            epoch = epoch + 1,
            bindings = changed.len(),
            moves = plan.moves.len(),
            placed = plan.placed,
            spread = plan.cpu_spread,
            "consumer scheduling: new plan"
        );
        ctl.write(Command::Consumers(Box::new(ConsumersCmd::Plan {
            epoch: epoch + 1,
            plans: changed,
        })))
        .await?;
        self.bump();
        Ok(())
    }
}

impl Scheduler {
    /// Reads every bound group's committed offsets and its topic's log
    /// ends into the lag windows (and the partition counts). A cluster or
    /// group that cannot be read marks its partitions `ERR` and the others
    /// go on.
    pub async fn sample(&self, ctl: &Controller) -> Result<(), ApiError> {
        ctl.ensure_leader()?;
        let bindings: Vec<BindingKey> = ctl.state().consumers.bindings.keys().cloned().collect();
        let mut by_cluster: BTreeMap<String, Vec<BindingKey>> = BTreeMap::new();
        for b in bindings {
            by_cluster.entry(b.cluster.clone()).or_default().push(b);
        }
        let now = crate::time::now_ms();
        let mut counts = BTreeMap::new();
        let mut samples: Vec<(Part, Result<lag::Sample, String>)> = Vec::new();
        let mut first_error = None;
        for (cluster, keys) in by_cluster {
            let md = match self.executor.client(ctl, &cluster) {
                Ok(k) => k
                    .metadata()
                    .await
                    .map(|m| (k, m))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let (k, md) = match md {
                Ok(x) => x,
                Err(e) => {
                    let e = format!("Metadata of {cluster:?}: {e}");
                    for key in &keys {
                        let n = self.soft().counts.get(key).copied().unwrap_or(0);
                        for p in 0..n {
                            samples.push(((key.clone(), p), Err(e.clone())));
                        }
                    }
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            for key in keys {
                let Some(t) = md.topics.iter().find(|t| t.name == key.topic) else {
                    continue;
                };
                let n = t.partitions.len() as i32;
                counts.insert(key.clone(), n);
                let tps: Vec<guardian_kafka::TopicPartition> = (0..n)
                    .map(|p| guardian_kafka::TopicPartition::new(&key.topic, p))
                    .collect();
                let read = async {
                    let committed = k.committed_offsets(&key.group).await?;
                    let ends = k
                        .list_offsets(&tps, guardian_kafka::OffsetSpec::Latest)
                        .await?;
                    Ok::<_, guardian_kafka::KafkaError>((committed, ends))
                };
                match read.await {
                    Ok((committed, ends)) => {
                        let committed: BTreeMap<i32, i64> = committed
                            .into_iter()
                            .filter(|(tp, _)| tp.topic == key.topic)
                            .map(|(tp, o)| (tp.partition, o))
                            .collect();
                        for (tp, end) in ends {
                            let part = (key.clone(), tp.partition);
                            samples.push((
                                part,
                                end.map(|log_end| lag::Sample {
                                    at_ms: now,
                                    committed: committed.get(&tp.partition).copied().unwrap_or(-1),
                                    log_end,
                                })
                                .map_err(|e| format!("ListOffsets: {e}")),
                            ));
                        }
                    }
                    Err(e) => {
                        let e = format!("offsets of group {:?}: {e}", key.group);
                        for p in 0..n {
                            samples.push(((key.clone(), p), Err(e.clone())));
                        }
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        let mut soft = self.soft();
        for (k, n) in counts {
            soft.counts.insert(k, n);
        }
        let live: BTreeMap<BindingKey, i32> = ctl
            .state()
            .consumers
            .bindings
            .keys()
            .filter_map(|k| soft.counts.get(k).map(|n| (k.clone(), *n)))
            .collect();
        soft.counts = live.clone();
        soft.lag
            .retain(|(k, p), _| live.get(k).is_some_and(|n| *p < *n));
        for (part, s) in samples {
            let w = soft.lag.entry(part).or_default();
            match s {
                Ok(s) => w.push(s),
                Err(e) => w.error = Some(e),
            }
        }
        match first_error {
            Some(e) => Err(ApiError::FailedPrecondition { reason: e }),
            None => Ok(()),
        }
    }

    /// Each bound group partition's lag window and its status (running:
    /// as the workers report), for a binding or all.
    pub fn lag_view(&self, only: Option<&BindingKey>) -> Vec<(Part, lag::Window, lag::LagStatus)> {
        let soft = self.soft();
        let running: BTreeSet<&Part> = soft
            .workers
            .values()
            .flat_map(|l| l.running.iter())
            .collect();
        soft.lag
            .iter()
            .filter(|(p, _)| only.is_none_or(|k| &p.0 == k))
            .map(|(p, w)| (p.clone(), w.clone(), w.status(Some(running.contains(p)))))
            .collect()
    }

    /// The autoscaling signal per pool: workers its measured CPU asks for
    /// at `target-utilisation` of the mean worker capacity (capacity in
    /// cores), and one more than it has while any partition it owns is
    /// `WARN`, `STALL` or `STOP` (lag not coming down) — never more than
    /// the partitions it owns (a partition has one consumer) nor fewer
    /// than one while it owns any. A pool without workers that a binding
    /// with unowned partitions names asks for one (scale from zero); other
    /// pools that own nothing ask for 0.
    pub fn desired_workers(
        &self,
        st: &guardian_meta_store::state::State,
    ) -> BTreeMap<String, DesiredWorkers> {
        let c = &st.consumers;
        let mut out: BTreeMap<String, DesiredWorkers> = c
            .pools
            .keys()
            .map(|p| (p.clone(), DesiredWorkers::default()))
            .collect();
        let pool_of: BTreeMap<&str, &str> = c
            .workers
            .values()
            .map(|w| (w.id.as_str(), w.pool.as_str()))
            .collect();
        for w in c.workers.values() {
            if let Some(d) = out.get_mut(&w.pool) {
                d.workers += 1;
                d.capacity += w.capacity;
            }
        }
        let statuses: BTreeMap<Part, lag::LagStatus> = self
            .lag_view(None)
            .into_iter()
            .map(|(p, _, s)| (p, s))
            .collect();
        let soft = self.soft();
        let cpu: BTreeMap<&Part, f64> = soft
            .workers
            .values()
            .flat_map(|l| l.cpu.iter().map(|(p, c)| (p, *c)))
            .collect();
        for (k, plan) in &c.plans {
            for (p, owner) in &plan.owners {
                let Some(d) = pool_of
                    .get(owner.as_str())
                    .and_then(|pool| out.get_mut(*pool))
                else {
                    continue;
                };
                let part = (k.clone(), *p);
                d.partitions += 1;
                d.cpu_cores += cpu.get(&part).copied().unwrap_or(0.0);
                let s = statuses.get(&part).copied().unwrap_or(lag::LagStatus::Ok);
                if matches!(
                    s,
                    lag::LagStatus::Warn | lag::LagStatus::Stall | lag::LagStatus::Stop
                ) {
                    d.lagging += 1;
                }
            }
        }
        // Bindings with partitions nobody owns: their empty pools want one.
        for b in c.bindings.values() {
            let owned = c.plans.get(&b.key).map_or(0, |p| p.owners.len());
            let n = soft.counts.get(&b.key).copied().unwrap_or(0).max(0) as usize;
            if owned >= n {
                continue;
            }
            for share in &b.pools {
                if let Some(d) = out.get_mut(&share.pool) {
                    if d.workers == 0 {
                        d.unowned += (n - owned) as u64;
                    }
                }
            }
        }
        for d in out.values_mut() {
            if d.partitions == 0 {
                d.desired = u64::from(d.unowned > 0);
                continue;
            }
            let mean_cap = if d.workers > 0 {
                d.capacity / d.workers as f64
            } else {
                1.0
            };
            let by_cpu = (d.cpu_cores / (self.cfg.target_utilisation * mean_cap)).ceil() as u64;
            let mut want = by_cpu.max(1);
            if d.lagging > 0 {
                want = want.max(d.workers + 1);
            }
            d.desired = want.min(d.partitions);
        }
        out
    }
}

/// A pool's autoscaling signal and what it comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DesiredWorkers {
    pub workers: u64,
    pub desired: u64,
    pub partitions: u64,
    /// Owned partitions whose lag is not coming down.
    pub lagging: u64,
    /// Partitions of bindings naming this pool that nobody owns (counted
    /// while the pool has no worker).
    pub unowned: u64,
    pub cpu_cores: f64,
    pub capacity: f64,
}
