//! One execution's procedure, one step at a time. [`step`] reads the
//! cluster, decides, journals what it is about to do (a [`Journal`]
//! update, compare-and-set on the version), and only then acts on Kafka.
//! Every step is idempotent: re-run after a crash at any point it finds
//! the cluster and the journal where they were and continues — a task
//! journaled as submitted whose reassignment Kafka does not have is sent
//! again, one Kafka has is adopted, one already in place is finished.
//! Generic over [`KafkaAdmin`], so the same code runs on real Kafka and on
//! the `kafka/` model.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use guardian_kafka::types::{AlterConfigOp, Election, Reassignment, TopicPartition};
use guardian_kafka::{ClusterMetadata, KafkaAdmin, KafkaError};
use guardian_proto::execution::{ExecState, Execution, LedgerState, Task, TaskState};

use super::ledger::{self, override_of, resource, same_value};

/// Where the executor records its steps (Raft in production).
pub trait Journal: Send + Sync {
    /// Records `e` (computed from version `e.version`) and the changed
    /// tasks; the stored header after the change, or why it was refused.
    fn update(
        &self,
        e: &Execution,
        tasks: Vec<Task>,
    ) -> impl Future<Output = Result<Execution, String>> + Send;
}

/// Executor settings a step needs.
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// After its replicas are in place, how long a task waits for its
    /// preferred leader before it finishes without it (named in its reason).
    pub leader_wait_ms: u64,
    /// A broker missing from Metadata this long is gone: tasks adding a
    /// replica on it are cancelled (shorter: a restart, tasks wait).
    pub broker_grace_ms: u64,
    /// Tasks in flight in the whole cluster (the executor lowers it to
    /// what the federation-wide budget leaves).
    pub max_tasks_per_cluster: u32,
    /// Tasks in flight placing a replica on one log dir, and their bytes
    /// (a task larger than that still starts on an idle dir).
    pub max_tasks_per_disk: u32,
    pub max_bytes_per_disk: u64,
    /// Bytes of the tasks in flight touching one broker (a task larger
    /// than this still starts on a broker with nothing in flight).
    pub max_bytes_per_broker: u64,
    pub adapt: Adapt,
    /// A roll's restart command still running after this long is killed
    /// (and the roll pauses).
    pub restart_timeout_ms: u64,
}

/// Per-broker rate adaptation from live headroom: halve a broker's rate
/// when one of its disks is hot or its produce p99 is slow, add `step`
/// while it is healthy, within `[min, max]`, at most once per `every_ms`.
/// A broker the collector knows nothing of keeps its rate.
#[derive(Debug, Clone)]
pub struct Adapt {
    pub min: u64,
    pub max: u64,
    pub step: u64,
    pub every_ms: u64,
    /// Disk utilisation (0–1) above which a broker backs off.
    pub hot_util: f64,
    /// Produce p99 (ms) above which a broker backs off.
    pub slow_produce_ms: f64,
}

/// What the collector knows of a broker right now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    /// The busiest disk's utilisation (0–1).
    pub disk_util: f64,
    /// Produce p99 in ms, when the broker's metrics are scraped.
    pub produce_p99_ms: Option<f64>,
}

/// Partitions per AlterPartitionReassignments (KRaft caps one operation at
/// 10,000 records; a partition's move is several).
const REASSIGN_BATCH: usize = 1_000;

/// Soft state kept between steps on the leader (lost on failover, which
/// only costs a re-read).
#[derive(Debug, Default)]
pub struct Soft {
    /// Per task: bytes copied so far.
    pub progress: BTreeMap<u32, u64>,
    /// Per task: when its replicas were first seen in place.
    pub placed_at: BTreeMap<u32, u64>,
    /// Per task: when this leader last sent its requests. Metadata lags
    /// the controller a little, so a task this leader sent is re-sent only
    /// after [`RESEND_AFTER_MS`]; one journaled by an earlier leader is
    /// re-sent at once if Kafka shows no trace of it.
    pub sent_at: BTreeMap<u32, u64>,
    /// Brokers missing from Metadata, since when (a new leader starts the
    /// grace period again: conservative).
    pub dead_since: BTreeMap<i32, u64>,
    /// `min.insync.replicas` per topic, read when the gate needs it.
    pub min_isr: BTreeMap<String, i32>,
    /// Tasks the min-ISR gate holds (named once in the events).
    pub gated: BTreeSet<u32>,
    /// Live health per broker, filled by the executor before each step.
    pub health: BTreeMap<i32, Health>,
    /// The adapted rate per broker and when it last changed.
    pub rates: BTreeMap<i32, (u64, u64)>,
    /// Brokers in maintenance (filled by the executor before each step):
    /// tasks touching them wait (paused, never cancelled).
    pub held: BTreeSet<i32>,
    /// Tasks named once as waiting for a broker in maintenance.
    pub held_noted: BTreeSet<u32>,
    /// A roll's restart commands running on this leader, per broker.
    pub restarts: BTreeMap<i32, tokio::task::JoinHandle<Result<(), String>>>,
    /// A roll's waits already named in its events.
    pub roll_noted: BTreeSet<String>,
}

impl Drop for Soft {
    /// A node that stops leading stops the restart commands it runs (the
    /// new leader runs them again: they were journaled as started).
    fn drop(&mut self) {
        for h in self.restarts.values() {
            h.abort();
        }
    }
}

