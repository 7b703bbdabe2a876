//! Self-healing (leader, each governance round): a registered broker
//! missing from Kafka's metadata for longer than
//! `healing.broker-failure-ms`, or an offline log dir, becomes a proposal
//! that moves only what must move (every goal off: the dead broker's and
//! the failed dir's replicas re-placed on live brokers and dirs, the
//! replication factor restored where the live brokers allow it, the rest
//! listed unplaced with the reason). It goes through the executor and its
//! approval policy like any proposal. A broker that comes back (and dirs
//! back online) before the proposal runs cancels it. A broker in
//! maintenance, or being decommissioned, triggers nothing.

use std::collections::{BTreeMap, BTreeSet};

use guardian_proto::domain::Command;
use guardian_proto::execution::{Control, ExecState, ExecutionCmd};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::executor::live_model::LiveModel;
use crate::executor::{Executor, ProposeRequest};
use crate::raft::Controller;

use super::events::EventLog;

/// `[healing]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct HealingConfig {
    pub enabled: bool,
    /// A broker absent from Kafka's metadata this long is healed around
    /// (keep it ≥ `executor.broker-grace-ms`: the executor moves replicas
    /// off a missing broker only after its grace period).
    pub broker_failure_ms: u64,
}

impl Default for HealingConfig {
    fn default() -> Self {
        HealingConfig {
            enabled: true,
            broker_failure_ms: 300_000,
        }
    }
}

/// A healing proposal: its execution id, the dead brokers and the offline
/// (broker, dir)s it heals.
type Healing = (u64, BTreeSet<i32>, BTreeSet<(i32, String)>);

/// What healing tracks on one cluster (leader soft state).
#[derive(Debug, Default)]
pub struct HealingSoft {
    /// Brokers missing from Metadata, since when.
    missing_since: BTreeMap<i32, u64>,
    /// The healing proposal in flight, and what it heals.
    proposal: Option<Healing>,
    /// The last "nothing to move" reason named.
    noted: String,
}

/// One healing step for `cluster`, from the round's live model.
#[allow(clippy::too_many_arguments)]
pub async fn step(
    cfg: &HealingConfig,
    ctl: &Controller,
    executor: &Executor,
    events: &EventLog,
    cluster: &str,
    live: &LiveModel,
    soft: &mut HealingSoft,
    now: u64,
) -> Result<(), ApiError> {
    if !cfg.enabled {
        return Ok(());
    }
    let controls = ctl.state().executions.controls_of(cluster);
    let spared =
        |b: i32| controls.maintenance.contains(&b) || controls.decommission.contains_key(&b);
    let dead_now: BTreeSet<i32> = live
        .spec
        .brokers
        .iter()
        .filter(|b| !b.alive && !spared(b.id))
        .map(|b| b.id)
        .collect();
    soft.missing_since.retain(|b, _| dead_now.contains(b));
    for b in &dead_now {
        soft.missing_since.entry(*b).or_insert(now);
    }
    let dead: BTreeSet<i32> = soft
        .missing_since
        .iter()
        .filter(|(_, since)| now.saturating_sub(**since) >= cfg.broker_failure_ms)
        .map(|(b, _)| *b)
        .collect();
    let failed: BTreeSet<(i32, String)> = live
        .spec
        .brokers
        .iter()
        .filter(|b| b.alive && !spared(b.id))
        .flat_map(|b| {
            b.disks
                .iter()
                .filter(|d| d.failed)
                .map(move |d| (b.id, d.dir.clone()))
        })
        .collect();
    if let Some((id, brokers, dirs)) = soft.proposal.clone() {
        let state = ctl.state().executions.by_id.get(&id).map(|e| e.state);
        match state {
            None => soft.proposal = None,
            Some(s) if s.terminal() => {
                events.record(
                    cluster,
                    "healing",
                    &format!("execution {id}"),
                    format!("healing execution {id} ended {}", s.name()),
                    &[],
                );
                soft.proposal = None;
            }
            Some(ExecState::Proposed | ExecState::Approved | ExecState::Draft)
                if brokers.iter().all(|b| !dead_now.contains(b))
                    && dirs.iter().all(|d| !failed.contains(d)) =>
            {
                ctl.write(Command::Execution(Box::new(ExecutionCmd::Control {
                    id,
                    action: Control::Cancel,
                    by: "healing".into(),
                })))
                .await?;
                events.record(
                    cluster,
                    "healing",
                    &format!("execution {id}"),
                    format!(
                        "brokers {:?} and dirs {:?} are back before healing execution {id} ran: cancelled",
                        brokers.iter().collect::<Vec<_>>(),
                        dirs.iter().collect::<Vec<_>>()
                    ),
                    &[],
                );
                soft.proposal = None;
            }
            Some(_) => {}
        }
        return Ok(());
    }
    if dead.is_empty() && failed.is_empty() {
        return Ok(());
    }
    if ctl.state().executions.active_on(cluster).is_some() {
        return Ok(()); // one execution at a time; the next round retries
    }
    let why = format!(
        "healing: {}{}",
        if dead.is_empty() {
            String::new()
        } else {
            format!(
                "brokers {:?} absent from Kafka's metadata for more than {} ms; ",
                dead.iter().collect::<Vec<_>>(),
                cfg.broker_failure_ms
            )
        },
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                "log dirs offline: {}; ",
                failed
                    .iter()
                    .map(|(b, d)| format!("broker {b} {d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let mut r = ProposeRequest {
        cluster: cluster.to_string(),
        goals: crate::executor::propose::forced_only(),
        dry_run: true,
        by: "healing".into(),
        note: Some(why.trim_end_matches("; ").to_string()),
        ..Default::default()
    };
    let dry = executor.propose(ctl, &r).await?;
    if dry.tasks.is_empty() {
        let text = format!(
            "{}: nothing can move ({})",
            why.trim_end_matches("; "),
            dry.summary.unplaced.join("; ")
        );
        if soft.noted != text {
            events.record(cluster, "healing", cluster, text.clone(), &[]);
            soft.noted = text;
        }
        return Ok(());
    }
    r.dry_run = false;
    let p = executor.propose(ctl, &r).await?;
    if let Some(e) = &p.execution {
        events.record(
            cluster,
            "healing",
            &format!("execution {}", e.id),
            format!(
                "{} → execution {} ({} tasks, {}; unplaced: {})",
                why.trim_end_matches("; "),
                e.id,
                p.tasks.len(),
                e.state.name(),
                if p.summary.unplaced.is_empty() {
                    "none".to_string()
                } else {
                    p.summary.unplaced.join("; ")
                }
            ),
            &[("tasks", p.tasks.len() as f64)],
        );
        soft.proposal = Some((e.id, dead, failed));
    }
    Ok(())
}
