//! Load history: the last hour of each broker's collected load (bucket by
//! bucket) and of its partitions' bytes in (slot by slot), recorded by the
//! leader (`RecordLoad`, `RecordPartitionLoad`) so a new leader starts with
//! it. Owns its commands, its keys (tags `l\0`, `q\0`: [`super::keys`]),
//! their values and their loading.

use std::collections::BTreeMap;

use guardian_proto::domain::{BrokerLoadSample, PartitionList, PartitionLoadSample, NO_SAMPLE};
use guardian_proto::pb;
use prost::Message;

use super::keys::{put_broker, KeyReader};
use super::registry::Registry;
use super::Key;
use crate::error::{decode, StoreError};
use crate::types::CommandResponse;

/// A persisted item of the load history (one `sm_data` key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoadKey {
    /// A broker's load history (cluster, broker id).
    Broker(String, i32),
    /// A broker's partition list for its per-partition history.
    PartitionList(String, i32),
    /// One slot of a broker's per-partition history (cluster, broker, slot).
    PartitionSlot(String, i32, u64),
}

impl From<LoadKey> for Key {
    fn from(k: LoadKey) -> Key {
        Key::Load(k)
    }
}

/// The tags of this domain's keys.
pub(crate) const TAGS: [&[u8; 2]; 2] = [b"l\0", b"q\0"];

impl LoadKey {
    /// The RocksDB key.
    pub fn bytes(&self, out: &mut Vec<u8>) {
        match self {
            LoadKey::Broker(c, id) => put_broker(out, b"l\0", c, *id),
            LoadKey::PartitionList(c, id) => put_broker(out, b"q\0", c, *id),
            LoadKey::PartitionSlot(c, id, slot) => {
                put_broker(out, b"q\0", c, *id);
                out.extend_from_slice(&slot.to_be_bytes());
            }
        }
    }
}

/// Buckets of load history kept per series (an hour of one-minute buckets).
pub const HISTORY_BUCKETS: u64 = 60;

/// (bucket, value) points, oldest first, at most [`HISTORY_BUCKETS`].
pub type Series = Vec<(u64, u64)>;

/// One disk's load history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskHistory {
    pub write: Series,
    pub read: Series,
    pub util_ppm: Series,
}

/// A broker's load history, recorded by the leader bucket by bucket so a new
/// leader starts with the last hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadHistory {
    pub bytes_in: Series,
    pub cpu_ppm: Series,
    pub disks: BTreeMap<String, DiskHistory>,
}

/// Buckets per slot of per-partition history: partitions are recorded at a
/// coarser grain than brokers and disks (a federation has millions).
pub const PARTITION_SLOT_BUCKETS: u64 = 5;

/// Slots of per-partition history kept (the same hour).
pub const PARTITION_SLOTS: u64 = HISTORY_BUCKETS / PARTITION_SLOT_BUCKETS;

/// A broker's per-partition bytes-in history: its partition list and, per
/// slot, one mean per partition in list order ([`NO_SAMPLE`] where none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionHistory {
    pub partitions: PartitionList,
    /// `partitions.fingerprint()`, kept with it.
    pub fingerprint: u64,
    /// (slot, means), oldest first, at most [`PARTITION_SLOTS`].
    pub slots: Vec<(u64, Vec<u32>)>,
}

impl PartitionHistory {
    /// Records one slot of broker `key`. A new partition list re-orders the
    /// held slots by partition identity (partitions that left are
    /// forgotten, new ones have no sample). `false` if the values do not
    /// match the recorded list's length (a sample without a list, for a
    /// list not recorded): nothing changes then.
    fn record(
        &mut self,
        key: &(String, i32),
        slot: u64,
        s: &PartitionLoadSample,
        touched: &mut Vec<Key>,
    ) -> bool {
        let len = s.partitions.as_ref().unwrap_or(&self.partitions).len();
        if s.bytes_in.len() != len {
            return false;
        }
        let slot_key = |x: u64| Key::from(LoadKey::PartitionSlot(key.0.clone(), key.1, x));
        if let Some(list) = s.partitions.as_ref().filter(|l| **l != self.partitions) {
            let old: std::collections::HashMap<(&str, i32, bool), usize> =
                (0..self.partitions.len())
                    .map(|i| (self.partitions.key(i), i))
                    .collect();
            let map: Vec<Option<usize>> = (0..list.len())
                .map(|i| old.get(&list.key(i)).copied())
                .collect();
            for (x, vals) in &mut self.slots {
                *vals = map
                    .iter()
                    .map(|o| o.map_or(NO_SAMPLE, |j| vals[j]))
                    .collect();
                touched.push(slot_key(*x));
            }
            self.partitions = list.clone();
            self.fingerprint = list.fingerprint();
            touched.push(LoadKey::PartitionList(key.0.clone(), key.1).into());
        }
        // The hour ends at the newest slot: older slots go, and a late
        // slot older than that is not kept.
        let newest = self.slots.last().map_or(slot, |l| l.0.max(slot));
        for (x, _) in self
            .slots
            .iter()
            .filter(|(x, _)| x + PARTITION_SLOTS <= newest)
        {
            touched.push(slot_key(*x));
        }
        self.slots
            .retain(|(x, _)| *x != slot && x + PARTITION_SLOTS > newest);
        if slot + PARTITION_SLOTS > newest {
            let at = self.slots.partition_point(|(x, _)| *x < slot);
            self.slots.insert(at, (slot, s.bytes_in.clone()));
            touched.push(slot_key(slot));
        }
        true
    }

