//! Registry resources and replicated commands.

use super::remote_log as rl;
use super::{non_empty, required, ConvError};
use crate::domain::{self, Command, IdKind, InvalidField, KafkaUuid};
use crate::pb;
use crate::pb::request::Command as PbCmd;

impl From<domain::LogDir> for pb::LogDir {
    fn from(d: domain::LogDir) -> Self {
        pb::LogDir {
            path: d.path,
            capacity_bytes: d.capacity_bytes,
        }
    }
}

impl From<pb::LogDir> for domain::LogDir {
    fn from(d: pb::LogDir) -> Self {
        domain::LogDir {
            path: d.path,
            capacity_bytes: d.capacity_bytes,
        }
    }
}

impl From<domain::Cluster> for pb::Cluster {
    fn from(c: domain::Cluster) -> Self {
        pb::Cluster {
            id: c.id,
            name: c.name,
            bootstrap_servers: c.bootstrap_servers,
            idc: c.idc,
            kafka_cluster_id: c.kafka_cluster_id.unwrap_or_default(),
            created_at_ms: c.created_at_ms,
        }
    }
}

impl From<pb::Cluster> for domain::Cluster {
    fn from(c: pb::Cluster) -> Self {
        domain::Cluster {
            id: c.id,
            name: c.name,
            bootstrap_servers: c.bootstrap_servers,
            idc: c.idc,
            kafka_cluster_id: non_empty(c.kafka_cluster_id),
            created_at_ms: c.created_at_ms,
        }
    }
}

impl From<domain::Broker> for pb::Broker {
    fn from(b: domain::Broker) -> Self {
        pb::Broker {
            cluster: b.cluster,
            broker_id: b.broker_id,
            host: b.host,
            rack: b.rack,
            idc: b.idc,
            reporter_endpoint: b.reporter_endpoint,
            log_dirs: b.log_dirs.into_iter().map(Into::into).collect(),
            nic_bytes_per_sec: b.nic_bytes_per_sec,
            cpu_cores: b.cpu_cores,
            pool: b.pool.unwrap_or_default(),
            registered_at_ms: b.registered_at_ms,
        }
    }
}

impl From<pb::Broker> for domain::Broker {
    fn from(b: pb::Broker) -> Self {
        domain::Broker {
            cluster: b.cluster,
            broker_id: b.broker_id,
            host: b.host,
            rack: b.rack,
            idc: b.idc,
            reporter_endpoint: b.reporter_endpoint,
            log_dirs: b.log_dirs.into_iter().map(Into::into).collect(),
            nic_bytes_per_sec: b.nic_bytes_per_sec,
            cpu_cores: b.cpu_cores,
            pool: non_empty(b.pool),
            registered_at_ms: b.registered_at_ms,
        }
    }
}

impl From<domain::Tenant> for pb::Tenant {
    fn from(t: domain::Tenant) -> Self {
        pb::Tenant {
            name: t.name,
            description: t.description,
            created_at_ms: t.created_at_ms,
        }
    }
}

impl From<pb::Tenant> for domain::Tenant {
    fn from(t: pb::Tenant) -> Self {
        domain::Tenant {
            name: t.name,
            description: t.description,
            created_at_ms: t.created_at_ms,
        }
    }
}

impl From<domain::PlacementPolicy> for pb::PlacementPolicy {
    fn from(p: domain::PlacementPolicy) -> Self {
        pb::PlacementPolicy {
            cluster: p.cluster,
            topic: p.topic.unwrap_or_default(),
            allowed_idcs: p.allowed_idcs,
            allowed_racks: p.allowed_racks,
            replicas_per_idc: p.replicas_per_idc.into_iter().collect(),
        }
    }
}

impl From<pb::PlacementPolicy> for domain::PlacementPolicy {
    fn from(p: pb::PlacementPolicy) -> Self {
        domain::PlacementPolicy {
            cluster: p.cluster,
            topic: non_empty(p.topic),
            allowed_idcs: p.allowed_idcs,
            allowed_racks: p.allowed_racks,
            replicas_per_idc: p.replicas_per_idc.into_iter().collect(),
        }
    }
}

impl From<IdKind> for pb::IdKind {
    fn from(k: IdKind) -> Self {
        match k {
            IdKind::Topic => pb::IdKind::Topic,
            IdKind::Segment => pb::IdKind::Segment,
        }
    }
}

/// Decodes the `kind` enum field; unspecified or unknown values are errors.
pub fn id_kind_from_pb(value: i32, field: &'static str) -> Result<IdKind, ConvError> {
    match pb::IdKind::try_from(value) {
        Ok(pb::IdKind::Topic) => Ok(IdKind::Topic),
        Ok(pb::IdKind::Segment) => Ok(IdKind::Segment),
        Ok(pb::IdKind::Unspecified) => Err(ConvError::MissingField { field }),
        Err(_) => Err(InvalidField::new(field, format!("unknown id kind {value}")).into()),
    }
}

