//! A rolling restart as a procedure. For each batch of brokers:
//!
//! 1. **waiting** — no partition of the cluster is under-replicated (the
//!    roll pauses here, named once, until it is healthy);
//! 2. **demoting** — every partition whose preferred replica is in the
//!    batch gets a same-set reassignment that puts the batch's replicas
//!    last (no byte is copied; Kafka's own preferred-leader balancing then
//!    keeps leadership off the batch), and a preferred election;
//! 3. **restarting** — the operator's command runs (`sh -c`) once per
//!    broker of the batch, journaled as started before it runs and as
//!    restarted once it exits 0; a command that fails pauses the roll;
//! 4. **recovering** — every broker of the batch is back in Metadata and
//!    every replica on it is in sync;
//! 5. **restoring** — the original replica order back and preferred
//!    leaders elected; then the next batch.
//!
//! Every phase change is journaled through Raft before the action it
//! starts, so a new leader resumes the roll where it was: it re-sends
//! reorders and elections (idempotent) and re-runs a restart command that
//! was started and not seen to finish. A cancel restores the current
//! batch's leadership (after any running command ends) and stops.

use std::collections::BTreeSet;
use std::time::Duration;

use guardian_kafka::types::{Election, TopicPartition};
use guardian_kafka::{ClusterMetadata, KafkaAdmin};
use guardian_proto::execution::{Demoted, ExecState, Execution, Intent, RollPhase, RollState};

use super::procedure::{Journal, Soft, StepConfig, StepError};
use crate::error::ApiError;
use crate::raft::Controller;
use crate::time::now_ms;

/// Partitions per AlterPartitionReassignments or ElectLeaders request.
const CHUNK: usize = 1_000;

/// `replicas` with the batch's brokers moved last (relative order kept).
pub fn demote_order(replicas: &[i32], batch: &[i32]) -> Vec<i32> {
    let (mut keep, last): (Vec<i32>, Vec<i32>) = replicas.iter().partition(|b| !batch.contains(b));
    keep.extend(last);
    keep
}

/// The partitions whose preferred replica is in `batch` and that have a
/// replica elsewhere to lead meanwhile, and how many have every replica
/// in the batch (offline while it restarts).
pub fn to_demote(md: &ClusterMetadata, batch: &[i32]) -> (Vec<Demoted>, Vec<String>) {
    let mut demoted = Vec::new();
    let mut stranded = Vec::new();
    for t in &md.topics {
        for p in &t.partitions {
            let Some(first) = p.replicas.first() else {
                continue;
            };
            if !batch.contains(first) {
                continue;
            }
            if p.replicas.iter().all(|b| batch.contains(b)) {
                stranded.push(format!("{}-{}", t.name, p.partition));
                continue;
            }
            demoted.push(Demoted {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
            });
        }
    }
    (demoted, stranded)
}

fn find<'a>(
    md: &'a ClusterMetadata,
    topic: &str,
    partition: i32,
) -> Option<&'a guardian_kafka::PartitionInfo> {
    md.topics
        .iter()
        .find(|t| t.name == topic)?
        .partitions
        .iter()
        .find(|p| p.partition == partition)
}

/// Partitions led by a broker of `batch` that could be led elsewhere (an
/// in-sync replica outside the batch).
fn led_by(md: &ClusterMetadata, batch: &[i32]) -> Vec<TopicPartition> {
    md.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| batch.contains(&p.leader) && p.isr.iter().any(|b| !batch.contains(b)))
                .map(|p| TopicPartition::new(t.name.clone(), p.partition))
        })
        .collect()
}

/// Partitions with fewer in-sync replicas than replicas.
fn under_replicated(md: &ClusterMetadata) -> Vec<String> {
    md.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.isr.len() < p.replicas.len())
                .map(|p| format!("{}-{}", t.name, p.partition))
        })
        .collect()
}

/// Partitions with a reassignment in progress.
async fn moving<K: KafkaAdmin>(k: &K) -> Result<BTreeSet<(String, i32)>, StepError> {
    Ok(k.list_reassignments(&[])
        .await?
        .into_iter()
        .map(|m| (m.topic, m.partition))
        .collect())
}

fn sample(v: &[String]) -> String {
    let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > 5 {
        s.push_str(&format!(", … ({} in all)", v.len()));
    }
    s
}

