//! RocksDB-backed Raft log store and state machine.
//!
//! Column families:
//! - `meta`: on-disk format version, vote, committed log id, last purged log id.
//! - `logs`: index (u64 big-endian) → `pb::Entry`.
//! - `sm_meta`: last applied log id, last membership.
//! - `sm_data`: the registry, one key per item (see [`Key`]), protobuf values.
//! - `snapshot`: the current snapshot (`pb::StoredSnapshot`).
//!
//! Votes, truncations and purges are written with `sync = true` before they
//! return. Appends are written to the WAL at once (so they are readable) and
//! acknowledged to openraft only after a dedicated thread has synced the WAL
//! (`flush_wal(true)`): one fsync covers every append queued meanwhile (group
//! commit), and the Raft core keeps replicating while the disk works. State-machine writes go through the WAL
//! without fsync: after a crash openraft re-applies committed entries from the
//! (synced) log, which is never purged past the last persisted snapshot.

// openraft's trait methods return its (large) `StorageError`; helpers return it too.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use guardian_proto::pb;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftLogReader, RaftSnapshotBuilder, StorageIOError};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};

use crate::codec;
use crate::registry::{Key, Registry};
use crate::types::{
    CommandResponse, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig, Vote,
};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

const CF_META: &str = "meta";
const CF_LOGS: &str = "logs";
const CF_SM_META: &str = "sm_meta";
const CF_SM_DATA: &str = "sm_data";
const CF_SNAPSHOT: &str = "snapshot";

const K_VERSION: &[u8] = b"format_version";
const K_VOTE: &[u8] = b"vote";
const K_COMMITTED: &[u8] = b"committed";
const K_PURGED: &[u8] = b"last_purged";
const K_APPLIED: &[u8] = b"last_applied";
const K_MEMBERSHIP: &[u8] = b"last_membership";
const K_SNAPSHOT: &[u8] = b"current";

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("rocksdb at {path}: {source}")]
    Rocks {
        path: String,
        #[source]
        source: rocksdb::Error,
    },
    #[error("data dir {path} has on-disk format version {found}; this build supports {supported}")]
    UnsupportedFormat {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("starting the WAL sync thread: {source}")]
    Thread {
        #[source]
        source: std::io::Error,
    },
    #[error("data dir {path} is corrupt: {what}")]
    Corrupt { path: String, what: String },
}

/// Opens (or creates) the store in `dir`: returns the log store and the state
/// machine, sharing one RocksDB instance.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), OpenError> {
    let path = dir.display().to_string();
    let rocks = |source| OpenError::Rocks {
        path: path.clone(),
        source,
    };
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_META, CF_LOGS, CF_SM_META, CF_SM_DATA, CF_SNAPSHOT]
        .into_iter()
        .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(rocks)?;
    let db = Arc::new(db);

    let meta = db.cf_handle(CF_META).expect("cf created at open");
    match db.get_cf(meta, K_VERSION).map_err(rocks)? {
        Some(v) => {
            let found = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| OpenError::Corrupt {
                    path: path.clone(),
                    what: "format version header is not 4 bytes".into(),
                })?;
            if found != FORMAT_VERSION {
                return Err(OpenError::UnsupportedFormat {
                    path,
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        }
        None => {
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            db.put_cf_opt(meta, K_VERSION, FORMAT_VERSION.to_be_bytes(), &wo)
                .map_err(rocks)?;
        }
    }

    let state = load_state(&db).map_err(|what| OpenError::Corrupt {
        path: path.clone(),
        what,
    })?;
    let log = LogStore {
        cache: Default::default(),
        db: db.clone(),
        syncer: WalSyncer::start(Arc::downgrade(&db))
            .map_err(|source| OpenError::Thread { source })?,
    };
    let sm = StateMachineStore {
        db,
        state: Arc::new(RwLock::new(state)),
        snapshot_seq: 0,
    };
    Ok((log, sm))
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).expect("column family created at open")
}

fn sync_opts() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, String> {
    M::decode(bytes).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Log store

/// The Raft log in RocksDB. Cheap to clone (shares the DB and the cache).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    syncer: WalSyncer,
    cache: Arc<std::sync::Mutex<LogCache>>,
}

