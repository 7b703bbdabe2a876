//! guardian-bench: Raft write throughput and latency on 3 real `guardian`
//! processes (fsync on), the same load against a 3-member etcd in the same
//! run, and leader failover time (SIGKILL the leader, time to the next
//! acknowledged write).
//!
//!   cargo build --release -p guardian-controller -p guardian-tests
//!   target/release/guardian-bench [--clients 64] [--secs 10] [--failovers 20]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use guardian_controller::client::AdminClient;
use guardian_proto::pb;
use guardian_proto::pb::guardian_admin_client::GuardianAdminClient;
use guardian_tests::bench::{drive, Run};
use guardian_tests::{cluster, wait_until, TestCluster};
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug)]
struct Args {
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Seconds of the single-client latency run.
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Leader kills in the failover run (0 = skip).
    #[arg(long, default_value_t = 20)]
    failovers: usize,
    /// Skip the etcd comparison.
    #[arg(long)]
    skip_etcd: bool,
    /// etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd: String,
    /// Extra TOML appended to every guardian node's config (e.g. `"[raft]\nheartbeat-interval-ms = 20"`).
    #[arg(long, default_value = "")]
    extra_config: String,
}

fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

async fn guardian_run(c: &TestCluster, clients: usize, secs: u64) -> anyhow::Result<Run> {
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let addr = c.node(leader).admin.clone();
    let cl = c.client();
    cl.call(|mut s| async move {
        s.add_cluster(pb::AddClusterRequest {
            cluster: Some(cluster("bench")),
        })
        .await
    })
    .await
    .or_else(|s| {
        if s.code() == tonic::Code::AlreadyExists {
            Ok(Default::default())
        } else {
            Err(s)
        }
    })?;
    // A few HTTP/2 connections shared by all writers, as a real client pool would.
    let chans: Vec<Channel> = (0..8).map(|_| channel(&addr)).collect::<Result<_, _>>()?;
    Ok(drive(clients, secs, move |c, seq| {
        let mut stub = GuardianAdminClient::new(chans[c % chans.len()].clone());
        async move {
            // A small registry write: upsert one topic's placement policy.
            let policy = pb::PlacementPolicy {
                cluster: "bench".into(),
                topic: format!("topic-{c}"),
                allowed_racks: vec![format!("r{}", seq % 8)],
                ..Default::default()
            };
            stub.set_placement_policy(pb::SetPlacementPolicyRequest {
                policy: Some(policy),
            })
            .await
            .context("set_placement_policy")?;
            Ok(1)
        }
    })
    .await)
}

struct Etcd {
    children: Vec<Child>,
    endpoints: Vec<String>,
    /// How to (re)start each member (same data dir, same ports).
    commands: Vec<Vec<String>>,
    bin: String,
    dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn_etcd(
    bin: &str,
    args: &[String],
    dir: &std::path::Path,
    i: usize,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("e{i}.log")))?;
    Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {bin}"))
}

/// Index of the etcd member that is leader, as its own status reports.
async fn etcd_leader(etcd: &Etcd) -> anyhow::Result<usize> {
    for (i, ep) in etcd.endpoints.iter().enumerate() {
        let Ok(mut one) = etcd_client::Client::connect([ep.clone()], None).await else {
            continue;
        };
        if let Ok(s) = one.status().await {
            if s.header().map(|h| h.member_id()) == Some(s.leader()) {
                return Ok(i);
            }
        }
    }
    bail!("no etcd leader")
}

