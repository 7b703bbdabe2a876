//! `guardian load …`: what the leader collected from the brokers' reporters.

use clap::Subcommand;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use guardian_proto::pb;
use serde_json::{json, Value};

use super::{CliError, Ctx};

#[derive(Subcommand, Debug)]
pub enum LoadCmd {
    /// Per-broker load and staleness of one cluster, with totals.
    Cluster { name: String },
    /// Hottest disks (utilisation, then write rate, then fullness).
    Disks {
        #[arg(long)]
        cluster: String,
        #[arg(long, default_value_t = 20)]
        top: u32,
    },
    /// Hottest partitions (bytes in, then size).
    Partitions {
        #[arg(long)]
        cluster: String,
        #[arg(long, default_value_t = 20)]
        top: u32,
    },
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

pub async fn run(c: &Ctx, cmd: LoadCmd) -> Result<(), CliError> {
    match cmd {
        LoadCmd::Cluster { name } => {
            let r = c
                .client
                .call(|mut s| {
                    let cluster = name.clone();
                    async move { s.load_cluster(pb::LoadClusterRequest { cluster }).await }
                })
                .await?;
            let brokers: Vec<Value> = r
                .broker_loads
                .iter()
                .map(|b| {
                    json!({
                        "broker_id": b.broker_id, "reporter_endpoint": b.reporter_endpoint,
                        "stale": b.stale, "stale_reason": if b.stale { json!(b.stale_reason) } else { Value::Null },
                        "last_ok_ms": b.last_ok_ms, "partitions": b.partitions,
                        "bytes_in_per_sec": b.bytes_in_per_sec, "bytes_in_median": b.bytes_in_median,
                        "bytes_in_p95": b.bytes_in_p95, "cpu_busy": b.cpu_busy,
                        "page_cache_bytes": b.page_cache_bytes, "used_bytes": b.used_bytes,
                        "capacity_bytes": b.capacity_bytes,
                        "history_buckets": b.history_buckets,
                        "history_first_bucket": b.history_first_bucket,
                        "recorded_partition_slot": b.recorded_partition_slot,
                        "bytes_out_per_sec": b.bytes_out_per_sec,
                        "bytes_out_median": b.bytes_out_median, "bytes_out_p95": b.bytes_out_p95,
                        "under_replicated_partitions": b.under_replicated_partitions,
                        "request_handler_idle": b.request_handler_idle,
                        "request_p99_ms": b.request_p99_ms,
                    })
                })
                .collect();
            let v = json!({
                "cluster": r.cluster, "brokers": r.brokers, "stale_brokers": r.stale_brokers,
                "bytes_in_per_sec": r.bytes_in_per_sec, "used_bytes": r.used_bytes,
                "capacity_bytes": r.capacity_bytes, "broker_loads": brokers,
            });
            c.out.json_or_line(v, {
                let mut t = table(&[
                    "BROKER",
                    "REPORTER",
                    "STATE",
                    "PARTITIONS",
                    "BYTES IN/S",
                    "BYTES OUT/S",
                    "URP",
                    "USED",
                    "CAPACITY",
                ]);
                let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
                for b in &r.broker_loads {
                    t.add_row(vec![
                        b.broker_id.to_string(),
                        b.reporter_endpoint.clone(),
                        if b.stale {
                            format!("stale: {}", b.stale_reason)
                        } else {
                            "fresh".into()
                        },
                        b.partitions.to_string(),
                        format!("{:.0}", b.bytes_in_per_sec),
                        opt(b.bytes_out_per_sec),
                        opt(b.under_replicated_partitions),
                        b.used_bytes.to_string(),
                        b.capacity_bytes.to_string(),
                    ]);
                }
                format!(
                    "cluster {}: {} brokers, {} stale, {:.0} bytes in/s\n{t}",
                    r.cluster, r.brokers, r.stale_brokers, r.bytes_in_per_sec
                )
            });
        }
        LoadCmd::Disks { cluster, top } => {
            let r = c
                .client
                .call(|mut s| {
                    let cluster = cluster.clone();
                    async move { s.load_disks(pb::LoadTopRequest { cluster, top }).await }
                })
                .await?;
            let v: Vec<Value> = r
                .disks
                .iter()
                .map(|d| {
                    json!({
                        "broker_id": d.broker_id, "path": d.path, "device": d.device,
                        "capacity_bytes": d.capacity_bytes, "free_bytes": d.free_bytes,
                        "write_bytes_per_sec": d.write_bytes_per_sec, "write_median": d.write_median,
                        "write_p95": d.write_p95, "read_bytes_per_sec": d.read_bytes_per_sec,
                        "utilization": d.utilization, "utilization_median": d.utilization_median,
                        "utilization_p95": d.utilization_p95, "stale": d.stale,
                    })
                })
                .collect();
            c.out.json_or_line(Value::Array(v), {
                let mut t = table(&[
                    "BROKER", "PATH", "DEVICE", "UTIL", "WRITE/S", "READ/S", "FREE", "CAPACITY",
                ]);
                for d in &r.disks {
                    t.add_row(vec![
                        d.broker_id.to_string(),
                        d.path.clone(),
                        d.device.clone(),
                        format!("{:.0} %", d.utilization * 100.0),
                        format!("{:.0}", d.write_bytes_per_sec),
                        format!("{:.0}", d.read_bytes_per_sec),
                        d.free_bytes.to_string(),
                        d.capacity_bytes.to_string(),
                    ]);
                }
                t.to_string()
            });
        }
        LoadCmd::Partitions { cluster, top } => {
            let r = c
                .client
                .call(|mut s| {
                    let cluster = cluster.clone();
                    async move { s.load_partitions(pb::LoadTopRequest { cluster, top }).await }
                })
                .await?;
            let v: Vec<Value> = r
                .partitions
                .iter()
                .map(|p| {
                    json!({
                        "broker_id": p.broker_id, "topic": p.topic, "partition": p.partition,
                        "log_dir": p.log_dir, "size_bytes": p.size_bytes,
                        "bytes_in_per_sec": p.bytes_in_per_sec, "future": p.future,
                        "bytes_in_median": p.bytes_in_median, "bytes_in_p95": p.bytes_in_p95,
                        "history_buckets": p.history_buckets,
                    })
                })
                .collect();
            c.out.json_or_line(Value::Array(v), {
                let mut t = table(&[
                    "BROKER",
                    "PARTITION",
                    "LOG DIR",
                    "SIZE",
                    "BYTES IN/S",
                    "P50 (1H)",
                    "P95 (1H)",
                    "MOVING",
                ]);
                for p in &r.partitions {
                    t.add_row(vec![
                        p.broker_id.to_string(),
                        format!("{}-{}", p.topic, p.partition),
                        p.log_dir.clone(),
                        p.size_bytes.to_string(),
                        format!("{:.0}", p.bytes_in_per_sec),
                        format!("{:.0}", p.bytes_in_median),
                        format!("{:.0}", p.bytes_in_p95),
                        if p.future { "yes" } else { "" }.to_string(),
                    ]);
                }
                t.to_string()
            });
        }
    }
    Ok(())
}
