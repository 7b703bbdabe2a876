//! [`KafkaAdmin`]: admin operations over a cluster, each sent where Kafka
//! wants it. CreateTopics and DeleteTopics go through any broker (KRaft
//! forwards them to the controller); DescribeLogDirs goes to the named
//! broker (others simply omit its replicas). Connections are kept per broker
//! address and re-made after an I/O error; broker addresses come from a
//! Metadata cache refreshed when a broker is unknown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;

use crate::conn::Connection;
use crate::error::KafkaError;
use crate::metadata::ClusterMetadata;

const CREATE_TOPICS: (i16, i16) = (2, 7);
const DELETE_TOPICS: (i16, i16) = (1, 5);
const DESCRIBE_LOG_DIRS: (i16, i16) = (1, 4);

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

/// Admin operations on one Kafka cluster.
pub struct KafkaAdmin {
    bootstrap: Vec<String>,
    deadline: Duration,
    conns: Mutex<HashMap<String, Arc<Mutex<Connection>>>>,
    brokers: Mutex<HashMap<i32, String>>,
}

impl KafkaAdmin {
    /// A client for the cluster reachable at `bootstrap` (`host:port` each);
    /// every call is bounded by `deadline`.
    pub fn new(bootstrap: &[String], deadline: Duration) -> Self {
        Self {
            bootstrap: bootstrap.to_vec(),
            deadline,
            conns: Mutex::new(HashMap::new()),
            brokers: Mutex::new(HashMap::new()),
        }
    }

    async fn conn(&self, addr: &str) -> Result<Arc<Mutex<Connection>>, KafkaError> {
        if let Some(c) = self.conns.lock().await.get(addr) {
            return Ok(c.clone());
        }
        let c = Arc::new(Mutex::new(Connection::connect(addr, self.deadline).await?));
        self.conns.lock().await.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Runs `f` on a connection to `addr`; a connection that failed is
    /// dropped so the next call reconnects.
    async fn on<T>(
        &self,
        addr: &str,
        f: impl AsyncFnOnce(&mut Connection) -> Result<T, KafkaError>,
    ) -> Result<T, KafkaError> {
        let c = self.conn(addr).await?;
        let mut g = c.lock().await;
        let r = f(&mut g).await;
        if matches!(
            r,
            Err(KafkaError::Io { .. } | KafkaError::Timeout { .. } | KafkaError::Malformed { .. })
        ) {
            self.conns.lock().await.remove(addr);
        }
        r
    }

    /// Runs `f` on the first bootstrap server (or known broker) that answers.
    async fn any<T>(
        &self,
        f: impl AsyncFn(&mut Connection) -> Result<T, KafkaError>,
    ) -> Result<T, KafkaError> {
        let mut addrs = self.bootstrap.clone();
        addrs.extend(self.brokers.lock().await.values().cloned());
        let mut last = None;
        for a in addrs {
            match self.on(&a, async |c| f(c).await).await {
                Ok(v) => return Ok(v),
                Err(
                    e @ (KafkaError::Connect { .. }
                    | KafkaError::Io { .. }
                    | KafkaError::Timeout { .. }),
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::Connect {
            addr: "(no bootstrap servers)".into(),
            source: std::io::Error::other("no address to try"),
        }))
    }

    /// The cluster's metadata (every topic), refreshing the broker cache.
    pub async fn metadata(&self) -> Result<ClusterMetadata, KafkaError> {
        let m = self.any(async |c| c.metadata(None).await).await?;
        *self.brokers.lock().await = m
            .brokers
            .iter()
            .map(|b| (b.id, format!("{}:{}", b.host, b.port)))
            .collect();
        Ok(m)
    }

    async fn broker_addr(&self, id: i32) -> Result<String, KafkaError> {
        if let Some(a) = self.brokers.lock().await.get(&id) {
            return Ok(a.clone());
        }
        self.metadata().await?;
        self.brokers
            .lock()
            .await
            .get(&id)
            .cloned()
            .ok_or(KafkaError::UnknownBroker { id })
    }

    /// Creates topics; one result per topic, in order (a refused topic
    /// does not stop the others).
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<Vec<(String, Result<(), KafkaError>)>, KafkaError> {
        let timeout_ms = self.deadline.as_millis().min(i32::MAX as u128) as i32;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(topics.iter().map(creatable).collect());
        let r: CreateTopicsResponse = self
            .any(async |c| {
                let v = c.version(ApiKey::CreateTopics, CREATE_TOPICS)?;
                c.send(ApiKey::CreateTopics, v, &req).await
            })
            .await?;
        Ok(r.topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let res = KafkaError::check_msg(
                    "CreateTopics",
                    format!("topic {name:?}"),
                    t.error_code,
                    t.error_message.as_ref().map(|m| m.to_string()),
                );
                (name, res)
            })
            .collect())
    }

