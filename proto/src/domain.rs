//! Domain types of the federation registry and the replicated commands.
//!
//! Validation lives here (`validate()`), so the admin API rejects malformed
//! input before proposing it and the state machine re-checks it on apply.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub use crate::remote_log::{
    validate_partitions, RemoteLogEvent, TopicIdPartition, TrackedPartition, MAX_EVENTS_PER_WRITE,
};

/// A field failed validation. `field` is the request field path (`cluster.name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, its field placed under `parent` (`events[3]` +
    /// `add_segment.state`). Validation builds paths this way, on the error
    /// path only, so valid input allocates no field names.
    pub fn under(mut self, parent: &str) -> Self {
        if !parent.is_empty() {
            self.field = if self.field.is_empty() {
                parent.to_string()
            } else {
                format!("{parent}.{}", self.field)
            };
        }
        self
    }
}

pub type Valid = Result<(), InvalidField>;

/// Kafka's legal-name rule (topics, and here clusters and tenants too):
/// 1..=249 characters of `[a-zA-Z0-9._-]`.
pub fn validate_name(field: &str, value: &str) -> Valid {
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if value.len() > 249 {
        return Err(InvalidField::new(field, "longer than 249 characters"));
    }
    if value == "." || value == ".." {
        return Err(InvalidField::new(field, "must not be '.' or '..'"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(InvalidField::new(
            field,
            format!("character {c:?} not allowed (use [a-zA-Z0-9._-])"),
        ));
    }
    Ok(())
}

/// A `host:port` endpoint with a non-empty host and a port in 1..=65535.
pub fn validate_endpoint(field: &str, value: &str) -> Valid {
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(InvalidField::new(
            field,
            format!("{value:?} is not HOST:PORT"),
        ));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(InvalidField::new(
            field,
            format!("{value:?} has no valid host"),
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(InvalidField::new(
            field,
            format!("{value:?} has no valid port (1-65535)"),
        )),
    }
}

fn validate_broker_id(id: i32) -> Valid {
    if id < 0 {
        return Err(InvalidField::new("broker_id", "must be >= 0"));
    }
    Ok(())
}

fn validate_label(field: &str, value: &str) -> Valid {
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    validate_name(field, value)
}

/// One Kafka log directory and its capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDir {
    pub path: String,
    pub capacity_bytes: u64,
}

/// A broker as `cluster discover` read it from Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredBroker {
    pub broker_id: i32,
    pub host: String,
    pub rack: String,
    /// Paths exactly as Kafka reports them; capacity = filesystem total.
    pub log_dirs: Vec<LogDir>,
}

/// A registered Kafka cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Assigned by the controller on apply.
    pub id: u64,
    pub name: String,
    pub bootstrap_servers: Vec<String>,
    pub idc: String,
    pub kafka_cluster_id: Option<String>,
    pub created_at_ms: u64,
}

impl Cluster {
    pub fn validate(&self) -> Valid {
        validate_name("cluster.name", &self.name)?;
        if self.bootstrap_servers.is_empty() {
            return Err(InvalidField::new(
                "cluster.bootstrap_servers",
                "at least one HOST:PORT is required",
            ));
        }
        for s in &self.bootstrap_servers {
            validate_endpoint("cluster.bootstrap_servers", s)?;
        }
        validate_label("cluster.idc", &self.idc)?;
        if let Some(id) = &self.kafka_cluster_id {
            if id.is_empty() || id.len() > 64 {
                return Err(InvalidField::new(
                    "cluster.kafka_cluster_id",
                    "must be 1..=64 characters",
                ));
            }
        }
        Ok(())
    }
}

/// A broker of a registered cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    pub cluster: String,
    pub broker_id: i32,
    pub host: String,
    pub rack: String,
    /// Empty on input means "the cluster's IDC"; filled in on apply.
    pub idc: String,
    pub reporter_endpoint: String,
    pub log_dirs: Vec<LogDir>,
    pub nic_bytes_per_sec: u64,
    pub cpu_cores: u32,
    /// Tenant whose exclusive pool holds the broker; `None` = free pool.
    pub pool: Option<String>,
    pub registered_at_ms: u64,
}

