//! The `sm_data` key space: how each [`Key`] of the replicated state is laid
//! out in RocksDB, its current value, and how a stored key/value pair is
//! loaded back into memory.
//!
//! Keys start with a two-byte tag. Integers are big-endian (offsets, epochs
//! and partitions are >= 0), so RocksDB's byte order is numeric order and a
//! partition's keys are contiguous:
//!
//! | tag  | key after the tag                         | value |
//! |------|-------------------------------------------|-------|
//! | `c\0`| cluster name                              | `pb::Cluster` |
//! | `b\0`| cluster name, `\0`, broker id (biased u32)| `pb::Broker` |
//! | `t\0`| tenant name                               | `pb::Tenant` |
//! | `p\0`| cluster, `\0`, topic (`""` = cluster-wide)| `pb::PlacementPolicy` |
//! | `i\0`| uuid (16)                                 | `pb::IssuedIds` (kind only) |
//! | `n\0`| —                                         | next cluster id (u64) |
//! | `l\0`| cluster name, `\0`, broker id (biased u32)| `pb::BrokerLoadHistory` |
//! | `q\0`| cluster name, `\0`, broker id (biased u32)| `pb::PartitionLoadHistory` (the list, no slots) |
//! | `q\0`| cluster name, `\0`, broker id, slot (u64)  | `pb::PartitionLoadSlot` |
//! | `rp` | topic id (16), partition (u32)            | `pb::RemotePartitionRecord` |
//! | `rs` | topic id, partition, segment id (16)      | `pb::RemoteLogSegment` |
//! | `ro` | topic id, partition, epoch (u32), epoch start offset (u64) | segment id |
//! | `ru` | topic id, partition, epoch, segment id    | empty |
//! | `rh` | topic id, partition, epoch                | highest offset (u64) |
//!
//! `ro` is the lookup index: the segment holding offset `o` of epoch `e` is
//! the last `ro` key ≤ (partition, e, o) — a RocksDB `seek_for_prev`.

use guardian_proto::conv::remote_log as rlconv;
use guardian_proto::domain::KafkaUuid;
use guardian_proto::pb;
use guardian_proto::remote_log::PartitionKey;
use prost::Message;

use crate::registry::{DiskHistory, Key, LoadHistory, PartitionHistory, Registry, Series};

fn put_broker(out: &mut Vec<u8>, tag: &[u8; 2], cluster: &str, id: i32) {
    out.extend_from_slice(tag);
    out.extend_from_slice(cluster.as_bytes());
    out.push(0);
    out.extend_from_slice(&((id as i64 - i32::MIN as i64) as u32).to_be_bytes());
}

fn put_partition(out: &mut Vec<u8>, tag: &[u8; 2], p: &PartitionKey) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&p.topic_id.0);
    out.extend_from_slice(&(p.partition as u32).to_be_bytes());
}

/// The RocksDB key of `k`.
pub fn key_bytes(k: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    match k {
        Key::Cluster(n) => {
            out.extend_from_slice(b"c\0");
            out.extend_from_slice(n.as_bytes());
        }
        Key::Load(c, id) => put_broker(&mut out, b"l\0", c, *id),
        Key::PartitionList(c, id) => put_broker(&mut out, b"q\0", c, *id),
        Key::PartitionSlot(c, id, slot) => {
            put_broker(&mut out, b"q\0", c, *id);
            out.extend_from_slice(&slot.to_be_bytes());
        }
        Key::Broker(c, id) => put_broker(&mut out, b"b\0", c, *id),
        Key::Tenant(n) => {
            out.extend_from_slice(b"t\0");
            out.extend_from_slice(n.as_bytes());
        }
        Key::Policy(c, t) => {
            out.extend_from_slice(b"p\0");
            out.extend_from_slice(c.as_bytes());
            out.push(0);
            out.extend_from_slice(t.as_bytes());
        }
        Key::Id(u) => {
            out.extend_from_slice(b"i\0");
            out.extend_from_slice(&u.0);
        }
        Key::Counters => out.extend_from_slice(b"n\0"),
        Key::RlPartition(p) => put_partition(&mut out, b"rp", p),
        Key::RlSegment(p, id) => {
            put_partition(&mut out, b"rs", p);
            out.extend_from_slice(&id.0);
        }
        Key::RlOffset(p, epoch, start) => {
            put_partition(&mut out, b"ro", p);
            out.extend_from_slice(&(*epoch as u32).to_be_bytes());
            out.extend_from_slice(&(*start as u64).to_be_bytes());
        }
        Key::RlUnref(p, epoch, id) => {
            put_partition(&mut out, b"ru", p);
            out.extend_from_slice(&(*epoch as u32).to_be_bytes());
            out.extend_from_slice(&id.0);
        }
        Key::RlHighest(p, epoch) => {
            put_partition(&mut out, b"rh", p);
            out.extend_from_slice(&(*epoch as u32).to_be_bytes());
        }
    }
    out
}

