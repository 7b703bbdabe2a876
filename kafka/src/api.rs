//! [`KafkaAdmin`]: the admin operations Guardian performs on a Kafka
//! cluster. [`crate::KafkaClient`] sends them to real brokers;
//! [`crate::KafkaModel`] answers them from an in-memory model of Kafka's
//! semantics. One conformance suite (`guardian-tests`) runs against both.

use std::future::Future;

use crate::error::KafkaError;
use crate::metadata::ClusterMetadata;
use crate::types::*;

/// Admin operations on one Kafka cluster. Batch calls answer one result
/// per item; the outer error is for the call as a whole (nothing
/// reachable, a malformed answer, the deadline passed).
pub trait KafkaAdmin: Send + Sync {
    /// DescribeCluster: the cluster id, controller and brokers.
    fn describe_cluster(
        &self,
    ) -> impl Future<Output = Result<ClusterDescription, KafkaError>> + Send;

    /// Metadata of every topic.
    fn metadata(&self) -> impl Future<Output = Result<ClusterMetadata, KafkaError>> + Send;

    fn create_topics(
        &self,
        topics: &[NewTopic],
    ) -> impl Future<Output = Result<PerItem<String, ()>, KafkaError>> + Send;

    /// Grows each topic to `total` partitions (Kafka places the new ones).
    fn create_partitions(
        &self,
        topics: &[(String, i32)],
    ) -> impl Future<Output = Result<PerItem<String, ()>, KafkaError>> + Send;

    fn delete_topics(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<PerItem<String, ()>, KafkaError>> + Send;

    /// The named configs of a resource (all of them when `keys` is empty),
    /// each with its source and the layers below it.
    fn describe_configs(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<ConfigEntry>, KafkaError>> + Send;

    /// IncrementalAlterConfigs on one resource, all changes or none.
    fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> impl Future<Output = Result<(), KafkaError>> + Send;

    /// AlterPartitionReassignments: a target replica list per partition
    /// (`None` cancels the partition's reassignment). With
    /// `allow_rf_change` false a target of a different replication factor
    /// is refused (by the broker on Kafka 3.9+, by the client before).
    fn alter_reassignments(
        &self,
        targets: &[(TopicPartition, Option<Vec<i32>>)],
        allow_rf_change: bool,
    ) -> impl Future<Output = Result<PerItem<TopicPartition, ()>, KafkaError>> + Send;

    /// Reassignments in progress (all when `topics` is empty).
    fn list_reassignments(
        &self,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = Result<Vec<Reassignment>, KafkaError>> + Send;

    /// DescribeLogDirs of one broker, asked of that broker.
    fn describe_log_dirs(
        &self,
        broker: i32,
    ) -> impl Future<Output = Result<Vec<LogDirInfo>, KafkaError>> + Send;

    /// AlterReplicaLogDirs on one broker: each partition's replica to the
    /// dir named (its path exactly as configured).
    fn alter_replica_log_dirs(
        &self,
        broker: i32,
        moves: &[(TopicPartition, String)],
    ) -> impl Future<Output = Result<PerItem<TopicPartition, LogDirMove>, KafkaError>> + Send;

    /// Preferred-leader elections.
    fn elect_preferred_leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = Result<PerItem<TopicPartition, Election>, KafkaError>> + Send;

    /// Quota entries matching every component (`strict`: entities with no
    /// other entity types).
    fn describe_client_quotas(
        &self,
        components: &[(String, QuotaMatch)],
        strict: bool,
    ) -> impl Future<Output = Result<Vec<QuotaEntry>, KafkaError>> + Send;

    /// Sets (`Some`) or removes (`None`) quota values per entity.
    fn alter_client_quotas(
        &self,
        changes: &[QuotaChange],
    ) -> impl Future<Output = Result<PerItem<QuotaEntity, ()>, KafkaError>> + Send;

    /// ListOffsets, asked of each partition's leader.
    fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> impl Future<Output = Result<PerItem<TopicPartition, i64>, KafkaError>> + Send;

    /// ListGroups on every broker (each lists the groups it coordinates).
    fn list_groups(&self) -> impl Future<Output = Result<Vec<GroupListing>, KafkaError>> + Send;

    /// DescribeGroups, asked of each group's coordinator.
    fn describe_group(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<GroupDescription, KafkaError>> + Send;

    /// A group's committed offsets (OffsetFetch, to its coordinator).
    fn committed_offsets(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<(TopicPartition, i64)>, KafkaError>> + Send;

    /// A group's lag per partition: committed offsets against the
    /// partitions' latest offsets.
    fn consumer_lag(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<PartitionLag>, KafkaError>> + Send {
        async move {
            let committed = self.committed_offsets(group).await?;
            let tps: Vec<TopicPartition> = committed.iter().map(|(tp, _)| tp.clone()).collect();
            let ends = self.list_offsets(&tps, OffsetSpec::Latest).await?;
            let mut out = Vec::with_capacity(committed.len());
            for ((tp, committed), (_, end)) in committed.into_iter().zip(ends) {
                let log_end = end?;
                out.push(PartitionLag {
                    lag: (log_end - committed).max(0),
                    topic: tp.topic,
                    partition: tp.partition,
                    committed,
                    log_end,
                });
            }
            Ok(out)
        }
    }
}
