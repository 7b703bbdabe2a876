//! The executor: plans carried out on real Kafka as durable procedures.
//!
//! - [`live_model`]: registry + load windows + what Kafka reports →
//!   the planner's `ClusterSpec`, with warnings for every missing input;
//! - [`propose`]: plan, verify, fold into one task per partition;
//! - [`ledger`]: the throttle ledger (claims, strictest value, exact
//!   restore of the per-entity override);
//! - [`procedure`]: one step of an execution, journal before action;
//! - [`Executor`]: the leader-only loop driving every active execution,
//!   and [`Executor::propose`], which plans on live data and stores the
//!   proposal through Raft (in chunks under the entry size cap).
//!
//! Failover needs nothing special: the procedure lives in the replicated
//! state, a new leader's executor reads it and its first step reconciles
//! it with the cluster (adopting what is in flight, re-sending what was
//! journaled but lost, never cancelling its own work).

pub mod ledger;
pub mod live_model;
pub mod procedure;
pub mod propose;
pub mod roll;
pub mod workflow;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardian_kafka::KafkaClient;
use guardian_meta_store::CommandResponse;
use guardian_planner::balance::{Goals, PlanOptions};
use guardian_proto::domain::Command;
use guardian_proto::execution::{
    ClusterControls, ExecState, Execution, ExecutionCmd, Intent, PlanSummary, Task,
    MAX_TASKS_PER_ENTRY,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::error::ApiError;
use crate::leader::collector::Collector;
use crate::raft::Controller;
use crate::time::now_ms;
use procedure::{Journal, Soft, StepConfig};

/// `[executor]`: how plans are carried out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// How often the leader steps every active execution.
    pub tick_ms: u64,
    /// Replication and log-dir copy throttle per participating broker.
    pub throttle_bytes_per_sec: u64,
    /// Tasks in flight touching one broker.
    pub max_tasks_per_broker: u32,
    /// A proposal not approved within this long expires.
    pub proposal_ttl_ms: u64,
    /// How long a task whose replicas are in place waits for its leader.
    pub leader_wait_ms: u64,
    /// A broker missing from Kafka's metadata this long is gone (longer
    /// than a restart): tasks adding a replica on it are cancelled.
    pub broker_grace_ms: u64,
    /// Tasks in flight in one cluster.
    pub max_tasks_per_cluster: u32,
    /// Tasks in flight across every cluster of the federation.
    pub max_tasks_federation: u32,
    /// Tasks in flight placing a replica on one log dir, and their bytes.
    pub max_tasks_per_disk: u32,
    pub max_bytes_per_disk: u64,
    /// Bytes of the tasks in flight touching one broker.
    pub max_bytes_per_broker: u64,
    /// Per-broker rate adaptation from the collector's live load: a
    /// broker halves its rate when a disk is busier than `hot-disk-util`
    /// or its produce p99 exceeds `slow-produce-p99-ms`, and adds
    /// `throttle-step-bytes-per-sec` while healthy, within
    /// `[min-, max-throttle-bytes-per-sec]`, at most every
    /// `adapt-interval-ms`. A broker without a fresh reporter keeps its rate.
    pub min_throttle_bytes_per_sec: u64,
    pub max_throttle_bytes_per_sec: u64,
    pub throttle_step_bytes_per_sec: u64,
    pub adapt_interval_ms: u64,
    pub hot_disk_util: f64,
    pub slow_produce_p99_ms: f64,
    /// Proposals within these bounds are approved without an operator.
    pub auto_approve: AutoApprove,
    /// Reassignments in progress that Guardian did not start: `leave`
    /// (default) or `cancel`.
    pub foreign_reassignments: ForeignReassignments,
    /// Plan internal `__*` topics too (excluded by default).
    pub move_internal_topics: bool,
    /// Let `guardian cluster roll` run its restart command (`sh -c`, on
    /// the Guardian leader, as the controller's user). Off by default:
    /// set it on every node (any of them may lead the roll).
    pub allow_restart_commands: bool,
    /// A restart command still running after this long is killed with
    /// its process group, and the roll pauses.
    pub restart_timeout_ms: u64,
}