impl Soft {
    /// The rate for broker `b` now, adapting it (see [`Adapt`]) from its
    /// health. Starts at the execution's rate (or what the ledger shows
    /// Guardian wrote, after a failover).
    fn adapt(&mut self, e: &mut Execution, b: i32, cfg: &Adapt, now: u64) -> u64 {
        let start = e
            .ledger
            .iter()
            .find(|l| {
                l.entity == guardian_proto::execution::ThrottleEntity::Broker(b)
                    && l.key == ledger::FOLLOWER_RATE
            })
            .and_then(|l| l.written.as_deref()?.parse().ok())
            .unwrap_or(e.throttle_rate);
        let (rate, at) = *self.rates.entry(b).or_insert((start, now));
        let Some(h) = self.health.get(&b).copied() else {
            return rate;
        };
        if now.saturating_sub(at) < cfg.every_ms {
            return rate;
        }
        let strained =
            h.disk_util > cfg.hot_util || h.produce_p99_ms.is_some_and(|p| p > cfg.slow_produce_ms);
        // Never below `min` by halving, never above `max` by adding (a
        // configured start outside the bounds only moves toward them).
        let next = if strained {
            (rate / 2).max(cfg.min.min(rate))
        } else {
            rate.saturating_add(cfg.step).min(cfg.max.max(rate))
        };
        if next != rate {
            e.event(
                now,
                format!(
                    "broker {b}: throttle {} → {next} bytes/s ({})",
                    rate,
                    if strained {
                        format!(
                            "disk at {:.0}% or produce p99 {:?} ms: backing off",
                            h.disk_util * 100.0,
                            h.produce_p99_ms
                        )
                    } else {
                        "healthy".to_string()
                    }
                ),
            );
        }
        self.rates.insert(b, (next, now));
        next
    }
}

/// How long a throttle write may take to read back from its broker.
const READ_BACK_MS: u64 = 3_000;
const READ_BACK_POLL_MS: u64 = 25;

/// See [`Soft::sent_at`].
pub const RESEND_AFTER_MS: u64 = 5_000;

/// Why a step could not finish (the next step retries).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("journal: {0}")]
    Journal(String),
    #[error("{0}")]
    Throttle(String),
}

/// A topic's effective `min.insync.replicas` (1 if Kafka gives none).
async fn min_isr<K: KafkaAdmin>(k: &K, topic: &str) -> Result<i32, StepError> {
    let c = k
        .describe_configs(
            &guardian_kafka::types::ConfigResource::Topic(topic.to_string()),
            &["min.insync.replicas"],
        )
        .await?;
    Ok(c.iter()
        .find(|e| e.name == "min.insync.replicas")
        .and_then(|e| e.value.as_deref()?.parse().ok())
        .unwrap_or(1))
}

/// `t` finished in `state` for `reason`, named in the events.
fn ended(
    t: &Task,
    state: TaskState,
    reason: impl Into<String>,
    now: u64,
    e: &mut Execution,
) -> Task {
    let mut t = t.clone();
    t.state = state;
    t.reason = reason.into();
    t.finished_ms = now;
    e.event(now, format!("{}-{}: {}", t.topic, t.partition, t.reason));
    t
}

fn tp(t: &Task) -> TopicPartition {
    TopicPartition {
        topic: t.topic.clone(),
        partition: t.partition,
    }
}

/// Runs one step of `e`. Returns the header after it.
pub async fn step<K: KafkaAdmin, J: Journal>(
    k: &K,
    j: &J,
    e: &Execution,
    tasks: &[Task],
    cfg: &StepConfig,
    soft: &mut Soft,
    now: u64,
) -> Result<Execution, StepError> {
    let mut e = e.clone();
    match e.state {
        ExecState::Approved => {
            e.state = ExecState::Preflight;
            e.event(
                now,
                "preflight: checking for drift, recording the throttle ledger",
            );
            commit(j, &e, Vec::new()).await
        }
        ExecState::Preflight => preflight(k, j, e, tasks, now).await,
        ExecState::Executing if e.roll.is_some() => {
            super::roll::step(k, j, e, cfg, soft, now).await
        }
        ExecState::Executing if e.cancel_requested => cancel(k, j, e, tasks, now).await,
        ExecState::Executing => execute(k, j, e, tasks, cfg, soft, now).await,
        ExecState::Verifying => verify(k, j, e, tasks, now).await,
        _ => Ok(e),
    }
}

async fn commit<J: Journal>(
    j: &J,
    e: &Execution,
    tasks: Vec<Task>,
) -> Result<Execution, StepError> {
    j.update(e, tasks).await.map_err(StepError::Journal)
}

