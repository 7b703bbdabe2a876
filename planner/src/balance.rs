//! The balance planner: one plan over brokers **and** disks.
//!
//! [`plan`] takes a [`ClusterModel`], [`Goals`] and [`PlanOptions`] and
//! returns a [`Plan`]: leadership changes, inter-broker reassignments and
//! intra-broker log-dir moves together, in executable batches.
//!
//! # Algorithm
//! Limits come first. Within each tenant pool the mean utilisation of every
//! resource is fixed by the input (moves inside a pool and leadership changes
//! do not change totals), so each unit's soft limit is `goal × pool mean ×
//! weight` (disk bytes weighted by capacity, network/CPU by broker capacity),
//! and the hard limits are the disk fill limit and the broker capacities.
//! Then, in order, never moving a replica twice:
//! 1. **Forced moves**: replicas on dead, decommissioning or failed units, in
//!    the wrong pool, or breaking the rack/IDC policy move to the best unit
//!    that satisfies every hard constraint (and the soft limits if possible).
//! 2. **Disk bytes** (priority 1): each disk over its limit sheds exactly its
//!    excess: largest replicas that fit in the remaining excess first, then
//!    the smallest one that covers what is left — so bytes moved stay close to
//!    the excess, which is the lower bound. Destinations are tried on the same
//!    broker first (an intra-broker move changes no broker load), then on the
//!    least-filled disks of the pool: the first `candidates` feasible ones are
//!    scored by their worst normalised load after the move across all eight
//!    resources (historical medians), and the lowest wins.
//! 3. **Leadership** (free), for the leader-driven resources in priority
//!    order (disk read, nw out, CPU, leader count): units over their limit
//!    hand leadership of their heaviest partitions to an in-sync follower that
//!    stays within its limit — or, when loads are lumpy, at least lowers the
//!    pair's peak — without giving a higher-priority resource a new peak.
//! 4. **Remaining soft goals** in priority order (disk write, disk read,
//!    nw in, nw out, CPU, replica count): units over their limit shed the
//!    replicas with the most load per byte first.
//! 5. Leadership again, for what the moves changed.
//!
//! A destination must keep every unit within its limits, so a move never
//! creates a violation of a higher-priority goal.
//!
//! # Lower bound
//! `bytes_lower_bound` is a valid lower bound on the bytes any plan meeting
//! the same goals must move: per broker, the larger of (a) the sum over its
//! disks of max(bytes that must leave a dead/failed/wrong-pool disk, the
//! disk's byte excess, the fractional-knapsack bytes carrying its write
//! excess), (b) the knapsack bytes carrying its nw-in excess, (c) the
//! smallest replicas making up its replica-count excess; every replica on a
//! dead or decommissioning broker counts in full. Where one replica alone
//! exceeds a limit (disk bytes, write, nw in), the limit is raised to it, so
//! an unreachable goal never inflates the bound. Leader-driven excess (reads,
//! nw out, CPU, leaders) can be fixed by leadership changes and adds nothing.
//!
//! # Complexity
//! O(R log R) to index replicas by disk plus, per move, O(log D) to update
//! the ordered disk index and O(candidates + skipped) feasibility checks of
//! O(RF) each; leadership passes are O(R log R). R = replicas, D = disks.
//!
//! # Errors
//! [`GoalError`] for invalid goals. An infeasible cluster is not an error:
//! replicas that must move but have nowhere to go are listed in
//! [`Plan::unplaced`] with the reason, and the verifier reports what remains.
//!
//! Deterministic: no hashing, no clock, ties broken by index.

// Loads, limits and capacities are parallel arrays indexed by resource
// slot; index loops read clearer than zipped iterators of four arrays.
#![allow(clippy::needless_range_loop)]

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::GoalError;
use crate::model::{BrokerLoad, ClusterModel, DiskLoad, Loads, Replica, Resource};
use crate::stats::{broker_usable, broker_weight, disk_weight, resource_stats};

/// Thresholds: each is the allowed `max / mean` of a resource within a pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Goals {
    pub disk_bytes: f64,
    pub disk_write: f64,
    pub disk_read: f64,
    pub nw_in: f64,
    pub nw_out: f64,
    pub cpu: f64,
    pub leaders: f64,
    pub replicas: f64,
    /// Hard: no disk fuller than this fraction of its capacity.
    pub max_disk_fill: f64,
}

impl Default for Goals {
    fn default() -> Self {
        Goals {
            disk_bytes: 1.05,
            disk_write: 1.15,
            disk_read: 1.5,
            nw_in: 1.15,
            nw_out: 1.15,
            cpu: 1.15,
            leaders: 1.15,
            replicas: 1.15,
            max_disk_fill: 0.95,
        }
    }
}

impl Goals {
    pub fn threshold(&self, r: Resource) -> f64 {
        match r {
            Resource::DiskBytes => self.disk_bytes,
            Resource::DiskWrite => self.disk_write,
            Resource::DiskRead => self.disk_read,
            Resource::NwIn => self.nw_in,
            Resource::NwOut => self.nw_out,
            Resource::Cpu => self.cpu,
            Resource::Leaders => self.leaders,
            Resource::Replicas => self.replicas,
        }
    }

    /// Sets one goal by name (`disk_bytes=1.05`, as `--goal` takes it).
    pub fn set(&mut self, name: &str, value: f64) -> Result<(), GoalError> {
        let slot = match name {
            "disk_bytes" => &mut self.disk_bytes,
            "disk_write" => &mut self.disk_write,
            "disk_read" => &mut self.disk_read,
            "nw_in" => &mut self.nw_in,
            "nw_out" => &mut self.nw_out,
            "cpu" => &mut self.cpu,
            "leaders" => &mut self.leaders,
            "replicas" => &mut self.replicas,
            "max_disk_fill" => &mut self.max_disk_fill,
            _ => {
                return Err(GoalError::Invalid {
                    field: name.into(),
                    reason: "unknown goal; known: disk_bytes, disk_write, disk_read, nw_in, nw_out, cpu, leaders, replicas, max_disk_fill".into(),
                })
            }
        };
        *slot = value;
        self.validate()
    }

    pub fn validate(&self) -> Result<(), GoalError> {
        for r in Resource::ALL {
            let v = self.threshold(r);
            if !(v.is_finite() && v >= 1.0) {
                return Err(GoalError::Invalid {
                    field: r.name().into(),
                    reason: format!("a max/mean threshold must be ≥ 1, got {v}"),
                });
            }
        }
        if !(self.max_disk_fill > 0.0 && self.max_disk_fill <= 1.0) {
            return Err(GoalError::Invalid {
                field: "max_disk_fill".into(),
                reason: format!("must be in (0, 1], got {}", self.max_disk_fill),
            });
        }
        Ok(())
    }
}

/// Execution shaping and search effort.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanOptions {
    /// Concurrent replica moves touching one broker (in or out) per batch.
    pub max_moves_per_broker: u32,
    /// Concurrent replica moves touching one disk per batch.
    pub max_moves_per_disk: u32,
    /// Feasible destinations scored per move.
    pub candidates: usize,
    /// Disks examined per move before giving up on the soft limits.
    pub max_scan: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_moves_per_broker: 5,
            max_moves_per_disk: 2,
            candidates: 8,
            max_scan: 400,
        }
    }
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Move replica `slot` of `partition` (inter-broker if the brokers
    /// differ, else an intra-broker log-dir move).
    Move {
        partition: u32,
        slot: u8,
        from: Replica,
        to: Replica,
        bytes: u64,
    },
    /// Make the replica in `to_slot` the leader (reorder + preferred election).
    Leader {
        partition: u32,
        from_slot: u8,
        to_slot: u8,
    },
}

