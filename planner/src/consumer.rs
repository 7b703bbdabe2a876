//! The consumer-scheduling planner: which worker consumes which partition.
//!
//! Kafka's group protocols balance partition *counts* (KIP-848's `uniform`,
//! the cooperative-sticky assignor) and see no cost, capacity or lag.
//! [`plan_consumers`] instead assigns every bound partition to one worker
//! so that each worker's predicted CPU, relative to its capacity, is as
//! even as the partitions allow, while keeping as many partitions where
//! they are as it can.
//!
//! # Inputs
//! - [`Worker`]s: an id, a pool (a virtual consumer cluster) and a
//!   capacity weight (cores, or measured throughput: only ratios matter).
//! - [`Binding`]s: a (Kafka cluster, topic, consumer group) bound to one or
//!   more pools with ratios of partition counts (e.g. 70/30), and its
//!   partitions with measured CPU (cores; `None` for a partition not
//!   measured yet), lag (records) and current owner.
//!
//! # Algorithm
//! 1. **Weights.** A partition weighs its measured CPU; an unmeasured one
//!    the mean of its binding's measured partitions (else of all measured
//!    partitions, else 1). A lagging partition weighs more until it catches
//!    up: × (1 + `lag_boost` · min(1, lag ÷ `lag_full`)).
//! 2. **Pools.** Each binding's partitions are split between its pools
//!    (those with at least one worker) by largest remainder of the ratios.
//!    A partition stays in its owner's pool while that pool's share has
//!    room; the rest go to the pool furthest below its share.
//! 3. **Within a pool**, with T = load ÷ capacity (the pool's mean
//!    utilisation) and a band of ± `tolerance` around it:
//!    - partitions stay on their owner when it is still a worker of the pool;
//!    - a worker above T·(1 + tolerance) sheds partitions (the smallest one
//!      that brings it under, else its largest; never its last one);
//!    - unowned and shed partitions, heaviest first, go to the worker whose
//!      utilisation after taking it is lowest;
//!    - while a worker is outside the inner band (± `tolerance` ÷ 2), the
//!      most distant one makes the single move or pair swap with any other
//!      worker that most reduces Σ (Lᵢ − T·cᵢ)² ÷ cᵢ; a worker with no such
//!      step left is set aside (every step strictly reduces the sum, so the
//!      loop ends; at most `max_steps`).
//!
//!    The two bands give hysteresis: after a plan every worker that can be
//!    is within ± tolerance ÷ 2, so the small shift of T when a worker joins
//!    or leaves sheds nothing, and a joining worker (below the band) takes
//!    about its fair share, from the most loaded workers, and nothing else
//!    moves.
//!
//! # Output
//! Every partition owned exactly once (or listed unassigned with the
//! reason), the moves from the current owners, each worker's predicted
//! load and utilisation, and per pool the CPU spread — max utilisation ÷ T
//! − 1 — beside its bound: no assignment has a lower max than max(T, w_max
//! ÷ c_max), so `spread_bound` = that ÷ T − 1 is a floor no plan can beat.
//!
//! # Complexity
//! O(P log P + P·W) to place P partitions on W workers from nothing, plus
//! O(W·k²) per refinement step (k partitions per worker).
//!
//! Deterministic: workers in (pool, id) order, partitions in id order, ties
//! broken by those orders; no clock, no randomness.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConsumerPlanError;

/// A consumer worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub id: String,
    pub pool: String,
    /// Relative capacity (cores, or measured throughput); > 0.
    pub capacity: f64,
}

/// One pool's share of a binding: a ratio of partition counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolShare {
    pub pool: String,
    pub ratio: u32,
}

/// A partition of a bound topic, as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionLoad {
    pub partition: i32,
    /// Measured CPU (cores) spent on this partition; `None` when unmeasured.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Records behind the log end.
    #[serde(default)]
    pub lag: u64,
    /// The worker consuming it now.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A (Kafka cluster, topic, group) bound to pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub cluster: String,
    pub topic: String,
    pub group: String,
    pub pools: Vec<PoolShare>,
    pub partitions: Vec<PartitionLoad>,
}

/// Planner knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerOptions {
    /// Extra weight of a partition at full lag (1.0: it weighs double).
    pub lag_boost: f64,
    /// Lag (records) at which the boost is full.
    pub lag_full: u64,
    /// Half-width of the band around the pool's mean utilisation.
    pub tolerance: f64,
    /// Refinement steps per pool (0: 8 × the pool's partitions).
    pub max_steps: usize,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            lag_boost: 1.0,
            lag_full: 100_000,
            tolerance: 0.05,
            max_steps: 0,
        }
    }
}

