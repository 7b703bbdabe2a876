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
//! **Exactly-once output** ([`WorkerConfig::transactional_id_prefix`]):
//! each input partition gets its own transactional producer, with
//! `transactional.id = PREFIX.CLUSTER.GROUP.TOPIC.PARTITION`, so whoever
//! runs a partition uses the same id. On start the worker calls
//! `init_transactions` *before* it reads the committed offset: Kafka bumps
//! the id's producer epoch, which fences any earlier owner (a zombie's
//! sends and commits fail from then on) and aborts its open transaction.
//! The handler writes its results through [`Record::output`] into the
//! partition's open transaction; every commit (periodic, release, idle
//! re-commit, shutdown) is `send_offsets_to_transaction` (the input
//! offset, metadata `worker,epoch`) plus `commit_transaction`, so outputs
//! and the input offset land together or not at all. Consumers read with
//! `isolation.level=read_committed` (the committed-offset fetch then waits
//! for pending transactional offsets). A transaction that fails is aborted
//! and the partition restarts from its committed offset: its records are
//! processed again, but a `read_committed` reader sees each output once.
//! The cost is one producer (a few librdkafka threads and connections) per
//! running partition.
//!
//! **TLS**: with [`WorkerConfig::ca_pem`] the worker speaks TLS to the
//! controller's admin port and trusts only that CA; the token goes in
//! each call's `authorization` header (the scheduler needs the operator
//! role). Channels are kept per controller node and reused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardian_proto::pb;
use guardian_proto::pb::consumer_scheduler_client::ConsumerSchedulerClient;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

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
    /// In exactly-once mode, the input partition's open transaction:
    /// what is sent here is committed together with this record's offset.
    pub output: Option<&'a Output<'a>>,
}

/// The transactional producer of one input partition (exactly-once mode).
pub struct Output<'a> {
    producer: &'a BaseProducer,
}

impl Output<'_> {
    /// Sends a record inside the partition's open transaction (waits while
    /// the producer's queue is full). It becomes visible to
    /// `read_committed` readers only with the input offset's commit.
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let mut rec = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(10));
                    rec = r;
                }
                Err((e, _)) => anyhow::bail!("send to {topic}: {e}"),
            }
        }
    }
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
    /// Speak TLS to the controller, trusting these CA certificate(s) (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Exactly-once mode: one transactional producer per input partition,
    /// `transactional.id = PREFIX.CLUSTER.GROUP.TOPIC.PARTITION` (see the
    /// crate docs).
    pub transactional_id_prefix: Option<String>,
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
    tls: Option<ClientTlsConfig>,
    /// One lazily connected channel per controller node, reused.
    channels: BTreeMap<String, Channel>,
}

