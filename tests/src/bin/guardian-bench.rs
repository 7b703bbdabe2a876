//! guardian-bench: Raft write throughput and latency on 3 real `guardian`
//! processes (fsync on), the same load against a 3-member etcd, and leader
//! failover time (SIGKILL the leader, time to the next acknowledged write)
//! measured the same way for both.
//!
//! One system runs at a time: Guardian's processes are gone (and their data
//! removed) before etcd starts, or the other way round with `--etcd-first`;
//! alternate the order across runs.
//!
//!   cargo build --release -p guardian-cli && cargo build --release -p guardian-tests
//!   target/release/guardian-bench [--clients 64] [--secs 10] [--failovers 100] [--etcd-first]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use guardian_controller::client::AdminClient;
use guardian_proto::pb;
use guardian_proto::pb::guardian_admin_client::GuardianAdminClient;
use guardian_tests::bench::{drive, Run};
use guardian_tests::{cluster, TestCluster};
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
    /// Leader kills in the failover run (0 = skip). p99 is printed from 100
    /// rounds on; fewer print the maximum only.
    #[arg(long, default_value_t = 100)]
    failovers: usize,
    /// Measure etcd first, then Guardian (default: Guardian first).
    #[arg(long)]
    etcd_first: bool,
    /// Where both systems keep their data: a real disk, not a tmpfs `$TMPDIR`.
    #[arg(long, default_value = "/var/tmp")]
    data_dir: std::path::PathBuf,
    /// Skip the etcd comparison.
    #[arg(long)]
    skip_etcd: bool,
    /// etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd: String,
    /// Extra TOML appended to every guardian node's config (e.g. `"[raft]\nheartbeat-interval-ms = 20"`).
    #[arg(long, default_value = "")]
    extra_config: String,
    /// Send Guardian's writes without client request ids (by default each
    /// carries one, as `AdminClient` sends them, and apply keeps its result).
    #[arg(long)]
    no_request_ids: bool,
}

/// Tells this run's request ids from a previous run's.
fn rand_salt() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

