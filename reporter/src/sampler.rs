//! Builds a [`pb::BrokerSnapshot`]: scans the log dirs and the host, and
//! derives rates from the previous sample (partition bytes and messages in,
//! per-disk read/write bytes and ops, utilisation, CPU, network).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use guardian_proto::domain::KafkaUuid;
use guardian_proto::pb;
use serde_json::{json, Value};

use crate::broker_metrics;
use crate::host::{self, DiskCounters};
use crate::kafka::{self, ScanCache};

struct Prev {
    at: Instant,
    disks: HashMap<(u32, u32), DiskCounters>,
    cpu: (u64, u64),
    net: (u64, u64),
}

/// Samples one broker. Keep it between calls: rates need the previous sample
/// and the log end offset scan resumes where it stopped.
pub struct Sampler {
    /// The broker's Prometheus endpoint, and the previous scrape with its time.
    broker_metrics: Option<String>,
    prev_scrape: Option<(Instant, broker_metrics::Scrape)>,
    dirs: Vec<PathBuf>,
    /// One per log dir.
    caches: Vec<ScanCache>,
    prev: Option<Prev>,
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        now.saturating_sub(before) as f64 / secs
    }
}

impl Sampler {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            caches: vec![ScanCache::default(); dirs.len()],
            dirs,
            prev: None,
            broker_metrics: None,
            prev_scrape: None,
        }
    }

    /// Also scrape the broker's Prometheus endpoint on every sample.
    pub fn with_broker_metrics(mut self, url: Option<String>) -> Self {
        self.broker_metrics = url;
        self
    }

    fn scrape(&mut self, warnings: &mut Vec<String>) -> Option<pb::BrokerMetrics> {
        let url = self.broker_metrics.clone()?;
        let now = Instant::now();
        let Some(s) = broker_metrics::scrape(&url, std::time::Duration::from_secs(2), warnings)
        else {
            return Some(pb::BrokerMetrics::default());
        };
        let mut m = pb::BrokerMetrics {
            scraped: true,
            under_replicated_partitions: s.under_replicated,
            request_handler_idle: s.handler_idle,
            request_p99_ms: s.request_p99_ms.clone().into_iter().collect(),
            ..Default::default()
        };
        if let Some((at, prev)) = &self.prev_scrape {
            let secs = now.duration_since(*at).as_secs_f64();
            let r = |now: f64, before: f64| {
                if secs > 0.0 {
                    (now - before).max(0.0) / secs
                } else {
                    0.0
                }
            };
            m.bytes_in_per_sec = r(s.total[0], prev.total[0]);
            m.bytes_out_per_sec = r(s.total[1], prev.total[1]);
            m.messages_in_per_sec = r(s.total[2], prev.total[2]);
            let mut topics: Vec<_> = s.topics.iter().collect();
            topics.sort_by(|a, b| a.0.cmp(b.0));
            for (t, v) in topics {
                let p = prev.topics.get(t).copied().unwrap_or(*v);
                m.topics.push(pb::TopicRates {
                    topic: t.clone(),
                    bytes_in_per_sec: r(v[0], p[0]),
                    bytes_out_per_sec: r(v[1], p[1]),
                    messages_in_per_sec: r(v[2], p[2]),
                });
            }
        }
        self.prev_scrape = Some((now, s));
        Some(m)
    }

    /// Takes a sample now.
    pub fn sample(&mut self) -> pb::BrokerSnapshot {
        let started = Instant::now();
        let mut warnings = Vec::new();
        let read = |p: &str, warnings: &mut Vec<String>| {
            std::fs::read_to_string(p).unwrap_or_else(|e| {
                warnings.push(format!("{p}: {e}"));
                String::new()
            })
        };
        let disks = host::diskstats(&read("/proc/diskstats", &mut warnings));
        let mem = host::meminfo(&read("/proc/meminfo", &mut warnings));
        let (cpu, cpus) = host::cpu(&read("/proc/stat", &mut warnings));
        let net = host::net(&read("/proc/net/dev", &mut warnings));
        let secs = self
            .prev
            .as_ref()
            .map_or(0.0, |p| started.duration_since(p.at).as_secs_f64());

        let mut snap = pb::BrokerSnapshot {
            broker_id: -1,
            taken_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            interval_secs: secs,
            ..Default::default()
        };
        let mut table = pb::PartitionTable::default();
        let mut topic_ix: HashMap<String, u32> = HashMap::new();
        let mut disks_now = HashMap::new();
        let scans = scan_all(&self.dirs, &mut self.caches);
        for (di, (dir, scan)) in self.dirs.iter().zip(scans).enumerate() {
            warnings.extend(scan.warnings);
            snap.pending_deletions.extend(scan.pending_deletions);
            if let Some(id) = scan.meta.broker_id {
                if snap.broker_id == -1 {
                    snap.broker_id = id;
                } else if snap.broker_id != id {
                    warnings.push(format!(
                        "{}: broker id {id} differs from {} in another log dir",
                        dir.display(),
                        snap.broker_id
                    ));
                }
            }
            if let Some(c) = scan.meta.cluster_id {
                if snap.cluster_id.is_empty() {
                    snap.cluster_id = c;
                } else if snap.cluster_id != c {
                    warnings.push(format!("{}: cluster id {c} differs", dir.display()));
                }
            }
            let mut ld = pb::LogDirSnapshot {
                path: dir.display().to_string(),
                directory_id: scan.meta.directory_id.unwrap_or_default(),
                ..Default::default()
            };
            match host::fs_space(dir) {
                Ok((cap, free)) => {
                    ld.capacity_bytes = cap;
                    ld.free_bytes = free;
                }
                Err(e) => warnings.push(format!("{}: statvfs: {e}", dir.display())),
            }
            if let Ok(dev) = host::device_of(dir) {
                match disks.get(&dev) {
                    Some((name, c)) => {
                        ld.device = name.clone();
                        if let Some(p) = self.prev.as_ref().and_then(|p| p.disks.get(&dev)) {
                            ld.read_bytes_per_sec = rate(c.read_bytes, p.read_bytes, secs);
                            ld.write_bytes_per_sec = rate(c.write_bytes, p.write_bytes, secs);
                            ld.read_ops_per_sec = rate(c.reads, p.reads, secs);
                            ld.write_ops_per_sec = rate(c.writes, p.writes, secs);
                            ld.utilization = (rate(c.busy_ms, p.busy_ms, secs) / 1000.0).min(1.0);
                        }
                        disks_now.insert(dev, *c);
                    }
                    None => ld.device = format!("{}:{}", dev.0, dev.1),
                }
            }
            for p in scan.partitions {
                let ti = *topic_ix.entry(p.topic.clone()).or_insert_with(|| {
                    table.topics.push(p.topic.clone());
                    table.topic_ids.push(Vec::new());
                    (table.topics.len() - 1) as u32
                });
                if let Some(id) = p.topic_id {
                    let known = &mut table.topic_ids[ti as usize];
                    if known.is_empty() {
                        *known = id.0.to_vec();
                    } else if known[..] != id.0[..] {
                        // A leftover of a deleted and re-created topic?
                        warnings.push(format!(
                            "{}: topic id {id} differs from the topic's other partitions",
                            p.path.display()
                        ));
                    }
                }
                let (bin, min) = match p.previous.filter(|_| self.prev.is_some()) {
                    Some((size, leo)) => (
                        rate(p.size_bytes, size, secs),
                        rate(p.log_end_offset.max(0) as u64, leo.max(0) as u64, secs),
                    ),
                    None => (0.0, 0.0),
                };
                ld.partitions_bytes += p.size_bytes;
                table.topic_index.push(ti);
                table.partition.push(p.partition);
                table.log_dir_index.push(di as u32);
                table.size_bytes.push(p.size_bytes);
                table.log_start_offset.push(p.log_start_offset);
                table.log_end_offset.push(p.log_end_offset);
                table.high_watermark.push(p.high_watermark);
                table.recovery_point.push(p.recovery_point);
                table.segments.push(p.segments);
                table.future.push(p.future);
                table.bytes_in_per_sec.push(bin);
                table.messages_in_per_sec.push(min);
            }
            snap.log_dirs.push(ld);
        }
        let prev = self.prev.as_ref();
        snap.host = Some(pb::HostStats {
            mem_total_bytes: mem.total,
            mem_available_bytes: mem.available,
            page_cache_bytes: mem.cached,
            dirty_bytes: mem.dirty,
            cpu_busy: prev.map_or(0.0, |p| {
                let dt = cpu.1.saturating_sub(p.cpu.1);
                if dt == 0 {
                    0.0
                } else {
                    cpu.0.saturating_sub(p.cpu.0) as f64 / dt as f64
                }
            }),
            net_rx_bytes_per_sec: prev.map_or(0.0, |p| rate(net.0, p.net.0, secs)),
            net_tx_bytes_per_sec: prev.map_or(0.0, |p| rate(net.1, p.net.1, secs)),
            cpus,
        });
        snap.partitions = Some(table);
        snap.broker_metrics = self.scrape(&mut warnings);
        snap.warnings = warnings;
        // Keep the previous disk counters of devices not seen this time.
        self.prev = Some(Prev {
            at: started,
            disks: disks_now,
            cpu,
            net,
        });
        snap.build_ms = started.elapsed().as_secs_f64() * 1000.0;
        snap
    }
}

