//! RocksDB-backed Raft log store and state machine.
//!
//! Column families:
//! - `meta`: on-disk format version, vote, committed log id, last purged log id.
//! - `logs`: index (u64 big-endian) → `pb::Entry`.
//! - `sm_meta`: last applied log id, last membership.
//! - `sm_data`: the replicated state, one key per item; layout in
//!   [`crate::state::keys`].
//! - `sm_meta` also holds `installing` while a snapshot is being streamed in
//!   (an interrupted install is finished at the next open).
//! - `snapshot`: the current snapshot's meta and file name
//!   (`pb::StoredSnapshot`); the file lives in `<dir>/snapshots/`.
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

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use tokio::io::AsyncSeekExt;

use guardian_proto::pb;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftLogReader, RaftSnapshotBuilder, StorageIOError};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};

use crate::codec;
use crate::error::StoreError;
use crate::snapshot_file::{self, SnapshotWriter};
use crate::state::State;
use crate::types::{
    CommandResponse, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig, Vote,
};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

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
const K_INSTALLING: &[u8] = b"installing";

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
    #[error("data dir {path}: {source}")]
    Load {
        path: String,
        #[source]
        source: StoreError,
    },
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
    let db = Arc::new(Db {
        db,
        closed: CloseMark::default(),
    });

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

    let snap_dir = dir.join("snapshots");
    std::fs::create_dir_all(&snap_dir).map_err(|e| OpenError::Corrupt {
        path: path.clone(),
        what: format!("creating {}: {e}", snap_dir.display()),
    })?;
    let state = load_state(&db, &snap_dir).map_err(|source| OpenError::Load {
        path: path.clone(),
        source,
    })?;
    let keep = current_snapshot_record(&db).ok().flatten().map(|(_, f)| f);
    remove_stale_snapshot_files(&snap_dir, keep.as_deref(), true);
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
        snap_dir,
        receiving: Default::default(),
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

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, prost::DecodeError> {
    M::decode(bytes)
}

// ---------------------------------------------------------------------------
// Log store

/// Raft log entries and their encoded bytes appended by this process's
/// log store since it started (one node per process; read by the
/// controller's `/metrics`).
pub struct Appended {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
}

/// This process's [`Appended`] counts.
pub static APPENDED: Appended = Appended {
    entries: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
};

/// The Raft log in RocksDB. Cheap to clone (shares the DB and the cache).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    syncer: WalSyncer,
    cache: Arc<std::sync::Mutex<LogCache>>,
}

/// The database and a mark set once it is closed. Fields drop in order:
/// the mark is set only after RocksDB has closed (and released its lock).
pub(crate) struct Db {
    db: DB,
    closed: CloseMark,
}

impl std::ops::Deref for Db {
    type Target = DB;
    fn deref(&self) -> &DB {
        &self.db
    }
}

