//! Errors of the planner crate.

/// A cluster spec that cannot become a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// A request the placement planner cannot satisfy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("no tenant pool named {pool:?}")]
    UnknownPool { pool: String },
    #[error("topic {topic} partition {partition} replica {replica}: no broker/disk in pool {pool:?} satisfies the policy with room for the expected load ({candidates} usable disks)")]
    NoRoom {
        topic: String,
        partition: i32,
        replica: usize,
        pool: String,
        candidates: usize,
    },
}

/// Invalid planner options.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GoalError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// Input the consumer planner refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsumerPlanError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}