/// 16 raw bytes → [`KafkaUuid`].
pub fn uuid_from_bytes(b: &[u8], field: &'static str) -> Result<KafkaUuid, ConvError> {
    let arr: [u8; 16] = b
        .try_into()
        .map_err(|_| InvalidField::new(field, format!("{} bytes, expected 16", b.len())))?;
    Ok(KafkaUuid(arr))
}

impl From<domain::Request> for pb::Request {
    fn from(r: domain::Request) -> Self {
        let command = match r.command {
            Command::AddCluster(c) => PbCmd::AddCluster(pb::AddClusterCmd {
                cluster: Some(c.into()),
            }),
            Command::RemoveCluster { name } => PbCmd::RemoveCluster(pb::RemoveClusterCmd { name }),
            Command::AddBroker(b) => PbCmd::AddBroker(pb::AddBrokerCmd {
                broker: Some(b.into()),
            }),
            Command::RemoveBroker { cluster, broker_id } => {
                PbCmd::RemoveBroker(pb::RemoveBrokerCmd { cluster, broker_id })
            }
            Command::Execution(c) => PbCmd::Execution(pb::ExecutionCmd {
                json: serde_json::to_vec(&c).expect("executor commands serialize"),
            }),
            Command::Governance(c) => PbCmd::Governance(pb::GovernanceCmd {
                json: serde_json::to_vec(&c).expect("governance commands serialize"),
            }),
            Command::Consumers(c) => PbCmd::Consumers(pb::ConsumersCmd {
                json: serde_json::to_vec(&c).expect("consumer commands serialize"),
            }),
            Command::DiscoverCluster {
                cluster,
                kafka_cluster_id,
                brokers,
            } => PbCmd::DiscoverCluster(pb::DiscoverClusterCmd {
                cluster,
                kafka_cluster_id,
                brokers: brokers
                    .into_iter()
                    .map(|b| pb::DiscoveredBroker {
                        broker_id: b.broker_id,
                        host: b.host,
                        rack: b.rack,
                        log_dirs: b.log_dirs.into_iter().map(Into::into).collect(),
                    })
                    .collect(),
            }),
            Command::CreateTenant(t) => PbCmd::CreateTenant(pb::CreateTenantCmd {
                tenant: Some(t.into()),
            }),
            Command::DeleteTenant { name } => PbCmd::DeleteTenant(pb::DeleteTenantCmd { name }),
            Command::AssignPool {
                tenant,
                cluster,
                broker_ids,
            } => PbCmd::AssignPool(pb::AssignPoolCmd {
                tenant,
                cluster,
                broker_ids,
            }),
            Command::ReleasePool {
                tenant,
                cluster,
                broker_ids,
            } => PbCmd::ReleasePool(pb::ReleasePoolCmd {
                tenant,
                cluster,
                broker_ids,
            }),
            Command::SetPolicy(p) => PbCmd::SetPolicy(pb::SetPolicyCmd {
                policy: Some(p.into()),
            }),
            Command::RemovePolicy { cluster, topic } => PbCmd::RemovePolicy(pb::RemovePolicyCmd {
                cluster,
                topic: topic.unwrap_or_default(),
            }),
            Command::AllocateIds { kind, ids } => PbCmd::AllocateIds(pb::AllocateIdsCmd {
                kind: pb::IdKind::from(kind) as i32,
                ids: ids.into_iter().map(|u| u.0.to_vec()).collect(),
            }),
            Command::Batch(items) => PbCmd::Batch(pb::BatchCmd {
                items: items.into_iter().map(Into::into).collect(),
            }),
            Command::RemoteLog(events) => PbCmd::RemoteLog(pb::RemoteLogEventsCmd {
                events: events.iter().map(rl::event_to_pb).collect(),
            }),
            Command::TrackPartitions {
                broker_id,
                partitions,
            } => PbCmd::TrackPartitions(pb::TrackPartitionsCmd {
                broker_id,
                partitions: partitions.iter().map(rl::tracked_to_pb).collect(),
            }),
            Command::UntrackPartitions {
                broker_id,
                partitions,
            } => PbCmd::UntrackPartitions(pb::UntrackPartitionsCmd {
                broker_id,
                partitions: partitions.iter().map(rl::partition_to_pb).collect(),
            }),
            Command::RecordLoad { bucket, brokers } => PbCmd::RecordLoad(pb::RecordLoadCmd {
                bucket,
                brokers: brokers
                    .into_iter()
                    .map(|b| pb::BrokerLoadSample {
                        cluster: b.cluster,
                        broker_id: b.broker_id,
                        bytes_in: b.bytes_in,
                        cpu_ppm: b.cpu_ppm,
                        disks: b
                            .disks
                            .into_iter()
                            .map(|d| pb::DiskLoadSample {
                                path: d.path,
                                write: d.write,
                                read: d.read,
                                util_ppm: d.util_ppm,
                            })
                            .collect(),
                    })
                    .collect(),
            }),
            Command::RecordPartitionLoad { slot, brokers } => {
                PbCmd::RecordPartitionLoad(pb::RecordPartitionLoadCmd {
                    slot,
                    brokers: brokers
                        .into_iter()
                        .map(|b| pb::PartitionLoadSample {
                            cluster: b.cluster,
                            broker_id: b.broker_id,
                            partitions: b.partitions.map(Into::into),
                            bytes_in: b.bytes_in,
                        })
                        .collect(),
                })
            }
        };
        pb::Request {
            now_ms: r.now_ms,
            command: Some(command),
            client_id: r.id.map(|i| i.client.0.to_vec()).unwrap_or_default(),
            client_seq: r.id.map_or(0, |i| i.seq),
        }
    }
}