/// One partition's owner in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// Index into the bindings given.
    pub binding: usize,
    pub partition: i32,
    pub worker: String,
    pub pool: String,
    /// The weight the plan gave it (CPU × lag factor).
    pub weight: f64,
}

/// A partition that changes owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    pub binding: usize,
    pub partition: i32,
    pub from: String,
    pub to: String,
    pub weight: f64,
}

/// A partition left without an owner, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unassigned {
    pub binding: usize,
    pub partition: i32,
    pub reason: String,
}

/// A worker's predicted load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerLoad {
    pub id: String,
    pub pool: String,
    pub capacity: f64,
    pub partitions: usize,
    pub load: f64,
    /// load ÷ capacity.
    pub utilization: f64,
}

/// A pool's predicted balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolLoad {
    pub pool: String,
    pub workers: usize,
    pub partitions: usize,
    pub load: f64,
    pub capacity: f64,
    /// load ÷ capacity (T).
    pub mean_utilization: f64,
    pub max_utilization: f64,
    /// max utilisation ÷ T − 1.
    pub cpu_spread: f64,
    /// max(T, w_max ÷ c_max) ÷ T − 1: no plan's spread is lower.
    pub spread_bound: f64,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerPlan {
    /// By binding, then partition.
    pub assignments: Vec<Assignment>,
    /// Partitions whose owner changes (an owner that left is a move too).
    pub moves: Vec<Move>,
    /// Partitions that had no owner and get one.
    pub placed: usize,
    pub unassigned: Vec<Unassigned>,
    /// In (pool, id) order.
    pub workers: Vec<WorkerLoad>,
    /// In name order.
    pub pools: Vec<PoolLoad>,
    /// The largest pool spread.
    pub cpu_spread: f64,
    /// The largest pool bound.
    pub spread_bound: f64,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConsumerPlanError {
    ConsumerPlanError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn validate(
    workers: &[Worker],
    bindings: &[Binding],
    o: &ConsumerOptions,
) -> Result<(), ConsumerPlanError> {
    if !(o.lag_boost.is_finite() && o.lag_boost >= 0.0) {
        return Err(invalid("lag_boost", "must be a finite number >= 0"));
    }
    if !(o.tolerance.is_finite() && (0.0..1.0).contains(&o.tolerance)) {
        return Err(invalid("tolerance", "must be in [0, 1)"));
    }
    let mut ids = std::collections::BTreeSet::new();
    for (i, w) in workers.iter().enumerate() {
        if w.id.is_empty() {
            return Err(invalid(format!("workers[{i}].id"), "must not be empty"));
        }
        if w.pool.is_empty() {
            return Err(invalid(format!("workers[{i}].pool"), "must not be empty"));
        }
        if !(w.capacity.is_finite() && w.capacity > 0.0) {
            return Err(invalid(
                format!("workers[{i}].capacity"),
                format!("must be a finite number > 0, got {}", w.capacity),
            ));
        }
        if !ids.insert(w.id.as_str()) {
            return Err(invalid(
                format!("workers[{i}].id"),
                format!("worker {:?} is listed twice", w.id),
            ));
        }
    }
    let mut keys = std::collections::BTreeSet::new();
    for (b, bd) in bindings.iter().enumerate() {
        if !keys.insert((&bd.cluster, &bd.topic, &bd.group)) {
            return Err(invalid(
                format!("bindings[{b}]"),
                format!("{}/{}/{} is bound twice", bd.cluster, bd.topic, bd.group),
            ));
        }
        if bd.pools.is_empty() {
            return Err(invalid(
                format!("bindings[{b}].pools"),
                "must name at least one pool",
            ));
        }
        let mut pools = std::collections::BTreeSet::new();
        for (j, s) in bd.pools.iter().enumerate() {
            if s.ratio == 0 {
                return Err(invalid(
                    format!("bindings[{b}].pools[{j}].ratio"),
                    "must be > 0",
                ));
            }
            if !pools.insert(&s.pool) {
                return Err(invalid(
                    format!("bindings[{b}].pools[{j}].pool"),
                    format!("pool {:?} is listed twice", s.pool),
                ));
            }
        }
        let mut parts = std::collections::BTreeSet::new();
        for (j, p) in bd.partitions.iter().enumerate() {
            if !parts.insert(p.partition) || p.partition < 0 {
                return Err(invalid(
                    format!("bindings[{b}].partitions[{j}].partition"),
                    format!("partition {} is negative or listed twice", p.partition),
                ));
            }
            if let Some(c) = p.cpu {
                if !(c.is_finite() && c >= 0.0) {
                    return Err(invalid(
                        format!("bindings[{b}].partitions[{j}].cpu"),
                        format!("must be a finite number >= 0, got {c}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// One partition inside the planner.
struct Item {
    binding: usize,
    partition: i32,
    weight: f64,
    /// The owner's index into the sorted workers, when it still works here.
    owner: Option<usize>,
    /// The owner's id as given (also when it left).
    owner_id: Option<String>,
}

impl ConsumerPlan {
    /// `bindings` (the ones this plan was made from) with each partition's
    /// owner set to the one this plan gives it: the "current" input of the
    /// next round.
    pub fn apply(&self, bindings: &[Binding]) -> Vec<Binding> {
        let mut out = bindings.to_vec();
        for a in &self.assignments {
            if let Some(p) = out
                .get_mut(a.binding)
                .and_then(|b| b.partitions.iter_mut().find(|p| p.partition == a.partition))
            {
                p.owner = Some(a.worker.clone());
            }
        }
        out
    }
}

/// Plans every bound partition onto the workers; see the module doc.
pub fn plan_consumers(
    workers: &[Worker],
    bindings: &[Binding],
    o: &ConsumerOptions,
) -> Result<ConsumerPlan, ConsumerPlanError> {
    validate(workers, bindings, o)?;
    let mut ws: Vec<&Worker> = workers.iter().collect();
    ws.sort_by(|a, b| (&a.pool, &a.id).cmp(&(&b.pool, &b.id)));
    let index: BTreeMap<&str, usize> = ws
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id.as_str(), i))
        .collect();
    let mut pool_names: Vec<&str> = ws.iter().map(|w| w.pool.as_str()).collect();
    pool_names.dedup();
    // Workers of each pool: a contiguous range of `ws`.
    let range_of = |pool: &str| -> Option<std::ops::Range<usize>> {
        let s = ws.iter().position(|w| w.pool == pool)?;
        let e = s + ws[s..].iter().take_while(|w| w.pool == pool).count();
        Some(s..e)
    };

    // 1. Weights.
    let measured: Vec<f64> = bindings
        .iter()
        .flat_map(|b| b.partitions.iter().filter_map(|p| p.cpu))
        .collect();
    let global = if measured.is_empty() {
        1.0
    } else {
        measured.iter().sum::<f64>() / measured.len() as f64
    };
    let lag_full = o.lag_full.max(1) as f64;

    // 2. Pools, per binding.
    let mut by_pool: BTreeMap<&str, Vec<Item>> = BTreeMap::new();
    let mut unassigned = Vec::new();
    for (b, bd) in bindings.iter().enumerate() {
        let m: Vec<f64> = bd.partitions.iter().filter_map(|p| p.cpu).collect();
        let mean = if m.is_empty() {
            global
        } else {
            m.iter().sum::<f64>() / m.len() as f64
        };
        let mut parts: Vec<&PartitionLoad> = bd.partitions.iter().collect();
        parts.sort_by_key(|p| p.partition);
        let live: Vec<(&str, u32)> = bd
            .pools
            .iter()
            .filter(|s| range_of(&s.pool).is_some())
            .map(|s| (s.pool.as_str(), s.ratio))
            .collect();
        if live.is_empty() {
            let names: Vec<&str> = bd.pools.iter().map(|s| s.pool.as_str()).collect();
            for p in parts {
                unassigned.push(Unassigned {
                    binding: b,
                    partition: p.partition,
                    reason: format!("no worker in pool(s) {}", names.join(", ")),
                });
            }
            continue;
        }
        let quota = shares(parts.len(), &live);
        let mut taken = vec![0usize; live.len()];
        let mut pool_of = vec![None; parts.len()];
        // Partitions stay in their owner's pool while its share has room.
        for (k, p) in parts.iter().enumerate() {
            let owner_pool = p
                .owner
                .as_deref()
                .and_then(|o| index.get(o))
                .map(|&i| ws[i].pool.as_str());
            if let Some(j) = owner_pool.and_then(|op| live.iter().position(|l| l.0 == op)) {
                if taken[j] < quota[j] {
                    taken[j] += 1;
                    pool_of[k] = Some(j);
                }
            }
        }
        for slot in pool_of.iter_mut().filter(|s| s.is_none()) {
            let j = (0..live.len())
                .max_by(|&x, &y| {
                    (quota[x] as i64 - taken[x] as i64)
                        .cmp(&(quota[y] as i64 - taken[y] as i64))
                        .then(y.cmp(&x))
                })
                .expect("live pools");
            taken[j] += 1;
            *slot = Some(j);
        }
        for (k, p) in parts.iter().enumerate() {
            let j = pool_of[k].expect("every partition has a pool");
            let pool = live[j].0;
            let base = p.cpu.unwrap_or(mean);
            let weight = base * (1.0 + o.lag_boost * (p.lag as f64 / lag_full).min(1.0));
            let owner = p
                .owner
                .as_deref()
                .and_then(|o| index.get(o).copied())
                .filter(|&i| ws[i].pool == pool);
            by_pool.entry(pool).or_default().push(Item {
                binding: b,
                partition: p.partition,
                weight,
                owner,
                owner_id: p.owner.clone(),
            });
        }
    }

    // 3. Within each pool.
    let mut owner_of: Vec<(usize, Item)> = Vec::new(); // (worker index, item)
    let mut load = vec![0.0; ws.len()];
    let mut count = vec![0usize; ws.len()];
    let mut pools = Vec::new();
    for pool in &pool_names {
        let r = range_of(pool).expect("a pool of the workers");
        let items = by_pool.remove(pool).unwrap_or_default();
        let caps: Vec<f64> = ws[r.clone()].iter().map(|w| w.capacity).collect();
        let owners = balance_pool(&items, &caps, r.start, o);
        let total: f64 = items.iter().map(|i| i.weight).sum();
        let cap: f64 = caps.iter().sum();
        let t = total / cap;
        let w_max = items.iter().map(|i| i.weight).fold(0.0, f64::max);
        let c_max = caps.iter().copied().fold(0.0, f64::max);
        let mut max_u: f64 = 0.0;
        for (item, &w) in items.iter().zip(&owners) {
            load[w] += item.weight;
            count[w] += 1;
        }
        for i in r.clone() {
            max_u = max_u.max(load[i] / ws[i].capacity);
        }
        let (spread, bound) = if t > 0.0 {
            (max_u / t - 1.0, (t.max(w_max / c_max)) / t - 1.0)
        } else {
            (0.0, 0.0)
        };
        pools.push(PoolLoad {
            pool: pool.to_string(),
            workers: r.len(),
            partitions: items.len(),
            load: total,
            capacity: cap,
            mean_utilization: t,
            max_utilization: max_u,
            cpu_spread: spread.max(0.0),
            spread_bound: bound.max(0.0),
        });
        owner_of.extend(owners.into_iter().zip(items));
    }
    owner_of.sort_by_key(|(_, i)| (i.binding, i.partition));
    let mut moves = Vec::new();
    let mut placed = 0;
    let mut assignments = Vec::with_capacity(owner_of.len());
    for (w, i) in owner_of {
        let to = &ws[w].id;
        match &i.owner_id {
            None => placed += 1,
            Some(from) if from != to => moves.push(Move {
                binding: i.binding,
                partition: i.partition,
                from: from.clone(),
                to: to.clone(),
                weight: i.weight,
            }),
            Some(_) => {}
        }
        assignments.push(Assignment {
            binding: i.binding,
            partition: i.partition,
            worker: to.clone(),
            pool: ws[w].pool.clone(),
            weight: i.weight,
        });
    }
    unassigned.sort_by_key(|u| (u.binding, u.partition));
    let workers_out = ws
        .iter()
        .enumerate()
        .map(|(i, w)| WorkerLoad {
            id: w.id.clone(),
            pool: w.pool.clone(),
            capacity: w.capacity,
            partitions: count[i],
            load: load[i],
            utilization: load[i] / w.capacity,
        })
        .collect();
    let cpu_spread = pools.iter().map(|p| p.cpu_spread).fold(0.0, f64::max);
    let spread_bound = pools.iter().map(|p| p.spread_bound).fold(0.0, f64::max);
    Ok(ConsumerPlan {
        assignments,
        moves,
        placed,
        unassigned,
        workers: workers_out,
        pools,
        cpu_spread,
        spread_bound,
    })
}

/// Largest-remainder split of `n` by the ratios (ties to the earlier pool).
fn shares(n: usize, pools: &[(&str, u32)]) -> Vec<usize> {
    let total: u64 = pools.iter().map(|p| u64::from(p.1)).sum();
    let mut q: Vec<usize> = pools
        .iter()
        .map(|p| (n as u64 * u64::from(p.1) / total) as usize)
        .collect();
    let mut rem: Vec<(u64, usize)> = pools
        .iter()
        .enumerate()
        .map(|(j, p)| (n as u64 * u64::from(p.1) % total, j))
        .collect();
    rem.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = n - q.iter().sum::<usize>();
    for &(_, j) in rem.iter().take(left) {
        q[j] += 1;
    }
    q
}

/// The owner (an index into the sorted workers, offset by `base`) of each
/// item of one pool whose workers have capacities `caps`.
///
/// Passes of [`balance_pass`] until one changes nothing (at most four):
/// the plan is then its own fixpoint — planning again from it moves
/// nothing.
fn balance_pool(items: &[Item], caps: &[f64], base: usize, o: &ConsumerOptions) -> Vec<usize> {
    let mut cur: Vec<Option<usize>> = items.iter().map(|i| i.owner.map(|w| w - base)).collect();
    for _ in 0..4 {
        let next = balance_pass(items, &cur, caps, o);
        let same = next.iter().zip(&cur).all(|(a, b)| Some(*a) == *b);
        cur = next.into_iter().map(Some).collect();
        if same {
            break;
        }
    }
    cur.into_iter()
        .map(|w| w.expect("every item placed") + base)
        .collect()
}

/// One pass from the owners `start` (indices into `caps`).
fn balance_pass(
    items: &[Item],
    start: &[Option<usize>],
    caps: &[f64],
    o: &ConsumerOptions,
) -> Vec<usize> {
    let n = caps.len();
    let total: f64 = items.iter().map(|i| i.weight).sum();
    let t = total / caps.iter().sum::<f64>();
    let hi_band = t * (1.0 + o.tolerance);
    let mut owner: Vec<Option<usize>> = start.to_vec();
    let mut held: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut load = vec![0.0; n];
    for (k, w) in owner.iter().enumerate() {
        if let Some(w) = *w {
            held[w].push(k);
            load[w] += items[k].weight;
        }
    }
    // Workers this plan changes: refined to the inner band. The others
    // (within ± tolerance, untouched) are left alone unless a partner.
    let lo_band = t * (1.0 - o.tolerance);
    let mut active: Vec<bool> = (0..n)
        .map(|w| {
            let u = load[w] / caps[w];
            held[w].is_empty() || u > hi_band || u < lo_band
        })
        .collect();
    // Above the band: shed down to the inner band (so what it sheds is
    // placed on the least loaded, not shuffled later), never the last
    // partition.
    let inner_hi = t * (1.0 + o.tolerance / 2.0);
    let inner_lo = t * (1.0 - o.tolerance / 2.0);
    for w in 0..n {
        if load[w] <= hi_band * caps[w] {
            continue;
        }
        let bound = inner_hi * caps[w];
        while load[w] > bound && held[w].len() > 1 {
            let excess = load[w] - bound;
            // Within the inner band after: the smallest partition that gets
            // it there; else the largest one below the excess (and go on);
            // else, while still above the outer band, the smallest above it
            // (within the outer band, overshooting below would only make
            // the shed partition land on another busy worker).
            let room = excess + (inner_hi - inner_lo) * caps[w];
            let by_weight = |a: &(usize, &usize), b: &(usize, &usize)| {
                items[*a.1]
                    .weight
                    .total_cmp(&items[*b.1].weight)
                    .then(a.1.cmp(b.1))
            };
            let wt = |k: usize| items[k].weight;
            let pick = held[w]
                .iter()
                .enumerate()
                .filter(|(_, &k)| wt(k) >= excess && wt(k) <= room)
                .min_by(by_weight)
                .or_else(|| {
                    held[w]
                        .iter()
                        .enumerate()
                        .filter(|(_, &k)| wt(k) < excess)
                        .max_by(by_weight)
                })
                .or_else(|| {
                    (load[w] > hi_band * caps[w])
                        .then(|| held[w].iter().enumerate().min_by(by_weight))
                        .flatten()
                })
                .map(|(pos, _)| pos);
            let Some(pick) = pick else { break };
            let k = held[w].swap_remove(pick);
            load[w] -= items[k].weight;
            owner[k] = None;
        }
    }
    // Place the rest, heaviest first, where utilisation after is lowest.
    let mut todo: Vec<usize> = (0..items.len()).filter(|&k| owner[k].is_none()).collect();
    todo.sort_by(|&a, &b| items[b].weight.total_cmp(&items[a].weight).then(a.cmp(&b)));
    for k in todo {
        let wt = items[k].weight;
        let w = (0..n)
            .min_by(|&a, &b| {
                ((load[a] + wt) / caps[a])
                    .total_cmp(&((load[b] + wt) / caps[b]))
                    .then(held[a].len().cmp(&held[b].len()))
                    .then(a.cmp(&b))
            })
            .expect("a pool has workers");
        owner[k] = Some(w);
        held[w].push(k);
        load[w] += wt;
        active[w] = true;
    }
    // Refine while a worker that can still improve is outside the inner
    // band (half the shedding band: the slack that keeps a replan after a
    // small change from shedding again).
    let steps = if o.max_steps == 0 {
        8 * items.len()
    } else {
        o.max_steps
    };
    // Σ (L − T·c)² / c of two workers.
    let cost = |la: f64, ca: f64, lb: f64, cb: f64| {
        (la - t * ca).powi(2) / ca + (lb - t * cb).powi(2) / cb
    };
    // Workers with no improving step left as the high (low) end.
    let mut stuck_hi = vec![false; n];
    let mut stuck_lo = vec![false; n];
    // A partition that already left its owner in this plan moves again
    // only back home: each moves at most once.
    let home = start;
    let may_move = |k: usize, to: usize, owner: &[Option<usize>]| {
        home[k].is_none() || owner[k] == home[k] || home[k] == Some(to)
    };
    for _ in 0..steps {
        let u = |w: usize| load[w] / caps[w];
        let hi = (0..n)
            .filter(|&w| active[w] && !stuck_hi[w] && u(w) > inner_hi)
            .max_by(|&a, &b| u(a).total_cmp(&u(b)).then(b.cmp(&a)));
        let lo = (0..n)
            .filter(|&w| active[w] && !stuck_lo[w] && u(w) < inner_lo)
            .min_by(|&a, &b| u(a).total_cmp(&u(b)).then(a.cmp(&b)));
        // The worse of the two ends first.
        let end = match (hi, lo) {
            (None, None) => break,
            (Some(h), None) => (h, true),
            (None, Some(l)) => (l, false),
            (Some(h), Some(l)) => {
                if u(h) - t >= t - u(l) {
                    (h, true)
                } else {
                    (l, false)
                }
            }
        };
        // The best move of one partition, or swap of a pair, between that
        // end and any other worker.
        let mut best: Option<(f64, usize, usize, usize, Option<usize>)> = None;
        for other in (0..n).filter(|&x| x != end.0) {
            let (a, b) = if end.1 {
                (end.0, other)
            } else {
                (other, end.0)
            };
            let before = cost(load[a], caps[a], load[b], caps[b]);
            // The partner may not leave its band — the inner one when this
            // plan refines it, else the outer one — nor, outside it, get
            // further out: no cascade of moves behind the one that helps.
            let dev = |l: f64| (l / caps[other] - t).abs();
            let band = if active[other] {
                inner_lo..=inner_hi
            } else {
                lo_band..=hi_band
            };
            let partner_gets = |delta: f64| {
                let l = load[other] + if end.1 { delta } else { -delta };
                band.contains(&(l / caps[other])) || dev(l) <= dev(load[other])
            };
            for (pa, &ka) in held[a].iter().enumerate() {
                if !may_move(ka, b, &owner) {
                    continue;
                }
                let wa = items[ka].weight;
                let d = cost(load[a] - wa, caps[a], load[b] + wa, caps[b]) - before;
                if d < -1e-12 && best.as_ref().is_none_or(|x| d < x.0) && partner_gets(wa) {
                    best = Some((d, a, b, pa, None));
                }
                for (pb, &kb) in held[b].iter().enumerate() {
                    let wb = items[kb].weight;
                    if wb >= wa || !may_move(kb, a, &owner) {
                        continue;
                    }
                    let d = cost(load[a] - wa + wb, caps[a], load[b] + wa - wb, caps[b]) - before;
                    if d < -1e-12 && best.as_ref().is_none_or(|x| d < x.0) && partner_gets(wa - wb)
                    {
                        best = Some((d, a, b, pa, Some(pb)));
                    }
                }
            }
        }
        let Some((_, a, b, pa, pb)) = best else {
            if end.1 {
                stuck_hi[end.0] = true;
            } else {
                stuck_lo[end.0] = true;
            }
            continue;
        };
        let ka = held[a].swap_remove(pa);
        load[a] -= items[ka].weight;
        load[b] += items[ka].weight;
        owner[ka] = Some(b);
        if let Some(pb) = pb {
            let kb = held[b].swap_remove(pb);
            load[b] -= items[kb].weight;
            load[a] += items[kb].weight;
            owner[kb] = Some(a);
            held[a].push(kb);
        }
        held[b].push(ka);
    }
    owner
        .into_iter()
        .map(|w| w.expect("every item placed"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, pool: &str, capacity: f64) -> Worker {
        Worker {
            id: id.into(),
            pool: pool.into(),
            capacity,
        }
    }

    fn bind(topic: &str, pools: &[(&str, u32)], cpu: &[f64]) -> Binding {
        Binding {
            cluster: "c".into(),
            topic: topic.into(),
            group: format!("g-{topic}"),
            pools: pools
                .iter()
                .map(|(p, r)| PoolShare {
                    pool: p.to_string(),
                    ratio: *r,
                })
                .collect(),
            partitions: cpu
                .iter()
                .enumerate()
                .map(|(i, &c)| PartitionLoad {
                    partition: i as i32,
                    cpu: Some(c),
                    lag: 0,
                    owner: None,
                })
                .collect(),
        }
    }

    fn opts() -> ConsumerOptions {
        ConsumerOptions::default()
    }

    #[test]
    fn capacity_weighs_the_share_and_equal_cpu_spreads_evenly() {
        let workers = [w("a", "p", 1.0), w("b", "p", 2.0), w("c", "p", 1.0)];
        let b = [bind("t", &[("p", 1)], &[1.0; 40])];
        let p = plan_consumers(&workers, &b, &opts()).unwrap();
        assert_eq!(p.assignments.len(), 40);
        assert_eq!(p.placed, 40);
        let n = |id: &str| p.workers.iter().find(|x| x.id == id).unwrap().partitions;
        assert_eq!((n("a"), n("b"), n("c")), (10, 20, 10));
        assert!(p.cpu_spread < 1e-9, "{}", p.cpu_spread);
    }

    #[test]
    fn ratios_split_partition_counts_between_pools() {
        let workers = [w("a", "p", 1.0), w("b", "q", 1.0)];
        let b = [bind("t", &[("p", 70), ("q", 30)], &[0.1; 10])];
        let p = plan_consumers(&workers, &b, &opts()).unwrap();
        let in_pool = |x: &str| p.assignments.iter().filter(|a| a.pool == x).count();
        assert_eq!((in_pool("p"), in_pool("q")), (7, 3));
        // A pool with no worker: its share goes to the others.
        let p = plan_consumers(&workers[..1], &b, &opts()).unwrap();
        assert_eq!(p.assignments.len(), 10);
        assert!(p.unassigned.is_empty());
    }

    #[test]
    fn no_worker_in_any_bound_pool_is_unassigned_with_the_reason() {
        let workers = [w("a", "p", 1.0)];
        let b = [bind("t", &[("q", 1), ("r", 1)], &[0.1; 2])];
        let p = plan_consumers(&workers, &b, &opts()).unwrap();
        assert!(p.assignments.is_empty());
        assert_eq!(p.unassigned.len(), 2);
        assert_eq!(p.unassigned[0].reason, "no worker in pool(s) q, r");
    }

    #[test]
    fn heavy_partitions_are_spread_by_cpu_not_count() {
        // One partition costs as much as the other nine together.
        let mut cpu = vec![0.1; 9];
        cpu.push(0.9);
        let workers = [w("a", "p", 1.0), w("b", "p", 1.0)];
        let p = plan_consumers(&workers, &[bind("t", &[("p", 1)], &cpu)], &opts()).unwrap();
        let heavy = p.assignments.iter().find(|a| a.partition == 9).unwrap();
        let holder = p.workers.iter().find(|x| x.id == heavy.worker).unwrap();
        assert_eq!(holder.partitions, 1, "{:?}", p.workers);
        assert!(p.cpu_spread < 1e-9);
    }

    #[test]
    fn an_unmeasured_partition_weighs_its_topics_mean_and_lag_adds_weight() {
        let mut b = bind("t", &[("p", 1)], &[0.2, 0.4, 0.0]);
        b.partitions[2].cpu = None;
        b.partitions[1].lag = 50_000;
        let p = plan_consumers(&[w("a", "p", 1.0)], &[b], &opts()).unwrap();
        let wt = |i: i32| {
            p.assignments
                .iter()
                .find(|a| a.partition == i)
                .unwrap()
                .weight
        };
        assert!((wt(2) - 0.3).abs() < 1e-12, "{}", wt(2));
        // Half of lag_full: × 1.5.
        assert!((wt(1) - 0.6).abs() < 1e-12, "{}", wt(1));
    }

    #[test]
    fn a_replan_of_its_own_output_moves_nothing() {
        let workers: Vec<Worker> = (0..7)
            .map(|i| w(&format!("w{i}"), "p", 1.0 + (i % 3) as f64))
            .collect();
        let cpu: Vec<f64> = (0..50)
            .map(|i| 0.01 + (i * 37 % 11) as f64 * 0.01)
            .collect();
        let b = [
            bind("t", &[("p", 1)], &cpu),
            bind("u", &[("p", 1)], &cpu[..20]),
        ];
        let first = plan_consumers(&workers, &b, &opts()).unwrap();
        let again = plan_consumers(&workers, &first.apply(&b), &opts()).unwrap();
        assert!(again.moves.is_empty(), "{:?}", again.moves);
        assert_eq!(again.placed, 0);
        assert_eq!(again.assignments, first.assignments);
    }

    #[test]
    fn a_joining_worker_takes_about_its_fair_share_and_a_leaving_ones_partitions_move() {
        let mut workers: Vec<Worker> = (0..10).map(|i| w(&format!("w{i}"), "p", 1.0)).collect();
        let cpu: Vec<f64> = (0..200)
            .map(|i| 0.01 + (i * 37 % 11) as f64 * 0.002)
            .collect();
        let b = [bind("t", &[("p", 1)], &cpu)];
        let first = plan_consumers(&workers, &b, &opts()).unwrap();
        let current = first.apply(&b);
        workers.push(w("w10", "p", 1.0));
        let p = plan_consumers(&workers, &current, &opts()).unwrap();
        let total: f64 = cpu.iter().sum();
        let fair = total / 11.0;
        let moved: f64 = p.moves.iter().map(|m| m.weight).sum();
        let w_max = cpu.iter().copied().fold(0.0, f64::max);
        // Its fair share, give or take one partition; all of it to w10.
        assert!(moved <= fair + w_max, "moved {moved}, fair share {fair}");
        assert!(
            moved >= fair * 0.95 - w_max,
            "moved {moved}, fair share {fair}"
        );
        assert!(p.moves.iter().all(|m| m.to == "w10"), "{:?}", p.moves);
        assert!(p.cpu_spread <= 0.05 + 1e-9, "{}", p.cpu_spread);
        // w3 leaves: only what it held moves (to anyone).
        let current = p.apply(&b);
        let held: Vec<i32> = p
            .assignments
            .iter()
            .filter(|a| a.worker == "w3")
            .map(|a| a.partition)
            .collect();
        workers.retain(|x| x.id != "w3");
        let q = plan_consumers(&workers, &current, &opts()).unwrap();
        let mut moved: Vec<i32> = q.moves.iter().map(|m| m.partition).collect();
        moved.sort();
        let mut held = held;
        held.sort();
        assert_eq!(moved, held);
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = |workers: &[Worker], b: &[Binding]| {
            plan_consumers(workers, b, &opts()).unwrap_err().to_string()
        };
        let ok = [bind("t", &[("p", 1)], &[0.1])];
        assert_eq!(
            e(&[w("a", "p", 0.0)], &ok),
            "workers[0].capacity: must be a finite number > 0, got 0"
        );
        assert_eq!(
            e(&[w("a", "p", 1.0), w("a", "q", 1.0)], &ok),
            "workers[1].id: worker \"a\" is listed twice"
        );
        let mut bad = ok.clone();
        bad[0].pools[0].ratio = 0;
        assert_eq!(e(&[], &bad), "bindings[0].pools[0].ratio: must be > 0");
        let mut bad = ok.clone();
        bad[0].partitions[0].cpu = Some(f64::NAN);
        assert!(e(&[], &bad).starts_with("bindings[0].partitions[0].cpu:"));
        let two = [ok[0].clone(), ok[0].clone()];
        assert_eq!(e(&[], &two), "bindings[1]: c/t/g-t is bound twice");
    }
}