/// Preflight: tasks whose partition changed since the plan are named and
/// the execution fails (propose again); tasks of deleted or re-created
/// topics are dropped; then the ledger records every throttle key the
/// tasks will touch, as it is now.
async fn preflight<K: KafkaAdmin, J: Journal>(
    k: &K,
    j: &J,
    mut e: Execution,
    tasks: &[Task],
    now: u64,
) -> Result<Execution, StepError> {
    let md = k.metadata().await?;
    let mut changed = Vec::new();
    let mut updates = Vec::new();
    for t in tasks.iter().filter(|t| t.state == TaskState::Pending) {
        match current(&md, t) {
            Current::Gone(why) => {
                let mut t = t.clone();
                t.state = TaskState::Dropped;
                t.reason = why;
                t.finished_ms = now;
                updates.push(t);
            }
            Current::Replicas(r) if r != t.original => changed.push(format!(
                "{}-{} (now {r:?}, planned from {:?})",
                t.topic, t.partition, t.original
            )),
            Current::Replicas(_) => {}
        }
    }
    if !changed.is_empty() {
        e.state = ExecState::Failed;
        e.finished_ms = now;
        e.reason = format!(
            "{} ({} partitions: {}); re-planned as a new proposal",
            super::DRIFT,
            changed.len(),
            changed
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        let reason = e.reason.clone();
        e.event(now, reason);
        return commit(j, &e, updates).await;
    }
    for t in &updates {
        e.event(
            now,
            format!("{}-{} dropped: {}", t.topic, t.partition, t.reason),
        );
    }
    let live: Vec<Task> = tasks
        .iter()
        .filter(|t| !updates.iter().any(|u| u.index == t.index))
        .cloned()
        .collect();
    let mut entries = Vec::new();
    let alive: BTreeSet<i32> = md.brokers.iter().map(|b| b.id).collect();
    for ent in ledger::entities(&live) {
        if let guardian_proto::execution::ThrottleEntity::Broker(b) = ent {
            if !alive.contains(&b) {
                // A dead broker (a healing plan's source): nothing to
                // throttle on it, and its configs cannot be read.
                e.event(
                    now,
                    format!("broker {b} is not in Kafka's metadata: no throttle recorded for it"),
                );
                continue;
            }
        }
        let keys: &[&str] = match ent {
            guardian_proto::execution::ThrottleEntity::Broker(_) => &ledger::BROKER_KEYS,
            guardian_proto::execution::ThrottleEntity::Topic { .. } => &ledger::TOPIC_KEYS,
        };
        let described = k.describe_configs(&resource(&ent), keys).await?;
        for key in keys {
            let prior = override_of(&described, key, &ent);
            let entry = ledger::record(ent.clone(), key, prior);
            if entry.state == LedgerState::Wildcard {
                e.event(
                    now,
                    format!("{ent} {key} is already `*` (the operator's): left alone"),
                );
            }
            entries.push(entry);
        }
    }
    e.ledger = entries;
    e.state = ExecState::Executing;
    e.started_ms = now;
    e.event(
        now,
        format!("executing: ledger holds {} throttle keys", e.ledger.len()),
    );
    commit(j, &e, updates).await
}

enum Current {
    Replicas(Vec<i32>),
    Gone(String),
}

fn current(md: &ClusterMetadata, t: &Task) -> Current {
    let Some(topic) = md.topics.iter().find(|x| x.name == t.topic) else {
        return Current::Gone("the topic was deleted".into());
    };
    if !t.topic_id.is_empty()
        && guardian_proto::domain::KafkaUuid(topic.id).to_string() != t.topic_id
    {
        return Current::Gone("the topic was deleted and re-created".into());
    }
    match topic.partitions.iter().find(|p| p.partition == t.partition) {
        None => Current::Gone("the partition no longer exists".into()),
        Some(p) => Current::Replicas(p.replicas.clone()),
    }
}

fn partition<'a>(md: &'a ClusterMetadata, t: &Task) -> Option<&'a guardian_kafka::PartitionInfo> {
    md.topics
        .iter()
        .find(|x| x.name == t.topic)?
        .partitions
        .iter()
        .find(|p| p.partition == t.partition)
}

fn same_set(a: &[i32], b: &[i32]) -> bool {
    let (x, y): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
    x == y
}

/// Replicas in place and each in its target dir, with no copy running.
fn dirs_in_place(t: &Task, dirs: &BTreeMap<i32, Vec<guardian_kafka::types::LogDirInfo>>) -> bool {
    t.dirs.iter().all(|(b, want)| {
        let Some(list) = dirs.get(b) else {
            return false;
        };
        let mut here = false;
        for d in list {
            for r in &d.replicas {
                if r.topic == t.topic && r.partition == t.partition {
                    if r.is_future {
                        return false;
                    }
                    here |= d.path == *want;
                }
            }
        }
        here
    })
}

/// Bytes copied for a task: the size of each target replica (or its
/// `-future` copy) where the task places one.
fn copied(t: &Task, dirs: &BTreeMap<i32, Vec<guardian_kafka::types::LogDirInfo>>) -> u64 {
    let mut n = 0u64;
    for (b, want) in &t.dirs {
        for d in dirs.get(b).into_iter().flatten() {
            for r in &d.replicas {
                if r.topic == t.topic && r.partition == t.partition && d.path == *want {
                    n += r.size_bytes.max(0) as u64;
                }
            }
        }
    }
    n.min(t.bytes)
}

