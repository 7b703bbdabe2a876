//! One governance round's CPU at G1k size (goal ≤ 100 ms), on one thread:
//!
//! `cargo bench -p guardian-controller --bench governance -- [--seed N] [--runs N]`
//!
//! A round is: the throttle model built from the cluster spec
//! (`ClusterModel::from_spec`, the dense model of 1,000 brokers, 4,000
//! disks, 200,100 replicas and the groups' 133k positions), `plan_throttles`,
//! the plan turned into claims (`claims::wants`: quota level resolution,
//! the floor, replication and copy-rate claims) and diffed against the
//! claims held from the previous round (`claims::diff`). Not included: the
//! Kafka and reporter reads that fill the spec (Metadata, DescribeLogDirs,
//! consumer lag — network time, measured by `kafka-bench`), and the Raft
//! writes of the claims that change.

use std::time::Instant;

use guardian_controller::governance::claims;
use guardian_planner::generate::scenario;
use guardian_planner::throttle::{plan_throttles, ThrottleOptions};
use guardian_planner::ClusterModel;
use guardian_proto::governance::{Claim, ClaimState};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seed = arg("--seed", 1);
    let runs = arg("--runs", 7) as usize;
    let mut spec = scenario("g1k", seed).expect("g1k");
    // Every broker's cache small enough that lagging groups read from disk.
    for b in &mut spec.brokers {
        b.page_cache_bytes = 8 << 30;
    }
    let positions: usize = spec.groups.iter().map(|g| g.positions.len()).sum();
    println!(
        "g1k seed {seed}: {} brokers, {} topics, {} groups, {positions} positions",
        spec.brokers.len(),
        spec.topics.len(),
        spec.groups.len()
    );
    let floor = |_: &str| 0.0;
    let mut held: Vec<Claim> = Vec::new();
    let mut ms = Vec::new();
    let mut last = (0, 0, 0, 0);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let m = ClusterModel::from_spec(&spec).expect("valid");
        let plan = plan_throttles(
            &m,
            &ThrottleOptions {
                now_ms: 1_000,
                ..ThrottleOptions::default()
            },
        );
        let targets: Vec<_> = held.iter().map(|c| c.target.clone()).collect();
        let (wants, cannot) = claims::wants(&plan, &[], &targets, &floor, true);
        let (renew, fresh) = claims::diff(&held, &wants);
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        ms.push(elapsed);
        last = (
            plan.actions.len(),
            wants.len(),
            renew.iter().flatten().count(),
            fresh.len(),
        );
        let _ = cannot;
        // The next round holds what this one wanted.
        held = wants
            .iter()
            .enumerate()
            .map(|(i, w)| Claim {
                id: i as u64 + 1,
                cluster: "g1k".into(),
                target: w.target.clone(),
                value: w.value.clone(),
                prior: None,
                state: ClaimState::Applied,
                owner: "governance".into(),
                reason: w.reason.clone(),
                since_ms: 0,
                renewed_ms: 0,
                expires_ms: u64::MAX,
                hard_expiry_ms: u64::MAX,
                absent_rounds: 0,
            })
            .collect();
    }
    let first = ms[0];
    ms.sort_by(f64::total_cmp);
    println!(
        "BENCH governance round g1k: median {:.0} ms (min {:.0}, max {:.0}, first {first:.0}; {} runs); {} actions → {} claims; last round renews {} and creates {}",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1],
        ms.len(),
        last.0,
        last.1,
        last.2,
        last.3
    );
}
