//! Property tests over random small clusters: every plan satisfies every
//! hard constraint (the verifier replays it), moves no replica twice, and is
//! identical when planned twice. Placement and throttles are deterministic too.

use guardian_planner::model::{
    BrokerSpec, ClusterSpec, DiskSpec, PartitionSpec, PolicySpec, ReplicaSpec, TopicSpec,
};
use guardian_planner::{
    place, plan, plan_throttles, verify, Action, ClusterModel, Goals, NewTopic, PlanOptions,
    ThrottleOptions,
};
use proptest::prelude::*;

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

/// Feasible random clusters: every pool has a usable broker in every rack
/// even after one broker dies and one is decommissioned; capacity is ample.
/// Initial placements are random — racks, pools and brokers may clash.
fn shape() -> impl Strategy<Value = Shape> {
    (2usize..5, 1usize..3, 1usize..4, 1usize..3, any::<u8>()).prop_flat_map(
        |(racks, k, disks, pools, faults)| {
            let per_rack = k * pools + if faults % 4 == 0 { 0 } else { 2 * pools };
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn plans_are_valid_and_deterministic(s in shape()) {
        let m = ClusterModel::from_spec(&spec(&s)).unwrap();
        let goals = Goals::default();
        let p = plan(&m, &goals, &PlanOptions::default()).unwrap();
        let r = verify(&m, &p, &goals);
        prop_assert!(r.hard_violations.is_empty(), "{:?}\n{:?}", r.hard_violations, p.unplaced);
        prop_assert!(p.unplaced.is_empty());
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
