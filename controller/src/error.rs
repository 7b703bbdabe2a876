//! The controller's API errors: the one exhaustive mapping to
//! `tonic::Status`, and the one mapping from openraft's errors.

use guardian_meta_store::{GuardianNode, NodeId, Rejection};
use guardian_proto::conv::ConvError;
use guardian_proto::domain::InvalidField;
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, Fatal, ForwardToLeader, InitializeError, RaftError,
};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Metadata key carrying the leader's admin address on `UNAVAILABLE`.
pub const LEADER_ADDR_KEY: &str = "x-guardian-leader";
/// Metadata key carrying the leader's node id on `UNAVAILABLE`.
pub const LEADER_ID_KEY: &str = "x-guardian-leader-id";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("{reason}")]
    FailedPrecondition { reason: String },
    #[error("not the leader; leader is node {leader_id:?} at {leader_admin:?}")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_admin: Option<String>,
    },
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("deadline exceeded: {what}")]
    DeadlineExceeded { what: String },
    #[error("missing or unknown bearer token")]
    Unauthenticated,
    #[error("role {role} may not {action}")]
    PermissionDenied { role: String, action: &'static str },
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::AlreadyExists { .. } => Code::AlreadyExists,
            ApiError::FailedPrecondition { .. } => Code::FailedPrecondition,
            ApiError::NotLeader { .. } | ApiError::Unavailable { .. } => Code::Unavailable,
            ApiError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            ApiError::Unauthenticated => Code::Unauthenticated,
            ApiError::PermissionDenied { .. } => Code::PermissionDenied,
            ApiError::Internal { .. } => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let mut status = Status::new(e.code(), e.to_string());
        if let ApiError::NotLeader {
            leader_id,
            leader_admin,
        } = &e
        {
            let md = status.metadata_mut();
            if let Some(Ok(v)) = leader_admin.as_deref().map(MetadataValue::try_from) {
                md.insert(LEADER_ADDR_KEY, v);
            }
            if let Some(id) = leader_id {
                if let Ok(v) = MetadataValue::try_from(id.to_string()) {
                    md.insert(LEADER_ID_KEY, v);
                }
            }
        }
        status
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::NotFound { what } => ApiError::NotFound { what },
            Rejection::AlreadyExists { what } => ApiError::AlreadyExists { what },
            Rejection::FailedPrecondition { reason } => ApiError::FailedPrecondition { reason },
            Rejection::InvalidArgument { field, reason } => {
                ApiError::InvalidArgument { field, reason }
            }
        }
    }
}

impl From<ForwardToLeader<NodeId, GuardianNode>> for ApiError {
    fn from(f: ForwardToLeader<NodeId, GuardianNode>) -> Self {
        ApiError::NotLeader {
            leader_id: f.leader_id,
            leader_admin: f.leader_node.map(|n| n.admin_addr),
        }
    }
}

impl From<Fatal<NodeId>> for ApiError {
    fn from(f: Fatal<NodeId>) -> Self {
        ApiError::Unavailable {
            reason: format!("raft stopped: {f}"),
        }
    }
}

impl From<RaftError<NodeId, ClientWriteError<NodeId, GuardianNode>>> for ApiError {
    fn from(e: RaftError<NodeId, ClientWriteError<NodeId, GuardianNode>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => f.into(),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                ApiError::FailedPrecondition {
                    reason: c.to_string(),
                }
            }
            RaftError::Fatal(f) => f.into(),
        }
    }
}

impl From<RaftError<NodeId, CheckIsLeaderError<NodeId, GuardianNode>>> for ApiError {
    fn from(e: RaftError<NodeId, CheckIsLeaderError<NodeId, GuardianNode>>) -> Self {
        match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => f.into(),
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => ApiError::Unavailable {
                reason: q.to_string(),
            },
            RaftError::Fatal(f) => f.into(),
        }
    }
}

impl From<RaftError<NodeId, InitializeError<NodeId, GuardianNode>>> for ApiError {
    fn from(e: RaftError<NodeId, InitializeError<NodeId, GuardianNode>>) -> Self {
        match e {
            RaftError::APIError(InitializeError::NotAllowed(e)) => ApiError::FailedPrecondition {
                reason: format!("already initialized: {e}"),
            },
            RaftError::APIError(InitializeError::NotInMembers(e)) => {
                ApiError::invalid("members", e.to_string())
            }
            RaftError::Fatal(f) => f.into(),
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> Self {
        ApiError::InvalidArgument {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl From<ConvError> for ApiError {
    fn from(e: ConvError) -> Self {
        match e {
            ConvError::MissingField { field } => ApiError::invalid(field, "is required"),
            ConvError::Invalid(i) => i.into(),
        }
    }
}

/// The gRPC code's canonical name (`NOT_FOUND`), as operators grep for it.
pub fn code_name(c: Code) -> &'static str {
    use Code::*;
    match c {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
