//! Planner benchmarks, single-threaded (run under `taskset -c 0` for one core):
//!
//! `cargo bench -p guardian-planner --features testing --bench plan -- [g1k|cc-parity|placement|throttle|consumers|all|<scenario>] [--runs N] [--seed N]`
//!
//! Model building is not timed; each figure is the median of `--runs`
//! (default 5; CC-parity 1), with min and max beside it.
use std::time::Instant;

use guardian_planner::consumer::{plan_consumers, ConsumerOptions, Worker};
use guardian_planner::generate::{fleet, scenario, FleetParams};
use guardian_planner::model::PolicySpec;
use guardian_planner::{
    place, plan, plan_throttles, verify, ClusterModel, Goals, NewTopic, PlanOptions, Resource,
    ThrottleOptions,
};

fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (T, [f64; 3]) {
    let mut ms = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = std::hint::black_box(f());
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(v);
    }
    ms.sort_by(f64::total_cmp);
    (
        last.expect("at least one run"),
        [ms[ms.len() / 2], ms[0], ms[ms.len() - 1]],
    )
}

fn model(name: &str, seed: u64) -> ClusterModel {
    let t = Instant::now();
    let spec = scenario(name, seed).expect("known scenario");
    let m = ClusterModel::from_spec(&spec).expect("valid model");
    println!(
        "{name} seed {seed}: {} brokers, {} disks, {} partitions, {} replicas (generated in {:.0} ms)",
        m.brokers.len(),
        m.disks.len(),
        m.partitions.len(),
        m.replicas.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    m
}

fn balance(name: &str, seed: u64, runs: usize) {
    let m = model(name, seed);
    let goals = Goals::default();
    let (p, [med, min, max]) = timed(runs, || plan(&m, &goals, &PlanOptions::default()).unwrap());
    let r = verify(&m, &p, &goals);
    println!(
        "BENCH balance {name}: plan {med:.0} ms (min {min:.0}, max {max:.0}, {runs} runs); disk_bytes max/mean {:.3} → {:.3} (feasible {:.3}); bytes moved {:.3} × lower bound; {} moves, {} leader moves, {} hard violations",
        r.before[&Resource::DiskBytes].max_over_mean,
        r.after[&Resource::DiskBytes].max_over_mean,
        r.feasibility[&Resource::DiskBytes],
        r.bytes_over_lower_bound.unwrap_or(0.0),
        r.moves,
        r.leader_moves,
        r.hard_violations.len()
    );
    print!("{}", r.table());
    println!(
        "BENCH {name} peak RSS (VmHWM, whole process: generated spec, model and plan): {:.0} MiB",
        peak_rss_mib()
    );
}

/// The consumer planner on a generated fleet (the reconciliation platform
/// of seed `000_…`: 3,000 partitions, 200 workers of mixed capacity, 5 %
/// unmeasured, 10 % lagging): the first plan, then one worker joining the
/// busiest pool and the replan from the first plan's owners.
fn consumers(partitions: u32, workers: u32, pools: u32, skew: f64, seed: u64, runs: usize) {
    let params = FleetParams {
        partitions,
        workers,
        pools,
        skew,
    };
    let (mut ws, bindings) = fleet(&params, seed);
    let o = ConsumerOptions::default();
    let (first, [med, min, max]) = timed(runs, || plan_consumers(&ws, &bindings, &o).unwrap());
    let busiest = first
        .pools
        .iter()
        .max_by(|x, y| x.mean_utilization.total_cmp(&y.mean_utilization))
        .map(|x| x.pool.clone())
        .unwrap_or_default();
    ws.push(Worker {
        id: "joined".into(),
        pool: busiest.clone(),
        capacity: 2.0,
    });
    let current = first.apply(&bindings);
    let (next, [rmed, rmin, rmax]) = timed(runs, || plan_consumers(&ws, &current, &o).unwrap());
    let fair = next
        .pools
        .iter()
        .find(|x| x.pool == busiest)
        .map_or(0.0, |x| x.mean_utilization * 2.0);
    let moved: f64 = next.moves.iter().map(|m| m.weight).sum();
    let off_new = next.moves.iter().filter(|m| m.to != "joined").count();
    println!(
        "BENCH consumers {partitions} partitions / {workers} workers, {pools} pool(s), skew {skew}, {} bindings: \
         plan {med:.2} ms (min {min:.2}, max {max:.2}, {runs} runs); CPU spread {:.2} % (bound {:.2} %); \
         one worker joins {busiest}: replan {rmed:.2} ms (min {rmin:.2}, max {rmax:.2}), {} moves ({off_new} not to it), \
         moved {:.3} of its fair share, spread after {:.2} % (bound {:.2} %)",
        bindings.len(),
        first.cpu_spread * 100.0,
        first.spread_bound * 100.0,
        next.moves.len(),
        if fair > 0.0 { moved / fair } else { 0.0 },
        next.cpu_spread * 100.0,
        next.spread_bound * 100.0,
    );
}

/// This process's peak resident memory so far (`VmHWM`), in MiB; 0 where
/// `/proc` is absent. (Bench only: the planner itself does no I/O.)
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            l.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let what = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .cloned()
        .unwrap_or_else(|| "all".into());
    let seed = flag("--seed").unwrap_or(1) as u64;
    let runs = flag("--runs");
    let all = what == "all";
    if all || what == "g1k" {
        balance("g1k", seed, runs.unwrap_or(5));
    }
    if all || what == "consumers" {
        for (pools, skew) in [(1, 0.5), (2, 0.5), (2, 1.0), (4, 1.0)] {
            consumers(3000, 200, pools, skew, seed, runs.unwrap_or(20));
        }
    }
    if !all && !["g1k", "cc-parity", "placement", "throttle", "consumers"].contains(&what.as_str())
    {
        balance(&what, seed, runs.unwrap_or(3));
    }
    if all || what == "cc-parity" {
        balance("cc-parity", seed, runs.unwrap_or(1));
    }
    if all || what == "placement" {
        let m = model("g1k", seed);
        let t = NewTopic {
            name: "new-topic".into(),
            partitions: 10_000,
            replication_factor: 3,
            bytes_in_per_partition: 200e3,
            size_per_partition: 20 << 30,
            pool: "tenant-0".into(),
            policy: PolicySpec::default(),
            max_disk_fill: 0.95,
        };
        let (p, [med, min, max]) = timed(runs.unwrap_or(20), || place(&m, &t).unwrap());
        println!(
            "BENCH placement 10,000 partitions × RF 3 on g1k pool tenant-0: {med:.1} ms (min {min:.1}, max {max:.1}); {} partitions placed",
            p.partitions.len()
        );
    }
    if all || what == "throttle" {
        let m = model("g1k", seed);
        let o = ThrottleOptions::default();
        let (p, [med, min, max]) = timed(runs.unwrap_or(20), || plan_throttles(&m, &o));
        let abnormal: usize = p.disks.iter().map(|d| d.abnormal.len()).sum();
        println!(
            "BENCH throttle g1k ({} consumer positions): {med:.1} ms (min {min:.1}, max {max:.1}); {} disks with abnormal I/O ({abnormal} entries), {} actions, {} migrate-away",
            m.groups.iter().map(|g| g.positions.len()).sum::<usize>(),
            p.disks.len(),
            p.actions.len(),
            p.migrate_away.len()
        );
    }
}