impl Scheduler {
    fn new(cfg: &WorkerConfig) -> Self {
        Self {
            endpoints: cfg.endpoints.clone(),
            token: cfg.token.clone(),
            current: 0,
            preferred: None,
            tls: cfg
                .ca_pem
                .as_ref()
                .map(|ca| ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca))),
            channels: BTreeMap::new(),
        }
    }

    fn channel(&mut self, target: &str) -> Result<Channel, tonic::Status> {
        if let Some(c) = self.channels.get(target) {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut ep = Endpoint::from_shared(format!("{scheme}://{target}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("endpoint {target}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            ep = ep
                .tls_config(tls.clone())
                .map_err(|e| tonic::Status::invalid_argument(format!("tls for {target}: {e}")))?;
        }
        let c = ep.connect_lazy();
        self.channels.insert(target.to_string(), c.clone());
        Ok(c)
    }

    async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, tonic::Status>
    where
        F: Fn(ConsumerSchedulerClient<Channel>, Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = tonic::Status::unavailable("no controller endpoint");
        for _ in 0..self.endpoints.len() * 2 {
            let target = self
                .preferred
                .clone()
                .unwrap_or_else(|| self.endpoints[self.current % self.endpoints.len()].clone());
            let ch = self.channel(&target)?;
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
        if self.cfg.endpoints.is_empty() {
            anyhow::bail!("no controller endpoint");
        }
        let mut sched = Scheduler::new(&self.cfg);
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
    if cfg.transactional_id_prefix.is_some() {
        // Inputs that are themselves transactional outputs; and the
        // committed-offset fetch waits for pending transactional offsets.
        c.set("isolation.level", "read_committed");
    }
    for (k, v) in &cfg.kafka {
        c.set(k, v);
    }
    Ok(c.create()?)
}

/// One input partition's transactional producer, with a transaction open.
struct Txn {
    producer: BaseProducer,
}

/// The transactional id of an input partition: the same on every worker.
pub fn transactional_id(prefix: &str, p: &Part) -> String {
    format!("{prefix}.{}.{}.{}.{}", p.0, p.2, p.1, p.3)
}

const TXN_TIMEOUT: Duration = Duration::from_secs(10);

impl Txn {
    /// Creates the producer and fences every earlier owner of the id
    /// (`init_transactions` aborts its open transaction), then opens one.
    fn start(
        cfg: &WorkerConfig,
        bootstrap: &[String],
        prefix: &str,
        p: &Part,
    ) -> anyhow::Result<Self> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap.join(","))
            .set("transactional.id", transactional_id(prefix, p))
            .set("client.id", format!("guardian-worker-{}", cfg.id));
        for (k, v) in &cfg.kafka {
            // Consumer settings do not apply to the producer.
            if !CONSUMER_ONLY.contains(&k.as_str()) {
                c.set(k, v);
            }
        }
        let producer: BaseProducer = c.create()?;
        producer.init_transactions(TXN_TIMEOUT)?;
        producer.begin_transaction()?;
        Ok(Self { producer })
    }

    /// Commits `offsets` (with `worker,epoch`) and the outputs sent since
    /// the last commit in one transaction; opens the next when `reopen`.
    /// On failure the transaction is aborted.
    fn commit(
        &self,
        c: &BaseConsumer,
        tpl: &TopicPartitionList,
        reopen: bool,
    ) -> anyhow::Result<()> {
        let cgm = c
            .group_metadata()
            .ok_or_else(|| anyhow::anyhow!("the consumer has no group metadata"))?;
        let r = self
            .producer
            .send_offsets_to_transaction(tpl, &cgm, TXN_TIMEOUT)
            .and_then(|()| self.producer.commit_transaction(TXN_TIMEOUT));
        if let Err(e) = r {
            self.abort();
            anyhow::bail!("transaction: {e}");
        }
        if reopen {
            self.producer.begin_transaction()?;
        }
        Ok(())
    }

    fn abort(&self) {
        if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
            tracing::debug!(error = %e, "abort_transaction");
        }
    }
}

/// Consumer properties a worker's `kafka` settings may hold that a
/// producer would warn about.
const CONSUMER_ONLY: &[&str] = &[
    "auto.offset.reset",
    "isolation.level",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "max.poll.interval.ms",
    "session.timeout.ms",
    "group.id",
];

/// The poll thread's state: consumers, running partitions, offsets.
struct Runner<'a> {
    cfg: &'a WorkerConfig,
    shared: &'a Mutex<Shared>,
    changed: &'a tokio::sync::Notify,
    consumers: BTreeMap<(String, String), BaseConsumer>,
    /// The next offset to commit per running partition (None: nothing
    /// processed since it started).
    next: BTreeMap<Part, Option<i64>>,
    /// What was last committed per running partition, and when.
    committed: BTreeMap<Part, (i64, Instant)>,
    /// Exactly-once mode: the transaction per running partition.
    txns: BTreeMap<Part, Txn>,
}

fn group_key(p: &Part) -> (String, String) {
    (p.0.clone(), p.2.clone())
}

