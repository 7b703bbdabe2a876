//! Property tests over random small clusters: every plan satisfies every
//! hard constraint (the verifier replays it), moves no replica twice, moves
//! at least its own lower bound, and is identical when planned twice; an
//! infeasible cluster lists what it cannot place, with the reason. Placement
//! and throttles are deterministic too.
//!
//! CI runs these deterministically: a fixed RNG seed and 512 cases per
//! property, plus the cases in `proptest-regressions/` (committed). The wide
//! random exploration is opt-in:
//!
//! ```sh
//! GUARDIAN_PROPTEST_WIDE=1 cargo test -p guardian-planner --test prop --release
//! ```
//!
//! runs 8,192 cases per property from a random seed (`PROPTEST_CASES` and
//! `PROPTEST_RNG_SEED` override either); a failure prints the seed and
//! proptest records its seed in `proptest-regressions/prop.txt` — commit it
//! (and, better, a plain test of the shrunk case, as below).

use guardian_planner::consumer;
use guardian_planner::model::{
    BrokerSpec, ClusterSpec, DiskSpec, PartitionSpec, PolicySpec, ReplicaSpec, TopicSpec,
};
use guardian_planner::{
    place, plan, plan_throttles, verify, Action, ClusterModel, Goals, NewTopic, PlanOptions,
    Resource, ThrottleOptions,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

const GB: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
struct Shape {
    racks: usize,
    per_rack: usize,
    disks: usize,
    pools: usize,
    dead: Option<usize>,
    decommission: Option<usize>,
    failed_disk: Option<usize>,
    parts: Vec<PartShape>,
}

/// (pool, replicas as (broker index, disk index), size, bytes in).
type PartShape = (usize, Vec<(usize, usize)>, u64, f64);

/// The seed CI uses (any fixed value; changing it changes which cases run).
const CI_SEED: u64 = 0x6775_6172_6469_616e;

/// 512 cases from [`CI_SEED`]; `GUARDIAN_PROPTEST_WIDE=1` makes it 8,192
/// cases from a random seed. `PROPTEST_CASES` / `PROPTEST_RNG_SEED` win.
fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    let wide = std::env::var_os("GUARDIAN_PROPTEST_WIDE").is_some();
    let cases_set = std::env::var_os("PROPTEST_CASES").is_some();
    ProptestConfig {
        cases: match (cases_set, wide) {
            (true, _) => base.cases,
            (false, true) => 8192,
            (false, false) => 512,
        },
        rng_seed: match (base.rng_seed, wide) {
            (RngSeed::Random, false) => RngSeed::Fixed(CI_SEED),
            (seed, _) => seed,
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/prop.txt",
        ))),
        ..base
    }
}

/// Feasible random clusters: every pool has a usable broker in every rack
/// even after one broker dies, one is decommissioned and one loses a disk
/// (a replica on a failed disk must leave its broker: Kafka's
/// AlterReplicaLogDirs copies from the source dir, which is gone); capacity
/// is ample. Initial placements are random — racks, pools and brokers may
/// clash.
fn shape() -> impl Strategy<Value = Shape> {
    (2usize..5, 1usize..3, 1usize..4, 1usize..3, any::<u8>()).prop_flat_map(
        |(racks, k, disks, pools, faults)| {
            // Per rack and pool: k brokers, plus one for each fault.
            let per_rack = k * pools + if faults % 4 == 0 { 0 } else { 3 * pools };
            let brokers = racks * per_rack;
            let max_rf = racks.min(3);
            let part = (
                0usize..pools,
                proptest::collection::vec((0..brokers, 0..disks), 1..=max_rf),
                1u64..50,
                0.0f64..5e6,
            );
            (
                proptest::collection::vec(part, 1..40),
                prop::option::of(0..brokers),
                prop::option::of(0..brokers),
                prop::option::of(0..brokers * disks),
            )
                .prop_map(move |(parts, dead, decom, failed)| Shape {
                    racks,
                    per_rack,
                    disks,
                    pools,
                    dead: dead.filter(|_| faults % 4 != 0),
                    decommission: decom.filter(|_| faults % 4 != 0),
                    failed_disk: failed.filter(|_| faults % 4 != 0 && disks > 1),
                    parts: parts
                        .into_iter()
                        .map(|(pool, reps, size, bi)| (pool, reps, size * GB, bi))
                        .collect(),
                })
        },
    )
}

