//! Load windows and the queries over them (pure: no I/O, no clock — `now`
//! is an argument). The collector ([`crate::leader::collector`]) pulls
//! snapshots and folds them in with [`accept`]; the `Load*` RPCs read them
//! through [`query`].
//!
//! Per broker and per disk: the last value and one-minute buckets over the
//! last hour (median and p95 over the buckets); per partition the last value
//! and a compact ring of the same buckets ([`window`]). A snapshot that lies
//! (broker or cluster id not matching the registry) or is malformed is
//! refused whole, and its broker keeps its last good load.
//!
//! The windows outlive the leader: each completed bucket's broker and disk
//! means are replicated (`RecordLoad`, [`completed_bucket`]), and every
//! completed slot of [`PARTITION_SLOT_BUCKETS`] buckets each broker's
//! per-partition means (`RecordPartitionLoad`, [`partition_slot`], ≈ 5
//! bytes per partition, the partition list only when it changed). A new
//! leader seeds its windows from them ([`seed`], [`seed_partitions`]), so it
//! can answer and plan at once instead of after an hour; a partition's
//! seeded buckets carry their slot's mean.
//!
//! When a reporter scrapes its broker's own Prometheus metrics, bytes out
//! (per bucket), under-replicated partitions, the request-handler idle ratio
//! and p99 request times are kept too (not replicated: they come back with
//! the next pull).

pub mod query;
pub mod window;

use std::collections::{BTreeMap, HashMap};

use guardian_meta_store::state::load::{LoadHistory, PartitionHistory, PARTITION_SLOT_BUCKETS};
use guardian_proto::domain::{
    fingerprint, BrokerLoadSample, Command, DiskLoadSample, PartitionList, PartitionLoadSample,
    NO_SAMPLE,
};
use guardian_proto::pb;

pub use window::{PartWindow, Window};

/// Why a snapshot was refused (the broker's stale reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotRejected {
    #[error("reporter {endpoint} reports broker id {got}, registered as {want}")]
    WrongBroker {
        endpoint: String,
        got: i32,
        want: i32,
    },
    #[error("reporter {endpoint} reports cluster id {got}, registered as {want}")]
    WrongCluster {
        endpoint: String,
        got: String,
        want: String,
    },
    #[error("reporter {endpoint} sent a malformed snapshot: {reason}")]
    Malformed { endpoint: String, reason: String },
}

#[derive(Debug, Clone, Default)]
pub struct DiskLoad {
    pub path: String,
    pub device: String,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    pub write: Window,
    pub read: Window,
    pub util: Window,
}

#[derive(Debug, Clone, Default)]
pub struct PartitionLoad {
    pub topic: String,
    pub partition: i32,
    pub log_dir: String,
    pub size_bytes: u64,
    pub bytes_in_per_sec: f64,
    pub future: bool,
    /// Bytes in per bucket over the last 60 buckets.
    pub bytes_in: PartWindow,
}

#[derive(Debug, Clone, Default)]
pub struct BrokerLoad {
    pub endpoint: String,
    /// When the last snapshot was accepted (ms since the epoch).
    pub last_ok_ms: Option<u64>,
    /// Why the last pull failed; `None` after a good one.
    pub error: Option<String>,
    pub disks: Vec<DiskLoad>,
    pub partitions: Vec<PartitionLoad>,
    pub bytes_in: Window,
    pub cpu: Window,
    pub page_cache_bytes: u64,
    /// The broker's own metrics, when its reporter scrapes them.
    pub metrics: Option<BrokerMetrics>,
}

/// What the broker's own Prometheus metrics add (last good scrape).
#[derive(Debug, Clone, Default)]
pub struct BrokerMetrics {
    /// Bytes out per second (consumers and followers), per bucket.
    pub bytes_out: Window,
    pub under_replicated: Option<f64>,
    pub handler_idle: Option<f64>,
    /// Request type → p99 total time (ms).
    pub request_p99_ms: BTreeMap<String, f64>,
}

impl BrokerLoad {
    /// Stale: the last pull failed, or nothing accepted within 3 intervals.
    pub fn stale_reason(&self, now_ms: u64, interval_ms: u64) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        match self.last_ok_ms {
            None => Some("never collected".into()),
            Some(t) if now_ms.saturating_sub(t) > 3 * interval_ms => Some(format!(
                "no snapshot for {} s",
                now_ms.saturating_sub(t) / 1000
            )),
            Some(_) => None,
        }
    }
}

