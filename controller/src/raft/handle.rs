//! The node's handle on Raft and the applied state: proposes commands,
//! serves linearizable or stale reads, changes membership, reports status.
//! gRPC handlers stay thin and call into this.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLockReadGuard;
use std::time::Duration;

use guardian_meta_store::{CommandResponse, GuardianNode, NodeId, Raft, SmState, StateReader};
use guardian_proto::domain::{Command, IdKind, KafkaUuid, Request, RequestId};
use openraft::{ChangeMembers, ServerState};

use crate::error::ApiError;
use crate::time::now_ms;

/// How many times `allocate_ids` redraws after a (vanishingly rare) collision.
const ID_ALLOC_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct Controller {
    pub raft: Raft,
    pub proposer: super::proposer::Proposer,
    pub barrier: super::barrier::ReadBarrier,
    pub state: StateReader,
    pub id: NodeId,
    pub admin_addr: String,
    pub raft_addr: String,
}

/// This node's view of itself.
#[derive(Debug, Clone)]
pub struct LocalStatus {
    pub id: NodeId,
    pub admin_addr: String,
    pub raft_addr: String,
    pub role: ServerState,
    pub term: u64,
    pub last_log_index: u64,
    pub last_applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub leader_id: Option<NodeId>,
    pub initialized: bool,
    /// Every member (voters and learners) with its addresses.
    pub members: BTreeMap<NodeId, GuardianNode>,
    pub voters: BTreeSet<NodeId>,
}

impl Controller {
    /// Proposes a command through Raft and waits until it is committed and
    /// applied here. Registry rejections come back as the matching error.
    pub async fn write(&self, command: Command) -> Result<CommandResponse, ApiError> {
        self.write_as(None, command).await
    }