impl Runner<'_> {
    /// Commits `offsets` (all of one consumer's partitions) synchronously
    /// with metadata `worker,epoch`: the partitions whose commit landed.
    /// In exactly-once mode each partition's transaction commits; one that
    /// fails is aborted and the partition is restarted (returned in `lost`).
    fn commit(
        &self,
        c: &BaseConsumer,
        epoch: u64,
        offsets: &[(&Part, i64)],
        reopen: bool,
        lost: &mut Vec<Part>,
    ) -> Vec<Part> {
        let tpl = offsets_tpl(&self.cfg.id, epoch, offsets);
        if self.cfg.transactional_id_prefix.is_none() {
            return match c.commit(&tpl, CommitMode::Sync) {
                Ok(()) => offsets.iter().map(|(p, _)| (*p).clone()).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "commit failed");
                    Vec::new()
                }
            };
        }
        let mut done = Vec::new();
        for (p, o) in offsets {
            let Some(t) = self.txns.get(*p) else {
                continue;
            };
            match t.commit(c, &offsets_tpl(&self.cfg.id, epoch, &[(p, *o)]), reopen) {
                Ok(()) => done.push((*p).clone()),
                Err(e) => {
                    tracing::warn!(error = %e, topic = %p.1, partition = p.3, "commit failed: restarting the partition from its committed offset");
                    lost.push((*p).clone());
                }
            }
        }
        done
    }

    /// Stops a running partition: commits it first unless `fenced` (then
    /// its open transaction, if any, is aborted), unassigns it and reports
    /// it released.
    fn stop(
        &mut self,
        p: &Part,
        why: Option<&'static str>,
        epoch: u64,
        on_commit: &mut impl FnMut(&Commit),
    ) {
        let offset = self.next.remove(p).flatten();
        self.committed.remove(p);
        if let Some(c) = self.consumers.get(&group_key(p)) {
            match (offset, why) {
                // One path for both modes: a failed transaction is
                // aborted inside `commit`.
                (Some(o), Some(why)) => {
                    let at_ms = now_ms();
                    if !self
                        .commit(c, epoch, &[(p, o)], false, &mut Vec::new())
                        .is_empty()
                    {
                        on_commit(&Commit {
                            part: p.clone(),
                            offset: o,
                            epoch,
                            why,
                            at_ms,
                        });
                    }
                }
                // Nothing to commit, or fenced: what is open is aborted.
                _ => {
                    if let Some(t) = self.txns.get(p) {
                        t.abort();
                    }
                }
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&p.1, p.3);
            if let Err(e) = c.incremental_unassign(&tpl) {
                tracing::warn!(error = %e, topic = %p.1, partition = p.3, "incremental_unassign failed");
            }
        }
        self.txns.remove(p);
        lock(self.shared).running.remove(p);
        self.changed.notify_one();
    }

    /// The consumer of `p`'s (cluster, group), created on first use.
    fn consumer(&mut self, p: &Part, bootstrap: &[String]) -> Option<&BaseConsumer> {
        let key = group_key(p);
        if !self.consumers.contains_key(&key) {
            match consumer_for(self.cfg, bootstrap, &p.2) {
                Ok(c) => {
                    self.consumers.insert(key.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "creating a consumer failed");
                    return None;
                }
            }
        }
        self.consumers.get(&key)
    }

    /// Starts `p` from its committed offset (exactly-once: after fencing
    /// every earlier owner of its transactional id).
    fn start(&mut self, p: &Part, bootstrap: &[String], epoch: u64) {
        let txn = match &self.cfg.transactional_id_prefix {
            Some(prefix) => match Txn::start(self.cfg, bootstrap, prefix, p) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, topic = %p.1, partition = p.3, "init_transactions failed");
                    return;
                }
            },
            None => None,
        };
        let Some(c) = self.consumer(p, bootstrap) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        if let Err(e) = tpl.add_partition_offset(&p.1, p.3, Offset::Stored) {
            tracing::warn!(error = %e, "bad partition");
            return;
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
                return;
            }
        };
        if let Err(e) = c.incremental_assign(&tpl) {
            tracing::warn!(error = %e, topic = %p.1, partition = p.3, "incremental_assign failed");
            return;
        }
        self.next.insert(p.clone(), start);
        if let Some(o) = start {
            self.committed.insert(p.clone(), (o, Instant::now()));
        }
        if let Some(t) = txn {
            self.txns.insert(p.clone(), t);
        }
        lock(self.shared).running.insert(p.clone());
        self.changed.notify_one();
    }
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
    let mut r = Runner {
        cfg,
        shared,
        changed,
        consumers: BTreeMap::new(),
        next: BTreeMap::new(),
        committed: BTreeMap::new(),
        txns: BTreeMap::new(),
    };
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
        let running: BTreeSet<Part> = r.next.keys().cloned().collect();
        // Stop: commit (unless fenced), unassign, report released.
        let stopping: Vec<Part> = if stop {
            running.iter().cloned().collect()
        } else {
            running.difference(&desired).cloned().collect()
        };
        for p in stopping {
            let why = if stop { "shutdown" } else { "release" };
            let why = (!fenced && in_lease()).then_some(why);
            r.stop(&p, why, epoch, on_commit);
        }
        if stop {
            return;
        }
        // Start what is newly allowed, from the committed offset.
        for p in desired.difference(&running) {
            if let Some(bootstrap) = clusters.get(&p.0) {
                r.start(p, bootstrap, epoch);
            }
        }
        // Prepare for what comes next: a consumer for the group, connected
        // to the cluster and the group's coordinator (a first connection
        // and coordinator lookup cost librdkafka about a second).
        if !fenced {
            for p in &pending {
                if r.consumers.contains_key(&group_key(p)) {
                    continue;
                }
                let Some(bootstrap) = clusters.get(&p.0) else {
                    continue;
                };
                if let Some(c) = r.consumer(p, bootstrap) {
                    let _ = c.fetch_metadata(Some(&p.1), Duration::from_secs(5));
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition(&p.1, p.3);
                    let _ = c.committed_offsets(tpl, Duration::from_secs(5));
                }
            }
        }
        if r.consumers.is_empty() {
            // Nothing to poll: wait for an answer from the controller.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        // Poll each consumer briefly; process records of running partitions.
        let slice = Duration::from_millis((50 / r.consumers.len().max(1)) as u64)
            .max(Duration::from_millis(5));
        let mut cpu: BTreeMap<Part, f64> = BTreeMap::new();
        for ((cluster, group), c) in &r.consumers {
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
                        let Some(slot) = r.next.get_mut(&p) else {
                            continue; // released meanwhile
                        };
                        let output = r.txns.get(&p).map(|t| Output {
                            producer: &t.producer,
                        });
                        let t0 = thread_cpu();
                        handler(&Record {
                            cluster,
                            group,
                            topic: m.topic(),
                            partition: m.partition(),
                            offset: m.offset(),
                            key: m.key(),
                            payload: m.payload(),
                            output: output.as_ref(),
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
        for t in r.txns.values() {
            // Delivery reports of the outputs.
            t.producer.poll(Duration::ZERO);
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
            let mut lost = Vec::new();
            let mut landed: Vec<(Part, i64)> = Vec::new();
            for ((cluster, group), c) in &r.consumers {
                let todo: Vec<(&Part, i64)> = r
                    .next
                    .iter()
                    .filter(|(p, _)| &p.0 == cluster && &p.2 == group)
                    .filter_map(|(p, o)| o.map(|o| (p, o)))
                    .filter(|(p, o)| {
                        r.committed
                            .get(*p)
                            .is_none_or(|(c, at)| c != o || at.elapsed() >= cfg.recommit_interval)
                    })
                    .collect();
                if todo.is_empty() || !in_lease() {
                    continue;
                }
                let at_ms = now_ms();
                let done = r.commit(c, epoch, &todo, true, &mut lost);
                for (p, o) in todo {
                    if !done.contains(p) {
                        continue;
                    }
                    let why = if r.committed.get(p).is_some_and(|(c, _)| *c == o) {
                        "recommit"
                    } else {
                        "periodic"
                    };
                    landed.push((p.clone(), o));
                    on_commit(&Commit {
                        part: p.clone(),
                        offset: o,
                        epoch,
                        why,
                        at_ms,
                    });
                }
            }
            for (p, o) in landed {
                r.committed.insert(p, (o, Instant::now()));
            }
            // A failed transaction: its outputs are aborted, so the
            // partition starts again from its committed offset.
            for p in lost {
                r.stop(&p, None, epoch, on_commit);
            }
        }
    }
}

/// `offsets` as a list with metadata `worker,epoch` on each.
fn offsets_tpl(worker: &str, epoch: u64, offsets: &[(&Part, i64)]) -> TopicPartitionList {
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
    tpl
}
