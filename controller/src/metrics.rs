//! Prometheus metrics, `guardian_<subsystem>_<name>`, through
//! `prometheus-client`, served at `/metrics` on the node's HTTP port
//! (`http-listen`).
//!
//! Two kinds: events counted where they happen ([`METRICS`]: proposal and
//! read-barrier latency, collector pulls and rounds, plan time, decisions
//! by event kind — process-wide, one node per process), and state read at scrape
//! time from the node's handle (Raft term, leader, indexes; collector
//! staleness per cluster; executions and tasks by state, bytes moved and
//! remaining, active throttles; claims by state). Labels stay bounded: at
//! most cluster, state, kind or result — never a partition or a broker.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::consumers::Scheduler;
use crate::leader::collector::Collector;
use crate::raft::Controller;

type Labels = Vec<(String, String)>;

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// What is counted where it happens.
pub struct Metrics {
    pub raft_proposal_seconds: Histogram,
    pub raft_read_barrier_seconds: Histogram,
    /// `result`: ok | error.
    pub collector_pulls: Family<Labels, Counter>,
    pub collector_round_seconds: Histogram,
    pub planner_plan_seconds: Histogram,
    /// One governance round on one cluster, its Kafka calls included.
    pub governance_round_seconds: Histogram,
    /// The CPU part of that round: the throttle model built from the live
    /// spec, `plan_throttles`, and the claims it wants.
    pub governance_compute_seconds: Histogram,
    /// One consumer-scheduling plan (the planner alone).
    pub consumers_plan_seconds: Histogram,
    /// Decisions recorded in the event log, by kind (`throttle.set`,
    /// `throttle.renewed`, `throttle.removed`, `throttle.cannot`,
    /// `proposal`, `healing`, `execution`, `reporter`, …).
    pub events: Family<Labels, Counter>,
}

/// The process's counters and histograms.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    // 50 µs … ~1.6 s.
    raft_proposal_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
    raft_read_barrier_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
    collector_pulls: Family::default(),
    // 1 ms … ~65 s.
    collector_round_seconds: Histogram::new(exponential_buckets(1e-3, 2.0, 17)),
    planner_plan_seconds: Histogram::new(exponential_buckets(1e-3, 2.0, 17)),
    // 1 ms … ~65 s; 0.5 ms … ~16 s.
    governance_round_seconds: Histogram::new(exponential_buckets(1e-3, 2.0, 17)),
    governance_compute_seconds: Histogram::new(exponential_buckets(5e-4, 2.0, 16)),
    // 50 µs … ~1.6 s.
    consumers_plan_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 16)),
    events: Family::default(),
});

impl Metrics {
    pub fn pull(&self, ok: bool) {
        self.collector_pulls
            .get_or_create(&label("result", if ok { "ok" } else { "error" }))
            .inc();
    }

    pub fn event(&self, kind: &str) {
        self.events.get_or_create(&label("kind", kind)).inc();
    }
}

/// Seconds since `t`, for a histogram.
pub fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    g.set(v);
    reg.register(name, help, g);
}

fn family(reg: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, f64)>) {
    let f = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (l, v) in rows {
        f.get_or_create(&l).set(v);
    }
    reg.register(name, help, f);
}