/// A log dir in Kafka's terms.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Location {
    pub broker: i32,
    pub dir: String,
}

/// An [`Action`] in Kafka's terms (topic name, broker ids, log-dir paths),
/// as the executor and operators read it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KafkaAction {
    /// `move` (reassignment or log-dir move) or `leader`.
    pub kind: &'static str,
    pub topic: String,
    pub partition: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// For `leader`: the broker to become leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_leader: Option<i32>,
}

impl Action {
    /// Applies this action, unchecked, to an assignment (indexed like
    /// `ClusterModel::replicas`), leader slots and, if given, loads (a move
    /// carries the replica's load as leader or follower at that moment). O(1).
    pub fn apply(
        &self,
        m: &ClusterModel,
        assign: &mut [Replica],
        leaders: &mut [u8],
        loads: Option<&mut Loads>,
    ) {
        match *self {
            Action::Move {
                partition,
                slot,
                from,
                to,
                ..
            } => {
                let part = &m.partitions[partition as usize];
                if let Some(l) = loads {
                    l.move_replica(m, part, leaders[partition as usize] == slot, from, to);
                }
                assign[part.first as usize + slot as usize] = to;
            }
            Action::Leader {
                partition,
                from_slot,
                to_slot,
            } => {
                let part = &m.partitions[partition as usize];
                if let Some(l) = loads {
                    let at = |s: u8| assign[part.first as usize + s as usize];
                    l.change_leader(m, part, at(from_slot), at(to_slot));
                }
                leaders[partition as usize] = to_slot;
            }
        }
    }

    /// This action in Kafka's terms. `assign` is the assignment when it runs
    /// (leadership names the broker holding the slot then).
    pub fn in_kafka_terms(&self, m: &ClusterModel, assign: &[Replica]) -> KafkaAction {
        let loc = |r: Replica| Location {
            broker: m.brokers[r.broker as usize].id,
            dir: m.disks[r.disk as usize].dir.clone(),
        };
        let (p, from, to, bytes, new_leader) = match *self {
            Action::Move {
                partition,
                from,
                to,
                bytes,
                ..
            } => (partition, Some(loc(from)), Some(loc(to)), Some(bytes), None),
            Action::Leader {
                partition, to_slot, ..
            } => {
                let f = m.partitions[partition as usize].first as usize + to_slot as usize;
                let b = m.brokers[assign[f].broker as usize].id;
                (partition, None, None, None, Some(b))
            }
        };
        let part = &m.partitions[p as usize];
        KafkaAction {
            kind: if new_leader.is_some() {
                "leader"
            } else {
                "move"
            },
            topic: m.topics[part.topic as usize].name.clone(),
            partition: part.index,
            from,
            to,
            bytes,
            new_leader,
        }
    }
}

/// Actions an executor runs together, and the load predicted after them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Batch {
    pub actions: Vec<Action>,
    pub bytes: u64,
    /// `max_over_mean` per resource once this batch is done.
    pub predicted: BTreeMap<Resource, f64>,
}

/// A replica that had to move but found no destination.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Unplaced {
    pub partition: u32,
    pub slot: u8,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// Batch 0 holds leadership changes of partitions that do not move.
    pub batches: Vec<Batch>,
    pub moves: usize,
    pub intra_broker_moves: usize,
    pub leader_moves: usize,
    pub bytes_moved: u64,
    pub bytes_lower_bound: u64,
    /// Per resource, the best reachable max/mean: the goal, or more when a
    /// single replica (or leadership) outweighs a unit's share.
    pub feasibility: BTreeMap<Resource, f64>,
    pub unplaced: Vec<Unplaced>,
}

impl Plan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.batches.iter().flat_map(|b| b.actions.iter())
    }

    /// Every batch's actions in Kafka's terms, in execution order.
    pub fn in_kafka_terms(&self, m: &ClusterModel) -> Vec<Vec<KafkaAction>> {
        let mut assign = m.replicas.clone();
        let mut leaders = m.leaders();
        self.batches
            .iter()
            .map(|b| {
                for a in &b.actions {
                    a.apply(m, &mut assign, &mut leaders, None);
                }
                b.actions
                    .iter()
                    .map(|a| a.in_kafka_terms(m, &assign))
                    .collect()
            })
            .collect()
    }
}

/// Plans a balanced cluster. See the module docs for the algorithm,
/// complexity and errors.
pub fn plan(m: &ClusterModel, goals: &Goals, opts: &PlanOptions) -> Result<Plan, GoalError> {
    goals.validate()?;
    let mut p = Planner::new(m, goals, opts);
    let lower_bound = p.lower_bound();
    let feasibility = p.feasibility();
    p.forced();
    p.shed_disk_bytes();
    // Priority order; leader-driven resources by leadership only.
    for r in Resource::ALL.into_iter().skip(1) {
        if r.leader_driven() {
            p.leadership(r);
        } else {
            p.shed(r);
        }
    }
    // Replica moves changed leader-driven loads: one more leadership round.
    for r in Resource::ALL.into_iter().filter(|r| r.leader_driven()) {
        p.leadership(r);
    }
    Ok(p.finish(lower_bound, feasibility))
}

const EPS: f64 = 1e-9;

struct Planner<'a> {
    m: &'a ClusterModel,
    g: &'a Goals,
    o: &'a PlanOptions,
    assign: Vec<Replica>,
    leader: Vec<u8>,
    moved: Vec<bool>,
    /// flat replica index → partition.
    part_of: Vec<u32>,
    l: Loads,
    dlim: Vec<DiskLoad>,
    blim: Vec<BrokerLoad>,
    /// Hard limits: disk bytes; broker nw_in, nw_out, cpu.
    dhard: Vec<f64>,
    bhard: Vec<[f64; 3]>,
    /// Flat replica indices on each disk at the start (moved ones skipped lazily).
    on_disk: Vec<Vec<u32>>,
    /// Per pool: usable disks ordered by bytes / bytes limit.
    by_fill: Vec<BTreeSet<(u64, u32)>>,
    moves: Vec<Action>,
    unplaced: Vec<Unplaced>,
}

