//! Raft transport, client side: openraft's `RaftNetwork` over tonic to the
//! peers' raft port. Snapshots travel as ordered chunks (one RPC each).

use std::time::Duration;

use guardian_meta_store::codec;
use guardian_meta_store::{GuardianNode, NodeId, TypeConfig};
use guardian_proto::pb;
use guardian_proto::pb::raft_peer_client::RaftPeerClient;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, SnapshotMismatch,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::SnapshotSegmentId;
use tonic::transport::{Channel, Endpoint};

/// Largest Raft message accepted or sent (entries batches, snapshot chunks).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 64 << 20;

/// Metadata key carrying the shared peer token on the raft port.
pub const PEER_TOKEN_KEY: &str = "x-guardian-peer-token";

/// Builds a raft-port request with a deadline and the peer token, if any.
pub fn peer_request<T>(msg: T, timeout: Duration, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    if let Some(Ok(v)) = token.map(tonic::metadata::MetadataValue::try_from) {
        r.metadata_mut().insert(PEER_TOKEN_KEY, v);
    }
    r
}

/// Creates one [`PeerClient`] per target node.
#[derive(Clone, Default)]
pub struct PeerNetwork {
    /// `raft.peer-token`, sent on every call.
    pub token: Option<String>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &GuardianNode) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            client: None,
            token: self.token.clone(),
        }
    }
}

/// A connection to one peer's raft port (connected lazily, reused).
pub struct PeerClient {
    target: NodeId,
    node: GuardianNode,
    client: Option<RaftPeerClient<Channel>>,
    token: Option<String>,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, GuardianNode, RaftError<NodeId, E>>;

/// Maps a peer call's failure for openraft. Only a peer that cannot be
/// reached (`Unavailable`: connection refused or lost; `Unknown`: transport
/// failure) is `Unreachable`, which makes openraft pause replication to it
/// for 500 ms. A call that merely ran out of time (tonic reports its own
/// `grpc-timeout` expiry as `Cancelled`, "Timeout expired") is retried at
/// once: treating it as unreachable stalled commits for half a second
/// whenever a loaded follower answered one AppendEntries late.
fn to_rpc_error<E: std::error::Error>(s: tonic::Status) -> RPCError<NodeId, GuardianNode, E> {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => {
            RPCError::Unreachable(Unreachable::new(&s))
        }
        _ => RPCError::Network(NetworkError::new(&s)),
    }
}

fn malformed<E: std::error::Error>(what: &str) -> RPCError<NodeId, GuardianNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
        "malformed response from peer: {what}"
    ))))
}

impl PeerClient {
    fn client(&mut self) -> Result<RaftPeerClient<Channel>, tonic::Status> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let ep = Endpoint::from_shared(format!("http://{}", self.node.raft_addr))
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5));
        let c = RaftPeerClient::new(ep.connect_lazy())
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        self.client = Some(c.clone());
        Ok(c)
    }

    fn request<T>(&self, msg: T, option: &RPCOption) -> tonic::Request<T> {
        peer_request(msg, option.hard_ttl(), self.token.as_deref())
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let msg = pb::AppendEntriesRequest {
            vote: Some(codec::vote_to_pb(&rpc.vote)),
            prev_log_id: codec::opt_log_id_to_pb(&rpc.prev_log_id),
            entries: rpc.entries.iter().map(codec::entry_to_pb).collect(),
            leader_commit: codec::opt_log_id_to_pb(&rpc.leader_commit),
        };
        let mut c = self.client().map_err(to_rpc_error)?;
        let resp = c
            .append_entries(self.request(msg, &option))
            .await
            .map_err(to_rpc_error)?
            .into_inner();
        use pb::append_entries_response::Result as R;
        match resp.result {
            Some(R::Success(_)) => Ok(AppendEntriesResponse::Success),
            Some(R::PartialSuccess(p)) => Ok(AppendEntriesResponse::PartialSuccess(
                codec::opt_log_id_from_pb(&p.matching),
            )),
            Some(R::Conflict(_)) => Ok(AppendEntriesResponse::Conflict),
            Some(R::HigherVote(v)) => {
                Ok(AppendEntriesResponse::HigherVote(codec::vote_from_pb(&v)))
            }
            None => Err(malformed("append_entries without result")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let msg = pb::InstallSnapshotRequest {
            vote: Some(codec::vote_to_pb(&rpc.vote)),
            meta: Some(codec::snapshot_meta_to_pb(&rpc.meta)),
            offset: rpc.offset,
            data: rpc.data,
            done: rpc.done,
        };
        let mut c = self.client().map_err(to_rpc_error)?;
        let resp = c
            .install_snapshot(self.request(msg, &option))
            .await
            .map_err(to_rpc_error)?
            .into_inner();
        if let Some(m) = resp.mismatch {
            let e = SnapshotMismatch {
                expect: SnapshotSegmentId {
                    id: m.expect_id,
                    offset: m.expect_offset,
                },
                got: SnapshotSegmentId {
                    id: m.got_id,
                    offset: m.got_offset,
                },
            };
            return Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                RaftError::APIError(InstallSnapshotError::SnapshotMismatch(e)),
            )));
        }
        let vote = resp
            .vote
            .ok_or_else(|| malformed("install_snapshot without vote"))?;
        Ok(InstallSnapshotResponse {
            vote: codec::vote_from_pb(&vote),
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        let msg = pb::VoteRequest {
            vote: Some(codec::vote_to_pb(&rpc.vote)),
            last_log_id: codec::opt_log_id_to_pb(&rpc.last_log_id),
        };
        let mut c = self.client().map_err(to_rpc_error)?;
        let resp = c
            .vote(self.request(msg, &option))
            .await
            .map_err(to_rpc_error)?
            .into_inner();
        let vote = resp.vote.ok_or_else(|| malformed("vote without vote"))?;
        Ok(VoteResponse {
            vote: codec::vote_from_pb(&vote),
            vote_granted: resp.vote_granted,
            last_log_id: codec::opt_log_id_from_pb(&resp.last_log_id),
        })
    }
}
