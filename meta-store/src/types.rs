//! The openraft type configuration and the application's response type.

use std::fmt;

use guardian_proto::domain::{Broker, Cluster, KafkaUuid, PlacementPolicy, Request, Tenant};
use serde::{Deserialize, Serialize};

/// A controller node's addresses: peers talk Raft on `raft_addr`; clients and
/// redirected writes use `admin_addr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianNode {
    pub raft_addr: String,
    pub admin_addr: String,
}

impl fmt::Display for GuardianNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} admin={}", self.raft_addr, self.admin_addr)
    }
}

/// Controller node ids.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Guardian's Raft types: commands in, [`CommandResponse`] out.
    pub TypeConfig:
        D = Request,
        R = CommandResponse,
        NodeId = NodeId,
        Node = GuardianNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, GuardianNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, GuardianNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, GuardianNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// Why the registry refused a command. Deterministic: every replica refuses
/// the same command for the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("{reason}")]
    FailedPrecondition { reason: String },
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Blank and membership entries, and commands with nothing to return.
    Done,
    Cluster(Cluster),
    Broker(Broker),
    Tenant(Tenant),
    /// A tenant's pool after a change: (cluster, broker id) pairs.
    Pool {
        tenant: String,
        brokers: Vec<(String, i32)>,
    },
    Policy(PlacementPolicy),
    Ids(Vec<KafkaUuid>),
    Rejected(Rejection),
    /// One result per item of a batch, in order.
    Batch(Vec<CommandResponse>),
    /// One outcome per tiered-storage event, in order.
    RemoteLog(Vec<EventOutcome>),
    Discovered(DiscoveryReport),
    /// An execution's header after the change.
    Execution(Box<guardian_proto::execution::Execution>),
    /// A throttle claim after the change (its id assigned).
    Claim(Box<guardian_proto::governance::Claim>),
}

/// What `cluster discover` changed (or would change) in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DiscoveryReport {
    /// One line per change, by broker.
    pub changes: Vec<String>,
    /// Registered brokers Kafka no longer lists (kept).
    pub missing: Vec<i32>,
    /// The cluster's brokers afterwards.
    pub brokers: Vec<Broker>,
}

/// What became of one tiered-storage metadata event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventOutcome {
    Applied,
    /// Not applied: an invalid state transition (Kafka drops these events).
    Dropped(String),
    /// Refused: malformed, fenced, untracked partition, unknown segment.
    Rejected(Rejection),
}
