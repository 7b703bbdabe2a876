//! `guardian-sim`: serves a simulated federation on 127.0.0.1 and prints
//! one JSON line per cluster: its name, bootstrap list and each broker's
//! reporter endpoint (`guardian broker add … --reporter`).

use std::time::Duration;

use clap::Parser;
use guardian_sim::SimCluster;

#[derive(Parser)]
#[command(about = "A simulated Kafka federation speaking Kafka's wire protocol")]
struct Args {
    /// How many clusters.
    #[arg(long, default_value_t = 2)]
    clusters: u32,
    /// Brokers per cluster.
    #[arg(long, default_value_t = 12)]
    brokers: u32,
    /// Log dirs per broker.
    #[arg(long, default_value_t = 4)]
    disks: u32,
    /// Partitions per cluster.
    #[arg(long, default_value_t = 240)]
    partitions: u32,
    /// Size of every simulated log dir, GiB.
    #[arg(long, default_value_t = 1024)]
    disk_gib: u64,
    /// The generator's seed (cluster i uses seed + i).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Copies and moves run this many times faster than the wall clock.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Page cache of every simulated host.
    #[arg(long, default_value_t = 8 << 30)]
    page_cache_bytes: u64,
    /// The address to listen on (a port per broker and per reporter).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Stops a broker: `CLUSTER/BROKER` (e.g. `sim-0/3`), at `--at`.
    #[arg(long)]
    fail_broker: Vec<String>,
    /// Takes a log dir offline: `CLUSTER/BROKER/DIR` (e.g.
    /// `sim-0/3//data/3/kafka-1`), at `--at` (after the broker faults).
    #[arg(long)]
    fail_dir: Vec<String>,
    /// When the faults happen, in seconds after start (one per fault, in
    /// the order broker faults then dir faults, or one for all).
    #[arg(long, value_parser = parse_secs)]
    at: Vec<Duration>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let n = s.trim_end_matches('s');
    n.parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("{s:?}: seconds, e.g. 30s"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut clusters = Vec::new();
    for i in 0..a.clusters {
        let name = format!("sim-{i}");
        let spec = guardian_sim::generated(
            a.brokers,
            a.disks,
            a.partitions,
            a.disk_gib << 30,
            a.seed + i as u64,
        );
        let mut c = SimCluster::from_spec(&name, &a.host, &spec, a.speed).await?;
        c.serve_reporters(&a.host, a.page_cache_bytes, &[]).await?;
        c.run_traffic(Duration::from_millis(500));
        println!(
            "{}",
            serde_json::json!({
                "cluster": name,
                "bootstrap": c.bootstrap().join(","),
                "reporters": c.reporters.iter().map(|(id, addr)| serde_json::json!({"broker": id, "reporter": addr})).collect::<Vec<_>>(),
            })
        );
        clusters.push(c);
    }
    let faults = a
        .fail_broker
        .iter()
        .map(|f| (f, None))
        .chain(a.fail_dir.iter().map(|f| (f, Some(()))));
    for (i, (f, is_dir)) in faults.enumerate() {
        let parts: Vec<&str> = f.splitn(3, '/').collect();
        let (cluster, broker, dir) = match (parts.as_slice(), is_dir) {
            ([c, b], None) => (c.to_string(), b.parse::<i32>().ok(), None),
            ([c, b, d], Some(())) => (c.to_string(), b.parse::<i32>().ok(), Some(d.to_string())),
            _ => (String::new(), None, None),
        };
        let Some(broker) = broker else {
            anyhow::bail!(
                "{f:?}: --fail-broker CLUSTER/BROKER (sim-0/3) or --fail-dir CLUSTER/BROKER/DIR"
            );
        };
        let c = clusters
            .iter()
            .find(|c| c.name == cluster)
            .ok_or_else(|| anyhow::anyhow!("{f:?}: no cluster {cluster:?}"))?;
        let at =
            a.at.get(i)
                .or(a.at.last())
                .copied()
                .unwrap_or(Duration::ZERO);
        let model = c.model.clone();
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            match dir {
                None => {
                    model.set_alive(broker, false);
                    eprintln!("guardian-sim: stopped broker {broker} of {cluster}");
                }
                Some(d) => {
                    model.set_dir_failed(broker, &d, true);
                    eprintln!("guardian-sim: took {d} of broker {broker} of {cluster} offline");
                }
            }
        });
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
