//! The `Reporter` gRPC API for one simulated broker: the snapshot a real
//! `guardian-reporter` would return beside it, built from the model (its
//! dirs, replicas, sizes and offsets) and the cluster's traffic.
//!
//! Rates come the way the real reporter derives them — from the previous
//! sample: a partition's bytes and messages in from its size and log end
//! growth, a dir's write rate from its bytes' growth (appends, copies and
//! `-future` moves alike). Reads are modelled: a lagging group reads its
//! partition from the leader's dir at the production rate (beyond the
//! page cache). Host figures: `page_cache_bytes` as configured, CPU and
//! network in proportion to the bytes moved.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use guardian_kafka::types::{OffsetSpec, TopicPartition};
use guardian_kafka::{KafkaAdmin, KafkaModel};
use guardian_proto::pb;
use guardian_proto::pb::reporter_server::{Reporter, ReporterServer};
use tonic::{Request, Response, Status};

use crate::traffic::Traffic;

/// The previous sample: when, each replica's (size, log end) and each
/// dir's bytes.
struct Prev {
    at: Instant,
    replicas: BTreeMap<(String, i32, bool), (i64, i64)>,
    dirs: BTreeMap<String, i64>,
}

/// One simulated broker's reporter.
pub struct SimReporter {
    model: Arc<KafkaModel>,
    traffic: Arc<Mutex<Traffic>>,
    broker: i32,
    cluster_id: String,
    page_cache_bytes: u64,
    prev: Mutex<Option<Prev>>,
}

impl SimReporter {
    pub fn new(
        model: Arc<KafkaModel>,
        traffic: Arc<Mutex<Traffic>>,
        broker: i32,
        cluster_id: &str,
        page_cache_bytes: u64,
    ) -> Self {
        SimReporter {
            model,
            traffic,
            broker,
            cluster_id: cluster_id.to_string(),
            page_cache_bytes,
            prev: Mutex::new(None),
        }
    }