impl Broker {
    pub fn validate(&self) -> Valid {
        validate_name("broker.cluster", &self.cluster)?;
        if self.broker_id < 0 {
            return Err(InvalidField::new("broker.broker_id", "must be >= 0"));
        }
        if self.host.is_empty() || self.host.chars().any(|c| c.is_whitespace() || c == ':') {
            return Err(InvalidField::new(
                "broker.host",
                "must be a host name or IPv4 address",
            ));
        }
        validate_label("broker.rack", &self.rack)?;
        if !self.idc.is_empty() {
            validate_name("broker.idc", &self.idc)?;
        }
        validate_endpoint("broker.reporter_endpoint", &self.reporter_endpoint)?;
        if self.log_dirs.is_empty() {
            return Err(InvalidField::new(
                "broker.log_dirs",
                "at least one log dir is required",
            ));
        }
        let mut seen = BTreeSet::new();
        for d in &self.log_dirs {
            if !d.path.starts_with('/') {
                return Err(InvalidField::new(
                    "broker.log_dirs.path",
                    format!("{:?} is not an absolute path", d.path),
                ));
            }
            if d.capacity_bytes == 0 {
                return Err(InvalidField::new(
                    "broker.log_dirs.capacity_bytes",
                    format!("capacity of {:?} must be > 0", d.path),
                ));
            }
            if !seen.insert(d.path.as_str()) {
                return Err(InvalidField::new(
                    "broker.log_dirs.path",
                    format!("{:?} listed twice", d.path),
                ));
            }
        }
        if let Some(p) = &self.pool {
            validate_name("broker.pool", p)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub description: String,
    pub created_at_ms: u64,
}

impl Tenant {
    pub fn validate(&self) -> Valid {
        validate_name("tenant.name", &self.name)?;
        if self.description.len() > 1024 {
            return Err(InvalidField::new(
                "tenant.description",
                "longer than 1024 bytes",
            ));
        }
        Ok(())
    }
}

/// Replica placement policy for a whole cluster (`topic == None`) or a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementPolicy {
    pub cluster: String,
    pub topic: Option<String>,
    pub allowed_idcs: Vec<String>,
    pub allowed_racks: Vec<String>,
    pub replicas_per_idc: BTreeMap<String, u32>,
}

impl PlacementPolicy {
    pub fn validate(&self) -> Valid {
        validate_name("policy.cluster", &self.cluster)?;
        if let Some(t) = &self.topic {
            validate_name("policy.topic", t)?;
        }
        for i in &self.allowed_idcs {
            validate_name("policy.allowed_idcs", i)?;
        }
        for r in &self.allowed_racks {
            validate_name("policy.allowed_racks", r)?;
        }
        for (idc, n) in &self.replicas_per_idc {
            validate_name("policy.replicas_per_idc", idc)?;
            if *n == 0 {
                return Err(InvalidField::new(
                    "policy.replicas_per_idc",
                    format!("count for {idc:?} must be >= 1"),
                ));
            }
            if !self.allowed_idcs.is_empty() && !self.allowed_idcs.contains(idc) {
                return Err(InvalidField::new(
                    "policy.replicas_per_idc",
                    format!("IDC {idc:?} is not in allowed_idcs"),
                ));
            }
        }
        if self.allowed_idcs.is_empty()
            && self.allowed_racks.is_empty()
            && self.replicas_per_idc.is_empty()
        {
            return Err(InvalidField::new(
                "policy",
                "a policy must constrain something",
            ));
        }
        Ok(())
    }
}

/// What an allocated id is for. Ids of different kinds never collide either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    Topic,
    Segment,
}

impl IdKind {
    pub const ALL: [IdKind; 2] = [IdKind::Topic, IdKind::Segment];

    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Topic => "topic",
            IdKind::Segment => "segment",
        }
    }
}

impl FromStr for IdKind {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "topic" => Ok(IdKind::Topic),
            "segment" => Ok(IdKind::Segment),
            other => Err(InvalidField::new(
                "kind",
                format!("{other:?} is not one of topic, segment"),
            )),
        }
    }
}

/// A Kafka `Uuid`: 16 bytes (most significant long first), shown as URL-safe
/// base64 without padding — the format of topic ids and remote segment ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct KafkaUuid(pub [u8; 16]);

impl KafkaUuid {
    /// `Uuid.ZERO_UUID` and `Uuid.ONE_UUID` (= `METADATA_TOPIC_ID`).
    pub const ZERO: KafkaUuid = KafkaUuid([0; 16]);
    pub const ONE: KafkaUuid = KafkaUuid([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

    /// Kafka never hands out the reserved ids, nor ids whose text starts with
    /// `-` (they would parse as command-line flags), see `Uuid.randomUuid()`.
    pub fn is_allocatable(&self) -> bool {
        *self != Self::ZERO && *self != Self::ONE && !self.to_string().starts_with('-')
    }

    /// Builds a version-4 UUID from 16 random bytes, as `java.util.UUID.randomUUID()`.
    pub fn from_random_bytes(mut b: [u8; 16]) -> Self {
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        KafkaUuid(b)
    }
}

impl fmt::Display for KafkaUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for KafkaUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaUuid({self})")
    }
}