    /// [`Controller::write`] under a client request id: if a request with
    /// this id already committed, the answer is its result, and nothing is
    /// applied again (the dedup table is replicated, so any later leader
    /// answers the same way).
    pub async fn write_as(
        &self,
        id: Option<RequestId>,
        command: Command,
    ) -> Result<CommandResponse, ApiError> {
        command.validate()?;
        let req = Request::new(now_ms(), command).with_id(id);
        let t = std::time::Instant::now();
        let resp = self.proposer.propose(req).await?;
        crate::metrics::METRICS
            .raft_proposal_seconds
            .observe(crate::metrics::since(t));
        // Committed and applied; the caller has not heard yet. A test can
        // drop the answer here to see a retry get the same result.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("controller::after_commit", |_| Err(ApiError::Unavailable {
            reason: "failpoint controller::after_commit: the answer was dropped".into(),
        }));
        match resp {
            CommandResponse::Rejected(r) => Err(r.into()),
            other => Ok(other),
        }
    }

    /// Allocates `count` Kafka-format ids: the leader draws random v4 UUIDs,
    /// skipping reserved ones, and commits them; apply refuses any id issued
    /// before, in which case we draw again.
    ///
    /// Every draw carries `id`: only the successful one is kept under it,
    /// so a retried call gets the ids it was first given.
    pub async fn allocate_ids(
        &self,
        kind: IdKind,
        count: u32,
        id: Option<RequestId>,
    ) -> Result<Vec<KafkaUuid>, ApiError> {
        if count == 0 || count > guardian_proto::domain::MAX_IDS_PER_CALL {
            return Err(ApiError::invalid(
                "count",
                format!("must be 1..={}", guardian_proto::domain::MAX_IDS_PER_CALL),
            ));
        }
        let mut last = None;
        for _ in 0..ID_ALLOC_ATTEMPTS {
            let mut ids = Vec::with_capacity(count as usize);
            while ids.len() < count as usize {
                let id = KafkaUuid::from_random_bytes(rand::random());
                if id.is_allocatable() {
                    ids.push(id);
                }
            }
            // A test can make a draw collide with an issued id (the
            // argument, in Kafka's text form) to see the redraw.
            #[cfg(feature = "failpoints")]
            if let Some(Some(forced)) = fail::eval("controller::draw_ids", |a| a) {
                if let Ok(forced) = forced.parse::<KafkaUuid>() {
                    ids[0] = forced;
                }
            }
            match self.write_as(id, Command::AllocateIds { kind, ids }).await {
                Ok(CommandResponse::Ids(ids)) => return Ok(ids),
                Ok(other) => {
                    return Err(ApiError::Internal {
                        reason: format!("unexpected apply result {other:?}"),
                    })
                }
                Err(e @ ApiError::AlreadyExists { .. }) => {
                    tracing::warn!(error = %e, "a drawn id was issued before; drawing again");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ApiError::Internal {
            reason: "id allocation failed".into(),
        }))
    }

    /// Waits until this node may serve a linearizable read (a read index
    /// confirmed by a quorum after the call began; concurrent reads share
    /// one round, see `barrier.rs`); a no-op for stale reads.
    pub async fn read_barrier(&self, stale: bool) -> Result<(), ApiError> {
        if stale {
            return Ok(());
        }
        let t = std::time::Instant::now();
        let r = self.barrier.wait().await;
        crate::metrics::METRICS
            .raft_read_barrier_seconds
            .observe(crate::metrics::since(t));
        r
    }

    /// The applied state. Hold the guard briefly.
    pub fn state(&self) -> RwLockReadGuard<'_, SmState> {
        self.state.read()
    }

    /// Initializes a new controller group with `members` as voters.
    pub async fn initialize(
        &self,
        members: BTreeMap<NodeId, GuardianNode>,
    ) -> Result<(), ApiError> {
        self.raft.initialize(members).await?;
        // Answer once this node has applied the membership.
        let _ = self
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
        Ok(())
    }

    /// `Ok` on the leader; elsewhere `NotLeader` naming the leader (for
    /// what only the leader holds, like the load windows).
    pub fn ensure_leader(&self) -> Result<(), ApiError> {
        let s = self.local_status();
        if s.role == ServerState::Leader {
            return Ok(());
        }
        Err(ApiError::NotLeader {
            leader_id: s.leader_id,
            leader_admin: s
                .leader_id
                .and_then(|id| s.members.get(&id))
                .map(|n| n.admin_addr.clone()),
        })
    }

    pub async fn add_learner(&self, id: NodeId, node: GuardianNode) -> Result<u64, ApiError> {
        let r = self.raft.add_learner(id, node, true).await?;
        Ok(r.log_id.index)
    }

    pub async fn promote_voter(&self, id: NodeId) -> Result<u64, ApiError> {
        let status = self.local_status();
        if !status.members.contains_key(&id) {
            return Err(ApiError::NotFound {
                what: format!("node {id} (add it as a learner first)"),
            });
        }
        let r = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
            .await?;
        Ok(r.log_id.index)
    }

    pub async fn remove_node(&self, id: NodeId) -> Result<u64, ApiError> {
        let status = self.local_status();
        if !status.members.contains_key(&id) {
            return Err(ApiError::NotFound {
                what: format!("node {id}"),
            });
        }
        let change = if status.voters.contains(&id) {
            if status.voters.len() == 1 {
                return Err(ApiError::FailedPrecondition {
                    reason: format!("node {id} is the last voter"),
                });
            }
            ChangeMembers::RemoveVoters([id].into())
        } else {
            ChangeMembers::RemoveNodes([id].into())
        };
        let r = self.raft.change_membership(change, false).await?;
        Ok(r.log_id.index)
    }

    /// Builds a snapshot now (the log behind it is purged per
    /// `raft.max-in-snapshot-log-to-keep`) and waits for it.
    pub async fn trigger_snapshot(&self, timeout: Duration) -> Result<u64, ApiError> {
        let applied = self.local_status().last_applied_index;
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(ApiError::from)?;
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.snapshot.map(|s| s.index).unwrap_or(0) >= applied,
                "snapshot",
            )
            .await
            .map_err(|e| ApiError::DeadlineExceeded {
                what: e.to_string(),
            })?;
        Ok(m.snapshot.map(|s| s.index).unwrap_or(0))
    }

    pub fn local_status(&self) -> LocalStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let members: BTreeMap<NodeId, GuardianNode> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        LocalStatus {
            id: self.id,
            admin_addr: self.admin_addr.clone(),
            raft_addr: self.raft_addr.clone(),
            role: m.state,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
            leader_id: m.current_leader,
            initialized: !voters.is_empty(),
            members,
            voters,
        }
    }
}

impl LocalStatus {
    /// The role as `raft status` shows it.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        }
    }
}
