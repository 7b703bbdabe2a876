//! The verifier: replays a plan on the model without trusting the planner,
//! checks every hard constraint of the result, and measures the balance
//! before and after (Cruise Control's `OptimizationVerifier`, plus bytes
//! moved against the lower bound).
//!
//! Hard constraints checked on the final assignment:
//! - every replica on a usable disk (broker alive, not decommissioning, disk
//!   not failed) and every leader on a live broker;
//! - replicas of a partition on distinct brokers, in distinct racks when the
//!   policy says so, in allowed IDCs, spanning `min(min_idcs, RF)` IDCs;
//! - every replica inside its topic's tenant pool;
//! - disk bytes ≤ capacity × `max_disk_fill`; broker nw in/out and CPU ≤
//!   capacity;
//! - the plan itself: each move starts where the replica is, no replica moves
//!   twice, leadership goes to an existing slot.
//!
//! O(replicas + actions).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::balance::{Action, Goals, Plan};
use crate::model::{ClusterModel, Replica, Resource};
use crate::stats::{resource_stats, Stat};

/// One broken hard constraint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// `unusable_unit`, `dead_leader`, `same_broker`, `same_rack`, `idc`,
    /// `min_idcs`, `pool`, `disk_capacity`, `broker_capacity`, `plan`.
    pub constraint: &'static str,
    /// The partition (`topic-N`), disk (`broker:dir`) or broker it concerns.
    pub subject: String,
    pub detail: String,
}

/// The verifier's findings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub moves: usize,
    pub inter_broker_moves: usize,
    pub intra_broker_moves: usize,
    pub leader_moves: usize,
    pub batches: usize,
    pub bytes_moved: u64,
    pub bytes_lower_bound: u64,
    /// bytes moved ÷ lower bound (`None` when the bound is 0).
    pub bytes_over_lower_bound: Option<f64>,
    /// Per resource: the best reachable max/mean (the goal unless one
    /// replica alone outweighs a unit's share).
    pub feasibility: BTreeMap<Resource, f64>,
    /// Violations left after the plan (should be empty).
    pub hard_violations: Vec<Violation>,
    /// How many the cluster had before.
    pub hard_violations_before: usize,
    pub before: BTreeMap<Resource, Stat>,
    pub after: BTreeMap<Resource, Stat>,
}

/// Replays `plan` on `m` and checks the result. See the module docs.
pub fn verify(m: &ClusterModel, plan: &Plan, goals: &Goals) -> Report {
    let mut assign = m.replicas.clone();
    let mut leaders = m.leaders();
    let before_loads = m.loads(&assign, &leaders);
    let hard_before = hard_violations(m, &assign, &leaders, goals).len();
    let mut moved = vec![false; assign.len()];
    let mut plan_errors = Vec::new();
    let (mut moves, mut intra, mut leader_moves, mut bytes) = (0, 0, 0, 0u64);
    let mut bad = |subject: String, detail: String| {
        plan_errors.push(Violation {
            constraint: "plan",
            subject,
            detail,
        })
    };
    for a in plan.actions() {
        match *a {
            Action::Move {
                partition,
                slot,
                from,
                to,
                ..
            } => {
                let Some(part) = m.partitions.get(partition as usize) else {
                    bad(format!("#{partition}"), "no such partition".into());
                    continue;
                };
                if slot >= part.rf || to.disk as usize >= m.disks.len() {
                    bad(
                        m.partition_name(partition),
                        format!("bad slot {slot} or disk"),
                    );
                    continue;
                }
                let f = part.first as usize + slot as usize;
                if moved[f] {
                    bad(
                        m.partition_name(partition),
                        format!("replica {slot} moved twice"),
                    );
                }
                if assign[f] != from {
                    bad(
                        m.partition_name(partition),
                        format!("move of replica {slot} does not start where it is"),
                    );
                }
                if m.disks[to.disk as usize].broker != to.broker {
                    bad(
                        m.partition_name(partition),
                        "destination disk is on another broker".into(),
                    );
                }
                moved[f] = true;
                a.apply(m, &mut assign, &mut leaders, None);
                moves += 1;
                bytes += part.size;
                if from.broker == to.broker {
                    intra += 1;
                }
            }
            Action::Leader {
                partition,
                from_slot,
                to_slot,
            } => {
                let Some(part) = m.partitions.get(partition as usize) else {
                    bad(format!("#{partition}"), "no such partition".into());
                    continue;
                };
                if to_slot >= part.rf || leaders[partition as usize] != from_slot {
                    bad(
                        m.partition_name(partition),
                        format!("leadership {from_slot}→{to_slot} does not match the partition"),
                    );
                    continue;
                }
                a.apply(m, &mut assign, &mut leaders, None);
                leader_moves += 1;
            }
        }
    }
    let after_loads = m.loads(&assign, &leaders);
    let mut hard = plan_errors;
    hard.extend(hard_violations(m, &assign, &leaders, goals));
    Report {
        moves,
        inter_broker_moves: moves - intra,
        intra_broker_moves: intra,
        leader_moves,
        batches: plan.batches.len(),
        bytes_moved: bytes,
        bytes_lower_bound: plan.bytes_lower_bound,
        bytes_over_lower_bound: (plan.bytes_lower_bound > 0)
            .then(|| bytes as f64 / plan.bytes_lower_bound as f64),
        feasibility: plan.feasibility.clone(),
        hard_violations: hard,
        hard_violations_before: hard_before,
        before: resource_stats(m, &before_loads.disk, &before_loads.broker),
        after: resource_stats(m, &after_loads.disk, &after_loads.broker),
    }
}

