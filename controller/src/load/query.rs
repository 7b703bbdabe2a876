//! The views the `Load*` RPCs answer with, computed from the leader's
//! windows and the replicated registry (pure: `now` is an argument).

use guardian_meta_store::SmState;
use guardian_proto::pb;

use super::{LoadState, PartitionLoad};

fn top(n: u32) -> usize {
    if n == 0 {
        20
    } else {
        n as usize
    }
}

/// `LoadCluster`: every registered broker of `cluster` with its load (or
/// why it has none), and the cluster's sums.
pub fn cluster(
    load: &LoadState,
    sm: &SmState,
    cluster: &str,
    now: u64,
    interval_ms: u64,
) -> pb::LoadClusterResponse {
    let cluster = cluster.to_string();
    let mut out = pb::LoadClusterResponse {
        cluster: cluster.clone(),
        ..Default::default()
    };
    for b in sm.registry.brokers_of(&cluster) {
        let l = load.brokers.get(&(cluster.clone(), b.broker_id));
        let recorded_partition_slot = sm
            .load
            .partitions
            .get(&(cluster.clone(), b.broker_id))
            .and_then(|h| h.slots.last())
            .map_or(0, |(slot, _)| *slot);
        let reason = match l {
            Some(l) => l.stale_reason(now, interval_ms),
            None => Some("not collected yet (this leader is new, or just started)".into()),
        };
        let mut info = pb::BrokerLoadInfo {
            broker_id: b.broker_id,
            reporter_endpoint: b.reporter_endpoint.clone(),
            stale: reason.is_some(),
            stale_reason: reason.unwrap_or_default(),
            recorded_partition_slot,
            ..Default::default()
        };
        if let Some(l) = l {
            info.last_ok_ms = l.last_ok_ms.unwrap_or(0) as i64;
            info.partitions = l.partitions.len() as u64;
            info.bytes_in_per_sec = l.bytes_in.last;
            info.bytes_in_median = l.bytes_in.pct(0.5);
            info.bytes_in_p95 = l.bytes_in.pct(0.95);
            info.cpu_busy = l.cpu.last;
            info.page_cache_bytes = l.page_cache_bytes;
            info.history_buckets = l.bytes_in.len() as u32;
            info.history_first_bucket = l.bytes_in.first_bucket().unwrap_or(0);
            if let Some(m) = &l.metrics {
                info.bytes_out_per_sec = (!m.bytes_out.is_empty()).then_some(m.bytes_out.last);
                info.bytes_out_median = m.bytes_out.pct(0.5);
                info.bytes_out_p95 = m.bytes_out.pct(0.95);
                info.under_replicated_partitions = m.under_replicated;
                info.request_handler_idle = m.handler_idle;
                info.request_p99_ms = m.request_p99_ms.clone().into_iter().collect();
            }
            info.capacity_bytes = l.disks.iter().map(|d| d.capacity_bytes).sum();
            info.used_bytes = l
                .disks
                .iter()
                .map(|d| d.capacity_bytes.saturating_sub(d.free_bytes))
                .sum();
        }
        out.brokers += 1;
        out.stale_brokers += u32::from(info.stale);
        out.bytes_in_per_sec += info.bytes_in_per_sec;
        out.used_bytes += info.used_bytes;
        out.capacity_bytes += info.capacity_bytes;
        out.broker_loads.push(info);
    }
    out
}

/// `LoadDisks`: the hottest `n` disks of `cluster` (utilisation, then
/// write rate, then fullness); `n` = 0 means 20.
pub fn disks(
    load: &LoadState,
    cluster: &str,
    now: u64,
    interval_ms: u64,
    n: u32,
) -> Vec<pb::DiskLoadInfo> {
    let mut disks: Vec<pb::DiskLoadInfo> = load
        .brokers_of(cluster)
        .flat_map(|(id, b)| {
            let stale = b.stale_reason(now, interval_ms).is_some();
            b.disks.iter().map(move |d| pb::DiskLoadInfo {
                broker_id: id,
                path: d.path.clone(),
                device: d.device.clone(),
                capacity_bytes: d.capacity_bytes,
                free_bytes: d.free_bytes,
                write_bytes_per_sec: d.write.last,
                write_median: d.write.pct(0.5),
                write_p95: d.write.pct(0.95),
                read_bytes_per_sec: d.read.last,
                utilization: d.util.last,
                utilization_median: d.util.pct(0.5),
                utilization_p95: d.util.pct(0.95),
                stale,
            })
        })
        .collect();
    // Hottest first: utilisation, then write rate, then fullness.
    disks.sort_by(|a, b| {
        let full =
            |d: &pb::DiskLoadInfo| 1.0 - d.free_bytes as f64 / d.capacity_bytes.max(1) as f64;
        (b.utilization, b.write_bytes_per_sec, full(b))
            .partial_cmp(&(a.utilization, a.write_bytes_per_sec, full(a)))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    disks.truncate(top(n));
    disks
}

/// `LoadPartitions`: the hottest `n` partitions of `cluster` (bytes in,
/// then size); `n` = 0 means 20.
pub fn partitions(load: &LoadState, cluster: &str, n: u32) -> Vec<pb::PartitionLoadInfo> {
    // Hottest first (bytes in, then size). Pick the top N before building
    // answers: a cluster can hold millions of partitions, and the
    // window percentiles are computed only for those returned.
    let mut all: Vec<(i32, &PartitionLoad)> = load
        .brokers_of(cluster)
        .flat_map(|(id, b)| b.partitions.iter().map(move |p| (id, p)))
        .collect();
    let hotter = |a: &(i32, &PartitionLoad), b: &(i32, &PartitionLoad)| {
        (b.1.bytes_in_per_sec, b.1.size_bytes)
            .partial_cmp(&(a.1.bytes_in_per_sec, a.1.size_bytes))
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    let n = top(n).min(all.len());
    if n < all.len() {
        all.select_nth_unstable_by(n, hotter);
        all.truncate(n);
    }
    all.sort_by(hotter);
    all.into_iter()
        .map(|(id, p)| pb::PartitionLoadInfo {
            broker_id: id,
            topic: p.topic.clone(),
            partition: p.partition,
            log_dir: p.log_dir.clone(),
            size_bytes: p.size_bytes,
            bytes_in_per_sec: p.bytes_in_per_sec,
            future: p.future,
            bytes_in_median: p.bytes_in.pct(0.5),
            bytes_in_p95: p.bytes_in.pct(0.95),
            history_buckets: p.bytes_in.held() as u32,
        })
        .collect()
}
