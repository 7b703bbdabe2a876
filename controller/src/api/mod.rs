//! The client-facing gRPC edge (admin port): one module per service area,
//! each handler thin — convert, call the [`Controller`], convert back.
//!
//! Authorisation is in one place: the service tables below name, for every
//! RPC, the role it needs and the action a refusal names, and the
//! generated trait impls check the caller's token before the handler runs
//! (and open one `rpc` tracing span per call).
//!
//! - [`membership`]: initialize, learners and voters, status, snapshots.
//! - [`registry`]: clusters, brokers, tenants, pools, policies, ids.
//! - `executions`: rebalance proposals and their executions.
//! - [`load`]: the `Load*` RPCs over the leader's load windows.
//! - [`remote_log`]: `RemoteLogMetadata` (KIP-405 tiered storage).
//! - [`auth`]: bearer tokens and roles.

pub mod auth;
mod consumers;
pub mod dashboard;
mod discover;
mod executions;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod governance;
pub mod load;
pub mod membership;
pub mod registry;
pub mod remote_log;
mod workflows;

use std::sync::Arc;

use guardian_meta_store::{CommandResponse, SmState};
use guardian_proto::domain::{validate_name, Command, RequestId};
use guardian_proto::pb;

pub use auth::Auth;

use crate::config::Role;
use crate::error::ApiError;
use crate::leader::collector::Collector;
use crate::raft::Controller;

/// What every handler works with.
pub struct Api {
    pub ctl: Controller,
    /// The leader's load windows (empty on followers).
    pub collector: Arc<Collector>,
    /// For `RaftStatus` fan-out over the peers' raft ports.
    pub peer_token: Option<String>,
    /// `[raft.tls]`, for the same fan-out.
    pub peer_tls: Option<Arc<crate::raft::peer_tls::PeerTls>>,
    /// How the leader reaches Kafka (cluster discovery).
    pub kafka: crate::config::KafkaConfig,
    /// The leader's executor (proposals, progress).
    pub executor: Arc<crate::executor::Executor>,
    /// The leader's governance loop (throttle pictures, clearing claims).
    pub governance: Arc<crate::governance::Governance>,
    /// The leader's consumer scheduler (heartbeats, plans).
    pub consumers: Arc<crate::consumers::Scheduler>,
}

/// One call: the handlers' view of [`Api`], with the caller's request id
/// (`x-guardian-request-id`; a retried write carries its first attempt's).
pub struct Call<'a> {
    api: &'a Api,
    pub id: Option<RequestId>,
}

impl std::ops::Deref for Call<'_> {
    type Target = Api;
    fn deref(&self) -> &Api {
        self.api
    }
}

impl Call<'_> {
    /// Proposes `cmd` under this call's request id.
    async fn write(&self, cmd: Command) -> Result<CommandResponse, ApiError> {
        self.api.ctl.write_as(self.id, cmd).await
    }
}

/// The request id a client sent, if any; a malformed one is refused.
fn request_id<T>(req: &tonic::Request<T>) -> Result<Option<RequestId>, ApiError> {
    let Some(v) = req.metadata().get(crate::client::REQUEST_ID_KEY) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid(crate::client::REQUEST_ID_KEY, "must be <client uuid>:<seq>");
    let s = v.to_str().map_err(|_| bad())?;
    s.parse().map(Some).map_err(|_| bad())
}

impl Api {
    /// Validates a cluster name, waits for a (non-stale) read barrier and
    /// returns the applied state, or `NOT_FOUND` if the cluster is unknown.
    async fn cluster_state(
        &self,
        cluster: &str,
        stale: bool,
    ) -> Result<std::sync::RwLockReadGuard<'_, SmState>, ApiError> {
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
}

/// An apply result a handler did not expect (a bug, named).
pub(crate) fn unexpected_response(r: CommandResponse) -> ApiError {
    unexpected(r)
}

fn unexpected(r: CommandResponse) -> ApiError {
    ApiError::Internal {
        reason: format!("unexpected apply result {r:?}"),
    }
}

/// One RPC of a service table: its name, the role it needs, the action a
/// refusal names.
#[derive(Debug, Clone, Copy)]
pub struct RpcRole {
    pub rpc: &'static str,
    pub role: Role,
    pub action: &'static str,
}

/// Generates a service's trait impl from its table: every RPC checks the
/// token against its role, then runs its handler in an `rpc` span.
macro_rules! service {
    ($svc:ident: $tr:path {
        $( $name:ident($req:ty) -> $resp:ty : $role:ident, $action:literal => $handler:path; )*
    }) => {
        #[tonic::async_trait]
        impl $tr for $svc {
            $(
                async fn $name(
                    &self,
                    req: tonic::Request<$req>,
                ) -> Result<tonic::Response<$resp>, tonic::Status> {
                    use tracing::Instrument as _;
                    self.auth.authorize(&req, Role::$role, $action)?;
                    let call = Call { api: &self.api, id: request_id(&req)? };
                    let span = tracing::info_span!("rpc", method = stringify!($name));
                    let r = $handler(&call, req.into_inner()).instrument(span).await?;
                    Ok(tonic::Response::new(r))
                }
            )*
        }

        impl $svc {
            /// This service's role table.
            pub const ROLES: &'static [RpcRole] = &[
                $( RpcRole { rpc: stringify!($name), role: Role::$role, action: $action }, )*
            ];
        }
    };
}

