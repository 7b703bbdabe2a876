//! A demo consumer worker: joins a pool, runs what the controller assigns,
//! spends `--cost-us` of CPU per record (fast and slow workers, heavy
//! partitions), and with `--log FILE` appends one line per record
//! processed (`p TOPIC PARTITION OFFSET AT_MS`, wall clock) and per commit (`c TOPIC
//! PARTITION NEXT_OFFSET EPOCH WHY SENT_AT_MS`), each flushed before it
//! counts.
//!
//!   guardian-worker --endpoints 127.0.0.1:7001 --id w1 --pool p \
//!     --capacity 2 --cost-us 200 --kafka auto.offset.reset=earliest
//!
//! With `--output-topic OUT --transactional-id-prefix P` it copies each
//! record to `OUT` (key `TOPIC/PARTITION/OFFSET`, the same payload) inside
//! the input partition's transaction: exactly once for `read_committed`
//! readers. `--ca-file` speaks TLS to the controller.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
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
    /// Speak TLS to the controller, trusting this CA (PEM).
    #[arg(long, env = "GUARDIAN_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Exactly-once: one transactional producer per input partition
    /// (`transactional.id = PREFIX.CLUSTER.GROUP.TOPIC.PARTITION`).
    #[arg(long)]
    transactional_id_prefix: Option<String>,
    /// Copy every record here, inside its input partition's transaction
    /// (needs --transactional-id-prefix).
    #[arg(long)]
    output_topic: Option<String>,
}

/// Usage errors, found before any network I/O: each names its flag.
fn validate(a: &Args) -> Result<BTreeMap<String, String>, String> {
    if a.endpoints.iter().all(|e| e.trim().is_empty()) {
        return Err("--endpoints is required (or GUARDIAN_ENDPOINTS)".into());
    }
    if a.id.trim().is_empty() {
        return Err("--id must not be empty".into());
    }
    if a.pool.trim().is_empty() {
        return Err("--pool must not be empty".into());
    }
    if !(a.capacity.is_finite() && a.capacity > 0.0) {
        return Err(format!(
            "--capacity {}: must be a positive number",
            a.capacity
        ));
    }
    if let Some(c) = a.fixed_cpu {
        if !(c.is_finite() && c >= 0.0) {
            return Err(format!("--fixed-cpu {c}: must be a number >= 0"));
        }
    }
    if a.commit_interval_ms == 0 {
        return Err("--commit-interval-ms must be at least 1".into());
    }
    if let Some(p) = &a.transactional_id_prefix {
        if p.trim().is_empty() {
            return Err("--transactional-id-prefix must not be empty".into());
        }
    }
    if let Some(t) = &a.output_topic {
        if t.trim().is_empty() {
            return Err("--output-topic must not be empty".into());
        }
        if a.transactional_id_prefix.is_none() {
            return Err(format!(
                "--output-topic {t} needs --transactional-id-prefix (outputs are written inside the input partition's transaction)"
            ));
        }
    }
    let mut kafka = BTreeMap::new();
    for kv in &a.kafka {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                kafka.insert(k.to_string(), v.to_string());
            }
            _ => return Err(format!("--kafka {kv}: expected KEY=VALUE")),
        }
    }
    Ok(kafka)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let kafka = match validate(&a) {
        Ok(k) => k,
        Err(msg) => Args::command()
            .error(clap::error::ErrorKind::InvalidValue, msg)
            .exit(),
    };
    let ca_pem = match &a.ca_file {
        Some(f) => match std::fs::read(f) {
            Ok(pem) => Some(pem),
            Err(e) => Args::command()
                .error(
                    clap::error::ErrorKind::InvalidValue,
                    format!("--ca-file {}: {e}", f.display()),
                )
                .exit(),
        },
        None => None,
    };
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
        ca_pem,
        transactional_id_prefix: a.transactional_id_prefix.clone(),
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
    let output_topic = a.output_topic.clone();
    let handler = move |r: &guardian_consumer::Record| {
        let t = Instant::now();
        while t.elapsed() < cost {
            std::hint::spin_loop();
        }
        if let (Some(out), Some(o)) = (&output_topic, r.output) {
            let key = format!("{}/{}/{}", r.topic, r.partition, r.offset);
            if let Err(e) = o.send(
                out,
                None,
                Some(key.as_bytes()),
                r.payload.unwrap_or_default(),
            ) {
                // The transaction then fails to commit, and the partition
                // restarts from its committed offset.
                tracing::warn!(error = %e, "output");
            }
        }
        if let Some(f) = records.as_mut() {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            // One write per line: a reader never sees half of one.
            let line = format!("p {} {} {} {at}\n", r.topic, r.partition, r.offset);
            let _ = f.write_all(line.as_bytes());
            let _ = f.flush();
        }
    };
    let on_commit = move |c: &guardian_consumer::Commit| {
        if let Some(f) = commits.as_mut() {
            let line = format!(
                "c {} {} {} {} {} {}\n",
                c.part.1, c.part.3, c.offset, c.epoch, c.why, c.at_ms
            );
            let _ = f.write_all(line.as_bytes());
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
