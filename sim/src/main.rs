//! `guardian-sim`: serves a simulated federation on 127.0.0.1 and prints
//! one JSON line per cluster (its name and bootstrap address).

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
    /// The generator's seed (cluster i uses seed + i).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The address to listen on (a port per broker is chosen).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
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
        let p = guardian_planner::generate::GenParams {
            brokers: a.brokers,
            disks_per_broker: a.disks,
            racks: 3.min(a.brokers),
            idcs: 1,
            pools: 0,
            partitions: a.partitions,
            partitions_per_topic: 12,
            rf: 3.min(a.brokers),
            disk_capacity: 1 << 40,
            fill: 0.4,
            groups_per_topic: 2,
        };
        let spec = guardian_planner::generate::generate(&p, a.seed + i as u64);
        let name = format!("sim-{i}");
        let c = SimCluster::from_spec(&name, &a.host, &spec).await?;
        println!(
            "{}",
            serde_json::json!({"cluster": name, "bootstrap": c.bootstrap().join(",")})
        );
        clusters.push(c);
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