impl<'a> Planner<'a> {
    fn new(m: &'a ClusterModel, g: &'a Goals, o: &'a PlanOptions) -> Self {
        let assign = m.replicas.clone();
        let leader = m.leaders();
        let l = m.loads(&assign, &leader);
        let mut part_of = vec![0u32; assign.len()];
        let mut on_disk = vec![Vec::new(); m.disks.len()];
        for pi in 0..m.partitions.len() {
            for f in m.slots(pi as u32) {
                part_of[f] = pi as u32;
                on_disk[assign[f].disk as usize].push(f as u32);
            }
        }
        // Pool means, per resource (`Resource::ALL` order): demand — every
        // replica of the pool's topics wherever it is now, plus the
        // background of the pool's usable disks — over the usable units'
        // weights. Moves inside a pool and leadership changes keep them fixed.
        let np = m.pools.len().max(1);
        let mut demand = vec![[0.0f64; 8]; np];
        let mut weight = vec![[0.0f64; 8]; np];
        for (pi, part) in m.partitions.iter().enumerate() {
            let pool = m.topics[part.topic as usize].pool as usize;
            for s in 0..part.rf {
                let (d, b) = m.replica_load(part, s == leader[pi]);
                for (i, r) in Resource::ALL.into_iter().enumerate() {
                    demand[pool][i] += r.of(&d, &b);
                }
            }
        }
        for (d, disk) in m.disks.iter().enumerate() {
            if m.disk_usable(d as u32) {
                let pool = m.brokers[disk.broker as usize].pool as usize;
                demand[pool][1] += disk.background[0];
                demand[pool][2] += disk.background[1];
                for (i, r) in Resource::ALL
                    .into_iter()
                    .enumerate()
                    .filter(|(_, r)| r.per_disk())
                {
                    weight[pool][i] += disk_weight(m, d, r);
                }
            }
        }
        for (b, br) in m.brokers.iter().enumerate() {
            if broker_usable(m, b) {
                for (i, r) in Resource::ALL
                    .into_iter()
                    .enumerate()
                    .filter(|(_, r)| !r.per_disk())
                {
                    weight[br.pool as usize][i] += broker_weight(m, b, r);
                }
            }
        }
        let mean = |pool: usize, i: usize| {
            if weight[pool][i] > 0.0 {
                demand[pool][i] / weight[pool][i]
            } else {
                0.0
            }
        };
        let mut dlim = vec![[0.0; 3]; m.disks.len()];
        let mut dhard = vec![0.0; m.disks.len()];
        let mut blim = vec![[0.0; 5]; m.brokers.len()];
        let mut bhard = vec![[f64::INFINITY; 3]; m.brokers.len()];
        for (i, r) in Resource::ALL.into_iter().enumerate() {
            if r.per_disk() {
                for (d, disk) in m.disks.iter().enumerate() {
                    let pool = m.brokers[disk.broker as usize].pool as usize;
                    dlim[d][r.slot()] = mean(pool, i) * g.threshold(r) * disk_weight(m, d, r);
                }
            } else {
                for (b, br) in m.brokers.iter().enumerate() {
                    let pool = br.pool as usize;
                    let mut lim = mean(pool, i) * g.threshold(r) * broker_weight(m, b, r);
                    // Counts: allow at least one more than the mean.
                    if matches!(r, Resource::Leaders | Resource::Replicas) {
                        lim = lim.max(mean(pool, i).floor() + 1.0);
                    }
                    blim[b][r.slot()] = lim;
                }
            }
        }
        for (d, disk) in m.disks.iter().enumerate() {
            dhard[d] = disk.capacity as f64 * g.max_disk_fill;
            dlim[d][0] = dlim[d][0].min(dhard[d]);
        }
        for (b, br) in m.brokers.iter().enumerate() {
            for s in 0..3 {
                if br.capacity[s] > 0.0 {
                    bhard[b][s] = br.capacity[s];
                    blim[b][s] = blim[b][s].min(br.capacity[s]);
                }
            }
        }
        let mut by_fill = vec![BTreeSet::new(); np];
        for d in 0..m.disks.len() {
            if m.disk_usable(d as u32) {
                let pool = m.brokers[m.disks[d].broker as usize].pool as usize;
                by_fill[pool].insert((fill_key(l.disk[d][0], dlim[d][0]), d as u32));
            }
        }
        // Pinned replicas (an excluded topic, or on a broker left alone)
        // count as moved: no phase moves them.
        let mut moved = vec![false; assign.len()];
        for (f, r) in assign.iter().enumerate() {
            let part = &m.partitions[part_of[f] as usize];
            // A pinned topic still leaves a broker or disk that is gone or
            // being decommissioned (Cruise Control's rule too).
            moved[f] = m.brokers[r.broker as usize].excluded
                || (m.topics[part.topic as usize].pinned && m.disk_usable(r.disk));
        }
        Planner {
            m,
            g,
            o,
            moved,
            assign,
            leader,
            part_of,
            l,
            dlim,
            blim,
            dhard,
            bhard,
            on_disk,
            by_fill,
            moves: Vec::new(),
            unplaced: Vec::new(),
        }
    }

    fn partition(&self, f: usize) -> &crate::model::Partition {
        &self.m.partitions[self.part_of[f] as usize]
    }

    fn size(&self, f: usize) -> u64 {
        self.m.partitions[self.part_of[f] as usize].size
    }

    fn is_leader(&self, f: usize) -> bool {
        let p = self.part_of[f] as usize;
        f - self.m.partitions[p].first as usize == self.leader[p] as usize
    }

    /// The disk-bytes level disk `d` must get down to: its limit, or the
    /// largest replica on it if that alone is larger (nothing else helps).
    fn bytes_target(&self, d: usize) -> f64 {
        let biggest = self.on_disk[d]
            .iter()
            .map(|&f| self.size(f as usize))
            .max()
            .unwrap_or(0) as f64;
        self.dlim[d][0].max(biggest)
    }

    fn lower_bound(&self) -> u64 {
        let m = self.m;
        let mut total = 0.0;
        for (b, br) in m.brokers.iter().enumerate() {
            let disks = br.first_disk as usize..(br.first_disk + br.n_disks) as usize;
            let on_b = || {
                disks
                    .clone()
                    .flat_map(|d| self.on_disk[d].iter().map(|&f| f as usize))
            };
            if !broker_usable(m, b) {
                total += on_b().map(|f| self.size(f) as f64).sum::<f64>();
                continue;
            }
            let mut sum_d = 0.0;
            for d in disks.clone() {
                let all = self.on_disk[d].iter().map(|&f| f as usize);
                if !m.disk_usable(d as u32) {
                    sum_d += all.map(|f| self.size(f) as f64).sum::<f64>();
                    continue;
                }
                let forced: f64 = all
                    .clone()
                    .filter(|&f| {
                        m.topics[m.partitions[self.part_of[f] as usize].topic as usize].pool
                            != br.pool
                    })
                    .map(|f| self.size(f) as f64)
                    .sum();
                let bytes_ex = (self.l.disk[d][0] - self.bytes_target(d)).max(0.0);
                // A goal no plan can reach counts only as far as it can be
                // reached: the heaviest single writer stays somewhere.
                let heaviest = all
                    .clone()
                    .map(|f| self.partition(f).bytes_in)
                    .fold(0.0, f64::max);
                let write_ex = self.l.disk[d][1] - self.dlim[d][1].max(heaviest);
                let write_lb = self.knapsack(all, write_ex, |p| p.bytes_in);
                sum_d += forced.max(bytes_ex).max(write_lb);
            }
            let heaviest = on_b()
                .map(|f| self.partition(f).bytes_in)
                .fold(0.0, f64::max);
            let nw_ex = self.l.broker[b][0] - self.blim[b][0].max(heaviest);
            let nw_lb = self.knapsack(on_b(), nw_ex, |p| p.bytes_in);
            let rep_ex = (self.l.broker[b][4] - self.blim[b][4]).ceil();
            let rep_lb = if rep_ex > 0.0 {
                let mut sizes: Vec<u64> = on_b().map(|f| self.size(f)).collect();
                sizes.sort_unstable();
                sizes.iter().take(rep_ex as usize).sum::<u64>() as f64
            } else {
                0.0
            };
            total += sum_d.max(nw_lb).max(rep_lb);
        }
        total as u64
    }

