//! What `guardian dev` governs: a simulated federation (`guardian-sim`,
//! in this process) or a real Kafka cluster (`--kafka`), registered with
//! the dev controller through the same admin API an operator uses
//! (`cluster add`, `broker add` with each reporter, `cluster discover`:
//! [`AdminClient::register_cluster`]).
//!
//! The simulated brokers and reporters take ports from the same band as
//! the nodes (below the ephemeral range) and keep them in `DIR/sim.json`,
//! so a resumed `guardian dev` serves the same addresses the registry
//! holds (the simulated data restarts from its seed).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use guardian_controller::client::AdminClient;
use guardian_proto::pb;
use guardian_sim::SimCluster;
use serde::{Deserialize, Serialize};

/// The shape of the simulated federation (`guardian dev` flags).
#[derive(Debug, Clone)]
pub struct SimShape {
    pub clusters: u32,
    pub brokers: u32,
    pub disks: u32,
    pub partitions: u32,
    pub disk_bytes: u64,
    pub seed: u64,
    pub speed: f64,
}

/// Ports of one simulated cluster, kept across runs.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct SimPorts {
    name: String,
    brokers: Vec<u16>,
    reporters: Vec<u16>,
}

/// A simulated host's page cache (every broker the same).
const PAGE_CACHE: u64 = 2 << 30;

/// Starts the federation and registers every cluster; the clusters serve
/// until dropped.
pub async fn start(
    dir: &Path,
    shape: &SimShape,
    client: &AdminClient,
) -> anyhow::Result<Vec<SimCluster>> {
    let path = dir.join("sim.json");
    let kept: Vec<SimPorts> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut ports = Vec::new();
    for i in 0..shape.clusters {
        let name = format!("sim-{i}");
        let spec = guardian_sim::generated(
            shape.brokers,
            shape.disks,
            shape.partitions,
            shape.disk_bytes,
            shape.seed + i as u64,
        );
        let old = kept
            .iter()
            .find(|k| k.name == name && k.brokers.len() == shape.brokers as usize);
        // New ports from the dev band (below the ephemeral range), like the
        // nodes', so nothing takes them while dev is stopped.
        let (broker_ports, reporter_ports) = match old {
            Some(k) => (k.brokers.clone(), k.reporters.clone()),
            None => {
                let n = shape.brokers as usize;
                let mut p = super::dev::free_ports(2 * n)?;
                let reporters = p.split_off(n);
                (p, reporters)
            }
        };
        let mut c = SimCluster::from_spec_on(&name, "127.0.0.1", &spec, shape.speed, &broker_ports)
            .await
            .with_context(|| {
                format!(
                    "starting simulated cluster {name} (ports in {})",
                    path.display()
                )
            })?;
        c.serve_reporters("127.0.0.1", PAGE_CACHE, &reporter_ports)
            .await
            .with_context(|| format!("serving {name}'s reporters"))?;
        c.run_traffic(Duration::from_millis(500));
        ports.push(SimPorts {
            name: name.clone(),
            brokers: c.brokers.iter().map(|b| port_of(&b.1)).collect(),
            reporters: c.reporters.iter().map(|r| port_of(&r.1)).collect(),
        });
        let (cluster, brokers) = c.registration(&spec, "dev");
        client.register_cluster(cluster, &brokers).await?;
        out.push(c);
    }
    std::fs::write(&path, serde_json::to_string_pretty(&ports)?)?;
    Ok(out)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// `--kafka HOST:PORT`: registers a real cluster as `kafka` and discovers
/// its brokers (no reporters: add them with `guardian broker add`).
pub async fn register_kafka(client: &AdminClient, bootstrap: &str) -> anyhow::Result<()> {
    let cluster = pb::Cluster {
        name: "kafka".into(),
        bootstrap_servers: bootstrap.split(',').map(str::to_string).collect(),
        idc: "dev".into(),
        ..Default::default()
    };
    Ok(client.register_cluster(cluster, &[]).await?)
}

/// Once every simulated broker's load has been collected, proposes a
/// rebalance of each cluster (left for the operator to approve) and says
/// how to see it. Gives up quietly after two minutes.
pub async fn first_proposals(client: &AdminClient, sims: &[String], endpoints: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for name in sims {
        loop {
            let load = client
                .call(|mut s| {
                    let cluster = name.clone();
                    async move { s.load_cluster(pb::LoadClusterRequest { cluster }).await }
                })
                .await;
            match load {
                Ok(l) if l.brokers > 0 && l.stale_brokers == 0 => break,
                _ if Instant::now() > deadline => return,
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let r = client
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
            .await;
        match r {
            Ok(p) => {
                let v: serde_json::Value = serde_json::from_str(&p.json).unwrap_or_default();
                let e = &v["execution"];
                match e["id"].as_u64() {
                    Some(id) => println!(
                        "{}: proposal {id} waiting ({} moves, {} bytes): guardian --endpoints {endpoints} rebalance show {id}; … rebalance approve {id}",
                        name,
                        v["tasks"].as_array().map_or(0, |t| t.len()),
                        e["summary"]["bytes_to_move"]
                    ),
                    None => println!("{name}: nothing to rebalance"),
                }
            }
            Err(e) => println!("{name}: no proposal ({})", e.message()),
        }
    }
}
