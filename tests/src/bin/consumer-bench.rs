//! The consumer-scheduling handoff gap on real Kafka: how long a moved
//! partition is consumed by nobody (goal p99 ≤ 1 s).
//!
//! One combined KRaft node, a 3-node Guardian with the production
//! `[consumers]` defaults (`deploy/guardian.example.toml`: heartbeat 1 s,
//! lease 6 s), one topic of `--partitions` partitions bound to pool `p`,
//! and a producer sending one record to every partition each `--tick-ms`.
//! Each round grows the pool from 2 to `--max-workers` workers, one
//! `guardian-worker` at a time, then shrinks it back, one SIGTERM (a
//! graceful leave) at a time, waiting after each step until every
//! partition runs on its planned owner. Then the producer stops and the
//! group catches up.
//!
//! From the workers' logs (the wall-clock time each record was
//! processed) and the producer's send times: for every partition, each
//! change of the worker processing consecutive offsets is a handoff, and
//! its gap is `first record by the new owner − max(last record by the old
//! owner, when that first record was sent)` — the time records waited
//! with nobody consuming them. It also counts records processed twice
//! and records lost (must both be 0).
//!
//!   cargo build --release -p guardian-cli -p guardian-consumer -p guardian-tests
//!   target/release/consumer-bench [--rounds 2] [--max-workers 5] [--partitions 24] [--tick-ms 20]
//!
//! `--spread-secs S` measures the real CPU spread across workers instead:
//! a quarter of the partitions get `--hot` times the records of the rest,
//! every record costs `--cost-us` of CPU, and `--max-workers` workers run
//! the topic twice — first reporting one fixed CPU figure per partition
//! (every partition weighs the same: a count-balanced plan, the baseline),
//! then reporting what they measure (the plan Guardian makes from it,
//! replanned every 5 s here). In each phase, once the plan has settled,
//! each worker process's CPU time (`/proc/PID/stat` utime + stime) is
//! read over `S` seconds: spread = max ÷ mean − 1, with the plan's own
//! predicted spread beside it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use guardian_kafka::types::NewTopic;
use guardian_kafka::KafkaClient;
use guardian_tests::kafka::{ops, KafkaCluster, Layout};
use guardian_tests::workers::{self, now_ms, Worker};
use guardian_tests::{wait_until, TestCluster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[arg(long, default_value_t = 5)]
    max_workers: usize,
    #[arg(long, default_value_t = 24)]
    partitions: i32,
    /// One record to every partition this often.
    #[arg(long, default_value_t = 20)]
    tick_ms: u64,
    /// Keep the workers' logs in this directory (default: a temporary one).
    #[arg(long)]
    logs: Option<std::path::PathBuf>,
    /// Measure the real CPU spread over this many seconds per phase
    /// (instead of the handoff rounds).
    #[arg(long, default_value_t = 0)]
    spread_secs: u64,
    /// Spread mode: records per tick of a hot partition (the rest: 1).
    #[arg(long, default_value_t = 4)]
    hot: usize,
    /// Spread mode: CPU per record, microseconds.
    #[arg(long, default_value_t = 300)]
    cost_us: u64,
}

/// A process's CPU time so far (user + system), seconds.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): state is the 3rd.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf reads a constant of the system.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    // utime and stime are fields 14 and 15 (index 11 and 12 after state).
    (ticks(11) + ticks(12)) / hz
}

/// Each worker's CPU (cores) over `secs`: the spread (max ÷ mean − 1) and
/// the per-worker figures.
async fn measure_spread(ws: &[Worker], secs: u64) -> (f64, Vec<f64>) {
    let t0 = std::time::Instant::now();
    let before: Vec<f64> = ws.iter().map(|w| proc_cpu(w.child.id())).collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let dt = t0.elapsed().as_secs_f64();
    let cores: Vec<f64> = ws
        .iter()
        .zip(&before)
        .map(|(w, b)| (proc_cpu(w.child.id()) - b) / dt)
        .collect();
    let mean = cores.iter().sum::<f64>() / cores.len().max(1) as f64;
    let max = cores.iter().copied().fold(0.0, f64::max);
    (if mean > 0.0 { max / mean - 1.0 } else { 0.0 }, cores)
}

const TOPIC: &str = "consumer-bench";
const GROUP: &str = "consumer-bench";