/// The current value of `k`, encoded; `None` if it no longer exists.
pub fn value_bytes(r: &Registry, k: &Key) -> Option<Vec<u8>> {
    let rl = &r.remote_log;
    match k {
        Key::Cluster(n) => r
            .clusters
            .get(n)
            .map(|c| pb::Cluster::from(c.clone()).encode_to_vec()),
        Key::Broker(c, id) => r
            .brokers
            .get(&(c.clone(), *id))
            .map(|b| pb::Broker::from(b.clone()).encode_to_vec()),
        Key::Tenant(n) => r
            .tenants
            .get(n)
            .map(|t| pb::Tenant::from(t.clone()).encode_to_vec()),
        Key::Policy(c, t) => r
            .policies
            .get(&(c.clone(), t.clone()))
            .map(|p| pb::PlacementPolicy::from(p.clone()).encode_to_vec()),
        Key::Id(u) => r.issued.get(u).map(|k| {
            pb::IssuedIds {
                kind: pb::IdKind::from(*k) as i32,
                ids: vec![],
            }
            .encode_to_vec()
        }),
        Key::Counters => Some(r.next_cluster_id.to_be_bytes().to_vec()),
        Key::Load(c, id) => r
            .load
            .get(&(c.clone(), *id))
            .map(|h| load_to_pb(c, *id, h).encode_to_vec()),
        Key::PartitionList(c, id) => r.partition_load.get(&(c.clone(), *id)).map(|h| {
            pb::PartitionLoadHistory {
                cluster: c.clone(),
                broker_id: *id,
                partitions: Some(h.partitions.clone().into()),
                slots: vec![],
            }
            .encode_to_vec()
        }),
        Key::PartitionSlot(c, id, slot) => {
            let h = r.partition_load.get(&(c.clone(), *id))?;
            let i = h.slots.binary_search_by_key(slot, |s| s.0).ok()?;
            Some(
                pb::PartitionLoadSlot {
                    slot: *slot,
                    bytes_in: h.slots[i].1.clone(),
                }
                .encode_to_vec(),
            )
        }
        Key::RlPartition(p) => rl.partitions.get(p).map(|p| {
            pb::RemotePartitionRecord {
                topic: p.topic.clone(),
                hosts: p.hosts.iter().copied().collect(),
                fence_epoch: p.fence_epoch,
                delete_state: p
                    .delete_state
                    .map_or(0, |s| rlconv::delete_state_to_pb(s) as i32),
            }
            .encode_to_vec()
        }),
        Key::RlSegment(p, id) => rl
            .partitions
            .get(p)
            .and_then(|p| p.segments.get(id))
            .map(|s| rlconv::segment_to_pb(s).encode_to_vec()),
        Key::RlOffset(p, epoch, start) => rl
            .partitions
            .get(p)
            .and_then(|p| p.epochs.get(epoch))
            .and_then(|e| e.offset_to_id.get(start))
            .map(|id| id.0.to_vec()),
        Key::RlUnref(p, epoch, id) => rl
            .partitions
            .get(p)
            .and_then(|p| p.epochs.get(epoch))
            .filter(|e| e.unreferenced.contains(id))
            .map(|_| Vec::new()),
        Key::RlHighest(p, epoch) => rl
            .partitions
            .get(p)
            .and_then(|p| p.epochs.get(epoch))
            .and_then(|e| e.highest)
            .map(|h| (h as u64).to_be_bytes().to_vec()),
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, String> {
    M::decode(bytes).map_err(|e| e.to_string())
}

/// Reads fixed-size fields off a key.
struct KeyReader<'a>(&'a [u8]);

/// Whether a `q\0` key (after the tag) names a slot: cluster, `\0`, broker
/// id (4) and slot (8); a list key ends after the broker id.
fn is_slot_key(k: &[u8]) -> bool {
    k.iter()
        .position(|&b| b == 0)
        .is_some_and(|nul| k.len() - nul - 1 == 12)
}

impl KeyReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err("key too short".into());
        }
        let (a, b) = self.0.split_at(N);
        self.0 = b;
        Ok(a.try_into().expect("length checked"))
    }
    fn partition(&mut self) -> Result<PartitionKey, String> {
        Ok(PartitionKey {
            topic_id: KafkaUuid(self.take()?),
            partition: u32::from_be_bytes(self.take()?) as i32,
        })
    }
    fn u32(&mut self) -> Result<i32, String> {
        Ok(u32::from_be_bytes(self.take()?) as i32)
    }
    fn u64(&mut self) -> Result<i64, String> {
        Ok(u64::from_be_bytes(self.take()?) as i64)
    }
    /// A cluster name up to its `\0`, then a biased broker id.
    fn cluster_broker(&mut self) -> Result<(String, i32), String> {
        let nul = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or("no cluster end")?;
        let cluster = std::str::from_utf8(&self.0[..nul])
            .map_err(|e| e.to_string())?
            .to_string();
        self.0 = &self.0[nul + 1..];
        let id = (u32::from_be_bytes(self.take()?) as i64 + i32::MIN as i64) as i32;
        Ok((cluster, id))
    }
    fn uuid(&mut self) -> Result<KafkaUuid, String> {
        Ok(KafkaUuid(self.take()?))
    }
}

