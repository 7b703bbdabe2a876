//! Membership and status RPCs: forming the group, learners and voters,
//! every node's status (the peers' over their raft ports), snapshots.

use std::collections::BTreeMap;
use std::time::Duration;

use guardian_meta_store::GuardianNode;
use guardian_proto::conv::required;
use guardian_proto::domain::validate_endpoint;
use guardian_proto::pb;
use guardian_proto::pb::raft_peer_client::RaftPeerClient;

use super::{Api, Call};
use crate::error::ApiError;
use crate::raft::LocalStatus;

pub async fn initialize(
    api: &Call<'_>,
    r: pb::InitializeRequest,
) -> Result<pb::MembershipResponse, ApiError> {
    let mut members = BTreeMap::new();
    if r.members.is_empty() {
        members.insert(
            api.ctl.id,
            GuardianNode {
                raft_addr: api.ctl.raft_addr.clone(),
                admin_addr: api.ctl.admin_addr.clone(),
            },
        );
    }
    for m in r.members {
        let (id, node) = node_spec(Some(m), "members")?;
        if members.insert(id, node).is_some() {
            return Err(ApiError::invalid(
                "members.id",
                format!("node {id} listed twice"),
            ));
        }
    }
    api.ctl.initialize(members).await?;
    Ok(membership_response(api, 0))
}

pub async fn add_learner(
    api: &Call<'_>,
    r: pb::AddLearnerRequest,
) -> Result<pb::MembershipResponse, ApiError> {
    let (id, node) = node_spec(r.node, "node")?;
    let idx = api.ctl.add_learner(id, node).await?;
    Ok(membership_response(api, idx))
}

pub async fn promote_voter(
    api: &Call<'_>,
    r: pb::NodeIdRequest,
) -> Result<pb::MembershipResponse, ApiError> {
    let id = r.id;
    if id == 0 {
        return Err(ApiError::invalid("id", "must be > 0"));
    }
    let idx = api.ctl.promote_voter(id).await?;
    Ok(membership_response(api, idx))
}

pub async fn remove_node(
    api: &Call<'_>,
    r: pb::NodeIdRequest,
) -> Result<pb::MembershipResponse, ApiError> {
    let id = r.id;
    if id == 0 {
        return Err(ApiError::invalid("id", "must be > 0"));
    }
    let idx = api.ctl.remove_node(id).await?;
    Ok(membership_response(api, idx))
}

pub async fn raft_status(
    api: &Call<'_>,
    _: pb::RaftStatusRequest,
) -> Result<pb::RaftStatusResponse, ApiError> {
    let local = api.ctl.local_status();
    let mut members = local.members.clone();
    members.remove(&local.id);
    let peers = futures::future::join_all(members.iter().map(|(id, node)| {
        peer_status(
            *id,
            node,
            api.peer_token.as_deref(),
            api.peer_tls.as_deref(),
        )
    }))
    .await;
    let leader_id = local.leader_id.unwrap_or(0);
    let term = local.term;
    let mut nodes = vec![status_to_pb(local)];
    nodes.extend(peers);
    nodes.sort_by_key(|n| n.id);
    Ok(pb::RaftStatusResponse {
        leader_id,
        term,
        nodes,
    })
}

pub async fn get_node_status(
    api: &Call<'_>,
    _: pb::NodeStatusRequest,
) -> Result<pb::NodeStatus, ApiError> {
    Ok(status_to_pb(api.ctl.local_status()))
}

pub async fn trigger_snapshot(
    api: &Call<'_>,
    _: pb::TriggerSnapshotRequest,
) -> Result<pb::TriggerSnapshotResponse, ApiError> {
    let snapshot_index = api.ctl.trigger_snapshot(Duration::from_secs(20)).await?;
    Ok(pb::TriggerSnapshotResponse { snapshot_index })
}

fn membership_response(api: &Api, log_index: u64) -> pb::MembershipResponse {
    let s = api.ctl.local_status();
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

pub(crate) fn status_to_pb(s: LocalStatus) -> pb::NodeStatus {
    let role = s.role_name().to_string();
    pb::NodeStatus {
        id: s.id,
        admin_addr: s.admin_addr,
        raft_addr: s.raft_addr,
        role,
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

/// Asks a peer for its status over the raft port, with a short deadline.
async fn peer_status(
    id: u64,
    node: &GuardianNode,
    token: Option<&str>,
    tls: Option<&crate::raft::peer_tls::PeerTls>,
) -> pb::NodeStatus {
    let unreachable = |e: String| pb::NodeStatus {
        id,
        admin_addr: node.admin_addr.clone(),
        raft_addr: node.raft_addr.clone(),
        role: "unreachable".into(),
        error: e,
        ..Default::default()
    };
    let ep = match crate::raft::network::peer_endpoint(&node.raft_addr, tls) {
        Ok((ep, _)) => ep,
        Err(e) => return unreachable(e),
    };
    let mut c = RaftPeerClient::new(ep.connect_lazy());
    let req =
        crate::raft::network::peer_request(pb::NodeStatusRequest {}, Duration::from_secs(1), token);
    match c.node_status(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => unreachable(e.message().to_string()),
    }
}