    /// Fewest bytes (fractionally) whose `load` sums to `excess`.
    fn knapsack(
        &self,
        replicas: impl Iterator<Item = usize>,
        excess: f64,
        load: impl Fn(&crate::model::Partition) -> f64,
    ) -> f64 {
        if excess <= 0.0 {
            return 0.0;
        }
        let mut items: Vec<(f64, f64)> = replicas
            .map(|f| {
                let p = &self.m.partitions[self.part_of[f] as usize];
                (load(p), p.size as f64)
            })
            .filter(|&(l, _)| l > 0.0)
            .collect();
        items.sort_by(|a, b| (b.0 / b.1.max(1.0)).total_cmp(&(a.0 / a.1.max(1.0))));
        let (mut left, mut bytes) = (excess, 0.0);
        for (l, s) in items {
            if l >= left {
                return bytes + s * left / l;
            }
            left -= l;
            bytes += s;
        }
        bytes
    }

    /// Per resource, the best reachable `max / mean`: the goal, or more when
    /// a single replica (or a single leadership) outweighs a unit's share of
    /// its pool. O(replicas).
    fn feasibility(&self) -> BTreeMap<Resource, f64> {
        let m = self.m;
        let mut out: BTreeMap<Resource, f64> = Resource::ALL
            .iter()
            .map(|&r| (r, self.g.threshold(r)))
            .collect();
        // The largest unit's limit in each pool, per resource (= goal × mean × weight).
        let np = m.pools.len().max(1);
        let mut best_lim = vec![[0.0f64; 8]; np];
        for (d, disk) in m.disks.iter().enumerate() {
            if m.disk_usable(d as u32) {
                let pool = m.brokers[disk.broker as usize].pool as usize;
                for s in 0..3 {
                    best_lim[pool][s] = best_lim[pool][s].max(self.dlim[d][s]);
                }
            }
        }
        for b in 0..m.brokers.len() {
            if broker_usable(m, b) {
                let pool = m.brokers[b].pool as usize;
                for s in 0..5 {
                    best_lim[pool][3 + s] = best_lim[pool][3 + s].max(self.blim[b][s]);
                }
            }
        }
        for part in &m.partitions {
            let pool = m.topics[part.topic as usize].pool as usize;
            let (d, b) = m.replica_load(part, true);
            for (i, &r) in Resource::ALL.iter().enumerate() {
                let item = r.of(&d, &b);
                let lim = best_lim[pool][i];
                if lim > 0.0 && item > lim {
                    let e = out.get_mut(&r).expect("all resources");
                    *e = e.max(item / lim * self.g.threshold(r));
                }
            }
        }
        out
    }

    // ------------------------------------------------------------ feasibility

    /// Can replica `f` go to disk `to`? Hard constraints always; soft limits
    /// of the resources whose priority index is below `upto` (0 = none,
    /// 8 = all; disk resources are priorities 0–2, broker ones 3–7).
    fn fits(&self, f: usize, to: u32, upto: usize) -> bool {
        let m = self.m;
        let p = self.part_of[f] as usize;
        let part = &m.partitions[p];
        let topic = &m.topics[part.topic as usize];
        let from = self.assign[f];
        let disk = &m.disks[to as usize];
        let tb = disk.broker;
        let br = &m.brokers[tb as usize];
        if to == from.disk || !m.disk_usable(to) || br.pool != topic.pool || br.excluded {
            return false;
        }
        if !topic.policy.idcs.is_empty() && !topic.policy.idcs.contains(&br.idc) {
            return false;
        }
        let inter = tb != from.broker;
        let slots = m.slots(p as u32);
        for o in slots.clone() {
            if o == f {
                continue;
            }
            let ob = self.assign[o].broker;
            if ob == tb || (topic.policy.rack_unique && m.brokers[ob as usize].rack == br.rack) {
                return false;
            }
        }
        {
            // IDC spread: never below the policy; strictly better when below.
            let need = m.idcs_needed(part.topic, part.rf);
            if need > 1 {
                let count = |with: u32| {
                    distinct(slots.clone(), |o| {
                        if o == f {
                            with
                        } else {
                            m.brokers[self.assign[o].broker as usize].idc
                        }
                    })
                };
                let before = count(m.brokers[from.broker as usize].idc);
                let after = count(br.idc);
                if (before < need && after <= before) || (before >= need && after < need) {
                    return false;
                }
            }
        }
        let (dload, bload) = m.replica_load(part, self.is_leader(f));
        let d = to as usize;
        if self.l.disk[d][0] + dload[0] > self.dhard[d] + EPS {
            return false;
        }
        for s in 0..3.min(upto) {
            if dload[s] > 0.0 && self.l.disk[d][s] + dload[s] > self.dlim[d][s] * (1.0 + EPS) {
                return false;
            }
        }
        if inter {
            let b = tb as usize;
            for s in 0..3 {
                if bload[s] > 0.0 && self.l.broker[b][s] + bload[s] > self.bhard[b][s] * (1.0 + EPS)
                {
                    return false;
                }
            }
            for s in 0..upto.saturating_sub(3) {
                if bload[s] > 0.0 && self.l.broker[b][s] + bload[s] > self.blim[b][s] * (1.0 + EPS)
                {
                    return false;
                }
            }
        }
        true
    }

    /// Worst normalised load of disk `to` (and its broker, if the move
    /// crosses brokers) after taking replica `f`. Lower is better.
    fn score(&self, f: usize, to: u32) -> f64 {
        let m = self.m;
        let part = &m.partitions[self.part_of[f] as usize];
        let (dload, bload) = m.replica_load(part, self.is_leader(f));
        let d = to as usize;
        let mut worst: f64 = 0.0;
        for s in 0..3 {
            if self.dlim[d][s] > 0.0 {
                worst = worst.max((self.l.disk[d][s] + dload[s]) / self.dlim[d][s]);
            }
        }
        let tb = m.disks[d].broker as usize;
        if tb as u32 != self.assign[f].broker {
            for s in 0..5 {
                if self.blim[tb][s] > 0.0 {
                    worst = worst.max((self.l.broker[tb][s] + bload[s]) / self.blim[tb][s]);
                }
            }
        }
        worst
    }

    /// The best destination for replica `f`: with `intra`, its own broker's
    /// disks first, then the least-filled feasible disks of its pool, scored;
    /// without, only disks of other brokers (broker-level goals).
    fn find_dest(&self, f: usize, upto: usize, intra: bool) -> Option<u32> {
        let m = self.m;
        let from = self.assign[f];
        if intra && broker_usable(m, from.broker as usize) {
            let br = &m.brokers[from.broker as usize];
            let mut best: Option<(f64, u32)> = None;
            for d in br.first_disk..br.first_disk + br.n_disks {
                if self.fits(f, d, upto) {
                    let sc = self.score(f, d);
                    if best.is_none_or(|(b, _)| sc < b) {
                        best = Some((sc, d));
                    }
                }
            }
            if let Some((_, d)) = best {
                return Some(d);
            }
        }
        let pool = m.topics[m.partitions[self.part_of[f] as usize].topic as usize].pool as usize;
        let mut best: Option<(f64, u32)> = None;
        let mut found = 0;
        for (scanned, &(_, d)) in self.by_fill[pool].iter().enumerate() {
            if scanned >= self.o.max_scan && upto > 0 {
                break;
            }
            // Broker-level goals need the replica off its broker.
            if !intra && m.disks[d as usize].broker == from.broker {
                continue;
            }
            if !self.fits(f, d, upto) {
                continue;
            }
            let sc = self.score(f, d);
            if best.is_none_or(|(b, _)| sc < b) {
                best = Some((sc, d));
            }
            found += 1;
            if found >= self.o.candidates {
                break;
            }
        }
        best.map(|(_, d)| d)
    }

