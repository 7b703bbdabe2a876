//! The Kafka wire protocol in front of a [`KafkaModel`]: one listener per
//! simulated broker, answering every API Guardian's `kafka/` client sends
//! (and Kafka's own admin tools) with Kafka's routing rules and error
//! codes:
//!
//! - DescribeLogDirs and AlterReplicaLogDirs answer for the receiving
//!   broker only; a BROKER config of another broker is `INVALID_REQUEST`;
//! - ListOffsets answers only for partitions the receiving broker leads
//!   (`NOT_LEADER_OR_FOLLOWER` otherwise);
//! - a group has one coordinator among the live brokers (FindCoordinator);
//!   DescribeGroups and OffsetFetch elsewhere are `NOT_COORDINATOR`, and
//!   ListGroups on a broker lists the groups it coordinates;
//! - a stopped broker closes every connection;
//! - an API outside [`supported`] closes the connection, as Kafka does for
//!   a version it does not know (ApiVersions itself answers
//!   `UNSUPPORTED_VERSION` at v0).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use guardian_kafka::types::*;
use guardian_kafka::{KafkaAdmin, KafkaError, KafkaModel};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request frame accepted.
const MAX_FRAME: usize = 64 << 20;

const NONE: i16 = 0;
const UNKNOWN_SERVER_ERROR: i16 = -1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const BROKER_NOT_AVAILABLE: i16 = 8;
const NOT_COORDINATOR: i16 = 16;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;

/// The APIs served and their version ranges: what the `kafka/` client
/// and Kafka's tools use, each up to the newest version the protocol
/// crate encodes.
pub fn supported() -> Vec<(ApiKey, i16, i16)> {
    macro_rules! v {
        ($k:ident, $t:ty, $min:expr) => {
            (ApiKey::$k, $min, <$t as Message>::VERSIONS.max)
        };
    }
    vec![
        (ApiKey::ApiVersions, 0, 3),
        v!(Metadata, MetadataRequest, 1),
        v!(DescribeCluster, DescribeClusterRequest, 0),
        v!(CreateTopics, CreateTopicsRequest, 2),
        v!(CreatePartitions, CreatePartitionsRequest, 0),
        v!(DeleteTopics, DeleteTopicsRequest, 1),
        v!(DescribeConfigs, DescribeConfigsRequest, 1),
        v!(IncrementalAlterConfigs, IncrementalAlterConfigsRequest, 0),
        v!(
            AlterPartitionReassignments,
            AlterPartitionReassignmentsRequest,
            0
        ),
        v!(
            ListPartitionReassignments,
            ListPartitionReassignmentsRequest,
            0
        ),
        v!(DescribeLogDirs, DescribeLogDirsRequest, 1),
        v!(AlterReplicaLogDirs, AlterReplicaLogDirsRequest, 1),
        v!(ElectLeaders, ElectLeadersRequest, 1),
        v!(DescribeClientQuotas, DescribeClientQuotasRequest, 0),
        v!(AlterClientQuotas, AlterClientQuotasRequest, 0),
        v!(ListOffsets, ListOffsetsRequest, 1),
        v!(FindCoordinator, FindCoordinatorRequest, 0),
        v!(ListGroups, ListGroupsRequest, 0),
        v!(DescribeGroups, DescribeGroupsRequest, 0),
        v!(OffsetFetch, OffsetFetchRequest, 1),
    ]
}

/// One simulated broker's listener.
#[derive(Clone)]
pub struct BrokerFront {
    model: Arc<KafkaModel>,
    id: i32,
}