/// The text exposition of every metric, state read now.
pub fn render(ctl: &Controller, collector: &Collector, consumers: &Scheduler) -> String {
    let mut reg = Registry::with_prefix("guardian");
    let m = &*METRICS;
    reg.register(
        "raft_proposal_seconds",
        "Time from a write's proposal to its commit and apply here",
        m.raft_proposal_seconds.clone(),
    );
    reg.register(
        "raft_read_barrier_seconds",
        "Time a linearizable read waits for its quorum-confirmed read index",
        m.raft_read_barrier_seconds.clone(),
    );
    reg.register(
        "collector_pulls",
        "Reporter snapshots pulled, by result",
        m.collector_pulls.clone(),
    );
    reg.register(
        "collector_round_seconds",
        "Time of one collection round over every reporter",
        m.collector_round_seconds.clone(),
    );
    reg.register(
        "planner_plan_seconds",
        "Time the balance planner took for one proposal",
        m.planner_plan_seconds.clone(),
    );
    reg.register(
        "governance_round_seconds",
        "Time of one governance round on one cluster, its Kafka calls included",
        m.governance_round_seconds.clone(),
    );
    reg.register(
        "governance_compute_seconds",
        "CPU part of one governance round on one cluster: throttle model, throttle plan, wanted claims",
        m.governance_compute_seconds.clone(),
    );
    reg.register(
        "consumers_plan_seconds",
        "Time the consumer planner took for one plan",
        m.consumers_plan_seconds.clone(),
    );
    let appended = &guardian_meta_store::store::APPENDED;
    let entries = Counter::<u64>::default();
    entries.inc_by(appended.entries.load(std::sync::atomic::Ordering::Relaxed));
    reg.register(
        "raft_log_appended_entries",
        "Raft log entries appended by this node's log store",
        entries,
    );
    let bytes = Counter::<u64>::default();
    bytes.inc_by(appended.bytes.load(std::sync::atomic::Ordering::Relaxed));
    reg.register(
        "raft_log_appended_bytes",
        "Encoded bytes of the Raft log entries appended by this node's log store",
        bytes,
    );
    reg.register(
        "events",
        "Decisions recorded in the event log (throttles set, renewed, removed; proposals; healing; execution steps; reporters), by kind",
        m.events.clone(),
    );

    let rm = ctl.raft.metrics().borrow().clone();
    gauge(
        &mut reg,
        "raft_term",
        "This node's current term",
        rm.current_term as f64,
    );
    gauge(
        &mut reg,
        "raft_leader_id",
        "The leader this node knows (0: none)",
        rm.current_leader.unwrap_or(0) as f64,
    );
    gauge(
        &mut reg,
        "raft_is_leader",
        "1 when this node leads",
        (rm.current_leader == Some(rm.id)) as u8 as f64,
    );
    gauge(
        &mut reg,
        "raft_last_log_index",
        "The last log index this node holds",
        rm.last_log_index.unwrap_or(0) as f64,
    );
    gauge(
        &mut reg,
        "raft_commit_index",
        "The last log index known committed (this node's applied index on a follower)",
        rm.last_applied.map_or(0, |l| l.index) as f64,
    );
    gauge(
        &mut reg,
        "raft_applied_index",
        "The last log index applied to this node's state",
        rm.last_applied.map_or(0, |l| l.index) as f64,
    );

    // Collector staleness per cluster (the leader's view; empty elsewhere).
    let now = crate::time::now_ms();
    let (mut brokers, mut stale, mut age, mut fill) = (vec![], vec![], vec![], vec![]);
    {
        let load = collector.state.read().unwrap_or_else(|p| p.into_inner());
        let mut per: std::collections::BTreeMap<&str, (u32, u32, u64, f64)> = Default::default();
        for ((cluster, _), b) in &load.brokers {
            let e = per.entry(cluster.as_str()).or_default();
            e.0 += 1;
            if b.error.is_some() {
                e.1 += 1;
            }
            let a = b.last_ok_ms.map_or(u64::MAX, |t| now.saturating_sub(t));
            e.2 = e.2.max(a);
            for d in b.disks.iter().filter(|d| d.capacity_bytes > 0) {
                let f = 1.0 - d.free_bytes as f64 / d.capacity_bytes as f64;
                e.3 = e.3.max(f);
            }
        }
        for (c, (n, s, a, f)) in per {
            brokers.push((label("cluster", c), n as f64));
            stale.push((label("cluster", c), s as f64));
            let a = if a == u64::MAX {
                f64::INFINITY
            } else {
                a as f64 / 1e3
            };
            age.push((label("cluster", c), a));
            fill.push((label("cluster", c), f));
        }
    }
    family(
        &mut reg,
        "collector_disk_fill_max",
        "The fullest log dir's used fraction (0..1), per cluster",
        fill,
    );
    family(
        &mut reg,
        "collector_brokers",
        "Brokers collected, per cluster",
        brokers,
    );
    family(
        &mut reg,
        "collector_stale_brokers",
        "Brokers whose last pull failed, per cluster",
        stale,
    );
    family(
        &mut reg,
        "collector_oldest_report_seconds",
        "Age of the oldest broker's last good report, per cluster",
        age,
    );

    // Executions, tasks, bytes and throttles, from the replicated state.
    {
        let st = ctl.state();
        let mut by_state: std::collections::BTreeMap<&'static str, f64> = Default::default();
        let mut tasks: std::collections::BTreeMap<&'static str, f64> = Default::default();
        let (mut moved, mut remaining, mut throttles) = (0u64, 0u64, 0u64);
        for e in st.executions.by_id.values() {
            *by_state.entry(e.state.name()).or_default() += 1.0;
            if !e.state.active() {
                continue;
            }
            throttles += e.ledger.iter().filter(|l| l.written.is_some()).count() as u64;
            for t in st.executions.tasks_of(e.id) {
                *tasks.entry(t.state.name()).or_default() += 1.0;
                match t.state {
                    guardian_proto::execution::TaskState::Done => moved += t.bytes,
                    guardian_proto::execution::TaskState::Pending
                    | guardian_proto::execution::TaskState::Submitted => remaining += t.bytes,
                    _ => {}
                }
            }
        }
        family(
            &mut reg,
            "executor_executions",
            "Executions by state",
            by_state
                .into_iter()
                .map(|(s, v)| (label("state", s), v))
                .collect(),
        );
        family(
            &mut reg,
            "executor_tasks",
            "Tasks of active executions by state",
            tasks
                .into_iter()
                .map(|(s, v)| (label("state", s), v))
                .collect(),
        );
        gauge(
            &mut reg,
            "executor_bytes_moved",
            "Bytes of the done tasks of active executions",
            moved as f64,
        );
        gauge(
            &mut reg,
            "executor_bytes_remaining",
            "Bytes of the pending and running tasks of active executions",
            remaining as f64,
        );
        gauge(
            &mut reg,
            "executor_throttles_active",
            "Replication throttle values active executions have written",
            throttles as f64,
        );
        let mut claims: std::collections::BTreeMap<String, f64> = Default::default();
        let mut oldest = 0u64;
        for c in st.governance.claims.values() {
            *claims
                .entry(format!("{:?}", c.state).to_lowercase())
                .or_default() += 1.0;
            oldest = oldest.max(now.saturating_sub(c.since_ms));
        }
        family(
            &mut reg,
            "governance_claims",
            "Governance throttle claims by state",
            claims
                .into_iter()
                .map(|(s, v)| (label("state", &s), v))
                .collect(),
        );
        gauge(
            &mut reg,
            "governance_oldest_claim_seconds",
            "How long the oldest claim has been held",
            oldest as f64 / 1e3,
        );
    }
    consumer_metrics(&mut reg, ctl, consumers);
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

/// Consumer scheduling (the leader's view; empty elsewhere): lag and its
/// status per bound group, and the autoscaling signal per pool.
fn consumer_metrics(reg: &mut Registry, ctl: &Controller, consumers: &Scheduler) {
    use crate::consumers::lag::LagStatus;
    let mut lag: std::collections::BTreeMap<Labels, (f64, LagStatus)> = Default::default();
    for ((k, _), w, status) in consumers.lag_view(None) {
        let l = vec![
            ("cluster".to_string(), k.cluster.clone()),
            ("topic".to_string(), k.topic.clone()),
            ("group".to_string(), k.group.clone()),
        ];
        let e = lag.entry(l).or_insert((0.0, LagStatus::Ok));
        e.0 += w.latest().map_or(0, |s| s.lag()) as f64;
        e.1 = e.1.max(status);
    }
    let mut statuses = Vec::new();
    for (l, (_, s)) in &lag {
        for x in LagStatus::ALL {
            let mut l = l.clone();
            l.push(("status".to_string(), x.name().to_string()));
            statuses.push((l, (x == *s) as u8 as f64));
        }
    }
    family(
        reg,
        "consumer_group_lag",
        "Records behind the log end, summed over a bound group's partitions of the topic",
        lag.iter().map(|(l, (v, _))| (l.clone(), *v)).collect(),
    );
    family(
        reg,
        "consumer_group_status",
        "1 for a bound group's lag status (its worst partition's, Burrow's rules over the last 10 readings)",
        statuses,
    );
    if ctl.ensure_leader().is_err() {
        return;
    }
    let desired = consumers.desired_workers(&ctl.state());
    family(
        reg,
        "consumer_pool_workers",
        "Workers that joined the pool",
        desired
            .iter()
            .map(|(p, d)| (label("pool", p), d.workers as f64))
            .collect(),
    );
    family(
        reg,
        "consumer_pool_desired_workers",
        "Autoscaling signal: the workers the pool's measured CPU (at consumers.target-utilisation) and its lag ask for",
        desired
            .iter()
            .map(|(p, d)| (label("pool", p), d.desired as f64))
            .collect(),
    );
}
