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
    /// Log dir per original replica when the plan was made (the way back).
    #[serde(default)]
    pub original_dirs: Vec<(i32, String)>,
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
    /// `rebalance`, `decommission`, `pool-add`, `pool-release`,
    /// `migrate-idc` or `revert`: [`Intent::kind`].
    pub kind: String,
    /// What the execution is for, and what happens when it ends.
    #[serde(default)]
    pub intent: Intent,
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
    /// A rolling restart's progress (executor-owned; `None` for plans).
    #[serde(default)]
    pub roll: Option<RollState>,
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
        if let Intent::Roll { batch, command } = &self.intent {
            if *batch == 0 {
                return Err(InvalidField::new("batch", "must be >= 1"));
            }
            if command.trim().is_empty() {
                return Err(InvalidField::new("restart_command", "must not be empty"));
            }
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

/// Why an execution exists. Every kind runs on the same procedure; the
/// intent says what the plan was made for and what follows its end (a
/// drained broker is marked empty, a released broker leaves its pool).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Intent {
    /// Balance the cluster to its goals.
    #[default]
    Rebalance,
    /// Drain a broker; when it holds nothing it is ready to shut down.
    Decommission { broker: i32 },
    /// Spread a tenant's topics onto a broker newly in its pool.
    PoolAdd { tenant: String, broker: i32 },
    /// Move a tenant's replicas off a broker, then release it.
    PoolRelease { tenant: String, broker: i32 },
    /// Move a topic's replicas into one IDC (its new policy).
    MigrateIdc { topic: String, idc: String },
    /// The way back from an earlier execution.
    Revert { of: u64 },
    /// Restart every broker, `batch` at a time, with the operator's
    /// command (run by `sh -c` on the Guardian leader, once per broker),
    /// leadership moved off first and restored after.
    Roll { batch: u32, command: String },
}

impl Intent {
    pub fn kind(&self) -> &'static str {
        match self {
            Intent::Rebalance => "rebalance",
            Intent::Decommission { .. } => "decommission",
            Intent::PoolAdd { .. } => "pool-add",
            Intent::PoolRelease { .. } => "pool-release",
            Intent::MigrateIdc { .. } => "migrate-idc",
            Intent::Revert { .. } => "revert",
            Intent::Roll { .. } => "roll",
        }
    }
}

/// Where a rolling restart's current batch is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollPhase {
    /// Waiting for no partition of the cluster to be under-replicated.
    #[default]
    Waiting,
    /// Preferred replicas reordered off the batch, leaders elected.
    Demoting,
    /// The restart command runs for each broker of the batch.
    Restarting,
    /// Waiting for the batch to be back in Metadata and in sync.
    Recovering,
    /// The original replica order back, preferred leaders elected.
    Restoring,
}

impl RollPhase {
    pub fn name(self) -> &'static str {
        match self {
            RollPhase::Waiting => "waiting",
            RollPhase::Demoting => "demoting",
            RollPhase::Restarting => "restarting",
            RollPhase::Recovering => "recovering",
            RollPhase::Restoring => "restoring",
        }
    }
}

/// A partition whose replica order the roll changed (to move its
/// preferred leader off the batch), with the order to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demoted {
    pub topic: String,
    pub partition: i32,
    /// The replicas before the roll reordered them (order = preference).
    pub replicas: Vec<i32>,
}

/// A rolling restart's progress, journaled before each action so a new
/// leader resumes it where it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RollState {
    /// The brokers, batch by batch, fixed when the roll was proposed.
    pub batches: Vec<Vec<i32>>,
    /// The current batch (`batches.len()`: every batch is done).
    pub batch: u32,
    pub phase: RollPhase,
    /// When the phase began (its timeouts count from here).
    pub phase_ms: u64,
    /// Partitions reordered for the current batch.
    pub demoted: Vec<Demoted>,
    /// Brokers of the batch whose restart command was started (journaled
    /// before it runs: one started and not `restarted` is run again by a
    /// new leader — restart commands must tolerate that).
    pub started: Vec<i32>,
    /// Brokers of the batch whose restart command exited 0.
    pub restarted: Vec<i32>,
}

impl RollState {
    /// The brokers of the current batch (none once every batch is done).
    pub fn current(&self) -> &[i32] {
        self.batches
            .get(self.batch as usize)
            .map_or(&[], Vec::as_slice)
    }
}

/// How far a broker's decommission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainState {
    /// Replicas are still moving off (new ones Kafka places there too).
    Draining,
    /// It holds no replica: ready to shut down.
    Empty,
}

/// An operator's standing controls over one cluster: what the executor
/// may touch and what it must leave alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterControls {
    /// No actuation at all while set (executions wait where they are).
    pub frozen: bool,
    pub frozen_reason: String,
    /// Topic names or regular expressions (whole name) never moved.
    pub excluded_topics: Vec<String>,
    /// Brokers plans neither move replicas to nor from.
    pub excluded_brokers: std::collections::BTreeSet<i32>,
    /// Brokers in maintenance: no new replicas, their tasks wait.
    pub maintenance: std::collections::BTreeSet<i32>,
    /// Brokers being decommissioned and how far they are.
    pub decommission: BTreeMap<i32, DrainState>,
    /// Brokers being released from a tenant pool (broker → tenant).
    pub releasing: BTreeMap<i32, String>,
    /// The tenant of each topic created through Guardian (or bound).
    pub topic_tenants: BTreeMap<String, String>,
}

impl ClusterControls {
    pub fn is_empty(&self) -> bool {
        *self == ClusterControls::default()
    }
}

/// A change to a cluster's controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlsCmd {
    Freeze {
        frozen: bool,
        reason: String,
    },
    /// Adds (or removes) topic names / patterns from the exclusions.
    ExcludeTopics {
        patterns: Vec<String>,
        remove: bool,
    },
    ExcludeBrokers {
        ids: Vec<i32>,
        remove: bool,
    },
    Maintenance {
        broker: i32,
        on: bool,
    },
    /// Starts, advances or ends (`None`) a broker's decommission.
    Decommission {
        broker: i32,
        state: Option<DrainState>,
    },
    /// Marks a pool broker as being released (`None`: no longer).
    Release {
        broker: i32,
        tenant: Option<String>,
    },
    /// Binds a topic to a tenant (`None`: unbinds).
    BindTopic {
        topic: String,
        tenant: Option<String>,
    },
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
    /// A change to a cluster's standing controls.
    Controls { cluster: String, cmd: ControlsCmd },
}

impl ExecutionCmd {
    /// Rough encoded size (JSON), to keep batched log entries bounded.
    pub fn approx_size(&self) -> usize {
        let tasks = match self {
            ExecutionCmd::Create { tasks, .. }
            | ExecutionCmd::AppendTasks { tasks, .. }
            | ExecutionCmd::Update { tasks, .. } => tasks.len(),
            ExecutionCmd::Control { .. } | ExecutionCmd::Controls { .. } => 0,
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
            ExecutionCmd::Controls { cluster, cmd } => {
                validate_name("cluster", cluster)?;
                return match cmd {
                    ControlsCmd::BindTopic { topic, .. } if topic.is_empty() => {
                        Err(InvalidField::new("topic", "must not be empty"))
                    }
                    ControlsCmd::ExcludeTopics { patterns, .. }
                        if patterns.iter().any(|p| p.is_empty()) =>
                    {
                        Err(InvalidField::new("topics", "a pattern must not be empty"))
                    }
                    _ => Ok(()),
                };
            }
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