#[derive(Default)]
struct CloseMark(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CloseMark {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Tells whether the store's RocksDB is closed: every handle on it (log
/// store, state machine, their readers and in-flight snapshot work) has
/// been dropped and the database closed, so the data dir can be opened
/// again.
#[derive(Clone)]
pub struct StoreClosed(Arc<std::sync::atomic::AtomicBool>);

impl StoreClosed {
    pub fn is_closed(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl LogStore {
    /// A way to see, later, that this store's database has been closed.
    pub fn closed(&self) -> StoreClosed {
        StoreClosed(self.db.closed.0.clone())
    }
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

    /// If `start` is cached: the end (exclusive, <= `end`) of the longest run
    /// from `start` within `max_bytes` (at least one entry).
    fn limit_end(&self, start: u64, end: u64, max_bytes: usize) -> Option<u64> {
        if start >= end || !self.entries.contains_key(&start) {
            return None;
        }
        let mut bytes = 0;
        let mut stop = start + 1;
        for (&i, (_, w)) in self.entries.range(start..end) {
            bytes += w;
            if bytes > max_bytes && i > start {
                break;
            }
            stop = i + 1;
        }
        Some(stop)
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
    fn start(db: std::sync::Weak<Db>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
        std::thread::Builder::new()
            .name("guardian-wal-sync".into())
            .spawn(move || {
                // Ends when every LogStore (sender) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let res = (|| {
                        #[cfg(feature = "failpoints")]
                        fail::fail_point!("store::wal_sync", |_| Err(
                            "failpoint store::wal_sync".to_string()
                        ));
                        match db.upgrade() {
                            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
                            None => Err("store closed".to_string()),
                        }
                    })();
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

/// Upper bound on the entries one AppendEntries carries (at least one
/// entry). openraft 0.9 gives every AppendEntries RPC the heartbeat interval
/// (50 ms by default) to complete; a bigger payload on a loaded machine
/// times out, replication backs off for 500 ms and the followers call
/// elections. 1 MiB crosses loopback, decodes and syncs well within that.
const MAX_APPEND_BYTES: usize = 1 << 20;

impl RaftLogReader<TypeConfig> for LogStore {
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let cached_end = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .limit_end(start, end, MAX_APPEND_BYTES);
        if let Some(end) = cached_end {
            return self.try_get_log_entries(start..end).await;
        }
        // Not cached (a follower far behind): read only what one RPC carries.
        self.read_db(start, |i| i < end, MAX_APPEND_BYTES)
    }

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
        self.read_db(start, |i| range.contains(&i), usize::MAX)
    }
}

impl LogStore {
    /// Entries from `start` while `in_range` holds, read from RocksDB; stops
    /// after `max_bytes` of encoded entries (at least one entry).
    fn read_db(
        &self,
        start: u64,
        in_range: impl Fn(u64) -> bool,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let logs = cf(&self.db, CF_LOGS);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let iter = self.db.iterator_cf(
            logs,
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let idx = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| {
                StorageIOError::read_logs(&std::io::Error::other("log key is not 8 bytes"))
            })?);
            if !in_range(idx) {
                break;
            }
            bytes += v.len();
            if bytes > max_bytes && !out.is_empty() {
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
        #[cfg(feature = "failpoints")]
        fail::fail_point!("store::append", |_| Err(StorageIOError::write_logs(
            &std::io::Error::other("failpoint store::append")
        )
        .into()));
        let logs = cf(&self.db, CF_LOGS);
        let mut batch = WriteBatch::default();
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut bytes = 0u64;
        for e in &entries {
            let v = codec::entry_to_pb(e).encode_to_vec();
            bytes += v.len() as u64;
            batch.put_cf(logs, index_key(e.log_id.index), v);
        }
        APPENDED
            .entries
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        APPENDED.bytes.fetch_add(bytes, Ordering::Relaxed);
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

/// The applied state (every domain, [`State`]) plus Raft bookkeeping.
/// Derefs to the [`State`]: `st.registry`, `st.remote_log`, `st.load`.
#[derive(Debug, Clone, Default)]
pub struct SmState {
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    pub state: State,
}

impl std::ops::Deref for SmState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

/// The state machine in RocksDB, with an in-memory copy for reads.
/// Snapshots are files in `<data dir>/snapshots` ([`snapshot_file`]).
pub struct StateMachineStore {
    db: Arc<Db>,
    state: Arc<RwLock<SmState>>,
    snapshot_seq: u64,
    snap_dir: PathBuf,
    /// The file a snapshot is being received into (set by
    /// `begin_receiving_snapshot`, taken by `install_snapshot`).
    receiving: Arc<Mutex<Option<PathBuf>>>,
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

fn load_sm_meta(
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error>,
) -> Result<(Option<LogId>, StoredMembership), StoreError> {
    let applied = match get(K_APPLIED)? {
        Some(v) => Some(codec::log_id_from_pb(&crate::error::decode::<pb::LogId>(
            "last applied",
            &v,
        )?)),
        None => None,
    };
    let membership = match get(K_MEMBERSHIP)? {
        Some(v) => codec::stored_membership_from_pb(crate::error::decode("last membership", &v)?),
        None => StoredMembership::default(),
    };
    Ok((applied, membership))
}

/// Loads the persisted state machine; finishes an interrupted snapshot
/// install first.
fn load_state(db: &DB, snap_dir: &Path) -> Result<SmState, StoreError> {
    let sm_meta = cf(db, CF_SM_META);
    if db.get_cf(sm_meta, K_INSTALLING)?.is_some() {
        let (meta, file) =
            current_snapshot_record(db)?.ok_or(StoreError::InstallWithoutSnapshot)?;
        tracing::warn!(snapshot = %meta.snapshot_id, "finishing an interrupted snapshot install");
        return ingest_snapshot(db, &meta, &snap_dir.join(file));
    }
    let (last_applied, last_membership) = load_sm_meta(|k| db.get_cf(sm_meta, k))?;
    let mut st = SmState {
        last_applied,
        last_membership,
        state: State::default(),
    };
    for item in db.iterator_cf(cf(db, CF_SM_DATA), IteratorMode::Start) {
        let (k, v) = item?;
        st.state.load_kv(&k, &v)?;
    }
    Ok(st)
}

fn sm_meta_batch(db: &DB, batch: &mut WriteBatch, st: &SmState) {
    let sm_meta = cf(db, CF_SM_META);
    if let Some(l) = &st.last_applied {
        batch.put_cf(sm_meta, K_APPLIED, codec::log_id_to_pb(l).encode_to_vec());
    }
    batch.put_cf(
        sm_meta,
        K_MEMBERSHIP,
        codec::stored_membership_to_pb(&st.last_membership).encode_to_vec(),
    );
}

/// The recorded current snapshot: its meta and file name.
fn current_snapshot_record(db: &DB) -> Result<Option<(SnapshotMeta, String)>, StoreError> {
    let Some(v) = db.get_cf(cf(db, CF_SNAPSHOT), K_SNAPSHOT)? else {
        return Ok(None);
    };
    let stored: pb::StoredSnapshot = crate::error::decode("snapshot record", &v)?;
    Ok(Some((
        codec::snapshot_meta_from_pb(stored.meta.unwrap_or_default()),
        stored.file,
    )))
}

fn snapshot_record_batch(db: &DB, batch: &mut WriteBatch, meta: &SnapshotMeta, file: &str) {
    let stored = pb::StoredSnapshot {
        meta: Some(codec::snapshot_meta_to_pb(meta)),
        file: file.to_string(),
    };
    batch.put_cf(cf(db, CF_SNAPSHOT), K_SNAPSHOT, stored.encode_to_vec());
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A snapshot id as a safe file name.
fn snapshot_file_name(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.snap")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes every snapshot file but `keep` (and, at open, partial receives).
fn remove_stale_snapshot_files(dir: &Path, keep: Option<&str>, partial_too: bool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = (name.ends_with(".snap") && Some(name.as_str()) != keep)
            || name.ends_with(".tmp")
            || (partial_too && name.ends_with(".part"));
        if stale {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(file = %name, %err, "removing an old snapshot file");
            }
        }
    }
}

/// Writes a snapshot file from one consistent RocksDB view (bounded memory:
/// records stream from the iterator to the file).
fn build_snapshot_file(
    db: &DB,
    dir: &Path,
    seq: u64,
) -> Result<(SnapshotMeta, PathBuf), StoreError> {
    // Make the applied state durable first: the log may be purged up to it.
    db.flush_wal(true)?;
    let view = db.snapshot();
    let sm_meta = cf(db, CF_SM_META);
    let (last_applied, last_membership) = load_sm_meta(|k| view.get_cf(sm_meta, k))?;
    let snapshot_id = match &last_applied {
        Some(l) => format!(
            "{}-{}-{}-{}",
            l.leader_id.term, l.leader_id.node_id, l.index, seq
        ),
        None => format!("0-0-0-{seq}"),
    };
    let path = dir.join(snapshot_file_name(&snapshot_id));
    let tmp = path.with_extension("tmp");
    let mut w = SnapshotWriter::create(&tmp)?;
    for item in view.iterator_cf(cf(db, CF_SM_DATA), IteratorMode::Start) {
        let (k, v) = item?;
        w.put(&k, &v)?;
    }
    w.finish()?;
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership,
        snapshot_id,
    };
    Ok((meta, path))
}

/// Replaces the state with the snapshot file's: checks the whole file, then
/// records it as current with an "installing" mark, then streams it in.
fn install_snapshot_file(db: &DB, meta: &SnapshotMeta, path: &Path) -> Result<SmState, StoreError> {
    snapshot_file::read_records(path, |_, _| Ok(()))?;
    let mut batch = WriteBatch::default();
    snapshot_record_batch(db, &mut batch, meta, &file_name(path));
    batch.put_cf(cf(db, CF_SM_META), K_INSTALLING, b"");
    db.write_opt(batch, &sync_opts())?;
    // Recorded and marked, nothing streamed in yet: a crash here is
    // finished at the next open.
    #[cfg(feature = "failpoints")]
    fail::fail_point!("store::install_snapshot", |_| Err(StoreError::Io(
        std::io::Error::other("failpoint store::install_snapshot")
    )));
    ingest_snapshot(db, meta, path)
}

/// Streams a (checked) snapshot file into `sm_data` in bounded write
/// batches, building the in-memory state alongside (decoding on this thread,
/// RocksDB writes on another). Idempotent: rerun at open if interrupted (the
/// "installing" mark is cleared only at the end).
fn ingest_snapshot(db: &DB, meta: &SnapshotMeta, path: &Path) -> Result<SmState, StoreError> {
    const CHUNK_BYTES: usize = 8 << 20;
    let data = cf(db, CF_SM_DATA);
    db.delete_range_cf(data, [0u8].as_slice(), [0xffu8; 4].as_slice())?;
    let mut st = SmState {
        last_applied: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
        state: State::default(),
    };
    // At most a few chunks in flight: memory stays bounded.
    let (tx, rx) = std::sync::mpsc::sync_channel::<WriteBatch>(4);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<(), StoreError> {
            // Without WAL: the memtables are flushed below before the mark is cleared.
            let mut no_wal = WriteOptions::default();
            no_wal.disable_wal(true);
            for batch in rx {
                db.write_opt(batch, &no_wal)?;
            }
            Ok(())
        });
        let mut batch = WriteBatch::default();
        let read = snapshot_file::read_records(path, |k, v| {
            st.state.load_kv(k, v)?;
            batch.put_cf(data, k, v);
            if batch.size_in_bytes() >= CHUNK_BYTES {
                tx.send(std::mem::take(&mut batch))
                    .map_err(|_| StoreError::Writer("stopped"))?;
            }
            Ok(())
        });
        let sent = read.and_then(|_| tx.send(batch).map_err(|_| StoreError::Writer("stopped")));
        drop(tx);
        let written = writer.join().map_err(|_| StoreError::Writer("panicked"))?;
        sent.and(written)
    })?;
    db.flush_cf(data)?;
    let mut batch = WriteBatch::default();
    sm_meta_batch(db, &mut batch, &st);
    batch.delete_cf(cf(db, CF_SM_META), K_INSTALLING);
    db.write_opt(batch, &sync_opts())?;
    Ok(st)
}

fn snapshot_io_err(meta: Option<&SnapshotMeta>, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_snapshot(
        meta.map(|m| m.signature()),
        &std::io::Error::other(e.to_string()),
    )
    .into()
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

    async fn blocking<T: Send + 'static>(
        &self,
        meta: Option<&SnapshotMeta>,
        f: impl FnOnce(&DB) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| snapshot_io_err(meta, e))?
            .map_err(|e| snapshot_io_err(meta, e))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (dir, seq) = (self.snap_dir.clone(), self.snapshot_seq);
        let started = std::time::Instant::now();
        let (meta, path) = self
            .blocking(None, move |db| {
                let (meta, path) = build_snapshot_file(db, &dir, seq)?;
                let mut batch = WriteBatch::default();
                snapshot_record_batch(db, &mut batch, &meta, &file_name(&path));
                db.write_opt(batch, &sync_opts())?;
                remove_stale_snapshot_files(&dir, Some(&file_name(&path)), false);
                Ok((meta, path))
            })
            .await?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            ms = started.elapsed().as_millis() as u64,
            "snapshot built"
        );
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| snapshot_io_err(Some(&meta), e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(f),
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
                    EntryPayload::Normal(req) => st.state.apply(&req, &mut touched),
                    EntryPayload::Membership(m) => {
                        st.last_membership = StoredMembership::new(Some(e.log_id), m);
                        CommandResponse::Done
                    }
                };
                out.push(resp);
            }
            touched.sort_unstable();
            touched.dedup();
            let data = cf(&self.db, CF_SM_DATA);
            for k in &touched {
                match st.state.value_bytes(k) {
                    Some(v) => batch.put_cf(data, k.bytes(), v),
                    None => batch.delete_cf(data, k.bytes()),
                }
            }
            sm_meta_batch(&self.db, &mut batch, &st);
        }
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        StateMachineStore {
            db: self.db.clone(),
            state: self.state.clone(),
            snapshot_seq: self.snapshot_seq,
            snap_dir: self.snap_dir.clone(),
            receiving: self.receiving.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        self.snapshot_seq += 1;
        let path = self
            .snap_dir
            .join(format!("recv-{}.part", self.snapshot_seq));
        let f = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        *self.receiving.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let io = |e: std::io::Error| {
            StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e))
        };
        let path = self.snap_dir.join(snapshot_file_name(&meta.snapshot_id));
        let received = self
            .receiving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // Is the handle the file we received into? (It is over the network;
        // a local caller may hand over any file.)
        let same_file = |part: &PathBuf| {
            use std::os::unix::fs::MetadataExt;
            let a = std::fs::metadata(part).ok()?;
            Some((a.dev(), a.ino()))
        };
        let handle_id = {
            use std::os::unix::fs::MetadataExt;
            snapshot.metadata().await.ok().map(|m| (m.dev(), m.ino()))
        };
        let received = match received {
            Some(p) if handle_id.is_some() && same_file(&p) == handle_id => Some(p),
            Some(p) => {
                let _ = std::fs::remove_file(p);
                None
            }
            None => None,
        };
        match received {
            Some(part) => {
                snapshot.sync_all().await.map_err(io)?;
                drop(snapshot);
                tokio::fs::rename(&part, &path).await.map_err(io)?;
            }
            None => {
                // Not received over the network (a local handle): copy it.
                // (It may be this store's own current file: copy, then rename.)
                snapshot
                    .seek(std::io::SeekFrom::Start(0))
                    .await
                    .map_err(io)?;
                let tmp = path.with_extension("copy.tmp");
                let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
                tokio::io::copy(&mut snapshot, &mut out).await.map_err(io)?;
                out.sync_all().await.map_err(io)?;
                tokio::fs::rename(&tmp, &path).await.map_err(io)?;
            }
        }
        let (m, p) = (meta.clone(), path.clone());
        let new_state = self
            .blocking(Some(meta), move |db| install_snapshot_file(db, &m, &p))
            .await?;
        remove_stale_snapshot_files(&self.snap_dir, Some(&file_name(&path)), false);
        *self.write_state() = new_state;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            ms = started.elapsed().as_millis() as u64,
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some((meta, file)) =
            current_snapshot_record(&self.db).map_err(|e| snapshot_io_err(None, e))?
        else {
            return Ok(None);
        };
        let f = tokio::fs::File::open(self.snap_dir.join(&file))
            .await
            .map_err(|e| snapshot_io_err(Some(&meta), e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(f),
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
                supported: FORMAT_VERSION,
                ..
            }) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a format-99 store"),
        }
    }
}