    // ------------------------------------------------------------ mutation

    fn reindex(&mut self, d: usize, before: f64) {
        let pool = self.m.brokers[self.m.disks[d].broker as usize].pool as usize;
        if self.by_fill[pool].remove(&(fill_key(before, self.dlim[d][0]), d as u32)) {
            self.by_fill[pool].insert((fill_key(self.l.disk[d][0], self.dlim[d][0]), d as u32));
        }
    }

    fn do_move(&mut self, f: usize, to: u32) {
        let m = self.m;
        let p = self.part_of[f];
        let part = &m.partitions[p as usize];
        let from = self.assign[f];
        let to = Replica {
            broker: m.disks[to as usize].broker,
            disk: to,
        };
        let (fb, tb) = (
            self.l.disk[from.disk as usize][0],
            self.l.disk[to.disk as usize][0],
        );
        let leader = self.is_leader(f);
        self.l.move_replica(m, part, leader, from, to);
        self.reindex(from.disk as usize, fb);
        self.reindex(to.disk as usize, tb);
        self.assign[f] = to;
        self.moved[f] = true;
        self.moves.push(Action::Move {
            partition: p,
            slot: (f - part.first as usize) as u8,
            from,
            to,
            bytes: part.size,
        });
    }

    fn do_leader(&mut self, p: usize, to_slot: u8) {
        let m = self.m;
        let part = &m.partitions[p];
        let (old, new) = (
            self.assign[part.first as usize + self.leader[p] as usize],
            self.assign[part.first as usize + to_slot as usize],
        );
        self.l.change_leader(m, part, old, new);
        self.leader[p] = to_slot;
    }

    /// Moves `f` to its best destination: within every soft limit if
    /// possible, else within those up to and including priority `level`
    /// (the goal being worked on), else — `level` = `None`, a forced move —
    /// within the hard constraints only. Returns whether it moved.
    fn try_move(&mut self, f: usize, intra: bool, level: Option<usize>) -> bool {
        let fallback = level.map_or(0, |l| l + 1);
        let dest = self.find_dest(f, 8, intra).or_else(|| {
            (fallback < 8)
                .then(|| self.find_dest(f, fallback, intra))
                .flatten()
        });
        match dest {
            Some(d) => {
                self.do_move(f, d);
                true
            }
            None => false,
        }
    }

    // ------------------------------------------------------------ phases

    fn forced(&mut self) {
        let m = self.m;
        // Leaders on unusable brokers go to the first usable replica.
        for p in 0..m.partitions.len() {
            let first = m.partitions[p].first as usize;
            let lb = self.assign[first + self.leader[p] as usize].broker as usize;
            if !m.brokers[lb].alive && !m.topics[m.partitions[p].topic as usize].pinned {
                if let Some(s) = m
                    .slots(p as u32)
                    .position(|f| m.brokers[self.assign[f].broker as usize].alive)
                {
                    self.do_leader(p, s as u8);
                }
            }
        }
        for p in 0..m.partitions.len() {
            let part = &m.partitions[p];
            let topic = &m.topics[part.topic as usize];
            for f in m.slots(p as u32) {
                if self.moved[f] {
                    continue; // pinned
                }
                let r = self.assign[f];
                let br = &m.brokers[r.broker as usize];
                let earlier = part.first as usize..f;
                let idc_of = |o: usize| m.brokers[self.assign[o].broker as usize].idc;
                let spans = |slots: std::ops::Range<usize>| distinct(slots, idc_of);
                let why = if !m.disk_usable(r.disk) {
                    Some("its broker or disk is gone")
                } else if br.pool != topic.pool {
                    Some("it is outside its tenant pool")
                } else if !topic.policy.idcs.is_empty() && !topic.policy.idcs.contains(&br.idc) {
                    Some("its IDC is not allowed by the topic policy")
                } else if earlier.clone().any(|o| self.assign[o].broker == r.broker) {
                    Some("another replica is on the same broker")
                } else if topic.policy.rack_unique
                    && earlier
                        .clone()
                        .any(|o| m.brokers[self.assign[o].broker as usize].rack == br.rack)
                {
                    Some("another replica is in the same rack")
                } else if m.idcs_needed(part.topic, part.rf) > 1
                    && spans(m.slots(p as u32)) < m.idcs_needed(part.topic, part.rf)
                    && earlier.clone().any(|o| idc_of(o) == br.idc)
                {
                    Some("the partition spans too few IDCs")
                } else {
                    None
                };
                if let Some(why) = why {
                    let intra = br.pool == topic.pool && m.disk_usable(r.disk);
                    if !self.try_move(f, intra || !m.disks[r.disk as usize].failed, None) {
                        self.unplaced.push(Unplaced {
                            partition: p as u32,
                            slot: (f - part.first as usize) as u8,
                            reason: format!(
                                "{} must move because {why}, and no broker/disk satisfies the hard constraints",
                                m.partition_name(p as u32)
                            ),
                        });
                    }
                }
            }
        }
    }

