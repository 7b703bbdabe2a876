//! Guardian at fleet scale, on the simulator: one 3-node Guardian (real
//! `guardian server` processes, release build) governing `--clusters` ×
//! `--brokers` × `--disks` simulated brokers (default 20 × 50 × 4: 1,000
//! brokers, ≈ 200k replicas), each broker a Kafka wire listener and a
//! `Reporter` gRPC endpoint of `guardian-sim`, in this process.
//!
//! Registers every cluster through the admin API (as `guardian dev` does),
//! waits until every broker's load is collected, then measures over
//! `--steady-secs` of steady state, from the leader's `/metrics` and
//! `/proc`:
//! - collection round over every reporter (goal ≤ 1 s),
//! - governance round per cluster, whole and its CPU part (goal ≤ 100 ms),
//! - the leader's CPU, RSS and peak RSS (goal ≤ 1 GiB),
//! - Raft entries and bytes appended per minute;
//!
//! then a proposal per cluster on live data (goal ≤ 2 s each) until
//! `--moves` moves are proposed, approves them all and times the
//! executions to the end (the sim's copies run `--speed` × faster than the
//! throttle, so the time is the executor's own: its overhead per task).
//!
//!   cargo build --release -p guardian-cli && cargo build --release -p guardian-tests
//!   target/release/fleet-bench [--clusters 20] [--brokers 50] [--steady-secs 60] [--moves 1000]
//!
//! The sims run on the same 2 cores as the three nodes: every figure
//! includes their CPU (1,000 reporters building snapshots, 1,000 brokers
//! answering Metadata and DescribeLogDirs).

use std::time::{Duration, Instant};

use clap::Parser;
use guardian_proto::pb;
use guardian_sim::SimCluster;
use guardian_tests::{http_get, metric, TestCluster};
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 20)]
    clusters: u32,
    #[arg(long, default_value_t = 50)]
    brokers: u32,
    #[arg(long, default_value_t = 4)]
    disks: u32,
    /// Partitions per cluster (RF 3).
    #[arg(long, default_value_t = 3334)]
    partitions: u32,
    /// Size of every simulated log dir, GiB.
    #[arg(long, default_value_t = 4096)]
    disk_gib: u64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Copies run this many times faster than the throttle allows.
    #[arg(long, default_value_t = 100_000.0)]
    speed: f64,
    /// The collection and governance interval.
    #[arg(long, default_value_t = 10_000)]
    interval_ms: u64,
    /// Steady state measured for this long, after every broker is collected.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    /// Proposals are made (one per cluster) until this many moves.
    #[arg(long, default_value_t = 1000)]
    moves: usize,
    /// Governance mode of every cluster (`observe` or `enforce`).
    #[arg(long, default_value = "enforce")]
    mode: String,
}

