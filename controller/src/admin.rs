//! The `GuardianAdmin` gRPC service: thin handlers — authorize, convert,
//! call the [`Controller`], convert back.

use std::collections::BTreeMap;
use std::time::Duration;

use guardian_meta_store::{CommandResponse, GuardianNode};
use guardian_proto::conv::{id_kind_from_pb, required};
use guardian_proto::domain::{self, validate_endpoint, validate_name, Command};
use guardian_proto::pb;
use guardian_proto::pb::guardian_admin_server::GuardianAdmin;
use guardian_proto::pb::raft_peer_client::RaftPeerClient;
use tonic::{Request, Response, Status};

use crate::config::{AuthConfig, Role};
use crate::error::ApiError;
use crate::handle::{Controller, LocalStatus};

pub struct AdminService {
    ctl: Controller,
    auth: Auth,
    collector: std::sync::Arc<crate::collector::Collector>,
    /// For `RaftStatus` fan-out over the peers' raft ports.
    peer_token: Option<String>,
}

/// Bearer-token roles of the client-facing services.
#[derive(Clone)]
pub struct Auth {
    tokens: BTreeMap<String, Role>,
}

impl Auth {
    pub fn new(auth: &AuthConfig) -> Self {
        Self {
            tokens: auth
                .tokens
                .iter()
                .map(|t| (t.token.clone(), t.role))
                .collect(),
        }
    }

    /// Checks the bearer token (when auth is configured) against `need`.
    pub fn authorize<T>(
        &self,
        req: &Request<T>,
        need: Role,
        action: &'static str,
    ) -> Result<(), ApiError> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated)?;
        let role = *self.tokens.get(token).ok_or(ApiError::Unauthenticated)?;
        if role < need {
            return Err(ApiError::PermissionDenied {
                role: format!("{role:?}").to_lowercase(),
                action,
            });
        }
        Ok(())
    }
}

impl AdminService {
    pub fn new(
        ctl: Controller,
        auth: &AuthConfig,
        peer_token: Option<String>,
        collector: std::sync::Arc<crate::collector::Collector>,
    ) -> Self {
        Self {
            ctl,
            peer_token,
            auth: Auth::new(auth),
            collector,
        }
    }

    fn authorize<T>(
        &self,
        req: &Request<T>,
        need: Role,
        action: &'static str,
    ) -> Result<(), ApiError> {
        self.auth.authorize(req, need, action)
    }

    async fn write(&self, cmd: Command) -> Result<CommandResponse, Status> {
        Ok(self.ctl.write(cmd).await?)
    }

    /// Validates a cluster name, waits for a (non-stale) read barrier and
    /// returns the applied state, or `NOT_FOUND` if the cluster is unknown.
    async fn cluster_state(
        &self,
        cluster: &str,
        stale: bool,
    ) -> Result<std::sync::RwLockReadGuard<'_, guardian_meta_store::SmState>, ApiError> {
        validate_name("cluster", cluster)?;
        self.ctl.read_barrier(stale).await?;
        let st = self.ctl.state();
        if !st.registry.clusters.contains_key(cluster) {
            return Err(ApiError::NotFound {
                what: format!("cluster {cluster:?}"),
            });
        }
        Ok(st)
    }

    fn membership_response(&self, log_index: u64) -> pb::MembershipResponse {
        let s = self.ctl.local_status();
        pb::MembershipResponse {
            voters: s.voters.iter().copied().collect(),
            learners: s
                .members
                .keys()
                .filter(|id| !s.voters.contains(id))
                .copied()
                .collect(),
            log_index,
        }
    }

    /// Puts brokers into (`assign`) or releases them from a tenant's pool and
    /// returns the tenant's pool as applied.
    async fn change_pool(
        &self,
        req: Request<pb::PoolRequest>,
        assign: bool,
    ) -> Result<Response<pb::TenantInfo>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        let pb::PoolRequest {
            tenant,
            cluster,
            broker_ids,
        } = req.into_inner();
        let cmd = if assign {
            Command::AssignPool {
                tenant: tenant.clone(),
                cluster,
                broker_ids,
            }
        } else {
            Command::ReleasePool {
                tenant: tenant.clone(),
                cluster,
                broker_ids,
            }
        };
        self.write(cmd).await?;
        Ok(Response::new(self.tenant_info(&tenant)?))
    }

    fn tenant_info(&self, name: &str) -> Result<pb::TenantInfo, ApiError> {
        let st = self.ctl.state();
        let t = st
            .registry
            .tenants
            .get(name)
            .ok_or_else(|| ApiError::NotFound {
                what: format!("tenant {name:?}"),
            })?;
        Ok(pb::TenantInfo {
            tenant: Some(t.clone().into()),
            pool: st
                .registry
                .pool_of(name)
                .into_iter()
                .map(|(cluster, broker_id)| pb::PoolBroker { cluster, broker_id })
                .collect(),
        })
    }
}

