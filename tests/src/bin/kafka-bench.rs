//! Guardian's Kafka client against real Kafka at fleet-ish size: Metadata
//! and DescribeLogDirs of each of 3 brokers, at `--partitions` partitions
//! (created as topics of at most 5,000 partitions each: KRaft caps one
//! operation at 10,000 records), replication factor `--rf`.
//!
//!   cargo build --release -p guardian-tests
//!   target/release/kafka-bench [--partitions 10000] [--rf 3] [--rounds 20]

use std::time::{Duration, Instant};

use clap::Parser;
use guardian_kafka::{KafkaClient, NewTopic};
use guardian_tests::bench::{allocations, CountingAlloc};
use guardian_tests::kafka::{KafkaCluster, Layout};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    partitions: i32,
    #[arg(long, default_value_t = 3)]
    rf: i16,
    #[arg(long, default_value_t = 20)]
    rounds: usize,
}

/// Replicas the 3 brokers hold, by DescribeLogDirs of each.
async fn replicas_held(admin: &KafkaClient) -> anyhow::Result<usize> {
    let mut n = 0;
    for b in 1..=3 {
        n += admin
            .describe_log_dirs(b)
            .await?
            .iter()
            .map(|d| d.replicas.len())
            .sum::<usize>();
    }
    Ok(n)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let t = Instant::now();
    let k = KafkaCluster::start(Layout::ControllerAndThreeBrokers).await;
    println!(
        "cluster (1 controller + 3 brokers) up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let admin = KafkaClient::new(&k.bootstrap(), Duration::from_secs(120));
    let t = Instant::now();
    let mut left = a.partitions;
    let mut i = 0;
    while left > 0 {
        let n = left.min(5_000);
        let r = admin
            .create_topics(&[NewTopic {
                name: format!("bench-{i}"),
                partitions: n,
                replication_factor: a.rf,
                ..Default::default()
            }])
            .await?;
        for (name, res) in r {
            res.map_err(|e| anyhow::anyhow!("creating {name}: {e}"))?;
        }
        left -= n;
        i += 1;
    }
    // Until every partition has a leader.
    loop {
        let m = admin.metadata().await?;
        let led: usize = m
            .topics
            .iter()
            .filter(|t| t.name.starts_with("bench-"))
            .map(|t| t.partitions.iter().filter(|p| p.leader >= 0).count())
            .sum();
        if led == a.partitions as usize {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(600),
            "partitions not led after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{} partitions × RF {} created and led in {:.1} s",
        a.partitions,
        a.rf,
        t.elapsed().as_secs_f64()
    );
    // And until every follower holds its replica (DescribeLogDirs).
    let want = a.partitions as usize * a.rf as usize;
    loop {
        let n = replicas_held(&admin).await?;
        if n == want {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(900),
            "{n} of {want} replicas after 900 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "… and every replica in place after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (mut meta, mut dirs) = (Vec::new(), Vec::new());
    let mut replicas = 0;
    let (mut meta_allocs, mut dirs_allocs) = ((0, 0), (0, 0));
    for _ in 0..a.rounds {
        let (n0, b0) = allocations();
        let t = Instant::now();
        let m = admin.metadata().await?;
        meta.push(t.elapsed().as_secs_f64() * 1e3);
        let (n1, b1) = allocations();
        anyhow::ensure!(m.brokers.len() == 3, "brokers: {:?}", m.brokers);
        drop(m);
        let (n2, b2) = allocations();
        let t = Instant::now();
        replicas = replicas_held(&admin).await?;
        dirs.push(t.elapsed().as_secs_f64() * 1e3);
        let (n3, b3) = allocations();
        meta_allocs = (meta_allocs.0 + n1 - n0, meta_allocs.1 + b1 - b0);
        dirs_allocs = (dirs_allocs.0 + n3 - n2, dirs_allocs.1 + b3 - b2);
    }
    let per = |x: u64| x as f64 / a.rounds as f64;
    let mib = |x: u64| per(x) / (1024.0 * 1024.0);
    anyhow::ensure!(
        replicas == a.partitions as usize * a.rf as usize,
        "DescribeLogDirs listed {replicas} replicas"
    );
    println!(
        "Metadata (all topics):        p50 {:>7.1} ms  p99 {:>7.1} ms  ({} rounds); {:.0} allocations ({:.1} MiB) per call",
        pct(&mut meta, 0.5),
        pct(&mut meta, 0.99),
        a.rounds,
        per(meta_allocs.0),
        mib(meta_allocs.1)
    );
    println!(
        "DescribeLogDirs × 3 brokers:  p50 {:>7.1} ms  p99 {:>7.1} ms  ({replicas} replicas); {:.0} allocations ({:.1} MiB) per round",
        pct(&mut dirs, 0.5),
        pct(&mut dirs, 0.99),
        per(dirs_allocs.0),
        mib(dirs_allocs.1)
    );
    Ok(())
}
