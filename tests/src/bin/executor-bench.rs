//! The executor on real Kafka (1 controller + 3 brokers, two dirs each)
//! and a 3-node Guardian, one skewed topic per round (every replica on
//! broker 1's first dir, `--mib` MiB per partition):
//!
//! - approve → first bytes moving: from sending ApproveExecution to the
//!   first byte of a new replica on a destination broker (DescribeLogDirs
//!   polled every 10 ms) — goal ≤ 1 s;
//! - execution time ÷ (bytes leaving the busiest broker ÷ its throttle
//!   rate), approve → done — goal ≤ 1.2 (no idle slot);
//! - `--failovers N` rounds: the Guardian leader SIGKILLed while bytes
//!   move; from the moment a new leader is seen to its next journaled
//!   step — goal ≤ 2 s.
//!
//!   cargo build --release -p guardian-cli && cargo build --release -p guardian-tests
//!   target/release/executor-bench [--rounds 5] [--failovers 3] [--mib 4] [--rate-mib 4]

use std::time::{Duration, Instant};

use clap::Parser;
use guardian_kafka::KafkaClient;
use guardian_proto::pb;
use guardian_tests::kafka::{data, KafkaCluster, Layout};
use guardian_tests::TestCluster;
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[arg(long, default_value_t = 3)]
    failovers: usize,
    /// MiB per partition (six partitions per round).
    #[arg(long, default_value_t = 4)]
    mib: usize,
    /// Throttle per broker, MiB/s.
    #[arg(long, default_value_t = 4)]
    rate_mib: u64,
}

async fn show(g: &TestCluster, id: u64) -> anyhow::Result<Value> {
    let r = g
        .client()
        .call(|mut s| async move {
            s.get_execution(pb::GetExecutionRequest { id, stale: false })
                .await
        })
        .await?;
    Ok(serde_json::from_str(&r.json)?)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let k = KafkaCluster::start(Layout::ControllerAndThreeBrokers).await;
    let bootstrap = k.bootstrap();
    let a = KafkaClient::new(&bootstrap, Duration::from_secs(20));
    let d0 = k.nodes.iter().find(|n| n.id == 1).unwrap().log_dirs[0]
        .display()
        .to_string();
    let rate = args.rate_mib << 20;
    let cfg = format!(
        "[executor]\ntick-ms = 100\nthrottle-bytes-per-sec = {rate}\nmax-tasks-per-broker = 3\nleader-wait-ms = 20000\n"
    );
    let mut g = TestCluster::start_with(3, &cfg).await;
    let cl = g.client();
    cl.call(|mut s| {
        let c = pb::Cluster {
            name: "bench".into(),
            bootstrap_servers: bootstrap.clone(),
            idc: "east".into(),
            ..Default::default()
        };
        async move {
            s.add_cluster(pb::AddClusterRequest { cluster: Some(c) })
                .await
        }
    })
    .await?;
    cl.call(|mut s| async move {
        s.discover_cluster(pb::DiscoverClusterRequest {
            name: "bench".into(),
            dry_run: false,
        })
        .await
    })
    .await?;

    let (mut first, mut ratio, mut failover) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds + args.failovers {
        let kill = round >= args.rounds;
        let topic = format!("bench-{round}");
        data::skewed(&a, &bootstrap, &d0, &[&topic], 6, args.mib * 1024).await;
        let p = cl
            .call(|mut s| async move {
                s.propose_rebalance(pb::ProposeRebalanceRequest {
                    cluster: "bench".into(),
                    ..Default::default()
                })
                .await
            })
            .await?;
        let p: Value = serde_json::from_str(&p.json)?;
        let id = p["execution"]["id"].as_u64().unwrap();
        // Bytes leaving broker 1 (every inter-broker move's source here).
        let out_of_1: u64 = p["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| {
                t["original"] == serde_json::json!([1]) && t["target"] != serde_json::json!([1])
            })
            .map(|t| t["bytes"].as_u64().unwrap())
            .sum();
        let t0 = Instant::now();
        cl.call(|mut s| async move {
            s.control_execution(pb::ControlExecutionRequest {
                id,
                action: "approve".into(),
            })
            .await
        })
        .await?;
        // First bytes on a destination.
        'first: loop {
            for b in 2..=3 {
                let dirs = a.describe_log_dirs(b).await?;
                if dirs
                    .iter()
                    .flat_map(|d| &d.replicas)
                    .any(|r| r.topic == topic && r.size_bytes > 0)
                {
                    break 'first;
                }
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "no bytes moved within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t_first = t0.elapsed().as_secs_f64();
        if kill {
            let v = show(&g, id).await?;
            let version = v["execution"]["version"].as_u64().unwrap();
            let leader = g.wait_leader(Duration::from_secs(10)).await;
            g.kill(leader);
            let next = g.wait_leader(Duration::from_secs(20)).await;
            let elected = Instant::now();
            loop {
                let v = show(&g, id).await?;
                if v["execution"]["version"].as_u64().unwrap() > version {
                    break;
                }
                anyhow::ensure!(
                    elected.elapsed() < Duration::from_secs(30),
                    "no step after failover"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let ms = elected.elapsed().as_secs_f64() * 1e3;
            println!("round {round}: leader {leader} killed, {next} leads; next step {ms:.0} ms after it was seen");
            failover.push(ms);
            g.restart(leader);
        } else {
            first.push(t_first * 1e3);
        }
        loop {
            let v = show(&g, id).await?;
            match v["execution"]["state"].as_str().unwrap() {
                "done" => break,
                s @ ("failed" | "cancelled") => {
                    anyhow::bail!("execution {id} ended {s}: {}", v["execution"]["reason"])
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let took = t0.elapsed().as_secs_f64();
        let ideal = out_of_1 as f64 / rate as f64;
        if !kill {
            ratio.push(took / ideal);
            println!(
                "round {round}: first bytes {:.0} ms; done in {took:.2} s for {:.1} MiB out of broker 1 at {} MiB/s (ideal {ideal:.2} s): ratio {:.2}",
                t_first * 1e3,
                out_of_1 as f64 / (1 << 20) as f64,
                args.rate_mib,
                took / ideal
            );
        }
        a.delete_topics(&[topic]).await?;
    }
    if !first.is_empty() {
        println!(
            "approve → first bytes: p50 {:.0} ms, max {:.0} ms ({} rounds)",
            pct(&mut first, 0.5),
            pct(&mut first, 1.0),
            first.len()
        );
        println!(
            "execution time ÷ ideal: p50 {:.2}, max {:.2}",
            pct(&mut ratio, 0.5),
            pct(&mut ratio, 1.0)
        );
    }
    if !failover.is_empty() {
        println!(
            "failover → next step: p50 {:.0} ms, max {:.0} ms ({} rounds)",
            pct(&mut failover, 0.5),
            pct(&mut failover, 1.0),
            failover.len()
        );
    }
    Ok(())
}