/// What `propose` does with reassignments in progress that Guardian did
/// not start.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ForeignReassignments {
    /// Report them in the proposal's warnings and leave their partitions
    /// out of the plan.
    #[default]
    Leave,
    /// Cancel them (null target) before planning, as Cruise Control does
    /// by default, and name them in the proposal.
    Cancel,
}

/// `[executor.auto-approve]`: all bounds must hold; none set = manual.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AutoApprove {
    pub enabled: bool,
    pub max_bytes: u64,
    pub max_partitions: u32,
    pub max_brokers: u32,
    /// Hours (0–23) of `time-zone` in which a proposal may be approved;
    /// empty = any.
    pub hours: Vec<u32>,
    /// The time zone of `hours`: `UTC`, or a fixed offset `UTC+08:00` /
    /// `UTC-05:30` (an explicit offset: no daylight-saving guesswork).
    pub time_zone: String,
}

/// Minutes east of UTC of a `time-zone` value, or why it is not one.
pub fn utc_offset_minutes(tz: &str) -> Result<i64, String> {
    let bad = || format!("{tz:?}: expected UTC, UTC+HH:MM or UTC-HH:MM");
    if tz.is_empty() || tz == "UTC" {
        return Ok(0);
    }
    let rest = tz.strip_prefix("UTC").ok_or_else(bad)?;
    let (sign, hm) = match rest.split_at_checked(1).ok_or_else(bad)? {
        ("+", hm) => (1, hm),
        ("-", hm) => (-1, hm),
        _ => return Err(bad()),
    };
    let (h, m) = hm.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 || hm.len() != 5 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

impl Default for AutoApprove {
    fn default() -> Self {
        Self {
            enabled: false,
            max_bytes: 0,
            max_partitions: 0,
            max_brokers: 0,
            hours: Vec::new(),
            time_zone: "UTC".into(),
        }
    }
}

impl AutoApprove {
    /// Why `tasks` may not be approved automatically at `now_ms`, or `None`.
    pub fn refuses(&self, tasks: &[Task], now_ms: u64) -> Option<String> {
        if !self.enabled {
            return Some("auto-approve is off".into());
        }
        let bytes: u64 = tasks.iter().map(|t| t.bytes).sum();
        let brokers: std::collections::BTreeSet<i32> =
            tasks.iter().flat_map(|t| t.brokers()).collect();
        let offset = utc_offset_minutes(&self.time_zone).unwrap_or(0);
        let local_min = (now_ms / 60_000) as i64 + offset;
        let hour = (local_min.div_euclid(60).rem_euclid(24)) as u32;
        if bytes > self.max_bytes {
            Some(format!("{bytes} bytes > max-bytes {}", self.max_bytes))
        } else if tasks.len() > self.max_partitions as usize {
            Some(format!(
                "{} partitions > max-partitions {}",
                tasks.len(),
                self.max_partitions
            ))
        } else if brokers.len() > self.max_brokers as usize {
            Some(format!(
                "{} brokers > max-brokers {}",
                brokers.len(),
                self.max_brokers
            ))
        } else if !self.hours.is_empty() && !self.hours.contains(&hour) {
            Some(format!(
                "hour {hour} ({}) is not in hours {:?}",
                if self.time_zone.is_empty() {
                    "UTC"
                } else {
                    &self.time_zone
                },
                self.hours
            ))
        } else {
            None
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            tick_ms: 250,
            throttle_bytes_per_sec: 50 << 20,
            max_tasks_per_broker: 5,
            proposal_ttl_ms: 3_600_000,
            leader_wait_ms: 60_000,
            broker_grace_ms: 120_000,
            max_tasks_per_cluster: 50,
            max_tasks_federation: 200,
            max_tasks_per_disk: 2,
            max_bytes_per_disk: 1 << 40,
            max_bytes_per_broker: 1 << 40,
            min_throttle_bytes_per_sec: 5 << 20,
            max_throttle_bytes_per_sec: 200 << 20,
            throttle_step_bytes_per_sec: 10 << 20,
            adapt_interval_ms: 10_000,
            hot_disk_util: 0.85,
            slow_produce_p99_ms: 200.0,
            auto_approve: AutoApprove::default(),
            foreign_reassignments: ForeignReassignments::Leave,
            move_internal_topics: false,
            allow_restart_commands: false,
            restart_timeout_ms: 1_800_000,
        }
    }
}

/// What `rebalance propose` asks for.
#[derive(Debug, Clone, Default)]
pub struct ProposeRequest {
    pub cluster: String,
    pub goals: Goals,
    pub max_moves_per_broker: Option<u32>,
    pub dry_run: bool,
    pub by: String,
    /// A line to put first in the proposal's warnings (why it was made).
    pub note: Option<String>,
    /// What the proposal is for (a plain rebalance by default).
    pub intent: Intent,
    /// Approve it at once (the operator asked for it, or a workflow
    /// continues what an operator approved).
    pub approve: bool,
}

/// The reason a preflight gives when the cluster drifted from the plan.
pub const DRIFT: &str = "the cluster changed since the plan was made";

/// A proposal (stored, or not for a dry run).
#[derive(Debug, Clone)]
pub struct Proposed {
    pub execution: Option<Execution>,
    pub summary: PlanSummary,
    pub tasks: Vec<Task>,
}

/// Approves a stored proposal through Raft.
async fn approve(ctl: &Controller, id: u64, by: &str) -> Result<Execution, ApiError> {
    match ctl
        .write(Command::Execution(Box::new(ExecutionCmd::Control {
            id,
            action: guardian_proto::execution::Control::Approve,
            by: by.to_string(),
        })))
        .await?
    {
        CommandResponse::Execution(e) => Ok(*e),
        other => Err(super::api::unexpected_response(other)),
    }
}

/// Stores a new execution with its first tasks (the rest go in chunks).
async fn create(
    ctl: &Controller,
    header: Execution,
    tasks: Vec<Task>,
) -> Result<Execution, ApiError> {
    match ctl
        .write(Command::Execution(Box::new(ExecutionCmd::Create {
            execution: Box::new(header),
            tasks,
        })))
        .await?
    {
        CommandResponse::Execution(e) => Ok(*e),
        other => Err(super::api::unexpected_response(other)),
    }
}

/// The leader's executor.
pub struct Executor {
    pub cfg: ExecutorConfig,
    kafka: KafkaConfig,
    collector: Arc<Collector>,
    clients: Mutex<HashMap<String, Arc<KafkaClient>>>,
    /// Per execution: soft state of the leader (progress in bytes).
    soft: Mutex<BTreeMap<u64, Soft>>,
    /// Topics bound to a tenant but missing from Kafka's metadata, since
    /// when (the reconciler unbinds them after a grace period).
    unbound_since: Mutex<BTreeMap<(String, String), u64>>,
    /// The replicated event log (proposals and execution steps go there).
    pub events: Arc<crate::governance::events::EventLog>,
}

struct RaftJournal<'a>(&'a Controller);

