//! `guardian consumers …`: consumer scheduling. `simulate` runs the
//! consumer planner locally on a generated worker fleet (what-if, no
//! controller needed).

use std::time::Instant;

use clap::{Args, Subcommand};
use guardian_planner::consumer::{plan_consumers, Binding, ConsumerOptions, ConsumerPlan, Worker};
use guardian_planner::generate::{fleet, FleetParams};
use serde_json::{json, Value};

use super::plan::{print, usage};
use super::{CliError, Format};

#[derive(Subcommand, Debug)]
pub enum ConsumersCmd {
    /// Plan a generated worker fleet: plan time, CPU spread and its bound,
    /// then the replan after one worker joins (its moves against its fair
    /// share).
    Simulate(SimulateArgs),
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = 3000)]
    pub partitions: u32,
    #[arg(long, default_value_t = 200)]
    pub workers: u32,
    #[arg(long, default_value_t = 1)]
    pub pools: u32,
    /// σ of the lognormal per-partition CPU (0: all equal).
    #[arg(long, default_value_t = 1.0)]
    pub skew: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Half-width of the balance band around each pool's mean utilisation.
    #[arg(long, default_value_t = 0.05)]
    pub tolerance: f64,
}

fn pools_json(p: &ConsumerPlan) -> Value {
    json!(p
        .pools
        .iter()
        .map(|x| json!({
            "pool": x.pool,
            "workers": x.workers,
            "partitions": x.partitions,
            "load": x.load,
            "capacity": x.capacity,
            "mean_utilization": x.mean_utilization,
            "max_utilization": x.max_utilization,
            "cpu_spread": x.cpu_spread,
            "spread_bound": x.spread_bound,
        }))
        .collect::<Vec<_>>())
}

/// The bindings with each partition's owner from `plan`.
fn owned(bindings: &[Binding], plan: &ConsumerPlan) -> Vec<Binding> {
    let mut out = bindings.to_vec();
    for a in &plan.assignments {
        if let Some(p) = out[a.binding]
            .partitions
            .iter_mut()
            .find(|p| p.partition == a.partition)
        {
            p.owner = Some(a.worker.clone());
        }
    }
    out
}

fn simulate(format: Format, a: SimulateArgs) -> Result<(), CliError> {
    if a.workers == 0 || a.partitions == 0 {
        return Err(usage("--workers and --partitions must be > 0"));
    }
    if !(a.skew.is_finite() && a.skew >= 0.0) {
        return Err(usage("--skew must be a number >= 0"));
    }
    let params = FleetParams {
        partitions: a.partitions,
        workers: a.workers,
        pools: a.pools.max(1),
        skew: a.skew,
    };
    let (mut workers, bindings) = fleet(&params, a.seed);
    let opts = ConsumerOptions {
        tolerance: a.tolerance,
        ..ConsumerOptions::default()
    };
    let t0 = Instant::now();
    let first = plan_consumers(&workers, &bindings, &opts).map_err(usage)?;
    let plan_ms = t0.elapsed().as_secs_f64() * 1e3;

    // One worker joins the busiest pool (as the source article places a
    // new pod), with the fleet's most common capacity.
    let busiest = first
        .pools
        .iter()
        .max_by(|x, y| x.mean_utilization.total_cmp(&y.mean_utilization))
        .map(|x| x.pool.clone())
        .unwrap_or_default();
    let joined = Worker {
        id: "joined".into(),
        pool: busiest.clone(),
        capacity: 2.0,
    };
    workers.push(joined.clone());
    let current = owned(&bindings, &first);
    let t1 = Instant::now();
    let next = plan_consumers(&workers, &current, &opts).map_err(usage)?;
    let replan_ms = t1.elapsed().as_secs_f64() * 1e3;
    let pool = next.pools.iter().find(|x| x.pool == busiest);
    let fair = pool.map_or(0.0, |x| x.mean_utilization * joined.capacity);
    let moved: f64 = next.moves.iter().map(|m| m.weight).sum();
    let to_new = next.moves.iter().filter(|m| m.to == joined.id).count();

    let v = json!({
        "partitions": a.partitions,
        "workers": a.workers,
        "pools": a.pools.max(1),
        "bindings": bindings.len(),
        "skew": a.skew,
        "seed": a.seed,
        "tolerance": a.tolerance,
        "plan_ms": plan_ms,
        "cpu_spread": first.cpu_spread,
        "spread_bound": first.spread_bound,
        "placed": first.placed,
        "unassigned": first.unassigned.len(),
        "per_pool": pools_json(&first),
        "join": {
            "pool": busiest,
            "replan_ms": replan_ms,
            "moves": next.moves.len(),
            "moves_to_new_worker": to_new,
            "moved_weight": moved,
            "fair_share": fair,
            "moved_over_fair_share": if fair > 0.0 { moved / fair } else { 0.0 },
            "cpu_spread": next.cpu_spread,
            "spread_bound": next.spread_bound,
        },
    });
    print(format, &v, || {
        let mut s = format!(
            "{} partitions in {} bindings on {} workers in {} pool(s): planned in {plan_ms:.2} ms\n\
             CPU spread (max utilisation ÷ pool mean − 1): {:.2} % (bound {:.2} %)\n",
            a.partitions,
            bindings.len(),
            a.workers,
            a.pools.max(1),
            first.cpu_spread * 100.0,
            first.spread_bound * 100.0
        );
        for p in &first.pools {
            s += &format!(
                "  {}: {} workers, {} partitions, mean utilisation {:.3}, spread {:.2} % (bound {:.2} %)\n",
                p.pool,
                p.workers,
                p.partitions,
                p.mean_utilization,
                p.cpu_spread * 100.0,
                p.spread_bound * 100.0
            );
        }
        s += &format!(
            "a worker joins {busiest}: replanned in {replan_ms:.2} ms, {} moves ({to_new} to it), moved weight {:.2} × its fair share; spread {:.2} %\n",
            next.moves.len(),
            if fair > 0.0 { moved / fair } else { 0.0 },
            next.cpu_spread * 100.0
        );
        s
    });
    Ok(())
}

pub fn run(format: Format, cmd: ConsumersCmd) -> Result<(), CliError> {
    match cmd {
        ConsumersCmd::Simulate(a) => simulate(format, a),
    }
}