async fn reorder<K: KafkaAdmin>(
    k: &K,
    e: &mut Execution,
    moves: &[(TopicPartition, Option<Vec<i32>>)],
    now: u64,
) -> Result<(), StepError> {
    for chunk in moves.chunks(CHUNK) {
        for (tp, r) in k.alter_reassignments(chunk, false).await? {
            match r {
                Ok(()) => {}
                Err(err) if err.is_retriable() => {}
                Err(err) => e.event(now, format!("reordering the replicas of {tp}: {err}")),
            }
        }
    }
    Ok(())
}

async fn elect<K: KafkaAdmin>(
    k: &K,
    e: &mut Execution,
    tps: &[TopicPartition],
    now: u64,
) -> Result<(), StepError> {
    for chunk in tps.chunks(CHUNK) {
        for (tp, r) in k.elect_preferred_leaders(chunk).await? {
            match r {
                Ok(Election::Elected) | Ok(Election::NotNeeded) => {}
                // PREFERRED_LEADER_NOT_AVAILABLE until it is in sync.
                Err(err) if err.is_retriable() => {}
                Err(err) => e.event(now, format!("electing the leader of {tp}: {err}")),
            }
        }
    }
    Ok(())
}

/// Runs the restart command for broker `b` (`sh -c`, in its own process
/// group, killed with its group when it outlives `timeout`).
fn spawn(
    command: &str,
    env: [(&str, String); 4],
    timeout: Duration,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(command)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    tokio::spawn(async move {
        let child = c
            .spawn()
            .map_err(|e| format!("could not start `sh -c`: {e}"))?;
        let group = child.id();
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_) => {
                if let Some(pid) = group {
                    // The command's own group: `sh` and whatever it started.
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Err(format!(
                    "still running after {} s: killed",
                    timeout.as_secs()
                ))
            }
            Ok(Err(e)) => Err(format!("waiting for it: {e}")),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => {
                let text = if out.stderr.is_empty() {
                    out.stdout
                } else {
                    out.stderr
                };
                let text = String::from_utf8_lossy(&text);
                let tail: String = text
                    .trim_end()
                    .chars()
                    .rev()
                    .take(300)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Err(format!("{}: {tail}", out.status))
            }
        }
    })
}

