//! Guardian's wire and storage schema.
//!
//! - [`pb`]: code generated from `proto/guardian/v1/*.proto` — the admin API
//!   (`admin.proto`), the Raft peer API (`raft.proto`), the replicated commands
//!   and snapshot (`state.proto`) and the shared resources (`types.proto`).
//! - [`domain`]: the plain Rust types the rest of Guardian works with, with
//!   their validation rules. Domain code never sees generated types.
//! - [`execution`]: the executor's durable procedures (plans carried out
//!   on Kafka, their tasks and throttle ledger).
//! - [`governance`]: live governance's event log and throttle claims.
//! - [`remote_log`]: the tiered-storage metadata domain (KIP-405 segments,
//!   states, events).
//! - [`conv`]: the one place where `pb` and `domain` meet (`TryFrom` with a
//!   typed [`conv::ConvError`] naming the missing or malformed field).
//! - [`FILE_DESCRIPTOR_SET`]: for gRPC server reflection.
//!
//! Must not depend on rocksdb or openraft: the openraft ⇄ pb codec lives in
//! `guardian-meta-store`, which owns the Raft type configuration.

pub mod consumers;
pub mod conv;
pub mod domain;
pub mod execution;
pub mod governance;
pub mod remote_log;

/// Generated protobuf and gRPC code for package `guardian.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("guardian.v1");
}

/// Encoded `FileDescriptorSet` of every Guardian proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("guardian_descriptor");