/// One scrape of the leader's `/metrics` and `/proc`.
struct Sample {
    at: Instant,
    text: String,
    cpu_ticks: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn sample(g: &TestCluster, id: u64) -> anyhow::Result<Sample> {
    let (code, text) = http_get(&g.node(id).http, "/metrics");
    anyhow::ensure!(code == 200, "/metrics of node {id}: {code}");
    let pid = g.node(id).pid().expect("leader runs").as_raw();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let cpu_ticks = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        at: Instant::now(),
        text,
        cpu_ticks,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

fn m(s: &Sample, name: &str) -> f64 {
    metric(&s.text, name).unwrap_or(0.0)
}

/// A histogram between two samples: observations, mean, and the upper
/// bound of the bucket holding the largest observation.
fn hist(a: &Sample, b: &Sample, name: &str) -> (f64, f64, f64) {
    let count = m(b, &format!("{name}_count")) - m(a, &format!("{name}_count"));
    let sum = m(b, &format!("{name}_sum")) - m(a, &format!("{name}_sum"));
    let prefix = format!("{name}_bucket{{le=\"");
    let mut max = f64::NAN;
    let mut below = 0.0;
    for l in b.text.lines().filter(|l| l.starts_with(&prefix)) {
        let le = &l[prefix.len()..l[prefix.len()..].find('"').unwrap() + prefix.len()];
        let key = l.rsplit_once(' ').unwrap().0;
        let n = metric(&b.text, key).unwrap_or(0.0) - metric(&a.text, key).unwrap_or(0.0);
        if n > below {
            max = le.parse().unwrap_or(f64::INFINITY);
            below = n;
        }
    }
    (count, if count > 0.0 { sum / count } else { 0.0 }, max)
}

async fn execution(g: &TestCluster, id: u64) -> anyhow::Result<Value> {
    let r = g
        .client()
        .call(|mut s| async move {
            s.get_execution(pb::GetExecutionRequest { id, stale: true })
                .await
        })
        .await?;
    Ok(serde_json::from_str(&r.json)?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let t = Instant::now();
    let mut sims = Vec::new();
    let mut specs = Vec::new();
    for i in 0..a.clusters {
        let spec = guardian_sim::generated(
            a.brokers,
            a.disks,
            a.partitions,
            a.disk_gib << 30,
            a.seed + u64::from(i),
        );
        let mut c = SimCluster::from_spec(&format!("sim-{i}"), "127.0.0.1", &spec, a.speed).await?;
        c.serve_reporters("127.0.0.1", 8 << 30, &[]).await?;
        c.run_traffic(Duration::from_millis(1000));
        sims.push(c);
        specs.push(spec);
    }
    let replicas: usize = specs
        .iter()
        .flat_map(|s| &s.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.replicas.len())
        .sum();
    println!(
        "sim: {} clusters × {} brokers × {} disks, {replicas} replicas, up in {:.1} s",
        a.clusters,
        a.brokers,
        a.disks,
        t.elapsed().as_secs_f64()
    );

    let timeout = (a.interval_ms / 5).max(2000);
    let cfg = format!(
        "[collect]\ninterval-ms = {i}\ntimeout-ms = {timeout}\n[governance]\ninterval-ms = {i}\nmode = \"{mode}\"\n",
        i = a.interval_ms,
        mode = a.mode
    );
    let mut g = TestCluster::start_with(3, &cfg).await;
    let client = g.client();
    let t = Instant::now();
    for (c, spec) in sims.iter().zip(&specs) {
        let (cluster, brokers) = c.registration(spec, "sim");
        client.register_cluster(cluster, &brokers).await?;
    }
    println!(
        "registered {} clusters, {} brokers in {:.1} s",
        sims.len(),
        a.clusters * a.brokers,
        t.elapsed().as_secs_f64()
    );

    // Every broker collected, none stale.
    let t = Instant::now();
    for c in &sims {
        loop {
            let name = c.name.clone();
            let l = client
                .call(|mut s| {
                    let cluster = name.clone();
                    async move { s.load_cluster(pb::LoadClusterRequest { cluster }).await }
                })
                .await?;
            if l.brokers == a.brokers && l.stale_brokers == 0 {
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(300),
                "{}: {} of {} brokers collected, {} stale after 300 s",
                c.name,
                l.brokers,
                a.brokers,
                l.stale_brokers
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    println!(
        "every broker collected {:.1} s after registration",
        t.elapsed().as_secs_f64()
    );

    // Steady state.
    let leader = g.wait_leader(Duration::from_secs(10)).await;
    let s0 = sample(&g, leader)?;
    tokio::time::sleep(Duration::from_secs(a.steady_secs)).await;
    let s1 = sample(&g, leader)?;
    anyhow::ensure!(
        g.wait_leader(Duration::from_secs(10)).await == leader,
        "the leader changed during the steady state"
    );
    let secs = (s1.at - s0.at).as_secs_f64();
    let per_min = |name: &str| (m(&s1, name) - m(&s0, name)) * 60.0 / secs;
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (rounds, round_mean, round_max) = hist(&s0, &s1, "guardian_collector_round_seconds");
    let (gov, gov_mean, gov_max) = hist(&s0, &s1, "guardian_governance_round_seconds");
    let (_, cpu_mean, cpu_max) = hist(&s0, &s1, "guardian_governance_compute_seconds");
    let failed = m(&s1, "guardian_collector_pulls_total{result=\"error\"}")
        - m(&s0, "guardian_collector_pulls_total{result=\"error\"}");
    println!("steady state, {secs:.0} s on leader {leader}:");
    println!(
        "  collection round over {} reporters: {rounds} rounds, mean {:.0} ms, max ≤ {:.0} ms (bucket); {failed} failed pulls",
        a.clusters * a.brokers,
        round_mean * 1e3,
        round_max * 1e3
    );
    println!(
        "  governance round per cluster: {gov} rounds, mean {:.0} ms, max ≤ {:.0} ms; its CPU part mean {:.1} ms, max ≤ {:.1} ms",
        gov_mean * 1e3,
        gov_max * 1e3,
        cpu_mean * 1e3,
        cpu_max * 1e3
    );
    println!(
        "  leader CPU {:.2} cores; RSS {} MiB, peak {} MiB",
        (s1.cpu_ticks - s0.cpu_ticks) as f64 / ticks / secs,
        s1.rss_kib / 1024,
        s1.hwm_kib / 1024
    );
    println!(
        "  Raft: {:.0} entries/min, {:.0} KiB/min appended on the leader",
        per_min("guardian_raft_log_appended_entries_total"),
        per_min("guardian_raft_log_appended_bytes_total") / 1024.0
    );

    // Proposals on live data, one per cluster, until --moves moves.
    let mut proposals = Vec::new();
    let mut plan_ms = Vec::new();
    let mut moves = 0;
    for c in &sims {
        if moves >= a.moves {
            break;
        }
        let t = Instant::now();
        let name = c.name.clone();
        let p = client
            .call(|mut s| {
                let cluster = name.clone();
                async move {
                    s.propose_rebalance(pb::ProposeRebalanceRequest {
                        cluster,
                        ..Default::default()
                    })
                    .await
                }
            })
            .await?;
        plan_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let v: Value = serde_json::from_str(&p.json)?;
        if let Some(id) = v["execution"]["id"].as_u64() {
            let n = v["tasks"].as_array().map_or(0, |t| t.len());
            moves += n;
            proposals.push((id, n));
        }
    }
    plan_ms.sort_by(f64::total_cmp);
    println!(
        "proposals on live data: {} clusters, {moves} moves; RPC p50 {:.0} ms, max {:.0} ms",
        plan_ms.len(),
        plan_ms[plan_ms.len() / 2],
        plan_ms[plan_ms.len() - 1]
    );

    // Approve them all; time to the last one done.
    let t = Instant::now();
    for &(id, _) in &proposals {
        client
            .call(|mut s| async move {
                s.control_execution(pb::ControlExecutionRequest {
                    id,
                    action: "approve".into(),
                })
                .await
            })
            .await?;
    }
    let mut left: Vec<u64> = proposals.iter().map(|p| p.0).collect();
    while !left.is_empty() {
        let mut still = Vec::new();
        for id in left {
            let v = execution(&g, id).await?;
            match v["execution"]["state"].as_str().unwrap_or("") {
                "done" => {}
                s @ ("failed" | "cancelled") => {
                    anyhow::bail!("execution {id} ended {s}: {}", v["execution"]["reason"])
                }
                _ => still.push(id),
            }
        }
        left = still;
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(1800),
            "executions not done after 30 min"
        );
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let took = t.elapsed().as_secs_f64();
    println!(
        "executions: {moves} moves in {} executions done in {took:.1} s: {:.0} ms per task, {:.1} tasks/s",
        proposals.len(),
        took * 1e3 / moves as f64,
        moves as f64 / took
    );
    let s2 = sample(&g, g.wait_leader(Duration::from_secs(10)).await)?;
    println!(
        "leader RSS after the executions {} MiB, peak {} MiB",
        s2.rss_kib / 1024,
        s2.hwm_kib / 1024
    );
    for id in 1..=3 {
        g.stop(id);
    }
    Ok(())
}