pub(crate) fn status_to_pb(s: LocalStatus) -> pb::NodeStatus {
    pb::NodeStatus {
        id: s.id,
        admin_addr: s.admin_addr,
        raft_addr: s.raft_addr,
        role: s.role.to_string(),
        term: s.term,
        last_log_index: s.last_log_index,
        last_applied_index: s.last_applied_index,
        snapshot_index: s.snapshot_index,
        purged_index: s.purged_index,
        leader_id: s.leader_id.unwrap_or(0),
        initialized: s.initialized,
        error: String::new(),
    }
}

fn node_spec(
    n: Option<pb::NodeSpec>,
    field: &'static str,
) -> Result<(u64, GuardianNode), ApiError> {
    let n = required(n, field)?;
    if n.id == 0 {
        return Err(ApiError::invalid(format!("{field}.id"), "must be > 0"));
    }
    validate_endpoint(&format!("{field}.raft_addr"), &n.raft_addr)?;
    validate_endpoint(&format!("{field}.admin_addr"), &n.admin_addr)?;
    Ok((
        n.id,
        GuardianNode {
            raft_addr: n.raft_addr,
            admin_addr: n.admin_addr,
        },
    ))
}

fn unexpected(r: CommandResponse) -> Status {
    ApiError::Internal {
        reason: format!("unexpected apply result {r:?}"),
    }
    .into()
}

/// Asks a peer for its status over the raft port, with a short deadline.
async fn peer_status(id: u64, node: &GuardianNode, token: Option<&str>) -> pb::NodeStatus {
    let unreachable = |e: String| pb::NodeStatus {
        id,
        admin_addr: node.admin_addr.clone(),
        raft_addr: node.raft_addr.clone(),
        role: "unreachable".into(),
        error: e,
        ..Default::default()
    };
    let ep = match tonic::transport::Endpoint::from_shared(format!("http://{}", node.raft_addr)) {
        Ok(ep) => ep.connect_timeout(Duration::from_millis(500)),
        Err(e) => return unreachable(e.to_string()),
    };
    let mut c = RaftPeerClient::new(ep.connect_lazy());
    let req =
        crate::raft_net::peer_request(pb::NodeStatusRequest {}, Duration::from_secs(1), token);
    match c.node_status(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => unreachable(e.message().to_string()),
    }
}