/// The most recent log entries, decoded, so replication (which re-reads what
/// was just appended) skips RocksDB reads and protobuf decoding. Bounded by an
/// approximate byte budget; always a contiguous run of indexes.
#[derive(Default)]
struct LogCache {
    entries: std::collections::BTreeMap<u64, (Entry, usize)>,
    bytes: usize,
}

/// Approximate memory the log cache may hold.
const LOG_CACHE_BYTES: usize = 64 << 20;

fn entry_weight(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(r) => 64 + r.command.approx_size(),
        _ => 256,
    }
}

impl LogCache {
    fn insert(&mut self, e: Entry) {
        let idx = e.log_id.index;
        // Keep the run contiguous: an append that does not continue it restarts it.
        if let Some((&last, _)) = self.entries.last_key_value() {
            if idx != last + 1 {
                self.clear();
            }
        }
        let w = entry_weight(&e);
        self.bytes += w;
        self.entries.insert(idx, (e, w));
        while self.bytes > LOG_CACHE_BYTES {
            match self.entries.pop_first() {
                Some((_, (_, w))) => self.bytes -= w,
                None => break,
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Drops indexes >= `from` (truncate) or <= `upto` (purge).
    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let bytes = &mut self.bytes;
        self.entries.retain(|i, (_, w)| {
            let k = keep(*i);
            if !k {
                *bytes -= *w;
            }
            k
        });
    }

    /// `start..end` if every index in it is cached.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let (&first, _) = self.entries.first_key_value()?;
        let (&last, _) = self.entries.last_key_value()?;
        if start < first || end > last + 1 || start >= end {
            return None;
        }
        Some(
            self.entries
                .range(start..end)
                .map(|(_, (e, _))| e.clone())
                .collect(),
        )
    }
}

/// Group commit: appends queue their flush callbacks here; one thread syncs
/// the WAL once per batch of queued callbacks, then completes them in order.
#[derive(Clone)]
struct WalSyncer {
    tx: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl WalSyncer {
    /// The thread holds only a weak handle, so dropping the store closes the DB.
    fn start(db: std::sync::Weak<DB>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
        std::thread::Builder::new()
            .name("guardian-wal-sync".into())
            .spawn(move || {
                // Ends when every LogStore (sender) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let res = match db.upgrade() {
                        Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
                        None => Err("store closed".to_string()),
                    };
                    for cb in batch {
                        cb.log_io_completed(res.clone().map_err(std::io::Error::other));
                    }
                }
            })?;
        Ok(WalSyncer { tx })
    }
}

fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

impl LogStore {
    fn get_meta<M: Message + Default>(&self, key: &[u8]) -> Result<Option<M>, StorageIOError<u64>> {
        let v = self
            .db
            .get_cf(cf(&self.db, CF_META), key)
            .map_err(|e| StorageIOError::read(&e))?;
        v.map(|b| decode::<M>(&b).map_err(|e| StorageIOError::read(&std::io::Error::other(e))))
            .transpose()
    }

    fn put_meta_sync<M: Message>(&self, key: &[u8], m: &M) -> Result<(), rocksdb::Error> {
        self.db
            .put_cf_opt(cf(&self.db, CF_META), key, m.encode_to_vec(), &sync_opts())
    }