/// One step of a roll (state `executing`).
pub async fn step<K: KafkaAdmin, J: Journal>(
    k: &K,
    j: &J,
    mut e: Execution,
    cfg: &StepConfig,
    soft: &mut Soft,
    now: u64,
) -> Result<Execution, StepError> {
    let (Some(mut r), Intent::Roll { command, .. }) = (e.roll.clone(), e.intent.clone()) else {
        e.state = ExecState::Failed;
        e.finished_ms = now;
        e.reason = "a roll without its batches (a bug)".into();
        return j.update(&e, Vec::new()).await.map_err(StepError::Journal);
    };
    let md = k.metadata().await?;
    let batch: Vec<i32> = r.current().to_vec();
    let n = r.batches.len();
    let label = format!("batch {}/{n} (brokers {batch:?})", r.batch + 1);
    let mut acts: Vec<(TopicPartition, Option<Vec<i32>>)> = Vec::new();
    let mut elections: Vec<TopicPartition> = Vec::new();
    let mut spawns: Vec<i32> = Vec::new();
    let mut changed = false;
    let phase = |r: &mut RollState, to: RollPhase| {
        r.phase = to;
        r.phase_ms = now;
    };
    match r.phase {
        _ if batch.is_empty() => {
            e.state = ExecState::Done;
            e.finished_ms = now;
            e.event(now, "roll complete");
            changed = true;
        }
        RollPhase::Waiting if e.cancel_requested => {
            e.state = ExecState::Cancelled;
            e.finished_ms = now;
            e.reason = format!(
                "cancelled before {label}; {} of {n} batches were restarted",
                r.batch
            );
            let reason = e.reason.clone();
            e.event(now, reason);
            changed = true;
        }
        RollPhase::Waiting if e.paused => {}
        RollPhase::Waiting => {
            let urp = under_replicated(&md);
            if !urp.is_empty() {
                if soft.roll_noted.insert(format!("urp-{}", r.batch)) {
                    e.event(
                        now,
                        format!(
                            "{label} waits: {} under-replicated partitions ({})",
                            urp.len(),
                            sample(&urp)
                        ),
                    );
                    changed = true;
                }
            } else {
                let (demoted, stranded) = to_demote(&md, &batch);
                if !stranded.is_empty() {
                    e.event(
                        now,
                        format!(
                            "{label}: {} partitions have every replica in the batch and are offline while it restarts ({})",
                            stranded.len(),
                            sample(&stranded)
                        ),
                    );
                }
                e.event(
                    now,
                    format!(
                        "{label}: moving the preferred leadership of {} partitions off the batch",
                        demoted.len()
                    ),
                );
                acts = demoted
                    .iter()
                    .map(|d| {
                        (
                            TopicPartition::new(d.topic.clone(), d.partition),
                            Some(demote_order(&d.replicas, &batch)),
                        )
                    })
                    .collect();
                r.demoted = demoted;
                r.started.clear();
                r.restarted.clear();
                phase(&mut r, RollPhase::Demoting);
                changed = true;
            }
        }
        RollPhase::Demoting | RollPhase::Recovering if e.cancel_requested => {
            e.event(
                now,
                format!("cancel requested: restoring the leadership of {label}"),
            );
            phase(&mut r, RollPhase::Restoring);
            changed = true;
        }
        RollPhase::Demoting => {
            let moving = moving(k).await?;
            for d in &r.demoted {
                let Some(p) = find(&md, &d.topic, d.partition) else {
                    continue;
                };
                // Not reordered yet (or the reorder was lost): send it again.
                if p.replicas == d.replicas && !moving.contains(&(d.topic.clone(), d.partition)) {
                    acts.push((
                        TopicPartition::new(d.topic.clone(), d.partition),
                        Some(demote_order(&d.replicas, &batch)),
                    ));
                }
            }
            let led = led_by(&md, &batch);
            if led.is_empty() {
                e.event(
                    now,
                    format!("{label}: no partition is led by the batch; restarting"),
                );
                phase(&mut r, RollPhase::Restarting);
                changed = true;
            } else if e.paused {
            } else if now.saturating_sub(r.phase_ms) >= cfg.leader_wait_ms {
                let names: Vec<String> = led.iter().map(|tp| tp.to_string()).collect();
                e.event(
                    now,
                    format!(
                        "{label}: {} partitions are still led by the batch after {} ms ({}): restarting anyway (a broker's controlled shutdown moves its leadership)",
                        led.len(),
                        cfg.leader_wait_ms,
                        sample(&names)
                    ),
                );
                phase(&mut r, RollPhase::Restarting);
                changed = true;
            } else {
                elections = led;
            }
        }
        RollPhase::Restarting => {
            for b in &batch {
                if r.restarted.contains(b) {
                    continue;
                }
                if let Some(h) = soft.restarts.get(b) {
                    if !h.is_finished() {
                        continue;
                    }
                    let h = soft.restarts.remove(b).expect("present");
                    let res = h.await.unwrap_or_else(|err| Err(err.to_string()));
                    match res {
                        Ok(()) => {
                            r.restarted.push(*b);
                            e.event(now, format!("broker {b}: the restart command exited 0"));
                        }
                        Err(why) => {
                            r.started.retain(|x| x != b);
                            e.paused = true;
                            e.event(
                                now,
                                format!(
                                    "broker {b}: the restart command failed ({why}); the roll is paused: resume runs it again, cancel restores the batch's leadership"
                                ),
                            );
                        }
                    }
                    changed = true;
                    continue;
                }
                if e.paused || e.cancel_requested {
                    continue;
                }
                if r.started.contains(b) {
                    e.event(
                        now,
                        format!("broker {b}: its restart command was started by an earlier leader and not seen to finish: running it again"),
                    );
                } else {
                    r.started.push(*b);
                    e.event(now, format!("broker {b}: running the restart command"));
                }
                spawns.push(*b);
                changed = true;
            }
            let running = batch.iter().any(|b| soft.restarts.contains_key(b));
            if e.cancel_requested && !running && spawns.is_empty() {
                e.event(
                    now,
                    format!("cancel requested: restoring the leadership of {label}"),
                );
                phase(&mut r, RollPhase::Restoring);
                changed = true;
            } else if batch.iter().all(|b| r.restarted.contains(b)) {
                e.event(
                    now,
                    format!("{label}: restarted; waiting for it to be back and in sync"),
                );
                phase(&mut r, RollPhase::Recovering);
                changed = true;
            }
        }
        RollPhase::Recovering => {
            let alive: BTreeSet<i32> = md.brokers.iter().map(|b| b.id).collect();
            let missing: Vec<i32> = batch
                .iter()
                .copied()
                .filter(|b| !alive.contains(b))
                .collect();
            let lagging: Vec<String> = md
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter(|p| {
                            p.replicas
                                .iter()
                                .any(|b| batch.contains(b) && !p.isr.contains(b))
                        })
                        .map(|p| format!("{}-{}", t.name, p.partition))
                })
                .collect();
            if missing.is_empty() && lagging.is_empty() {
                e.event(
                    now,
                    format!(
                        "{label}: back and in sync after {} ms; restoring leadership",
                        now.saturating_sub(r.phase_ms)
                    ),
                );
                phase(&mut r, RollPhase::Restoring);
                changed = true;
            } else if soft.roll_noted.insert(format!("recover-{}", r.batch)) {
                e.event(
                    now,
                    format!(
                        "{label}: waiting for brokers {missing:?} in Metadata and {} replicas to catch up ({})",
                        lagging.len(),
                        sample(&lagging)
                    ),
                );
                changed = true;
            }
        }
        RollPhase::Restoring => {
            let moving = moving(k).await?;
            let mut pending = Vec::new();
            for d in &r.demoted {
                let Some(p) = find(&md, &d.topic, d.partition) else {
                    continue; // deleted meanwhile
                };
                let tp = TopicPartition::new(d.topic.clone(), d.partition);
                let demoted = demote_order(&d.replicas, &batch);
                if p.replicas == demoted && demoted != d.replicas {
                    if !moving.contains(&(d.topic.clone(), d.partition)) {
                        acts.push((tp.clone(), Some(d.replicas.clone())));
                    }
                    pending.push(tp.to_string());
                } else if p.replicas == d.replicas {
                    if p.leader != d.replicas[0] {
                        elections.push(tp.clone());
                        pending.push(tp.to_string());
                    }
                } else if soft.roll_noted.insert(format!("changed-{tp}")) {
                    e.event(
                        now,
                        format!(
                            "{tp}: its replicas were changed by someone else during the roll (now {:?}): left alone",
                            p.replicas
                        ),
                    );
                    changed = true;
                }
            }
            let late = now.saturating_sub(r.phase_ms) >= cfg.leader_wait_ms;
            if pending.is_empty() || late {
                if !pending.is_empty() {
                    e.event(
                        now,
                        format!(
                            "{label}: {} partitions did not get their preferred leader back within {} ms ({})",
                            pending.len(),
                            cfg.leader_wait_ms,
                            sample(&pending)
                        ),
                    );
                }
                acts.clear();
                elections.clear();
                r.demoted.clear();
                r.started.clear();
                r.restarted.clear();
                if e.cancel_requested {
                    e.state = ExecState::Cancelled;
                    e.finished_ms = now;
                    e.reason = format!(
                        "cancelled during {label}: its leadership restored; {} of {n} batches were fully restarted",
                        r.batch
                    );
                    let reason = e.reason.clone();
                    e.event(now, reason);
                } else {
                    e.event(now, format!("{label}: done, leaders restored"));
                    r.batch += 1;
                    phase(&mut r, RollPhase::Waiting);
                    if r.batch as usize >= n {
                        e.state = ExecState::Done;
                        e.finished_ms = now;
                        e.event(
                            now,
                            format!(
                                "roll complete: {} brokers restarted in {n} batches",
                                r.batches.iter().map(Vec::len).sum::<usize>()
                            ),
                        );
                    }
                }
                changed = true;
            }
        }
    }
    if changed {
        e.roll = Some(r.clone());
        e = j.update(&e, Vec::new()).await.map_err(StepError::Journal)?;
    }
    // Act only on what is journaled.
    let before = e.events.clone();
    reorder(k, &mut e, &acts, now).await?;
    elect(k, &mut e, &elections, now).await?;
    for b in spawns {
        let host = md
            .brokers
            .iter()
            .find(|x| x.id == b)
            .map(|x| x.host.clone())
            .unwrap_or_default();
        let env = [
            ("GUARDIAN_BROKER_ID", b.to_string()),
            ("GUARDIAN_BROKER_HOST", host),
            ("GUARDIAN_CLUSTER", e.cluster.clone()),
            ("GUARDIAN_EXECUTION", e.id.to_string()),
        ];
        soft.restarts.insert(
            b,
            spawn(
                &command,
                env,
                Duration::from_millis(cfg.restart_timeout_ms.max(1)),
            ),
        );
    }
    if e.events != before {
        e = j.update(&e, Vec::new()).await.map_err(StepError::Journal)?;
    }
    Ok(e)
}