#[tonic::async_trait]
impl GuardianAdmin for AdminService {
    #[tracing::instrument(skip_all)]
    async fn initialize(
        &self,
        req: Request<pb::InitializeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req, Role::Admin, "initialize the controller group")?;
        let r = req.into_inner();
        let mut members = BTreeMap::new();
        if r.members.is_empty() {
            members.insert(
                self.ctl.id,
                GuardianNode {
                    raft_addr: self.ctl.raft_addr.clone(),
                    admin_addr: self.ctl.admin_addr.clone(),
                },
            );
        }
        for m in r.members {
            let (id, node) = node_spec(Some(m), "members")?;
            if members.insert(id, node).is_some() {
                return Err(
                    ApiError::invalid("members.id", format!("node {id} listed twice")).into(),
                );
            }
        }
        self.ctl.initialize(members).await?;
        // Report the membership once this node has applied it.
        let _ = self
            .ctl
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(
                |m| {
                    m.membership_config
                        .membership()
                        .voter_ids()
                        .next()
                        .is_some()
                },
                "membership",
            )
            .await;
        Ok(Response::new(self.membership_response(0)))
    }

    #[tracing::instrument(skip_all)]
    async fn add_learner(
        &self,
        req: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req, Role::Admin, "change membership")?;
        let (id, node) = node_spec(req.into_inner().node, "node")?;
        let idx = self.ctl.add_learner(id, node).await?;
        Ok(Response::new(self.membership_response(idx)))
    }

    #[tracing::instrument(skip_all)]
    async fn promote_voter(
        &self,
        req: Request<pb::NodeIdRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req, Role::Admin, "change membership")?;
        let id = req.into_inner().id;
        if id == 0 {
            return Err(ApiError::invalid("id", "must be > 0").into());
        }
        let idx = self.ctl.promote_voter(id).await?;
        Ok(Response::new(self.membership_response(idx)))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_node(
        &self,
        req: Request<pb::NodeIdRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req, Role::Admin, "change membership")?;
        let id = req.into_inner().id;
        if id == 0 {
            return Err(ApiError::invalid("id", "must be > 0").into());
        }
        let idx = self.ctl.remove_node(id).await?;
        Ok(Response::new(self.membership_response(idx)))
    }

    #[tracing::instrument(skip_all)]
    async fn raft_status(
        &self,
        req: Request<pb::RaftStatusRequest>,
    ) -> Result<Response<pb::RaftStatusResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read status")?;
        let local = self.ctl.local_status();
        let mut members = local.members.clone();
        members.remove(&local.id);
        let peers = futures::future::join_all(
            members
                .iter()
                .map(|(id, node)| peer_status(*id, node, self.peer_token.as_deref())),
        )
        .await;
        let leader_id = local.leader_id.unwrap_or(0);
        let term = local.term;
        let mut nodes = vec![status_to_pb(local)];
        nodes.extend(peers);
        nodes.sort_by_key(|n| n.id);
        Ok(Response::new(pb::RaftStatusResponse {
            leader_id,
            term,
            nodes,
        }))
    }

    async fn get_node_status(
        &self,
        req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        self.authorize(&req, Role::Viewer, "read status")?;
        Ok(Response::new(status_to_pb(self.ctl.local_status())))
    }

    #[tracing::instrument(skip_all)]
    async fn trigger_snapshot(
        &self,
        req: Request<pb::TriggerSnapshotRequest>,
    ) -> Result<Response<pb::TriggerSnapshotResponse>, Status> {
        self.authorize(&req, Role::Admin, "trigger a snapshot")?;
        let snapshot_index = self.ctl.trigger_snapshot(Duration::from_secs(20)).await?;
        Ok(Response::new(pb::TriggerSnapshotResponse {
            snapshot_index,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn add_cluster(
        &self,
        req: Request<pb::AddClusterRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        let c: domain::Cluster = required(req.into_inner().cluster, "cluster")
            .map_err(ApiError::from)?
            .into();
        match self.write(Command::AddCluster(c)).await? {
            CommandResponse::Cluster(c) => Ok(Response::new(c.into())),
            other => Err(unexpected(other)),
        }
    }

    async fn list_clusters(
        &self,
        req: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read the registry")?;
        self.ctl.read_barrier(req.get_ref().stale).await?;
        let st = self.ctl.state();
        Ok(Response::new(pb::ListClustersResponse {
            clusters: st
                .registry
                .clusters
                .values()
                .cloned()
                .map(Into::into)
                .collect(),
        }))
    }

    async fn get_cluster(
        &self,
        req: Request<pb::GetClusterRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        self.authorize(&req, Role::Viewer, "read the registry")?;
        let r = req.into_inner();
        validate_name("name", &r.name).map_err(ApiError::from)?;
        self.ctl.read_barrier(r.stale).await?;
        let st = self.ctl.state();
        let c = st
            .registry
            .clusters
            .get(&r.name)
            .ok_or_else(|| ApiError::NotFound {
                what: format!("cluster {:?}", r.name),
            })?;
        Ok(Response::new(c.clone().into()))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_cluster(
        &self,
        req: Request<pb::RemoveClusterRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        self.write(Command::RemoveCluster {
            name: req.into_inner().name,
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    #[tracing::instrument(skip_all)]
    async fn add_broker(
        &self,
        req: Request<pb::AddBrokerRequest>,
    ) -> Result<Response<pb::Broker>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        let b: domain::Broker = required(req.into_inner().broker, "broker")
            .map_err(ApiError::from)?
            .into();
        match self.write(Command::AddBroker(b)).await? {
            CommandResponse::Broker(b) => Ok(Response::new(b.into())),
            other => Err(unexpected(other)),
        }
    }

    async fn list_brokers(
        &self,
        req: Request<pb::ListBrokersRequest>,
    ) -> Result<Response<pb::ListBrokersResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read the registry")?;
        let r = req.into_inner();
        let st = self.cluster_state(&r.cluster, r.stale).await?;
        Ok(Response::new(pb::ListBrokersResponse {
            brokers: st
                .registry
                .brokers_of(&r.cluster)
                .cloned()
                .map(Into::into)
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_broker(
        &self,
        req: Request<pb::RemoveBrokerRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        let r = req.into_inner();
        self.write(Command::RemoveBroker {
            cluster: r.cluster,
            broker_id: r.broker_id,
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    #[tracing::instrument(skip_all)]
    async fn create_tenant(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        let t: domain::Tenant = required(req.into_inner().tenant, "tenant")
            .map_err(ApiError::from)?
            .into();
        match self.write(Command::CreateTenant(t)).await? {
            CommandResponse::Tenant(t) => Ok(Response::new(t.into())),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn delete_tenant(
        &self,
        req: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        self.write(Command::DeleteTenant {
            name: req.into_inner().name,
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read the registry")?;
        self.ctl.read_barrier(req.get_ref().stale).await?;
        let names: Vec<String> = self.ctl.state().registry.tenants.keys().cloned().collect();
        let tenants = names
            .iter()
            .map(|n| self.tenant_info(n))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListTenantsResponse { tenants }))
    }

    #[tracing::instrument(skip_all)]
    async fn assign_pool_brokers(
        &self,
        req: Request<pb::PoolRequest>,
    ) -> Result<Response<pb::TenantInfo>, Status> {
        self.change_pool(req, true).await
    }

    #[tracing::instrument(skip_all)]
    async fn release_pool_brokers(
        &self,
        req: Request<pb::PoolRequest>,
    ) -> Result<Response<pb::TenantInfo>, Status> {
        self.change_pool(req, false).await
    }

    #[tracing::instrument(skip_all)]
    async fn set_placement_policy(
        &self,
        req: Request<pb::SetPlacementPolicyRequest>,
    ) -> Result<Response<pb::PlacementPolicy>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        let p: domain::PlacementPolicy = required(req.into_inner().policy, "policy")
            .map_err(ApiError::from)?
            .into();
        match self.write(Command::SetPolicy(p)).await? {
            CommandResponse::Policy(p) => Ok(Response::new(p.into())),
            other => Err(unexpected(other)),
        }
    }

    async fn list_placement_policies(
        &self,
        req: Request<pb::ListPlacementPoliciesRequest>,
    ) -> Result<Response<pb::ListPlacementPoliciesResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read the registry")?;
        let r = req.into_inner();
        let st = self.cluster_state(&r.cluster, r.stale).await?;
        Ok(Response::new(pb::ListPlacementPoliciesResponse {
            policies: st
                .registry
                .policies_of(&r.cluster)
                .cloned()
                .map(Into::into)
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_placement_policy(
        &self,
        req: Request<pb::RemovePlacementPolicyRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.authorize(&req, Role::Operator, "change the registry")?;
        let r = req.into_inner();
        self.write(Command::RemovePolicy {
            cluster: r.cluster,
            topic: if r.topic.is_empty() {
                None
            } else {
                Some(r.topic)
            },
        })
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    #[tracing::instrument(skip_all)]
    async fn allocate_ids(
        &self,
        req: Request<pb::AllocateIdsRequest>,
    ) -> Result<Response<pb::AllocateIdsResponse>, Status> {
        self.authorize(&req, Role::Operator, "allocate ids")?;
        let r = req.into_inner();
        let kind = id_kind_from_pb(r.kind, "kind").map_err(ApiError::from)?;
        let ids = self.ctl.allocate_ids(kind, r.count).await?;
        Ok(Response::new(pb::AllocateIdsResponse {
            ids: ids.iter().map(|u| u.to_string()).collect(),
        }))
    }

    async fn load_cluster(
        &self,
        req: Request<pb::LoadClusterRequest>,
    ) -> Result<Response<pb::LoadClusterResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read load")?;
        let cluster = req.into_inner().cluster;
        self.load_guard(&cluster)?;
        let now = now_ms();
        let st = self
            .collector
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut out = pb::LoadClusterResponse {
            cluster: cluster.clone(),
            ..Default::default()
        };
        let sm = self.ctl.state();
        for b in sm.registry.brokers_of(&cluster) {
            let l = st.brokers.get(&(cluster.clone(), b.broker_id));
            let recorded_partition_slot = sm
                .registry
                .partition_load
                .get(&(cluster.clone(), b.broker_id))
                .and_then(|h| h.slots.last())
                .map_or(0, |(slot, _)| *slot);
            let reason = match l {
                Some(l) => l.stale_reason(now, self.collector.interval_ms),
                None => Some("not collected yet (this leader is new, or just started)".into()),
            };
            let mut info = pb::BrokerLoadInfo {
                broker_id: b.broker_id,
                reporter_endpoint: b.reporter_endpoint.clone(),
                stale: reason.is_some(),
                stale_reason: reason.unwrap_or_default(),
                recorded_partition_slot,
                ..Default::default()
            };
            if let Some(l) = l {
                info.last_ok_ms = l.last_ok_ms.unwrap_or(0) as i64;
                info.partitions = l.partitions.len() as u64;
                info.bytes_in_per_sec = l.bytes_in.last;
                info.bytes_in_median = l.bytes_in.pct(0.5);
                info.bytes_in_p95 = l.bytes_in.pct(0.95);
                info.cpu_busy = l.cpu.last;
                info.page_cache_bytes = l.page_cache_bytes;
                info.history_buckets = l.bytes_in.len() as u32;
                info.history_first_bucket = l.bytes_in.first_bucket().unwrap_or(0);
                if let Some(m) = &l.metrics {
                    info.bytes_out_per_sec = (!m.bytes_out.is_empty()).then_some(m.bytes_out.last);
                    info.bytes_out_median = m.bytes_out.pct(0.5);
                    info.bytes_out_p95 = m.bytes_out.pct(0.95);
                    info.under_replicated_partitions = m.under_replicated;
                    info.request_handler_idle = m.handler_idle;
                    info.request_p99_ms = m.request_p99_ms.clone().into_iter().collect();
                }
                info.capacity_bytes = l.disks.iter().map(|d| d.capacity_bytes).sum();
                info.used_bytes = l
                    .disks
                    .iter()
                    .map(|d| d.capacity_bytes.saturating_sub(d.free_bytes))
                    .sum();
            }
            out.brokers += 1;
            out.stale_brokers += u32::from(info.stale);
            out.bytes_in_per_sec += info.bytes_in_per_sec;
            out.used_bytes += info.used_bytes;
            out.capacity_bytes += info.capacity_bytes;
            out.broker_loads.push(info);
        }
        Ok(Response::new(out))
    }

    async fn load_disks(
        &self,
        req: Request<pb::LoadTopRequest>,
    ) -> Result<Response<pb::LoadDisksResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read load")?;
        let r = req.into_inner();
        self.load_guard(&r.cluster)?;
        let now = now_ms();
        let st = self
            .collector
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut disks: Vec<pb::DiskLoadInfo> = st
            .brokers_of(&r.cluster)
            .flat_map(|(id, b)| {
                let stale = b.stale_reason(now, self.collector.interval_ms).is_some();
                b.disks.iter().map(move |d| pb::DiskLoadInfo {
                    broker_id: id,
                    path: d.path.clone(),
                    device: d.device.clone(),
                    capacity_bytes: d.capacity_bytes,
                    free_bytes: d.free_bytes,
                    write_bytes_per_sec: d.write.last,
                    write_median: d.write.pct(0.5),
                    write_p95: d.write.pct(0.95),
                    read_bytes_per_sec: d.read.last,
                    utilization: d.util.last,
                    utilization_median: d.util.pct(0.5),
                    utilization_p95: d.util.pct(0.95),
                    stale,
                })
            })
            .collect();
        // Hottest first: utilisation, then write rate, then fullness.
        disks.sort_by(|a, b| {
            let full =
                |d: &pb::DiskLoadInfo| 1.0 - d.free_bytes as f64 / d.capacity_bytes.max(1) as f64;
            (b.utilization, b.write_bytes_per_sec, full(b))
                .partial_cmp(&(a.utilization, a.write_bytes_per_sec, full(a)))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        disks.truncate(top(r.top));
        Ok(Response::new(pb::LoadDisksResponse { disks }))
    }

    async fn load_partitions(
        &self,
        req: Request<pb::LoadTopRequest>,
    ) -> Result<Response<pb::LoadPartitionsResponse>, Status> {
        self.authorize(&req, Role::Viewer, "read load")?;
        let r = req.into_inner();
        self.load_guard(&r.cluster)?;
        let st = self
            .collector
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner());
        // Hottest first (bytes in, then size). Pick the top N before building
        // answers: a cluster can hold millions of partitions, and the
        // window percentiles are computed only for those returned.
        let mut all: Vec<(i32, &crate::collector::PartitionLoad)> = st
            .brokers_of(&r.cluster)
            .flat_map(|(id, b)| b.partitions.iter().map(move |p| (id, p)))
            .collect();
        let hotter = |a: &(i32, &crate::collector::PartitionLoad),
                      b: &(i32, &crate::collector::PartitionLoad)| {
            (b.1.bytes_in_per_sec, b.1.size_bytes)
                .partial_cmp(&(a.1.bytes_in_per_sec, a.1.size_bytes))
                .unwrap_or(std::cmp::Ordering::Equal)
        };
        let n = top(r.top).min(all.len());
        if n < all.len() {
            all.select_nth_unstable_by(n, hotter);
            all.truncate(n);
        }
        all.sort_by(hotter);
        let parts = all
            .into_iter()
            .map(|(id, p)| pb::PartitionLoadInfo {
                broker_id: id,
                topic: p.topic.clone(),
                partition: p.partition,
                log_dir: p.log_dir.clone(),
                size_bytes: p.size_bytes,
                bytes_in_per_sec: p.bytes_in_per_sec,
                future: p.future,
                bytes_in_median: p.bytes_in.pct(0.5),
                bytes_in_p95: p.bytes_in.pct(0.95),
                history_buckets: p.bytes_in.held() as u32,
            })
            .collect();
        Ok(Response::new(pb::LoadPartitionsResponse {
            partitions: parts,
        }))
    }
}

fn top(n: u32) -> usize {
    if n == 0 {
        20
    } else {
        n as usize
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl AdminService {
    /// Load lives on the leader: anywhere else, `UNAVAILABLE` naming the
    /// leader (clients follow it). The cluster must exist.
    fn load_guard(&self, cluster: &str) -> Result<(), ApiError> {
        validate_name("cluster", cluster)?;
        let s = self.ctl.local_status();
        if s.role != "leader" {
            return Err(ApiError::NotLeader {
                leader_id: s.leader_id,
                leader_admin: s
                    .leader_id
                    .and_then(|id| s.members.get(&id))
                    .map(|n| n.admin_addr.clone()),
            });
        }
        if !self.ctl.state().registry.clusters.contains_key(cluster) {
            return Err(ApiError::NotFound {
                what: format!("cluster {cluster:?}"),
            });
        }
        Ok(())
    }
}
