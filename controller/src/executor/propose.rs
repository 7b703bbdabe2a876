//! From a live model to a proposal: run the balance planner and the
//! verifier, and fold the plan's actions into one [`Task`] per partition
//! (its final replicas with the desired leader first, the target dir of
//! every replica that moves, the leader to elect). Pure.

use std::collections::BTreeMap;

use guardian_planner::balance::{self, Goals, PlanOptions};
use guardian_planner::model::{ClusterModel, Resource};
use guardian_planner::verify;
use guardian_proto::execution::{PlanSummary, Task, TaskState};

use super::live_model::LiveModel;

/// A proposal before it is stored: the planner's summary and the tasks.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub summary: PlanSummary,
    pub tasks: Vec<Task>,
}

/// Goals a plan cannot trust without rates (see `live_model`).
const RATE_GOALS: [&str; 5] = ["disk_write", "disk_read", "nw_in", "nw_out", "cpu"];

/// Plans `live` and builds the tasks. `throttle_rate` (bytes/s per broker)
/// gives the ETA.
pub fn propose(
    live: &LiveModel,
    goals: &Goals,
    opts: &PlanOptions,
    throttle_rate: u64,
) -> Result<Proposal, String> {
    let m = ClusterModel::from_spec(&live.spec).map_err(|e| format!("live model: {e}"))?;
    let mut goals = goals.clone();
    let mut warnings = live.warnings.clone();
    if !live.rates_known {
        for g in RATE_GOALS {
            goals.set(g, 1e6).expect("a valid goal");
        }
    }
    let t = std::time::Instant::now();
    let plan = balance::plan(&m, &goals, opts).map_err(|e| e.to_string())?;
    crate::metrics::METRICS
        .planner_plan_seconds
        .observe(crate::metrics::since(t));
    let report = verify::verify(&m, &plan, &goals);

    // Final assignment and leaders, replayed.
    let mut assign = m.replicas.clone();
    let mut leaders = m.leaders();
    for a in plan.actions() {
        a.apply(&m, &mut assign, &mut leaders, None);
    }
    let orig_leaders = m.leaders();
    let mut tasks = Vec::new();
    let mut dropped = Vec::new();
    for (pi, part) in m.partitions.iter().enumerate() {
        let slots = m.slots(pi as u32);
        let changed = slots.clone().any(|s| assign[s] != m.replicas[s]);
        if !changed && leaders[pi] == orig_leaders[pi] {
            continue;
        }
        let topic = &m.topics[part.topic as usize].name;
        if live.frozen.contains(&(topic.clone(), part.index)) {
            dropped.push(format!("{topic}-{}", part.index));
            continue;
        }
        let broker =
            |s: usize, a: &[guardian_planner::model::Replica]| m.brokers[a[s].broker as usize].id;
        let original: Vec<i32> = slots.clone().map(|s| broker(s, &m.replicas)).collect();
        let lead_slot = part.first as usize + leaders[pi] as usize;
        let mut target: Vec<i32> = vec![broker(lead_slot, &assign)];
        target.extend(
            slots
                .clone()
                .filter(|&s| s != lead_slot)
                .map(|s| broker(s, &assign)),
        );
        let original_dirs: Vec<(i32, String)> = slots
            .clone()
            .map(|s| {
                (
                    broker(s, &m.replicas),
                    m.disks[m.replicas[s].disk as usize].dir.clone(),
                )
            })
            .collect();
        let mut dirs = Vec::new();
        let mut bytes = 0u64;
        for s in slots.clone() {
            if assign[s] != m.replicas[s] {
                dirs.push((
                    broker(s, &assign),
                    m.disks[assign[s].disk as usize].dir.clone(),
                ));
                bytes += part.size;
            }
        }
        // The current leader (Kafka's, or the first replica).
        let cur_leader = broker(part.first as usize + orig_leaders[pi] as usize, &m.replicas);
        let new_leader = target[0];
        tasks.push(Task {
            index: tasks.len() as u32,
            topic: topic.clone(),
            topic_id: live.topic_ids.get(topic).cloned().unwrap_or_default(),
            partition: part.index,
            original,
            target,
            dirs,
            leader: (new_leader != cur_leader).then_some(new_leader),
            bytes,
            state: TaskState::Pending,
            started_ms: 0,
            finished_ms: 0,
            reason: String::new(),
            attempts: 0,
            original_dirs,
        });
    }
    if !dropped.is_empty() {
        warnings.push(format!(
            "not moved (a reassignment Guardian did not start is in flight): {}",
            dropped.join(", ")
        ));
    }

    let summary = summarize(&m, &plan, &report, &goals, warnings, &tasks, throttle_rate);
    Ok(Proposal { summary, tasks })
}

/// Every goal switched off: a plan of forced moves only (what a drain, a
/// pool release or an IDC migration must move, and nothing else).
pub fn forced_only() -> Goals {
    let mut g = Goals::default();
    for r in Resource::ALL {
        // Every resource goal accepts a loose threshold.
        let _ = g.set(r.name(), 1e6);
    }
    g
}

