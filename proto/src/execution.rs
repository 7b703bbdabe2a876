//! The executor's durable procedures: a plan carried out on one Kafka
//! cluster, its tasks (one per partition), its throttle ledger and its
//! journal of events.
//!
//! An [`Execution`] moves through [`ExecState`]s
//! `draft → proposed → approved → preflight → executing → verifying →
//! done | cancelled | failed`, with `paused` a flag beside the state. The
//! leader's executor records every step through Raft *before* it acts on
//! Kafka ([`ExecutionCmd::Update`], compare-and-set on
//! [`Execution::version`], so a deposed leader's late step is refused);
//! operators change only the flags and approval ([`ExecutionCmd::Control`]).
//!
//! Procedure records are persisted as JSON (inside one protobuf `bytes`
//! field in the log, and as the stored value), as GreptimeDB's procedure
//! store keeps its procedures' state: the record is the executor's own
//! data, read back only by Guardian.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{validate_name, InvalidField, Valid};

/// Tasks carried by one log entry (a larger plan is proposed in chunks).
pub const MAX_TASKS_PER_ENTRY: usize = 500;
/// Events kept per execution (the oldest are dropped).
pub const MAX_EVENTS: usize = 200;

/// Where an execution is in its procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecState {
    /// Created, its tasks still arriving in chunks.
    Draft,
    /// Waiting for approval.
    Proposed,
    Approved,
    /// Recording the throttle ledger and checking for drift.
    Preflight,
    Executing,
    /// Every task finished: checking the placement, restoring throttles.
    Verifying,
    Done,
    Cancelled,
    Failed,
}

impl ExecState {
    pub fn name(self) -> &'static str {
        match self {
            ExecState::Draft => "draft",
            ExecState::Proposed => "proposed",
            ExecState::Approved => "approved",
            ExecState::Preflight => "preflight",
            ExecState::Executing => "executing",
            ExecState::Verifying => "verifying",
            ExecState::Done => "done",
            ExecState::Cancelled => "cancelled",
            ExecState::Failed => "failed",
        }
    }

    /// Done, cancelled or failed: nothing more happens.
    pub fn terminal(self) -> bool {
        matches!(
            self,
            ExecState::Done | ExecState::Cancelled | ExecState::Failed
        )
    }

    /// Approved and not finished: the executor owns it (one per cluster).
    pub fn active(self) -> bool {
        matches!(
            self,
            ExecState::Approved
                | ExecState::Preflight
                | ExecState::Executing
                | ExecState::Verifying
        )
    }
}

/// Where one task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Pending,
    /// Journaled as started: its Kafka requests may have been sent.
    Submitted,
    Done,
    /// Not carried out: its topic was deleted or its partition changed
    /// (named in `reason`).
    Dropped,
    Cancelled,
    Failed,
}

impl TaskState {
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Submitted => "submitted",
            TaskState::Done => "done",
            TaskState::Dropped => "dropped",
            TaskState::Cancelled => "cancelled",
            TaskState::Failed => "failed",
        }
    }

    pub fn finished(self) -> bool {
        !matches!(self, TaskState::Pending | TaskState::Submitted)
    }
}

/// The planner's view of a proposal, kept for review.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub bytes_to_move: u64,
    pub bytes_lower_bound: u64,
    pub moves: u32,
    pub intra_broker_moves: u32,
    pub leader_moves: u32,
    /// The verifier's before/after table.
    pub table: String,
    /// Replicas that had to move but found no destination, with reasons.
    pub unplaced: Vec<String>,
    /// Inputs that were missing or stale, and how they were handled.
    pub warnings: Vec<String>,
    /// Estimated seconds at the throttle rate, through the busiest broker.
    pub eta_secs: u64,
    pub goals: BTreeMap<String, f64>,
    /// max/mean per resource before and after.
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
}

// The ratios are finite (the planner never reports NaN), so equality is total.
impl Eq for PlanSummary {}

/// A config resource whose throttle keys Guardian touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleEntity {
    Broker(i32),
    /// A topic by name and id: a topic deleted and re-created is another.
    Topic {
        name: String,
        id: String,
    },
}