/// The leader's load state: (cluster, broker id) → load.
#[derive(Default)]
pub struct LoadState {
    pub brokers: BTreeMap<(String, i32), BrokerLoad>,
}

impl LoadState {
    /// One cluster's brokers, by id (a range of the ordered map).
    pub fn brokers_of<'a>(&'a self, cluster: &str) -> impl Iterator<Item = (i32, &'a BrokerLoad)> {
        self.brokers
            .range((cluster.to_string(), i32::MIN)..=(cluster.to_string(), i32::MAX))
            .map(|((_, id), b)| (*id, b))
    }
}

/// A rate or gauge must be a finite number ≥ 0. The field's name is built
/// only on the error path: this runs for every partition of every snapshot.
fn rate<F: std::fmt::Display>(v: f64, field: impl FnOnce() -> F) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{} is {v}, not a finite number >= 0", field()))
    }
}

/// Checks a snapshot's shape before anything is taken from it: every packed
/// per-partition array has one value per partition, every index points into
/// its table, and every rate is finite and ≥ 0. A bad snapshot is refused
/// whole and names the first bad field; the broker keeps its last good load.
fn check_snapshot(s: &pb::BrokerSnapshot) -> Result<(), String> {
    rate(s.interval_secs, || "interval_secs")?;
    for (i, d) in s.log_dirs.iter().enumerate() {
        rate(d.write_bytes_per_sec, || {
            format!("log_dirs[{i}].write_bytes_per_sec")
        })?;
        rate(d.read_bytes_per_sec, || {
            format!("log_dirs[{i}].read_bytes_per_sec")
        })?;
        rate(d.utilization, || format!("log_dirs[{i}].utilization"))?;
    }
    if let Some(h) = &s.host {
        rate(h.cpu_busy, || "host.cpu_busy")?;
        rate(h.net_rx_bytes_per_sec, || "host.net_rx_bytes_per_sec")?;
        rate(h.net_tx_bytes_per_sec, || "host.net_tx_bytes_per_sec")?;
    }
    if let Some(m) = &s.broker_metrics {
        rate(m.bytes_in_per_sec, || "broker_metrics.bytes_in_per_sec")?;
        rate(m.bytes_out_per_sec, || "broker_metrics.bytes_out_per_sec")?;
        rate(m.messages_in_per_sec, || {
            "broker_metrics.messages_in_per_sec"
        })?;
        if let Some(v) = m.under_replicated_partitions {
            rate(v, || "broker_metrics.under_replicated_partitions")?;
        }
        if let Some(v) = m.request_handler_idle {
            rate(v, || "broker_metrics.request_handler_idle")?;
        }
        for (k, v) in &m.request_p99_ms {
            rate(*v, || format!("broker_metrics.request_p99_ms[{k}]"))?;
        }
    }
    let Some(t) = &s.partitions else {
        return Ok(());
    };
    let n = t.partition.len();
    let lens = [
        ("topic_index", t.topic_index.len()),
        ("log_dir_index", t.log_dir_index.len()),
        ("size_bytes", t.size_bytes.len()),
        ("log_start_offset", t.log_start_offset.len()),
        ("log_end_offset", t.log_end_offset.len()),
        ("high_watermark", t.high_watermark.len()),
        ("recovery_point", t.recovery_point.len()),
        ("segments", t.segments.len()),
        ("future", t.future.len()),
        ("bytes_in_per_sec", t.bytes_in_per_sec.len()),
        ("messages_in_per_sec", t.messages_in_per_sec.len()),
    ];
    for (field, len) in lens {
        if len != n {
            return Err(format!(
                "partitions.{field} has {len} values for {n} partitions"
            ));
        }
    }
    if !t.topic_ids.is_empty() && t.topic_ids.len() != t.topics.len() {
        return Err(format!(
            "partitions.topic_ids has {} values for {} topics",
            t.topic_ids.len(),
            t.topics.len()
        ));
    }
    for i in 0..n {
        if t.topic_index[i] as usize >= t.topics.len() {
            return Err(format!(
                "partitions.topic_index[{i}] is {}, but there are {} topics",
                t.topic_index[i],
                t.topics.len()
            ));
        }
        if t.log_dir_index[i] as usize >= s.log_dirs.len() {
            return Err(format!(
                "partitions.log_dir_index[{i}] is {}, but there are {} log dirs",
                t.log_dir_index[i],
                s.log_dirs.len()
            ));
        }
        rate(t.bytes_in_per_sec[i], || {
            format!("partitions.bytes_in_per_sec[{i}]")
        })?;
        rate(t.messages_in_per_sec[i], || {
            format!("partitions.messages_in_per_sec[{i}]")
        })?;
    }
    Ok(())
}

