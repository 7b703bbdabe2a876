//! `guardian-consumer`: the worker side of Guardian's consumer scheduling,
//! a library a worker application embeds (and the demo `guardian-worker`).
//!
//! A [`Worker`] joins a pool on the controller (`ConsumerScheduler`
//! gRPC, following the leader), heartbeats every `heartbeat_ms` with the
//! partitions it runs and the CPU it spent on each, and runs exactly the
//! partitions the answer lists:
//!
//! - **start**: rdkafka `incremental_assign` from the group's committed
//!   offset — never `subscribe()` (no group membership, so no rebalance
//!   ever runs) and never a whole `assign()` (which would restart every
//!   unchanged partition);
//! - **stop** (a partition no longer in the answer): it is not processed
//!   further, `last processed + 1` is committed synchronously with
//!   metadata `worker,epoch`, it is `incremental_unassign`ed, and the next
//!   heartbeat leaves it out of `running` — the release the controller
//!   waits for before the new owner starts;
//! - **fence**: no successful heartbeat for `lease_ms` (measured here,
//!   from the last success) stops every partition *without* committing —
//!   the controller hands them on only after the lease and a margin.
//!
//! - **lease in the consumer thread**: every commit is made only while the
//!   lease runs (`now < last successful heartbeat + lease_ms`, monotonic
//!   clock, which runs on while the process is stopped), so a worker that
//!   wakes up from a pause commits nothing before it has heard from the
//!   controller again;
//! - **start check**: a newly started partition's committed offset and its
//!   metadata are read; a commit from a later epoch than this worker's
//!   plan is logged (this worker's plan is stale), and the offset seeds
//!   the idle re-commit;
//! - **idle re-commit**: unchanged offsets are committed again every
//!   `recommit_interval`, so an idle partition's offset does not expire
//!   (`offsets.retention.minutes`).
//!
//! Auto-commit and auto offset store are off; `auto.offset.reset` is
//! `none` unless the worker's Kafka config says otherwise (a missing
//! offset is an error to alert on, not a silent reset).
//!
//! Records are processed on one thread that polls one `BaseConsumer` per
//! (cluster, group); CPU time per partition is the thread's CPU clock
//! around the handler.
//!
//! Not yet: TLS to the controller, transactional (exactly-once) output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardian_proto::pb;
use guardian_proto::pb::consumer_scheduler_client::ConsumerSchedulerClient;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// (cluster, topic, group, partition).
pub type Part = (String, String, String, i32);

/// One record handed to the handler.
pub struct Record<'a> {
    pub cluster: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// A commit the worker made (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub part: Part,
    /// The next offset to consume (last processed + 1).
    pub offset: i64,
    pub epoch: u64,
    /// `release` (handoff), `periodic`, `recommit` (unchanged, idle) or
    /// `shutdown`.
    pub why: &'static str,
    /// Wall clock when the commit was sent, ms since the epoch.
    pub at_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the worker needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Controller admin endpoints (any node; the leader is followed).
    pub endpoints: Vec<String>,
    pub token: Option<String>,
    pub id: String,
    pub pool: String,
    pub capacity: f64,
    pub labels: BTreeMap<String, String>,
    /// Extra rdkafka settings for every consumer (e.g.
    /// `auto.offset.reset=earliest`).
    pub kafka: BTreeMap<String, String>,
    /// Processed offsets are committed this often.
    pub commit_interval: Duration,
    /// Unchanged offsets are committed again this often (idle partitions'
    /// offsets must not expire).
    pub recommit_interval: Duration,
    /// Report this CPU (cores) for every running partition instead of
    /// the measured one (deterministic plans in tests).
    pub fixed_cpu: Option<f64>,
}

#[derive(Default)]
struct Shared {
    /// What the controller's last answer allows.
    desired: BTreeSet<Part>,
    /// Planned here, still held by the previous owner: prepare.
    pending: BTreeSet<Part>,
    clusters: BTreeMap<String, Vec<String>>,
    epoch: u64,
    /// The lease lapsed: stop everything, commit nothing.
    fenced: bool,
    /// The lease runs until then (last successful heartbeat + lease).
    lease_until: Option<Instant>,
    /// What the consumer thread runs now.
    running: BTreeSet<Part>,
    /// CPU seconds per partition since the last heartbeat.
    cpu: BTreeMap<Part, f64>,
    stop: bool,
}