    fn last_purged(&self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .get_meta::<pb::LogId>(K_PURGED)?
            .map(|l| codec::log_id_from_pb(&l)))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        if let Some(end) = end {
            let cached = self
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(start, end);
            if let Some(entries) = cached {
                return Ok(entries);
            }
        }
        let logs = cf(&self.db, CF_LOGS);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            logs,
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let idx = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| {
                StorageIOError::read_logs(&std::io::Error::other("log key is not 8 bytes"))
            })?);
            if !range.contains(&idx) {
                break;
            }
            let e = decode::<pb::Entry>(&v)
                .map_err(|e| StorageIOError::read_logs(&std::io::Error::other(e)))?;
            let e = codec::entry_from_pb(e).map_err(|e| StorageIOError::read_logs(&e))?;
            out.push(e);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged = self.last_purged()?;
        let logs = cf(&self.db, CF_LOGS);
        let last = match self.db.iterator_cf(logs, IteratorMode::End).next() {
            None => None,
            Some(item) => {
                let (_, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let e = decode::<pb::Entry>(&v)
                    .map_err(|e| StorageIOError::read_logs(&std::io::Error::other(e)))?;
                e.log_id.map(|l| codec::log_id_from_pb(&l))
            }
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta_sync(K_VOTE, &codec::vote_to_pb(vote))
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self
            .get_meta::<pb::Vote>(K_VOTE)?
            .map(|v| codec::vote_from_pb(&v)))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced: the committed index is a restart hint (it lets a node
        // re-apply without waiting for a leader), never needed for safety, and
        // it changes on every commit; the next WAL sync covers it anyway.
        let meta = cf(&self.db, CF_META);
        let r = match committed {
            Some(c) => self
                .db
                .put_cf(meta, K_COMMITTED, codec::log_id_to_pb(&c).encode_to_vec()),
            None => self.db.delete_cf(meta, K_COMMITTED),
        };
        r.map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .get_meta::<pb::LogId>(K_COMMITTED)?
            .map(|l| codec::log_id_from_pb(&l)))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let logs = cf(&self.db, CF_LOGS);
        let mut batch = WriteBatch::default();
        let entries: Vec<Entry> = entries.into_iter().collect();
        for e in &entries {
            batch.put_cf(
                logs,
                index_key(e.log_id.index),
                codec::entry_to_pb(e).encode_to_vec(),
            );
        }
        // Written (readable) now; durable when the syncer calls back.
        match self.db.write(batch) {
            Ok(()) => {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                for e in entries {
                    cache.insert(e);
                }
                drop(cache);
                if let Err(e) = self.syncer.tx.send(callback) {
                    let err = std::io::Error::other("WAL sync thread is gone");
                    e.0.log_io_completed(Err(std::io::Error::other("WAL sync thread is gone")));
                    return Err(StorageIOError::write_logs(&err).into());
                }
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|i| i < log_id.index);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_LOGS),
            index_key(log_id.index),
            index_key(u64::MAX),
        );
        batch.delete_cf(cf(&self.db, CF_LOGS), index_key(u64::MAX));
        self.db
            .write_opt(batch, &sync_opts())
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|i| i > log_id.index);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_META),
            K_PURGED,
            codec::log_id_to_pb(&log_id).encode_to_vec(),
        );
        batch.delete_range_cf(
            cf(&self.db, CF_LOGS),
            index_key(0),
            index_key(log_id.index + 1),
        );
        self.db
            .write_opt(batch, &sync_opts())
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

// ---------------------------------------------------------------------------
// State machine

/// The applied state: registry plus Raft bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct SmState {
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    pub registry: Registry,
}

/// The state machine in RocksDB, with an in-memory copy for reads.
pub struct StateMachineStore {
    db: Arc<DB>,
    state: Arc<RwLock<SmState>>,
    snapshot_seq: u64,
}

/// A read handle on the applied state, shared with the API layer.
#[derive(Clone)]
pub struct StateReader {
    state: Arc<RwLock<SmState>>,
}

impl StateReader {
    /// Reads the applied state. Keep the guard short: apply waits on it.
    pub fn read(&self) -> RwLockReadGuard<'_, SmState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn key_bytes(k: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    match k {
        Key::Cluster(n) => {
            out.extend_from_slice(b"c\0");
            out.extend_from_slice(n.as_bytes());
        }
        Key::Broker(c, id) => {
            out.extend_from_slice(b"b\0");
            out.extend_from_slice(c.as_bytes());
            out.push(0);
            out.extend_from_slice(&((*id as i64 - i32::MIN as i64) as u32).to_be_bytes());
        }
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
    }
    out
}

/// The current value of `k`, encoded; `None` if it no longer exists.
fn value_bytes(r: &Registry, k: &Key) -> Option<Vec<u8>> {
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
    }
}