    /// Serves the API on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let _ = tonic::transport::Server::builder()
            .add_service(ReporterServer::new(self).max_encoding_message_size(256 << 20))
            .serve_with_incoming(incoming)
            .await;
    }

    /// One snapshot, with rates since the previous one.
    pub async fn snapshot(&self) -> Result<pb::BrokerSnapshot, Status> {
        if !self.model.is_alive(self.broker) {
            return Err(Status::unavailable(format!(
                "broker {} is stopped",
                self.broker
            )));
        }
        let started = Instant::now();
        let dirs = self
            .model
            .describe_log_dirs_on(self.broker)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let md = self
            .model
            .metadata()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let here: Vec<TopicPartition> = dirs
            .iter()
            .flat_map(|d| &d.replicas)
            .filter(|r| !r.is_future)
            .map(|r| TopicPartition::new(r.topic.clone(), r.partition))
            .collect();
        let ends = self
            .model
            .list_offsets(&here, OffsetSpec::Latest)
            .await
            .unwrap_or_default();
        let starts = self
            .model
            .list_offsets(&here, OffsetSpec::Earliest)
            .await
            .unwrap_or_default();
        let end_of: BTreeMap<&TopicPartition, i64> = ends
            .iter()
            .filter_map(|(tp, r)| r.as_ref().ok().map(|o| (tp, *o)))
            .collect();
        let start_of: BTreeMap<&TopicPartition, i64> = starts
            .iter()
            .filter_map(|(tp, r)| r.as_ref().ok().map(|o| (tp, *o)))
            .collect();
        // Reads from disk: lagging groups on partitions this broker leads.
        let led: BTreeMap<(String, i32), ()> = md
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.leader == self.broker)
                    .map(move |p| ((t.name.clone(), p.partition), ()))
            })
            .collect();
        let (reads, out_rates) = {
            let t = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
            let mut reads: BTreeMap<(String, i32), f64> = BTreeMap::new();
            let mut out: BTreeMap<String, f64> = BTreeMap::new();
            for g in &t.groups {
                for (tp, behind) in &g.positions {
                    if !led.contains_key(&(tp.topic.clone(), tp.partition)) {
                        continue;
                    }
                    let rate = t.bytes_in.get(tp).copied().unwrap_or(0.0);
                    *out.entry(tp.topic.clone()).or_default() += rate;
                    if *behind > 0 {
                        *reads.entry((tp.topic.clone(), tp.partition)).or_default() += rate;
                    }
                }
            }
            (reads, out)
        };
        let now = Instant::now();
        let mut prev = self.prev.lock().unwrap_or_else(|p| p.into_inner());
        let secs = prev
            .as_ref()
            .map_or(0.0, |p| now.duration_since(p.at).as_secs_f64());
        let rate = |now: i64, before: Option<i64>| match before {
            Some(b) if secs > 0.0 => (now - b).max(0) as f64 / secs,
            _ => 0.0,
        };
        let mut table = pb::PartitionTable::default();
        let mut topic_index: BTreeMap<String, u32> = BTreeMap::new();
        let mut next = Prev {
            at: now,
            replicas: BTreeMap::new(),
            dirs: BTreeMap::new(),
        };
        let mut log_dirs = Vec::new();
        let mut topic_in: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (di, d) in dirs.iter().enumerate() {
            let bytes: i64 = d.replicas.iter().map(|r| r.size_bytes).sum();
            next.dirs.insert(d.path.clone(), bytes);
            let read: f64 = d
                .replicas
                .iter()
                .filter(|r| !r.is_future)
                .filter_map(|r| reads.get(&(r.topic.clone(), r.partition)))
                .sum();
            let write = rate(
                bytes,
                prev.as_ref().and_then(|p| p.dirs.get(&d.path).copied()),
            );
            let capacity = d.total_bytes.unwrap_or(0).max(0) as u64;
            log_dirs.push(pb::LogDirSnapshot {
                path: d.path.clone(),
                device: format!("sim{}d{di}", self.broker),
                capacity_bytes: capacity,
                free_bytes: capacity.saturating_sub(bytes.max(0) as u64),
                partitions_bytes: bytes.max(0) as u64,
                read_bytes_per_sec: read,
                write_bytes_per_sec: write,
                read_ops_per_sec: read / 65536.0,
                write_ops_per_sec: write / 65536.0,
                utilization: ((read + write) / 200e6).min(1.0),
                ..Default::default()
            });
            for r in &d.replicas {
                let n = topic_index.len() as u32;
                let ti = *topic_index.entry(r.topic.clone()).or_insert_with(|| {
                    table.topics.push(r.topic.clone());
                    table.topic_ids.push(Vec::new());
                    n
                });
                let tp = TopicPartition::new(r.topic.clone(), r.partition);
                let end = if r.is_future {
                    0
                } else {
                    end_of.get(&tp).copied().unwrap_or(0)
                };
                let key = (r.topic.clone(), r.partition, r.is_future);
                let before = prev.as_ref().and_then(|p| p.replicas.get(&key).copied());
                let bytes_in = rate(r.size_bytes, before.map(|b| b.0));
                let msgs_in = rate(end, before.map(|b| b.1));
                next.replicas.insert(key, (r.size_bytes, end));
                if !r.is_future && led.contains_key(&(r.topic.clone(), r.partition)) {
                    let e = topic_in.entry(r.topic.clone()).or_default();
                    e.0 += bytes_in;
                    e.1 += msgs_in;
                }
                table.topic_index.push(ti);
                table.partition.push(r.partition);
                table.log_dir_index.push(di as u32);
                table.size_bytes.push(r.size_bytes.max(0) as u64);
                table
                    .log_start_offset
                    .push(start_of.get(&tp).copied().unwrap_or(0));
                table.log_end_offset.push(end);
                table
                    .high_watermark
                    .push(if r.is_future { -1 } else { end });
                table.recovery_point.push(end);
                table.segments.push(1);
                table.future.push(r.is_future);
                table.bytes_in_per_sec.push(bytes_in);
                table.messages_in_per_sec.push(msgs_in);
            }
        }
        *prev = Some(next);
        drop(prev);
        let written: f64 = log_dirs.iter().map(|d| d.write_bytes_per_sec).sum();
        let read: f64 = log_dirs.iter().map(|d| d.read_bytes_per_sec).sum();
        let served: f64 = out_rates.values().sum();
        let metrics = pb::BrokerMetrics {
            scraped: true,
            topics: topic_in
                .iter()
                .map(|(t, (b, m))| pb::TopicRates {
                    topic: t.clone(),
                    bytes_in_per_sec: *b,
                    bytes_out_per_sec: out_rates.get(t).copied().unwrap_or(0.0),
                    messages_in_per_sec: *m,
                })
                .collect(),
            bytes_in_per_sec: topic_in.values().map(|v| v.0).sum(),
            bytes_out_per_sec: served,
            messages_in_per_sec: topic_in.values().map(|v| v.1).sum(),
            under_replicated_partitions: Some(
                md.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .filter(|p| p.leader == self.broker && p.isr.len() < p.replicas.len())
                    .count() as f64,
            ),
            request_handler_idle: Some(0.9),
            ..Default::default()
        };
        Ok(pb::BrokerSnapshot {
            broker_id: self.broker,
            cluster_id: self.cluster_id.clone(),
            taken_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            interval_secs: secs,
            log_dirs,
            partitions: Some(table),
            host: Some(pb::HostStats {
                mem_total_bytes: 64 << 30,
                mem_available_bytes: 64u64 << 30,
                page_cache_bytes: self.page_cache_bytes,
                dirty_bytes: 0,
                cpu_busy: (0.05 + (written + read + served) / 400e6).min(0.95),
                net_rx_bytes_per_sec: written,
                net_tx_bytes_per_sec: served,
                cpus: 16,
            }),
            broker_metrics: Some(metrics),
            build_ms: started.elapsed().as_secs_f64() * 1e3,
            ..Default::default()
        })
    }
}

#[tonic::async_trait]
impl Reporter for SimReporter {
    async fn get_snapshot(
        &self,
        _req: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::BrokerSnapshot>, Status> {
        self.snapshot().await.map(Response::new)
    }
}