/// The snapshot as JSON with one object per partition (what operators read).
pub fn snapshot_json(s: &pb::BrokerSnapshot) -> Value {
    let t = s.partitions.clone().unwrap_or_default();
    let dir = |i: u32| {
        s.log_dirs
            .get(i as usize)
            .map(|d| d.path.clone())
            .unwrap_or_default()
    };
    let parts: Vec<Value> = (0..t.partition.len())
        .map(|i| {
            let ti = t.topic_index[i] as usize;
            let id = t.topic_ids.get(ti).filter(|b| b.len() == 16).map(|b| {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                KafkaUuid(a).to_string()
            });
            json!({
                "topic": t.topics.get(ti),
                "partition": t.partition[i],
                "topic_id": id,
                "log_dir": dir(t.log_dir_index[i]),
                "size_bytes": t.size_bytes[i],
                "log_start_offset": t.log_start_offset[i],
                "log_end_offset": t.log_end_offset[i],
                "high_watermark": t.high_watermark[i],
                "recovery_point": t.recovery_point[i],
                "segments": t.segments[i],
                "future": t.future[i],
                "bytes_in_per_sec": t.bytes_in_per_sec[i],
                "messages_in_per_sec": t.messages_in_per_sec[i],
            })
        })
        .collect();
    let dirs: Vec<Value> = s
        .log_dirs
        .iter()
        .map(|d| {
            json!({
                "path": d.path, "device": d.device, "capacity_bytes": d.capacity_bytes,
                "free_bytes": d.free_bytes, "directory_id": d.directory_id,
                "partitions_bytes": d.partitions_bytes,
                "read_bytes_per_sec": d.read_bytes_per_sec, "write_bytes_per_sec": d.write_bytes_per_sec,
                "read_ops_per_sec": d.read_ops_per_sec, "write_ops_per_sec": d.write_ops_per_sec,
                "utilization": d.utilization,
            })
        })
        .collect();
    let h = s.host.unwrap_or_default();
    json!({
        "broker_id": s.broker_id,
        "cluster_id": s.cluster_id,
        "taken_at_ms": s.taken_at_ms,
        "interval_secs": s.interval_secs,
        "build_ms": s.build_ms,
        "log_dirs": dirs,
        "partitions": parts,
        "pending_deletions": s.pending_deletions,
        "host": {
            "mem_total_bytes": h.mem_total_bytes, "mem_available_bytes": h.mem_available_bytes,
            "page_cache_bytes": h.page_cache_bytes, "dirty_bytes": h.dirty_bytes,
            "cpu_busy": h.cpu_busy, "cpus": h.cpus,
            "net_rx_bytes_per_sec": h.net_rx_bytes_per_sec, "net_tx_bytes_per_sec": h.net_tx_bytes_per_sec,
        },
        "broker_metrics": s.broker_metrics.as_ref().map(|m| json!({
            "scraped": m.scraped,
            "bytes_in_per_sec": m.bytes_in_per_sec, "bytes_out_per_sec": m.bytes_out_per_sec,
            "messages_in_per_sec": m.messages_in_per_sec,
            "under_replicated_partitions": m.under_replicated_partitions,
            "request_handler_idle": m.request_handler_idle,
            "request_p99_ms": m.request_p99_ms,
            "topics": m.topics.iter().map(|t| json!({
                "topic": t.topic, "bytes_in_per_sec": t.bytes_in_per_sec,
                "bytes_out_per_sec": t.bytes_out_per_sec, "messages_in_per_sec": t.messages_in_per_sec,
            })).collect::<Vec<_>>(),
        })),
        "warnings": s.warnings,
    })
}

/// Scans every log dir, in parallel over at most as many threads as there
/// are cores (each thread takes a contiguous share of the dirs): a broker's
/// disks are independent, and most of a scan is kernel path lookups.
fn scan_all(dirs: &[PathBuf], caches: &mut [ScanCache]) -> Vec<kafka::LogDirScan> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(dirs.len());
    if threads <= 1 {
        return (dirs.iter().zip(caches.iter_mut()))
            .map(|(d, c)| kafka::scan_log_dir(d, c))
            .collect();
    }
    let per = dirs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (dirs.chunks(per).zip(caches.chunks_mut(per)))
            .map(|(ds, cs)| {
                s.spawn(move || {
                    (ds.iter().zip(cs.iter_mut()))
                        .map(|(d, c)| kafka::scan_log_dir(d, c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(dirs.chunks(per))
            .flat_map(|(h, ds)| {
                h.join().unwrap_or_else(|_| {
                    ds.iter()
                        .map(|d| kafka::LogDirScan {
                            warnings: vec![format!("{}: scan failed (panicked)", d.display())],
                            ..Default::default()
                        })
                        .collect()
                })
            })
            .collect()
    })
}
