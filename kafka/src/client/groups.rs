//! Offsets and consumer groups: ListOffsets to each partition's leader;
//! ListGroups to every broker; FindCoordinator, then DescribeGroups and
//! OffsetFetch to the group's coordinator.

use std::collections::BTreeMap;
use std::time::Instant;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, OffsetFetchRequest, OffsetFetchResponse,
};

use super::{by_topic, s, topic_name, KafkaClient, Route, BACKOFF_MAX, BACKOFF_START};
use crate::error::KafkaError;
use crate::types::{
    GroupDescription, GroupListing, GroupMember, OffsetSpec, PerItem, TopicPartition,
};

const LIST_OFFSETS: (i16, i16) = (1, 9);
const LIST_GROUPS: (i16, i16) = (0, 5);
const DESCRIBE_GROUPS: (i16, i16) = (0, 5);
const FIND_COORDINATOR: (i16, i16) = (0, 6);
/// v8+ batches groups; v10 names topics by id, which this client does not
/// send.
const OFFSET_FETCH: (i16, i16) = (1, 9);

impl KafkaClient {
    /// ListOffsets, asked of each partition's leader; a partition whose
    /// leader moved is retried on the new one within the deadline.
    /// Results come in the order asked.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<PerItem<TopicPartition, i64>, KafkaError> {
        let until = Instant::now() + self.deadline;
        let mut results: Vec<Option<Result<i64, KafkaError>>> =
            (0..partitions.len()).map(|_| None).collect();
        let mut backoff = BACKOFF_START;
        loop {
            let pending: Vec<usize> = (0..partitions.len())
                .filter(|i| results[*i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            let mut last: Option<KafkaError> = None;
            // Leaders of the pending partitions, from the cache or a fresh
            // Metadata (a partition Metadata does not list is unknown).
            let missing = {
                let l = self.leaders.lock().await;
                pending.iter().any(|i| !l.contains_key(&partitions[*i]))
            };
            if missing {
                match self.refresh_metadata(until).await {
                    Ok(m) => {
                        for i in &pending {
                            let tp = &partitions[*i];
                            let known = m.topics.iter().any(|t| {
                                t.name == tp.topic
                                    && t.partitions.iter().any(|p| p.partition == tp.partition)
                            });
                            if !known {
                                results[*i] =
                                    Some(Err(KafkaError::check("ListOffsets", tp.to_string(), 3)
                                        .unwrap_err()));
                            }
                        }
                    }
                    Err(e) if e.is_retriable() => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
            {
                let l = self.leaders.lock().await;
                for i in pending.iter().filter(|i| results[**i].is_none()) {
                    match l.get(&partitions[*i]) {
                        Some(b) => by_leader.entry(*b).or_default().push(*i),
                        None => {
                            last = Some(
                                KafkaError::check("ListOffsets", partitions[*i].to_string(), 5)
                                    .unwrap_err(),
                            )
                        }
                    }
                }
            }
            for (leader, idx) in by_leader {
                let topics = by_topic(idx.iter().map(|i| (&partitions[*i], ())))
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(&t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, _)| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(spec.timestamp())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let req = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(topics);
                let r: Result<ListOffsetsResponse, KafkaError> =
                    match self.addrs(&Route::Broker(leader), until).await {
                        Ok(a) => self
                            .send_to(&a[0], until, ApiKey::ListOffsets, LIST_OFFSETS, &|_| {
                                req.clone()
                            })
                            .await
                            .map(|(_, r)| r),
                        Err(e) => Err(e),
                    };
                match r {
                    Ok(r) => {
                        for t in &r.topics {
                            for p in &t.partitions {
                                let Some(i) = idx.iter().copied().find(|i| {
                                    partitions[*i].topic == t.name.0.as_str()
                                        && partitions[*i].partition == p.partition_index
                                }) else {
                                    continue;
                                };
                                match KafkaError::check(
                                    "ListOffsets",
                                    partitions[i].to_string(),
                                    p.error_code,
                                ) {
                                    Ok(()) => results[i] = Some(Ok(p.offset)),
                                    Err(e) if e.is_retriable() => {
                                        self.invalidate(&e).await;
                                        last = Some(e);
                                    }
                                    Err(e) => results[i] = Some(Err(e)),
                                }
                            }
                        }
                    }
                    Err(e) if e.is_retriable() => {
                        self.invalidate(&e).await;
                        self.leaders.lock().await.clear();
                        last = Some(e);
                    }
                    Err(e) => {
                        for i in &idx {
                            results[*i] = Some(Err(KafkaError::Refused {
                                api: "ListOffsets",
                                resource: partitions[*i].to_string(),
                                reason: e.to_string(),
                            }));
                        }
                    }
                }
            }
            if results.iter().all(|r| r.is_some()) {
                break;
            }
            if Instant::now() + backoff >= until {
                let e = last.unwrap_or_else(|| KafkaError::Timeout {
                    addr: String::new(),
                    api: "ListOffsets",
                    deadline: self.deadline,
                });
                for r in results.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(Err(KafkaError::Refused {
                        api: "ListOffsets",
                        resource: "partition".into(),
                        reason: e.to_string(),
                    }));
                }
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        Ok(partitions
            .iter()
            .cloned()
            .zip(
                results
                    .into_iter()
                    .map(|r| r.expect("every partition answered")),
            )
            .collect())
    }

    /// ListGroups on every broker (each lists the groups it coordinates).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, KafkaError> {
        let m = self.metadata().await?;
        let mut out = Vec::new();
        for b in &m.brokers {
            let (_, r): (_, ListGroupsResponse) = self
                .call(
                    Route::Broker(b.id),
                    ApiKey::ListGroups,
                    LIST_GROUPS,
                    |_| ListGroupsRequest::default(),
                    |_, r: &ListGroupsResponse| {
                        KafkaError::check("ListGroups", format!("broker {}", b.id), r.error_code)
                    },
                )
                .await?;
            out.extend(r.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                coordinator: b.id,
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// The group's coordinator, from the cache or FindCoordinator (one
    /// attempt over the bootstrap servers; the caller's call retries).
    pub(super) async fn coordinator(&self, group: &str, until: Instant) -> Result<i32, KafkaError> {
        if let Some(b) = self.coordinators.lock().await.get(group) {
            return Ok(*b);
        }
        let req = |v: i16| {
            if v >= 4 {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)])
            } else {
                FindCoordinatorRequest::default().with_key(s(group))
            }
        };
        let mut last = None;
        for a in self.any_addrs().await {
            match self
                .send_to(&a, until, ApiKey::FindCoordinator, FIND_COORDINATOR, &req)
                .await
            {
                Ok((v, r)) => {
                    let r: FindCoordinatorResponse = r;
                    let (code, msg, node) = match r.coordinators.first() {
                        Some(k) if v >= 4 => (k.error_code, k.error_message.clone(), k.node_id.0),
                        _ => (r.error_code, r.error_message.clone(), r.node_id.0),
                    };
                    KafkaError::check_msg(
                        "FindCoordinator",
                        format!("group {group:?}"),
                        code,
                        msg.map(|m| m.to_string()),
                    )?;
                    self.coordinators
                        .lock()
                        .await
                        .insert(group.to_string(), node);
                    return Ok(node);
                }
                Err(e) if e.is_connection() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::Connect {
            addr: "(no bootstrap servers)".into(),
            source: std::io::Error::other("no address to try"),
        }))
    }

    /// DescribeGroups, asked of the group's coordinator. A group that does
    /// not exist is described as `Dead` with no members, as Kafka does.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, KafkaError> {
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
        let (_, r): (_, DescribeGroupsResponse) = self
            .call(
                Route::Coordinator(group.to_string()),
                ApiKey::DescribeGroups,
                DESCRIBE_GROUPS,
                |_| req.clone(),
                |_, r: &DescribeGroupsResponse| match r.groups.first() {
                    Some(g) => KafkaError::check_msg(
                        "DescribeGroups",
                        format!("group {group:?}"),
                        g.error_code,
                        g.error_message.as_ref().map(|m| m.to_string()),
                    ),
                    None => Ok(()),
                },
            )
            .await?;
        let g = r.groups.first().ok_or_else(|| KafkaError::Malformed {
            addr: String::new(),
            api: "DescribeGroups",
            reason: format!("no result for group {group:?}"),
        })?;
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                })
                .collect(),
        })
    }

    /// The group's committed offsets (OffsetFetch of every partition, to
    /// its coordinator), sorted by partition.
    pub async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<(TopicPartition, i64)>, KafkaError> {
        let (v, r): (i16, OffsetFetchResponse) = self
            .call(
                Route::Coordinator(group.to_string()),
                ApiKey::OffsetFetch,
                OFFSET_FETCH,
                |v| {
                    if v >= 8 {
                        OffsetFetchRequest::default().with_groups(vec![
                            OffsetFetchRequestGroup::default()
                                .with_group_id(GroupId(s(group)))
                                .with_topics(None),
                        ])
                    } else {
                        OffsetFetchRequest::default()
                            .with_group_id(GroupId(s(group)))
                            .with_topics(None)
                    }
                },
                |v, r: &OffsetFetchResponse| {
                    let res = format!("group {group:?}");
                    if v >= 8 {
                        for g in &r.groups {
                            KafkaError::check("OffsetFetch", res.clone(), g.error_code)?;
                        }
                        Ok(())
                    } else {
                        KafkaError::check("OffsetFetch", res, r.error_code)
                    }
                },
            )
            .await?;
        let mut rows: Vec<(TopicPartition, i64)> = Vec::new();
        let res = format!("group {group:?}");
        if v >= 8 {
            for g in &r.groups {
                for t in &g.topics {
                    for p in &t.partitions {
                        KafkaError::check("OffsetFetch", res.clone(), p.error_code)?;
                        rows.push((
                            TopicPartition::new(t.name.0.to_string(), p.partition_index),
                            p.committed_offset,
                        ));
                    }
                }
            }
        } else {
            for t in &r.topics {
                for p in &t.partitions {
                    KafkaError::check("OffsetFetch", res.clone(), p.error_code)?;
                    rows.push((
                        TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    ));
                }
            }
        }
        rows.retain(|(_, o)| *o >= 0);
        rows.sort();
        Ok(rows)
    }
}