impl Journal for RaftJournal<'_> {
    async fn update(&self, e: &Execution, tasks: Vec<Task>) -> Result<Execution, String> {
        let cmd = ExecutionCmd::Update {
            id: e.id,
            expect_version: e.version,
            execution: Box::new(e.clone()),
            tasks,
        };
        match self.0.write(Command::Execution(Box::new(cmd))).await {
            Ok(CommandResponse::Execution(e)) => Ok(*e),
            Ok(other) => Err(format!("unexpected apply result {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Executor {
    pub fn new(
        cfg: ExecutorConfig,
        kafka: KafkaConfig,
        collector: Arc<Collector>,
        events: Arc<crate::governance::events::EventLog>,
    ) -> Self {
        Self {
            events,
            cfg,
            kafka,
            collector,
            clients: Default::default(),
            soft: Default::default(),
            unbound_since: Default::default(),
        }
    }

    /// The admin client of a registered cluster (one per cluster).
    pub fn client(&self, ctl: &Controller, cluster: &str) -> Result<Arc<KafkaClient>, ApiError> {
        let bootstrap = {
            let st = ctl.state();
            st.registry
                .clusters
                .get(cluster)
                .ok_or_else(|| ApiError::NotFound {
                    what: format!("cluster {cluster:?}"),
                })?
                .bootstrap_servers
                .clone()
        };
        let mut c = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = c.get(cluster) {
            return Ok(k.clone());
        }
        let opts = self
            .kafka
            .connect_options()
            .map_err(|e| ApiError::FailedPrecondition {
                reason: e.to_string(),
            })?;
        let k = Arc::new(KafkaClient::with_options(
            &bootstrap,
            Duration::from_millis(self.kafka.request_timeout_ms.min(10_000)),
            opts,
        ));
        c.insert(cluster.to_string(), k.clone());
        Ok(k)
    }

    /// Bytes copied so far per task of an execution (leader only; empty
    /// elsewhere or before the first step).
    pub fn progress(&self, id: u64) -> BTreeMap<u32, u64> {
        self.soft
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|s| s.progress.clone())
            .unwrap_or_default()
    }

    /// The live model of a cluster with the operator's controls laid over
    /// it, and those controls.
    pub async fn live(
        &self,
        ctl: &Controller,
        cluster: &str,
        k: &KafkaClient,
    ) -> Result<(live_model::LiveModel, ClusterControls), ApiError> {
        let precondition =
            |what: &str, e: guardian_kafka::KafkaError| ApiError::FailedPrecondition {
                reason: format!("{what} of Kafka cluster {cluster:?}: {e}"),
            };
        let md = k
            .metadata()
            .await
            .map_err(|e| precondition("Metadata", e))?;
        let reassignments = k
            .list_reassignments(&[])
            .await
            .map_err(|e| precondition("ListPartitionReassignments", e))?;
        let mut dirs = BTreeMap::new();
        for b in &md.brokers {
            dirs.insert(
                b.id,
                k.describe_log_dirs(b.id).await.map_err(|e| e.to_string()),
            );
        }
        let load = self
            .collector
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let of_cluster: BTreeMap<i32, &crate::load::BrokerLoad> =
            load.brokers_of(cluster).collect();
        let st = ctl.state();
        let inputs = live_model::LiveInputs {
            cluster,
            registry: &st.registry,
            load: &of_cluster,
            now_ms: now_ms(),
            collect_interval_ms: self.collector.interval_ms,
            metadata: &md,
            log_dirs: &dirs,
            reassignments: &reassignments,
        };
        let mut live = live_model::build(&inputs).map_err(|e| ApiError::FailedPrecondition {
            reason: e.to_string(),
        })?;
        let mut controls = st.executions.controls_of(cluster);
        // A rolling restart's current batch is in maintenance meanwhile.
        if let Some(r) = st
            .executions
            .active_on(cluster)
            .and_then(|e| e.roll.as_ref())
        {
            controls.maintenance.extend(r.current().iter().copied());
        }
        let ex =
            live_model::Exclusions::new(&controls.excluded_topics, self.cfg.move_internal_topics)
                .map_err(|reason| ApiError::FailedPrecondition { reason })?;
        live_model::apply_controls(&mut live, &controls, &ex);
        Ok((live, controls))
    }

    /// Plans `r.cluster` on live data and, unless a dry run, stores the
    /// proposal through Raft.
    pub async fn propose(
        &self,
        ctl: &Controller,
        r: &ProposeRequest,
    ) -> Result<Proposed, ApiError> {
        let k = self.client(ctl, &r.cluster)?;
        let precondition =
            |what: &str, e: guardian_kafka::KafkaError| ApiError::FailedPrecondition {
                reason: format!("{what} of Kafka cluster {:?}: {e}", r.cluster),
            };
        let mut cancelled = None;
        let running = ctl.state().executions.active_on(&r.cluster).map(|e| e.id);
        if let (Some(id), ForeignReassignments::Cancel) = (running, self.cfg.foreign_reassignments)
        {
            // Its reassignments are Guardian's own: never cancelled here.
            cancelled = Some(format!(
                "reassignments in progress were not cancelled: execution {id} is running on this cluster"
            ));
        } else if !r.dry_run && self.cfg.foreign_reassignments == ForeignReassignments::Cancel {
            cancelled = self
                .cancel_foreign(&k)
                .await
                .map_err(|e| precondition("cancelling reassignments Guardian did not start", e))?;
        }
        let now = now_ms();
        let (mut live, controls) = self.live(ctl, &r.cluster, &k).await?;
        let proposal = {
            let st = ctl.state();
            if controls.frozen {
                live.warnings.push(format!(
                    "cluster {:?} is frozen ({}): nothing runs until `guardian cluster unfreeze`",
                    r.cluster, controls.frozen_reason
                ));
            }
            let mut opts = PlanOptions::default();
            if let Some(m) = r.max_moves_per_broker {
                opts.max_moves_per_broker = m;
            }
            let mut p = match &r.intent {
                Intent::Revert { of } => {
                    let old = st.executions.tasks_of(*of);
                    propose::revert(&live, old, self.cfg.throttle_bytes_per_sec)
                }
                intent => {
                    let goals = workflow::shape(&mut live, intent, &r.goals)?;
                    propose::propose(&live, &goals, &opts, self.cfg.throttle_bytes_per_sec)
                        .map_err(|e| ApiError::FailedPrecondition { reason: e })?
                }
            };
            if let Some(n) = &r.note {
                p.summary.warnings.insert(0, n.clone());
            }
            if let Some(c) = &cancelled {
                p.summary.warnings.push(c.clone());
            }
            p
        };
        // A dry run, or an approval of nothing (a workflow round with
        // nothing left to move): not stored.
        if r.dry_run || (r.approve && proposal.tasks.is_empty()) {
            return Ok(Proposed {
                execution: None,
                summary: proposal.summary,
                tasks: proposal.tasks,
            });
        }
        let header = self.header(
            &r.cluster,
            &r.intent,
            &r.by,
            proposal.summary.clone(),
            proposal.tasks.len() as u32,
            now,
        );
        let mut chunks = proposal.tasks.chunks(MAX_TASKS_PER_ENTRY);
        let first = chunks.next().map(<[Task]>::to_vec).unwrap_or_default();
        let mut e = create(ctl, header, first).await?;
        for c in chunks {
            e = match ctl
                .write(Command::Execution(Box::new(ExecutionCmd::AppendTasks {
                    id: e.id,
                    tasks: c.to_vec(),
                })))
                .await?
            {
                CommandResponse::Execution(e) => *e,
                other => return Err(super::api::unexpected_response(other)),
            };
        }
        self.events.record(
            &r.cluster,
            "proposal",
            &format!("execution {}", e.id),
            format!(
                "{} proposed by {}: {} tasks, {} bytes to move{}",
                r.intent.kind(),
                if r.by.is_empty() {
                    "an operator"
                } else {
                    &r.by
                },
                proposal.tasks.len(),
                proposal.summary.bytes_to_move,
                r.note.as_ref().map_or(String::new(), |n| format!(" ({n})"))
            ),
            &[
                ("tasks", proposal.tasks.len() as f64),
                ("bytes", proposal.summary.bytes_to_move as f64),
            ],
        );
        let auto = !proposal.tasks.is_empty()
            && self
                .cfg
                .auto_approve
                .refuses(&proposal.tasks, now)
                .is_none();
        if r.approve || auto {
            let by = if r.approve {
                r.by.as_str()
            } else {
                "auto-approve"
            };
            e = approve(ctl, e.id, by).await?;
        }
        Ok(Proposed {
            execution: Some(e),
            summary: proposal.summary,
            tasks: proposal.tasks,
        })
    }

    /// A new proposal's header.
    fn header(
        &self,
        cluster: &str,
        intent: &Intent,
        by: &str,
        summary: PlanSummary,
        task_count: u32,
        now: u64,
    ) -> Execution {
        Execution {
            id: 0,
            cluster: cluster.to_string(),
            kind: intent.kind().into(),
            intent: intent.clone(),
            state: ExecState::Draft,
            paused: false,
            cancel_requested: false,
            reason: String::new(),
            created_ms: now,
            updated_ms: now,
            expires_ms: now + self.cfg.proposal_ttl_ms,
            started_ms: 0,
            finished_ms: 0,
            version: 0,
            task_count,
            proposed_by: by.to_string(),
            approved_by: String::new(),
            throttle_rate: self.cfg.throttle_bytes_per_sec,
            max_tasks_per_broker: self.cfg.max_tasks_per_broker,
            summary,
            ledger: Vec::new(),
            events: Vec::new(),
            roll: None,
        }
    }

    /// Steps every active execution every `tick-ms` until `stop` (the end
    /// of this node's leadership).
    pub async fn run(self: Arc<Self>, ctl: Controller, stop: CancellationToken) {
        let base_cfg = StepConfig {
            leader_wait_ms: self.cfg.leader_wait_ms,
            broker_grace_ms: self.cfg.broker_grace_ms,
            max_tasks_per_cluster: self.cfg.max_tasks_per_cluster,
            max_tasks_per_disk: self.cfg.max_tasks_per_disk,
            max_bytes_per_disk: self.cfg.max_bytes_per_disk,
            max_bytes_per_broker: self.cfg.max_bytes_per_broker,
            adapt: procedure::Adapt {
                min: self.cfg.min_throttle_bytes_per_sec,
                max: self.cfg.max_throttle_bytes_per_sec,
                step: self.cfg.throttle_step_bytes_per_sec,
                every_ms: self.cfg.adapt_interval_ms,
                hot_util: self.cfg.hot_disk_util,
                slow_produce_ms: self.cfg.slow_produce_p99_ms,
            },
            restart_timeout_ms: self.cfg.restart_timeout_ms,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.tick_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            // Workflows move on about once a second.
            ticks += 1;
            if ticks.is_multiple_of(1000 / self.cfg.tick_ms.clamp(10, 1000)) {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.reconcile(&ctl) => {}
                }
            }
            // A frozen cluster's executions wait where they are.
            let active: Vec<(Execution, Vec<Task>, ClusterControls)> = {
                let st = ctl.state();
                st.executions
                    .active()
                    .map(|e| {
                        (
                            e.clone(),
                            st.executions.tasks_of(e.id).to_vec(),
                            st.executions.controls_of(&e.cluster),
                        )
                    })
                    .filter(|(_, _, c)| !c.frozen)
                    // Governance releases its replication throttles first.
                    .filter(|(e, _, _)| {
                        e.state != ExecState::Approved
                            || !st.governance.claims_of(&e.cluster).any(|c| {
                                !matches!(
                                    c.target,
                                    guardian_proto::governance::ThrottleTarget::ClientQuota { .. }
                                ) && c.state != guardian_proto::governance::ClaimState::Observed
                            })
                    })
                    .collect()
            };
            let in_flight = |tasks: &[Task]| {
                tasks
                    .iter()
                    .filter(|t| t.state == guardian_proto::execution::TaskState::Submitted)
                    .count() as u32
            };
            let federation: u32 = active.iter().map(|(_, t, _)| in_flight(t)).sum();
            for (e, tasks, controls) in active {
                // Executions in different clusters run at once, under the
                // federation-wide budget.
                let others = federation - in_flight(&tasks);
                let step_cfg = StepConfig {
                    max_tasks_per_cluster: base_cfg
                        .max_tasks_per_cluster
                        .min(self.cfg.max_tasks_federation.saturating_sub(others)),
                    ..base_cfg.clone()
                };
                let k = match self.client(&ctl, &e.cluster) {
                    Ok(k) => k,
                    Err(err) => {
                        tracing::warn!(execution = e.id, %err, "no Kafka client");
                        continue;
                    }
                };
                let mut soft = self
                    .soft
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&e.id)
                    .unwrap_or_default();
                soft.health = self.health(&e.cluster);
                soft.held = controls.maintenance.clone();
                let journal = RaftJournal(&ctl);
                // approved → preflight → executing run back to back: an
                // approval starts moving bytes within one tick.
                let mut r = Ok(e.clone());
                let mut cur = e.clone();
                let mut tasks = tasks;
                for _ in 0..3 {
                    r = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = procedure::step(&*k, &journal, &cur, &tasks, &step_cfg, &mut soft, now_ms()) => r,
                    };
                    match &r {
                        Ok(after)
                            if matches!(cur.state, ExecState::Approved | ExecState::Preflight)
                                && after.state != cur.state =>
                        {
                            cur = after.clone();
                            tasks = ctl.state().executions.tasks_of(cur.id).to_vec();
                        }
                        _ => break,
                    }
                }
                if let Ok(after) = &r {
                    // The journal only appends (dropping its oldest lines):
                    // what follows the last line this step started from is new.
                    let from = e
                        .events
                        .last()
                        .and_then(|last| after.events.iter().rposition(|ev| ev == last))
                        .map_or(0, |i| i + 1);
                    for ev in &after.events[from..] {
                        self.events.record(
                            &e.cluster,
                            "execution",
                            &format!("execution {}", e.id),
                            ev.text.clone(),
                            &[],
                        );
                    }
                }
                match r {
                    Ok(after) if after.state != e.state => {
                        tracing::info!(
                            execution = e.id,
                            from = e.state.name(),
                            to = after.state.name(),
                            "execution step"
                        );
                        if after.state == ExecState::Failed && after.reason.starts_with(DRIFT) {
                            self.replan(&ctl, &after).await;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(execution = e.id, %err, "execution step failed; retrying")
                    }
                }
                self.soft
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(e.id, soft);
            }
        }
    }

    /// A plan the cluster drifted from is planned again on the cluster as
    /// it is now, with the same goals, and stored as a new proposal for
    /// review (or approved, within the auto-approve bounds): what was
    /// approved is never silently replaced by something else.
    async fn replan(&self, ctl: &Controller, old: &Execution) {
        let mut goals = Goals::default();
        for (k, v) in &old.summary.goals {
            // Rate goals switched off for missing reporters are re-derived.
            if *v < 1e5 {
                let _ = goals.set(k, *v);
            }
        }
        let r = ProposeRequest {
            cluster: old.cluster.clone(),
            goals,
            max_moves_per_broker: None,
            dry_run: false,
            by: "the executor".into(),
            note: Some(format!(
                "re-planned: execution {} found that {}",
                old.id,
                old.reason.trim_start_matches("the ")
            )),
            intent: old.intent.clone(),
            approve: false,
        };
        match self.propose(ctl, &r).await {
            Ok(p) => tracing::info!(
                execution = old.id,
                proposal = p.execution.map_or(0, |e| e.id),
                "re-planned after drift"
            ),
            Err(err) => tracing::warn!(execution = old.id, %err, "re-planning after drift failed"),
        }
    }

    /// `foreign-reassignments = "cancel"`: every reassignment in progress
    /// (none is Guardian's: `propose` does not call this while an
    /// execution runs on the cluster) is cancelled before planning, and the
    /// proposal names them. `None` when there were none.
    async fn cancel_foreign(
        &self,
        k: &KafkaClient,
    ) -> Result<Option<String>, guardian_kafka::KafkaError> {
        let moving = k.list_reassignments(&[]).await?;
        if moving.is_empty() {
            return Ok(None);
        }
        let targets: Vec<_> = moving
            .iter()
            .map(|m| {
                (
                    guardian_kafka::TopicPartition::new(m.topic.clone(), m.partition),
                    None,
                )
            })
            .collect();
        k.alter_reassignments(&targets, false).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !k.list_reassignments(&[]).await?.is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let names: Vec<String> = moving
            .iter()
            .map(|m| format!("{}-{}", m.topic, m.partition))
            .collect();
        Ok(Some(format!(
            "cancelled {} reassignments Guardian did not start (executor.foreign-reassignments = \"cancel\"): {}",
            names.len(),
            names.join(", ")
        )))
    }

    /// Live health of a cluster's brokers with a fresh reporter.
    fn health(&self, cluster: &str) -> BTreeMap<i32, procedure::Health> {
        let now = now_ms();
        let load = self
            .collector
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner());
        load.brokers_of(cluster)
            .filter(|(_, l)| l.stale_reason(now, self.collector.interval_ms).is_none())
            .map(|(id, l)| {
                let disk_util = l.disks.iter().map(|d| d.util.last).fold(0.0, f64::max);
                let produce_p99_ms = l
                    .metrics
                    .as_ref()
                    .and_then(|m| m.request_p99_ms.get("Produce").copied());
                (
                    id,
                    procedure::Health {
                        disk_util,
                        produce_p99_ms,
                    },
                )
            })
            .collect()
    }

    /// Forgets the soft state (a node that stops leading).
    pub fn clear(&self) {
        self.soft.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod roll_tests;
#[cfg(test)]
mod tests;
