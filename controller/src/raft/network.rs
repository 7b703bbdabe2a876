//! Raft transport, client side: openraft's `RaftNetwork` over tonic to the
//! peers' raft port. Snapshots travel as ordered chunks (one RPC each).

use std::sync::Arc;
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

use super::peer_tls::PeerTls;

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
    /// This node's id (names the directed links of the fail points).
    pub from: NodeId,
    /// `raft.peer-token`, sent on every call.
    pub token: Option<String>,
    /// `[raft.tls]`: peers are called over mutual TLS.
    pub tls: Option<Arc<PeerTls>>,
}

/// An endpoint for a peer's raft port — `https` with this node's
/// certificate when `[raft.tls]` is set — and the TLS generation it was
/// built with (0 without TLS).
pub fn peer_endpoint(raft_addr: &str, tls: Option<&PeerTls>) -> Result<(Endpoint, u64), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{raft_addr}"))
        .map_err(|e| format!("raft address {raft_addr}: {e}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5));
    let mut generation = 0;
    if let Some(tls) = tls {
        let (g, cfg) = tls.client();
        generation = g;
        ep = ep
            .tls_config(cfg)
            .map_err(|e| format!("raft port TLS for {raft_addr}: {e}"))?;
    }
    Ok((ep, generation))
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &GuardianNode) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            client: None,
            token: self.token.clone(),
            link: link_name(self.from, target),
            tls: self.tls.clone(),
            tls_generation: 0,
        }
    }
}

/// A connection to one peer's raft port (connected lazily, reused).
pub struct PeerClient {
    target: NodeId,
    node: GuardianNode,
    client: Option<RaftPeerClient<Channel>>,
    token: Option<String>,
    /// This link's fail point name (`raft::link_<from>_<to>`).
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    link: String,
    tls: Option<Arc<PeerTls>>,
    /// The TLS generation `client` was built with: a reload rebuilds it.
    tls_generation: u64,
}

/// The fail point every message from `from` to `to` passes.
pub fn link_name(from: NodeId, to: NodeId) -> String {
    format!("raft::link_{from}_{to}")
}

/// What a link fail point does to one message (its `return(…)` argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFault {
    /// Lost: the call waits out its deadline and fails as a timeout, as
    /// it would across a partition (`return(drop)`; `30%return(drop)` loses
    /// a share).
    Drop,
    /// Held this long before it is sent (`return(delay=MS)` or
    /// `return(delay=MS,jitter=MS)`: MS plus a uniform draw up to jitter).
    Delay { ms: u64, jitter_ms: u64 },
}

impl LinkFault {
    /// Parses a link fail point's argument; `None` for anything else.
    pub fn parse(arg: &str) -> Option<LinkFault> {
        let arg = arg.trim();
        if arg == "drop" {
            return Some(LinkFault::Drop);
        }
        let mut ms = None;
        let mut jitter_ms = 0;
        for part in arg.split(',') {
            let (k, v) = part.split_once('=')?;
            let v: u64 = v.trim().parse().ok()?;
            match k.trim() {
                "delay" => ms = Some(v),
                "jitter" => jitter_ms = v,
                _ => return None,
            }
        }
        Some(LinkFault::Delay { ms: ms?, jitter_ms })
    }
}

/// Applies the link's fail point to one outgoing message (feature
/// `failpoints`; TiKV's transport filters are the model). Only messages
/// this node sends are filtered — the answers to its peers' calls are not
/// — so cutting one direction (`a→b` dropped, `b→a` open) leaves `b`'s
/// calls to `a` and `a`'s answers working. A full partition sets both.
#[cfg(feature = "failpoints")]
async fn link_filter(name: &str, ttl: Duration) -> Result<(), tonic::Status> {
    let Some(arg) = fail::eval(name, |a| a.unwrap_or_default()) else {
        return Ok(());
    };
    match LinkFault::parse(&arg) {
        Some(LinkFault::Drop) => {
            tokio::time::sleep(ttl).await;
            Err(tonic::Status::cancelled(format!(
                "Timeout expired: the message was dropped by fail point {name}"
            )))
        }
        Some(LinkFault::Delay { ms, jitter_ms }) => {
            let extra = if jitter_ms > 0 {
                rand::random_range(0..=jitter_ms)
            } else {
                0
            };
            tokio::time::sleep(Duration::from_millis(ms + extra)).await;
            Ok(())
        }
        None => {
            tracing::warn!(fail_point = name, %arg, "unknown link fault ignored");
            Ok(())
        }
    }
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
        let current = self.tls.as_ref().map_or(0, |t| t.generation());
        if let Some(c) = &self.client {
            if current == self.tls_generation {
                return Ok(c.clone());
            }
        }
        let (ep, generation) = peer_endpoint(&self.node.raft_addr, self.tls.as_deref())
            .map_err(tonic::Status::invalid_argument)?;
        let c = RaftPeerClient::new(ep.connect_lazy())
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        self.client = Some(c.clone());
        self.tls_generation = generation;
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
        #[cfg(feature = "failpoints")]
        link_filter(&self.link, option.hard_ttl())
            .await
            .map_err(to_rpc_error)?;
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
        #[cfg(feature = "failpoints")]
        link_filter(&self.link, option.hard_ttl())
            .await
            .map_err(to_rpc_error)?;
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
        #[cfg(feature = "failpoints")]
        link_filter(&self.link, option.hard_ttl())
            .await
            .map_err(to_rpc_error)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_faults_parse() {
        assert_eq!(LinkFault::parse("drop"), Some(LinkFault::Drop));
        assert_eq!(
            LinkFault::parse("delay=40"),
            Some(LinkFault::Delay {
                ms: 40,
                jitter_ms: 0
            })
        );
        assert_eq!(
            LinkFault::parse("delay=40, jitter=25"),
            Some(LinkFault::Delay {
                ms: 40,
                jitter_ms: 25
            })
        );
        for bad in ["", "jitter=5", "delay=x", "delay=5,loss=3", "dropp"] {
            assert_eq!(LinkFault::parse(bad), None, "{bad}");
        }
        assert_eq!(link_name(1, 3), "raft::link_1_3");
    }
}
