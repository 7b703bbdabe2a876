//! The replicated state and its deterministic apply, one applier per
//! domain (etcd's `apply` package is the model):
//!
//! - [`registry`]: clusters, brokers, tenants, pools, policies, issued ids;
//! - [`remote_log`]: tiered-storage metadata (KIP-405);
//! - [`load`]: the last hour of collected load;
//! - [`executions`]: the executor's durable procedures;
//! - [`governance`]: the event log and the governance loop's throttle claims;
//! - [`consumers`]: consumer scheduling's worker pools, workers, bindings
//!   and plans;
//! - [`requests`]: results kept for retried client requests (idempotent
//!   writes).
//!
//! Each domain owns its commands, its key variants, their encoding and
//! their loading; [`State::apply`] is a one-line dispatch per command, and
//! [`Key`], [`State::value_bytes`] and [`State::load_kv`] dispatch by
//! domain. [`keys`] holds the shared key pieces and the whole key table.
//!
//! Apply is pure: no clock (time comes from the log entry's `now_ms`), no
//! I/O, ordered maps only. It reports every [`Key`] it touched so the store
//! writes exactly those to RocksDB in the entry's batch.

pub mod consumers;
pub mod executions;
pub mod governance;
pub mod keys;
pub mod load;
pub mod registry;
pub mod remote_log;
pub mod requests;

use guardian_proto::domain::{Command, Request};

use crate::error::StoreError;
use crate::types::{CommandResponse, Rejection};
use consumers::{ConsKey, Consumers};
use executions::{ExecKey, Executions};
use governance::{GovKey, Governance};
use load::{LoadHistories, LoadKey};
use registry::{Registry, RegistryKey};
use remote_log::{RemoteLogState, RlKey};
use requests::{RequestKey, Requests};

/// A persisted item of the state (one RocksDB key in `sm_data`), by domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Registry(RegistryKey),
    RemoteLog(RlKey),
    Load(LoadKey),
    Request(RequestKey),
    Execution(ExecKey),
    Governance(GovKey),
    Consumers(ConsKey),
}

impl Key {
    /// The RocksDB key.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        match self {
            Key::Registry(k) => k.bytes(&mut out),
            Key::RemoteLog(k) => k.bytes(&mut out),
            Key::Load(k) => k.bytes(&mut out),
            Key::Request(k) => k.bytes(&mut out),
            Key::Execution(k) => k.bytes(&mut out),
            Key::Governance(k) => k.bytes(&mut out),
            Key::Consumers(k) => k.bytes(&mut out),
        }
        out
    }
}

/// The whole replicated state, one field per domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub registry: Registry,
    pub remote_log: RemoteLogState,
    pub load: LoadHistories,
    pub requests: Requests,
    pub executions: Executions,
    pub governance: Governance,
    pub consumers: Consumers,
}

impl State {
    /// Applies one request. A request carrying a client request id that
    /// already succeeded gets that result again and changes nothing.
    pub fn apply(&mut self, req: &Request, touched: &mut Vec<Key>) -> CommandResponse {
        if let Some(first) = req.id.as_ref().and_then(|id| self.requests.get(id)) {
            return first.clone();
        }
        let resp = self.apply_command(req, touched);
        if let Some(id) = req.id {
            self.requests.record(id, req.now_ms, &resp, touched);
        }
        resp
    }