/// Loads one stored key/value pair into `r` (at open, and when a snapshot is
/// installed). Keys arrive in RocksDB order.
pub fn load_kv(r: &mut Registry, k: &[u8], v: &[u8]) -> Result<(), String> {
    let bad = |e: String| format!("key {:?}: {e}", String::from_utf8_lossy(k));
    let tag = k.get(..2).ok_or_else(|| bad("no tag".into()))?;
    let mut rest = KeyReader(&k[2..]);
    match tag {
        b"c\0" => {
            let c: pb::Cluster = decode(v)?;
            r.clusters.insert(c.name.clone(), c.into());
        }
        b"b\0" => {
            let b: pb::Broker = decode(v)?;
            r.brokers.insert((b.cluster.clone(), b.broker_id), b.into());
        }
        b"t\0" => {
            let t: pb::Tenant = decode(v)?;
            r.tenants.insert(t.name.clone(), t.into());
        }
        b"p\0" => {
            let p: pb::PlacementPolicy = decode(v)?;
            r.policies
                .insert((p.cluster.clone(), p.topic.clone()), p.into());
        }
        b"i\0" => {
            let ids: pb::IssuedIds = decode(v)?;
            let kind = guardian_proto::conv::id_kind_from_pb(ids.kind, "kind")
                .map_err(|e| bad(e.to_string()))?;
            let id = guardian_proto::conv::uuid_from_bytes(&k[2..], "id")
                .map_err(|e| bad(e.to_string()))?;
            r.issued.insert(id, kind);
        }
        b"n\0" => {
            let b: [u8; 8] = v.try_into().map_err(|_| bad("bad counter".into()))?;
            r.next_cluster_id = u64::from_be_bytes(b);
        }
        b"l\0" => {
            let h: pb::BrokerLoadHistory = decode(v).map_err(bad)?;
            r.load
                .insert((h.cluster.clone(), h.broker_id), load_from_pb(h));
        }
        b"q\0" if is_slot_key(&k[2..]) => {
            let (cluster, id) = rest.cluster_broker().map_err(bad)?;
            let s: pb::PartitionLoadSlot = decode(v).map_err(bad)?;
            let h = r
                .partition_load
                .get_mut(&(cluster, id))
                .ok_or_else(|| bad("a slot without its partition list".into()))?;
            if s.bytes_in.len() != h.partitions.len() {
                return Err(bad(
                    "the slot's length differs from the partition list".into()
                ));
            }
            h.slots.push((s.slot, s.bytes_in));
        }
        b"q\0" => {
            let h: pb::PartitionLoadHistory = decode(v).map_err(bad)?;
            let partitions: guardian_proto::domain::PartitionList =
                h.partitions.unwrap_or_default().into();
            partitions
                .validate("partitions")
                .map_err(|e| bad(e.to_string()))?;
            r.partition_load.insert(
                (h.cluster, h.broker_id),
                PartitionHistory {
                    fingerprint: partitions.fingerprint(),
                    partitions,
                    slots: vec![],
                },
            );
        }
        b"rp" => {
            let key = rest.partition().map_err(bad)?;
            let rec: pb::RemotePartitionRecord = decode(v).map_err(bad)?;
            let p = r.remote_log.partitions.entry(key).or_default();
            p.topic = rec.topic;
            p.hosts = rec.hosts.into_iter().collect();
            p.fence_epoch = rec.fence_epoch;
            p.delete_state = rlconv::delete_state_from_pb(rec.delete_state, "delete_state")
                .map_err(|e| bad(e.to_string()))?;
        }
        b"rs" => {
            let key = rest.partition().map_err(bad)?;
            let s = rlconv::segment_from_pb(decode(v).map_err(bad)?, "segment")
                .map_err(|e| bad(e.to_string()))?;
            let p = r.remote_log.partitions.entry(key).or_default();
            if p.segments.insert(s.id, s).is_none() {
                r.remote_log.segment_count += 1;
            }
        }
        b"ro" => {
            let key = rest.partition().map_err(bad)?;
            let (epoch, start) = (rest.u32().map_err(bad)?, rest.u64().map_err(bad)?);
            let id = KafkaUuid(v.try_into().map_err(|_| bad("bad segment id".into()))?);
            let p = r.remote_log.partitions.entry(key).or_default();
            p.epochs
                .entry(epoch)
                .or_default()
                .offset_to_id
                .insert(start, id);
        }
        b"ru" => {
            let key = rest.partition().map_err(bad)?;
            let (epoch, id) = (rest.u32().map_err(bad)?, rest.uuid().map_err(bad)?);
            let p = r.remote_log.partitions.entry(key).or_default();
            p.epochs.entry(epoch).or_default().unreferenced.insert(id);
        }
        b"rh" => {
            let key = rest.partition().map_err(bad)?;
            let epoch = rest.u32().map_err(bad)?;
            let h: [u8; 8] = v.try_into().map_err(|_| bad("bad highest offset".into()))?;
            let p = r.remote_log.partitions.entry(key).or_default();
            p.epochs.entry(epoch).or_default().highest = Some(u64::from_be_bytes(h) as i64);
        }
        _ => return Err(bad("unknown tag".into())),
    }
    Ok(())
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
