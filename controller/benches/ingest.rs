//! Controller ingestion of reporter snapshots (goal: ≥ 1,000,000 partition
//! samples/s, p99 ≤ 10 ms per snapshot), on one thread.
//!
//! `cargo bench -p guardian-controller --bench ingest -- [--brokers 1000] [--partitions 4000] [--rounds 5]`
//!
//! Each round ingests one snapshot per broker: decode the protobuf bytes a
//! reporter sends (4 log dirs, N partitions, interned topics) and fold it
//! into the leader's load state (`collector::accept`: validation against the
//! registry, per-disk windows, per-partition last values). The network pull
//! itself is not included (see the reporter benchmark for a real call).
//!
//! Then it records slot 0 of per-partition history as the leader does
//! (`collector::partition_slot`), applies it to a registry as every node
//! does, and encodes the stored values: first with the partition lists
//! (a new leader, or lists that changed), then in steady state (means only).

use std::time::Instant;

use guardian_controller::load::{accept, partition_slot, recorded_lists, LoadState};
use guardian_meta_store::State;

use guardian_proto::domain::{self, Command};
use guardian_proto::pb;
use prost::Message;

/// Registers `brokers` brokers of cluster "k1".
fn registry(brokers: usize) -> State {
    let mut r = State::default();
    let mut apply = |c: Command| {
        let mut touched = Vec::new();
        r.apply(&domain::Request::new(1, c), &mut touched);
    };
    apply(Command::AddCluster(domain::Cluster {
        id: 0,
        name: "k1".into(),
        bootstrap_servers: vec!["k:9092".into()],
        idc: "dc1".into(),
        kafka_cluster_id: None,
        created_at_ms: 0,
    }));
    for b in 0..brokers {
        apply(Command::AddBroker(domain::Broker {
            cluster: "k1".into(),
            broker_id: b as i32,
            host: format!("b{b}"),
            rack: "r1".into(),
            idc: String::new(),
            reporter_endpoint: format!("b{b}:9300"),
            log_dirs: vec![domain::LogDir {
                path: "/data/0".into(),
                capacity_bytes: 4 << 40,
            }],
            nic_bytes_per_sec: 0,
            cpu_cores: 32,
            pool: None,
            registered_at_ms: 0,
        }));
    }
    r
}

/// Records slot 0 once: (build ms, log-entry bytes, apply ms, stored
/// bytes, store-encode ms).
fn record_slot(state: &LoadState, reg: &mut State) -> serde_json::Value {
    let t = Instant::now();
    let cmds = partition_slot(state, &recorded_lists(&reg.load.partitions), 0);
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let reqs: Vec<domain::Request> = cmds
        .into_iter()
        .map(|c| domain::Request::new(1, c))
        .collect();
    let entry_bytes: usize = reqs
        .iter()
        .map(|r| pb::Request::from(r.clone()).encoded_len())
        .sum();
    let t = Instant::now();
    let mut touched = Vec::new();
    for r in &reqs {
        reg.apply(r, &mut touched);
    }
    let apply_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let stored: usize = touched
        .iter()
        .filter_map(|k| reg.value_bytes(k))
        .map(|v| v.len())
        .sum();
    let encode_ms = t.elapsed().as_secs_f64() * 1e3;
    serde_json::json!({
        "commands": reqs.len(), "build_ms": build_ms, "log_entry_mib": entry_bytes as f64 / 1048576.0,
        "apply_ms": apply_ms, "stored_mib": stored as f64 / 1048576.0, "store_encode_ms": encode_ms,
    })
}

fn snapshot(broker: i32, parts: usize) -> Vec<u8> {
    let mut t = pb::PartitionTable::default();
    for i in 0..parts / 50 {
        t.topics.push(format!("topic-{i}"));
        t.topic_ids.push(vec![7; 16]);
    }
    for i in 0..parts {
        t.topic_index.push((i / 50) as u32);
        t.partition.push((i % 50) as i32);
        t.log_dir_index.push((i % 4) as u32);
        t.size_bytes.push(1 << 30);
        t.log_start_offset.push(1000);
        t.log_end_offset.push(1_000_000 + i as i64);
        t.high_watermark.push(1_000_000 + i as i64);
        t.recovery_point.push(999_000);
        t.segments.push(3);
        t.future.push(false);
        t.bytes_in_per_sec.push(1000.0 + i as f64);
        t.messages_in_per_sec.push(10.0);
    }
    pb::BrokerSnapshot {
        broker_id: broker,
        cluster_id: "k1".into(),
        taken_at_ms: 1,
        interval_secs: 10.0,
        log_dirs: (0..4)
            .map(|d| pb::LogDirSnapshot {
                path: format!("/data/{d}"),
                device: format!("nvme{d}n1"),
                capacity_bytes: 4 << 40,
                free_bytes: 1 << 40,
                write_bytes_per_sec: 1e8,
                utilization: 0.5,
                ..Default::default()
            })
            .collect(),
        partitions: Some(t),
        host: Some(pb::HostStats {
            cpu_busy: 0.3,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str, d: usize| {
        args.iter()
            .position(|a| a == n)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (brokers, parts, rounds) = (
        arg("--brokers", 1000),
        arg("--partitions", 4000),
        arg("--rounds", 5),
    );
    let bytes: Vec<Vec<u8>> = (0..brokers).map(|b| snapshot(b as i32, parts)).collect();
    let mut state = LoadState::default();
    let mut lat_us = Vec::with_capacity(brokers * rounds);
    let started = Instant::now();
    for round in 0..rounds {
        for (b, buf) in bytes.iter().enumerate() {
            let t = Instant::now();
            let snap = pb::BrokerSnapshot::decode(buf.as_slice()).expect("decode");
            let load = state.brokers.entry(("k1".into(), b as i32)).or_default();
            accept(
                load,
                b as i32,
                Some("k1"),
                snap,
                60_000 * round as u64 + 1,
                round as u64,
            )
            .expect("accept");
            lat_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    lat_us.sort_by(|a, b| a.total_cmp(b));
    let mut reg = registry(brokers);
    let first = record_slot(&state, &mut reg);
    let steady = record_slot(&state, &mut reg);
    let pct = |p: f64| lat_us[((lat_us.len() - 1) as f64 * p).round() as usize] / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "brokers": brokers, "partitions_per_snapshot": parts, "rounds": rounds,
            "snapshot_bytes": bytes[0].len(),
            "partition_samples_per_sec": ((brokers * parts * rounds) as f64 / secs) as u64,
            "snapshots_per_sec": ((brokers * rounds) as f64 / secs) as u64,
            "per_snapshot_ms_p50": pct(0.5), "per_snapshot_ms_p99": pct(0.99),
            "per_snapshot_ms_max": pct(1.0),
            "partition_slot_with_lists": first, "partition_slot_steady": steady,
            "peak_rss_mib": std::fs::read_to_string("/proc/self/status")
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0) / 1024,
        })
    );
}
