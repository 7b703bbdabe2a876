//! Guardian's replicated state.
//!
//! - [`types`]: the openraft type configuration ([`TypeConfig`]), node
//!   addresses ([`GuardianNode`]) and the apply result ([`CommandResponse`]).
//! - [`registry`]: the federation registry and its deterministic `apply`
//!   (pure; unit-tested without RocksDB).
//! - [`store`]: the RocksDB log store and state machine (column families,
//!   protobuf values, on-disk format version, synced votes and appends,
//!   snapshots, purge); passes openraft's storage suite.
//! - [`codec`]: openraft ⇄ protobuf encoding for disk and wire.
//!
//! Must not depend on tonic server code or planners.

pub mod codec;
pub mod registry;
pub mod store;
pub mod types;

pub use registry::Registry;
pub use store::{open, LogStore, OpenError, SmState, StateMachineStore, StateReader};
pub use types::*;
