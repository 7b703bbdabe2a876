//! `guardian dev`: a local 3-node controller group as three child
//! `guardian server` processes on 127.0.0.1, data in one directory, and
//! something to govern: a simulated federation (2 clusters × 12 brokers ×
//! 4 disks by default, `guardian-sim` in this process), a real cluster
//! (`--kafka`), or nothing (`--no-sim`).
//! Ports are chosen once and kept in `DIR/dev.json` (and `DIR/sim.json`),
//! so a second run resumes the same group from disk. Ctrl-C / SIGTERM stops
//! the nodes cleanly; a node that dies is reported, never restarted.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use guardian_controller::client::AdminClient;
use guardian_controller::config::NodeConfig;
use guardian_proto::pb;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

const NODES: u64 = 3;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where the three nodes keep their data (and logs).
    #[arg(long, default_value = "./guardian-data")]
    pub data_dir: PathBuf,
    /// A config file applied to all three nodes (any section of
    /// `guardian server`'s config — e.g. short `[governance]` and
    /// `[collect]` intervals for a demo — except the node's own keys).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The bare controller: no simulated federation.
    #[arg(long)]
    pub no_sim: bool,
    /// Govern this real Kafka cluster (bootstrap `HOST:PORT[,…]`, registered
    /// as `kafka`) instead of a simulated one.
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka: Option<String>,
    /// Simulated clusters.
    #[arg(long, default_value_t = 2)]
    pub sim_clusters: u32,
    /// Brokers per simulated cluster.
    #[arg(long, default_value_t = 12)]
    pub sim_brokers: u32,
    /// Log dirs per simulated broker.
    #[arg(long, default_value_t = 4)]
    pub sim_disks: u32,
    /// Partitions per simulated cluster (RF 3).
    #[arg(long, default_value_t = 240)]
    pub sim_partitions: u32,
    /// Size of every simulated log dir, GiB.
    #[arg(long, default_value_t = 1024)]
    pub sim_disk_gib: u64,
    /// The simulator's seed (cluster i uses seed + i).
    #[arg(long, default_value_t = 7)]
    pub sim_seed: u64,
    /// Simulated copies run this many times faster than the wall clock
    /// (at 600, a 50 MB/s throttle moves 1 TB in about half a minute).
    #[arg(long, default_value_t = 600.0)]
    pub sim_speed: f64,
}

/// The dev nodes' settings when they govern a federation, under the
/// `--config` file: short collection and governance rounds.
const DEMO: &str = "[collect]\ninterval-ms = 2000\n[governance]\ninterval-ms = 2000\n";

/// The keys each dev node sets for itself.
const OWN_KEYS: [&str; 7] = [
    "node-id",
    "data-dir",
    "admin-listen",
    "raft-listen",
    "http-listen",
    "advertise-admin",
    "advertise-raft",
];