impl FromStr for KafkaUuid {
    type Err = InvalidField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| InvalidField::new("id", format!("{s:?} is not URL-safe base64: {e}")))?;
        let arr: [u8; 16] = bytes
            .try_into()
            .map_err(|_| InvalidField::new("id", format!("{s:?} does not decode to 16 bytes")))?;
        Ok(KafkaUuid(arr))
    }
}

impl From<KafkaUuid> for String {
    fn from(u: KafkaUuid) -> String {
        u.to_string()
    }
}

impl TryFrom<String> for KafkaUuid {
    type Error = InvalidField;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The most ids one `AllocateIds` call may ask for.
pub const MAX_IDS_PER_CALL: u32 = 10_000;

/// A replicated command. Carried in a Raft log entry inside a [`Request`].
/// (serde only to satisfy openraft's bounds; the log stores protobuf.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    AddCluster(Cluster),
    RemoveCluster {
        name: String,
    },
    AddBroker(Broker),
    /// Records what Kafka reported of a registered cluster: its cluster id
    /// and every broker (registered or updated; none removed).
    DiscoverCluster {
        cluster: String,
        kafka_cluster_id: String,
        brokers: Vec<DiscoveredBroker>,
    },
    RemoveBroker {
        cluster: String,
        broker_id: i32,
    },
    CreateTenant(Tenant),
    DeleteTenant {
        name: String,
    },
    AssignPool {
        tenant: String,
        cluster: String,
        broker_ids: Vec<i32>,
    },
    ReleasePool {
        tenant: String,
        cluster: String,
        broker_ids: Vec<i32>,
    },
    SetPolicy(PlacementPolicy),
    RemovePolicy {
        cluster: String,
        topic: Option<String>,
    },
    AllocateIds {
        kind: IdKind,
        ids: Vec<KafkaUuid>,
    },
    /// Several requests in one log entry, applied in order (never nested).
    Batch(Vec<Request>),
    /// Tiered-storage metadata events, applied in order, one result each.
    /// Shared: a log entry is cloned on its way to the log cache, the
    /// replication stream and the state machine; the events are not.
    RemoteLog(std::sync::Arc<Vec<RemoteLogEvent>>),
    /// A broker declares it hosts these partitions (leader or follower).
    TrackPartitions {
        broker_id: i32,
        partitions: Vec<TrackedPartition>,
    },
    /// A broker stops hosting these partitions.
    UntrackPartitions {
        broker_id: i32,
        partitions: Vec<TopicIdPartition>,
    },
    /// One completed load bucket of every collected broker (leader → all).
    RecordLoad {
        bucket: u64,
        brokers: Vec<BrokerLoadSample>,
    },
    /// One completed slot of per-partition bytes-in means (leader → all).
    RecordPartitionLoad {
        slot: u64,
        brokers: Vec<PartitionLoadSample>,
    },
    /// The executor's procedures (`crate::execution`).
    Execution(Box<crate::execution::ExecutionCmd>),
    /// Live governance: events and throttle claims.
    Governance(Box<crate::governance::GovernanceCmd>),
    /// Consumer scheduling: worker pools, workers, bindings, plans.
    Consumers(Box<crate::consumers::ConsumersCmd>),
}

/// `bytes_in` of a partition without a sample in the slot.
pub const NO_SAMPLE: u32 = u32::MAX;

/// A broker's partitions as its reporter lists them: parallel arrays, topic
/// names interned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionList {
    pub topics: Vec<String>,
    pub topic_index: Vec<u32>,
    pub partition: Vec<i32>,
    pub future: Vec<bool>,
}

impl PartitionList {
    pub fn len(&self) -> usize {
        self.partition.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partition.is_empty()
    }

    /// (topic, partition, future) of entry `i` (a checked list).
    pub fn key(&self, i: usize) -> (&str, i32, bool) {
        (
            self.topics[self.topic_index[i] as usize].as_str(),
            self.partition[i],
            self.future[i],
        )
    }

