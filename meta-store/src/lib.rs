//! Guardian's replicated state.
//!
//! - [`types`]: the openraft type configuration ([`TypeConfig`]), node
//!   addresses ([`GuardianNode`]) and the apply result ([`CommandResponse`]).
//! - [`registry`]: the federation registry and its deterministic `apply`
//!   (pure; unit-tested without RocksDB).
//! - [`remote_log`]: tiered-storage metadata (KIP-405 segment lifecycle,
//!   per-epoch lookup state, partition tracking and fencing), part of the
//!   registry's apply.
//! - [`store`]: the RocksDB log store and state machine (column families,
//!   protobuf values, on-disk format version, synced votes and appends,
//!   snapshots, purge); passes openraft's storage suite.
//! - [`state_keys`]: the RocksDB key layout of the state and how it loads.
//! - [`snapshot_file`]: the streamed snapshot file format.
//! - [`codec`]: openraft ⇄ protobuf encoding for disk and wire.
//!
//! Must not depend on tonic server code or planners.

pub mod codec;
pub mod registry;
pub mod remote_log;
pub mod snapshot_file;
pub mod state_keys;
pub mod store;
pub mod types;

pub use registry::Registry;
pub use store::{open, LogStore, OpenError, SmState, StateMachineStore, StateReader};
pub use types::*;
