//! Consumer scheduling's replicated records: **worker pools** (virtual
//! consumer clusters), the **workers** that joined them (membership only:
//! liveness and measured CPU are the leader's soft state, renewed by
//! heartbeats, never a Raft write per heartbeat), **bindings** of a (Kafka
//! cluster, topic, consumer group) to pools with ratios, and each
//! binding's **plan** — every partition's owner under a plan epoch that
//! only grows, so a worker can tell a stale plan from the current one and
//! a new leader continues with the same owners.
//!
//! Persisted as JSON inside one protobuf `bytes` field, like the
//! executor's and governance's records: they are Guardian's own data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{validate_name, InvalidField, Valid};

/// A worker pool (a virtual consumer cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub created_ms: u64,
}

/// A worker that joined a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub id: String,
    pub pool: String,
    /// Relative capacity (cores, or measured throughput); > 0.
    pub capacity: f64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub joined_ms: u64,
}

// Capacity is finite (validated), so equality is total.
impl Eq for WorkerRecord {}

/// One pool's share of a binding: a ratio of partition counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolShare {
    pub pool: String,
    pub ratio: u32,
}

/// A (Kafka cluster, topic, consumer group) consumed by pools.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BindingKey {
    pub cluster: String,
    pub topic: String,
    pub group: String,
}

impl std::fmt::Display for BindingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.topic, self.group)
    }
}

/// A binding and its pools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRecord {
    pub key: BindingKey,
    pub pools: Vec<PoolShare>,
    #[serde(default)]
    pub created_ms: u64,
}

/// A binding's plan: each partition's owner (absent: none yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingPlan {
    /// The plan epoch that last changed it.
    pub epoch: u64,
    pub owners: BTreeMap<i32, String>,
}

/// The consumer-scheduling domain's commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumersCmd {
    CreatePool {
        pool: WorkerPool,
    },
    /// Refused while a binding names the pool or a worker is in it.
    DeletePool {
        name: String,
    },
    /// Creates or replaces a binding (every pool must exist).
    Bind {
        binding: BindingRecord,
    },
    /// Removes a binding and its plan.
    Unbind {
        key: BindingKey,
    },
    /// A worker joins (or rejoins, updated) a pool.
    Join {
        worker: WorkerRecord,
    },
    /// A worker leaves (or is declared gone after its lease): it owns
    /// nothing in any plan afterwards.
    Leave {
        id: String,
    },
    /// A new plan epoch: the owners of the bindings listed (others keep
    /// theirs). Refused unless `epoch` is above the current one.
    Plan {
        epoch: u64,
        plans: Vec<(BindingKey, BTreeMap<i32, String>)>,
    },
}

/// Pools a binding may name.
pub const MAX_POOLS_PER_BINDING: usize = 16;

fn validate_key(k: &BindingKey) -> Valid {
    validate_name("cluster", &k.cluster)?;
    validate_name("topic", &k.topic)?;
    if k.group.is_empty() {
        return Err(InvalidField::new("group", "must not be empty"));
    }
    Ok(())
}

fn validate_worker_id(field: &str, id: &str) -> Valid {
    if id.is_empty() || id.len() > 249 {
        return Err(InvalidField::new(field, "must be 1–249 characters"));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(InvalidField::new(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

impl ConsumersCmd {
    pub fn validate(&self) -> Valid {
        match self {
            ConsumersCmd::CreatePool { pool } => validate_name("pool.name", &pool.name),
            ConsumersCmd::DeletePool { name } => validate_name("name", name),
            ConsumersCmd::Bind { binding } => {
                validate_key(&binding.key)?;
                if binding.pools.is_empty() || binding.pools.len() > MAX_POOLS_PER_BINDING {
                    return Err(InvalidField::new(
                        "pools",
                        format!("must name 1–{MAX_POOLS_PER_BINDING} pools"),
                    ));
                }
                for (i, s) in binding.pools.iter().enumerate() {
                    validate_name(&format!("pools[{i}].pool"), &s.pool)?;
                    if s.ratio == 0 {
                        return Err(InvalidField::new(
                            format!("pools[{i}].ratio"),
                            "must be > 0",
                        ));
                    }
                    if binding.pools[..i].iter().any(|x| x.pool == s.pool) {
                        return Err(InvalidField::new(
                            format!("pools[{i}].pool"),
                            format!("pool {:?} is listed twice", s.pool),
                        ));
                    }
                }
                Ok(())
            }
            ConsumersCmd::Unbind { key } => validate_key(key),
            ConsumersCmd::Join { worker } => {
                validate_worker_id("worker.id", &worker.id)?;
                validate_name("worker.pool", &worker.pool)?;
                if !(worker.capacity.is_finite() && worker.capacity > 0.0) {
                    return Err(InvalidField::new(
                        "worker.capacity",
                        "must be a finite number > 0",
                    ));
                }
                Ok(())
            }
            ConsumersCmd::Leave { id } => validate_worker_id("id", id),
            ConsumersCmd::Plan { epoch, plans } => {
                if *epoch == 0 {
                    return Err(InvalidField::new("epoch", "must be > 0"));
                }
                for (k, owners) in plans {
                    validate_key(k)?;
                    if let Some((p, w)) = owners.iter().find(|(p, _)| **p < 0) {
                        return Err(InvalidField::new(
                            "plans.owners",
                            format!("partition {p} (owner {w}) is negative"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Rough encoded size in bytes.
    pub fn approx_size(&self) -> usize {
        match self {
            ConsumersCmd::Plan { plans, .. } => plans
                .iter()
                .map(|(k, o)| 64 + k.topic.len() + k.group.len() + o.len() * 24)
                .sum(),
            _ => 256,
        }
    }
}
