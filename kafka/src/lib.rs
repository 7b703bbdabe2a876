//! Guardian's Kafka admin client, on the `kafka-protocol` crate; no
//! generated Kafka type leaks out of this crate.
//!
//! Built so far: one connection to one broker ([`Connection`]: framing,
//! correlation ids, a deadline per call), ApiVersions negotiation (the
//! highest version both sides support, request and response header
//! versions per API version), and Metadata ([`Connection::metadata`]:
//! brokers with racks, controller, topics with ids, partitions, replicas,
//! ISR and offline replicas); and [`KafkaAdmin`] over a cluster, routing
//! each call where Kafka wants it: CreateTopics (counts or a manual
//! assignment, with configs) and DeleteTopics through any broker,
//! DescribeLogDirs to the named broker. Supported Kafka: 2.4 and later (ApiVersions
//! v3, Metadata v1–v12); tested against 4.1.2.
//!
//! Must not depend on rocksdb, openraft or the planner (`.ci/deps.sh`).

mod admin;
mod conn;
mod error;
mod metadata;

pub use admin::{KafkaAdmin, LogDirInfo, NewTopic, ReplicaInfo};
pub use conn::Connection;
pub use error::KafkaError;
pub use metadata::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