fn spec(s: &Shape) -> ClusterSpec {
    let n = s.racks * s.per_rack;
    let brokers = (0..n)
        .map(|i| {
            let (rack, k) = (i % s.racks, i / s.racks);
            BrokerSpec {
                id: i as i32 + 1,
                rack: format!("r{rack}"),
                idc: format!("i{}", rack % 2),
                pool: format!("p{}", k % s.pools),
                alive: s.dead != Some(i),
                decommission: s.decommission == Some(i) && s.dead != Some(i),
                excluded: false,
                nw_in_capacity: 1e12,
                nw_out_capacity: 1e12,
                cpu_capacity: 1e6,
                page_cache_bytes: GB,
                write_rate: 0.0,
                disks: (0..s.disks)
                    .map(|d| DiskSpec {
                        dir: format!("/d{d}"),
                        capacity_bytes: 100_000 * GB,
                        failed: s.failed_disk == Some(i * s.disks + d),
                        ..DiskSpec::default()
                    })
                    .collect(),
            }
        })
        .collect();
    let topics = (0..s.pools)
        .map(|pool| TopicSpec {
            pinned: false,
            name: format!("t{pool}"),
            pool: format!("p{pool}"),
            policy: PolicySpec {
                rack_unique: true,
                idcs: Vec::new(),
                min_idcs: 2,
            },
            partitions: s
                .parts
                .iter()
                .filter(|p| p.0 == pool)
                .enumerate()
                .map(|(i, (_, reps, size, bi))| {
                    let mut seen = Vec::new();
                    let replicas = reps
                        .iter()
                        .filter(|(b, _)| {
                            let fresh = !seen.contains(b);
                            seen.push(*b);
                            fresh
                        })
                        .map(|&(b, d)| ReplicaSpec {
                            broker: b as i32 + 1,
                            dir: format!("/d{d}"),
                            lag_bytes: 0,
                        })
                        .collect();
                    PartitionSpec {
                        partition: i as i32,
                        replicas,
                        leader: None,
                        size_bytes: *size,
                        bytes_in: *bi,
                        bytes_out: bi * 2.0,
                        disk_read: 0.0,
                        messages_in: 0.0,
                        cpu: bi / 1e7,
                        future: None,
                    }
                })
                .collect(),
        })
        .collect();
    ClusterSpec {
        name: "prop".into(),
        brokers,
        topics,
        groups: Vec::new(),
        follower_cpu_fraction: 0.3,
    }
}