/// The same failover measurement against etcd: SIGKILL its leader, time to the
/// next acknowledged put through a client of the surviving members.
async fn etcd_failover(etcd: &mut Etcd, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for round in 0..n {
        let leader = {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match etcd_leader(etcd).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        };
        let others: Vec<String> = (0..etcd.endpoints.len())
            .filter(|i| *i != leader)
            .map(|i| etcd.endpoints[i].clone())
            .collect();
        let mut kv = etcd_client::Client::connect(others, None).await?;
        kv.put("warm", "1", None).await?;
        etcd.children[leader].kill()?;
        let t = Instant::now();
        loop {
            match tokio::time::timeout(
                Duration::from_millis(300),
                kv.put("failover", round.to_string(), None),
            )
            .await
            {
                Ok(Ok(_)) => break,
                _ if t.elapsed() > Duration::from_secs(30) => bail!("etcd did not recover"),
                _ => {}
            }
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        eprintln!("etcd failover {round:>2}: next put acked after {ms:.0} ms");
        out.push(ms);
        let _ = etcd.children[leader].wait();
        etcd.children[leader] =
            spawn_etcd(&etcd.bin, &etcd.commands[leader], etcd.dir.path(), leader)?;
        // Wait until the restarted member serves again.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok =
                match etcd_client::Client::connect([etcd.endpoints[leader].clone()], None).await {
                    Ok(mut c) => c.status().await.is_ok(),
                    Err(_) => false,
                };
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("restarted etcd member did not come back");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(out)
}

async fn start_etcd(bin: &str) -> anyhow::Result<Etcd> {
    let dir = tempfile::tempdir()?;
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut commands = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        commands.push(vec![
            "--name".to_string(),
            format!("e{i}"),
            "--data-dir".to_string(),
            dir.path().join(format!("e{i}")).display().to_string(),
            "--listen-client-urls".to_string(),
            format!("http://127.0.0.1:{client}"),
            "--advertise-client-urls".to_string(),
            format!("http://127.0.0.1:{client}"),
            "--listen-peer-urls".to_string(),
            format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls".to_string(),
            format!("http://127.0.0.1:{peer}"),
            "--initial-cluster".to_string(),
            initial.clone(),
            "--initial-cluster-state".to_string(),
            "new".to_string(),
        ]);
    }
    let children = commands
        .iter()
        .enumerate()
        .map(|(i, args)| spawn_etcd(bin, args, dir.path(), i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let endpoints: Vec<String> = ports
        .iter()
        .map(|(c, _)| format!("127.0.0.1:{c}"))
        .collect();
    let etcd = Etcd {
        children,
        endpoints,
        commands,
        bin: bin.to_string(),
        dir,
    };
    let mut client = etcd_client::Client::connect(etcd.endpoints.clone(), None).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client.put("ready", "1", None).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("etcd did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(etcd)
}

async fn etcd_run(etcd: &Etcd, clients: usize, secs: u64) -> anyhow::Result<Run> {
    // Find the leader and write to it directly, as the guardian run does.
    let mut leader_ep = etcd.endpoints[0].clone();
    for ep in &etcd.endpoints {
        let mut one = etcd_client::Client::connect([ep.clone()], None).await?;
        let s = one.status().await?;
        if let Some(h) = s.header() {
            if h.member_id() == s.leader() {
                leader_ep = ep.clone();
            }
        }
    }
    let mut pool = Vec::new();
    for _ in 0..8 {
        pool.push(etcd_client::Client::connect([leader_ep.clone()], None).await?);
    }
    Ok(drive(clients, secs, move |c, seq| {
        let mut kv = pool[c % pool.len()].kv_client();
        async move {
            kv.put(format!("topic-{c}"), format!("r{}", seq % 8), None)
                .await?;
            Ok(1)
        }
    })
    .await)
}

/// SIGKILL the leader `n` times; time from the kill to the next acknowledged write.
async fn failover(c: &mut TestCluster, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for round in 0..n {
        // Start from a healthy group: every node has applied the same log, so
        // any survivor may win (a lagging one would cost a second election).
        // A restarted node may still call an election (openraft 0.9 has no
        // pre-vote): wait for a settled term too.
        let settled = || async {
            let mut seen = std::collections::BTreeSet::new();
            for n in 1..=c.nodes.len() as u64 {
                let s = c.node_status(n).await?;
                seen.insert((s.term, s.leader_id, s.last_log_index, s.last_applied_index));
            }
            (seen.len() == 1).then(|| seen.into_iter().next())?
        };
        loop {
            let a = wait_until(
                "all nodes agree on term, leader and log",
                Duration::from_secs(30),
                settled,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            if settled().await == Some(a) {
                break;
            }
        }
        let leader = c.wait_leader(Duration::from_secs(15)).await;
        let mut client = AdminClient::new(&c.endpoints(), None)?;
        client.deadline = Duration::from_secs(20);
        // Warm the client's connections to every node.
        for ep in c.endpoints() {
            let _ = client
                .stub(&ep)?
                .get_node_status(pb::NodeStatusRequest {})
                .await;
        }
        let name = format!("failover-{round}");
        c.kill(leader);
        let t = Instant::now();
        let p = cluster(&name);
        client
            .call(|mut s| {
                let p = p.clone();
                async move {
                    s.add_cluster(pb::AddClusterRequest { cluster: Some(p) })
                        .await
                }
            })
            .await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        out.push(ms);
        eprintln!(
            "failover {round:>2}: killed node {leader} at {:?}, next write acked after {ms:.0} ms",
            std::time::SystemTime::now() - t.elapsed()
        );
        c.restart(leader);
        let cat = c.client();
        let target = c.node(leader).admin.clone();
        wait_until("restarted node catches up", Duration::from_secs(30), || {
            let (cat, target, name) = (&cat, target.clone(), name.clone());
            async move {
                let r = cat
                    .stub(&target)
                    .ok()?
                    .get_cluster(pb::GetClusterRequest { name, stale: true })
                    .await;
                r.ok().map(|_| ())
            }
        })
        .await;
    }
    Ok(out)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!(
        "guardian-bench: 3 guardian processes on 127.0.0.1, fsync on; {} clients, {} s",
        a.clients, a.secs
    );
    let mut c = TestCluster::start_with(3, &a.extra_config.replace("\\n", "\n")).await;
    let mut g = guardian_run(&c, a.clients, a.secs).await?;
    println!("{}", g.line("guardian (3 nodes)"));
    let mut g1 = guardian_run(&c, 1, a.latency_secs).await?;
    println!("{}", g1.line("guardian, 1 client"));

    if !a.skip_etcd {
        match start_etcd(&a.etcd).await {
            Ok(mut etcd) => {
                let mut e = etcd_run(&etcd, a.clients, a.secs).await?;
                println!("{}", e.line("etcd (3 members)"));
                let mut e1 = etcd_run(&etcd, 1, a.latency_secs).await?;
                println!("{}", e1.line("etcd, 1 client"));
                println!(
                    "ratio guardian/etcd: throughput {:.2}x, 1-client p99 {:.2} ms vs {:.2} ms",
                    g.rate() / e.rate(),
                    g1.pct(0.99),
                    e1.pct(0.99)
                );
                if a.failovers > 0 {
                    let mut f = etcd_failover(&mut etcd, a.failovers).await?;
                    println!(
                        "etcd failover (SIGKILL leader -> next acked put), {} rounds: p50 {:.0} ms  p99 {:.0} ms  min {:.0} ms  max {:.0} ms",
                        f.len(),
                        pct(&mut f, 0.5),
                        pct(&mut f, 0.99),
                        pct(&mut f, 0.0),
                        pct(&mut f, 1.0)
                    );
                }
            }
            Err(e) => println!("etcd comparison skipped: {e:#} (apt-get install etcd-server)"),
        }
    }

    if a.failovers > 0 {
        let mut f = failover(&mut c, a.failovers).await?;
        println!(
            "failover (SIGKILL leader -> next acked write), {} rounds: p50 {:.0} ms  p99 {:.0} ms  min {:.0} ms  max {:.0} ms",
            f.len(),
            pct(&mut f, 0.5),
            pct(&mut f, 0.99),
            pct(&mut f, 0.0),
            pct(&mut f, 1.0)
        );
    }
    Ok(())
}
