//! Raft transport, server side: the `RaftPeer` gRPC service, served only on
//! the raft port. Decodes, hands the request to openraft, encodes the reply.

use guardian_meta_store::{codec, Raft};

use super::Controller;
use guardian_proto::conv::required;
use guardian_proto::pb;
use guardian_proto::pb::raft_peer_server::RaftPeer;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};
use tonic::{Request, Response, Status};

pub struct RaftPeerService {
    raft: Raft,
    ctl: Controller,
    token: Option<String>,
}

impl RaftPeerService {
    pub fn new(ctl: Controller, token: Option<String>) -> Self {
        Self {
            raft: ctl.raft.clone(),
            ctl,
            token,
        }
    }

    /// With `raft.peer-token` set, only callers presenting it get in.
    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(want) = &self.token else {
            return Ok(());
        };
        let got = req
            .metadata()
            .get(super::network::PEER_TOKEN_KEY)
            .and_then(|v| v.to_str().ok());
        if got == Some(want.as_str()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("missing or wrong peer token"))
        }
    }
}

fn conv_err(e: guardian_proto::conv::ConvError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn fatal<E: std::fmt::Display>(e: E) -> Status {
    Status::unavailable(format!("raft unavailable: {e}"))
}

#[tonic::async_trait]
impl RaftPeer for RaftPeerService {
    #[tracing::instrument(level = "trace", skip_all)]
    async fn vote(
        &self,
        req: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        let vote = required(r.vote, "vote").map_err(conv_err)?;
        let resp = self
            .raft
            .vote(VoteRequest {
                vote: codec::vote_from_pb(&vote),
                last_log_id: codec::opt_log_id_from_pb(&r.last_log_id),
            })
            .await
            .map_err(fatal)?;
        Ok(Response::new(pb::VoteResponse {
            vote: Some(codec::vote_to_pb(&resp.vote)),
            vote_granted: resp.vote_granted,
            last_log_id: codec::opt_log_id_to_pb(&resp.last_log_id),
        }))
    }

    #[tracing::instrument(level = "trace", skip_all)]
    async fn append_entries(
        &self,
        req: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        let vote = required(r.vote, "vote").map_err(conv_err)?;
        let entries = r
            .entries
            .into_iter()
            .map(codec::entry_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(conv_err)?;
        let resp = self
            .raft
            .append_entries(AppendEntriesRequest {
                vote: codec::vote_from_pb(&vote),
                prev_log_id: codec::opt_log_id_from_pb(&r.prev_log_id),
                entries,
                leader_commit: codec::opt_log_id_from_pb(&r.leader_commit),
            })
            .await
            .map_err(fatal)?;
        use pb::append_entries_response::Result as R;
        let result = match resp {
            AppendEntriesResponse::Success => R::Success(pb::Blank {}),
            AppendEntriesResponse::PartialSuccess(l) => R::PartialSuccess(pb::PartialSuccess {
                matching: codec::opt_log_id_to_pb(&l),
            }),
            AppendEntriesResponse::Conflict => R::Conflict(pb::Blank {}),
            AppendEntriesResponse::HigherVote(v) => R::HigherVote(codec::vote_to_pb(&v)),
        };
        Ok(Response::new(pb::AppendEntriesResponse {
            result: Some(result),
        }))
    }

    async fn node_status(
        &self,
        req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        self.check(&req)?;
        Ok(Response::new(crate::api::membership::status_to_pb(
            self.ctl.local_status(),
        )))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn install_snapshot(
        &self,
        req: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        let vote = required(r.vote, "vote").map_err(conv_err)?;
        let meta = required(r.meta, "meta").map_err(conv_err)?;
        let res = self
            .raft
            .install_snapshot(InstallSnapshotRequest {
                vote: codec::vote_from_pb(&vote),
                meta: codec::snapshot_meta_from_pb(meta),
                offset: r.offset,
                data: r.data,
                done: r.done,
            })
            .await;
        match res {
            Ok(resp) => Ok(Response::new(pb::InstallSnapshotResponse {
                vote: Some(codec::vote_to_pb(&resp.vote)),
                mismatch: None,
            })),
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                Ok(Response::new(pb::InstallSnapshotResponse {
                    vote: None,
                    mismatch: Some(pb::SnapshotMismatch {
                        expect_id: m.expect.id,
                        expect_offset: m.expect.offset,
                        got_id: m.got.id,
                        got_offset: m.got.offset,
                    }),
                }))
            }
            Err(RaftError::Fatal(f)) => Err(fatal(f)),
        }
    }
}