/// The case a CI run once found: rack r1's only usable unit is
/// the other disk of broker 4, whose /d0 failed. The generator wrongly called
/// it feasible; the planner is right to refuse the intra-broker move, and
/// must say so in `unplaced` rather than drop the replica.
#[test]
fn failed_disk_whose_rack_has_no_other_broker_is_unplaced_with_the_reason() {
    let s = Shape {
        racks: 2,
        per_rack: 3,
        disks: 2,
        pools: 1,
        dead: Some(5),
        decommission: Some(1),
        failed_disk: Some(6),
        parts: vec![(0, vec![(3, 0), (0, 0)], GB, 0.0)],
    };
    let m = ClusterModel::from_spec(&spec(&s)).unwrap();
    let goals = Goals::default();
    let p = plan(&m, &goals, &PlanOptions::default()).unwrap();
    assert_eq!(p.moves, 0, "{p:?}");
    assert_eq!(p.unplaced.len(), 1, "{:?}", p.unplaced);
    assert_eq!(
        p.unplaced[0].reason,
        "t0-0 must move because its broker or disk is gone, and no broker/disk satisfies the hard constraints"
    );
    let r = verify(&m, &p, &goals);
    assert_eq!(r.hard_violations.len(), 1, "{:?}", r.hard_violations);
    assert_eq!(r.hard_violations[0].constraint, "unusable_unit");
    assert_eq!(r.hard_violations[0].subject, "t0-0");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn plans_are_valid_and_deterministic(s in shape()) {
        let m = ClusterModel::from_spec(&spec(&s)).unwrap();
        let goals = Goals::default();
        let p = plan(&m, &goals, &PlanOptions::default()).unwrap();
        let r = verify(&m, &p, &goals);
        prop_assert!(r.hard_violations.is_empty(), "{:?}\n{:?}", r.hard_violations, p.unplaced);
        prop_assert!(p.unplaced.is_empty());
        // Invariant 17: a plan that meets the goals the bound is made of
        // (disk bytes, disk write, nw in, replica count) moves at least the
        // bound. Where a goal is out of reach — e.g. 15 + 7 + 10 GB on one
        // of two brokers: no split gets within 1.05 of the mean — the bound
        // speaks of no plan, and the best-effort plan may move less.
        let met = [
            (Resource::DiskBytes, goals.disk_bytes),
            (Resource::DiskWrite, goals.disk_write),
            (Resource::NwIn, goals.nw_in),
            (Resource::Replicas, goals.replicas),
        ]
        .iter()
        .all(|(res, goal)| r.after[res].max_over_mean <= goal + 1e-9);
        if met {
            prop_assert!(
                p.bytes_moved >= p.bytes_lower_bound,
                "met the goals moving {} < lower bound {}",
                p.bytes_moved,
                p.bytes_lower_bound
            );
        }
        let mut moved: Vec<(u32, u8)> = p
            .actions()
            .filter_map(|a| match a {
                Action::Move { partition, slot, .. } => Some((*partition, *slot)),
                _ => None,
            })
            .collect();
        let n = moved.len();
        moved.sort_unstable();
        moved.dedup();
        prop_assert_eq!(moved.len(), n, "a replica moved twice");
        prop_assert_eq!(n, p.moves);
        let again = plan(&m, &goals, &PlanOptions::default()).unwrap();
        prop_assert_eq!(p, again);
    }

    /// Infeasible by construction: one partition has a replica in every
    /// rack (rack-unique), and every broker of rack r0 is dead. That
    /// replica has nowhere to go; the plan must name it and why, and the
    /// verifier must report it, never a silent drop (invariant 16).
    #[test]
    fn infeasible_clusters_name_what_they_cannot_place(s in shape()) {
        let mut c = spec(&s);
        for b in &mut c.brokers {
            if b.rack == "r0" {
                b.alive = false;
                b.decommission = false;
            }
            for d in &mut b.disks {
                d.failed = false;
            }
        }
        let stuck = c.topics[0].partitions.len() as i32;
        c.topics[0].partitions.push(PartitionSpec {
            partition: stuck,
            // Broker index i < racks sits in rack i, pool p0.
            replicas: (0..s.racks)
                .map(|i| ReplicaSpec { broker: i as i32 + 1, dir: "/d0".into(), lag_bytes: 0 })
                .collect(),
            leader: None,
            size_bytes: GB,
            bytes_in: 1e6,
            bytes_out: 2e6,
            disk_read: 0.0,
            messages_in: 0.0,
            cpu: 0.1,
            future: None,
        });
        let m = ClusterModel::from_spec(&c).unwrap();
        let goals = Goals::default();
        let p = plan(&m, &goals, &PlanOptions::default()).unwrap();
        let want = format!(
            "t0-{stuck} must move because its broker or disk is gone, and no broker/disk satisfies the hard constraints"
        );
        prop_assert!(
            p.unplaced.iter().any(|u| u.reason == want && u.slot == 0),
            "{:?}",
            p.unplaced
        );
        let r = verify(&m, &p, &goals);
        let name = format!("t0-{stuck}");
        prop_assert!(
            r.hard_violations.iter().any(|v| v.constraint == "unusable_unit" && v.subject == name),
            "{:?}",
            r.hard_violations
        );
        prop_assert_eq!(&p, &plan(&m, &goals, &PlanOptions::default()).unwrap());
    }

    #[test]
    fn placements_respect_policy_and_are_deterministic(s in shape(), partitions in 1u32..50, rf in 1u8..4) {
        let m = ClusterModel::from_spec(&spec(&s)).unwrap();
        let t = NewTopic {
            name: "new".into(),
            partitions,
            replication_factor: rf.min(s.racks as u8),
            bytes_in_per_partition: 1e6,
            size_per_partition: GB,
            pool: "p0".into(),
            policy: PolicySpec::default(),
            max_disk_fill: 0.95,
        };
        let p = place(&m, &t).unwrap();
        for r in &p.replicas {
            let mut racks: Vec<u32> = r.iter().map(|x| m.brokers[x.broker as usize].rack).collect();
            racks.sort_unstable();
            racks.dedup();
            prop_assert_eq!(racks.len(), r.len());
            for x in r {
                prop_assert!(m.disk_usable(x.disk));
                prop_assert_eq!(&m.pools[m.brokers[x.broker as usize].pool as usize], "p0");
            }
        }
        prop_assert_eq!(p, place(&m, &t).unwrap());
        let o = ThrottleOptions::default();
        prop_assert_eq!(plan_throttles(&m, &o), plan_throttles(&m, &o));
    }
}

