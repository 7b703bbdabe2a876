//! Guardian's replicated state.
//!
//! - [`types`]: the openraft type configuration ([`TypeConfig`]), node
//!   addresses ([`GuardianNode`]) and the apply result ([`CommandResponse`]).
//! - [`state`]: the replicated state and its deterministic apply, one
//!   applier per domain — [`state::registry`] (the federation registry),
//!   [`state::remote_log`] (tiered-storage metadata: KIP-405 segment
//!   lifecycle, per-epoch lookup state, tracking and fencing),
//!   [`state::load`] (load history), [`state::requests`] (results kept for
//!   retried client requests) — each owning its commands and its keys
//!   ([`state::keys`]: the key table); pure, unit-tested without RocksDB.
//! - [`store`]: the RocksDB log store and state machine (column families,
//!   protobuf values, on-disk format version, synced votes and appends,
//!   snapshots, purge); passes openraft's storage suite.
//! - [`snapshot_file`]: the streamed snapshot file format.
//! - [`codec`]: openraft ⇄ protobuf encoding for disk and wire.
//! - [`error`]: typed storage errors ([`StoreError`]).
//!
//! Must not depend on tonic server code or planners.

pub mod codec;
pub mod error;
pub mod snapshot_file;
pub mod state;
pub mod store;
pub mod types;

pub use error::StoreError;
pub use state::State;
pub use store::{open, LogStore, OpenError, SmState, StateMachineStore, StateReader, StoreClosed};
pub use types::*;