/// `base` with every table and key of `extra` laid over it.
fn merge(base: &mut toml::Value, extra: &toml::Value) {
    match (base, extra) {
        (toml::Value::Table(b), toml::Value::Table(e)) => {
            for (k, v) in e {
                match b.get_mut(k) {
                    Some(bv) if bv.is_table() && v.is_table() => merge(bv, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// A dev node's config: the defaults, then `extra` (the `--config` file).
fn node_config(
    n: &DevNode,
    data: PathBuf,
    extra: Option<&toml::Value>,
) -> anyhow::Result<NodeConfig> {
    let mut cfg = NodeConfig::new(n.id, data, n.admin.clone(), n.raft.clone());
    cfg.http_listen = n.http.clone();
    let Some(extra) = extra else {
        return Ok(cfg);
    };
    if let Some(k) = OWN_KEYS.iter().find(|k| extra.get(**k).is_some()) {
        anyhow::bail!("--config: `{k}` is set by `guardian dev` for each node; leave it out");
    }
    let mut v = toml::Value::try_from(&cfg)?;
    merge(&mut v, extra);
    let cfg: NodeConfig = v.try_into().map_err(|e| anyhow::anyhow!("--config: {e}"))?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("--config: {e}"))?;
    Ok(cfg)
}

#[derive(Serialize, Deserialize)]
struct DevLayout {
    nodes: Vec<DevNode>,
}

#[derive(Serialize, Deserialize, Clone)]
struct DevNode {
    id: u64,
    admin: String,
    raft: String,
    /// `/metrics` (absent in a `dev.json` written before it existed: a
    /// port is chosen then).
    #[serde(default)]
    http: Option<String>,
}

/// `n` distinct free ports from the 6,000 just below the kernel's ephemeral
/// range. Port-0 binds and outgoing connections only take ephemeral ports,
/// so nothing else grabs a stopped dev node's port before the next run
/// resumes on it. (The test harness uses the band below this one.)
pub(super) fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    const BAND: u32 = 6000;
    let lo = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let top = lo.max(1024 + BAND);
    let start = std::process::id() * 61;
    // Hold the listeners until all are found so the ports are distinct.
    let mut held = Vec::with_capacity(n);
    for i in 0..BAND {
        if held.len() == n {
            break;
        }
        let port = (top - BAND + (start + i) % BAND) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        bail!(
            "fewer than {n} free ports in 127.0.0.1:{}..{top}",
            top - BAND
        );
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

fn layout(dir: &Path) -> anyhow::Result<DevLayout> {
    let path = dir.join("dev.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        let mut l: DevLayout =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if l.nodes.iter().any(|n| n.http.is_none()) {
            let ports = free_ports(l.nodes.len())?;
            for (n, p) in l.nodes.iter_mut().zip(ports) {
                n.http.get_or_insert(format!("127.0.0.1:{p}"));
            }
            std::fs::write(&path, serde_json::to_string_pretty(&l)?)?;
        }
        return Ok(l);
    }
    let ports = free_ports(3 * NODES as usize)?;
    let nodes = (0..NODES as usize)
        .map(|i| DevNode {
            id: i as u64 + 1,
            admin: format!("127.0.0.1:{}", ports[3 * i]),
            raft: format!("127.0.0.1:{}", ports[3 * i + 1]),
            http: Some(format!("127.0.0.1:{}", ports[3 * i + 2])),
        })
        .collect();
    let l = DevLayout { nodes };
    std::fs::write(&path, serde_json::to_string_pretty(&l)?)?;
    Ok(l)
}

fn spawn(dir: &Path, n: &DevNode, extra: Option<&toml::Value>) -> anyhow::Result<Child> {
    let node_dir = dir.join(format!("node-{}", n.id));
    std::fs::create_dir_all(&node_dir)?;
    let cfg = node_config(n, node_dir.join("data"), extra)?;
    let cfg_path = node_dir.join("guardian.toml");
    std::fs::write(&cfg_path, toml::to_string(&cfg)?)?;
    let log = std::fs::File::create(node_dir.join("guardian.log"))?;
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .arg("server")
        .arg("--config")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("spawning guardian server")?;
    Ok(child)
}

async fn wait_ready(
    client: &AdminClient,
    nodes: &[DevNode],
) -> anyhow::Result<Vec<pb::NodeStatus>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut out = Vec::new();
        for n in nodes {
            let mut stub = client.stub(&n.admin)?;
            match stub.get_node_status(pb::NodeStatusRequest {}).await {
                Ok(r) => out.push(r.into_inner()),
                Err(_) => break,
            }
        }
        if out.len() == nodes.len() {
            return Ok(out);
        }
        if Instant::now() > deadline {
            bail!("nodes did not come up within 30 s; see the guardian.log files");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_all(children: &mut [(u64, Child)]) {
    for (_, c) in children.iter() {
        if let Some(pid) = c.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for (id, c) in children.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(10), c.wait()).await {
            Ok(_) => eprintln!("node {id} stopped"),
            Err(_) => {
                let _ = c.kill().await;
                eprintln!("node {id} did not stop in 10 s; killed");
            }
        }
    }
}

async fn run_inner(a: &DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let dir = a.data_dir.canonicalize()?;
    let l = layout(&dir)?;
    let user: Option<toml::Value> = match &a.config {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --config {}", p.display()))?;
            Some(toml::from_str(&text).with_context(|| format!("--config {}", p.display()))?)
        }
    };
    let governs = !a.no_sim || a.kafka.is_some();
    let extra: Option<toml::Value> = match (governs, user) {
        (false, u) => u,
        (true, u) => {
            let mut v: toml::Value = toml::from_str(DEMO)?;
            if let Some(u) = &u {
                merge(&mut v, u);
            }
            Some(v)
        }
    };
    // Checked once before any node starts.
    node_config(&l.nodes[0], dir.join("check"), extra.as_ref())?;
    let mut children = Vec::new();
    for n in &l.nodes {
        children.push((n.id, spawn(&dir, n, extra.as_ref())?));
    }
    let endpoints: Vec<String> = l.nodes.iter().map(|n| n.admin.clone()).collect();
    let client = AdminClient::new(&endpoints, None)?;
    let statuses = match wait_ready(&client, &l.nodes).await {
        Ok(s) => s,
        Err(e) => {
            stop_all(&mut children).await;
            return Err(e);
        }
    };
    if statuses.iter().all(|s| !s.initialized) {
        let members = l
            .nodes
            .iter()
            .map(|n| pb::NodeSpec {
                id: n.id,
                raft_addr: n.raft.clone(),
                admin_addr: n.admin.clone(),
            })
            .collect();
        client
            .stub(&l.nodes[0].admin)?
            .initialize(pb::InitializeRequest { members })
            .await
            .context("initializing the controller group")?;
        eprintln!(
            "initialized a new 3-node controller group in {}",
            dir.display()
        );
    } else {
        eprintln!("resumed the controller group from {}", dir.display());
    }
    // Wait for a leader.
    let status = client
        .call(|mut s| async move { s.raft_status(pb::RaftStatusRequest {}).await })
        .await?;
    let mut leader = status.leader_id;
    let deadline = Instant::now() + Duration::from_secs(10);
    while leader == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader = client
            .call(|mut s| async move { s.raft_status(pb::RaftStatusRequest {}).await })
            .await?
            .leader_id;
    }
    for n in &l.nodes {
        println!(
            "node {}: admin {}  raft {}  metrics http://{}/metrics  (log: {})",
            n.id,
            n.admin,
            n.raft,
            n.http.as_deref().unwrap_or("-"),
            dir.join(format!("node-{}/guardian.log", n.id)).display()
        );
    }
    println!("leader: node {leader}");
    if let Some(h) = l
        .nodes
        .iter()
        .find(|n| n.id == leader)
        .and_then(|n| n.http.as_deref())
    {
        println!(
            "dashboard: http://{h}/ui/  (the leader's; any token logs in while none is configured)"
        );
    }
    let eps = endpoints.join(",");
    let sims = match (&a.kafka, a.no_sim) {
        (Some(k), _) => {
            if let Err(e) = super::dev_sim::register_kafka(&client, k).await {
                stop_all(&mut children).await;
                return Err(e);
            }
            println!("governing Kafka cluster `kafka` at {k}");
            Vec::new()
        }
        (None, true) => Vec::new(),
        (None, false) => {
            let shape = super::dev_sim::SimShape {
                clusters: a.sim_clusters,
                brokers: a.sim_brokers,
                disks: a.sim_disks,
                partitions: a.sim_partitions,
                disk_bytes: a.sim_disk_gib << 30,
                seed: a.sim_seed,
                speed: a.sim_speed,
            };
            match super::dev_sim::start(&dir, &shape, &client).await {
                Ok(s) => s,
                Err(e) => {
                    stop_all(&mut children).await;
                    return Err(e);
                }
            }
        }
    };
    for c in &sims {
        println!(
            "simulated cluster {}: {} brokers, bootstrap {}",
            c.name,
            c.brokers.len(),
            c.bootstrap()[0]
        );
    }
    if !sims.is_empty() {
        println!(
            "try:    guardian --endpoints {eps} load cluster {}   (abnormal, events, rebalance list)",
            sims[0].name
        );
        let client = AdminClient::new(&endpoints, None)?;
        let eps = eps.clone();
        let names: Vec<String> = sims.iter().map(|c| c.name.clone()).collect();
        tokio::spawn(async move {
            super::dev_sim::first_proposals(&client, &names, &eps).await;
        });
    }
    println!("export GUARDIAN_ENDPOINTS={}", endpoints.join(","));
    println!(
        "try:    guardian --endpoints {} raft status",
        endpoints.join(",")
    );
    println!("Ctrl-C stops all nodes; run `guardian dev` again to resume from disk.");

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut alive: Vec<u64> = l.nodes.iter().map(|n| n.id).collect();
    loop {
        let exited = async {
            loop {
                for (id, c) in children.iter_mut() {
                    if alive.contains(id) {
                        if let Ok(Some(st)) = c.try_wait() {
                            return (*id, st);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            (id, st) = exited => {
                eprintln!("node {id} exited ({st}); not restarting it (run `guardian dev` again to bring it back)");
                alive.retain(|a| *a != id);
                if alive.is_empty() {
                    eprintln!("all nodes have exited");
                    return Ok(());
                }
            }
        }
    }
    eprintln!("stopping nodes…");
    stop_all(&mut children).await;
    Ok(())
}

pub async fn run(a: &DevArgs) -> ExitCode {
    match run_inner(a).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> DevNode {
        DevNode {
            id: 2,
            admin: "127.0.0.1:1".into(),
            raft: "127.0.0.1:2".into(),
            http: Some("127.0.0.1:3".into()),
        }
    }

    #[test]
    fn a_config_file_applies_to_every_node_but_not_its_own_keys() {
        let extra: toml::Value =
            toml::from_str("[governance]\ninterval-ms = 1000\nmode = \"enforce\"\n[collect]\ninterval-ms = 500\ntimeout-ms = 400\n")
                .unwrap();
        let cfg = node_config(&node(), "/tmp/x".into(), Some(&extra)).unwrap();
        assert_eq!(cfg.governance.interval_ms, 1000);
        assert_eq!(cfg.collect.interval_ms, 500);
        assert_eq!(cfg.node_id, 2, "its own id kept");
        assert_eq!(cfg.executor, Default::default(), "the rest at defaults");
        let own: toml::Value = toml::from_str("node-id = 9\n").unwrap();
        let e = node_config(&node(), "/tmp/x".into(), Some(&own)).unwrap_err();
        assert!(e.to_string().contains("node-id"), "{e}");
        let bad: toml::Value = toml::from_str("[governance]\nbogus = 1\n").unwrap();
        let e = node_config(&node(), "/tmp/x".into(), Some(&bad)).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let invalid: toml::Value = toml::from_str("[governance]\ninterval-ms = 0\n").unwrap();
        let e = node_config(&node(), "/tmp/x".into(), Some(&invalid)).unwrap_err();
        assert!(e.to_string().contains("governance.interval-ms"), "{e}");
    }
}