/// The way back from `old`: for each of its tasks whose partition is no
/// longer as it was before `old` ran, a task restoring the original
/// replicas (preferred leader first), their log dirs and the leader. Pure.
pub fn revert(live: &LiveModel, old: &[Task], throttle_rate: u64) -> Proposal {
    let mut tasks = Vec::new();
    let mut skipped = Vec::new();
    for o in old {
        let Some(t) = live.spec.topics.iter().find(|t| t.name == o.topic) else {
            skipped.push(format!("{}-{}: the topic is gone", o.topic, o.partition));
            continue;
        };
        let id = live.topic_ids.get(&o.topic).cloned().unwrap_or_default();
        if !o.topic_id.is_empty() && id != o.topic_id {
            skipped.push(format!(
                "{}-{}: the topic was re-created",
                o.topic, o.partition
            ));
            continue;
        }
        let Some(p) = t.partitions.iter().find(|p| p.partition == o.partition) else {
            skipped.push(format!(
                "{}-{}: the partition is gone",
                o.topic, o.partition
            ));
            continue;
        };
        let now: Vec<i32> = p.replicas.iter().map(|r| r.broker).collect();
        let now_dirs: Vec<(i32, String)> = p
            .replicas
            .iter()
            .map(|r| (r.broker, r.dir.clone()))
            .collect();
        let leader = p.leader.unwrap_or(now[0]);
        let want_dirs: Vec<(i32, String)> = o
            .original_dirs
            .iter()
            .filter(|d| !now_dirs.contains(d))
            .cloned()
            .collect();
        let want_leader = o.original[0];
        if now == o.original && want_dirs.is_empty() && leader == want_leader {
            continue;
        }
        let added = o.original.iter().filter(|b| !now.contains(b)).count() as u64;
        let moved_dirs = want_dirs.iter().filter(|(b, _)| now.contains(b)).count() as u64;
        tasks.push(Task {
            index: tasks.len() as u32,
            topic: o.topic.clone(),
            topic_id: id,
            partition: o.partition,
            original: now,
            target: o.original.clone(),
            dirs: want_dirs,
            leader: (leader != want_leader).then_some(want_leader),
            bytes: p.size_bytes * (added + moved_dirs),
            state: TaskState::Pending,
            started_ms: 0,
            finished_ms: 0,
            reason: String::new(),
            attempts: 0,
            original_dirs: now_dirs,
        });
    }
    let mut warnings = live.warnings.clone();
    if !skipped.is_empty() {
        warnings.push(format!("not reverted: {}", skipped.join("; ")));
    }
    let bytes: u64 = tasks.iter().map(|t| t.bytes).sum();
    let summary = PlanSummary {
        bytes_to_move: bytes,
        bytes_lower_bound: bytes,
        moves: tasks.iter().filter(|t| t.moves_replicas()).count() as u32,
        intra_broker_moves: 0,
        leader_moves: tasks.iter().filter(|t| t.leader.is_some()).count() as u32,
        warnings,
        eta_secs: busiest(&tasks).div_ceil(throttle_rate.max(1)),
        ..PlanSummary::default()
    };
    Proposal { summary, tasks }
}

/// Bytes into (or out of) the busiest broker.
fn busiest(tasks: &[Task]) -> u64 {
    let mut through: BTreeMap<i32, u64> = BTreeMap::new();
    for t in tasks {
        let size = t.bytes / (t.dirs.len().max(1) as u64);
        for (b, _) in &t.dirs {
            *through.entry(*b).or_default() += size;
        }
        if t.moves_replicas() {
            *through.entry(t.original[0]).or_default() += t.bytes;
        }
    }
    through.values().copied().max().unwrap_or(0)
}

fn summarize(
    m: &ClusterModel,
    plan: &balance::Plan,
    report: &verify::Report,
    goals: &Goals,
    warnings: Vec<String>,
    tasks: &[Task],
    throttle_rate: u64,
) -> PlanSummary {
    // ETA: bytes into (or out of) the busiest broker at the throttle rate.
    let busiest = busiest(tasks);
    let name = |r: Resource| r.name().to_string();
    PlanSummary {
        bytes_to_move: plan.bytes_moved,
        bytes_lower_bound: plan.bytes_lower_bound,
        moves: plan.moves as u32,
        intra_broker_moves: plan.intra_broker_moves as u32,
        leader_moves: plan.leader_moves as u32,
        table: report.table(),
        unplaced: plan
            .unplaced
            .iter()
            .map(|u| {
                format!(
                    "{} replica {}: {}",
                    m.partition_name(u.partition),
                    u.slot,
                    u.reason
                )
            })
            .collect(),
        warnings,
        eta_secs: busiest.div_ceil(throttle_rate.max(1)),
        goals: Resource::ALL
            .iter()
            .map(|&r| (name(r), goals.threshold(r)))
            .collect(),
        before: report
            .before
            .iter()
            .map(|(r, s)| (name(*r), s.max_over_mean))
            .collect(),
        after: report
            .after
            .iter()
            .map(|(r, s)| (name(*r), s.max_over_mean))
            .collect(),
    }
}