impl BrokerFront {
    pub fn new(model: Arc<KafkaModel>, id: i32) -> Self {
        BrokerFront { model, id }
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.connection(stream).await {
                    tracing::debug!(broker = me.id, error = %e, "connection closed");
                }
            });
        }
    }

    async fn connection(&self, mut s: TcpStream) -> std::io::Result<()> {
        let _ = s.set_nodelay(true);
        loop {
            let len = s.read_i32().await?;
            if len < 0 || len as usize > MAX_FRAME {
                return Err(std::io::Error::other(format!("frame length {len}")));
            }
            let mut buf = vec![0u8; len as usize];
            s.read_exact(&mut buf).await?;
            if !self.model.is_alive(self.id) {
                return Ok(()); // a stopped broker: the connection closes
            }
            let Some(out) = self.request(Bytes::from(buf)).await else {
                return Ok(());
            };
            let mut frame = BytesMut::with_capacity(out.len() + 4);
            frame.put_i32(out.len() as i32);
            frame.extend_from_slice(&out);
            s.write_all(&frame).await?;
        }
    }

    /// One request frame's response frame (header and body), or `None` to
    /// close the connection.
    async fn request(&self, mut buf: Bytes) -> Option<BytesMut> {
        if buf.len() < 4 {
            return None;
        }
        let key = i16::from_be_bytes([buf[0], buf[1]]);
        let version = i16::from_be_bytes([buf[2], buf[3]]);
        let api = ApiKey::try_from(key).ok()?;
        let header = RequestHeader::decode(&mut buf, api.request_header_version(version)).ok()?;
        let range = supported().into_iter().find(|(k, _, _)| *k == api);
        let mut out = BytesMut::new();
        let in_range = range.is_some_and(|(_, lo, hi)| (lo..=hi).contains(&version));
        if api == ApiKey::ApiVersions && !in_range {
            // Kafka answers an ApiVersions it cannot read at v0, with the
            // versions it has, so the client can pick one.
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, 0)
                .ok()?;
            self.api_versions(UNSUPPORTED_VERSION)
                .encode(&mut out, 0)
                .ok()?;
            return Some(out);
        }
        if !in_range {
            tracing::debug!(broker = self.id, ?api, version, "unsupported: closing");
            return None;
        }
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, api.response_header_version(version))
            .ok()?;
        let body = self.dispatch(api, version, &mut buf).await;
        match body {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => {
                tracing::debug!(broker = self.id, ?api, version, error = %e, "bad request: closing");
                return None;
            }
        }
        Some(out)
    }

    async fn dispatch(&self, api: ApiKey, v: i16, buf: &mut Bytes) -> anyhow::Result<BytesMut> {
        macro_rules! handle {
            ($req:ty, $f:ident) => {{
                let req = <$req>::decode(buf, v)?;
                let resp = self.$f(req, v).await;
                let mut out = BytesMut::new();
                resp.encode(&mut out, v)?;
                Ok(out)
            }};
        }
        match api {
            ApiKey::ApiVersions => {
                let _ = ApiVersionsRequest::decode(buf, v)?;
                let mut out = BytesMut::new();
                self.api_versions(NONE).encode(&mut out, v)?;
                Ok(out)
            }
            ApiKey::Metadata => handle!(MetadataRequest, metadata),
            ApiKey::DescribeCluster => handle!(DescribeClusterRequest, describe_cluster),
            ApiKey::CreateTopics => handle!(CreateTopicsRequest, create_topics),
            ApiKey::CreatePartitions => handle!(CreatePartitionsRequest, create_partitions),
            ApiKey::DeleteTopics => handle!(DeleteTopicsRequest, delete_topics),
            ApiKey::DescribeConfigs => handle!(DescribeConfigsRequest, describe_configs),
            ApiKey::IncrementalAlterConfigs => {
                handle!(IncrementalAlterConfigsRequest, alter_configs)
            }
            ApiKey::AlterPartitionReassignments => {
                handle!(AlterPartitionReassignmentsRequest, alter_reassignments)
            }
            ApiKey::ListPartitionReassignments => {
                handle!(ListPartitionReassignmentsRequest, list_reassignments)
            }
            ApiKey::DescribeLogDirs => handle!(DescribeLogDirsRequest, describe_log_dirs),
            ApiKey::AlterReplicaLogDirs => handle!(AlterReplicaLogDirsRequest, alter_log_dirs),
            ApiKey::ElectLeaders => handle!(ElectLeadersRequest, elect_leaders),
            ApiKey::DescribeClientQuotas => handle!(DescribeClientQuotasRequest, describe_quotas),
            ApiKey::AlterClientQuotas => handle!(AlterClientQuotasRequest, alter_quotas),
            ApiKey::ListOffsets => handle!(ListOffsetsRequest, list_offsets),
            ApiKey::FindCoordinator => handle!(FindCoordinatorRequest, find_coordinator),
            ApiKey::ListGroups => handle!(ListGroupsRequest, list_groups),
            ApiKey::DescribeGroups => handle!(DescribeGroupsRequest, describe_groups),
            ApiKey::OffsetFetch => handle!(OffsetFetchRequest, offset_fetch),
            other => anyhow::bail!("{other:?} is not served"),
        }
    }

    fn api_versions(&self, error_code: i16) -> ApiVersionsResponse {
        ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(
                supported()
                    .into_iter()
                    .map(|(k, lo, hi)| {
                        api_versions_response::ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_min_version(lo)
                            .with_max_version(hi)
                    })
                    .collect(),
            )
    }

    async fn metadata(&self, req: MetadataRequest, _v: i16) -> MetadataResponse {
        let md = match self.model.metadata().await {
            Ok(m) => m,
            Err(e) => {
                return MetadataResponse::default().with_error_code(code(&e).0);
            }
        };
        let wanted: Option<Vec<String>> = req.topics.map(|ts| {
            ts.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect()
        });
        let mut topics = Vec::new();
        let info = |t: &guardian_kafka::TopicInfo| {
            metadata_response::MetadataResponseTopic::default()
                .with_name(Some(tn(&t.name)))
                .with_topic_id(uuid::Uuid::from_bytes(t.id))
                .with_is_internal(t.internal)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            metadata_response::MetadataResponsePartition::default()
                                .with_error_code(if p.leader < 0 { 5 } else { NONE })
                                .with_partition_index(p.partition)
                                .with_leader_id(BrokerId(p.leader))
                                .with_leader_epoch(p.leader_epoch)
                                .with_replica_nodes(ids(&p.replicas))
                                .with_isr_nodes(ids(&p.isr))
                                .with_offline_replicas(ids(&p.offline))
                        })
                        .collect(),
                )
        };
        match wanted {
            None => topics.extend(md.topics.iter().map(info)),
            Some(names) => {
                for n in names {
                    match md.topics.iter().find(|t| t.name == n) {
                        Some(t) => topics.push(info(t)),
                        None => topics.push(
                            metadata_response::MetadataResponseTopic::default()
                                .with_name(Some(tn(&n)))
                                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                        ),
                    }
                }
            }
        }
        MetadataResponse::default()
            .with_brokers(
                md.brokers
                    .iter()
                    .map(|b| {
                        metadata_response::MetadataResponseBroker::default()
                            .with_node_id(BrokerId(b.id))
                            .with_host(sb(&b.host))
                            .with_port(b.port)
                            .with_rack(b.rack.as_deref().map(sb))
                    })
                    .collect(),
            )
            .with_cluster_id(md.cluster_id.as_deref().map(sb))
            .with_controller_id(BrokerId(md.controller_id))
            .with_topics(topics)
    }

    async fn describe_cluster(
        &self,
        req: DescribeClusterRequest,
        _v: i16,
    ) -> DescribeClusterResponse {
        match self.model.describe_cluster().await {
            Err(e) => {
                let (c, m) = code(&e);
                DescribeClusterResponse::default()
                    .with_error_code(c)
                    .with_error_message(m.map(|m| sb(&m)))
            }
            Ok(d) => DescribeClusterResponse::default()
                .with_endpoint_type(req.endpoint_type)
                .with_cluster_id(sb(&d.cluster_id))
                .with_controller_id(BrokerId(d.controller_id))
                .with_brokers(
                    d.brokers
                        .iter()
                        .filter(|b| req.include_fenced_brokers || !b.fenced)
                        .map(|b| {
                            describe_cluster_response::DescribeClusterBroker::default()
                                .with_broker_id(BrokerId(b.id))
                                .with_host(sb(&b.host))
                                .with_port(b.port)
                                .with_rack(b.rack.as_deref().map(sb))
                                .with_is_fenced(b.fenced)
                        })
                        .collect(),
                ),
        }
    }

    async fn create_topics(&self, req: CreateTopicsRequest, _v: i16) -> CreateTopicsResponse {
        let topics: Vec<NewTopic> = req
            .topics
            .iter()
            .map(|t| {
                let mut assignment: Vec<(i32, Vec<i32>)> = t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect();
                assignment.sort_by_key(|a| a.0);
                NewTopic {
                    name: t.name.0.to_string(),
                    partitions: t.num_partitions,
                    replication_factor: t.replication_factor,
                    assignment: assignment.into_iter().map(|a| a.1).collect(),
                    configs: t
                        .configs
                        .iter()
                        .map(|c| {
                            (
                                c.name.to_string(),
                                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        let results = if req.validate_only {
            self.model.create_topics_validate(&topics)
        } else {
            self.model.create_topics(&topics).await
        };
        let results = per_item(results, topics.iter().map(|t| t.name.clone()));
        let md = self.model.metadata().await.ok();
        CreateTopicsResponse::default().with_topics(
            results
                .into_iter()
                .map(|(name, r)| {
                    let (c, m) = item_code(&r);
                    let t = md
                        .as_ref()
                        .and_then(|md| md.topics.iter().find(|t| t.name == name));
                    let mut out = create_topics_response::CreatableTopicResult::default()
                        .with_name(tn(&name))
                        .with_error_code(c)
                        .with_error_message(m.map(|m| sb(&m)));
                    if let (Some(t), true) = (t, c == NONE && !req.validate_only) {
                        out = out
                            .with_topic_id(uuid::Uuid::from_bytes(t.id))
                            .with_num_partitions(t.partitions.len() as i32)
                            .with_replication_factor(
                                t.partitions.first().map_or(0, |p| p.replicas.len() as i16),
                            );
                    } else {
                        out = out.with_num_partitions(-1).with_replication_factor(-1);
                    }
                    out
                })
                .collect(),
        )
    }

    async fn create_partitions(
        &self,
        req: CreatePartitionsRequest,
        _v: i16,
    ) -> CreatePartitionsResponse {
        let asks: Vec<(String, i32)> = req
            .topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.count))
            .collect();
        let results = per_item(
            self.model.create_partitions(&asks).await,
            asks.iter().map(|a| a.0.clone()),
        );
        CreatePartitionsResponse::default().with_results(
            results
                .into_iter()
                .map(|(name, r)| {
                    let (c, m) = item_code(&r);
                    create_partitions_response::CreatePartitionsTopicResult::default()
                        .with_name(tn(&name))
                        .with_error_code(c)
                        .with_error_message(m.map(|m| sb(&m)))
                })
                .collect(),
        )
    }

    async fn delete_topics(&self, req: DeleteTopicsRequest, v: i16) -> DeleteTopicsResponse {
        let names: Vec<String> = if v >= 6 {
            let md = self.model.metadata().await.ok();
            req.topics
                .iter()
                .map(|t| match &t.name {
                    Some(n) => n.0.to_string(),
                    None => md
                        .as_ref()
                        .and_then(|md| {
                            md.topics
                                .iter()
                                .find(|x| uuid::Uuid::from_bytes(x.id) == t.topic_id)
                        })
                        .map(|x| x.name.clone())
                        .unwrap_or_default(),
                })
                .collect()
        } else {
            req.topic_names.iter().map(|n| n.0.to_string()).collect()
        };
        let results = per_item(
            self.model.delete_topics(&names).await,
            names.iter().cloned(),
        );
        DeleteTopicsResponse::default().with_responses(
            results
                .into_iter()
                .map(|(name, r)| {
                    let (c, m) = item_code(&r);
                    delete_topics_response::DeletableTopicResult::default()
                        .with_name(Some(tn(&name)))
                        .with_error_code(c)
                        .with_error_message(m.map(|m| sb(&m)))
                })
                .collect(),
        )
    }

    async fn describe_configs(
        &self,
        req: DescribeConfigsRequest,
        _v: i16,
    ) -> DescribeConfigsResponse {
        let mut results = Vec::new();
        for r in &req.resources {
            let out = describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let resource = match resource(r.resource_type, &r.resource_name) {
                Ok(res) => res,
                Err((c, m)) => {
                    results.push(out.with_error_code(c).with_error_message(Some(sb(&m))));
                    continue;
                }
            };
            let keys: Vec<String> = r
                .configuration_keys
                .as_ref()
                .map(|ks| ks.iter().map(|k| k.to_string()).collect())
                .unwrap_or_default();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            match self.model.describe_configs_on(self.id, &resource, &keys) {
                Err(e) => {
                    let (c, m) = code(&e);
                    results.push(out.with_error_code(c).with_error_message(m.map(|m| sb(&m))));
                }
                Ok(entries) => results.push(
                    out.with_configs(
                        entries
                            .iter()
                            .map(|e| {
                                describe_configs_response::DescribeConfigsResourceResult::default()
                                    .with_name(sb(&e.name))
                                    .with_value(e.value.as_deref().map(sb))
                                    .with_read_only(e.read_only)
                                    .with_is_sensitive(e.sensitive)
                                    .with_config_source(e.source.code())
                                    .with_synonyms(if req.include_synonyms {
                                        e.synonyms
                                            .iter()
                                            .map(|s| {
                                                describe_configs_response::DescribeConfigsSynonym::default()
                                                    .with_name(sb(&s.name))
                                                    .with_value(s.value.as_deref().map(sb))
                                                    .with_source(s.source.code())
                                            })
                                            .collect()
                                    } else {
                                        Vec::new()
                                    })
                            })
                            .collect(),
                    ),
                ),
            }
        }
        DescribeConfigsResponse::default().with_results(results)
    }

    async fn alter_configs(
        &self,
        req: IncrementalAlterConfigsRequest,
        _v: i16,
    ) -> IncrementalAlterConfigsResponse {
        let mut responses = Vec::new();
        for r in &req.resources {
            let out = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let res = resource(r.resource_type, &r.resource_name).and_then(|res| {
                let ops = r
                    .configs
                    .iter()
                    .map(|c| {
                        let name = c.name.to_string();
                        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                        Ok(match c.config_operation {
                            0 => AlterConfigOp::Set(name, value),
                            1 => AlterConfigOp::Delete(name),
                            2 => AlterConfigOp::Append(name, value),
                            3 => AlterConfigOp::Subtract(name, value),
                            op => {
                                return Err((
                                    INVALID_REQUEST,
                                    format!("unknown config operation {op}"),
                                ))
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((res, ops))
            });
            let res = match res {
                Err(e) => Err(e),
                Ok(_) if req.validate_only => Ok(()),
                Ok((res, ops)) => self
                    .model
                    .alter_configs_on(self.id, &res, &ops)
                    .map_err(|e| {
                        let (c, m) = code(&e);
                        (c, m.unwrap_or_default())
                    }),
            };
            responses.push(match res {
                Ok(()) => out,
                Err((c, m)) => out.with_error_code(c).with_error_message(Some(sb(&m))),
            });
        }
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }

    async fn alter_reassignments(
        &self,
        req: AlterPartitionReassignmentsRequest,
        v: i16,
    ) -> AlterPartitionReassignmentsResponse {
        let targets: Vec<(TopicPartition, Option<Vec<i32>>)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                    )
                })
            })
            .collect();
        // Before v1 (KIP-860) the broker allowed any replication factor.
        let allow = v < 1 || req.allow_replication_factor_change;
        let results = match self.model.alter_reassignments(&targets, allow).await {
            Err(e) => {
                let (c, m) = code(&e);
                return AlterPartitionReassignmentsResponse::default()
                    .with_error_code(c)
                    .with_error_message(m.map(|m| sb(&m)));
            }
            Ok(r) => r,
        };
        let mut responses: Vec<alter_partition_reassignments_response::ReassignableTopicResponse> =
            Vec::new();
        for (tp, r) in results {
            let (c, m) = item_code(&r);
            let p =
                alter_partition_reassignments_response::ReassignablePartitionResponse::default()
                    .with_partition_index(tp.partition)
                    .with_error_code(c)
                    .with_error_message(m.map(|m| sb(&m)));
            match responses.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                Some(t) => t.partitions.push(p),
                None => responses.push(
                    alter_partition_reassignments_response::ReassignableTopicResponse::default()
                        .with_name(tn(&tp.topic))
                        .with_partitions(vec![p]),
                ),
            }
        }
        AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow)
            .with_responses(responses)
    }

    async fn list_reassignments(
        &self,
        req: ListPartitionReassignmentsRequest,
        _v: i16,
    ) -> ListPartitionReassignmentsResponse {
        let asked: Vec<TopicPartition> = req
            .topics
            .iter()
            .flatten()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| TopicPartition::new(t.name.0.to_string(), *p))
            })
            .collect();
        match self.model.list_reassignments(&asked).await {
            Err(e) => {
                let (c, m) = code(&e);
                ListPartitionReassignmentsResponse::default()
                    .with_error_code(c)
                    .with_error_message(m.map(|m| sb(&m)))
            }
            Ok(rs) => {
                let mut topics: Vec<
                    list_partition_reassignments_response::OngoingTopicReassignment,
                > = Vec::new();
                for r in rs {
                    let p = list_partition_reassignments_response::OngoingPartitionReassignment::default()
                        .with_partition_index(r.partition)
                        .with_replicas(ids(&r.replicas))
                        .with_adding_replicas(ids(&r.adding))
                        .with_removing_replicas(ids(&r.removing));
                    match topics.iter_mut().find(|t| t.name.0.as_str() == r.topic) {
                        Some(t) => t.partitions.push(p),
                        None => topics.push(
                            list_partition_reassignments_response::OngoingTopicReassignment::default()
                                .with_name(tn(&r.topic))
                                .with_partitions(vec![p]),
                        ),
                    }
                }
                ListPartitionReassignmentsResponse::default().with_topics(topics)
            }
        }
    }

    async fn describe_log_dirs(
        &self,
        req: DescribeLogDirsRequest,
        _v: i16,
    ) -> DescribeLogDirsResponse {
        let dirs = match self.model.describe_log_dirs_on(self.id) {
            Ok(d) => d,
            Err(e) => return DescribeLogDirsResponse::default().with_error_code(code(&e).0),
        };
        let wanted = |t: &str, p: i32| match &req.topics {
            None => true,
            Some(ts) => ts
                .iter()
                .any(|x| x.topic.0.as_str() == t && x.partitions.contains(&p)),
        };
        DescribeLogDirsResponse::default().with_results(
            dirs.iter()
                .map(|d| {
                    let mut topics: Vec<describe_log_dirs_response::DescribeLogDirsTopic> =
                        Vec::new();
                    for r in d.replicas.iter().filter(|r| wanted(&r.topic, r.partition)) {
                        let p = describe_log_dirs_response::DescribeLogDirsPartition::default()
                            .with_partition_index(r.partition)
                            .with_partition_size(r.size_bytes)
                            .with_offset_lag(r.offset_lag)
                            .with_is_future_key(r.is_future);
                        match topics.iter_mut().find(|t| t.name.0.as_str() == r.topic) {
                            Some(t) => t.partitions.push(p),
                            None => topics.push(
                                describe_log_dirs_response::DescribeLogDirsTopic::default()
                                    .with_name(tn(&r.topic))
                                    .with_partitions(vec![p]),
                            ),
                        }
                    }
                    describe_log_dirs_response::DescribeLogDirsResult::default()
                        .with_error_code(if d.error.is_some() { 56 } else { NONE })
                        .with_log_dir(sb(&d.path))
                        .with_topics(topics)
                        .with_total_bytes(d.total_bytes.unwrap_or(-1))
                        .with_usable_bytes(d.usable_bytes.unwrap_or(-1))
                })
                .collect(),
        )
    }

    async fn alter_log_dirs(
        &self,
        req: AlterReplicaLogDirsRequest,
        _v: i16,
    ) -> AlterReplicaLogDirsResponse {
        let moves: Vec<(TopicPartition, String)> = req
            .dirs
            .iter()
            .flat_map(|d| {
                d.topics.iter().flat_map(move |t| {
                    t.partitions.iter().map(move |p| {
                        (
                            TopicPartition::new(t.name.0.to_string(), *p),
                            d.path.to_string(),
                        )
                    })
                })
            })
            .collect();
        let results = match self.model.alter_replica_log_dirs(self.id, &moves).await {
            Ok(r) => r,
            Err(e) => moves
                .iter()
                .map(|(tp, _)| {
                    (
                        tp.clone(),
                        Err(KafkaError::Refused {
                            api: "AlterReplicaLogDirs",
                            resource: tp.to_string(),
                            reason: e.to_string(),
                        }),
                    )
                })
                .collect(),
        };
        let mut out: Vec<alter_replica_log_dirs_response::AlterReplicaLogDirTopicResult> =
            Vec::new();
        for (tp, r) in results {
            let c = match &r {
                Ok(LogDirMove::MoveStarted) => NONE,
                // Kafka's answer for a replica the broker does not hold yet.
                Ok(LogDirMove::PreferenceRecorded) => 9,
                Err(e) => code(e).0,
            };
            let p = alter_replica_log_dirs_response::AlterReplicaLogDirPartitionResult::default()
                .with_partition_index(tp.partition)
                .with_error_code(c);
            match out.iter_mut().find(|t| t.topic_name.0.as_str() == tp.topic) {
                Some(t) => t.partitions.push(p),
                None => out.push(
                    alter_replica_log_dirs_response::AlterReplicaLogDirTopicResult::default()
                        .with_topic_name(tn(&tp.topic))
                        .with_partitions(vec![p]),
                ),
            }
        }
        AlterReplicaLogDirsResponse::default().with_results(out)
    }

    async fn elect_leaders(&self, req: ElectLeadersRequest, _v: i16) -> ElectLeadersResponse {
        let tps: Vec<TopicPartition> = match &req.topic_partitions {
            Some(ts) => ts
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
                })
                .collect(),
            None => match self.model.metadata().await {
                Ok(md) => md
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| TopicPartition::new(t.name.clone(), p.partition))
                    })
                    .collect(),
                Err(e) => return ElectLeadersResponse::default().with_error_code(code(&e).0),
            },
        };
        if req.election_type != 0 {
            // Unclean elections are not modelled.
            return ElectLeadersResponse::default().with_error_code(INVALID_REQUEST);
        }
        let results = match self.model.elect_preferred_leaders(&tps).await {
            Ok(r) => r,
            Err(e) => return ElectLeadersResponse::default().with_error_code(code(&e).0),
        };
        let mut out: Vec<elect_leaders_response::ReplicaElectionResult> = Vec::new();
        for (tp, r) in results {
            let (c, m) = match &r {
                Ok(Election::Elected) => (NONE, None),
                Ok(Election::NotNeeded) => (84, None),
                Err(e) => code(e),
            };
            let p = elect_leaders_response::PartitionResult::default()
                .with_partition_id(tp.partition)
                .with_error_code(c)
                .with_error_message(m.map(|m| sb(&m)));
            match out.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
                Some(t) => t.partition_result.push(p),
                None => out.push(
                    elect_leaders_response::ReplicaElectionResult::default()
                        .with_topic(tn(&tp.topic))
                        .with_partition_result(vec![p]),
                ),
            }
        }
        ElectLeadersResponse::default().with_replica_election_results(out)
    }

    async fn describe_quotas(
        &self,
        req: DescribeClientQuotasRequest,
        _v: i16,
    ) -> DescribeClientQuotasResponse {
        let mut comps = Vec::new();
        for c in &req.components {
            let m = match (c.match_type, &c._match) {
                (0, Some(n)) => QuotaMatch::Exact(n.to_string()),
                (1, _) => QuotaMatch::Default,
                (2, _) => QuotaMatch::Any,
                _ => {
                    return DescribeClientQuotasResponse::default()
                        .with_error_code(INVALID_REQUEST)
                        .with_error_message(Some(sb("a match type needs its name")))
                }
            };
            comps.push((c.entity_type.to_string(), m));
        }
        match self.model.describe_client_quotas(&comps, req.strict).await {
            Err(e) => {
                let (c, m) = code(&e);
                DescribeClientQuotasResponse::default()
                    .with_error_code(c)
                    .with_error_message(m.map(|m| sb(&m)))
            }
            Ok(entries) => DescribeClientQuotasResponse::default().with_entries(Some(
                entries
                    .iter()
                    .map(|q| {
                        describe_client_quotas_response::EntryData::default()
                            .with_entity(
                                q.entity
                                    .0
                                    .iter()
                                    .map(|(t, n)| {
                                        describe_client_quotas_response::EntityData::default()
                                            .with_entity_type(sb(t))
                                            .with_entity_name(n.as_deref().map(sb))
                                    })
                                    .collect(),
                            )
                            .with_values(
                                q.values
                                    .iter()
                                    .map(|(k, v)| {
                                        describe_client_quotas_response::ValueData::default()
                                            .with_key(sb(k))
                                            .with_value(*v)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )),
        }
    }

    async fn alter_quotas(
        &self,
        req: AlterClientQuotasRequest,
        _v: i16,
    ) -> AlterClientQuotasResponse {
        let changes: Vec<QuotaChange> = req
            .entries
            .iter()
            .map(|e| {
                (
                    QuotaEntity(
                        e.entity
                            .iter()
                            .map(|x| {
                                (
                                    x.entity_type.to_string(),
                                    x.entity_name.as_ref().map(|n| n.to_string()),
                                )
                            })
                            .collect(),
                    ),
                    e.ops
                        .iter()
                        .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
                        .collect(),
                )
            })
            .collect();
        let results: Vec<(QuotaEntity, Result<(), KafkaError>)> = if req.validate_only {
            changes.iter().map(|c| (c.0.clone(), Ok(()))).collect()
        } else {
            match self.model.alter_client_quotas(&changes).await {
                Ok(r) => r,
                Err(e) => changes
                    .iter()
                    .map(|c| {
                        (
                            c.0.clone(),
                            Err(KafkaError::Refused {
                                api: "AlterClientQuotas",
                                resource: String::new(),
                                reason: e.to_string(),
                            }),
                        )
                    })
                    .collect(),
            }
        };
        AlterClientQuotasResponse::default().with_entries(
            results
                .into_iter()
                .map(|(entity, r)| {
                    let (c, m) = item_code(&r);
                    alter_client_quotas_response::EntryData::default()
                        .with_error_code(c)
                        .with_error_message(m.map(|m| sb(&m)))
                        .with_entity(
                            entity
                                .0
                                .iter()
                                .map(|(t, n)| {
                                    alter_client_quotas_response::EntityData::default()
                                        .with_entity_type(sb(t))
                                        .with_entity_name(n.as_deref().map(sb))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    async fn list_offsets(&self, req: ListOffsetsRequest, _v: i16) -> ListOffsetsResponse {
        let md = self.model.metadata().await.ok();
        let leader = |tp: &TopicPartition| {
            md.as_ref()?
                .topics
                .iter()
                .find(|t| t.name == tp.topic)?
                .partitions
                .iter()
                .find(|p| p.partition == tp.partition)
                .map(|p| (p.leader, p.leader_epoch))
        };
        let mut topics = Vec::new();
        for t in &req.topics {
            let mut parts = Vec::new();
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                let out = list_offsets_response::ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let spec = match p.timestamp {
                    -2 => Some(OffsetSpec::Earliest),
                    -1 => Some(OffsetSpec::Latest),
                    _ => None,
                };
                let r = match (leader(&tp), spec) {
                    (None, _) => out.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                    (Some((l, _)), _) if l != self.id => {
                        out.with_error_code(NOT_LEADER_OR_FOLLOWER)
                    }
                    // Timestamp lookups are not modelled (no record times).
                    (Some(_), None) => out.with_error_code(UNSUPPORTED_VERSION),
                    (Some((_, epoch)), Some(spec)) => {
                        match self
                            .model
                            .list_offsets(std::slice::from_ref(&tp), spec)
                            .await
                        {
                            Ok(mut r) => match r.pop().map(|x| x.1) {
                                Some(Ok(o)) => out.with_offset(o).with_leader_epoch(epoch),
                                Some(Err(e)) => out.with_error_code(code(&e).0),
                                None => out.with_error_code(UNKNOWN_SERVER_ERROR),
                            },
                            Err(e) => out.with_error_code(code(&e).0),
                        }
                    }
                };
                parts.push(r);
            }
            topics.push(
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts),
            );
        }
        ListOffsetsResponse::default().with_topics(topics)
    }

    /// The group's coordinator: one of the live brokers, by the group id's
    /// hash (Kafka hashes it onto a `__consumer_offsets` partition).
    fn coordinator_of(&self, group: &str) -> Option<i32> {
        let alive = self.model.alive_brokers();
        if alive.is_empty() {
            return None;
        }
        let h = group.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
        Some(alive[h as usize % alive.len()])
    }

    async fn find_coordinator(
        &self,
        req: FindCoordinatorRequest,
        v: i16,
    ) -> FindCoordinatorResponse {
        let md = self.model.metadata().await.ok();
        let addr = |id: i32| {
            md.as_ref()
                .and_then(|m| m.brokers.iter().find(|b| b.id == id))
                .map(|b| (b.host.clone(), b.port))
        };
        let answer = |key: &str| -> (i16, i32, String, i32) {
            if req.key_type != 0 {
                return (INVALID_REQUEST, -1, String::new(), -1); // transactions: not modelled
            }
            match self
                .coordinator_of(key)
                .and_then(|id| addr(id).map(|a| (id, a)))
            {
                Some((id, (host, port))) => (NONE, id, host, port),
                None => (15, -1, String::new(), -1), // COORDINATOR_NOT_AVAILABLE
            }
        };
        if v >= 4 {
            FindCoordinatorResponse::default().with_coordinators(
                req.coordinator_keys
                    .iter()
                    .map(|k| {
                        let (c, id, host, port) = answer(k);
                        find_coordinator_response::Coordinator::default()
                            .with_key(k.clone())
                            .with_error_code(c)
                            .with_node_id(BrokerId(id))
                            .with_host(sb(&host))
                            .with_port(port)
                    })
                    .collect(),
            )
        } else {
            let (c, id, host, port) = answer(&req.key);
            FindCoordinatorResponse::default()
                .with_error_code(c)
                .with_node_id(BrokerId(id))
                .with_host(sb(&host))
                .with_port(port)
        }
    }

    async fn list_groups(&self, req: ListGroupsRequest, _v: i16) -> ListGroupsResponse {
        match self.model.list_groups().await {
            Err(e) => ListGroupsResponse::default().with_error_code(code(&e).0),
            Ok(gs) => ListGroupsResponse::default().with_groups(
                gs.iter()
                    .filter(|g| self.coordinator_of(&g.group_id) == Some(self.id))
                    .filter(|g| {
                        req.states_filter.is_empty()
                            || req.states_filter.iter().any(|s| s.as_str() == g.state)
                    })
                    .map(|g| {
                        list_groups_response::ListedGroup::default()
                            .with_group_id(GroupId(sb(&g.group_id)))
                            .with_protocol_type(sb(&g.protocol_type))
                            .with_group_state(sb(&g.state))
                            .with_group_type(sb("classic"))
                    })
                    .collect(),
            ),
        }
    }

    async fn describe_groups(&self, req: DescribeGroupsRequest, _v: i16) -> DescribeGroupsResponse {
        let mut groups = Vec::new();
        for g in &req.groups {
            let id = g.0.to_string();
            let out = describe_groups_response::DescribedGroup::default().with_group_id(g.clone());
            if self.coordinator_of(&id) != Some(self.id) {
                groups.push(out.with_error_code(NOT_COORDINATOR));
                continue;
            }
            groups.push(match self.model.describe_group(&id).await {
                Err(e) => out.with_error_code(code(&e).0),
                Ok(d) => out
                    .with_group_state(sb(&d.state))
                    .with_protocol_type(sb(&d.protocol_type))
                    .with_protocol_data(sb(&d.protocol))
                    .with_members(
                        d.members
                            .iter()
                            .map(|m| {
                                describe_groups_response::DescribedGroupMember::default()
                                    .with_member_id(sb(&m.member_id))
                                    .with_client_id(sb(&m.client_id))
                                    .with_client_host(sb(&m.client_host))
                            })
                            .collect(),
                    ),
            });
        }
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// Every committed offset of the group, or the partitions asked (-1
    /// for one with no commit, as Kafka answers); `NOT_COORDINATOR` on a
    /// broker that does not coordinate it.
    async fn offset_rows(
        &self,
        group: &str,
        asked: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, Vec<(i32, i64)>)>, i16> {
        if self.coordinator_of(group) != Some(self.id) {
            return Err(NOT_COORDINATOR);
        }
        let committed = self
            .model
            .committed_offsets(group)
            .await
            .map_err(|e| code(&e).0)?;
        let mut out: Vec<(String, Vec<(i32, i64)>)> = Vec::new();
        let mut push = |t: &str, p: i32, o: i64| match out.iter_mut().find(|x| x.0 == t) {
            Some(x) => x.1.push((p, o)),
            None => out.push((t.to_string(), vec![(p, o)])),
        };
        match asked {
            None => committed
                .iter()
                .for_each(|(tp, o)| push(&tp.topic, tp.partition, *o)),
            Some(ts) => {
                for (t, ps) in ts {
                    for p in ps {
                        let o = committed
                            .iter()
                            .find(|(tp, _)| tp.topic == t && tp.partition == p)
                            .map_or(-1, |x| x.1);
                        push(&t, p, o);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn offset_fetch(&self, req: OffsetFetchRequest, v: i16) -> OffsetFetchResponse {
        if v >= 8 {
            let mut groups = Vec::new();
            for g in &req.groups {
                let asked = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let out = offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone());
                groups.push(match self.offset_rows(&g.group_id, asked).await {
                    Err(c) => out.with_error_code(c),
                    Ok(rows) => out.with_topics(
                        rows.into_iter()
                            .map(|(t, ps)| {
                                offset_fetch_response::OffsetFetchResponseTopics::default()
                                    .with_name(tn(&t))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, o)| {
                                                offset_fetch_response::OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(o)
                                                    .with_committed_leader_epoch(-1)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                });
            }
            OffsetFetchResponse::default().with_groups(groups)
        } else {
            let asked = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            match self.offset_rows(&req.group_id, asked).await {
                Err(c) => OffsetFetchResponse::default().with_error_code(c),
                Ok(rows) => OffsetFetchResponse::default().with_topics(
                    rows.into_iter()
                        .map(|(t, ps)| {
                            offset_fetch_response::OffsetFetchResponseTopic::default()
                                .with_name(tn(&t))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, o)| {
                                            offset_fetch_response::OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(-1)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            }
        }
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn tn(s: &str) -> TopicName {
    TopicName(sb(s))
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|b| BrokerId(*b)).collect()
}

/// A config resource from the wire (type 2 topic, 4 broker; an empty
/// broker name is the cluster-wide default).
fn resource(kind: i8, name: &StrBytes) -> Result<ConfigResource, (i16, String)> {
    match kind {
        2 => Ok(ConfigResource::Topic(name.to_string())),
        4 if name.is_empty() => Ok(ConfigResource::BrokerDefault),
        4 => name.parse().map(ConfigResource::Broker).map_err(|_| {
            (
                INVALID_REQUEST,
                format!("broker id {name:?} is not a number"),
            )
        }),
        k => Err((INVALID_REQUEST, format!("resource type {k} is not served"))),
    }
}

/// The Kafka error code of an error, and its message.
fn code(e: &KafkaError) -> (i16, Option<String>) {
    match e {
        KafkaError::Kafka { code, resource, .. } => {
            // The model puts Kafka's message in parentheses after the resource.
            let msg = resource
                .find(" (")
                .map(|i| resource[i + 2..].trim_end_matches(')').to_string());
            (*code, msg)
        }
        KafkaError::UnknownBroker { .. } | KafkaError::Connect { .. } => {
            (BROKER_NOT_AVAILABLE, Some(e.to_string()))
        }
        KafkaError::Refused { reason, .. } => (INVALID_REQUEST, Some(reason.clone())),
        other => (UNKNOWN_SERVER_ERROR, Some(other.to_string())),
    }
}

fn item_code(r: &Result<(), KafkaError>) -> (i16, Option<String>) {
    match r {
        Ok(()) => (NONE, None),
        Err(e) => code(e),
    }
}

/// Per-item results, or the whole call's error for every item.
fn per_item(
    r: Result<PerItem<String, ()>, KafkaError>,
    names: impl Iterator<Item = String>,
) -> PerItem<String, ()> {
    match r {
        Ok(r) => r,
        Err(e) => {
            let (c, m) = code(&e);
            names
                .map(|n| {
                    (
                        n.clone(),
                        Err(KafkaError::Kafka {
                            api: "",
                            resource: format!("{n} ({})", m.clone().unwrap_or_default()),
                            code: c,
                            name: ResponseError::try_from_code(c)
                                .map_or_else(String::new, |e| e.to_string()),
                        }),
                    )
                })
                .collect()
        }
    }
}