    fn apply_command(&mut self, req: &Request, touched: &mut Vec<Key>) -> CommandResponse {
        if let Err(e) = req.command.validate() {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: e.field,
                reason: e.reason,
            });
        }
        let now = req.now_ms;
        let (reg, load) = (&mut self.registry, &mut self.load);
        match &req.command {
            Command::Batch(items) => {
                CommandResponse::Batch(items.iter().map(|i| self.apply(i, touched)).collect())
            }
            // Registry.
            Command::AddCluster(c) => reg.add_cluster(c, now, touched),
            Command::RemoveCluster { name } => {
                // Guardian's throttles on that cluster would be orphaned:
                // the governance loop lifts them first (every claim is
                // removed once the cluster has no registered broker).
                let claims = self.governance.claims_of(name).count();
                if claims > 0 && reg.clusters.contains_key(name) {
                    return CommandResponse::Rejected(Rejection::FailedPrecondition {
                        reason: format!(
                            "cluster {name:?} still holds {claims} Guardian throttle(s) on Kafka \
                             (guardian throttle list); they are lifted within a governance round \
                             once its brokers are removed, or with guardian throttle clear"
                        ),
                    });
                }
                let r = reg.remove_cluster(name, touched);
                if r == CommandResponse::Done {
                    self.executions.forget_controls(name, touched);
                }
                r
            }
            Command::AddBroker(b) => reg.add_broker(b, now, touched),
            Command::DiscoverCluster {
                cluster,
                kafka_cluster_id,
                brokers,
            } => reg.discover(cluster, kafka_cluster_id, brokers, now, touched),
            Command::RemoveBroker { cluster, broker_id } => {
                reg.remove_broker(cluster, *broker_id, load, touched)
            }
            Command::CreateTenant(t) => reg.create_tenant(t, now, touched),
            Command::DeleteTenant { name } => reg.delete_tenant(name, touched),
            Command::AssignPool {
                tenant,
                cluster,
                broker_ids,
            } => reg.assign_pool(tenant, cluster, broker_ids, touched),
            Command::ReleasePool {
                tenant,
                cluster,
                broker_ids,
            } => reg.release_pool(tenant, cluster, broker_ids, touched),
            Command::SetPolicy(p) => reg.set_policy(p, touched),
            Command::RemovePolicy { cluster, topic } => {
                reg.remove_policy(cluster, topic.as_deref(), touched)
            }
            Command::AllocateIds { kind, ids } => reg.allocate_ids(*kind, ids, touched),
            // Remote log.
            Command::RemoteLog(events) => self.remote_log.apply_events(events, touched),
            Command::TrackPartitions {
                broker_id,
                partitions,
            } => self.remote_log.track(*broker_id, partitions, touched),
            Command::UntrackPartitions {
                broker_id,
                partitions,
            } => self.remote_log.untrack(*broker_id, partitions, touched),
            // Load history.
            Command::RecordLoad { bucket, brokers } => {
                load.record_load(reg, *bucket, brokers, touched)
            }
            Command::RecordPartitionLoad { slot, brokers } => {
                load.record_partition_load(reg, *slot, brokers, touched)
            }
            // Executions.
            Command::Execution(c) => self.executions.apply(reg, c, now, touched),
            // Governance.
            Command::Governance(c) => self.governance.apply(c, now, touched),
            // Consumer scheduling.
            Command::Consumers(c) => self.consumers.apply(reg, c, now, touched),
        }
    }

    /// The current value of `k`, encoded; `None` if it no longer exists.
    pub fn value_bytes(&self, k: &Key) -> Option<Vec<u8>> {
        match k {
            Key::Registry(k) => self.registry.value_bytes(k),
            Key::RemoteLog(k) => self.remote_log.value_bytes(k),
            Key::Load(k) => self.load.value_bytes(k),
            Key::Request(k) => self.requests.value_bytes(k),
            Key::Execution(k) => self.executions.value_bytes(k),
            Key::Governance(k) => self.governance.value_bytes(k),
            Key::Consumers(k) => self.consumers.value_bytes(k),
        }
    }

    /// Loads one stored key/value pair (at open, and when a snapshot is
    /// installed). Keys arrive in RocksDB order.
    pub fn load_kv(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let tag: &[u8; 2] = k
            .get(..2)
            .and_then(|t| t.try_into().ok())
            .ok_or_else(|| StoreError::bad_record(k, "no tag"))?;
        if registry::TAGS.contains(&tag) {
            self.registry.load_kv(k, v)
        } else if remote_log::TAGS.contains(&tag) {
            self.remote_log.load_kv(k, v)
        } else if load::TAGS.contains(&tag) {
            self.load.load_kv(k, v)
        } else if requests::TAGS.contains(&tag) {
            self.requests.load_kv(k, v)
        } else if executions::TAGS.contains(&tag) {
            self.executions.load_kv(k, v)
        } else if governance::TAGS.contains(&tag) {
            self.governance.load_kv(k, v)
        } else if consumers::TAGS.contains(&tag) {
            self.consumers.load_kv(k, v)
        } else {
            Err(StoreError::bad_record(k, "unknown tag"))
        }
    }
}
