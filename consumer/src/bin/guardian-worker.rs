//! A demo consumer worker: joins a pool, runs what the controller assigns,
//! spends `--cost-us` of CPU per record (fast and slow workers, heavy
//! partitions), and with `--log FILE` appends one line per record
//! processed (`p TOPIC PARTITION OFFSET`) and per commit (`c TOPIC
//! PARTITION NEXT_OFFSET EPOCH WHY SENT_AT_MS`), each flushed before it
//! counts.
//!
//!   guardian-worker --endpoints 127.0.0.1:7001 --id w1 --pool p \
//!     --capacity 2 --cost-us 200 --kafka auto.offset.reset=earliest

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::Parser;
use guardian_consumer::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    /// Controller admin endpoints, comma-separated.
    #[arg(long, env = "GUARDIAN_ENDPOINTS", value_delimiter = ',')]
    endpoints: Vec<String>,
    #[arg(long, env = "GUARDIAN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long)]
    id: String,
    #[arg(long)]
    pool: String,
    #[arg(long, default_value_t = 1.0)]
    capacity: f64,
    /// CPU spent per record, microseconds (a busy loop).
    #[arg(long, default_value_t = 0)]
    cost_us: u64,
    /// Report this CPU (cores) per partition instead of measuring.
    #[arg(long)]
    fixed_cpu: Option<f64>,
    /// rdkafka settings, KEY=VALUE (repeatable).
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// Commit unchanged (idle) offsets again this often.
    #[arg(long, default_value_t = 600_000)]
    recommit_interval_ms: u64,
    /// Append processed records and commits here.
    #[arg(long)]
    log: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    anyhow::ensure!(!a.endpoints.is_empty(), "--endpoints is required");
    let mut kafka = BTreeMap::new();
    for kv in &a.kafka {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--kafka {kv}: expected KEY=VALUE"))?;
        kafka.insert(k.to_string(), v.to_string());
    }
    let cfg = WorkerConfig {
        endpoints: a.endpoints.clone(),
        token: a.token.clone(),
        id: a.id.clone(),
        pool: a.pool.clone(),
        capacity: a.capacity,
        labels: BTreeMap::new(),
        kafka,
        commit_interval: Duration::from_millis(a.commit_interval_ms),
        recommit_interval: Duration::from_millis(a.recommit_interval_ms),
        fixed_cpu: a.fixed_cpu,
    };
    let open = |p: &std::path::Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let mut records = a.log.as_deref().map(open).transpose()?;
    let mut commits = a.log.as_deref().map(open).transpose()?;
    let cost = Duration::from_micros(a.cost_us);
    let handler = move |r: &guardian_consumer::Record| {
        let t = Instant::now();
        while t.elapsed() < cost {
            std::hint::spin_loop();
        }
        if let Some(f) = records.as_mut() {
            let _ = writeln!(f, "p {} {} {}", r.topic, r.partition, r.offset);
            let _ = f.flush();
        }
    };
    let on_commit = move |c: &guardian_consumer::Commit| {
        if let Some(f) = commits.as_mut() {
            let _ = writeln!(
                f,
                "c {} {} {} {} {} {}",
                c.part.1, c.part.3, c.offset, c.epoch, c.why, c.at_ms
            );
            let _ = f.flush();
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            s.cancel();
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let s = stop.clone();
        tokio::spawn(async move {
            term.recv().await;
            s.cancel();
        });
        Worker::new(cfg).run(handler, on_commit, stop).await
    })
}