    /// Deletes topics by name; one result per topic.
    pub async fn delete_topics(
        &self,
        names: &[&str],
    ) -> Result<Vec<(String, Result<(), KafkaError>)>, KafkaError> {
        let timeout_ms = self.deadline.as_millis().min(i32::MAX as u128) as i32;
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        let r: DeleteTopicsResponse = self
            .any(async |c| {
                let v = c.version(ApiKey::DeleteTopics, DELETE_TOPICS)?;
                c.send(ApiKey::DeleteTopics, v, &req).await
            })
            .await?;
        Ok(r.responses
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                let res = KafkaError::check_msg(
                    "DeleteTopics",
                    format!("topic {name:?}"),
                    t.error_code,
                    t.error_message.as_ref().map(|m| m.to_string()),
                );
                (name, res)
            })
            .collect())
    }

    /// Every log dir of broker `broker` with the replicas it holds, asked
    /// of that broker itself.
    pub async fn describe_log_dirs(&self, broker: i32) -> Result<Vec<LogDirInfo>, KafkaError> {
        let addr = self.broker_addr(broker).await?;
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let (v, r): (i16, DescribeLogDirsResponse) = self
            .on(&addr, async |c| {
                let v = c.version(ApiKey::DescribeLogDirs, DESCRIBE_LOG_DIRS)?;
                Ok((v, c.send(ApiKey::DescribeLogDirs, v, &req).await?))
            })
            .await?;
        KafkaError::check("DescribeLogDirs", format!("broker {broker}"), r.error_code)?;
        let mut dirs: Vec<LogDirInfo> = r
            .results
            .iter()
            .map(|d| {
                let mut replicas: Vec<ReplicaInfo> = d
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| ReplicaInfo {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            size_bytes: p.partition_size,
                            offset_lag: p.offset_lag,
                            is_future: p.is_future_key,
                        })
                    })
                    .collect();
                replicas.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                LogDirInfo {
                    path: d.log_dir.to_string(),
                    error: KafkaError::check(
                        "DescribeLogDirs",
                        d.log_dir.to_string(),
                        d.error_code,
                    )
                    .err()
                    .map(|e| e.to_string()),
                    total_bytes: (v >= 4 && d.total_bytes >= 0).then_some(d.total_bytes),
                    usable_bytes: (v >= 4 && d.usable_bytes >= 0).then_some(d.usable_bytes),
                    replicas,
                }
            })
            .collect();
        dirs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(dirs)
    }
}

fn topic_name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

fn creatable(t: &NewTopic) -> CreatableTopic {
    let configs = t
        .configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    let base = CreatableTopic::default()
        .with_name(topic_name(&t.name))
        .with_configs(configs);
    if t.assignment.is_empty() {
        base.with_num_partitions(t.partitions)
            .with_replication_factor(t.replication_factor)
    } else {
        base.with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                t.assignment
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(i as i32)
                            .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
    }
}