    fn shed_disk_bytes(&mut self) {
        let m = self.m;
        let mut over: Vec<(f64, usize)> = (0..m.disks.len())
            .filter(|&d| m.disk_usable(d as u32))
            .map(|d| (self.l.disk[d][0] - self.bytes_target(d), d))
            .filter(|&(ex, _)| ex > 0.0)
            .collect();
        over.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, d) in over {
            let mut left = self.l.disk[d][0] - self.bytes_target(d);
            let mut cands: Vec<usize> = self.on_disk[d]
                .iter()
                .map(|&f| f as usize)
                .filter(|&f| !self.moved[f])
                .collect();
            cands.sort_by_key(|&f| (std::cmp::Reverse(self.size(f)), f));
            // Largest that fit in what is left, then the smallest covering it.
            for &f in &cands {
                if left <= 0.0 {
                    break;
                }
                let s = self.size(f) as f64;
                if s > 0.0 && s <= left && self.try_move(f, true, Some(0)) {
                    left -= s;
                }
            }
            if left > 0.0 {
                for &f in cands.iter().rev() {
                    if !self.moved[f]
                        && self.size(f) as f64 >= left
                        && self.try_move(f, true, Some(0))
                    {
                        left = 0.0;
                        break;
                    }
                }
            }
            // Still over (nothing single covers it): smallest first.
            if left > 0.0 {
                for &f in cands.iter().rev() {
                    if left <= 0.0 {
                        break;
                    }
                    if !self.moved[f] && self.size(f) > 0 && self.try_move(f, true, Some(0)) {
                        left -= self.size(f) as f64;
                    }
                }
            }
        }
    }

    fn n_units(&self, r: Resource) -> usize {
        if r.per_disk() {
            self.m.disks.len()
        } else {
            self.m.brokers.len()
        }
    }

    /// Unit `u` can hold load and is over its limit for `r`.
    fn over(&self, r: Resource, u: usize) -> bool {
        let usable = if r.per_disk() {
            self.m.disk_usable(u as u32)
        } else {
            broker_usable(self.m, u)
        };
        let (l, lim) = self.unit_load(r, u);
        usable && lim > 0.0 && l > lim * (1.0 + EPS)
    }

    /// Load of unit `u` (a disk or a broker, as `r` is measured) in `r`, and
    /// its limit.
    fn unit_load(&self, r: Resource, u: usize) -> (f64, f64) {
        let s = r.slot();
        if r.per_disk() {
            (self.l.disk[u][s], self.dlim[u][s])
        } else {
            (self.l.broker[u][s], self.blim[u][s])
        }
    }

    /// Balances a leader-driven resource (disk read, nw out, CPU, leader
    /// count) by leadership alone: units over their limit, worst first, hand
    /// leadership of their heaviest partitions in `r` to a follower that ends
    /// within its limit for `r`, or below the current peak of the pair; a
    /// follower is refused if a higher-priority leader-driven resource would
    /// reach a new peak on it. The least loaded acceptable follower wins.
    fn leadership(&mut self, r: Resource) {
        let m = self.m;
        let unit_of = |x: Replica| {
            if r.per_disk() {
                x.disk as usize
            } else {
                x.broker as usize
            }
        };
        let mut led: Vec<Vec<u32>> = vec![Vec::new(); self.n_units(r)];
        for (p, part) in m.partitions.iter().enumerate() {
            if part.rf > 1 {
                let x = self.assign[part.first as usize + self.leader[p] as usize];
                led[unit_of(x)].push(p as u32);
            }
        }
        // What leadership of `p` adds to resource `h` on the leader's unit.
        let lead_gain = |p: &crate::model::Partition, h: Resource| {
            let (ld, lb) = m.replica_load(p, true);
            let (fd, fb) = m.replica_load(p, false);
            h.of(&ld, &lb) - h.of(&fd, &fb)
        };
        let lead_load = |p: &crate::model::Partition| lead_gain(p, r);
        let mut order: Vec<(f64, usize)> = (0..self.n_units(r))
            .filter(|&u| self.over(r, u))
            .map(|u| {
                let (l, lim) = self.unit_load(r, u);
                (l / lim, u)
            })
            .collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let higher: Vec<Resource> = [
            Resource::DiskRead,
            Resource::NwOut,
            Resource::Cpu,
            Resource::Leaders,
        ]
        .into_iter()
        .filter(|&h| h < r)
        .collect();
        for (_, u) in order {
            let mut ps = std::mem::take(&mut led[u]);
            ps.retain(|&p| {
                let part = &m.partitions[p as usize];
                !m.topics[part.topic as usize].pinned && lead_load(part) > 0.0
            });
            ps.sort_by(|&x, &y| {
                lead_load(&m.partitions[y as usize])
                    .total_cmp(&lead_load(&m.partitions[x as usize]))
                    .then(x.cmp(&y))
            });
            for p in ps {
                let (l, lim) = self.unit_load(r, u);
                if l <= lim * (1.0 + EPS) {
                    break;
                }
                let p = p as usize;
                let part = &m.partitions[p];
                let gain = |h: Resource| lead_gain(part, h);
                let mut best: Option<(f64, u8)> = None;
                for slot in 0..part.rf {
                    if slot == self.leader[p] {
                        continue;
                    }
                    let x = self.assign[part.first as usize + slot as usize];
                    if !broker_usable(m, x.broker as usize)
                        || !m.disk_usable(x.disk)
                        || m.brokers[x.broker as usize].excluded
                    {
                        continue;
                    }
                    let (tl, tlim) = self.unit_load(r, unit_of(x));
                    let after = tl + gain(r);
                    // Within the target's limit, or at least a lower peak for
                    // the pair (lumpy loads: one partition can exceed a limit).
                    let peak_before = l / lim;
                    let peak_after = ((l - gain(r)) / lim).max(after / tlim.max(f64::MIN_POSITIVE));
                    if after > tlim * (1.0 + EPS) && peak_after >= peak_before - EPS {
                        continue;
                    }
                    // A higher-priority resource may not get a new peak: the
                    // target stays within its limit or below where the
                    // current leader's unit is now.
                    let cur = self.assign[part.first as usize + self.leader[p] as usize];
                    let spoils = higher.iter().any(|&h| {
                        let unit = |r: Replica| {
                            if h.per_disk() {
                                r.disk as usize
                            } else {
                                r.broker as usize
                            }
                        };
                        let (hl, hlim) = self.unit_load(h, unit(x));
                        let (sl, slim) = self.unit_load(h, unit(cur));
                        let ceiling = (sl / slim.max(f64::MIN_POSITIVE)).max(1.0);
                        gain(h) > 0.0 && (hl + gain(h)) > hlim * ceiling * (1.0 + EPS)
                    });
                    if spoils {
                        continue;
                    }
                    let norm = after / tlim.max(f64::MIN_POSITIVE);
                    if best.is_none_or(|(b, _)| norm < b) {
                        best = Some((norm, slot));
                    }
                }
                if let Some((_, slot)) = best {
                    self.do_leader(p, slot);
                }
            }
        }
    }

    /// Units over their limit for `r` shed the replicas with the most `r`
    /// per byte first.
    fn shed(&mut self, r: Resource) {
        let m = self.m;
        let load_of = |part: &crate::model::Partition, leader: bool| {
            let (d, b) = m.replica_load(part, leader);
            r.of(&d, &b)
        };
        let units: Vec<usize> = (0..self.n_units(r)).filter(|&u| self.over(r, u)).collect();
        for u in units {
            let disks: Vec<usize> = if r.per_disk() {
                vec![u]
            } else {
                let br = &m.brokers[u];
                (br.first_disk as usize..(br.first_disk + br.n_disks) as usize).collect()
            };
            let mut cands: Vec<(f64, usize)> = disks
                .iter()
                .flat_map(|&d| self.on_disk[d].iter().map(|&f| f as usize))
                .filter(|&f| !self.moved[f])
                .filter_map(|f| {
                    let part = &m.partitions[self.part_of[f] as usize];
                    let l = load_of(part, self.is_leader(f));
                    (l > 0.0).then(|| (l / (part.size as f64).max(1.0), f))
                })
                .collect();
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (_, f) in cands {
                let (cur, lim) = self.unit_load(r, u);
                if cur <= lim * (1.0 + EPS) {
                    break;
                }
                if !self.moved[f] {
                    self.try_move(f, r.per_disk(), Some(priority(r)));
                }
            }
        }
    }

    // ------------------------------------------------------------ output

    fn finish(self, bytes_lower_bound: u64, feasibility: BTreeMap<Resource, f64>) -> Plan {
        let m = self.m;
        let o = self.o;
        // Final leadership per partition, one action each.
        let mut leader_for: BTreeMap<u32, Action> = BTreeMap::new();
        for (p, part) in m.partitions.iter().enumerate() {
            if self.leader[p] != part.leader {
                leader_for.insert(
                    p as u32,
                    Action::Leader {
                        partition: p as u32,
                        from_slot: part.leader,
                        to_slot: self.leader[p],
                    },
                );
            }
        }
        let leader_moves = leader_for.len();
        // Moves: first fit into batches under per-broker and per-disk limits.
        let mut batches: Vec<Vec<Action>> = vec![Vec::new()];
        let mut broker_use: Vec<Vec<u32>> = Vec::new();
        let mut disk_use: Vec<Vec<u32>> = Vec::new();
        let mut next_b = vec![1usize; m.brokers.len()];
        let mut next_d = vec![1usize; m.disks.len()];
        let mut last_batch: BTreeMap<u32, usize> = BTreeMap::new();
        let (mut bytes_moved, mut intra) = (0u64, 0usize);
        let n_moves = self.moves.len();
        for a in self.moves {
            let Action::Move {
                partition,
                from,
                to,
                bytes,
                ..
            } = a
            else {
                continue;
            };
            bytes_moved += bytes;
            if from.broker == to.broker {
                intra += 1;
            }
            let (fb, tb, fd, td) = (
                from.broker as usize,
                to.broker as usize,
                from.disk as usize,
                to.disk as usize,
            );
            let mut i = next_b[fb].max(next_b[tb]).max(next_d[fd]).max(next_d[td]);
            loop {
                while batches.len() <= i {
                    batches.push(Vec::new());
                    broker_use.push(vec![0; m.brokers.len()]);
                    disk_use.push(vec![0; m.disks.len()]);
                }
                let (bu, du) = (&broker_use[i - 1], &disk_use[i - 1]);
                if bu[fb] < o.max_moves_per_broker
                    && bu[tb] < o.max_moves_per_broker
                    && du[fd] < o.max_moves_per_disk
                    && du[td] < o.max_moves_per_disk
                {
                    break;
                }
                i += 1;
            }
            let (bu, du) = (&mut broker_use[i - 1], &mut disk_use[i - 1]);
            bu[fb] += 1;
            if tb != fb {
                bu[tb] += 1;
            }
            du[fd] += 1;
            du[td] += 1;
            for u in [fb, tb] {
                if broker_use[i - 1][u] >= o.max_moves_per_broker {
                    next_b[u] = next_b[u].max(i + 1);
                }
            }
            for u in [fd, td] {
                if disk_use[i - 1][u] >= o.max_moves_per_disk {
                    next_d[u] = next_d[u].max(i + 1);
                }
            }
            batches[i].push(a);
            last_batch.insert(partition, i);
        }
        for (p, a) in leader_for {
            let i = last_batch.get(&p).copied().unwrap_or(0);
            batches[i].push(a);
        }
        // Predicted load after each batch: moves (with the leadership they
        // had), then the batch's leadership changes.
        let mut assign = m.replicas.clone();
        let mut leaders = m.leaders();
        let mut loads = m.loads(&assign, &leaders);
        let mut out = Vec::with_capacity(batches.len());
        for mut actions in batches {
            if actions.is_empty() {
                continue;
            }
            actions.sort_by_key(|a| matches!(a, Action::Leader { .. }));
            let mut bytes = 0;
            for a in &actions {
                if let Action::Move { bytes: b, .. } = *a {
                    bytes += b;
                }
                a.apply(m, &mut assign, &mut leaders, Some(&mut loads));
            }
            let predicted = resource_stats(m, &loads.disk, &loads.broker)
                .into_iter()
                .map(|(r, s)| (r, s.max_over_mean))
                .collect();
            out.push(Batch {
                actions,
                bytes,
                predicted,
            });
        }
        Plan {
            batches: out,
            moves: n_moves,
            intra_broker_moves: intra,
            leader_moves,
            bytes_moved,
            bytes_lower_bound,
            feasibility,
            unplaced: self.unplaced,
        }
    }
}

