//! Metadata: the cluster's brokers (with racks), its controller, and every
//! topic's partitions with their leader, replicas, ISR and offline replicas.

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

use crate::conn::Connection;
use crate::error::KafkaError;

/// The versions of Metadata this client reads: v1 (Kafka 0.10) has racks
/// and the controller; v10+ topic ids; v12 is what Kafka 4.1 serves.
pub(crate) const METADATA: (i16, i16) = (1, 12);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// The topic id (16 bytes; all zero before Metadata v10).
    pub id: [u8; 16],
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    /// -1 when the broker does not know (KRaft brokers report a random
    /// broker, not the KRaft controller).
    pub controller_id: i32,
    /// By id.
    pub brokers: Vec<BrokerInfo>,
    /// By name.
    pub topics: Vec<TopicInfo>,
}

impl Connection {
    /// Metadata of every topic (`topics` = `None`) or of the named ones.
    pub async fn metadata(
        &mut self,
        topics: Option<&[&str]>,
    ) -> Result<ClusterMetadata, KafkaError> {
        let v = self.version(ApiKey::Metadata, METADATA)?;
        let r: MetadataResponse = self.send(ApiKey::Metadata, v, &request(topics)(v)).await?;
        from_response(r)
    }
}

/// A Metadata request of every topic (`None`) or of the named ones, for any
/// version.
pub(crate) fn request(topics: Option<&[&str]>) -> impl Fn(i16) -> MetadataRequest + Sync {
    let names: Option<Vec<String>> = topics.map(|ts| ts.iter().map(|t| t.to_string()).collect());
    move |_| {
        MetadataRequest::default()
            .with_topics(names.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| {
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(kafka_protocol::messages::TopicName(
                                kafka_protocol::protocol::StrBytes::from_string(t.clone()),
                            )))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false)
    }
}

/// Decodes a Metadata response body (no frame, no header) of `version`
/// into the domain view: the part of a Metadata call that grows with the
/// cluster (`kafka-decode-bench` measures it).
pub fn decode_metadata(
    mut body: bytes::Bytes,
    version: i16,
) -> Result<ClusterMetadata, KafkaError> {
    use kafka_protocol::protocol::Decodable;
    let r = MetadataResponse::decode(&mut body, version).map_err(|e| KafkaError::Malformed {
        addr: String::new(),
        api: "Metadata",
        reason: e.to_string(),
    })?;
    from_response(r)
}

/// The domain view of a Metadata response.
pub(crate) fn from_response(r: MetadataResponse) -> Result<ClusterMetadata, KafkaError> {
    let mut brokers: Vec<BrokerInfo> = r
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let mut out = Vec::with_capacity(r.topics.len());
    // By value: `into_iter().map(|b| b.0).collect()` reuses each list's
    // allocation (`BrokerId` and `i32` have one layout), so the domain view
    // costs no allocation per partition beyond the decode's own.
    for t in r.topics {
        let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
        KafkaError::check("Metadata", format!("topic {name:?}"), t.error_code)?;
        let ids = |v: Vec<kafka_protocol::messages::BrokerId>| -> Vec<i32> {
            v.into_iter().map(|b| b.0).collect()
        };
        let mut partitions: Vec<PartitionInfo> = t
            .partitions
            .into_iter()
            .map(|p| PartitionInfo {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: ids(p.replica_nodes),
                isr: ids(p.isr_nodes),
                offline: ids(p.offline_replicas),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        out.push(TopicInfo {
            name,
            id: *t.topic_id.as_bytes(),
            internal: t.is_internal,
            partitions,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ClusterMetadata {
        cluster_id: r.cluster_id.as_ref().map(|c| c.to_string()),
        controller_id: r.controller_id.0,
        brokers,
        topics: out,
    })
}