/// What `guardian cluster roll` asks for.
#[derive(Debug, Clone, Default)]
pub struct RollRequest {
    pub cluster: String,
    /// Brokers restarted together.
    pub batch: u32,
    pub command: String,
    /// Only these brokers (empty: every broker in Metadata).
    pub brokers: Vec<i32>,
    pub approve: bool,
    pub dry_run: bool,
    pub by: String,
}

/// `brokers` in batches of `batch`, or why not.
pub fn batches(all: &[i32], brokers: &[i32], batch: u32) -> Result<Vec<Vec<i32>>, ApiError> {
    if batch == 0 {
        return Err(ApiError::invalid("batch", "must be >= 1"));
    }
    let mut chosen: Vec<i32> = if brokers.is_empty() {
        all.to_vec()
    } else {
        if let Some(b) = brokers.iter().find(|b| !all.contains(b)) {
            return Err(ApiError::NotFound {
                what: format!("broker {b} in the cluster's metadata"),
            });
        }
        brokers.to_vec()
    };
    chosen.sort_unstable();
    chosen.dedup();
    if chosen.is_empty() {
        return Err(ApiError::FailedPrecondition {
            reason: "the cluster's metadata lists no broker".into(),
        });
    }
    if all.len() > 1 && batch as usize >= all.len() {
        return Err(ApiError::invalid(
            "batch",
            format!(
                "{batch} would restart all {} brokers at once: at most {}",
                all.len(),
                all.len() - 1
            ),
        ));
    }
    Ok(chosen.chunks(batch as usize).map(<[i32]>::to_vec).collect())
}