async fn guardian_run(
    c: &TestCluster,
    clients: usize,
    secs: u64,
    ids: bool,
) -> anyhow::Result<Run> {
    let salt: u64 = rand_salt();
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
            let req = pb::SetPlacementPolicyRequest {
                policy: Some(policy),
            };
            stub.set_placement_policy(guardian_tests::bench::request(req, ids, salt, c, seq))
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

/// etcd members restart on their ports: take them from the harness's band
/// below the ephemeral range, as the guardian nodes do.
fn free_port() -> anyhow::Result<u16> {
    Ok(guardian_tests::reserve_port())
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

async fn start_etcd(bin: &str, base: &std::path::Path) -> anyhow::Result<Etcd> {
    let dir = tempfile::tempdir_in(base)?;
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

/// How often a failover round launches a write attempt.
const POLL: Duration = Duration::from_millis(10);
/// A round that sees no acknowledged write by then fails the run.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// One failover round, the same for both systems: the clock starts before
/// the SIGKILL; from then on a write attempt is launched every [`POLL`], and
/// none is cut short; the round ends at the first acknowledged attempt.
async fn time_to_ack<F, Fut>(kill: impl FnOnce(), attempt: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let t = Instant::now();
    kill();
    let mut inflight = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(POLL);
    let mut k = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if t.elapsed() > ROUND_LIMIT {
                    bail!("no write acknowledged within {ROUND_LIMIT:?} of the kill");
                }
                inflight.spawn(attempt(k));
                k += 1;
            }
            Some(done) = inflight.join_next() => {
                if let Ok(Ok(())) = done {
                    // Dropping the set aborts the attempts still in flight.
                    return Ok(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
}

/// The same settle rule for both systems before each kill: every member
/// reports the same (term, leader, last index, applied index), and still
/// does 300 ms later — so any survivor may win, and no restarted member is
/// still catching up or calling an election.
async fn settle<F, Fut>(what: &str, status: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<(u64, u64, u64, u64)>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(a) = status().await {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if status().await == Some(a) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{what} did not settle within 60 s");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every member's view agrees: `Some(view)`, else `None`.
fn agreed(views: Vec<Option<(u64, u64, u64, u64)>>) -> Option<(u64, u64, u64, u64)> {
    let first = (*views.first()?)?;
    views
        .iter()
        .all(|v| *v == Some(first) && first.1 != 0)
        .then_some(first)
}

async fn guardian_failover(c: &mut TestCluster, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for round in 0..n {
        settle("guardian", || async {
            let mut views = Vec::new();
            for id in 1..=c.nodes.len() as u64 {
                views.push(
                    c.node_status(id)
                        .await
                        .map(|s| (s.term, s.leader_id, s.last_log_index, s.last_applied_index)),
                );
            }
            agreed(views)
        })
        .await?;
        let leader = c.wait_leader(Duration::from_secs(15)).await;
        // A client of the survivors, as etcd's is.
        let survivors: Vec<String> = (c.nodes.iter().filter(|n| n.id != leader))
            .map(|n| n.admin.clone())
            .collect();
        let mut client = AdminClient::new(&survivors, None)?;
        client.deadline = ROUND_LIMIT;
        // Warm the client's connections.
        for ep in &survivors {
            let _ = client
                .stub(ep)?
                .get_node_status(pb::NodeStatusRequest {})
                .await;
        }
        let client = Arc::new(client);
        let ms = {
            let c = &mut *c;
            time_to_ack(
                || c.kill(leader),
                |k| {
                    let (client, name) = (client.clone(), format!("failover-{round}-{k}"));
                    async move {
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
                        Ok(())
                    }
                },
            )
            .await?
        };
        eprintln!(
            "guardian failover {round:>3}: node {leader} killed, next write acked after {ms:.0} ms"
        );
        out.push(ms);
        c.restart(leader);
    }
    Ok(out)
}

async fn etcd_status(ep: &str) -> Option<(u64, u64, u64, u64)> {
    let mut one = etcd_client::Client::connect([ep.to_string()], None)
        .await
        .ok()?;
    let s = tokio::time::timeout(Duration::from_millis(500), one.status())
        .await
        .ok()?
        .ok()?;
    Some((
        s.raft_term(),
        s.leader(),
        s.raft_index(),
        s.raft_applied_index(),
    ))
}

async fn etcd_failover(etcd: &mut Etcd, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for round in 0..n {
        settle("etcd", || async {
            let mut views = Vec::new();
            for ep in &etcd.endpoints {
                views.push(etcd_status(ep).await);
            }
            agreed(views)
        })
        .await?;
        let leader = etcd_leader(etcd).await?;
        let others: Vec<String> = (0..etcd.endpoints.len())
            .filter(|i| *i != leader)
            .map(|i| etcd.endpoints[i].clone())
            .collect();
        let mut kv = etcd_client::Client::connect(others, None).await?;
        kv.put("warm", "1", None).await?;
        let ms = {
            let child = &mut etcd.children[leader];
            time_to_ack(
                || {
                    let _ = child.kill();
                    let _ = child.wait();
                },
                |k| {
                    let mut kv = kv.clone();
                    async move {
                        kv.put(format!("failover-{round}-{k}"), "1", None).await?;
                        Ok(())
                    }
                },
            )
            .await?
        };
        eprintln!(
            "etcd failover {round:>3}: member {leader} killed, next put acked after {ms:.0} ms"
        );
        out.push(ms);
        etcd.children[leader] =
            spawn_etcd(&etcd.bin, &etcd.commands[leader], etcd.dir.path(), leader)?;
    }
    Ok(out)
}

/// "p50 … p99 … max …" — p99 only from 100 rounds on (below that the 99th
/// percentile is just the maximum).
fn failover_line(name: &str, v: &mut [f64]) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    let p99 = if v.len() >= 100 {
        format!("p99 {:.0} ms  ", at(0.99))
    } else {
        String::new()
    };
    format!(
        "{name} failover (SIGKILL leader -> next acked write), {} rounds: p50 {:.0} ms  {p99}max {:.0} ms  min {:.0} ms",
        v.len(),
        at(0.5),
        at(1.0),
        at(0.0)
    )
}

/// One system's figures.
struct Figures {
    many: Option<Run>,
    one: Option<Run>,
    failover: Vec<f64>,
}

async fn measure_guardian(a: &Args) -> anyhow::Result<Figures> {
    let mut c = TestCluster::start_in(&a.data_dir, 3, &a.extra_config.replace("\\n", "\n")).await;
    let mut g = guardian_run(&c, a.clients, a.secs, !a.no_request_ids).await?;
    println!("{}", g.line("guardian (3 nodes)"));
    g.ensure_ok("guardian writes")?;
    let mut g1 = guardian_run(&c, 1, a.latency_secs, !a.no_request_ids).await?;
    println!("{}", g1.line("guardian, 1 client"));
    g1.ensure_ok("guardian 1-client writes")?;
    let mut failover = Vec::new();
    if a.failovers > 0 {
        failover = guardian_failover(&mut c, a.failovers).await?;
        println!("{}", failover_line("guardian", &mut failover));
    }
    // `c` drops here: its processes are killed and its data removed before
    // the other system starts.
    Ok(Figures {
        many: Some(g),
        one: Some(g1),
        failover,
    })
}

async fn measure_etcd(a: &Args) -> anyhow::Result<Figures> {
    let mut etcd = start_etcd(&a.etcd, &a.data_dir)
        .await
        .context("etcd comparison (apt-get install etcd-server, or --skip-etcd)")?;
    let mut e = etcd_run(&etcd, a.clients, a.secs).await?;
    println!("{}", e.line("etcd (3 members)"));
    e.ensure_ok("etcd writes")?;
    let mut e1 = etcd_run(&etcd, 1, a.latency_secs).await?;
    println!("{}", e1.line("etcd, 1 client"));
    e1.ensure_ok("etcd 1-client writes")?;
    let mut failover = Vec::new();
    if a.failovers > 0 {
        failover = etcd_failover(&mut etcd, a.failovers).await?;
        println!("{}", failover_line("etcd", &mut failover));
    }
    Ok(Figures {
        many: Some(e),
        one: Some(e1),
        failover,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!(
        "guardian-bench: 3 processes on 127.0.0.1, fsync on, data under {} ({}); {} clients, {} s; one system at a time, {} first",
        a.data_dir.display(),
        guardian_tests::bench::fs_type(&a.data_dir),
        a.clients,
        a.secs,
        if a.etcd_first && !a.skip_etcd { "etcd" } else { "guardian" }
    );
    let (g, e) = if a.skip_etcd {
        (measure_guardian(&a).await?, None)
    } else if a.etcd_first {
        let e = measure_etcd(&a).await?;
        (measure_guardian(&a).await?, Some(e))
    } else {
        let g = measure_guardian(&a).await?;
        (g, Some(measure_etcd(&a).await?))
    };
    if let Some(e) = e {
        let (Some(gm), Some(mut g1), Some(em), Some(mut e1)) = (g.many, g.one, e.many, e.one)
        else {
            return Ok(());
        };
        println!(
            "ratio guardian/etcd: throughput {:.2}x; 1-client p50 {:.2} vs {:.2} ms, p99 {:.2} vs {:.2} ms",
            gm.rate() / em.rate(),
            g1.pct(0.5),
            e1.pct(0.5),
            g1.pct(0.99),
            e1.pct(0.99)
        );
        if !g.failover.is_empty() && !e.failover.is_empty() {
            let (mut gf, mut ef) = (g.failover, e.failover);
            let med = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            };
            let (gp, ep) = (med(&mut gf), med(&mut ef));
            println!(
                "ratio etcd/guardian failover p50: {:.2}x ({ep:.0} vs {gp:.0} ms)",
                ep / gp
            );
        }
    }
    Ok(())
}