impl std::fmt::Display for ThrottleEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThrottleEntity::Broker(b) => write!(f, "broker {b}"),
            ThrottleEntity::Topic { name, .. } => write!(f, "topic {name}"),
        }
    }
}

/// Where one ledger entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// The prior state is read and recorded; Guardian has not written.
    Recorded,
    /// Guardian's value (`written`) is in force.
    Applied,
    /// The prior state is back.
    Restored,
    /// Someone else changed the value after Guardian wrote it: left alone.
    Conflict,
    /// The operator's value already throttles everything (`*`): left alone.
    Wildcard,
}

/// A throttle value about to be written (`value: None` = DELETE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub value: Option<String>,
}

/// One (entity, key) Guardian may change, with what was there before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub entity: ThrottleEntity,
    pub key: String,
    /// The per-entity dynamic override before the run; `None`: there was
    /// none, so restoring DELETEs the key.
    pub prior: Option<String>,
    /// The value Guardian last wrote and read back.
    pub written: Option<String>,
    /// A value journaled before it is written; cleared once read back.
    /// After a crash it may or may not be in force.
    #[serde(default)]
    pub pending: Option<Pending>,
    pub state: LedgerState,
}

/// One task: a partition's whole change (replicas, dirs, leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub index: u32,
    pub topic: String,
    /// Kafka topic id (URL-safe base64), to tell a re-created topic.
    pub topic_id: String,
    pub partition: i32,
    /// Replicas when the plan was made (order = preference).
    pub original: Vec<i32>,
    /// Replicas to reach; the desired leader first.
    pub target: Vec<i32>,
    /// Target log dir per broker, where the plan names one.
    pub dirs: Vec<(i32, String)>,
    /// Preferred leader to elect once the replicas are in place.
    pub leader: Option<i32>,
    /// Bytes to copy (the partition's size × replicas added or moved).
    pub bytes: u64,
    pub state: TaskState,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub reason: String,
    /// Times its Kafka requests were sent (re-sent after a lost submission).
    pub attempts: u32,
}

impl Task {
    /// Brokers gaining a replica.
    pub fn adding(&self) -> impl Iterator<Item = i32> + '_ {
        self.target
            .iter()
            .copied()
            .filter(|b| !self.original.contains(b))
    }

    /// Brokers losing a replica.
    pub fn removing(&self) -> impl Iterator<Item = i32> + '_ {
        self.original
            .iter()
            .copied()
            .filter(|b| !self.target.contains(b))
    }

    /// Whether the replica set changes (an inter-broker move).
    pub fn moves_replicas(&self) -> bool {
        self.adding().next().is_some() || self.removing().next().is_some()
    }

    /// Every broker the task touches.
    pub fn brokers(&self) -> impl Iterator<Item = i32> + '_ {
        self.original
            .iter()
            .copied()
            .chain(self.adding())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
    }

    pub fn validate(&self) -> Valid {
        let f = |s: &str| format!("tasks[{}].{s}", self.index);
        validate_name(&f("topic"), &self.topic)?;
        if self.partition < 0 {
            return Err(InvalidField::new(f("partition"), "must be >= 0"));
        }
        if self.target.is_empty() {
            return Err(InvalidField::new(f("target"), "must not be empty"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if !self.target.iter().all(|b| *b >= 0 && seen.insert(*b)) {
            return Err(InvalidField::new(
                f("target"),
                "broker ids must be >= 0 and distinct",
            ));
        }
        if let Some((b, _)) = self.dirs.iter().find(|(b, _)| !self.target.contains(b)) {
            return Err(InvalidField::new(
                f("dirs"),
                format!("broker {b} is not in the target"),
            ));
        }
        if let Some(l) = self.leader.filter(|l| !self.target.contains(l)) {
            return Err(InvalidField::new(
                f("leader"),
                format!("broker {l} is not in the target"),
            ));
        }
        Ok(())
    }
}

/// A journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    pub text: String,
}

/// One execution: its header (tasks are kept beside it, by index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub id: u64,
    pub cluster: String,
    /// `rebalance` (more kinds come on the same procedure).
    pub kind: String,
    pub state: ExecState,
    /// No new task starts while set; running ones finish.
    pub paused: bool,
    /// An operator asked to cancel: the executor reverts and restores.
    pub cancel_requested: bool,
    /// Why it failed or was cancelled.
    pub reason: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// A proposal not approved by then can no longer be.
    pub expires_ms: u64,
    pub started_ms: u64,
    pub finished_ms: u64,
    /// Bumped by every applied change; the executor's updates name the
    /// version they were computed from.
    pub version: u64,
    pub task_count: u32,
    pub proposed_by: String,
    pub approved_by: String,
    /// Replication throttle per participating broker, bytes/s.
    pub throttle_rate: u64,
    /// Per broker, in-flight tasks touching it (the pipelining budget).
    pub max_tasks_per_broker: u32,
    pub summary: PlanSummary,
    pub ledger: Vec<LedgerEntry>,
    pub events: Vec<Event>,
}