/// Every partition owned by one of `ids` and running only there, and each
/// of `ids` owning one at least (a joined worker has its share); the
/// consumers JSON when not.
async fn settled(
    g: &TestCluster,
    ids: &[String],
    partitions: i32,
) -> Result<BTreeMap<i32, String>, Value> {
    let v = workers::consumers(g).await;
    let parts = v["bindings"][0]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let owns = |id: &String| parts.iter().any(|p| p["owner"].as_str() == Some(id));
    let ok = parts.len() == partitions as usize
        && ids.iter().all(owns)
        && parts.iter().all(|p| {
            p["state"] == "running"
                && p["owner"]
                    .as_str()
                    .is_some_and(|o| ids.iter().any(|i| i == o))
        });
    if ok {
        Ok(parts
            .iter()
            .map(|p| {
                (
                    p["partition"].as_i64().unwrap_or(-1) as i32,
                    p["owner"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    } else {
        Err(v)
    }
}

/// Waits until every partition runs on its planned owner (each of `ws`
/// owning one at least) and each owner has processed a record of it since:
/// the step is over, the next one starts from a steady state.
async fn settle(g: &TestCluster, ws: &[Worker], partitions: i32) {
    let ids: Vec<String> = ws.iter().map(|w| w.id.clone()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let owners = loop {
        match settled(g, &ids, partitions).await {
            Ok(o) => break o,
            Err(v) if std::time::Instant::now() > deadline => {
                panic!("after 120 s not every partition runs on its owner among {ids:?}: {v:#}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let since = now_ms();
    wait_until(
        "every owner processing",
        Duration::from_secs(60),
        || async {
            let mut fresh = std::collections::BTreeSet::new();
            for w in ws {
                for r in w.processed() {
                    if r.at_ms >= since && owners.get(&r.partition) == Some(&w.id) {
                        fresh.insert(r.partition);
                    }
                }
            }
            (fresh.len() == owners.len()).then_some(())
        },
    )
    .await;
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(a.max_workers >= 3, "--max-workers must be at least 3");
    anyhow::ensure!(a.partitions >= 1, "--partitions must be at least 1");
    let kafka = KafkaCluster::start(Layout::Combined).await;
    let bootstrap = kafka.bootstrap();
    let k = KafkaClient::new(&bootstrap, Duration::from_secs(20));
    for (t, r) in k
        .create_topics(&[NewTopic {
            name: TOPIC.into(),
            partitions: a.partitions,
            replication_factor: 1,
            assignment: vec![],
            configs: vec![],
        }])
        .await?
    {
        r.map_err(|e| anyhow::anyhow!("create {t}: {e}"))?;
    }
    let spread = a.spread_secs > 0;
    // Spread mode replans every 5 s (the production default is 30 s).
    let config = if spread {
        "[consumers]\ninterval-ms = 5000\n"
    } else {
        ""
    };
    let mut g = TestCluster::start_with(3, config).await;
    let eps = ops::add_cluster(&g, "k", &bootstrap);
    ops::run_cli(&eps, &["consumers", "pool", "create", "p"]);
    ops::run_cli(
        &eps,
        &[
            "consumers",
            "bind",
            "--cluster",
            "k",
            "--topic",
            TOPIC,
            "--group",
            GROUP,
            "--pool",
            "p=100",
        ],
    );

    // The producer: (partition, offset) → send time.
    let sent: Arc<Mutex<BTreeMap<(i32, i64), u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap.join(","))
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()?;
    let prod = {
        let (sent, stop, tick) = (sent.clone(), stop.clone(), a.tick_ms);
        let parts = a.partitions;
        // Records per tick per partition: a quarter hot in spread mode.
        let per_tick: Vec<usize> = (0..parts)
            .map(|p| if spread && p % 4 == 0 { a.hot } else { 1 })
            .collect();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(tick));
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                let at = now_ms();
                let sends: Vec<_> = (0..parts)
                    .flat_map(|p| std::iter::repeat_n(p, per_tick[p as usize]))
                    .map(|p| {
                        let rec = FutureRecord::<(), [u8]>::to(TOPIC)
                            .partition(p)
                            .payload(&b"x"[..]);
                        producer.send_result(rec).expect("queued")
                    })
                    .collect();
                for s in sends {
                    let d = s.await.expect("delivered").expect("acknowledged");
                    sent.lock().unwrap().insert((d.partition, d.offset), at);
                }
            }
        })
    };

    let tmp = tempfile::tempdir()?;
    let dir = match &a.logs {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let args = [
        "--capacity",
        "1",
        "--fixed-cpu",
        "0.01",
        "--kafka",
        "auto.offset.reset=earliest",
        "--commit-interval-ms",
        "300",
    ];
    let mut spawned = 0;
    let mut start = |ws: &mut Vec<Worker>| {
        spawned += 1;
        let id = format!("w{spawned}");
        ws.push(workers::spawn(&g.endpoints(), &dir, &id, "p", &args));
    };
    if spread {
        let cost = a.cost_us.to_string();
        let mut report = Vec::new();
        for (phase, fixed) in [
            ("count-balanced (fixed CPU reported)", true),
            ("measured CPU", false),
        ] {
            let mut args: Vec<&str> = vec![
                "--capacity",
                "1",
                "--cost-us",
                &cost,
                "--kafka",
                "auto.offset.reset=latest",
                "--commit-interval-ms",
                "300",
            ];
            if fixed {
                args.extend(["--fixed-cpu", "0.01"]);
            }
            let mut ws: Vec<Worker> = Vec::new();
            for _ in 0..a.max_workers {
                spawned += 1;
                let id = format!("w{spawned}");
                ws.push(workers::spawn(&g.endpoints(), &dir, &id, "p", &args));
            }
            settle(&g, &ws, a.partitions).await;
            // Three replans on what the workers report, then settled again.
            let epoch = |v: &Value| v["epoch"].as_u64().unwrap_or(0);
            let e0 = epoch(&workers::consumers(&g).await);
            tokio::time::sleep(Duration::from_secs(15)).await;
            settle(&g, &ws, a.partitions).await;
            let v = workers::consumers(&g).await;
            let (spread, cores) = measure_spread(&ws, a.spread_secs).await;
            let predicted = v["pools"][0]["cpu_spread"].as_f64();
            let line = format!(
                "{phase}: spread {:.1} % over {} s (workers {}), plan epochs {e0}→{}, the plan's predicted spread {}",
                spread * 100.0,
                a.spread_secs,
                cores.iter().map(|c| format!("{c:.3}")).collect::<Vec<_>>().join(" / "),
                epoch(&v),
                predicted.map_or("-".into(), |p| format!("{:.1} %", p * 100.0)),
            );
            eprintln!("{line}");
            report.push(line);
            for w in &mut ws {
                kill(Pid::from_raw(w.child.id() as i32), Signal::SIGTERM)?;
                w.child.wait()?;
            }
        }
        stop.store(true, Ordering::Relaxed);
        prod.await?;
        println!(
            "BENCH consumer CPU spread on real Kafka ({} workers, {} partitions, a quarter {}× hot, {} µs a record, a tick every {} ms): {}",
            a.max_workers,
            a.partitions,
            a.hot,
            a.cost_us,
            a.tick_ms,
            report.join("; ")
        );
        for id in 1..=3 {
            g.stop(id);
        }
        drop(kafka);
        return Ok(());
    }
    let mut live: Vec<Worker> = Vec::new();
    let mut gone: Vec<Worker> = Vec::new();
    start(&mut live);
    start(&mut live);
    settle(&g, &live, a.partitions).await;
    let mut steps = 0;
    for round in 0..a.rounds {
        while live.len() < a.max_workers {
            start(&mut live);
            settle(&g, &live, a.partitions).await;
            steps += 1;
        }
        while live.len() > 2 {
            let mut w = live.pop().expect("a worker");
            kill(Pid::from_raw(w.child.id() as i32), Signal::SIGTERM)?;
            w.child.wait()?;
            settle(&g, &live, a.partitions).await;
            gone.push(w);
            steps += 1;
        }
        eprintln!("round {} done ({steps} steps so far)", round + 1);
    }
    stop.store(true, Ordering::Relaxed);
    prod.await?;
    let ends: BTreeMap<i32, i64> = {
        let s = sent.lock().unwrap();
        s.keys().fold(BTreeMap::new(), |mut m, (p, o)| {
            let e = m.entry(*p).or_insert(0);
            *e = (*e).max(o + 1);
            m
        })
    };
    wait_until("the group caught up", Duration::from_secs(120), || async {
        let c = k.committed_offsets(GROUP).await.ok()?;
        let got: BTreeMap<i32, i64> = c
            .into_iter()
            .filter(|(tp, _)| tp.topic == TOPIC)
            .map(|(tp, o)| (tp.partition, o))
            .collect();
        (got == ends).then_some(())
    })
    .await;

    // partition → offset → (worker, at_ms) for every processing.
    let mut seen: BTreeMap<i32, BTreeMap<i64, Vec<(String, u64)>>> = BTreeMap::new();
    for w in live.iter().chain(&gone) {
        for r in w.processed() {
            seen.entry(r.partition)
                .or_default()
                .entry(r.offset)
                .or_default()
                .push((w.id.clone(), r.at_ms));
        }
    }
    let sent = sent.lock().unwrap().clone();
    let twice: usize = seen
        .values()
        .flat_map(|o| o.values())
        .filter(|v| v.len() > 1)
        .count();
    let lost = sent
        .keys()
        .filter(|(p, o)| seen.get(p).is_none_or(|m| !m.contains_key(o)))
        .count();
    let mut gaps = Vec::new();
    for (p, offs) in &seen {
        let mut prev: Option<(&String, u64)> = None;
        for (o, by) in offs {
            let (w, at) = (&by[0].0, by[0].1);
            if let Some((pw, pat)) = prev {
                if pw != w {
                    let avail = sent.get(&(*p, *o)).copied().unwrap_or(0);
                    gaps.push(at.saturating_sub(pat.max(avail)));
                }
            }
            prev = Some((w, at));
        }
    }
    gaps.sort_unstable();
    println!(
        "BENCH consumer handoff gap: {} handoffs over {steps} pool changes ({} rounds, 2↔{} workers, {} partitions, a record per partition every {} ms): p50 {} ms, p99 {} ms, max {} ms; {} records, processed twice {twice}, lost {lost}",
        gaps.len(),
        a.rounds,
        a.max_workers,
        a.partitions,
        a.tick_ms,
        pct(&gaps, 0.5),
        pct(&gaps, 0.99),
        gaps.last().copied().unwrap_or(0),
        sent.len(),
    );
    for w in &mut live {
        w.kill();
    }
    for id in 1..=3 {
        g.stop(id);
    }
    drop(kafka);
    Ok(())
}
