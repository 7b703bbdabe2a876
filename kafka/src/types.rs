//! The domain types of the admin operations: what Guardian asks Kafka and
//! what it hears back, with no generated Kafka type in them.

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A topic to create: either `partitions` × `replication_factor` placed by
/// Kafka, or an explicit replica list per partition (`assignment`).
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Partition i's replicas, preferred leader first. When set,
    /// `partitions` and `replication_factor` are ignored.
    pub assignment: Vec<Vec<i32>>,
    pub configs: Vec<(String, String)>,
}

/// One log dir of a broker, as DescribeLogDirs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirInfo {
    /// The path exactly as the broker has it configured.
    pub path: String,
    /// A Kafka error for the dir (e.g. `KAFKA_STORAGE_ERROR` when offline).
    pub error: Option<String>,
    /// Total and usable bytes of the dir's filesystem (v4+; `None` before).
    pub total_bytes: Option<i64>,
    pub usable_bytes: Option<i64>,
    pub replicas: Vec<ReplicaInfo>,
}

/// A replica in a log dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: i64,
    pub offset_lag: i64,
    /// A `-future` copy (a move between the broker's dirs in progress).
    pub is_future: bool,
}

/// The outcome of moving one replica to a log dir of its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDirMove {
    /// The replica exists: a `-future` copy into the dir has started (or
    /// the replica is already there).
    MoveStarted,
    /// The broker holds no replica of the partition yet: it recorded the
    /// dir (in memory only) and will create the replica there
    /// (`REPLICA_NOT_AVAILABLE`, which Kafka answers on purpose). Not
    /// retried; a broker restart forgets it.
    PreferenceRecorded,
}

/// The result of a preferred-leader election for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    Elected,
    /// The preferred replica already leads (`ELECTION_NOT_NEEDED`).
    NotNeeded,
}

/// A reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica while the move runs: the target and those leaving.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A resource whose configs are described or altered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigResource {
    Topic(String),
    /// One broker's configs: sent to that broker.
    Broker(i32),
    /// The cluster-wide dynamic broker default (`--entity-default`).
    BrokerDefault,
}

impl ConfigResource {
    pub(crate) fn kind(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) | ConfigResource::BrokerDefault => 4,
        }
    }

    pub(crate) fn name(&self) -> String {
        match self {
            ConfigResource::Topic(t) => t.clone(),
            ConfigResource::Broker(b) => b.to_string(),
            ConfigResource::BrokerDefault => String::new(),
        }
    }
}

impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t:?}"),
            ConfigResource::Broker(b) => write!(f, "broker {b}"),
            ConfigResource::BrokerDefault => write!(f, "the broker default"),
        }
    }
}

/// Where a config value comes from, in Kafka's order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic,
    /// Set dynamically on this one broker.
    DynamicBroker,
    /// Set dynamically as the default for every broker.
    DynamicDefaultBroker,
    /// From the broker's `server.properties`.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    DynamicBrokerLogger,
    ClientMetrics,
    Group,
    Unknown,
}

impl ConfigSource {
    /// Kafka's wire code of the source.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::DynamicBrokerLogger => 6,
            ConfigSource::ClientMetrics => 7,
            ConfigSource::Group => 8,
            ConfigSource::Unknown => 0,
        }
    }

    pub(crate) fn from_code(c: i8) -> Self {
        match c {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            _ => ConfigSource::Unknown,
        }
    }
}

/// One config value with its source and the lower layers under it (the
/// synonyms, highest precedence first), so a restore can put back exactly
/// what was there.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for a sensitive value.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    /// Every layer that sets this config, the effective one first.
    pub synonyms: Vec<ConfigSynonym>,
}

/// One layer under a config: the name it has there (a topic's
/// `retention.ms` is the broker's `log.retention.ms`), its value and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One change of an IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    /// Removes the dynamic value, uncovering the layer below.
    Delete(String),
    /// Adds items to a list config (e.g. throttled replicas).
    Append(String, String),
    Subtract(String, String),
}

impl AlterConfigOp {
    pub fn name(&self) -> &str {
        match self {
            AlterConfigOp::Set(n, _)
            | AlterConfigOp::Delete(n)
            | AlterConfigOp::Append(n, _)
            | AlterConfigOp::Subtract(n, _) => n,
        }
    }
}

/// A client-quota entity: `(type, name)` pairs, type one of `user`,
/// `client-id`, `ip`; a `None` name is that type's default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaEntity(pub Vec<(String, Option<String>)>);

impl QuotaEntity {
    pub fn user(name: &str) -> Self {
        QuotaEntity(vec![("user".into(), Some(name.into()))])
    }
    pub fn client(id: &str) -> Self {
        QuotaEntity(vec![("client-id".into(), Some(id.into()))])
    }
    pub fn user_client(user: &str, client: &str) -> Self {
        QuotaEntity(vec![
            ("user".into(), Some(user.into())),
            ("client-id".into(), Some(client.into())),
        ])
    }
    /// Sorted by type, the form Kafka answers in.
    pub(crate) fn normalized(mut self) -> Self {
        self.0.sort();
        self
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// How a DescribeClientQuotas component matches names of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    Exact(String),
    Default,
    Any,
}

/// Quota values to set (`Some`) or remove (`None`) on one entity.
pub type QuotaChange = (QuotaEntity, Vec<(String, Option<f64>)>);

/// A quota entity with its values (`producer_byte_rate`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaEntry {
    pub entity: QuotaEntity,
    pub values: Vec<(String, f64)>,
}

/// Which offset ListOffsets returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
}

impl OffsetSpec {
    pub(crate) fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
        }
    }
}

/// A consumer group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// The broker coordinating it (the one that listed it).
    pub coordinator: i32,
}

/// A consumer group's state and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, … (`Dead` for a group that
    /// does not exist).
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
}

/// A group's committed offset on one partition and how far behind the
/// partition's log end it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub log_end: i64,
    pub lag: i64,
}

/// The cluster as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    /// The active controller (KRaft: a random broker, as Kafka reports).
    pub controller_id: i32,
    /// By id; fenced brokers included, flagged.
    pub brokers: Vec<DescribedBroker>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// What the connected brokers support that changes how Guardian acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// AlterPartitionReassignments v1 (KIP-860, Kafka 3.9+): the broker
    /// refuses a reassignment that changes the replication factor.
    pub reassignment_rf_guard: bool,
    /// DescribeLogDirs v4 (Kafka 3.3+): total and usable bytes per dir.
    pub log_dir_bytes: bool,
    /// DescribeCluster v2 (Kafka 3.9+): fenced brokers listed.
    pub fenced_brokers: bool,
}

/// One result per item of a batch call: a refused item does not stop the
/// others.
pub type PerItem<K, T> = Vec<(K, Result<T, crate::KafkaError>)>;
