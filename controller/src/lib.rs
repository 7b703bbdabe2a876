//! The Guardian controller: one node of the Raft-replicated control plane.
//!
//! - [`config`]: the validated node configuration (`deploy/guardian.example.toml`).
//! - [`node`]: start/stop a node — RocksDB store, openraft, the raft port
//!   (peers only) and the admin port (admin API, remote log metadata, health, reflection).
//! - [`raft_net`] / [`raft_service`]: the Raft transport over tonic.
//! - [`handle`]: the [`handle::Controller`] — proposes commands, serves
//!   linearizable or stale reads, changes membership.
//! - [`proposer`]: leader-side group commit (concurrent writes → one batched entry).
//! - [`barrier`]: coalesced read barriers (concurrent linearizable reads →
//!   one quorum round).
//! - [`admin`]: the `GuardianAdmin` gRPC service (thin handlers, token roles).
//! - [`remote_log`]: the `RemoteLogMetadata` gRPC service (KIP-405 tiered
//!   storage metadata: batched events, lookups, listings).
//! - [`collector`]: leader-only pulls of every broker's reporter, load
//!   windows per broker, disk and partition (soft state; their means are
//!   replicated), served by the `Load*` RPCs.
//! - [`error`]: API errors and their one mapping to `tonic::Status`.
//! - [`client`]: the leader-following Rust client used by the CLI and tests.
//!
//! The `guardian` binary (`src/main.rs`, `src/cli/`) adds the CLI and
//! `guardian dev`. Depends on everything; nothing depends on it but `tests/`.

/// A hash of the sources this build was made from (`build.rs`); `guardian
/// --version` prints it, and the test harness refuses a `guardian` binary
/// whose stamp differs from the library it was compiled with.
pub const BUILD_STAMP: &str = env!("GUARDIAN_BUILD_STAMP");

pub mod admin;
pub mod barrier;
pub mod client;
pub mod collector;
pub mod config;
pub mod error;
pub mod handle;
pub mod node;
pub mod proposer;
pub mod raft_net;
pub mod raft_service;
pub mod remote_log;