async fn execute<K: KafkaAdmin, J: Journal>(
    k: &K,
    j: &J,
    mut e: Execution,
    tasks: &[Task],
    cfg: &StepConfig,
    soft: &mut Soft,
    now: u64,
) -> Result<Execution, StepError> {
    let events_before = e.events.clone();
    let md = k.metadata().await?;
    let moving: BTreeMap<(String, i32), Reassignment> = k
        .list_reassignments(&[])
        .await?
        .into_iter()
        .map(|r| ((r.topic.clone(), r.partition), r))
        .collect();
    let alive: BTreeSet<i32> = md.brokers.iter().map(|b| b.id).collect();
    for b in tasks.iter().flat_map(|t| t.brokers()) {
        if alive.contains(&b) {
            if soft.dead_since.remove(&b).is_some() {
                e.event(now, format!("broker {b} is back in Kafka's metadata"));
            }
        } else if let std::collections::btree_map::Entry::Vacant(v) = soft.dead_since.entry(b) {
            v.insert(now);
            e.event(
                now,
                format!(
                    "broker {b} is missing from Kafka's metadata: tasks touching it wait up to {} ms",
                    cfg.broker_grace_ms
                ),
            );
        }
    }
    let gone = |b: i32| {
        soft.dead_since
            .get(&b)
            .is_some_and(|t| now.saturating_sub(*t) >= cfg.broker_grace_ms)
    };
    let gone_set: BTreeSet<i32> = soft
        .dead_since
        .keys()
        .copied()
        .filter(|b| gone(*b))
        .collect();
    let submitted: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.state == TaskState::Submitted)
        .collect();
    let mut dir_brokers: BTreeSet<i32> = BTreeSet::new();
    for t in &submitted {
        dir_brokers.extend(t.dirs.iter().map(|(b, _)| *b).filter(|b| alive.contains(b)));
    }
    let mut dirs = BTreeMap::new();
    for b in dir_brokers {
        dirs.insert(b, k.describe_log_dirs(b).await?);
    }

    // 1. Follow the tasks in flight.
    let mut updates: Vec<Task> = Vec::new();
    let mut resend: Vec<Task> = Vec::new();
    let mut elect: Vec<Task> = Vec::new();
    let mut fix_dirs: BTreeMap<i32, Vec<(TopicPartition, String)>> = BTreeMap::new();
    let mut revert: Vec<(TopicPartition, Option<Vec<i32>>)> = Vec::new();
    for t in &submitted {
        if let Some(b) = t.adding().find(|b| gone_set.contains(b)) {
            // Its destination is gone: cancel (the copy is lost anyway);
            // its throttle entries leave the lists with it.
            if moving.contains_key(&(t.topic.clone(), t.partition)) {
                revert.push((tp(t), None));
            }
            updates.push(ended(t, TaskState::Failed, format!(
                "destination broker {b} was missing from Kafka's metadata for longer than {} ms: cancelled",
                cfg.broker_grace_ms
            ), now, &mut e));
            continue;
        }
        let Some(p) = partition(&md, t) else {
            let mut t = (*t).clone();
            t.state = TaskState::Dropped;
            t.reason = "the topic or partition was deleted mid-plan".into();
            t.finished_ms = now;
            e.event(
                now,
                format!("{}-{} dropped: {}", t.topic, t.partition, t.reason),
            );
            updates.push(t);
            continue;
        };
        soft.progress.insert(t.index, copied(t, &dirs));
        if let Some(r) = moving.get(&(t.topic.clone(), t.partition)) {
            // Ours if it heads for our target; otherwise someone replaced it.
            let target: BTreeSet<i32> = r
                .replicas
                .iter()
                .copied()
                .filter(|b| !r.removing.contains(b))
                .collect();
            if target != t.target.iter().copied().collect() {
                updates.push(ended(t, TaskState::Failed, format!(
                    "a reassignment Guardian did not start replaced this one (to {target:?}): left alone"
                ), now, &mut e));
            }
            continue; // copying
        }
        let recently_sent = soft
            .sent_at
            .get(&t.index)
            .is_some_and(|at| now.saturating_sub(*at) < RESEND_AFTER_MS);
        if !same_set(&p.replicas, &t.target) {
            // No trace in Kafka (the replicas are still the original ones):
            // journaled but never sent, or lost — send it again. Replicas
            // part-way (a finished reassignment that this broker's
            // Metadata has not caught up with): wait, and send again only
            // if it stays that way.
            let untouched = same_set(&p.replicas, &t.original);
            let since = *soft
                .sent_at
                .entry(t.index)
                .or_insert(if untouched { 0 } else { now });
            if !recently_sent && (untouched || now.saturating_sub(since) >= RESEND_AFTER_MS) {
                resend.push((*t).clone());
            }
            continue;
        }
        if !t.dirs.is_empty() && !dirs_in_place(t, &dirs) {
            // Correct a replica Kafka placed in another dir while it is small.
            for (b, want) in &t.dirs {
                let Some(list) = dirs.get(b) else { continue };
                let busy = list.iter().any(|d| {
                    d.replicas
                        .iter()
                        .any(|r| r.topic == t.topic && r.partition == t.partition && r.is_future)
                });
                let wrong = list.iter().any(|d| {
                    d.path != *want
                        && d.replicas
                            .iter()
                            .any(|r| r.topic == t.topic && r.partition == t.partition)
                });
                if wrong && !busy {
                    fix_dirs.entry(*b).or_default().push((tp(t), want.clone()));
                }
            }
            continue;
        }
        if p.replicas != t.target {
            // Same set, other order (a leader-only task): reorder.
            if !recently_sent {
                resend.push((*t).clone());
            }
            continue;
        }
        let placed = *soft.placed_at.entry(t.index).or_insert(now);
        match t.leader {
            Some(l) if p.leader != l && now.saturating_sub(placed) < cfg.leader_wait_ms => {
                elect.push((*t).clone());
            }
            Some(l) if p.leader != l => {
                let mut t = (*t).clone();
                t.state = TaskState::Done;
                t.finished_ms = now;
                t.reason = format!(
                    "replicas in place; broker {l} did not become leader within {} ms (leader is {})",
                    cfg.leader_wait_ms, p.leader
                );
                updates.push(t);
            }
            _ => {
                let mut t = (*t).clone();
                t.state = TaskState::Done;
                t.finished_ms = now;
                soft.progress.insert(t.index, t.bytes);
                updates.push(t);
            }
        }
    }
    for (b, moves) in &fix_dirs {
        for (tp, r) in k.alter_replica_log_dirs(*b, moves).await? {
            if let Err(err) = r {
                e.event(now, format!("{tp} to its target dir on broker {b}: {err}"));
            }
        }
    }
    if !elect.is_empty() {
        let tps: Vec<TopicPartition> = elect.iter().map(tp).collect();
        for (tp, r) in k.elect_preferred_leaders(&tps).await? {
            match r {
                Ok(Election::Elected) | Ok(Election::NotNeeded) => {}
                // PREFERRED_LEADER_NOT_AVAILABLE until the replica is in sync.
                Err(err) if err.is_retriable() => {}
                Err(err) => e.event(now, format!("electing the leader of {tp}: {err}")),
            }
        }
    }

    // 2. Start pending tasks within the per-broker budget.
    let finished: BTreeSet<u32> = updates.iter().map(|t| t.index).collect();
    let mut load: BTreeMap<i32, u32> = BTreeMap::new();
    let mut bytes: BTreeMap<i32, u64> = BTreeMap::new();
    let mut disk_load: BTreeMap<(i32, String), (u32, u64)> = BTreeMap::new();
    let per_dir = |t: &Task| t.bytes / (t.dirs.len().max(1) as u64);
    for t in submitted.iter().filter(|t| !finished.contains(&t.index)) {
        for b in t.brokers() {
            *load.entry(b).or_default() += 1;
            *bytes.entry(b).or_default() += t.bytes;
        }
        for d in &t.dirs {
            let l = disk_load.entry(d.clone()).or_default();
            l.0 += 1;
            l.1 += per_dir(t);
        }
    }
    let mut starting: Vec<Task> = Vec::new();
    let mut total = submitted.len() - finished.len().min(submitted.len());
    if !e.paused {
        for t in tasks.iter().filter(|t| t.state == TaskState::Pending) {
            if total >= cfg.max_tasks_per_cluster as usize {
                break;
            }
            if let Some(b) = t.adding().find(|b| gone_set.contains(b)) {
                updates.push(ended(t, TaskState::Failed, format!(
                    "destination broker {b} was missing from Kafka's metadata for longer than {} ms: not started",
                    cfg.broker_grace_ms
                ), now, &mut e));
                continue;
            }
            if let Some(b) = t.brokers().find(|b| soft.held.contains(b)) {
                if soft.held_noted.insert(t.index) {
                    e.event(
                        now,
                        format!(
                            "{}-{} waits: broker {b} is in maintenance",
                            t.topic, t.partition
                        ),
                    );
                }
                continue;
            }
            // A broker within its grace period (a restart): wait. A dead
            // source past it: go on, that is the healing.
            if t.brokers()
                .any(|b| !alive.contains(&b) && !gone_set.contains(&b))
            {
                continue;
            }
            if t.brokers()
                .any(|b| load.get(&b).copied().unwrap_or(0) >= e.max_tasks_per_broker)
            {
                continue;
            }
            if t.brokers().any(|b| {
                let held = bytes.get(&b).copied().unwrap_or(0);
                held > 0 && held + t.bytes > cfg.max_bytes_per_broker
            }) {
                continue;
            }
            if t.dirs.iter().any(|d| {
                let (n, held) = disk_load.get(d).copied().unwrap_or_default();
                n >= cfg.max_tasks_per_disk
                    || (held > 0 && held + per_dir(t) > cfg.max_bytes_per_disk)
            }) {
                continue;
            }
            if let Some(p) = partition(&md, t) {
                // The min-ISR gate: a partition already at or under its
                // min ISR (and not fully in sync) loses no in-sync replica
                // and keeps its leader; tasks that only add go ahead.
                let removes_isr = t.removing().any(|b| p.isr.contains(&b));
                let moves_leader = t.leader.is_some_and(|l| l != p.leader);
                if (removes_isr || moves_leader) && p.isr.len() < p.replicas.len() {
                    let min = match soft.min_isr.get(&t.topic) {
                        Some(m) => *m,
                        None => {
                            let m = min_isr(k, &t.topic).await?;
                            soft.min_isr.insert(t.topic.clone(), m);
                            m
                        }
                    };
                    if p.isr.len() as i32 <= min {
                        if soft.gated.insert(t.index) {
                            e.event(
                                now,
                                format!(
                                    "{}-{} waits: {} in sync, min.insync.replicas {min}",
                                    t.topic,
                                    t.partition,
                                    p.isr.len()
                                ),
                            );
                        }
                        continue;
                    }
                }
                if p.replicas != t.original {
                    updates.push(ended(
                        t,
                        TaskState::Failed,
                        format!(
                            "its replicas changed since the plan (now {:?}, planned from {:?})",
                            p.replicas, t.original
                        ),
                        now,
                        &mut e,
                    ));
                    continue;
                }
                if moving.contains_key(&(t.topic.clone(), t.partition)) {
                    continue; // someone else's reassignment: wait
                }
            }
            for b in t.brokers() {
                *load.entry(b).or_default() += 1;
                *bytes.entry(b).or_default() += t.bytes;
            }
            for d in &t.dirs {
                let l = disk_load.entry(d.clone()).or_default();
                l.0 += 1;
                l.1 += per_dir(t);
            }
            total += 1;
            let mut t = t.clone();
            t.state = TaskState::Submitted;
            t.started_ms = now;
            t.attempts += 1;
            starting.push(t);
        }
    }

    // 3. Throttles for what will be in flight, journaled before written.
    let in_flight: Vec<&Task> = submitted
        .iter()
        .copied()
        .filter(|t| !finished.contains(&t.index))
        .chain(starting.iter())
        .collect();
    let mut rates = BTreeMap::new();
    for b in in_flight
        .iter()
        .flat_map(|t| t.brokers())
        .collect::<BTreeSet<_>>()
    {
        rates.insert(b, soft.adapt(&mut e, b, &cfg.adapt, now));
    }
    let want = ledger::desired_with(&e.ledger, &in_flight, &|b| {
        rates.get(&b).copied().unwrap_or(e.throttle_rate)
    });
    let all_done = in_flight.is_empty()
        && tasks
            .iter()
            .all(|t| t.state.finished() || finished.contains(&t.index));
    let changes = plan_throttles(&mut e, &want, &alive);
    resend.iter_mut().for_each(|t| t.attempts += 1);
    let mut journal: Vec<Task> = updates.clone();
    journal.extend(starting.iter().cloned());
    journal.extend(resend.iter().cloned());
    if !starting.is_empty() {
        e.event(
            now,
            format!(
                "starting {} tasks: {}",
                starting.len(),
                starting
                    .iter()
                    .take(5)
                    .map(|t| format!("{}-{}", t.topic, t.partition))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    for t in &resend {
        e.event(
            now,
            format!(
                "{}-{}: Kafka shows no reassignment and the replicas are {:?}, not {:?}: sending it again (attempt {})",
                t.topic,
                t.partition,
                partition(&md, t).map(|p| p.replicas.clone()).unwrap_or_default(),
                t.target,
                t.attempts
            ),
        );
    }
    if all_done {
        e.state = ExecState::Verifying;
        e.event(now, "every task finished: verifying");
    }
    if journal.is_empty() && changes.is_empty() && !all_done && e.events == events_before {
        return Ok(e);
    }
    let mut e = commit(j, &e, journal).await?;
    #[cfg(feature = "failpoints")]
    fail::fail_point!("executor::after_journal", |_| Err(StepError::Journal(
        "failpoint executor::after_journal".into()
    )));

    // 4. Act: cancel what lost its destination, throttles (read back),
    // preferred dirs, then reassignments.
    let journaled = e.clone();
    if !revert.is_empty() {
        for (tp, r) in k.alter_reassignments(&revert, false).await? {
            if let Err(err) = r {
                if !err.is_retriable() {
                    e.event(now, format!("cancelling {tp}: {err}"));
                }
            }
        }
    }
    let mut failed = Vec::new();
    if write_throttles(k, &mut e, &changes, now).await? {
        let send: Vec<&Task> = starting.iter().chain(resend.iter()).collect();
        soft.sent_at.extend(send.iter().map(|t| (t.index, now)));
        for (index, reason) in submit(k, &mut e, &send, now).await? {
            let mut t = send
                .iter()
                .find(|t| t.index == index)
                .map(|t| (*t).clone())
                .expect("a sent task");
            t.state = TaskState::Failed;
            t.finished_ms = now;
            t.reason = reason;
            failed.push(t);
        }
    }
    if e != journaled || !failed.is_empty() {
        e = commit(j, &e, failed).await?;
    }
    Ok(e)
}

/// A throttle key to write: the entry's index in the ledger and the value
/// the override must have (`None`: no override), also journaled as the
/// entry's `pending` value before it is written.
type Change = (usize, Option<String>);

/// Marks the ledger entries whose override must change (the value goes
/// in `written` before it is written: journal before action).
fn plan_throttles(
    e: &mut Execution,
    want: &BTreeMap<(guardian_proto::execution::ThrottleEntity, String), Option<String>>,
    alive: &BTreeSet<i32>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (i, entry) in e.ledger.iter_mut().enumerate() {
        if matches!(entry.state, LedgerState::Wildcard | LedgerState::Conflict) {
            continue;
        }
        if let guardian_proto::execution::ThrottleEntity::Broker(b) = entry.entity {
            if !alive.contains(&b) {
                continue; // a dead broker's rate is changed when it returns
            }
        }
        let Some(v) = want.get(&(entry.entity.clone(), entry.key.clone())) else {
            continue;
        };
        let restoring = *v == entry.prior;
        // A pending write may or may not have landed: settled only once
        // read back.
        let settled = entry.pending.is_none()
            && match entry.state {
                LedgerState::Applied => {
                    same_value(&entry.key, entry.written.as_deref(), v.as_deref())
                }
                LedgerState::Recorded | LedgerState::Restored => restoring,
                _ => true,
            };
        if settled {
            continue;
        }
        entry.pending = Some(guardian_proto::execution::Pending { value: v.clone() });
        if !restoring {
            entry.state = LedgerState::Applied;
        }
        out.push((i, v.clone()));
    }
    out
}

/// Writes the changes and reads each back. `false` if one did not read
/// back (its `pending` value stays, so the next step writes it again;
/// nothing starts until it reads back).
async fn write_throttles<K: KafkaAdmin>(
    k: &K,
    e: &mut Execution,
    changes: &[Change],
    now: u64,
) -> Result<bool, StepError> {
    use guardian_proto::execution::ThrottleEntity;
    // One describe and one IncrementalAlterConfigs per resource.
    let mut by_entity: BTreeMap<ThrottleEntity, Vec<(usize, Option<String>)>> = BTreeMap::new();
    for (i, v) in changes {
        by_entity
            .entry(e.ledger[*i].entity.clone())
            .or_default()
            .push((*i, v.clone()));
    }
    let mut to_check: BTreeMap<ThrottleEntity, Vec<(usize, Option<String>)>> = BTreeMap::new();
    for (ent, items) in &by_entity {
        let res = resource(ent);
        let keys: Vec<&str> = items
            .iter()
            .map(|(i, _)| e.ledger[*i].key.as_str())
            .collect();
        let described = k.describe_configs(&res, &keys).await?;
        let mut ops = Vec::new();
        for (i, v) in items {
            let entry = e.ledger[*i].clone();
            let cur = override_of(&described, &entry.key, ent);
            // Only a value that is the operator's prior or Guardian's own
            // (the last read back, or one journaled as pending, which may
            // have landed before a crash) may be replaced; anything else was
            // set by someone mid-run.
            let pending = entry.pending.clone().and_then(|p| p.value);
            let expected = [
                entry.prior.as_deref(),
                entry.written.as_deref(),
                pending.as_deref(),
                v.as_deref(),
            ]
            .iter()
            .any(|x| same_value(&entry.key, cur.as_deref(), *x));
            if !expected {
                e.ledger[*i].state = LedgerState::Conflict;
                e.ledger[*i].pending = None;
                e.event(
                    now,
                    format!(
                        "{} {} changed by someone else to {:?} during the run: left alone",
                        entry.entity, entry.key, cur
                    ),
                );
                continue;
            }
            if !same_value(&entry.key, cur.as_deref(), v.as_deref()) {
                ops.push(match v {
                    Some(v) => AlterConfigOp::Set(entry.key.clone(), v.clone()),
                    None => AlterConfigOp::Delete(entry.key.clone()),
                });
            }
            to_check
                .entry(ent.clone())
                .or_default()
                .push((*i, v.clone()));
        }
        if !ops.is_empty() {
            k.alter_configs(&res, &ops).await?;
        }
    }
    // Read back from each broker (the describe of a broker's config is
    // routed to it): moves wait until every override is in force. KRaft
    // applies a change on a broker once the metadata record reaches it, so
    // poll all of them for a short while before giving up.
    let mut waited = 0;
    loop {
        let mut left = BTreeMap::new();
        for (ent, items) in std::mem::take(&mut to_check) {
            let keys: Vec<&str> = items
                .iter()
                .map(|(i, _)| e.ledger[*i].key.as_str())
                .collect();
            let back = k.describe_configs(&resource(&ent), &keys).await?;
            let mut rest = Vec::new();
            for (i, v) in items {
                let key = e.ledger[i].key.clone();
                let got = override_of(&back, &key, &ent);
                if same_value(&key, got.as_deref(), v.as_deref()) {
                    let l = &mut e.ledger[i];
                    l.pending = None;
                    if v == l.prior {
                        l.state = LedgerState::Restored;
                    } else {
                        l.written = v;
                    }
                } else if waited >= READ_BACK_MS {
                    e.event(
                        now,
                        format!(
                            "{ent} {key}: wrote {v:?}, read back {got:?} after {READ_BACK_MS} ms; retrying"
                        ),
                    );
                } else {
                    rest.push((i, v));
                }
            }
            if !rest.is_empty() {
                left.insert(ent, rest);
            }
        }
        if left.is_empty() {
            break;
        }
        to_check = left;
        tokio::time::sleep(std::time::Duration::from_millis(READ_BACK_POLL_MS)).await;
        waited += READ_BACK_POLL_MS;
    }
    Ok(e.ledger.iter().all(|l| l.pending.is_none()))
}

/// Sends the tasks' Kafka requests: preferred dirs on the brokers gaining
/// a replica (recorded before the replica exists, so it lands once), the
/// reassignments (desired leader first), and intra-broker dir moves.
/// Returns the tasks Kafka refused outright, with why.
async fn submit<K: KafkaAdmin>(
    k: &K,
    e: &mut Execution,
    tasks: &[&Task],
    now: u64,
) -> Result<Vec<(u32, String)>, StepError> {
    let mut refused = Vec::new();
    let index_of = |tp: &TopicPartition| {
        tasks
            .iter()
            .find(|t| t.topic == tp.topic && t.partition == tp.partition)
            .map(|t| t.index)
    };
    let mut dir_moves: BTreeMap<i32, Vec<(TopicPartition, String)>> = BTreeMap::new();
    let mut targets = Vec::new();
    for t in tasks {
        for (b, dir) in &t.dirs {
            dir_moves.entry(*b).or_default().push((tp(t), dir.clone()));
        }
        if t.original != t.target {
            targets.push((tp(t), Some(t.target.clone())));
        }
    }
    for (b, moves) in &dir_moves {
        for (tp, r) in k.alter_replica_log_dirs(*b, moves).await? {
            if let Err(err) = r {
                e.event(now, format!("{tp}: log dir on broker {b}: {err}"));
            }
        }
    }
    for batch in targets.chunks(REASSIGN_BATCH) {
        for (tp, r) in k.alter_reassignments(batch, false).await? {
            match r {
                Err(err) if !err.is_retriable() => {
                    e.event(now, format!("{tp}: reassignment refused: {err}"));
                    if let Some(i) = index_of(&tp) {
                        refused.push((i, format!("Kafka refused the reassignment: {err}")));
                    }
                }
                Err(err) => e.event(now, format!("{tp}: {err}; sent again next step")),
                Ok(()) => {}
            }
        }
    }
    Ok(refused)
}

/// Cancel: reassignments in flight reverted (null target), dir copies
/// re-targeted to where the replica is, every throttle restored.
async fn cancel<K: KafkaAdmin, J: Journal>(
    k: &K,
    j: &J,
    mut e: Execution,
    tasks: &[Task],
    now: u64,
) -> Result<Execution, StepError> {
    let moving: BTreeSet<(String, i32)> = k
        .list_reassignments(&[])
        .await?
        .into_iter()
        .map(|r| (r.topic, r.partition))
        .collect();
    let mut updates = Vec::new();
    let mut revert = Vec::new();
    for t in tasks.iter().filter(|t| !t.state.finished()) {
        if t.state == TaskState::Submitted && moving.contains(&(t.topic.clone(), t.partition)) {
            revert.push((tp(t), None));
        }
        let mut t = t.clone();
        t.state = TaskState::Cancelled;
        t.finished_ms = now;
        updates.push(t);
    }
    if !revert.is_empty() {
        for (tp, r) in k.alter_reassignments(&revert, false).await? {
            if let Err(err) = r {
                if !err.is_retriable() {
                    e.event(now, format!("cancelling {tp}: {err}"));
                }
            }
        }
    }
    // Dir copies: move each replica back to the dir it is in.
    let md = k.metadata().await?;
    let alive: BTreeSet<i32> = md.brokers.iter().map(|b| b.id).collect();
    for b in tasks
        .iter()
        .filter(|t| t.state == TaskState::Submitted)
        .flat_map(|t| t.dirs.iter().map(|(b, _)| *b))
        .filter(|b| alive.contains(b))
        .collect::<BTreeSet<_>>()
    {
        let mut back = Vec::new();
        for d in k.describe_log_dirs(b).await? {
            for r in d.replicas.iter().filter(|r| !r.is_future) {
                let has_future = tasks.iter().any(|t| {
                    t.state == TaskState::Submitted
                        && t.topic == r.topic
                        && t.partition == r.partition
                        && t.dirs.iter().any(|(x, _)| *x == b)
                });
                if has_future {
                    back.push((
                        TopicPartition {
                            topic: r.topic.clone(),
                            partition: r.partition,
                        },
                        d.path.clone(),
                    ));
                }
            }
        }
        if !back.is_empty() {
            k.alter_replica_log_dirs(b, &back).await?;
        }
    }
    let want = ledger::desired(&e.ledger, &[], e.throttle_rate);
    let changes = plan_throttles(&mut e, &want, &alive);
    e.state = ExecState::Verifying;
    e.reason = "cancelled by an operator".into();
    e.event(
        now,
        format!("cancelled: {} reassignments reverted", revert.len()),
    );
    let mut e = commit(j, &e, updates).await?;
    let journaled = e.clone();
    write_throttles(k, &mut e, &changes, now).await?;
    if e != journaled {
        e = commit(j, &e, Vec::new()).await?;
    }
    Ok(e)
}

/// Verifying: every throttle restored (a dead broker's when it is back),
/// then done — or cancelled, when that is how it got here.
async fn verify<K: KafkaAdmin, J: Journal>(
    k: &K,
    j: &J,
    mut e: Execution,
    tasks: &[Task],
    now: u64,
) -> Result<Execution, StepError> {
    let md = k.metadata().await?;
    let alive: BTreeSet<i32> = md.brokers.iter().map(|b| b.id).collect();
    let before = e.clone();
    let want = ledger::desired(&e.ledger, &[], e.throttle_rate);
    let changes = plan_throttles(&mut e, &want, &alive);
    if !changes.is_empty() {
        write_throttles(k, &mut e, &changes, now).await?;
    }
    let pending = e
        .ledger
        .iter()
        .filter(|l| {
            !matches!(l.state, LedgerState::Conflict | LedgerState::Wildcard)
                && (l.state == LedgerState::Applied || l.pending.is_some())
        })
        .count();
    if pending > 0 {
        // Journal what was restored; the rest (a dead broker's) waits.
        if e == before {
            return Ok(e);
        }
        return commit(j, &e, Vec::new()).await;
    }
    let count = |s: TaskState| tasks.iter().filter(|t| t.state == s).count();
    let (done, dropped, failed) = (
        count(TaskState::Done),
        count(TaskState::Dropped),
        count(TaskState::Failed),
    );
    e.finished_ms = now;
    e.state = if e.cancel_requested {
        ExecState::Cancelled
    } else if failed > 0 {
        e.reason = format!("{failed} tasks failed (see their reasons)");
        ExecState::Failed
    } else {
        ExecState::Done
    };
    e.event(
        now,
        format!(
            "{}: {done} tasks done, {dropped} dropped, {failed} failed; throttles restored",
            e.state.name()
        ),
    );
    commit(j, &e, Vec::new()).await
}