impl super::Executor {
    /// Proposes a rolling restart (no plan: the batches are fixed now
    /// from Metadata, the procedure does the rest).
    pub async fn propose_roll(
        &self,
        ctl: &Controller,
        r: &RollRequest,
    ) -> Result<super::Proposed, ApiError> {
        if !self.cfg.allow_restart_commands {
            return Err(ApiError::FailedPrecondition {
                reason: "this controller does not run restart commands: set \
                         executor.allow-restart-commands = true on every node (any may lead the roll)"
                    .into(),
            });
        }
        if r.command.trim().is_empty() {
            return Err(ApiError::invalid("restart_command", "must not be empty"));
        }
        let k = self.client(ctl, &r.cluster)?;
        let md = k
            .metadata()
            .await
            .map_err(|e| ApiError::FailedPrecondition {
                reason: format!("Metadata of Kafka cluster {:?}: {e}", r.cluster),
            })?;
        let all: Vec<i32> = md.brokers.iter().map(|b| b.id).collect();
        let batches = batches(&all, &r.brokers, r.batch)?;
        let now = now_ms();
        let intent = Intent::Roll {
            batch: r.batch,
            command: r.command.clone(),
        };
        let mut summary = guardian_proto::execution::PlanSummary {
            table: batches
                .iter()
                .enumerate()
                .map(|(i, b)| format!("batch {}: brokers {b:?}", i + 1))
                .map(|l| l + "\n")
                .collect(),
            ..Default::default()
        };
        summary.warnings.push(format!(
            "{} brokers in {} batches; each batch waits for no under-replicated partition, moves its leadership off, runs the restart command per broker, waits until it is back and in sync, and restores its leadership",
            batches.iter().map(Vec::len).sum::<usize>(),
            batches.len()
        ));
        let urp = under_replicated(&md);
        if !urp.is_empty() {
            summary.warnings.push(format!(
                "{} partitions are under-replicated now ({}): the first batch waits for them",
                urp.len(),
                sample(&urp)
            ));
        }
        let mut header = self.header(&r.cluster, &intent, &r.by, summary.clone(), 0, now);
        header.roll = Some(RollState {
            batches,
            ..Default::default()
        });
        if r.dry_run {
            header.reason = "dry run: not stored".into();
            return Ok(super::Proposed {
                execution: Some(header),
                summary,
                tasks: Vec::new(),
            });
        }
        let mut e = super::create(ctl, header, Vec::new()).await?;
        if r.approve {
            e = super::approve(ctl, e.id, &r.by).await?;
        }
        Ok(super::Proposed {
            execution: Some(e),
            summary,
            tasks: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_goes_last_in_the_same_relative_order() {
        assert_eq!(demote_order(&[1, 2, 3], &[1]), vec![2, 3, 1]);
        assert_eq!(demote_order(&[3, 1, 2], &[1, 3]), vec![2, 3, 1]);
        assert_eq!(demote_order(&[2, 3], &[1]), vec![2, 3]);
    }
}