fn load_state(db: &DB) -> Result<SmState, String> {
    let sm_meta = cf(db, CF_SM_META);
    let mut st = SmState::default();
    if let Some(v) = db.get_cf(sm_meta, K_APPLIED).map_err(|e| e.to_string())? {
        st.last_applied = Some(codec::log_id_from_pb(&decode::<pb::LogId>(&v)?));
    }
    if let Some(v) = db
        .get_cf(sm_meta, K_MEMBERSHIP)
        .map_err(|e| e.to_string())?
    {
        st.last_membership = codec::stored_membership_from_pb(decode(&v)?);
    }
    let r = &mut st.registry;
    for item in db.iterator_cf(cf(db, CF_SM_DATA), IteratorMode::Start) {
        let (k, v) = item.map_err(|e| e.to_string())?;
        match k.get(..2) {
            Some(b"c\0") => {
                let c: pb::Cluster = decode(&v)?;
                r.clusters.insert(c.name.clone(), c.into());
            }
            Some(b"b\0") => {
                let b: pb::Broker = decode(&v)?;
                r.brokers.insert((b.cluster.clone(), b.broker_id), b.into());
            }
            Some(b"t\0") => {
                let t: pb::Tenant = decode(&v)?;
                r.tenants.insert(t.name.clone(), t.into());
            }
            Some(b"p\0") => {
                let p: pb::PlacementPolicy = decode(&v)?;
                r.policies
                    .insert((p.cluster.clone(), p.topic.clone()), p.into());
            }
            Some(b"i\0") => {
                let ids: pb::IssuedIds = decode(&v)?;
                let kind = guardian_proto::conv::id_kind_from_pb(ids.kind, "kind")
                    .map_err(|e| e.to_string())?;
                let id = guardian_proto::conv::uuid_from_bytes(&k[2..], "id")
                    .map_err(|e| e.to_string())?;
                r.issued.insert(id, kind);
            }
            Some(b"n\0") => {
                let b: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| "bad counter".to_string())?;
                r.next_cluster_id = u64::from_be_bytes(b);
            }
            _ => {
                return Err(format!(
                    "unknown state key {:?}",
                    String::from_utf8_lossy(&k)
                ))
            }
        }
    }
    Ok(st)
}