/// Every hard constraint broken by an assignment. O(replicas).
pub fn hard_violations(
    m: &ClusterModel,
    assign: &[Replica],
    leaders: &[u8],
    goals: &Goals,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |constraint, subject: String, detail: String| {
        out.push(Violation {
            constraint,
            subject,
            detail,
        })
    };
    let disk_name = |d: u32| {
        let disk = &m.disks[d as usize];
        format!("{}:{}", m.brokers[disk.broker as usize].id, disk.dir)
    };
    for (p, part) in m.partitions.iter().enumerate() {
        let topic = &m.topics[part.topic as usize];
        let name = || m.partition_name(p as u32);
        let slots = m.slots(p as u32);
        let rs = &assign[slots.clone()];
        let lb = &m.brokers[rs[leaders[p] as usize].broker as usize];
        if !lb.alive {
            v(
                "dead_leader",
                name(),
                format!("leader on dead broker {}", lb.id),
            );
        }
        let mut idcs: Vec<u32> = Vec::with_capacity(rs.len());
        for (i, r) in rs.iter().enumerate() {
            let br = &m.brokers[r.broker as usize];
            if !m.disk_usable(r.disk) {
                v(
                    "unusable_unit",
                    name(),
                    format!(
                        "replica {i} on {} (dead, decommissioning or failed)",
                        disk_name(r.disk)
                    ),
                );
            }
            if br.pool != topic.pool {
                v(
                    "pool",
                    name(),
                    format!(
                        "replica {i} on broker {} of pool {:?}, topic is in {:?}",
                        br.id, m.pools[br.pool as usize], m.pools[topic.pool as usize]
                    ),
                );
            }
            if !topic.policy.idcs.is_empty() && !topic.policy.idcs.contains(&br.idc) {
                v(
                    "idc",
                    name(),
                    format!("replica {i} in IDC {}", m.idcs[br.idc as usize]),
                );
            }
            for (j, o) in rs[..i].iter().enumerate() {
                if o.broker == r.broker {
                    v(
                        "same_broker",
                        name(),
                        format!("replicas {j} and {i} on broker {}", br.id),
                    );
                } else if topic.policy.rack_unique && m.brokers[o.broker as usize].rack == br.rack {
                    v(
                        "same_rack",
                        name(),
                        format!("replicas {j} and {i} in rack {}", m.racks[br.rack as usize]),
                    );
                }
            }
            if !idcs.contains(&br.idc) {
                idcs.push(br.idc);
            }
        }
        let need = m.idcs_needed(part.topic, part.rf) as usize;
        if idcs.len() < need {
            v(
                "min_idcs",
                name(),
                format!("spans {} IDCs, policy needs {need}", idcs.len()),
            );
        }
    }
    let loads = m.loads(assign, leaders);
    for (d, disk) in m.disks.iter().enumerate() {
        let limit = disk.capacity as f64 * goals.max_disk_fill;
        if loads.disk[d][0] > limit + 1.0 {
            v(
                "disk_capacity",
                disk_name(d as u32),
                format!(
                    "{} bytes used, limit {} ({:.0} % of capacity)",
                    loads.disk[d][0] as u64,
                    limit as u64,
                    goals.max_disk_fill * 100.0
                ),
            );
        }
    }
    for (b, br) in m.brokers.iter().enumerate() {
        for (r, s) in [
            (Resource::NwIn, 0),
            (Resource::NwOut, 1),
            (Resource::Cpu, 2),
        ] {
            let cap = br.capacity[s];
            if cap > 0.0 && loads.broker[b][s] > cap * (1.0 + 1e-9) {
                v(
                    "broker_capacity",
                    format!("broker {}", br.id),
                    format!(
                        "{} {:.1} over capacity {:.1}",
                        r.name(),
                        loads.broker[b][s],
                        cap
                    ),
                );
            }
        }
    }
    out
}

impl Report {
    /// The before/after table operators read.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let ratio = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            s,
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "resource", "max/mean", "→ after", "feasible", "max/min", "→ after"
        );
        for (r, b) in &self.before {
            let a = &self.after[r];
            let _ = writeln!(
                s,
                "{:<12} {:>10.3} {:>10.3} {:>10.3} {:>10} {:>10}",
                r.name(),
                b.max_over_mean,
                a.max_over_mean,
                self.feasibility.get(r).copied().unwrap_or(1.0),
                ratio(b.max_over_min),
                ratio(a.max_over_min)
            );
        }
        let _ = writeln!(
            s,
            "moves {} ({} inter-broker, {} intra-broker), leader moves {}, batches {}",
            self.moves,
            self.inter_broker_moves,
            self.intra_broker_moves,
            self.leader_moves,
            self.batches
        );
        let _ = writeln!(
            s,
            "bytes moved {} = {} × lower bound {}",
            self.bytes_moved,
            ratio(self.bytes_over_lower_bound),
            self.bytes_lower_bound,
        );
        let _ = writeln!(
            s,
            "hard violations: {} before, {} after",
            self.hard_violations_before,
            self.hard_violations.len()
        );
        for v in self.hard_violations.iter().take(20) {
            let _ = writeln!(s, "  {} {}: {}", v.constraint, v.subject, v.detail);
        }
        s
    }
}