/// Checks a snapshot against the registry and its own shape
/// (`check_snapshot`), then folds it into `b` (public for the ingestion
/// benchmark). A refused snapshot leaves `b` as it was.
pub fn accept(
    b: &mut BrokerLoad,
    broker_id: i32,
    kafka_cluster_id: Option<&str>,
    s: pb::BrokerSnapshot,
    now: u64,
    bucket: u64,
) -> Result<(), SnapshotRejected> {
    if s.broker_id != broker_id {
        return Err(SnapshotRejected::WrongBroker {
            endpoint: b.endpoint.clone(),
            got: s.broker_id,
            want: broker_id,
        });
    }
    if let Some(want) = kafka_cluster_id {
        if !s.cluster_id.is_empty() && s.cluster_id != want {
            return Err(SnapshotRejected::WrongCluster {
                endpoint: b.endpoint.clone(),
                got: s.cluster_id,
                want: want.to_string(),
            });
        }
    }
    check_snapshot(&s).map_err(|reason| SnapshotRejected::Malformed {
        endpoint: b.endpoint.clone(),
        reason,
    })?;
    let t = s.partitions.unwrap_or_default();
    let mut disks = std::mem::take(&mut b.disks);
    b.disks = s
        .log_dirs
        .iter()
        .map(|d| {
            let mut dl = disks
                .iter_mut()
                .find(|x| x.path == d.path)
                .map(std::mem::take)
                .unwrap_or_default();
            dl.path = d.path.clone();
            dl.device = d.device.clone();
            dl.capacity_bytes = d.capacity_bytes;
            dl.free_bytes = d.free_bytes;
            if s.interval_secs > 0.0 {
                dl.write.push(bucket, d.write_bytes_per_sec);
                dl.read.push(bucket, d.read_bytes_per_sec);
                dl.util.push(bucket, d.utilization);
            }
            dl
        })
        .collect();
    let topic = |i: usize| {
        t.topics
            .get(t.topic_index[i] as usize)
            .map(String::as_str)
            .unwrap_or_default()
    };
    // Reporters list partitions in a stable order: update in place when the
    // set is unchanged, else carry each partition's window over by identity.
    let same = b.partitions.len() == t.partition.len()
        && b.partitions.iter().enumerate().all(|(i, p)| {
            p.partition == t.partition[i] && p.future == t.future[i] && p.topic == topic(i)
        });
    if !same {
        let mut old: HashMap<(String, i32, bool), PartWindow> = std::mem::take(&mut b.partitions)
            .into_iter()
            .map(|p| ((p.topic, p.partition, p.future), p.bytes_in))
            .collect();
        b.partitions = (0..t.partition.len())
            .map(|i| PartitionLoad {
                topic: topic(i).to_string(),
                partition: t.partition[i],
                future: t.future[i],
                bytes_in: old
                    .remove(&(topic(i).to_string(), t.partition[i], t.future[i]))
                    .unwrap_or_default(),
                ..Default::default()
            })
            .collect();
    }
    for (i, p) in b.partitions.iter_mut().enumerate() {
        let dir = s.log_dirs.get(t.log_dir_index[i] as usize);
        if dir.is_some_and(|d| d.path != p.log_dir) {
            p.log_dir = dir.map(|d| d.path.clone()).unwrap_or_default();
        }
        p.size_bytes = t.size_bytes[i];
        p.bytes_in_per_sec = t.bytes_in_per_sec[i];
        if s.interval_secs > 0.0 {
            p.bytes_in.push(bucket, t.bytes_in_per_sec[i]);
        }
    }
    if s.interval_secs > 0.0 {
        b.bytes_in
            .push(bucket, t.bytes_in_per_sec.iter().sum::<f64>());
        if let Some(h) = &s.host {
            b.cpu.push(bucket, h.cpu_busy);
        }
    }
    b.page_cache_bytes = s.host.map_or(0, |h| h.page_cache_bytes);
    match s.broker_metrics {
        Some(m) if m.scraped => {
            let bm = b.metrics.get_or_insert_with(Default::default);
            // Rates need two scrapes: the first one carries none.
            if m.bytes_out_per_sec > 0.0 || !m.topics.is_empty() {
                bm.bytes_out.push(bucket, m.bytes_out_per_sec);
            }
            bm.under_replicated = m.under_replicated_partitions;
            bm.handler_idle = m.request_handler_idle;
            bm.request_p99_ms = m.request_p99_ms.into_iter().collect();
        }
        // A failed scrape keeps the window but not the stale point values
        // (the reporter says why in its warnings).
        Some(_) => {
            if let Some(bm) = &mut b.metrics {
                bm.under_replicated = None;
                bm.handler_idle = None;
                bm.request_p99_ms.clear();
            }
        }
        None => b.metrics = None,
    }
    b.last_ok_ms = Some(now);
    b.error = None;
    Ok(())
}