/// Distinct values of `key` over `slots`, without allocating (RF is small:
/// O(RF²)).
#[inline]
fn distinct(slots: std::ops::Range<usize>, key: impl Fn(usize) -> u32) -> u32 {
    slots
        .clone()
        .filter(|&o| !(slots.start..o).any(|q| key(q) == key(o)))
        .count() as u32
}

/// A resource's index in the priority order (0 = disk bytes).
fn priority(r: Resource) -> usize {
    Resource::ALL.iter().position(|&x| x == r).unwrap_or(7)
}

/// Order key of a disk by fill relative to its limit (non-negative ⇒ the
/// bit pattern orders like the value).
#[inline]
fn fill_key(bytes: f64, limit: f64) -> u64 {
    let v = if limit > 0.0 { bytes / limit } else { bytes };
    v.max(0.0).to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClusterSpec;
    use crate::testkit::*;
    use crate::verify::verify;

    fn run(spec: &ClusterSpec) -> (ClusterModel, Plan, crate::verify::Report) {
        let m = ClusterModel::from_spec(spec).unwrap();
        let p = plan(&m, &Goals::default(), &PlanOptions::default()).unwrap();
        let r = verify(&m, &p, &Goals::default());
        (m, p, r)
    }

    fn moves(p: &Plan) -> Vec<(u32, u8, Replica, Replica)> {
        p.actions()
            .filter_map(|a| match *a {
                Action::Move {
                    partition,
                    slot,
                    from,
                    to,
                    ..
                } => Some((partition, slot, from, to)),
                _ => None,
            })
            .collect()
    }

    /// Broker 1's first disk holds 6 of 12 equal replicas: it sheds four,
    /// two to its own empty disk (intra-broker first), two to broker 3's.
    #[test]
    fn hot_disk_sheds_its_excess_intra_broker_first() {
        let mut ps = Vec::new();
        let mut i = 0;
        for (b, d, n) in [(1, 0, 6), (2, 0, 2), (2, 1, 2), (3, 0, 1), (3, 1, 1)] {
            for _ in 0..n {
                ps.push(part(i, &[(b, d)], 10 * GB, 0.0));
                i += 1;
            }
        }
        let spec = cluster(
            vec![
                broker(1, "a", 2, 1000 * GB),
                broker(2, "b", 2, 1000 * GB),
                broker(3, "c", 2, 1000 * GB),
            ],
            vec![topic("t", ps)],
        );
        let (m, p, r) = run(&spec);
        let mv = moves(&p);
        assert_eq!(mv.len(), 4, "{mv:?}");
        assert_eq!(p.intra_broker_moves, 2);
        assert!(mv.iter().all(|(_, _, from, _)| from.disk == 0));
        let to_disks: Vec<u32> = mv.iter().map(|m| m.3.disk).collect();
        assert_eq!(to_disks.iter().filter(|&&d| d == 1).count(), 2);
        assert!(mv
            .iter()
            .filter(|m| m.3.broker != 0)
            .all(|m| m.3.broker == 2 /* broker id 3 */));
        assert_eq!(p.bytes_moved, 40 * GB);
        assert_eq!(
            p.bytes_lower_bound,
            39 * GB,
            "excess over 1.05 × mean 20 GB"
        );
        assert!(r.hard_violations.is_empty());
        assert!((r.after[&Resource::DiskBytes].max_over_mean - 1.0).abs() < 1e-9);
        // Every disk ends at exactly two replicas.
        let l = m.loads(
            &{
                let mut a = m.replicas.clone();
                for (p_, s, _, to) in &mv {
                    a[m.partitions[*p_ as usize].first as usize + *s as usize] = *to;
                }
                a
            },
            &m.leaders(),
        );
        assert!(l.disk.iter().all(|d| d[0] == 20.0 * GB as f64));
    }

    /// A decommissioned broker is emptied, no replica moves twice and the
    /// rack policy holds.
    #[test]
    fn decommission_empties_the_broker() {
        let mut brokers: Vec<_> = (1..=4)
            .map(|i| broker(i, &format!("r{i}"), 1, 1000 * GB))
            .collect();
        brokers[3].decommission = true;
        let ps = (0..8)
            .map(|i| part(i, &[(1 + i % 4, 0), (1 + (i + 1) % 4, 0)], 5 * GB, MB))
            .collect();
        let (m, p, r) = run(&cluster(brokers, vec![topic("t", ps)]));
        assert!(r.hard_violations.is_empty(), "{:?}", r.hard_violations);
        assert_eq!(r.hard_violations_before, 4);
        let mv = moves(&p);
        assert_eq!(mv.iter().filter(|m| m.2.broker == 3).count(), 4);
        let mut seen: Vec<(u32, u8)> = mv.iter().map(|m| (m.0, m.1)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), mv.len(), "a replica moved twice");
        // Leadership left the removed broker with its replicas.
        assert!(p.unplaced.is_empty());
        assert_eq!(m.brokers[3].id, 4);
    }

    /// An excluded topic never moves and a broker left alone (excluded,
    /// in maintenance) receives nothing, while the rest is balanced; a
    /// pinned topic still leaves a broker being decommissioned.
    #[test]
    fn pinned_topics_and_excluded_brokers_are_left_alone() {
        let mut brokers: Vec<_> = (1..=3)
            .map(|i| broker(i, &format!("r{i}"), 1, 1000 * GB))
            .collect();
        brokers[2].excluded = true;
        let skewed = |n: i32| (0..n).map(|i| part(i, &[(1, 0)], 10 * GB, 0.0)).collect();
        let mut x = topic("x", skewed(6));
        x.pinned = true;
        let (m, p, r) = run(&cluster(
            brokers.clone(),
            vec![x.clone(), topic("y", skewed(6))],
        ));
        assert!(r.hard_violations.is_empty(), "{:?}", r.hard_violations);
        let mv = moves(&p);
        assert!(!mv.is_empty());
        for (part_, _, _, to) in &mv {
            assert_eq!(
                m.topics[m.partitions[*part_ as usize].topic as usize].name,
                "y"
            );
            assert_eq!(
                m.brokers[to.broker as usize].id, 2,
                "onto the excluded broker"
            );
        }
        // Decommission broker 1: the pinned topic leaves it too.
        brokers[0].decommission = true;
        let (m, p, r) = run(&cluster(brokers, vec![x, topic("y", skewed(6))]));
        assert!(r.hard_violations.is_empty(), "{:?}", r.hard_violations);
        let mv = moves(&p);
        assert_eq!(mv.len(), 12, "{mv:?}");
        assert!(mv
            .iter()
            .all(|(_, _, _, to)| m.brokers[to.broker as usize].id == 2));
    }

    /// Two replicas in one rack, and one outside the topic's pool: both fixed.
    #[test]
    fn rack_and_pool_violations_are_repaired() {
        let mut brokers = vec![
            broker(1, "a", 1, 1000 * GB),
            broker(2, "a", 1, 1000 * GB),
            broker(3, "b", 1, 1000 * GB),
            broker(4, "c", 1, 1000 * GB),
        ];
        brokers[3].pool = "other".into();
        let ps = vec![
            part(0, &[(1, 0), (2, 0)], GB, 0.0),
            part(1, &[(3, 0), (4, 0)], GB, 0.0),
        ];
        let (m, p, r) = run(&cluster(brokers, vec![topic("t", ps)]));
        assert_eq!(r.hard_violations_before, 2);
        assert!(r.hard_violations.is_empty(), "{:?}", r.hard_violations);
        let mv = moves(&p);
        assert_eq!(mv.len(), 2, "{mv:?}");
        for (part_, slot, _, to) in mv {
            let broker_id = m.brokers[to.broker as usize].id;
            match (part_, slot) {
                (0, 1) => assert_eq!(broker_id, 3, "rack b is the only other rack in the pool"),
                (1, 1) => assert!(broker_id == 1 || broker_id == 2),
                other => panic!("unexpected move {other:?}"),
            }
        }
    }

    /// Leadership alone fixes a leader-count and nw-out skew: no bytes move.
    #[test]
    fn leadership_fixes_leader_skew_without_moving_bytes() {
        let brokers = vec![broker(1, "a", 1, 1000 * GB), broker(2, "b", 1, 1000 * GB)];
        let ps = (0..10)
            .map(|i| {
                let mut p = part(i, &[(1, 0), (2, 0)], 10 * GB, MB);
                p.bytes_out = 5.0 * MB;
                p
            })
            .collect();
        let (_, p, r) = run(&cluster(brokers, vec![topic("t", ps)]));
        assert_eq!(p.moves, 0);
        assert_eq!(p.bytes_moved, 0);
        assert_eq!(p.bytes_lower_bound, 0);
        // nw out (priority over leader count): 6 MB/s per leader, limit
        // 1.15 × 30 MB/s → at most 5 leaders on broker 1.
        assert_eq!(p.leader_moves, 5);
        assert!(r.after[&Resource::Leaders].max_over_mean <= 1.15 + 1e-9);
        assert_eq!(p.batches.len(), 1, "leadership batch only");
    }

    /// A broker added empty takes load; the plan comes in batches that respect
    /// the per-broker limit.
    #[test]
    fn batches_respect_concurrency() {
        let mut brokers: Vec<_> = (1..=3)
            .map(|i| broker(i, &format!("r{i}"), 1, 1000 * GB))
            .collect();
        brokers.push(broker(4, "r4", 1, 1000 * GB));
        let ps = (0..32)
            .map(|i| part(i, &[(1 + i % 3, 0)], GB, 0.0))
            .collect();
        let m = ClusterModel::from_spec(&cluster(brokers, vec![topic("t", ps)])).unwrap();
        let o = PlanOptions {
            max_moves_per_broker: 2,
            ..PlanOptions::default()
        };
        let p = plan(&m, &Goals::default(), &o).unwrap();
        assert_eq!(p.moves, 8, "11/11/10/0 GB → 8 each");
        for b in &p.batches {
            let mut per: BTreeMap<u32, u32> = BTreeMap::new();
            for a in &b.actions {
                if let Action::Move { from, to, .. } = a {
                    *per.entry(from.broker).or_default() += 1;
                    *per.entry(to.broker).or_default() += 1;
                }
            }
            assert!(per.values().all(|&n| n <= 2), "{per:?}");
        }
        let last = p.batches.last().unwrap();
        assert!(last.predicted[&Resource::DiskBytes] <= 1.05 + 1e-9);
    }

    #[test]
    fn goals_are_validated() {
        let mut g = Goals::default();
        assert!(g.set("disk_bytes", 0.9).is_err());
        assert!(g.set("nope", 1.2).is_err());
        g = Goals::default();
        g.max_disk_fill = 1.5;
        let e = g.validate().unwrap_err();
        assert!(e.to_string().contains("max_disk_fill"), "{e}");
    }
}