/// The `GuardianAdmin` service (membership, registry, load).
pub struct AdminService {
    api: Arc<Api>,
    auth: Auth,
}

/// The `RemoteLogMetadata` service (tiered-storage metadata).
pub struct RemoteLogService {
    api: Arc<Api>,
    auth: Auth,
}

/// The `GuardianConsumers` service (operators: pools, bindings, plans).
pub struct ConsumersService {
    api: Arc<Api>,
    auth: Auth,
}

/// The `ConsumerScheduler` service (workers: join, heartbeat, leave).
pub struct SchedulerService {
    api: Arc<Api>,
    auth: Auth,
}

impl ConsumersService {
    pub fn new(api: Arc<Api>, auth: Auth) -> Self {
        Self { api, auth }
    }
}

impl SchedulerService {
    pub fn new(api: Arc<Api>, auth: Auth) -> Self {
        Self { api, auth }
    }
}

impl AdminService {
    pub fn new(api: Arc<Api>, auth: Auth) -> Self {
        Self { api, auth }
    }
}

impl RemoteLogService {
    pub fn new(api: Arc<Api>, auth: Auth) -> Self {
        Self { api, auth }
    }
}

service!(AdminService: pb::guardian_admin_server::GuardianAdmin {
    initialize(pb::InitializeRequest) -> pb::MembershipResponse: Admin, "initialize the controller group" => membership::initialize;
    add_learner(pb::AddLearnerRequest) -> pb::MembershipResponse: Admin, "change membership" => membership::add_learner;
    promote_voter(pb::NodeIdRequest) -> pb::MembershipResponse: Admin, "change membership" => membership::promote_voter;
    remove_node(pb::NodeIdRequest) -> pb::MembershipResponse: Admin, "change membership" => membership::remove_node;
    raft_status(pb::RaftStatusRequest) -> pb::RaftStatusResponse: Viewer, "read status" => membership::raft_status;
    get_node_status(pb::NodeStatusRequest) -> pb::NodeStatus: Viewer, "read status" => membership::get_node_status;
    trigger_snapshot(pb::TriggerSnapshotRequest) -> pb::TriggerSnapshotResponse: Admin, "trigger a snapshot" => membership::trigger_snapshot;
    add_cluster(pb::AddClusterRequest) -> pb::Cluster: Operator, "change the registry" => registry::add_cluster;
    list_clusters(pb::ListClustersRequest) -> pb::ListClustersResponse: Viewer, "read the registry" => registry::list_clusters;
    get_cluster(pb::GetClusterRequest) -> pb::Cluster: Viewer, "read the registry" => registry::get_cluster;
    remove_cluster(pb::RemoveClusterRequest) -> pb::Empty: Operator, "change the registry" => registry::remove_cluster;
    add_broker(pb::AddBrokerRequest) -> pb::Broker: Operator, "change the registry" => registry::add_broker;
    list_brokers(pb::ListBrokersRequest) -> pb::ListBrokersResponse: Viewer, "read the registry" => registry::list_brokers;
    remove_broker(pb::RemoveBrokerRequest) -> pb::Empty: Operator, "change the registry" => registry::remove_broker;
    discover_cluster(pb::DiscoverClusterRequest) -> pb::DiscoverClusterResponse: Operator, "change the registry" => discover::discover_cluster;
    propose_rebalance(pb::ProposeRebalanceRequest) -> pb::ExecutionJson: Operator, "propose a rebalance" => executions::propose_rebalance;
    list_executions(pb::ListExecutionsRequest) -> pb::ListExecutionsResponse: Viewer, "read executions" => executions::list_executions;
    get_execution(pb::GetExecutionRequest) -> pb::ExecutionJson: Viewer, "read executions" => executions::get_execution;
    control_execution(pb::ControlExecutionRequest) -> pb::ExecutionJson: Operator, "control an execution" => executions::control_execution;
    get_controls(pb::GetControlsRequest) -> pb::ControlsJson: Viewer, "read executions" => workflows::get_controls;
    update_controls(pb::UpdateControlsRequest) -> pb::ControlsJson: Operator, "change a cluster's controls" => workflows::update_controls;
    create_topic(pb::CreateTopicRequest) -> pb::CreateTopicResponse: Operator, "create a topic" => workflows::create_topic;
    roll_cluster(pb::RollClusterRequest) -> pb::ExecutionJson: Admin, "run a rolling restart" => executions::roll_cluster;
    list_events(pb::ListEventsRequest) -> pb::EventsJson: Viewer, "read events" => governance::list_events;
    list_throttles(pb::ListThrottlesRequest) -> pb::ThrottlesJson: Viewer, "read throttles" => governance::list_throttles;
    clear_throttle(pb::ClearThrottleRequest) -> pb::ThrottlesJson: Operator, "clear a throttle" => governance::clear_throttle;
    get_abnormal(pb::AbnormalRequest) -> pb::AbnormalJson: Viewer, "read throttles" => governance::get_abnormal;
    set_broker_host(pb::SetBrokerHostRequest) -> pb::Empty: Operator, "change the registry" => governance::set_broker_host;
    create_tenant(pb::CreateTenantRequest) -> pb::Tenant: Operator, "change the registry" => registry::create_tenant;
    delete_tenant(pb::DeleteTenantRequest) -> pb::Empty: Operator, "change the registry" => registry::delete_tenant;
    list_tenants(pb::ListTenantsRequest) -> pb::ListTenantsResponse: Viewer, "read the registry" => registry::list_tenants;
    assign_pool_brokers(pb::PoolRequest) -> pb::TenantInfo: Operator, "change the registry" => registry::assign_pool_brokers;
    release_pool_brokers(pb::PoolRequest) -> pb::TenantInfo: Operator, "change the registry" => registry::release_pool_brokers;
    set_placement_policy(pb::SetPlacementPolicyRequest) -> pb::PlacementPolicy: Operator, "change the registry" => registry::set_placement_policy;
    list_placement_policies(pb::ListPlacementPoliciesRequest) -> pb::ListPlacementPoliciesResponse: Viewer, "read the registry" => registry::list_placement_policies;
    remove_placement_policy(pb::RemovePlacementPolicyRequest) -> pb::Empty: Operator, "change the registry" => registry::remove_placement_policy;
    allocate_ids(pb::AllocateIdsRequest) -> pb::AllocateIdsResponse: Operator, "allocate ids" => registry::allocate_ids;
    load_cluster(pb::LoadClusterRequest) -> pb::LoadClusterResponse: Viewer, "read load" => load::load_cluster;
    load_disks(pb::LoadTopRequest) -> pb::LoadDisksResponse: Viewer, "read load" => load::load_disks;
    load_partitions(pb::LoadTopRequest) -> pb::LoadPartitionsResponse: Viewer, "read load" => load::load_partitions;
});