    /// A stable 64-bit fingerprint of the partitions in order (FNV-1a; the
    /// same on every node and release), to tell whether a list changed
    /// without holding both lists.
    pub fn fingerprint(&self) -> u64 {
        fingerprint((0..self.len()).map(|i| self.key(i)))
    }

    /// Checks the arrays' lengths and topic indexes; errors name `field`.
    pub fn validate(&self, field: &str) -> Valid {
        let n = self.partition.len();
        if self.topic_index.len() != n || self.future.len() != n {
            return Err(InvalidField::new(
                format!("{field}.topic_index"),
                "topic_index, partition and future must have the same length",
            ));
        }
        if let Some(i) = self
            .topic_index
            .iter()
            .position(|&t| t as usize >= self.topics.len())
        {
            return Err(InvalidField::new(
                format!("{field}.topic_index[{i}]"),
                "no such topic in the list",
            ));
        }
        Ok(())
    }
}

/// [`PartitionList::fingerprint`] of (topic, partition, future) keys.
pub fn fingerprint<'a>(keys: impl Iterator<Item = (&'a str, i32, bool)>) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    };
    for (topic, partition, future) in keys {
        eat(topic.as_bytes());
        eat(&[0xff]);
        eat(&partition.to_be_bytes());
        eat(&[u8::from(future)]);
    }
    h
}

/// One broker's per-partition bytes-in means over a history slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLoadSample {
    pub cluster: String,
    pub broker_id: i32,
    /// The broker's partitions, when they differ from the recorded list.
    pub partitions: Option<PartitionList>,
    /// Mean bytes in per second of each partition, in list order;
    /// [`NO_SAMPLE`] where the slot has none.
    pub bytes_in: Vec<u32>,
}

/// One disk's means over a load bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLoadSample {
    pub path: String,
    pub write: u64,
    pub read: u64,
    /// Utilisation in parts per million.
    pub util_ppm: u64,
}

/// One broker's means over a load bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerLoadSample {
    pub cluster: String,
    pub broker_id: i32,
    pub bytes_in: u64,
    pub cpu_ppm: u64,
    pub disks: Vec<DiskLoadSample>,
}

