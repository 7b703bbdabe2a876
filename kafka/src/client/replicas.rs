//! Where replicas live: AlterPartitionReassignments and
//! ListPartitionReassignments and ElectLeaders (any broker, forwarded to
//! the controller); DescribeLogDirs and AlterReplicaLogDirs (the named
//! broker).

use std::collections::HashMap;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ApiKey, BrokerId,
    DescribeLogDirsRequest, DescribeLogDirsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::{by_topic, s, topic_name, KafkaClient, Route};
use crate::error::KafkaError;
use crate::types::{
    Election, LogDirInfo, LogDirMove, PerItem, Reassignment, ReplicaInfo, TopicPartition,
};

const ALTER_REASSIGNMENTS: (i16, i16) = (0, 1);
const LIST_REASSIGNMENTS: (i16, i16) = (0, 0);
const DESCRIBE_LOG_DIRS: (i16, i16) = (1, 4);
const ALTER_REPLICA_LOG_DIRS: (i16, i16) = (1, 2);
const ELECT_LEADERS: (i16, i16) = (1, 2);

/// `REPLICA_NOT_AVAILABLE`: AlterReplicaLogDirs recorded a preference.
const REPLICA_NOT_AVAILABLE: i16 = 9;
/// `ELECTION_NOT_NEEDED`.
const ELECTION_NOT_NEEDED: i16 = 84;

