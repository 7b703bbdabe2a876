//! The Guardian controller: one node of the Raft-replicated control plane,
//! as a library (the `guardian` binary is `cli/`). Layers, each a folder:
//!
//! - [`raft`]: the [`raft::Controller`] handle (proposes commands, serves
//!   linearizable or stale reads, changes membership), leader-side group
//!   commit, coalesced read barriers, and the peer transport (client and
//!   the `RaftPeer` service on the raft port).
//! - [`api`]: the client-facing gRPC services on the admin port, one module
//!   per area (membership and status, registry, load, remote log) with the
//!   role each RPC needs in one table; handlers stay thin.
//! - [`leader`]: the supervisor that starts the leader-only tasks (the
//!   collector) when this node gains leadership and stops them when it
//!   loses it.
//! - [`executor`]: plans carried out on Kafka as durable procedures (live
//!   model, proposals, the throttle ledger, one step at a time, journal
//!   before action); its loop is leader-only, under the supervisor.
//! - [`consumers`]: consumer scheduling on the leader — the plan loop over
//!   worker pools and bindings, the workers' heartbeats and leases, the
//!   commit-before-release handoff.
//! - [`load`]: the load windows and the queries over them (pure).
//! - [`node`]: start/stop a node — RocksDB store, openraft, both ports, the
//!   supervisor — and [`tasks`], which counts every task a node starts so
//!   none outlives it.
//! - [`config`], [`error`] (API errors: the one mapping from openraft and
//!   to `tonic::Status`), [`client`] (the leader-following Rust client used
//!   by the CLI and tests), [`time`].
//!
//! Layering: `api` and `leader` call into `raft`; `raft` knows neither;
//! `load` knows only the domain and protobuf types.

/// A hash of the sources this build was made from (`build.rs`); `guardian
/// --version` prints it, and the test harness refuses a `guardian` binary
/// whose stamp differs from the library it was compiled with.
pub const BUILD_STAMP: &str = env!("GUARDIAN_BUILD_STAMP");

pub mod api;
pub mod client;
pub mod config;
pub mod consumers;
pub mod error;
pub mod executor;
pub mod governance;
pub mod leader;
pub mod load;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod tasks;
pub mod time;