/// A random worker fleet: 1–3 pools, 1–8 workers of capacity 1–4, 1–6
/// bindings of 1–24 partitions bound to one or two pools (one pool may be
/// unknown: no worker), CPU 0–1 cores or unmeasured, some lag, and random
/// current owners (some of them gone).
fn fleet() -> impl Strategy<Value = (Vec<consumer::Worker>, Vec<consumer::Binding>)> {
    let workers = prop::collection::vec((0u8..3, 1u8..5), 1..9);
    let parts = prop::collection::vec(
        (
            prop::option::weighted(0.9, 0.0f64..1.0),
            0u64..200_000,
            0u8..12,
        ),
        1..25,
    );
    let bindings = prop::collection::vec(
        (
            0u8..4,
            prop::option::of((0u8..4, 1u32..100)),
            1u32..100,
            parts,
        ),
        1..7,
    );
    (workers, bindings).prop_map(|(ws, bs)| {
        let workers: Vec<consumer::Worker> = ws
            .iter()
            .enumerate()
            .map(|(i, (pool, cap))| consumer::Worker {
                id: format!("w{i}"),
                pool: format!("p{pool}"),
                capacity: f64::from(*cap),
            })
            .collect();
        let bindings = bs
            .into_iter()
            .enumerate()
            .map(|(b, (pool, second, ratio, parts))| {
                let mut pools = vec![consumer::PoolShare {
                    pool: format!("p{pool}"),
                    ratio,
                }];
                if let Some((q, r)) = second {
                    if q != pool {
                        pools.push(consumer::PoolShare {
                            pool: format!("p{q}"),
                            ratio: r,
                        });
                    }
                }
                consumer::Binding {
                    cluster: "c".into(),
                    topic: format!("t{b}"),
                    group: "g".into(),
                    pools,
                    partitions: parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, (cpu, lag, owner))| consumer::PartitionLoad {
                            partition: i as i32,
                            cpu,
                            lag,
                            // Owners w0…w11: some are not workers (gone).
                            owner: Some(format!("w{owner}")),
                        })
                        .collect(),
                }
            })
            .collect();
        (workers, bindings)
    })
}

proptest! {
    #![proptest_config(config())]

    /// Invariant 22 (one owner per partition): every bound partition is
    /// assigned to exactly one worker of one of its pools, or listed
    /// unassigned because none of its pools has a worker; the pools'
    /// partition counts follow the ratios (largest remainder, within one);
    /// the plan is the same when planned twice and whatever the order of
    /// the workers; a replan of its own output moves nothing; the spread
    /// is never below its bound.
    #[test]
    fn consumer_plans_own_every_partition_once_and_hold_ratios((workers, bindings) in fleet()) {
        let o = consumer::ConsumerOptions::default();
        let p = consumer::plan_consumers(&workers, &bindings, &o).unwrap();
        let pool_has_worker = |pool: &str| workers.iter().any(|w| w.pool == pool);
        for (b, bd) in bindings.iter().enumerate() {
            let live: Vec<&consumer::PoolShare> =
                bd.pools.iter().filter(|s| pool_has_worker(&s.pool)).collect();
            for part in &bd.partitions {
                let owners: Vec<&consumer::Assignment> = p
                    .assignments
                    .iter()
                    .filter(|a| a.binding == b && a.partition == part.partition)
                    .collect();
                let unassigned = p
                    .unassigned
                    .iter()
                    .filter(|u| u.binding == b && u.partition == part.partition)
                    .count();
                if live.is_empty() {
                    prop_assert!(owners.is_empty());
                    prop_assert_eq!(unassigned, 1);
                } else {
                    prop_assert_eq!(owners.len(), 1, "{}-{}", bd.topic, part.partition);
                    prop_assert_eq!(unassigned, 0);
                    let w = workers.iter().find(|w| w.id == owners[0].worker).unwrap();
                    prop_assert!(live.iter().any(|s| s.pool == w.pool));
                    prop_assert_eq!(&owners[0].pool, &w.pool);
                }
            }
            let total: u32 = live.iter().map(|s| s.ratio).sum();
            for s in &live {
                let n = p.assignments.iter().filter(|a| a.binding == b && a.pool == s.pool).count();
                let want = bd.partitions.len() as f64 * f64::from(s.ratio) / f64::from(total);
                prop_assert!((n as f64 - want).abs() < 1.0, "{}: pool {} has {n}, ratio gives {want}", bd.topic, s.pool);
            }
        }
        prop_assert!(p.cpu_spread >= p.spread_bound - 1e-9);
        prop_assert_eq!(&p, &consumer::plan_consumers(&workers, &bindings, &o).unwrap());
        let mut reversed = workers.clone();
        reversed.reverse();
        prop_assert_eq!(&p, &consumer::plan_consumers(&reversed, &bindings, &o).unwrap());
        let current = p.apply(&bindings);
        let again = consumer::plan_consumers(&workers, &current, &o).unwrap();
        prop_assert!(again.moves.is_empty(), "a replan of its own output moved {:?}", again.moves);
        prop_assert_eq!(&again.assignments, &p.assignments);
    }
}
