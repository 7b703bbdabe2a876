//! Typed errors below the API: what went wrong reading or writing the
//! store, a stored record or a snapshot file. openraft sees them as
//! `StorageError`s (`store.rs`); the API never sees them.

use std::io;

/// A failure of the state machine's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("decoding {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    /// A stored key/value pair that does not load (open, snapshot install).
    #[error("key {key:?}: {reason}")]
    BadRecord { key: String, reason: String },
    #[error(transparent)]
    SnapshotFile(#[from] SnapshotFileError),
    #[error("a snapshot install was interrupted but no snapshot is recorded")]
    InstallWithoutSnapshot,
    #[error("the snapshot writer thread {0}")]
    Writer(&'static str),
}

impl StoreError {
    /// A stored record at `key` that does not load, and why.
    pub fn bad_record(key: &[u8], reason: impl std::fmt::Display) -> Self {
        StoreError::BadRecord {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Decodes a stored protobuf value.
pub fn decode<M: prost::Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|source| StoreError::Decode { what, source })
}

/// A damaged or unreadable snapshot file (each kind of damage its own
/// variant; the message names the file).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a Guardian snapshot file")]
    NotASnapshot { path: String },
    #[error("snapshot file {path}: record {record} claims {klen} + {vlen} bytes, {left} left before the trailer")]
    RecordTooLong {
        path: String,
        record: u64,
        klen: u32,
        vlen: u32,
        left: u64,
    },
    #[error("snapshot file {path}: trailer says {said} records, read {read}")]
    CountMismatch { path: String, said: u64, read: u64 },
    #[error("snapshot file {path}: checksum mismatch")]
    Checksum { path: String },
    #[error("snapshot file {path}: bytes after the trailer")]
    TrailingBytes { path: String },
}