    /// Every stored key of broker `key`'s history.
    fn keys(&self, key: &(String, i32), out: &mut Vec<Key>) {
        out.push(LoadKey::PartitionList(key.0.clone(), key.1).into());
        for (x, _) in &self.slots {
            out.push(LoadKey::PartitionSlot(key.0.clone(), key.1, *x).into());
        }
    }
}

fn record(series: &mut Series, bucket: u64, value: u64) {
    series.retain(|(b, _)| *b != bucket && b + HISTORY_BUCKETS > bucket);
    series.push((bucket, value));
    series.sort_unstable_by_key(|p| p.0);
}

fn trim(series: &mut Series, bucket: u64) {
    series.retain(|(b, _)| b + HISTORY_BUCKETS > bucket);
}

/// The replicated load history of every registered broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadHistories {
    /// Per broker: the last hour of collected load, bucket by bucket.
    pub brokers: BTreeMap<(String, i32), LoadHistory>,
    /// Per broker: the last hour of per-partition bytes in, slot by slot.
    pub partitions: BTreeMap<(String, i32), PartitionHistory>,
}

impl LoadHistories {
    /// `RecordLoad`: one completed bucket's means per broker (brokers no
    /// longer registered are skipped).
    pub fn record_load(
        &mut self,
        reg: &Registry,
        bucket: u64,
        brokers: &[BrokerLoadSample],
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        for s in brokers {
            let key = (s.cluster.clone(), s.broker_id);
            if !reg.brokers.contains_key(&key) {
                continue; // removed meanwhile
            }
            let h = self.brokers.entry(key.clone()).or_default();
            record(&mut h.bytes_in, bucket, s.bytes_in);
            record(&mut h.cpu_ppm, bucket, s.cpu_ppm);
            for d in &s.disks {
                let dh = h.disks.entry(d.path.clone()).or_default();
                record(&mut dh.write, bucket, d.write);
                record(&mut dh.read, bucket, d.read);
                record(&mut dh.util_ppm, bucket, d.util_ppm);
            }
            for dh in h.disks.values_mut() {
                trim(&mut dh.write, bucket);
                trim(&mut dh.read, bucket);
                trim(&mut dh.util_ppm, bucket);
            }
            h.disks.retain(|_, d| !d.write.is_empty());
            touched.push(LoadKey::Broker(key.0, key.1).into());
        }
        CommandResponse::Done
    }

    /// `RecordPartitionLoad`: one completed slot's per-partition means.
    pub fn record_partition_load(
        &mut self,
        reg: &Registry,
        slot: u64,
        brokers: &[PartitionLoadSample],
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        for s in brokers {
            let key = (s.cluster.clone(), s.broker_id);
            if !reg.brokers.contains_key(&key) {
                continue; // removed meanwhile
            }
            let h = self.partitions.entry(key.clone()).or_default();
            if !h.record(&key, slot, s, touched) && h.slots.is_empty() {
                self.partitions.remove(&key);
            }
        }
        CommandResponse::Done
    }

    /// A broker left the registry: its history goes with it.
    pub fn forget(&mut self, key: &(String, i32), touched: &mut Vec<Key>) {
        if self.brokers.remove(key).is_some() {
            touched.push(LoadKey::Broker(key.0.clone(), key.1).into());
        }
        if let Some(h) = self.partitions.remove(key) {
            h.keys(key, touched);
        }
    }

