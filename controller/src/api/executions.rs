//! Rebalance proposals and their executions: `ProposeRebalance` (leader
//! only: it reads Kafka and the leader's load windows), `ListExecutions`,
//! `GetExecution` (with live progress on the leader) and
//! `ControlExecution` (approve, cancel, pause, resume — through Raft).

use guardian_meta_store::CommandResponse;
use guardian_planner::balance::Goals;
use guardian_proto::domain::Command;
use guardian_proto::execution::{Control, Execution, ExecutionCmd, Intent, Task};
use guardian_proto::pb;
use serde::Serialize;

use super::{unexpected, Api, Call};
use crate::error::ApiError;
use crate::executor::ProposeRequest;

/// What `show` prints and `-o json` returns.
#[derive(Serialize)]
struct View<'a> {
    execution: &'a Execution,
    tasks: Vec<TaskView<'a>>,
    /// Bytes copied of the bytes to move (in-flight tasks measured live on
    /// the leader, finished ones in full).
    bytes_done: u64,
    /// Seconds left at the throttle rate, through the busiest broker.
    eta_secs: u64,
    /// Whether progress was measured live (only the leader measures).
    live_progress: bool,
    /// The throttle configs the execution sets while its tasks run (the
    /// ledger restores what was there before).
    planned_throttles: Vec<crate::executor::ledger::Planned>,
}

#[derive(Serialize)]
struct TaskView<'a> {
    #[serde(flatten)]
    task: &'a Task,
    progress_bytes: u64,
}

fn view(api: &Call<'_>, e: &Execution, tasks: &[Task]) -> Result<pb::ExecutionJson, ApiError> {
    let planned_throttles = crate::executor::ledger::planned(tasks, e.throttle_rate);
    let progress = api.executor.progress(e.id);
    let live = !progress.is_empty();
    let tasks: Vec<TaskView> = tasks
        .iter()
        .map(|t| TaskView {
            task: t,
            progress_bytes: if t.state == guardian_proto::execution::TaskState::Done {
                t.bytes
            } else {
                progress.get(&t.index).copied().unwrap_or(0)
            },
        })
        .collect();
    let bytes_done: u64 = tasks.iter().map(|t| t.progress_bytes).sum();
    let total: u64 = tasks.iter().map(|t| t.task.bytes).sum();
    let left = total.saturating_sub(bytes_done);
    let eta_secs = if e.state.terminal() || total == 0 {
        0
    } else {
        // The plan's ETA scaled by what is left.
        (e.summary.eta_secs as f64 * left as f64 / total as f64).ceil() as u64
    };
    let json = serde_json::to_string(&View {
        execution: e,
        tasks,
        bytes_done,
        eta_secs,
        live_progress: live,
        planned_throttles,
    })
    .map_err(|err| ApiError::Internal {
        reason: err.to_string(),
    })?;
    Ok(pb::ExecutionJson { json })
}

pub async fn propose_rebalance(
    api: &Call<'_>,
    r: pb::ProposeRebalanceRequest,
) -> Result<pb::ExecutionJson, ApiError> {
    drop(api.cluster_state(&r.cluster, false).await?);
    api.ctl.ensure_leader()?;
    let mut goals = Goals::default();
    for (k, v) in &r.goals {
        goals
            .set(k, *v)
            .map_err(|e| ApiError::invalid(format!("goals.{k}"), e.to_string()))?;
    }
    let intent: Intent = if r.intent.is_empty() {
        Intent::Rebalance
    } else {
        serde_json::from_str(&r.intent)
            .map_err(|e| ApiError::invalid("intent", format!("not an intent: {e}")))?
    };
    if let Intent::Roll { .. } = intent {
        return Err(ApiError::invalid(
            "intent",
            "a rolling restart is proposed with RollCluster (`guardian cluster roll`, admin)",
        ));
    }
    // A workflow records what it needs first (undone if planning fails).
    let undo = if r.dry_run {
        Vec::new()
    } else {
        super::workflows::prepare(api, &r.cluster, &intent).await?
    };
    let proposed = api
        .executor
        .propose(
            &api.ctl,
            &ProposeRequest {
                cluster: r.cluster.clone(),
                goals,
                max_moves_per_broker: (r.max_moves_per_broker > 0)
                    .then_some(r.max_moves_per_broker),
                dry_run: r.dry_run,
                by: String::new(),
                note: None,
                intent: intent.clone(),
                approve: r.approve,
            },
        )
        .await;
    let p = match proposed {
        Ok(p) => p,
        Err(e) => {
            for cmd in undo {
                if let Err(u) = api.ctl.write(cmd).await {
                    tracing::warn!(%u, "undoing a workflow's preparation failed");
                }
            }
            return Err(e);
        }
    };
    match &p.execution {
        Some(e) => view(api, e, &p.tasks),
        None => {
            // A dry run: the same view of an execution never stored.
            let e = Execution {
                id: 0,
                cluster: r.cluster,
                kind: intent.kind().into(),
                intent,
                state: guardian_proto::execution::ExecState::Draft,
                paused: false,
                cancel_requested: false,
                reason: if r.dry_run {
                    "dry run: not stored".into()
                } else {
                    "nothing to move: not stored".into()
                },
                created_ms: 0,
                updated_ms: 0,
                expires_ms: 0,
                started_ms: 0,
                finished_ms: 0,
                version: 0,
                task_count: p.tasks.len() as u32,
                proposed_by: String::new(),
                approved_by: String::new(),
                throttle_rate: api.executor.cfg.throttle_bytes_per_sec,
                max_tasks_per_broker: api.executor.cfg.max_tasks_per_broker,
                summary: p.summary,
                ledger: Vec::new(),
                events: Vec::new(),
                roll: None,
            };
            view(api, &e, &p.tasks)
        }
    }
}

