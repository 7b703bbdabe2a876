//! Guardian's Kafka admin client, on the `kafka-protocol` crate; no
//! generated Kafka type leaks out of this crate.
//!
//! - [`KafkaAdmin`]: the admin operations Guardian performs, on domain
//!   types ([`types`]): cluster and topics, configs with their sources,
//!   reassignments, log dirs, preferred-leader elections, client quotas,
//!   offsets and consumer groups with their lag.
//! - [`KafkaClient`]: the real client. One [`Connection`] per broker
//!   (framing, correlation ids, ApiVersions negotiation — the highest
//!   version both sides support, header versions per API version — a
//!   deadline per call, TLS and SASL from [`ConnectOptions`]); each call
//!   routed where Kafka wants it (see the table in `client.rs`), retried on
//!   retriable errors within one deadline; [`Features`] detected from the
//!   negotiated versions.
//! - [`KafkaModel`]: an in-memory model of Kafka's admin semantics
//!   (reassignment stages, preferred dirs and `-future` copies, throttles
//!   that slow copies, quota precedence, routing errors). The conformance
//!   suite in `guardian-tests` runs the same assertions on both.
//!
//! Supported Kafka: 2.4 and later (ApiVersions v3; every admin API used
//! exists since 2.4, DescribeCluster since 2.8); tested against 4.1.2.
//!
//! Must not depend on rocksdb, openraft or the planner (`.ci/deps.sh`).

mod api;
mod client;
mod conn;
mod error;
mod metadata;
pub mod model;
mod security;
pub mod types;

pub use api::KafkaAdmin;
pub use client::KafkaClient;
pub use conn::Connection;
pub use error::KafkaError;
pub use metadata::{decode_metadata, BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
pub use model::KafkaModel;
pub use security::{ConnectOptions, Mechanism, Sasl, Tls};
pub use types::*;
