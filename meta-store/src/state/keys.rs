//! The `sm_data` key space: shared pieces of the key encoding. Each domain
//! ([`super::registry`], [`super::remote_log`], [`super::load`],
//! [`super::requests`], [`super::executions`], [`super::governance`],
//! [`super::consumers`]) owns its key variants, how they are laid out, their
//! current values and how a stored pair loads back; [`super::Key`]
//! dispatches by domain and [`super::State::load_kv`] by tag.
//!
//! Keys start with a two-byte tag. Integers are big-endian (offsets, epochs
//! and partitions are >= 0), so RocksDB's byte order is numeric order and a
//! partition's keys are contiguous:
//!
//! | tag  | domain | key after the tag                         | value |
//! |------|--------|-------------------------------------------|-------|
//! | `c\0`| registry | cluster name                            | `pb::Cluster` |
//! | `b\0`| registry | cluster name, `\0`, broker id (biased u32)| `pb::Broker` |
//! | `t\0`| registry | tenant name                             | `pb::Tenant` |
//! | `p\0`| registry | cluster, `\0`, topic (`""` = cluster-wide)| `pb::PlacementPolicy` |
//! | `i\0`| registry | uuid (16)                               | `pb::IssuedIds` (kind only) |
//! | `n\0`| registry | —                                       | next cluster id (u64) |
//! | `l\0`| load | cluster name, `\0`, broker id (biased u32)  | `pb::BrokerLoadHistory` |
//! | `q\0`| load | cluster name, `\0`, broker id (biased u32)  | `pb::PartitionLoadHistory` (the list, no slots) |
//! | `q\0`| load | cluster name, `\0`, broker id, slot (u64)   | `pb::PartitionLoadSlot` |
//! | `rp` | remote log | topic id (16), partition (u32)        | `pb::RemotePartitionRecord` |
//! | `rs` | remote log | topic id, partition, segment id (16)  | `pb::RemoteLogSegment` |
//! | `ro` | remote log | topic id, partition, epoch (u32), epoch start offset (u64) | segment id |
//! | `ru` | remote log | topic id, partition, epoch, segment id | empty |
//! | `rh` | remote log | topic id, partition, epoch            | highest offset (u64) |
//! | `d\0`| requests | client id (16)                          | `pb::ClientRequests` (its recent write results) |
//! | `xe` | executions | execution id (u64)                  | `Execution` as JSON |
//! | `xt` | executions | execution id, task index (u32)      | `Task` as JSON |
//! | `xn` | executions | —                                   | next execution id (u64) |
//! | `xc` | executions | cluster name (rest of the key)      | `ClusterControls` as JSON |
//! | `ge` | governance | event seq (u64)                     | `EventRecord` as JSON |
//! | `gc` | governance | claim id (u64)                      | `Claim` as JSON |
//! | `gn` | governance | —                                   | next event seq, next claim id (u64 each) |
//! | `gh` | governance | cluster name, `\0`, broker id (biased u32) | `HostOverrides` as JSON |
//! | `wp` | consumers | pool name (rest of the key)          | `WorkerPool` as JSON |
//! | `ww` | consumers | worker id (rest of the key)          | `WorkerRecord` as JSON |
//! | `wb` | consumers | cluster, `\0`, topic, `\0`, group    | `BindingRecord` as JSON |
//! | `wl` | consumers | cluster, `\0`, topic, `\0`, group    | `BindingPlan` as JSON |
//! | `wn` | consumers | —                                    | current plan epoch (u64) |
//!
//! `ro` is the lookup index: the segment holding offset `o` of epoch `e` is
//! the last `ro` key ≤ (partition, e, o) — a RocksDB `seek_for_prev`.

use guardian_proto::domain::KafkaUuid;
use guardian_proto::remote_log::PartitionKey;

use crate::error::StoreError;

pub(crate) fn put_broker(out: &mut Vec<u8>, tag: &[u8; 2], cluster: &str, id: i32) {
    out.extend_from_slice(tag);
    out.extend_from_slice(cluster.as_bytes());
    out.push(0);
    out.extend_from_slice(&((id as i64 - i32::MIN as i64) as u32).to_be_bytes());
}

pub(crate) fn put_partition(out: &mut Vec<u8>, tag: &[u8; 2], p: &PartitionKey) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&p.topic_id.0);
    out.extend_from_slice(&(p.partition as u32).to_be_bytes());
}

/// Reads fixed-size fields off a key (after its tag). Errors name the
/// whole key.
pub(crate) struct KeyReader<'a> {
    key: &'a [u8],
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// A reader over `key` past its two-byte tag.
    pub fn new(key: &'a [u8]) -> Self {
        Self {
            key,
            rest: key.get(2..).unwrap_or_default(),
        }
    }

    /// The bytes after the tag not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// An error about this key.
    pub fn bad(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::bad_record(self.key, reason)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        if self.rest.len() < N {
            return Err(self.bad("key too short"));
        }
        let (a, b) = self.rest.split_at(N);
        self.rest = b;
        Ok(a.try_into().expect("length checked"))
    }
    pub fn partition(&mut self) -> Result<PartitionKey, StoreError> {
        Ok(PartitionKey {
            topic_id: KafkaUuid(self.take()?),
            partition: u32::from_be_bytes(self.take()?) as i32,
        })
    }
    pub fn u32(&mut self) -> Result<i32, StoreError> {
        Ok(u32::from_be_bytes(self.take()?) as i32)
    }
    pub fn u64(&mut self) -> Result<i64, StoreError> {
        Ok(u64::from_be_bytes(self.take()?) as i64)
    }
    /// A cluster name up to its `\0`, then a biased broker id.
    pub fn cluster_broker(&mut self) -> Result<(String, i32), StoreError> {
        let nul = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.bad("no cluster end"))?;
        let cluster = std::str::from_utf8(&self.rest[..nul])
            .map_err(|e| self.bad(e))?
            .to_string();
        self.rest = &self.rest[nul + 1..];
        let id = (u32::from_be_bytes(self.take()?) as i64 + i32::MIN as i64) as i32;
        Ok((cluster, id))
    }
    pub fn uuid(&mut self) -> Result<KafkaUuid, StoreError> {
        Ok(KafkaUuid(self.take()?))
    }
}