pub async fn roll_cluster(
    api: &Call<'_>,
    r: pb::RollClusterRequest,
) -> Result<pb::ExecutionJson, ApiError> {
    drop(api.cluster_state(&r.cluster, false).await?);
    api.ctl.ensure_leader()?;
    let p = api
        .executor
        .propose_roll(
            &api.ctl,
            &crate::executor::roll::RollRequest {
                cluster: r.cluster,
                batch: r.batch,
                command: r.restart_command,
                brokers: r.brokers,
                approve: r.approve,
                dry_run: r.dry_run,
                by: String::new(),
            },
        )
        .await?;
    let e = p.execution.expect("a roll proposal has its header");
    view(api, &e, &[])
}

pub async fn list_executions(
    api: &Call<'_>,
    r: pb::ListExecutionsRequest,
) -> Result<pb::ListExecutionsResponse, ApiError> {
    api.ctl.read_barrier(r.stale).await?;
    let st = api.ctl.state();
    let executions = st
        .executions
        .by_id
        .values()
        .filter(|e| r.cluster.is_empty() || e.cluster == r.cluster)
        .map(|e| {
            let tasks = st.executions.tasks_of(e.id);
            pb::ExecutionBrief {
                id: e.id,
                cluster: e.cluster.clone(),
                kind: e.kind.clone(),
                state: e.state.name().into(),
                paused: e.paused,
                bytes_to_move: e.summary.bytes_to_move,
                tasks: e.task_count,
                tasks_finished: tasks.iter().filter(|t| t.state.finished()).count() as u32,
                created_ms: e.created_ms,
                reason: e.reason.clone(),
            }
        })
        .collect();
    Ok(pb::ListExecutionsResponse { executions })
}

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound {
        what: format!("execution {id}"),
    }
}

pub async fn get_execution(
    api: &Call<'_>,
    r: pb::GetExecutionRequest,
) -> Result<pb::ExecutionJson, ApiError> {
    api.ctl.read_barrier(r.stale).await?;
    let (e, tasks) = {
        let st = api.ctl.state();
        let e = st
            .executions
            .by_id
            .get(&r.id)
            .ok_or_else(|| not_found(r.id))?;
        (e.clone(), st.executions.tasks_of(r.id).to_vec())
    };
    view(api, &e, &tasks)
}

pub async fn control_execution(
    api: &Call<'_>,
    r: pb::ControlExecutionRequest,
) -> Result<pb::ExecutionJson, ApiError> {
    let action = match r.action.as_str() {
        "approve" => Control::Approve,
        "cancel" => Control::Cancel,
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        other => {
            return Err(ApiError::invalid(
                "action",
                format!("{other:?}: expected approve, cancel, pause or resume"),
            ))
        }
    };
    let e = match api
        .write(Command::Execution(Box::new(ExecutionCmd::Control {
            id: r.id,
            action,
            by: String::new(),
        })))
        .await?
    {
        CommandResponse::Execution(e) => *e,
        other => return Err(unexpected(other)),
    };
    control_event(api, &e);
    let tasks = api.ctl.state().executions.tasks_of(e.id).to_vec();
    view(api, &e, &tasks)
}

/// An operator's control of an execution in the event log: the journal
/// line it added (`approved by …`, `cancel requested by …`). The executor
/// mirrors only the lines its own steps add.
pub(super) fn control_event(api: &Api, e: &Execution) {
    if let Some(line) = e.events.last() {
        api.executor.events.record(
            &e.cluster,
            "execution",
            &format!("execution {}", e.id),
            line.text.clone(),
            &[],
        );
    }
}