impl Command {
    /// Checks the command's own fields (not the registry's state).
    pub fn validate(&self) -> Valid {
        match self {
            Command::AddCluster(c) => c.validate(),
            Command::RemoveCluster { name } => validate_name("name", name),
            Command::Execution(c) => c.validate(),
            Command::Governance(c) => c.validate(),
            Command::Consumers(c) => c.validate(),
            Command::AddBroker(b) => b.validate(),
            Command::DiscoverCluster {
                cluster,
                kafka_cluster_id,
                brokers,
            } => {
                validate_name("cluster", cluster)?;
                if kafka_cluster_id.is_empty() {
                    return Err(InvalidField::new("kafka_cluster_id", "must not be empty"));
                }
                for b in brokers {
                    if b.broker_id < 0 {
                        return Err(InvalidField::new("brokers.broker_id", "must be >= 0"));
                    }
                    if b.host.is_empty() {
                        return Err(InvalidField::new("brokers.host", "must not be empty"));
                    }
                }
                Ok(())
            }
            Command::RemoveBroker { cluster, broker_id } => {
                validate_name("cluster", cluster)?;
                if *broker_id < 0 {
                    return Err(InvalidField::new("broker_id", "must be >= 0"));
                }
                Ok(())
            }
            Command::CreateTenant(t) => t.validate(),
            Command::DeleteTenant { name } => validate_name("name", name),
            Command::AssignPool {
                tenant,
                cluster,
                broker_ids,
            }
            | Command::ReleasePool {
                tenant,
                cluster,
                broker_ids,
            } => {
                validate_name("tenant", tenant)?;
                validate_name("cluster", cluster)?;
                if broker_ids.is_empty() {
                    return Err(InvalidField::new(
                        "broker_ids",
                        "at least one broker id is required",
                    ));
                }
                if let Some(b) = broker_ids.iter().find(|b| **b < 0) {
                    return Err(InvalidField::new("broker_ids", format!("{b} is negative")));
                }
                Ok(())
            }
            Command::SetPolicy(p) => p.validate(),
            Command::RemovePolicy { cluster, topic } => {
                validate_name("cluster", cluster)?;
                if let Some(t) = topic {
                    validate_name("topic", t)?;
                }
                Ok(())
            }
            Command::Batch(items) => {
                if items.is_empty() {
                    return Err(InvalidField::new("batch", "must not be empty"));
                }
                if items.iter().any(|i| matches!(i.command, Command::Batch(_))) {
                    return Err(InvalidField::new("batch", "batches do not nest"));
                }
                // Each item is validated when it is applied, on its own.
                Ok(())
            }
            Command::RemoteLog(events) => {
                if events.is_empty() || events.len() > MAX_EVENTS_PER_WRITE {
                    return Err(InvalidField::new(
                        "events",
                        format!("must hold 1..={MAX_EVENTS_PER_WRITE} events"),
                    ));
                }
                // Each event is validated on its own when applied.
                Ok(())
            }
            Command::TrackPartitions {
                broker_id,
                partitions,
            } => {
                validate_broker_id(*broker_id)?;
                validate_partitions("partitions", partitions.iter().map(|p| &p.partition))?;
                match partitions
                    .iter()
                    .position(|p| p.leader_epoch.is_some_and(|e| e < 0))
                {
                    Some(i) => Err(InvalidField::new(
                        format!("partitions[{i}].leader_epoch"),
                        "must be >= 0",
                    )),
                    None => Ok(()),
                }
            }
            Command::UntrackPartitions {
                broker_id,
                partitions,
            } => {
                validate_broker_id(*broker_id)?;
                validate_partitions("partitions", partitions.iter())
            }
            Command::RecordLoad { brokers, .. } => {
                if brokers.is_empty() {
                    return Err(InvalidField::new("brokers", "must not be empty"));
                }
                Ok(())
            }
            Command::RecordPartitionLoad { brokers, .. } => {
                if brokers.is_empty() {
                    return Err(InvalidField::new("brokers", "must not be empty"));
                }
                for (i, b) in brokers.iter().enumerate() {
                    if let Some(l) = &b.partitions {
                        l.validate(&format!("brokers[{i}].partitions"))?;
                        if l.len() != b.bytes_in.len() {
                            return Err(InvalidField::new(
                                format!("brokers[{i}].bytes_in"),
                                format!("{} values for {} partitions", b.bytes_in.len(), l.len()),
                            ));
                        }
                    }
                }
                Ok(())
            }
            Command::AllocateIds { ids, .. } => {
                if ids.is_empty() || ids.len() > MAX_IDS_PER_CALL as usize {
                    return Err(InvalidField::new(
                        "count",
                        format!("must be 1..={MAX_IDS_PER_CALL}"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// A short static name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::AddCluster(_) => "add_cluster",
            Command::RemoveCluster { .. } => "remove_cluster",
            Command::AddBroker(_) => "add_broker",
            Command::DiscoverCluster { .. } => "discover_cluster",
            Command::RemoveBroker { .. } => "remove_broker",
            Command::CreateTenant(_) => "create_tenant",
            Command::DeleteTenant { .. } => "delete_tenant",
            Command::AssignPool { .. } => "assign_pool",
            Command::ReleasePool { .. } => "release_pool",
            Command::SetPolicy(_) => "set_policy",
            Command::RemovePolicy { .. } => "remove_policy",
            Command::AllocateIds { .. } => "allocate_ids",
            Command::Batch(_) => "batch",
            Command::RemoteLog(_) => "remote_log",
            Command::TrackPartitions { .. } => "track_partitions",
            Command::UntrackPartitions { .. } => "untrack_partitions",
            Command::RecordLoad { .. } => "record_load",
            Command::RecordPartitionLoad { .. } => "record_partition_load",
            Command::Execution(_) => "execution",
            Command::Governance(_) => "governance",
            Command::Consumers(_) => "consumers",
        }
    }

    /// Rough encoded size in bytes, to keep batched log entries bounded.
    pub fn approx_size(&self) -> usize {
        match self {
            Command::AllocateIds { ids, .. } => 32 + 18 * ids.len(),
            Command::AddBroker(b) => 256 + 64 * b.log_dirs.len(),
            Command::DiscoverCluster { brokers, .. } => brokers
                .iter()
                .map(|b| {
                    64 + b.host.len() + b.log_dirs.iter().map(|d| 16 + d.path.len()).sum::<usize>()
                })
                .sum(),
            Command::Batch(items) => items.iter().map(|i| i.command.approx_size()).sum(),
            Command::RemoteLog(events) => events.iter().map(RemoteLogEvent::approx_size).sum(),
            Command::TrackPartitions { partitions, .. } => 64 * partitions.len(),
            Command::UntrackPartitions { partitions, .. } => 64 * partitions.len(),
            Command::RecordLoad { brokers, .. } => brokers
                .iter()
                .map(|b| {
                    48 + b.cluster.len() + b.disks.iter().map(|d| 32 + d.path.len()).sum::<usize>()
                })
                .sum(),
            Command::RecordPartitionLoad { brokers, .. } => brokers
                .iter()
                .map(|b| {
                    let list = b.partitions.as_ref().map_or(0, |l| {
                        8 * l.len() + l.topics.iter().map(|t| t.len() + 2).sum::<usize>()
                    });
                    32 + b.cluster.len() + 5 * b.bytes_in.len() + list
                })
                .sum(),
            Command::Execution(c) => c.approx_size(),
            Command::Governance(c) => c.approx_size(),
            Command::Consumers(c) => c.approx_size(),
            _ => 256,
        }
    }
}

/// A Raft log entry's application payload: a command and the proposing
/// leader's clock. Apply takes time from `now_ms`, never from the local clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub now_ms: u64,
    pub command: Command,
    /// Set by clients that may retry: apply answers a second request with
    /// the same id with the first one's result instead of applying it again.
    pub id: Option<RequestId>,
    /// This request's protobuf encoding, made once and shared by its clones
    /// (the log store, each follower's AppendEntries, a follower's own log).
    #[serde(skip)]
    pub encoded: EncodedCache,
}

impl Request {
    pub fn new(now_ms: u64, command: Command) -> Self {
        Self {
            now_ms,
            command,
            id: None,
            encoded: EncodedCache::default(),
        }
    }

    /// The same request carrying a client request id.
    pub fn with_id(mut self, id: Option<RequestId>) -> Self {
        self.id = id;
        self
    }
}

/// A client's request id: the client (random, chosen once per client) and
/// its own sequence number. A retry carries the id of its first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub client: KafkaUuid,
    pub seq: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.client, self.seq)
    }
}

impl std::str::FromStr for RequestId {
    type Err = InvalidField;
    /// `<client uuid>:<seq>`, as the `x-guardian-request-id` header carries it.
    fn from_str(s: &str) -> Result<Self, InvalidField> {
        let bad = || InvalidField::new("request id", "must be <client uuid>:<seq>");
        let (c, n) = s.rsplit_once(':').ok_or_else(bad)?;
        let client: KafkaUuid = c.parse().map_err(|_| bad())?;
        let seq = n.parse().map_err(|_| bad())?;
        Ok(RequestId { client, seq })
    }
}

/// A lazily filled, shared slot for an encoding. Never part of equality.
#[derive(Clone, Default)]
pub struct EncodedCache(pub std::sync::Arc<std::sync::OnceLock<bytes::Bytes>>);

impl PartialEq for EncodedCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EncodedCache {}

impl fmt::Debug for EncodedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get() {
            Some(b) => write!(f, "EncodedCache({} bytes)", b.len()),
            None => f.write_str("EncodedCache(empty)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_uuid_text_form() {
        let u = KafkaUuid::from_random_bytes([0x5a; 16]);
        let s = u.to_string();
        assert_eq!(s.len(), 22);
        assert!(!s.contains('='));
        assert_eq!(s.parse::<KafkaUuid>().unwrap(), u);
        // Kafka's reserved ids and their text forms.
        assert_eq!(KafkaUuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(KafkaUuid::ONE.to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert!(!KafkaUuid::ZERO.is_allocatable());
        assert!(!KafkaUuid::ONE.is_allocatable());
        assert!(u.is_allocatable());
    }

    #[test]
    fn ids_starting_with_dash_are_not_allocatable() {
        // First 6 bits = 62 encode as '-' in URL-safe base64.
        let u = KafkaUuid::from_random_bytes([0xf8; 16]);
        assert!(u.to_string().starts_with('-'));
        assert!(!u.is_allocatable());
    }

    #[test]
    fn bad_text_ids_are_rejected() {
        assert!("not base64!".parse::<KafkaUuid>().is_err());
        assert!("AAAA".parse::<KafkaUuid>().is_err());
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_name("f", "orders.v2_x-1").is_ok());
        assert_eq!(validate_name("f", "").unwrap_err().field, "f");
        assert!(validate_name("f", "a/b").is_err());
        assert!(validate_name("f", "..").is_err());
        assert!(validate_name("f", &"x".repeat(250)).is_err());
        assert!(validate_endpoint("e", "host:9092").is_ok());
        assert!(validate_endpoint("e", "[::1]:9092").is_ok());
        assert!(validate_endpoint("e", "host").is_err());
        assert!(validate_endpoint("e", "host:0").is_err());
    }
}