impl KafkaClient {
    /// AlterPartitionReassignments; a `None` target cancels. With
    /// `allow_rf_change` false, a target whose size differs from the
    /// partition's current replication factor is refused: by the broker
    /// (v1, KIP-860) or, on older brokers, here from Metadata.
    pub async fn alter_reassignments(
        &self,
        targets: &[(TopicPartition, Option<Vec<i32>>)],
        allow_rf_change: bool,
    ) -> Result<PerItem<TopicPartition, ()>, KafkaError> {
        let guard = self.features().await?.reassignment_rf_guard;
        let mut refused: HashMap<TopicPartition, KafkaError> = HashMap::new();
        if !allow_rf_change && !guard {
            let m = self.metadata().await?;
            for (tp, target) in targets {
                let Some(target) = target else { continue };
                let current = m
                    .topics
                    .iter()
                    .find(|t| t.name == tp.topic)
                    .and_then(|t| t.partitions.iter().find(|p| p.partition == tp.partition))
                    .map(|p| p.replicas.len());
                if current.is_some_and(|n| n != target.len()) {
                    refused.insert(
                        tp.clone(),
                        KafkaError::Refused {
                            api: "AlterPartitionReassignments",
                            resource: tp.to_string(),
                            reason: format!(
                                "the target {target:?} changes the replication factor from {}",
                                current.unwrap_or(0)
                            ),
                        },
                    );
                }
            }
        }
        let send: Vec<_> = targets
            .iter()
            .filter(|(tp, _)| !refused.contains_key(tp))
            .collect();
        let mut out: HashMap<TopicPartition, Result<(), KafkaError>> = HashMap::new();
        if !send.is_empty() {
            let topics = by_topic(send.iter().map(|(tp, r)| (tp, r)))
                .into_iter()
                .map(|(t, ps)| {
                    ReassignableTopic::default()
                        .with_name(topic_name(&t))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, r)| {
                                    ReassignablePartition::default()
                                        .with_partition_index(p)
                                        .with_replicas(
                                            r.as_ref()
                                                .map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            let req = AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(self.timeout_ms())
                .with_allow_replication_factor_change(allow_rf_change)
                .with_topics(topics);
            let (_, r): (_, AlterPartitionReassignmentsResponse) = self
                .call(
                    Route::Any,
                    ApiKey::AlterPartitionReassignments,
                    ALTER_REASSIGNMENTS,
                    |_| req.clone(),
                    |_, r: &AlterPartitionReassignmentsResponse| {
                        KafkaError::check_msg(
                            "AlterPartitionReassignments",
                            "the request",
                            r.error_code,
                            r.error_message.as_ref().map(|m| m.to_string()),
                        )
                    },
                )
                .await?;
            for t in &r.responses {
                for p in &t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    let res = KafkaError::check_msg(
                        "AlterPartitionReassignments",
                        tp.to_string(),
                        p.error_code,
                        p.error_message.as_ref().map(|m| m.to_string()),
                    );
                    out.insert(tp, res);
                }
            }
        }
        Ok(targets
            .iter()
            .map(|(tp, _)| {
                let res = refused.remove(tp).map(Err).unwrap_or_else(|| {
                    out.remove(tp).unwrap_or_else(|| {
                        Err(KafkaError::Malformed {
                            addr: String::new(),
                            api: "AlterPartitionReassignments",
                            reason: format!("no result for {tp}"),
                        })
                    })
                });
                (tp.clone(), res)
            })
            .collect())
    }

    /// Reassignments in progress, of the named partitions (all when empty).
    pub async fn list_reassignments(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Reassignment>, KafkaError> {
        let topics = (!partitions.is_empty()).then(|| {
            by_topic(partitions.iter().map(|tp| (tp, ())))
                .into_iter()
                .map(|(t, ps)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(&t))
                        .with_partition_indexes(ps.into_iter().map(|(p, _)| p).collect())
                })
                .collect()
        });
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(topics);
        let (_, r): (_, ListPartitionReassignmentsResponse) = self
            .call(
                Route::Any,
                ApiKey::ListPartitionReassignments,
                LIST_REASSIGNMENTS,
                |_| req.clone(),
                |_, r: &ListPartitionReassignmentsResponse| {
                    KafkaError::check_msg(
                        "ListPartitionReassignments",
                        "the request",
                        r.error_code,
                        r.error_message.as_ref().map(|m| m.to_string()),
                    )
                },
            )
            .await?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        let mut out: Vec<Reassignment> = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| Reassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Every log dir of broker `broker` with the replicas it holds, asked
    /// of that broker itself.
    pub async fn describe_log_dirs(&self, broker: i32) -> Result<Vec<LogDirInfo>, KafkaError> {
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let (v, r): (i16, DescribeLogDirsResponse) = self
            .call(
                Route::Broker(broker),
                ApiKey::DescribeLogDirs,
                DESCRIBE_LOG_DIRS,
                |_| req.clone(),
                |_, r: &DescribeLogDirsResponse| {
                    KafkaError::check("DescribeLogDirs", format!("broker {broker}"), r.error_code)
                },
            )
            .await?;
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

    /// AlterReplicaLogDirs on `broker`. `REPLICA_NOT_AVAILABLE` is the
    /// broker recording a preference for a replica it does not hold yet:
    /// [`LogDirMove::PreferenceRecorded`], never retried.
    pub async fn alter_replica_log_dirs(
        &self,
        broker: i32,
        moves: &[(TopicPartition, String)],
    ) -> Result<PerItem<TopicPartition, LogDirMove>, KafkaError> {
        let mut by_dir: Vec<(String, Vec<&TopicPartition>)> = Vec::new();
        for (tp, dir) in moves {
            match by_dir.iter_mut().find(|(d, _)| d == dir) {
                Some((_, v)) => v.push(tp),
                None => by_dir.push((dir.clone(), vec![tp])),
            }
        }
        let dirs = by_dir
            .iter()
            .map(|(d, tps)| {
                AlterReplicaLogDir::default().with_path(s(d)).with_topics(
                    by_topic(tps.iter().map(|tp| (*tp, ())))
                        .into_iter()
                        .map(|(t, ps)| {
                            AlterReplicaLogDirTopic::default()
                                .with_name(topic_name(&t))
                                .with_partitions(ps.into_iter().map(|(p, _)| p).collect())
                        })
                        .collect(),
                )
            })
            .collect();
        let req = AlterReplicaLogDirsRequest::default().with_dirs(dirs);
        let (_, r): (_, AlterReplicaLogDirsResponse) = self
            .call(
                Route::Broker(broker),
                ApiKey::AlterReplicaLogDirs,
                ALTER_REPLICA_LOG_DIRS,
                |_| req.clone(),
                |_, _| Ok(()),
            )
            .await?;
        let mut got: HashMap<TopicPartition, i16> = HashMap::new();
        for t in &r.results {
            for p in &t.partitions {
                got.insert(
                    TopicPartition::new(t.topic_name.0.to_string(), p.partition_index),
                    p.error_code,
                );
            }
        }
        Ok(moves
            .iter()
            .map(|(tp, dir)| {
                let res = match got.get(tp) {
                    Some(0) => Ok(LogDirMove::MoveStarted),
                    Some(&REPLICA_NOT_AVAILABLE) => Ok(LogDirMove::PreferenceRecorded),
                    Some(code) => KafkaError::check(
                        "AlterReplicaLogDirs",
                        format!("{tp} to {dir:?} on broker {broker}"),
                        *code,
                    )
                    .map(|_| LogDirMove::MoveStarted),
                    None => Err(KafkaError::Malformed {
                        addr: String::new(),
                        api: "AlterReplicaLogDirs",
                        reason: format!("no result for {tp}"),
                    }),
                };
                (tp.clone(), res)
            })
            .collect())
    }

    /// Preferred-leader elections; `ELECTION_NOT_NEEDED` is
    /// [`Election::NotNeeded`].
    pub async fn elect_preferred_leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<PerItem<TopicPartition, Election>, KafkaError> {
        let req = ElectLeadersRequest::default()
            .with_election_type(0)
            .with_timeout_ms(self.timeout_ms())
            .with_topic_partitions(Some(
                by_topic(partitions.iter().map(|tp| (tp, ())))
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic(topic_name(&t))
                            .with_partitions(ps.into_iter().map(|(p, _)| p).collect())
                    })
                    .collect(),
            ));
        let (_, r): (_, ElectLeadersResponse) = self
            .call(
                Route::Any,
                ApiKey::ElectLeaders,
                ELECT_LEADERS,
                |_| req.clone(),
                |_, r: &ElectLeadersResponse| {
                    KafkaError::check("ElectLeaders", "the request", r.error_code)
                },
            )
            .await?;
        let mut got: HashMap<TopicPartition, (i16, Option<String>)> = HashMap::new();
        for t in &r.replica_election_results {
            for p in &t.partition_result {
                got.insert(
                    TopicPartition::new(t.topic.0.to_string(), p.partition_id),
                    (
                        p.error_code,
                        p.error_message.as_ref().map(|m| m.to_string()),
                    ),
                );
            }
        }
        Ok(partitions
            .iter()
            .map(|tp| {
                let res = match got.remove(tp) {
                    Some((0, _)) => Ok(Election::Elected),
                    Some((ELECTION_NOT_NEEDED, _)) => Ok(Election::NotNeeded),
                    Some((code, msg)) => {
                        KafkaError::check_msg("ElectLeaders", tp.to_string(), code, msg)
                            .map(|_| Election::Elected)
                    }
                    None => Err(KafkaError::Malformed {
                        addr: String::new(),
                        api: "ElectLeaders",
                        reason: format!("no result for {tp}"),
                    }),
                };
                (tp.clone(), res)
            })
            .collect())
    }
}
