//! Planner benchmarks (one core): `cargo bench -p guardian-planner --features testing --bench plan -- [g1k|cc-parity|placement|throttle|all] [--seed N] [--runs N]`.
use std::time::Instant;

use guardian_planner::generate::scenario;
use guardian_planner::{plan, verify, ClusterModel, Goals, PlanOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let what = args.first().cloned().unwrap_or_else(|| "g1k".into());
    let seed = 1;
    let t = Instant::now();
    let spec = scenario(&what, seed).unwrap();
    let m = ClusterModel::from_spec(&spec).unwrap();
    println!("{what}: built in {:?}: {} brokers, {} disks, {} replicas", t.elapsed(), m.brokers.len(), m.disks.len(), m.replicas.len());
    let goals = Goals::default();
    let t = Instant::now();
    let p = plan(&m, &goals, &PlanOptions::default()).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let r = verify(&m, &p, &goals);
    println!("plan {ms:.0} ms\n{}", r.table());
}