impl StateMachineStore {
    /// A read handle on the applied state.
    pub fn reader(&self) -> StateReader {
        StateReader {
            state: self.state.clone(),
        }
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, SmState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn sm_meta_batch(&self, batch: &mut WriteBatch, st: &SmState) {
        let sm_meta = cf(&self.db, CF_SM_META);
        if let Some(l) = &st.last_applied {
            batch.put_cf(sm_meta, K_APPLIED, codec::log_id_to_pb(l).encode_to_vec());
        }
        batch.put_cf(
            sm_meta,
            K_MEMBERSHIP,
            codec::stored_membership_to_pb(&st.last_membership).encode_to_vec(),
        );
    }

    fn encode_snapshot_data(st: &SmState) -> Vec<u8> {
        pb::StateMachineData {
            last_applied: codec::opt_log_id_to_pb(&st.last_applied),
            last_membership: Some(codec::stored_membership_to_pb(&st.last_membership)),
            registry: Some(codec::registry_to_pb(&st.registry)),
        }
        .encode_to_vec()
    }

    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let stored = pb::StoredSnapshot {
            meta: Some(codec::snapshot_meta_to_pb(meta)),
            data: data.to_vec(),
        };
        self.db
            .put_cf_opt(
                cf(&self.db, CF_SNAPSHOT),
                K_SNAPSHOT,
                stored.encode_to_vec(),
                &sync_opts(),
            )
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (data, last_applied, last_membership) = {
            let st = self.reader();
            let st = st.read();
            (
                Self::encode_snapshot_data(&st),
                st.last_applied,
                st.last_membership.clone(),
            )
        };
        self.snapshot_seq += 1;
        let snapshot_id = match &last_applied {
            Some(l) => format!(
                "{}-{}-{}-{}",
                l.leader_id.term, l.leader_id.node_id, l.index, self.snapshot_seq
            ),
            None => format!("0-0-0-{}", self.snapshot_seq),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        self.save_snapshot(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.reader();
        let st = st.read();
        Ok((st.last_applied, st.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut touched = Vec::new();
        let mut batch = WriteBatch::default();
        {
            let mut st = self.write_state();
            for e in entries {
                st.last_applied = Some(e.log_id);
                let resp = match e.payload {
                    EntryPayload::Blank => CommandResponse::Done,
                    EntryPayload::Normal(req) => st.registry.apply(&req, &mut touched),
                    EntryPayload::Membership(m) => {
                        st.last_membership = StoredMembership::new(Some(e.log_id), m);
                        CommandResponse::Done
                    }
                };
                out.push(resp);
            }
            touched.sort();
            touched.dedup();
            let data = cf(&self.db, CF_SM_DATA);
            for k in &touched {
                match value_bytes(&st.registry, k) {
                    Some(v) => batch.put_cf(data, key_bytes(k), v),
                    None => batch.delete_cf(data, key_bytes(k)),
                }
            }
            self.sm_meta_batch(&mut batch, &st);
        }
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachineStore {
            db: self.db.clone(),
            state: self.state.clone(),
            snapshot_seq: {
                self.snapshot_seq += 1;
                self.snapshot_seq
            },
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let bad = |e: String| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                &std::io::Error::other(e),
            ))
        };
        let smd: pb::StateMachineData = decode(&data).map_err(bad)?;
        let registry = codec::registry_from_pb(smd.registry.unwrap_or_default())
            .map_err(|e| bad(e.to_string()))?;
        let new_state = SmState {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            registry,
        };
        // Replace the persisted state in one batch, then the snapshot itself.
        let mut batch = WriteBatch::default();
        let data_cf = cf(&self.db, CF_SM_DATA);
        batch.delete_range_cf(data_cf, [0u8].as_slice(), [0xffu8; 4].as_slice());
        let mut keys = Vec::new();
        keys.extend(
            new_state
                .registry
                .clusters
                .keys()
                .map(|n| Key::Cluster(n.clone())),
        );
        keys.extend(
            new_state
                .registry
                .brokers
                .keys()
                .map(|(c, i)| Key::Broker(c.clone(), *i)),
        );
        keys.extend(
            new_state
                .registry
                .tenants
                .keys()
                .map(|n| Key::Tenant(n.clone())),
        );
        keys.extend(
            new_state
                .registry
                .policies
                .keys()
                .map(|(c, t)| Key::Policy(c.clone(), t.clone())),
        );
        keys.extend(new_state.registry.issued.keys().map(|u| Key::Id(*u)));
        keys.push(Key::Counters);
        for k in &keys {
            if let Some(v) = value_bytes(&new_state.registry, k) {
                batch.put_cf(data_cf, key_bytes(k), v);
            }
        }
        self.sm_meta_batch(&mut batch, &new_state);
        self.db
            .write_opt(batch, &sync_opts())
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.save_snapshot(meta, &data)?;
        *self.write_state() = new_state;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(v) = self
            .db
            .get_cf(cf(&self.db, CF_SNAPSHOT), K_SNAPSHOT)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let stored: pb::StoredSnapshot = decode(&v)
            .map_err(|e| StorageIOError::read_snapshot(None, &std::io::Error::other(e)))?;
        let meta = codec::snapshot_meta_from_pb(stored.meta.unwrap_or_default());
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    struct RocksBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let (log, sm) = open(dir.path()).expect("open store");
            Ok((dir, log, sm))
        }
    }

    /// openraft's own storage conformance suite against the RocksDB store.
    #[test]
    fn openraft_storage_suite() -> Result<(), StorageError> {
        Suite::test_all(RocksBuilder)
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[test]
    fn log_cache_serves_only_contiguous_cached_ranges() {
        let mut c = LogCache::default();
        for i in 5..10 {
            c.insert(blank(i));
        }
        assert_eq!(c.get(5, 10).map(|v| v.len()), Some(5));
        assert!(c.get(4, 6).is_none(), "4 is not cached");
        assert!(c.get(8, 11).is_none(), "10 is not cached");
        c.retain(|i| i < 8); // truncate at 8
        assert!(c.get(7, 9).is_none());
        c.insert(blank(8));
        assert_eq!(c.get(7, 9).map(|v| v.len()), Some(2));
        c.insert(blank(20)); // not contiguous: the run restarts
        assert!(c.get(8, 9).is_none());
        assert_eq!(c.get(20, 21).map(|v| v.len()), Some(1));
        c.retain(|i| i > 20); // purge up to 20
        assert!(c.entries.is_empty() && c.bytes == 0);
    }

    #[test]
    fn rejects_unknown_format_version() {
        let dir = tempfile::tempdir().unwrap();
        {
            let _ = open(dir.path()).unwrap();
        }
        {
            let mut opts = Options::default();
            opts.create_missing_column_families(true);
            let cfs = [CF_META, CF_LOGS, CF_SM_META, CF_SM_DATA, CF_SNAPSHOT];
            let db = DB::open_cf(&opts, dir.path(), cfs).unwrap();
            db.put_cf(
                db.cf_handle(CF_META).unwrap(),
                K_VERSION,
                99u32.to_be_bytes(),
            )
            .unwrap();
        }
        match open(dir.path()) {
            Err(OpenError::UnsupportedFormat {
                found: 99,
                supported: 1,
                ..
            }) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a format-99 store"),
        }
    }
}