/// A worker: [`Worker::run`] until cancelled.
pub struct Worker {
    cfg: WorkerConfig,
    shared: Arc<Mutex<Shared>>,
    /// The poll thread started or stopped a partition: heartbeat now (a
    /// release reaches the controller at once, and with it the new owner).
    changed: Arc<tokio::sync::Notify>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The leader-following gRPC client of `ConsumerScheduler`.
struct Scheduler {
    endpoints: Vec<String>,
    token: Option<String>,
    current: usize,
    preferred: Option<String>,
}

impl Scheduler {
    async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, tonic::Status>
    where
        F: Fn(ConsumerSchedulerClient<tonic::transport::Channel>, Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = tonic::Status::unavailable("no controller endpoint");
        for _ in 0..self.endpoints.len() * 2 {
            let target = self
                .preferred
                .clone()
                .unwrap_or_else(|| self.endpoints[self.current % self.endpoints.len()].clone());
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
                .map_err(|e| tonic::Status::invalid_argument(format!("endpoint {target}: {e}")))?
                .connect_timeout(Duration::from_millis(500))
                .timeout(Duration::from_secs(5))
                .connect_lazy();
            match f(ConsumerSchedulerClient::new(ch), self.token.clone()).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(e) if e.code() == tonic::Code::Unavailable => {
                    let leader = e
                        .metadata()
                        .get("x-guardian-leader")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match leader {
                        Some(l) if Some(&l) != self.preferred.as_ref() => self.preferred = Some(l),
                        _ => {
                            self.preferred = None;
                            self.current += 1;
                        }
                    }
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

fn with_token<T>(msg: T, token: &Option<String>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        if let Ok(v) = format!("Bearer {t}").parse() {
            r.metadata_mut().insert("authorization", v);
        }
    }
    r
}

fn part_pb(p: &Part) -> pb::ConsumerPartition {
    pb::ConsumerPartition {
        cluster: p.0.clone(),
        topic: p.1.clone(),
        group: p.2.clone(),
        partition: p.3,
    }
}

impl Worker {
    pub fn new(cfg: WorkerConfig) -> Self {
        Self {
            cfg,
            shared: Arc::default(),
            changed: Arc::default(),
        }
    }

    /// Runs until `stop` is cancelled: then every partition is committed
    /// and released and the worker leaves its pool. `handler` sees every
    /// record of the partitions it runs; `on_commit` every commit made.
    pub async fn run<H, C>(
        self,
        mut handler: H,
        mut on_commit: C,
        stop: CancellationToken,
    ) -> anyhow::Result<()>
    where
        H: FnMut(&Record) + Send + 'static,
        C: FnMut(&Commit) + Send + 'static,
    {
        let mut sched = Scheduler {
            endpoints: self.cfg.endpoints.clone(),
            token: self.cfg.token.clone(),
            current: 0,
            preferred: None,
        };
        let join = pb::JoinRequest {
            worker_id: self.cfg.id.clone(),
            pool: self.cfg.pool.clone(),
            capacity: self.cfg.capacity,
            labels: self.cfg.labels.clone().into_iter().collect(),
        };
        let joined = loop {
            let j = join.clone();
            match sched
                .call(|mut c, t| {
                    let j = j.clone();
                    async move { c.join(with_token(j, &t)).await }
                })
                .await
            {
                Ok(r) => break r,
                Err(e) if e.code() == tonic::Code::Unavailable => {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                Err(e) => anyhow::bail!("join {}: {}", self.cfg.pool, e.message()),
            }
        };
        let mut heartbeat = Duration::from_millis(joined.heartbeat_ms.max(10));
        let mut lease = Duration::from_millis(joined.lease_ms.max(20));
        tracing::info!(worker = %self.cfg.id, pool = %self.cfg.pool, "joined");

        let shared = self.shared.clone();
        let changed = self.changed.clone();
        let cfg = self.cfg.clone();
        let thread = std::thread::Builder::new()
            .name("guardian-worker-poll".into())
            .spawn(move || poll_loop(&cfg, &shared, &changed, &mut handler, &mut on_commit))?;

        let mut last_ok = Instant::now();
        let mut window = Instant::now();
        loop {
            let (running, cpu) = {
                let mut s = lock(&self.shared);
                (s.running.clone(), std::mem::take(&mut s.cpu))
            };
            let secs = window.elapsed().as_secs_f64().max(1e-3);
            window = Instant::now();
            let stats: Vec<pb::PartitionStat> = running
                .iter()
                .map(|p| pb::PartitionStat {
                    partition: Some(part_pb(p)),
                    cpu_cores: self
                        .cfg
                        .fixed_cpu
                        .unwrap_or_else(|| cpu.get(p).copied().unwrap_or(0.0) / secs),
                    records_per_sec: 0.0,
                })
                .collect();
            let req = pb::HeartbeatRequest {
                worker_id: self.cfg.id.clone(),
                running: running.iter().map(part_pb).collect(),
                stats,
                // Long-poll: with nothing to change, the controller holds
                // the answer until this worker's assignment changes.
                // (Held at most 3 s: well inside the 5 s call timeout.)
                wait_ms: heartbeat.min(Duration::from_secs(3)).as_millis() as u64,
            };
            let sent = Instant::now();
            let mut again = false;
            let r = sched
                .call(|mut c, t| {
                    let req = req.clone();
                    async move { c.heartbeat(with_token(req, &t)).await }
                })
                .await;
            match r {
                Ok(a) => {
                    heartbeat = Duration::from_millis(a.heartbeat_ms.max(10));
                    lease = Duration::from_millis(a.lease_ms.max(20));
                    let mut s = lock(&self.shared);
                    // The lease counts from when the heartbeat was sent.
                    last_ok = sent;
                    s.lease_until = Some(sent + lease);
                    s.fenced = false;
                    s.epoch = a.epoch;
                    s.clusters = a
                        .clusters
                        .into_iter()
                        .map(|c| (c.cluster, c.bootstrap_servers))
                        .collect();
                    let desired: BTreeSet<Part> = a
                        .assigned
                        .into_iter()
                        .map(|p| (p.cluster, p.topic, p.group, p.partition))
                        .collect();
                    let pending: BTreeSet<Part> = a
                        .pending
                        .into_iter()
                        .map(|p| (p.cluster, p.topic, p.group, p.partition))
                        .collect();
                    // An answer that changed something: ask again at once
                    // (the controller holds the next one until the
                    // following change, e.g. the release of a pending
                    // partition).
                    again = desired != s.desired || pending != s.pending;
                    s.desired = desired;
                    s.pending = pending;
                }
                Err(e) if e.code() == tonic::Code::NotFound => {
                    // Declared gone (or never joined): join again.
                    let j = join.clone();
                    let _ = sched
                        .call(|mut c, t| {
                            let j = j.clone();
                            async move { c.join(with_token(j, &t)).await }
                        })
                        .await;
                }
                Err(e) => tracing::warn!(error = %e.message(), "heartbeat failed"),
            }
            if last_ok.elapsed() >= lease {
                let mut s = lock(&self.shared);
                if !s.fenced {
                    tracing::warn!(worker = %self.cfg.id, "lease lapsed: stopping every partition, committing nothing");
                }
                s.fenced = true;
                s.desired.clear();
            }
            // One heartbeat per period (a held answer used it up), or at
            // once after an answer that changed something or when the poll
            // thread started or stopped a partition.
            let pause = if again {
                Duration::ZERO
            } else {
                heartbeat.saturating_sub(sent.elapsed())
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        lock(&self.shared).stop = true;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        let leave = pb::LeaveRequest {
            worker_id: self.cfg.id.clone(),
        };
        let _ = sched
            .call(|mut c, t| {
                let l = leave.clone();
                async move { c.leave(with_token(l, &t)).await }
            })
            .await;
        Ok(())
    }
}

fn consumer_for(
    cfg: &WorkerConfig,
    bootstrap: &[String],
    group: &str,
) -> anyhow::Result<BaseConsumer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap.join(","))
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "none")
        .set("client.id", format!("guardian-worker-{}", cfg.id));
    for (k, v) in &cfg.kafka {
        c.set(k, v);
    }
    Ok(c.create()?)
}

/// The consumer thread: applies the desired set, polls, processes,
/// commits.
fn poll_loop<H, C>(
    cfg: &WorkerConfig,
    shared: &Mutex<Shared>,
    changed: &tokio::sync::Notify,
    handler: &mut H,
    on_commit: &mut C,
) where
    H: FnMut(&Record),
    C: FnMut(&Commit),
{
    let mut consumers: BTreeMap<(String, String), BaseConsumer> = BTreeMap::new();
    // The next offset to commit per running partition (None: nothing
    // processed since it started).
    let mut next: BTreeMap<Part, Option<i64>> = BTreeMap::new();
    // What was last committed per running partition, and when.
    let mut committed: BTreeMap<Part, (i64, Instant)> = BTreeMap::new();
    let mut last_commit = Instant::now();
    loop {
        let (mut desired, pending, fenced, stop, epoch, clusters, lease_until) = {
            let s = lock(shared);
            (
                s.desired.clone(),
                s.pending.clone(),
                s.fenced,
                s.stop,
                s.epoch,
                s.clusters.clone(),
                s.lease_until,
            )
        };
        // The lease, checked here too: the heartbeat task may not have
        // run yet after a pause.
        let in_lease = || lease_until.is_some_and(|d| Instant::now() < d);
        let fenced = fenced || !in_lease();
        if fenced {
            desired.clear();
        }
        let running: BTreeSet<Part> = next.keys().cloned().collect();
        // Stop: commit (unless fenced), unassign, report released.
        let stopping: Vec<Part> = if stop {
            running.iter().cloned().collect()
        } else {
            running.difference(&desired).cloned().collect()
        };
        for p in stopping {
            let offset = next.remove(&p).flatten();
            committed.remove(&p);
            if let Some(c) = consumers.get(&(p.0.clone(), p.2.clone())) {
                if let (Some(o), true) = (offset, !fenced && in_lease()) {
                    let why = if stop { "shutdown" } else { "release" };
                    let at_ms = now_ms();
                    if commit(c, &cfg.id, epoch, &[(&p, o)]) {
                        on_commit(&Commit {
                            part: p.clone(),
                            offset: o,
                            epoch,
                            why,
                            at_ms,
                        });
                    }
                }
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&p.1, p.3);
                if let Err(e) = c.incremental_unassign(&tpl) {
                    tracing::warn!(error = %e, topic = %p.1, partition = p.3, "incremental_unassign failed");
                }
            }
            lock(shared).running.remove(&p);
            changed.notify_one();
        }
        if stop {
            return;
        }
        // Start what is newly allowed, from the committed offset.
        for p in desired.difference(&running) {
            let Some(bootstrap) = clusters.get(&p.0) else {
                continue;
            };
            let key = (p.0.clone(), p.2.clone());
            if !consumers.contains_key(&key) {
                match consumer_for(cfg, bootstrap, &p.2) {
                    Ok(c) => {
                        consumers.insert(key.clone(), c);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "creating a consumer failed");
                        continue;
                    }
                }
            }
            let c = &consumers[&key];
            let mut tpl = TopicPartitionList::new();
            if let Err(e) = tpl.add_partition_offset(&p.1, p.3, Offset::Stored) {
                tracing::warn!(error = %e, "bad partition");
                continue;
            }
            // The committed offset and who committed it.
            let start = match c.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
                Ok(got) => got.elements().first().and_then(|e| match e.offset() {
                    Offset::Offset(o) => {
                        let meta = e.metadata().to_string();
                        let theirs = meta
                            .split_once(',')
                            .and_then(|(_, ep)| ep.parse::<u64>().ok());
                        if theirs.is_some_and(|t| t > epoch) {
                            tracing::warn!(
                                topic = %p.1, partition = p.3, commit = %meta, epoch,
                                "the last commit comes from a later plan than this worker's: its plan is stale"
                            );
                        }
                        Some(o)
                    }
                    _ => None,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, topic = %p.1, partition = p.3, "reading the committed offset failed");
                    continue;
                }
            };
            match c.incremental_assign(&tpl) {
                Ok(()) => {
                    next.insert(p.clone(), start);
                    if let Some(o) = start {
                        committed.insert(p.clone(), (o, Instant::now()));
                    }
                    lock(shared).running.insert(p.clone());
                    changed.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, topic = %p.1, partition = p.3, "incremental_assign failed")
                }
            }
        }
        // Prepare for what comes next: a consumer for the group, connected
        // to the cluster and the group's coordinator (a first connection
        // and coordinator lookup cost librdkafka about a second).
        if !fenced {
            for p in &pending {
                let key = (p.0.clone(), p.2.clone());
                if consumers.contains_key(&key) {
                    continue;
                }
                let Some(bootstrap) = clusters.get(&p.0) else {
                    continue;
                };
                match consumer_for(cfg, bootstrap, &p.2) {
                    Ok(c) => {
                        let _ = c.fetch_metadata(Some(&p.1), Duration::from_secs(5));
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(&p.1, p.3);
                        let _ = c.committed_offsets(tpl, Duration::from_secs(5));
                        consumers.insert(key, c);
                    }
                    Err(e) => tracing::warn!(error = %e, "creating a consumer failed"),
                }
            }
        }
        if consumers.is_empty() {
            // Nothing to poll: wait for an answer from the controller.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        // Poll each consumer briefly; process records of running partitions.
        let slice = Duration::from_millis((50 / consumers.len().max(1)) as u64)
            .max(Duration::from_millis(5));
        let mut cpu: BTreeMap<Part, f64> = BTreeMap::new();
        for ((cluster, group), c) in &consumers {
            let deadline = Instant::now() + slice;
            while let Some(m) = c.poll(deadline.saturating_duration_since(Instant::now())) {
                match m {
                    Ok(m) => {
                        let p: Part = (
                            cluster.clone(),
                            m.topic().to_string(),
                            group.clone(),
                            m.partition(),
                        );
                        let Some(slot) = next.get_mut(&p) else {
                            continue; // released meanwhile
                        };
                        let t0 = thread_cpu();
                        handler(&Record {
                            cluster,
                            group,
                            topic: m.topic(),
                            partition: m.partition(),
                            offset: m.offset(),
                            key: m.key(),
                            payload: m.payload(),
                        });
                        *cpu.entry(p).or_default() += thread_cpu() - t0;
                        *slot = Some(m.offset() + 1);
                    }
                    Err(e) => tracing::warn!(error = %e, "consumer error"),
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        if !cpu.is_empty() {
            let mut s = lock(shared);
            for (p, c) in cpu {
                *s.cpu.entry(p).or_default() += c;
            }
        }
        // Periodic commits of what was processed, and of idle offsets.
        if !fenced && last_commit.elapsed() >= cfg.commit_interval {
            last_commit = Instant::now();
            for ((cluster, group), c) in &consumers {
                let todo: Vec<(&Part, i64)> = next
                    .iter()
                    .filter(|(p, _)| &p.0 == cluster && &p.2 == group)
                    .filter_map(|(p, o)| o.map(|o| (p, o)))
                    .filter(|(p, o)| {
                        committed
                            .get(*p)
                            .is_none_or(|(c, at)| c != o || at.elapsed() >= cfg.recommit_interval)
                    })
                    .collect();
                if todo.is_empty() || !in_lease() {
                    continue;
                }
                let at_ms = now_ms();
                if commit(c, &cfg.id, epoch, &todo) {
                    for (p, o) in todo {
                        let why = if committed.get(p).is_some_and(|(c, _)| *c == o) {
                            "recommit"
                        } else {
                            "periodic"
                        };
                        committed.insert(p.clone(), (o, Instant::now()));
                        on_commit(&Commit {
                            part: p.clone(),
                            offset: o,
                            epoch,
                            why,
                            at_ms,
                        });
                    }
                }
            }
        }
    }
}

/// A synchronous commit of `offsets` with metadata `worker,epoch`.
fn commit(c: &BaseConsumer, worker: &str, epoch: u64, offsets: &[(&Part, i64)]) -> bool {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        match tpl.add_partition_offset(&p.1, p.3, Offset::Offset(*o)) {
            Ok(()) => {
                if let Some(mut e) = tpl.find_partition(&p.1, p.3) {
                    e.set_metadata(format!("{worker},{epoch}"));
                }
            }
            Err(e) => tracing::warn!(error = %e, "bad offset"),
        }
    }
    match c.commit(&tpl, CommitMode::Sync) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "commit failed");
            false
        }
    }
}