service!(ConsumersService: pb::guardian_consumers_server::GuardianConsumers {
    create_worker_pool(pb::CreateWorkerPoolRequest) -> pb::ConsumersEmpty: Operator, "change consumer scheduling" => consumers::create_worker_pool;
    delete_worker_pool(pb::DeleteWorkerPoolRequest) -> pb::ConsumersEmpty: Operator, "change consumer scheduling" => consumers::delete_worker_pool;
    bind(pb::BindRequest) -> pb::ConsumersEmpty: Operator, "change consumer scheduling" => consumers::bind;
    unbind(pb::UnbindRequest) -> pb::ConsumersEmpty: Operator, "change consumer scheduling" => consumers::unbind;
    get_consumers(pb::ConsumersRequest) -> pb::ConsumersJson: Viewer, "read consumer scheduling" => consumers::get_consumers;
    get_partition_lag(pb::PartitionLagRequest) -> pb::PartitionLagResponse: Viewer, "read consumer scheduling" => consumers::get_partition_lag;
});

// Workers change what they consume: operator.
service!(SchedulerService: pb::consumer_scheduler_server::ConsumerScheduler {
    join(pb::JoinRequest) -> pb::JoinResponse: Operator, "run as a consumer worker" => consumers::join;
    heartbeat(pb::HeartbeatRequest) -> pb::HeartbeatResponse: Operator, "run as a consumer worker" => consumers::heartbeat;
    leave(pb::LeaveRequest) -> pb::LeaveResponse: Operator, "run as a consumer worker" => consumers::leave;
});

service!(RemoteLogService: pb::remote_log_metadata_server::RemoteLogMetadata {
    apply_events(pb::ApplyEventsRequest) -> pb::ApplyEventsResponse: Operator, "write remote log metadata" => remote_log::apply_events;
    track_partitions(pb::TrackPartitionsRequest) -> pb::TrackPartitionsResponse: Operator, "write remote log metadata" => remote_log::track_partitions;
    untrack_partitions(pb::UntrackPartitionsRequest) -> pb::TrackPartitionsResponse: Operator, "write remote log metadata" => remote_log::untrack_partitions;
    get_segment(pb::GetSegmentRequest) -> pb::GetSegmentResponse: Viewer, "read remote log metadata" => remote_log::get_segment;
    get_segments(pb::GetSegmentsRequest) -> pb::GetSegmentsResponse: Viewer, "read remote log metadata" => remote_log::get_segments;
    highest_offset_for_epoch(pb::PartitionEpochRequest) -> pb::HighestOffsetResponse: Viewer, "read remote log metadata" => remote_log::highest_offset_for_epoch;
    list_segments(pb::ListSegmentsRequest) -> pb::ListSegmentsResponse: Viewer, "read remote log metadata" => remote_log::list_segments;
    remote_log_size(pb::PartitionEpochRequest) -> pb::RemoteLogSizeResponse: Viewer, "read remote log metadata" => remote_log::remote_log_size;
    next_segment_with_txn_index(pb::GetSegmentRequest) -> pb::GetSegmentResponse: Viewer, "read remote log metadata" => remote_log::next_segment_with_txn_index;
});