    /// The current value of `k`, encoded; `None` if it no longer exists.
    pub fn value_bytes(&self, k: &LoadKey) -> Option<Vec<u8>> {
        match k {
            LoadKey::Broker(c, id) => self
                .brokers
                .get(&(c.clone(), *id))
                .map(|h| load_to_pb(c, *id, h).encode_to_vec()),
            LoadKey::PartitionList(c, id) => self.partitions.get(&(c.clone(), *id)).map(|h| {
                pb::PartitionLoadHistory {
                    cluster: c.clone(),
                    broker_id: *id,
                    partitions: Some(h.partitions.clone().into()),
                    slots: vec![],
                }
                .encode_to_vec()
            }),
            LoadKey::PartitionSlot(c, id, slot) => {
                let h = self.partitions.get(&(c.clone(), *id))?;
                let i = h.slots.binary_search_by_key(slot, |s| s.0).ok()?;
                Some(
                    pb::PartitionLoadSlot {
                        slot: *slot,
                        bytes_in: h.slots[i].1.clone(),
                    }
                    .encode_to_vec(),
                )
            }
        }
    }

    /// Loads one stored pair of this domain (keys arrive in RocksDB order:
    /// a broker's partition list before its slots).
    pub fn load_kv(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let mut rest = KeyReader::new(k);
        match &k[..2] {
            b"l\0" => {
                let h: pb::BrokerLoadHistory = decode("broker load history", v)?;
                self.brokers
                    .insert((h.cluster.clone(), h.broker_id), load_from_pb(h));
            }
            b"q\0" if is_slot_key(rest.rest()) => {
                let (cluster, id) = rest.cluster_broker()?;
                let s: pb::PartitionLoadSlot = decode("partition load slot", v)?;
                let h = self
                    .partitions
                    .get_mut(&(cluster, id))
                    .ok_or_else(|| rest.bad("a slot without its partition list"))?;
                if s.bytes_in.len() != h.partitions.len() {
                    return Err(rest.bad("the slot's length differs from the partition list"));
                }
                h.slots.push((s.slot, s.bytes_in));
            }
            b"q\0" => {
                let h: pb::PartitionLoadHistory = decode("partition load history", v)?;
                let partitions: PartitionList = h.partitions.unwrap_or_default().into();
                partitions.validate("partitions").map_err(|e| rest.bad(e))?;
                self.partitions.insert(
                    (h.cluster, h.broker_id),
                    PartitionHistory {
                        fingerprint: partitions.fingerprint(),
                        partitions,
                        slots: vec![],
                    },
                );
            }
            _ => return Err(rest.bad("not a load history key")),
        }
        Ok(())
    }
}

/// Whether a `q\0` key (after the tag) names a slot: cluster, `\0`, broker
/// id (4) and slot (8); a list key ends after the broker id.
fn is_slot_key(k: &[u8]) -> bool {
    k.iter()
        .position(|&b| b == 0)
        .is_some_and(|nul| k.len() - nul - 1 == 12)
}

fn series_to_pb(s: &Series) -> pb::LoadSeries {
    pb::LoadSeries {
        buckets: s.iter().map(|p| p.0).collect(),
        values: s.iter().map(|p| p.1).collect(),
    }
}

fn series_from_pb(s: Option<pb::LoadSeries>) -> Series {
    let s = s.unwrap_or_default();
    s.buckets.into_iter().zip(s.values).collect()
}

fn load_to_pb(cluster: &str, broker_id: i32, h: &LoadHistory) -> pb::BrokerLoadHistory {
    pb::BrokerLoadHistory {
        cluster: cluster.to_string(),
        broker_id,
        bytes_in: Some(series_to_pb(&h.bytes_in)),
        cpu_ppm: Some(series_to_pb(&h.cpu_ppm)),
        disks: h
            .disks
            .iter()
            .map(|(path, d)| pb::DiskLoadHistory {
                path: path.clone(),
                write: Some(series_to_pb(&d.write)),
                read: Some(series_to_pb(&d.read)),
                util_ppm: Some(series_to_pb(&d.util_ppm)),
            })
            .collect(),
    }
}

fn load_from_pb(h: pb::BrokerLoadHistory) -> LoadHistory {
    LoadHistory {
        bytes_in: series_from_pb(h.bytes_in),
        cpu_ppm: series_from_pb(h.cpu_ppm),
        disks: h
            .disks
            .into_iter()
            .map(|d| {
                (
                    d.path,
                    DiskHistory {
                        write: series_from_pb(d.write),
                        read: series_from_pb(d.read),
                        util_ppm: series_from_pb(d.util_ppm),
                    },
                )
            })
            .collect(),
    }
}