impl Execution {
    pub fn validate(&self) -> Valid {
        validate_name("cluster", &self.cluster)?;
        if self.kind.is_empty() {
            return Err(InvalidField::new("kind", "must not be empty"));
        }
        if self.max_tasks_per_broker == 0 {
            return Err(InvalidField::new("max_tasks_per_broker", "must be >= 1"));
        }
        Ok(())
    }

    /// Appends a journal line, dropping the oldest beyond [`MAX_EVENTS`].
    pub fn event(&mut self, at_ms: u64, text: impl Into<String>) {
        self.events.push(Event {
            at_ms,
            text: text.into(),
        });
        if self.events.len() > MAX_EVENTS {
            let extra = self.events.len() - MAX_EVENTS;
            self.events.drain(..extra);
        }
    }
}

/// What an operator can do to an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Approve,
    Cancel,
    Pause,
    Resume,
}

impl Control {
    pub fn name(self) -> &'static str {
        match self {
            Control::Approve => "approve",
            Control::Cancel => "cancel",
            Control::Pause => "pause",
            Control::Resume => "resume",
        }
    }
}

/// The executor domain's commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionCmd {
    /// A new execution (its id is assigned by apply) with its first tasks;
    /// `draft` until `task_count` tasks have arrived.
    Create {
        execution: Box<Execution>,
        tasks: Vec<Task>,
    },
    /// More tasks of a draft, indexes continuing where the last chunk ended.
    AppendTasks { id: u64, tasks: Vec<Task> },
    /// The executor's step: the header's executor-owned fields and the
    /// changed tasks, refused unless `expect_version` is current.
    Update {
        id: u64,
        expect_version: u64,
        execution: Box<Execution>,
        tasks: Vec<Task>,
    },
    /// An operator's approve, cancel, pause or resume.
    Control {
        id: u64,
        action: Control,
        by: String,
    },
}

impl ExecutionCmd {
    /// Rough encoded size (JSON), to keep batched log entries bounded.
    pub fn approx_size(&self) -> usize {
        let tasks = match self {
            ExecutionCmd::Create { tasks, .. }
            | ExecutionCmd::AppendTasks { tasks, .. }
            | ExecutionCmd::Update { tasks, .. } => tasks.len(),
            ExecutionCmd::Control { .. } => 0,
        };
        4096 + 256 * tasks
    }

    pub fn validate(&self) -> Valid {
        let tasks = match self {
            ExecutionCmd::Create { execution, tasks } => {
                execution.validate()?;
                tasks
            }
            ExecutionCmd::AppendTasks { tasks, .. } => tasks,
            ExecutionCmd::Update {
                execution, tasks, ..
            } => {
                execution.validate()?;
                tasks
            }
            ExecutionCmd::Control { .. } => return Ok(()),
        };
        if tasks.len() > MAX_TASKS_PER_ENTRY {
            return Err(InvalidField::new(
                "tasks",
                format!("at most {MAX_TASKS_PER_ENTRY} per entry"),
            ));
        }
        tasks.iter().try_for_each(Task::validate)
    }
}