fn ppm(v: f64) -> u64 {
    (v * 1e6).round().max(0.0) as u64
}

fn whole(v: f64) -> u64 {
    v.round().max(0.0) as u64
}

/// Every broker's means over `bucket`, for brokers that have them.
pub fn completed_bucket(st: &LoadState, bucket: u64) -> Vec<BrokerLoadSample> {
    st.brokers
        .iter()
        .filter_map(|((cluster, id), b)| {
            let bytes_in = b.bytes_in.bucket_mean(bucket)?;
            Some(BrokerLoadSample {
                cluster: cluster.clone(),
                broker_id: *id,
                bytes_in: whole(bytes_in),
                cpu_ppm: ppm(b.cpu.bucket_mean(bucket).unwrap_or(0.0)),
                disks: b
                    .disks
                    .iter()
                    .filter_map(|d| {
                        Some(DiskLoadSample {
                            path: d.path.clone(),
                            write: whole(d.write.bucket_mean(bucket)?),
                            read: whole(d.read.bucket_mean(bucket).unwrap_or(0.0)),
                            util_ppm: ppm(d.util.bucket_mean(bucket).unwrap_or(0.0)),
                        })
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Partitions recorded per command (≈ 5 bytes each on the wire, so a
/// command stays well under the 1 MiB AppendEntries cap).
const PARTITIONS_PER_RECORD: usize = 100_000;

/// The fingerprints of the partition lists recorded per broker (taken
/// under the state machine's lock: one lookup per broker, nothing more).
pub fn recorded_lists(
    recorded: &BTreeMap<(String, i32), PartitionHistory>,
) -> HashMap<(String, i32), u64> {
    recorded
        .iter()
        .map(|(k, h)| (k.clone(), h.fingerprint))
        .collect()
}

/// Commands recording every collected broker's per-partition bytes-in means
/// over `slot`. A broker's partition list goes along only when it differs
/// from the one recorded (by fingerprint; see [`recorded_lists`]). (Public
/// for the ingestion benchmark.)
pub fn partition_slot(
    st: &LoadState,
    recorded: &HashMap<(String, i32), u64>,
    slot: u64,
) -> Vec<Command> {
    let buckets = slot * PARTITION_SLOT_BUCKETS..(slot + 1) * PARTITION_SLOT_BUCKETS;
    let (mut cmds, mut cur, mut n) = (Vec::new(), Vec::new(), 0);
    for (key, b) in &st.brokers {
        let bytes_in: Vec<u32> = b
            .partitions
            .iter()
            .map(|p| {
                p.bytes_in
                    .mean_over(buckets.clone())
                    .map_or(NO_SAMPLE, |v| {
                        v.round().clamp(0.0, f64::from(NO_SAMPLE - 1)) as u32
                    })
            })
            .collect();
        if bytes_in.iter().all(|&v| v == NO_SAMPLE) {
            continue; // nothing collected in the slot
        }
        let same = recorded.get(key).is_some_and(|&f| {
            f == fingerprint(
                (b.partitions.iter()).map(|p| (p.topic.as_str(), p.partition, p.future)),
            )
        });
        n += bytes_in.len();
        cur.push(PartitionLoadSample {
            cluster: key.0.clone(),
            broker_id: key.1,
            partitions: (!same).then(|| partition_list(&b.partitions)),
            bytes_in,
        });
        if n >= PARTITIONS_PER_RECORD {
            let brokers = std::mem::take(&mut cur);
            cmds.push(Command::RecordPartitionLoad { slot, brokers });
            n = 0;
        }
    }
    if !cur.is_empty() {
        cmds.push(Command::RecordPartitionLoad { slot, brokers: cur });
    }
    cmds
}

/// A broker's partitions as a list with interned topic names.
fn partition_list(parts: &[PartitionLoad]) -> PartitionList {
    let mut topics: HashMap<&str, u32> = HashMap::new();
    let mut l = PartitionList::default();
    for p in parts {
        let next = topics.len() as u32;
        let t = *topics.entry(p.topic.as_str()).or_insert_with(|| {
            l.topics.push(p.topic.clone());
            next
        });
        l.topic_index.push(t);
        l.partition.push(p.partition);
        l.future.push(p.future);
    }
    l
}

/// Seeds per-partition windows from the replicated slots: each slot's mean
/// stands for each of its buckets.
pub fn seed_partitions(st: &mut LoadState, history: &BTreeMap<(String, i32), PartitionHistory>) {
    for (key, h) in history {
        let b = st.brokers.entry(key.clone()).or_default();
        let mut at: HashMap<(String, i32, bool), usize> = b
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.topic.clone(), p.partition, p.future), i))
            .collect();
        for i in 0..h.partitions.len() {
            let (topic, partition, future) = h.partitions.key(i);
            let j = *at
                .entry((topic.to_string(), partition, future))
                .or_insert_with(|| {
                    b.partitions.push(PartitionLoad {
                        topic: topic.to_string(),
                        partition,
                        future,
                        ..Default::default()
                    });
                    b.partitions.len() - 1
                });
            for (slot, vals) in &h.slots {
                if vals[i] != NO_SAMPLE {
                    let from = slot * PARTITION_SLOT_BUCKETS;
                    b.partitions[j]
                        .bytes_in
                        .seed(from..from + PARTITION_SLOT_BUCKETS, f64::from(vals[i]));
                }
            }
        }
    }
}

/// Seeds the windows from the replicated history.
pub fn seed(st: &mut LoadState, history: &BTreeMap<(String, i32), LoadHistory>) {
    for (key, h) in history {
        let b = st.brokers.entry(key.clone()).or_default();
        b.bytes_in.seed(&h.bytes_in, 1.0);
        b.cpu.seed(&h.cpu_ppm, 1e-6);
        for (path, dh) in &h.disks {
            let i = match b.disks.iter().position(|d| &d.path == path) {
                Some(i) => i,
                None => {
                    b.disks.push(DiskLoad {
                        path: path.clone(),
                        ..Default::default()
                    });
                    b.disks.len() - 1
                }
            };
            let d = &mut b.disks[i];
            d.write.seed(&dh.write, 1.0);
            d.read.seed(&dh.read, 1.0);
            d.util.seed(&dh.util_ppm, 1e-6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lying_reporters_are_rejected() {
        let mut b = BrokerLoad {
            endpoint: "r:1".into(),
            ..Default::default()
        };
        let snap = |id, cid: &str| pb::BrokerSnapshot {
            broker_id: id,
            cluster_id: cid.into(),
            ..Default::default()
        };
        assert!(accept(&mut b, 3, None, snap(4, ""), 1, 0)
            .unwrap_err()
            .to_string()
            .contains("broker id 4"));
        assert!(accept(&mut b, 3, Some("abc"), snap(3, "xyz"), 1, 0)
            .unwrap_err()
            .to_string()
            .contains("cluster id xyz"));
        accept(&mut b, 3, Some("abc"), snap(3, "abc"), 5, 0).unwrap();
        assert_eq!(b.last_ok_ms, Some(5));
        assert_eq!(b.stale_reason(6, 1000), None);
        assert!(b
            .stale_reason(10_000, 1000)
            .unwrap()
            .contains("no snapshot"));
    }

    #[test]
    fn malformed_snapshots_are_refused_with_the_field_and_change_nothing() {
        let good = || pb::BrokerSnapshot {
            broker_id: 1,
            interval_secs: 1.0,
            log_dirs: vec![pb::LogDirSnapshot {
                path: "/d0".into(),
                ..Default::default()
            }],
            partitions: Some(pb::PartitionTable {
                topics: vec!["t".into()],
                topic_index: vec![0, 0],
                partition: vec![0, 1],
                log_dir_index: vec![0, 0],
                size_bytes: vec![10, 20],
                log_start_offset: vec![0, 0],
                log_end_offset: vec![5, 6],
                high_watermark: vec![5, 6],
                recovery_point: vec![5, 6],
                segments: vec![1, 1],
                future: vec![false, false],
                bytes_in_per_sec: vec![100.0, 200.0],
                messages_in_per_sec: vec![1.0, 2.0],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut b = BrokerLoad {
            endpoint: "r:1".into(),
            ..Default::default()
        };
        accept(&mut b, 1, None, good(), 7, 0).unwrap();
        let before = (b.partitions.len(), b.last_ok_ms, b.partitions[1].size_bytes);
        type Break = fn(&mut pb::BrokerSnapshot);
        let cases: [(Break, &str); 8] = [
            (
                |s| {
                    s.partitions.as_mut().unwrap().size_bytes.pop();
                },
                "partitions.size_bytes has 1 values for 2 partitions",
            ),
            (
                |s| s.partitions.as_mut().unwrap().bytes_in_per_sec.push(1.0),
                "partitions.bytes_in_per_sec has 3 values for 2 partitions",
            ),
            (
                |s| s.partitions.as_mut().unwrap().future.clear(),
                "partitions.future has 0 values for 2 partitions",
            ),
            (
                |s| s.partitions.as_mut().unwrap().topic_index[1] = 5,
                "partitions.topic_index[1] is 5, but there are 1 topics",
            ),
            (
                |s| s.partitions.as_mut().unwrap().log_dir_index[0] = 1,
                "partitions.log_dir_index[0] is 1, but there are 1 log dirs",
            ),
            (
                |s| s.partitions.as_mut().unwrap().bytes_in_per_sec[1] = f64::NAN,
                "partitions.bytes_in_per_sec[1] is NaN, not a finite number >= 0",
            ),
            (
                |s| s.log_dirs[0].write_bytes_per_sec = -5.0,
                "log_dirs[0].write_bytes_per_sec is -5, not a finite number >= 0",
            ),
            (
                |s| s.interval_secs = f64::INFINITY,
                "interval_secs is inf, not a finite number >= 0",
            ),
        ];
        for (break_it, want) in cases {
            let mut s = good();
            s.partitions.as_mut().unwrap().size_bytes[1] = 999;
            break_it(&mut s);
            let e = accept(&mut b, 1, None, s, 8, 1).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("reporter r:1 sent a malformed snapshot: {want}")
            );
            // Refused whole: the last good load is untouched.
            let now = (b.partitions.len(), b.last_ok_ms, b.partitions[1].size_bytes);
            assert_eq!(now, before, "{want}");
        }
    }

    /// What a leader records per slot is what its successor seeds from.
    #[test]
    fn a_new_leader_seeds_partition_windows_from_recorded_slots() {
        use guardian_meta_store::State;
        use guardian_proto::domain::{Broker, Cluster, LogDir, Request};
        let part = |topic: &str, partition| PartitionLoad {
            topic: topic.into(),
            partition,
            ..Default::default()
        };
        let mut old = LoadState::default();
        let b = old.brokers.entry(("c".into(), 1)).or_default();
        b.partitions = vec![part("a", 0), part("a", 1), part("b", 0)];
        // 30 buckets: partition a-0 ramps, a-1 is steady, b-0 never sampled.
        for bucket in 0..30u64 {
            b.partitions[0].bytes_in.push(bucket, bucket as f64 * 10.0);
            b.partitions[1].bytes_in.push(bucket, 500.0);
        }
        let mut reg = State::default();
        let apply = |reg: &mut State, c: Command| {
            let mut touched = Vec::new();
            reg.apply(&Request::new(1, c), &mut touched)
        };
        apply(
            &mut reg,
            Command::AddCluster(Cluster {
                id: 0,
                name: "c".into(),
                bootstrap_servers: vec!["k:9092".into()],
                idc: "dc1".into(),
                kafka_cluster_id: None,
                created_at_ms: 0,
            }),
        );
        apply(
            &mut reg,
            Command::AddBroker(Broker {
                cluster: "c".into(),
                broker_id: 1,
                host: "b1".into(),
                rack: "r1".into(),
                idc: String::new(),
                reporter_endpoint: "b1:9300".into(),
                log_dirs: vec![LogDir {
                    path: "/data/1".into(),
                    capacity_bytes: 1 << 40,
                }],
                nic_bytes_per_sec: 0,
                cpu_cores: 8,
                pool: None,
                registered_at_ms: 0,
            }),
        );
        assert!(reg.registry.brokers.contains_key(&("c".to_string(), 1)));
        for slot in 0..6 {
            for cmd in partition_slot(&old, &recorded_lists(&reg.load.partitions), slot) {
                if let Command::RecordPartitionLoad { brokers, .. } = &cmd {
                    // The list goes along the first time only.
                    assert_eq!(brokers[0].partitions.is_some(), slot == 0);
                }
                apply(&mut reg, cmd);
            }
        }
        let mut new = LoadState::default();
        seed_partitions(&mut new, &reg.load.partitions);
        let (o, n) = (
            &old.brokers[&("c".into(), 1)],
            &new.brokers[&("c".into(), 1)],
        );
        assert_eq!(n.partitions.len(), 3);
        assert_eq!(n.partitions[1].bytes_in.pct(0.5), 500.0);
        assert_eq!(n.partitions[2].bytes_in.pct(0.5), 0.0);
        // a-0: slot means (20, 70, …, 270) stand for each of their buckets.
        for s in 0..6u64 {
            let want = o.partitions[0]
                .bytes_in
                .mean_over(s * 5..s * 5 + 5)
                .unwrap();
            assert_eq!(
                n.partitions[0].bytes_in.mean_over(s * 5..s * 5 + 5),
                Some(want)
            );
        }
        let (op, np) = (
            o.partitions[0].bytes_in.pct(0.5),
            n.partitions[0].bytes_in.pct(0.5),
        );
        assert!((op - np).abs() <= 20.0, "median {op} vs seeded {np}");
    }

    #[test]
    fn broker_metrics_are_kept_and_a_failed_scrape_clears_point_values() {
        let mut b = BrokerLoad::default();
        let snap = |m: Option<pb::BrokerMetrics>| pb::BrokerSnapshot {
            broker_id: 1,
            interval_secs: 10.0,
            broker_metrics: m,
            ..Default::default()
        };
        let scraped = |out: f64, urp: f64| pb::BrokerMetrics {
            scraped: true,
            topics: vec![pb::TopicRates {
                topic: "t".into(),
                ..Default::default()
            }],
            bytes_out_per_sec: out,
            under_replicated_partitions: Some(urp),
            request_handler_idle: Some(0.7),
            request_p99_ms: [("Produce".to_string(), 12.0)].into_iter().collect(),
            ..Default::default()
        };
        // First scrape: no rates yet, point values only.
        let first = pb::BrokerMetrics {
            topics: vec![],
            bytes_out_per_sec: 0.0,
            ..scraped(0.0, 2.0)
        };
        accept(&mut b, 1, None, snap(Some(first)), 1, 0).unwrap();
        let m = b.metrics.as_ref().unwrap();
        assert!(m.bytes_out.is_empty());
        assert_eq!(m.under_replicated, Some(2.0));
        for (bucket, out) in [(0, 100.0), (1, 300.0), (2, 200.0)] {
            accept(&mut b, 1, None, snap(Some(scraped(out, 0.0))), 2, bucket).unwrap();
        }
        let m = b.metrics.as_ref().unwrap();
        assert_eq!((m.bytes_out.last, m.bytes_out.pct(0.5)), (200.0, 200.0));
        assert_eq!(m.request_p99_ms["Produce"], 12.0);
        let failed = pb::BrokerMetrics {
            scraped: false,
            ..Default::default()
        };
        accept(&mut b, 1, None, snap(Some(failed)), 3, 3).unwrap();
        let m = b.metrics.as_ref().unwrap();
        assert_eq!(m.under_replicated, None);
        assert_eq!(m.bytes_out.len(), 3, "the window stays");
        // A reporter without --broker-metrics: nothing to show.
        accept(&mut b, 1, None, snap(None), 4, 4).unwrap();
        assert!(b.metrics.is_none());
    }
}