impl TryFrom<pb::Request> for domain::Request {
    type Error = ConvError;
    fn try_from(r: pb::Request) -> Result<Self, ConvError> {
        let command = match required(r.command, "request.command")? {
            PbCmd::AddCluster(c) => Command::AddCluster(required(c.cluster, "cluster")?.into()),
            PbCmd::RemoveCluster(c) => Command::RemoveCluster { name: c.name },
            PbCmd::AddBroker(c) => Command::AddBroker(required(c.broker, "broker")?.into()),
            PbCmd::RemoveBroker(c) => Command::RemoveBroker {
                cluster: c.cluster,
                broker_id: c.broker_id,
            },
            PbCmd::Execution(c) => {
                Command::Execution(Box::new(serde_json::from_slice(&c.json).map_err(|e| {
                    InvalidField::new("execution.json", format!("not an executor command: {e}"))
                })?))
            }
            PbCmd::Governance(c) => {
                Command::Governance(Box::new(serde_json::from_slice(&c.json).map_err(|e| {
                    InvalidField::new("governance.json", format!("not a governance command: {e}"))
                })?))
            }
            PbCmd::Consumers(c) => {
                Command::Consumers(Box::new(serde_json::from_slice(&c.json).map_err(|e| {
                    InvalidField::new("consumers.json", format!("not a consumers command: {e}"))
                })?))
            }
            PbCmd::DiscoverCluster(c) => Command::DiscoverCluster {
                cluster: c.cluster,
                kafka_cluster_id: c.kafka_cluster_id,
                brokers: c
                    .brokers
                    .into_iter()
                    .map(|b| domain::DiscoveredBroker {
                        broker_id: b.broker_id,
                        host: b.host,
                        rack: b.rack,
                        log_dirs: b.log_dirs.into_iter().map(Into::into).collect(),
                    })
                    .collect(),
            },
            PbCmd::CreateTenant(c) => Command::CreateTenant(required(c.tenant, "tenant")?.into()),
            PbCmd::DeleteTenant(c) => Command::DeleteTenant { name: c.name },
            PbCmd::AssignPool(c) => Command::AssignPool {
                tenant: c.tenant,
                cluster: c.cluster,
                broker_ids: c.broker_ids,
            },
            PbCmd::ReleasePool(c) => Command::ReleasePool {
                tenant: c.tenant,
                cluster: c.cluster,
                broker_ids: c.broker_ids,
            },
            PbCmd::SetPolicy(c) => Command::SetPolicy(required(c.policy, "policy")?.into()),
            PbCmd::RemovePolicy(c) => Command::RemovePolicy {
                cluster: c.cluster,
                topic: non_empty(c.topic),
            },
            PbCmd::AllocateIds(c) => Command::AllocateIds {
                kind: id_kind_from_pb(c.kind, "kind")?,
                ids: c
                    .ids
                    .iter()
                    .map(|b| uuid_from_bytes(b, "ids"))
                    .collect::<Result<_, _>>()?,
            },
            PbCmd::Batch(b) => Command::Batch(
                b.items
                    .into_iter()
                    .map(domain::Request::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            PbCmd::RemoteLog(c) => Command::RemoteLog(std::sync::Arc::new(rl::list_from_pb(
                c.events,
                "events",
                rl::event_from_pb,
            )?)),
            PbCmd::TrackPartitions(c) => Command::TrackPartitions {
                broker_id: c.broker_id,
                partitions: rl::list_from_pb(c.partitions, "partitions", rl::tracked_from_pb)?,
            },
            PbCmd::RecordLoad(c) => Command::RecordLoad {
                bucket: c.bucket,
                brokers: c
                    .brokers
                    .into_iter()
                    .map(|b| domain::BrokerLoadSample {
                        cluster: b.cluster,
                        broker_id: b.broker_id,
                        bytes_in: b.bytes_in,
                        cpu_ppm: b.cpu_ppm,
                        disks: b
                            .disks
                            .into_iter()
                            .map(|d| domain::DiskLoadSample {
                                path: d.path,
                                write: d.write,
                                read: d.read,
                                util_ppm: d.util_ppm,
                            })
                            .collect(),
                    })
                    .collect(),
            },
            PbCmd::RecordPartitionLoad(c) => Command::RecordPartitionLoad {
                slot: c.slot,
                brokers: c
                    .brokers
                    .into_iter()
                    .map(|b| domain::PartitionLoadSample {
                        cluster: b.cluster,
                        broker_id: b.broker_id,
                        partitions: b.partitions.map(Into::into),
                        bytes_in: b.bytes_in,
                    })
                    .collect(),
            },
            PbCmd::UntrackPartitions(c) => Command::UntrackPartitions {
                broker_id: c.broker_id,
                partitions: rl::list_from_pb(c.partitions, "partitions", |p, f| {
                    rl::partition_from_pb(Some(p), f)
                })?,
            },
        };
        let id = if r.client_id.is_empty() {
            None
        } else {
            Some(domain::RequestId {
                client: crate::conv::uuid_from_bytes(&r.client_id, "request.client_id")?,
                seq: r.client_seq,
            })
        };
        Ok(domain::Request::new(r.now_ms, command).with_id(id))
    }
}

impl domain::Request {
    /// The protobuf encoding of this request (made once, then shared).
    pub fn encoded(&self) -> bytes::Bytes {
        self.encoded
            .0
            .get_or_init(|| prost::Message::encode_to_vec(&pb::Request::from(self.clone())).into())
            .clone()
    }

    /// Decodes a request and keeps `bytes` as its encoding.
    pub fn decode_cached(bytes: bytes::Bytes) -> Result<domain::Request, ConvError> {
        let pb = <pb::Request as prost::Message>::decode(bytes.clone()).map_err(|e| {
            ConvError::Invalid(InvalidField::new("request", format!("undecodable: {e}")))
        })?;
        let req = domain::Request::try_from(pb)?;
        let _ = req.encoded.0.set(bytes);
        Ok(req)
    }
}

impl From<domain::PartitionList> for pb::PartitionList {
    fn from(l: domain::PartitionList) -> Self {
        pb::PartitionList {
            topics: l.topics,
            topic_index: l.topic_index,
            partition: l.partition,
            future: l.future,
        }
    }
}

impl From<pb::PartitionList> for domain::PartitionList {
    fn from(l: pb::PartitionList) -> Self {
        domain::PartitionList {
            topics: l.topics,
            topic_index: l.topic_index,
            partition: l.partition,
            future: l.future,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let req = domain::Request {
            encoded: Default::default(),
            id: Some(domain::RequestId {
                client: domain::KafkaUuid::from_random_bytes([7; 16]),
                seq: 9,
            }),
            now_ms: 42,
            command: Command::AddBroker(domain::Broker {
                cluster: "c1".into(),
                broker_id: 3,
                host: "b3".into(),
                rack: "r1".into(),
                idc: "east".into(),
                reporter_endpoint: "b3:9300".into(),
                log_dirs: vec![domain::LogDir {
                    path: "/data/1".into(),
                    capacity_bytes: 10,
                }],
                nic_bytes_per_sec: 1,
                cpu_cores: 8,
                pool: Some("t1".into()),
                registered_at_ms: 0,
            }),
        };
        let back = domain::Request::try_from(pb::Request::from(req.clone())).unwrap();
        assert_eq!(back, req);
        // A consumer plan (JSON inside the protobuf; integer map keys).
        let req = domain::Request::new(
            7,
            Command::Consumers(Box::new(crate::consumers::ConsumersCmd::Plan {
                epoch: 3,
                plans: vec![(
                    crate::consumers::BindingKey {
                        cluster: "c1".into(),
                        topic: "t".into(),
                        group: "g".into(),
                    },
                    [(0, "w1".to_string()), (11, "w2".to_string())].into(),
                )],
            })),
        );
        let back = domain::Request::try_from(pb::Request::from(req.clone())).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn missing_command_names_the_field() {
        let err = domain::Request::try_from(pb::Request {
            now_ms: 1,
            command: None,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field(), "request.command");
    }
}
