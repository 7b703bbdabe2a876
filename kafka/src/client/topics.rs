//! The cluster and its topics: DescribeCluster, Metadata, CreateTopics,
//! CreatePartitions, DeleteTopics — all through any broker.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse,
};

use super::{s, topic_name, KafkaClient, Route};
use crate::error::KafkaError;
use crate::metadata::ClusterMetadata;
use crate::types::{ClusterDescription, DescribedBroker, NewTopic, PerItem};

const CREATE_TOPICS: (i16, i16) = (2, 7);
const CREATE_PARTITIONS: (i16, i16) = (0, 3);
const DELETE_TOPICS: (i16, i16) = (1, 5);
const DESCRIBE_CLUSTER: (i16, i16) = (0, 2);

impl KafkaClient {
    /// DescribeCluster (Kafka 2.8+); fenced brokers are listed from v2.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, KafkaError> {
        let (_, r): (_, DescribeClusterResponse) = self
            .call(
                Route::Any,
                ApiKey::DescribeCluster,
                DESCRIBE_CLUSTER,
                |v| {
                    DescribeClusterRequest::default()
                        .with_include_fenced_brokers(v >= 2)
                        .with_endpoint_type(if v >= 1 { 1 } else { 0 })
                },
                |_, r: &DescribeClusterResponse| {
                    KafkaError::check_msg(
                        "DescribeCluster",
                        "the cluster",
                        r.error_code,
                        r.error_message.as_ref().map(|m| m.to_string()),
                    )
                },
            )
            .await?;
        let mut brokers: Vec<DescribedBroker> = r
            .brokers
            .iter()
            .map(|b| DescribedBroker {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: b.is_fenced,
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterDescription {
            cluster_id: r.cluster_id.to_string(),
            controller_id: r.controller_id.0,
            brokers,
        })
    }

    /// The cluster's metadata (every topic), refreshing the broker and
    /// leader caches.
    pub async fn metadata(&self) -> Result<ClusterMetadata, KafkaError> {
        let until = std::time::Instant::now() + self.deadline;
        let mut backoff = super::BACKOFF_START;
        loop {
            match self.refresh_metadata(until).await {
                Err(e) if e.is_retriable() && std::time::Instant::now() + backoff < until => {
                    self.invalidate(&e).await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(super::BACKOFF_MAX);
                }
                r => return r,
            }
        }
    }

    /// Creates topics; one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> Result<PerItem<String, ()>, KafkaError> {
        self.create_topics_with(topics, false).await
    }

    /// CreateTopics with `validate_only`: the controller checks names,
    /// assignments and configs and creates nothing.
    pub async fn create_topics_validate(
        &self,
        topics: &[NewTopic],
    ) -> Result<PerItem<String, ()>, KafkaError> {
        self.create_topics_with(topics, true).await
    }

    async fn create_topics_with(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<PerItem<String, ()>, KafkaError> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(topics.iter().map(creatable).collect());
        let (_, r): (_, CreateTopicsResponse) = self
            .call(
                Route::Any,
                ApiKey::CreateTopics,
                CREATE_TOPICS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        let got = r.topics.iter().map(|t| {
            let name = t.name.0.to_string();
            let res = KafkaError::check_msg(
                "CreateTopics",
                format!("topic {name:?}"),
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            );
            (name, res)
        });
        Ok(in_order(
            "CreateTopics",
            topics.iter().map(|t| &t.name),
            got,
        ))
    }

    /// Grows each topic to `total` partitions; Kafka places the new ones.
    pub async fn create_partitions(
        &self,
        topics: &[(String, i32)],
    ) -> Result<PerItem<String, ()>, KafkaError> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(
                topics
                    .iter()
                    .map(|(t, n)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(t))
                            .with_count(*n)
                            .with_assignments(None)
                    })
                    .collect(),
            );
        let (_, r): (_, CreatePartitionsResponse) = self
            .call(
                Route::Any,
                ApiKey::CreatePartitions,
                CREATE_PARTITIONS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        let got = r.results.iter().map(|t| {
            let name = t.name.0.to_string();
            let res = KafkaError::check_msg(
                "CreatePartitions",
                format!("topic {name:?}"),
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            );
            (name, res)
        });
        Ok(in_order(
            "CreatePartitions",
            topics.iter().map(|t| &t.0),
            got,
        ))
    }

    /// Deletes topics by name; one result per topic.
    pub async fn delete_topics(&self, names: &[String]) -> Result<PerItem<String, ()>, KafkaError> {
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        let (_, r): (_, DeleteTopicsResponse) = self
            .call(
                Route::Any,
                ApiKey::DeleteTopics,
                DELETE_TOPICS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        let got = r.responses.iter().map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let res = KafkaError::check_msg(
                "DeleteTopics",
                format!("topic {name:?}"),
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            );
            (name, res)
        });
        Ok(in_order("DeleteTopics", names.iter(), got))
    }
}

/// Per-topic results in the order asked (Kafka answers in its own order);
/// a topic Kafka did not answer for is a malformed answer.
fn in_order<'a>(
    api: &'static str,
    asked: impl Iterator<Item = &'a String>,
    got: impl Iterator<Item = (String, Result<(), KafkaError>)>,
) -> PerItem<String, ()> {
    let mut got: std::collections::HashMap<String, Result<(), KafkaError>> = got.collect();
    asked
        .map(|n| {
            let res = got.remove(n).unwrap_or_else(|| {
                Err(KafkaError::Malformed {
                    addr: String::new(),
                    api,
                    reason: format!("no result for topic {n:?}"),
                })
            });
            (n.clone(), res)
        })
        .collect()
}

fn creatable(t: &NewTopic) -> CreatableTopic {
    let configs = t
        .configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v)))
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
