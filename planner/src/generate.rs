//! Seeded cluster generator (feature `testing`): the clusters the tests,
//! benchmarks and `guardian plan simulate --scenario` plan.
//!
//! Same scenario and seed ⇒ the same [`ClusterSpec`] (a ChaCha8 stream;
//! sizes go through libm's `exp`, so bit-identical output is promised for the
//! same platform, not across architectures).
//!
//! The shape of a generated cluster:
//! - brokers get rack `r{id % racks}`, racks are spread over the IDCs in
//!   contiguous blocks, pools are contiguous id ranges (each pool spans every
//!   rack);
//! - every broker has a placement weight drawn from U(0.5, 1.5): replicas are
//!   placed rack-unique within the topic's pool, weighted by it, on the broker's
//!   log dir with the fewest replicas (Kafka's own rule) — so disks end up
//!   skewed in bytes the way long-lived clusters are;
//! - sizes are lognormal (σ = 1, truncated at a third of a disk), bytes in = size / retention × lognormal
//!   noise (σ = 0.5), so rates correlate with size;
//! - each topic has 1–3 consumer groups; 20 % of groups lag by minutes to
//!   hours (their reads miss the page cache).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

use crate::model::{
    BrokerSpec, ClusterSpec, DiskSpec, FutureSpec, GroupSpec, PartitionSpec, PolicySpec,
    PositionSpec, ReplicaSpec, TopicSpec,
};

/// The named scenarios of `guardian plan simulate --scenario`.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "g1k",
        "1,000 brokers × 4 disks, 10 racks / 3 IDCs, 5 tenant pools, 200k replicas, steady skew",
    ),
    (
        "cc-parity",
        "215 brokers × 4 disks, 2.8M replicas (Cruise Control's published run)",
    ),
    ("add-brokers", "g1k plus 50 empty brokers (10 per pool)"),
    ("decommission", "g1k with 20 brokers being removed"),
    ("disk-failure", "g1k with 12 failed log dirs"),
    (
        "pool-grow",
        "g1k plus 20 empty brokers joining pool tenant-1",
    ),
    (
        "pool-shrink",
        "g1k with 20 brokers of tenant-2 handed back to the free pool",
    ),
    (
        "small",
        "12 brokers × 2 disks, 3 racks, 2 pools, 300 partitions (for demos)",
    ),
];

/// Parameters of a generated cluster.
#[derive(Clone, Debug)]
pub struct GenParams {
    pub brokers: u32,
    pub disks_per_broker: u32,
    pub racks: u32,
    pub idcs: u32,
    /// Tenant pools (`tenant-0` …); 0 = one shared pool "".
    pub pools: u32,
    pub partitions: u32,
    pub partitions_per_topic: u32,
    pub rf: u32,
    pub disk_capacity: u64,
    /// Mean disk fill the sizes are scaled to.
    pub fill: f64,
    /// Consumer groups per topic (max; 1..=n drawn).
    pub groups_per_topic: u32,
}

impl GenParams {
    /// G1k: 1,000 brokers × 4 disks, 10 racks over 3 IDCs, 5 tenant pools,
    /// 66,700 partitions × RF 3 = 200,100 replicas.
    pub fn g1k() -> GenParams {
        GenParams {
            brokers: 1000,
            disks_per_broker: 4,
            racks: 10,
            idcs: 3,
            pools: 5,
            partitions: 66_700,
            partitions_per_topic: 20,
            rf: 3,
            disk_capacity: 4 << 40,
            fill: 0.55,
            groups_per_topic: 3,
        }
    }

    /// CC-parity: 215 brokers × 4 disks, 933,334 partitions × RF 3 ≈ 2.8M replicas.
    pub fn cc_parity() -> GenParams {
        GenParams {
            brokers: 215,
            disks_per_broker: 4,
            racks: 10,
            idcs: 3,
            pools: 0,
            partitions: 933_334,
            partitions_per_topic: 100,
            rf: 3,
            disk_capacity: 4 << 40,
            fill: 0.55,
            groups_per_topic: 0,
        }
    }

    pub fn small() -> GenParams {
        GenParams {
            brokers: 12,
            disks_per_broker: 2,
            racks: 3,
            idcs: 3,
            pools: 2,
            partitions: 300,
            partitions_per_topic: 10,
            rf: 3,
            disk_capacity: 1 << 40,
            fill: 0.5,
            groups_per_topic: 2,
        }
    }
}

/// A named scenario with a seed. Errors with the list of names when unknown.
pub fn scenario(name: &str, seed: u64) -> Result<ClusterSpec, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_6a2d);
    let mut spec = match name {
        "cc-parity" => generate(&GenParams::cc_parity(), seed),
        "small" => generate(&GenParams::small(), seed),
        "g1k" | "add-brokers" | "decommission" | "disk-failure" | "pool-grow" | "pool-shrink" => {
            generate(&GenParams::g1k(), seed)
        }
        _ => {
            let names: Vec<&str> = SCENARIOS.iter().map(|s| s.0).collect();
            return Err(format!(
                "unknown scenario {name:?}; known: {}",
                names.join(", ")
            ));
        }
    };
    let template = spec.brokers[0].clone();
    let next_id = |spec: &ClusterSpec| spec.brokers.iter().map(|b| b.id).max().unwrap_or(0) + 1;
    let add_empty = |spec: &mut ClusterSpec, n: u32, pool: Option<&str>| {
        for i in 0..n {
            let id = next_id(spec);
            let mut b = template.clone();
            b.id = id;
            b.rack = format!("r{}", id as u32 % 10);
            b.idc = idc_of(id as u32 % 10, 10, 3);
            b.pool = pool.map_or_else(|| format!("tenant-{}", i % 5), str::to_string);
            for d in &mut b.disks {
                d.write_median = 0.0;
                d.write_p95 = 0.0;
                d.read_median = 0.0;
                d.read_p95 = 0.0;
                d.util_median = 0.0;
                d.util_p95 = 0.0;
            }
            spec.brokers.push(b);
        }
    };
    match name {
        "add-brokers" => add_empty(&mut spec, 50, None),
        "pool-grow" => add_empty(&mut spec, 20, Some("tenant-1")),
        "decommission" => {
            for _ in 0..20 {
                let i = rng.random_range(0..spec.brokers.len());
                spec.brokers[i].decommission = true;
            }
        }
        "disk-failure" => {
            for _ in 0..12 {
                let b = rng.random_range(0..spec.brokers.len());
                let d = rng.random_range(0..spec.brokers[b].disks.len());
                spec.brokers[b].disks[d].failed = true;
            }
        }
        "pool-shrink" => {
            let mut moved = 0;
            for b in spec.brokers.iter_mut() {
                if b.pool == "tenant-2" && moved < 20 {
                    b.pool = "free".into();
                    moved += 1;
                }
            }
        }
        _ => {}
    }
    spec.name = format!("{name}/seed-{seed}");
    Ok(spec)
}

/// Brokers are generated with ids 1..=n in order.
fn index_of(brokers: &[BrokerSpec], id: i32) -> usize {
    (id - brokers[0].id) as usize
}

fn idc_of(rack: u32, racks: u32, idcs: u32) -> String {
    format!("idc{}", rack * idcs.max(1) / racks.max(1))
}

/// Generates a cluster from parameters and a seed. O(partitions · rf · racks).
pub fn generate(p: &GenParams, seed: u64) -> ClusterSpec {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pools = p.pools.max(1);
    let pool_name = |i: u32| {
        if p.pools == 0 {
            String::new()
        } else {
            format!("tenant-{i}")
        }
    };
    // Sizes: lognormal σ = 1, scaled so the mean disk is `fill` full.
    let replicas = p.partitions as f64 * p.rf as f64;
    let mean_size =
        p.fill * (p.brokers as f64 * p.disks_per_broker as f64 * p.disk_capacity as f64) / replicas;
    let sigma = 1.0f64;
    let median = mean_size / (sigma * sigma / 2.0).exp();
    let size_dist = LogNormal::new(median.ln(), sigma).expect("valid lognormal");
    let noise = LogNormal::new(0.0, 0.5).expect("valid lognormal");
    const RETENTION_S: f64 = 3.0 * 86_400.0;

    let mut brokers = Vec::with_capacity(p.brokers as usize);
    let mut weight = Vec::with_capacity(p.brokers as usize);
    for i in 0..p.brokers {
        let id = i as i32 + 1;
        let rack = id as u32 % p.racks;
        brokers.push(BrokerSpec {
            id,
            rack: format!("r{rack}"),
            idc: idc_of(rack, p.racks, p.idcs),
            pool: pool_name(i * pools / p.brokers.max(1)),
            alive: true,
            decommission: false,
            excluded: false,
            nw_in_capacity: 1.25e9,
            nw_out_capacity: 1.25e9,
            cpu_capacity: 32.0,
            page_cache_bytes: 64 << 30,
            write_rate: 0.0,
            disks: (0..p.disks_per_broker)
                .map(|d| DiskSpec {
                    dir: format!("/data/{d}/kafka"),
                    capacity_bytes: p.disk_capacity,
                    // Spinning disks shared by many sequential streams.
                    write_budget: 25e6,
                    read_budget: 8e6,
                    ..DiskSpec::default()
                })
                .collect(),
        });
        weight.push(rng.random_range(0.5..1.5));
    }
    // Per pool, per rack: broker indices and their cumulative weights.
    let mut by_pool_rack: Vec<Vec<(Vec<usize>, Vec<f64>)>> =
        vec![vec![(Vec::new(), Vec::new()); p.racks as usize]; pools as usize];
    for (i, b) in brokers.iter().enumerate() {
        let pool = i as u32 * pools / p.brokers.max(1);
        let rack = b.id as u32 % p.racks;
        let (ids, cum) = &mut by_pool_rack[pool as usize][rack as usize];
        let prev = cum.last().copied().unwrap_or(0.0);
        ids.push(i);
        cum.push(prev + weight[i]);
    }
    let mut disk_count = vec![0u32; (p.brokers * p.disks_per_broker) as usize];
    let mut topics = Vec::new();
    let mut groups = Vec::new();
    let n_topics = p.partitions.div_ceil(p.partitions_per_topic.max(1));
    let mut made = 0;
    for t in 0..n_topics {
        let pool = t % pools;
        let name = format!("t{t:05}");
        let n = p.partitions_per_topic.min(p.partitions - made);
        made += n;
        let mut parts = Vec::with_capacity(n as usize);
        // Usable racks of this pool (non-empty).
        let racks: Vec<usize> = (0..p.racks as usize)
            .filter(|&r| !by_pool_rack[pool as usize][r].0.is_empty())
            .collect();
        for pi in 0..n {
            // Truncated: no partition outgrows a third of a disk.
            let size: f64 = size_dist.sample(&mut rng).min(p.disk_capacity as f64 / 3.0);
            let bytes_in = size / RETENTION_S * noise.sample(&mut rng);
            let mut chosen_racks: Vec<usize> = Vec::with_capacity(p.rf as usize);
            let mut reps = Vec::with_capacity(p.rf as usize);
            while reps.len() < p.rf as usize && chosen_racks.len() < racks.len() {
                let r = racks[rng.random_range(0..racks.len())];
                if chosen_racks.contains(&r) {
                    continue;
                }
                chosen_racks.push(r);
                let (ids, cum) = &by_pool_rack[pool as usize][r];
                let x = rng.random_range(0.0..*cum.last().expect("non-empty rack"));
                let bi = ids[cum.partition_point(|&c| c <= x).min(ids.len() - 1)];
                let base = bi * p.disks_per_broker as usize;
                let d = (0..p.disks_per_broker as usize)
                    .min_by_key(|&d| (disk_count[base + d], d))
                    .expect("disks");
                disk_count[base + d] += 1;
                // 0.5 % of followers are catching up, minutes to hours behind.
                let lag_bytes = if !reps.is_empty() && rng.random_bool(0.005) {
                    (bytes_in * rng.random_range(600.0..7_200.0)) as u64
                } else {
                    0
                };
                reps.push(ReplicaSpec {
                    broker: brokers[bi].id,
                    dir: brokers[bi].disks[d].dir.clone(),
                    lag_bytes,
                });
            }
            // One partition in 2,000 is moving to another dir of its leader.
            let future = if p.disks_per_broker > 1 && rng.random_bool(0.0005) {
                let b = &brokers[index_of(&brokers, reps[0].broker)];
                let to = b
                    .disks
                    .iter()
                    .find(|d| d.dir != reps[0].dir)
                    .map(|d| d.dir.clone());
                to.map(|dir| FutureSpec {
                    broker: b.id,
                    dir,
                    remaining_bytes: (size * rng.random_range(0.1..0.9)) as u64,
                    rate: 20e6,
                })
            } else {
                None
            };
            parts.push(PartitionSpec {
                partition: pi as i32,
                replicas: reps,
                leader: None,
                size_bytes: size as u64,
                bytes_in,
                bytes_out: 0.0,
                disk_read: 0.0,
                messages_in: bytes_in / 1024.0,
                cpu: bytes_in / 40e6,
                future,
            });
        }
        // Consumer groups: each reads every partition; 20 % lag.
        let ng = if p.groups_per_topic == 0 {
            0
        } else {
            rng.random_range(1..=p.groups_per_topic)
        };
        for g in 0..ng {
            let lagging = rng.random_bool(0.2);
            let mut positions = Vec::with_capacity(parts.len());
            for part in parts.iter_mut() {
                let (lag_s, rate) = if lagging {
                    (rng.random_range(600.0..14_400.0), part.bytes_in * 3.0)
                } else {
                    (rng.random_range(0.0..5.0), part.bytes_in)
                };
                part.bytes_out += rate;
                if lagging {
                    part.disk_read += rate;
                }
                positions.push(PositionSpec {
                    topic: name.clone(),
                    partition: part.partition,
                    lag_bytes: (part.bytes_in * lag_s) as u64,
                    rate,
                });
            }
            groups.push(GroupSpec {
                name: format!("{name}-g{g}"),
                user: format!("app-{}", t % 97),
                client_id: format!("{name}-g{g}"),
                positions,
            });
        }
        topics.push(TopicSpec {
            pinned: false,
            name,
            pool: pool_name(pool),
            policy: PolicySpec::default(),
            partitions: parts,
        });
    }
    // Disks' measured history: what their replicas explain plus a little
    // background, p95 half again above the median.
    let mut write = vec![0.0f64; disk_count.len()];
    let mut read = vec![0.0f64; disk_count.len()];
    let index: std::collections::BTreeMap<i32, usize> =
        brokers.iter().enumerate().map(|(i, b)| (b.id, i)).collect();
    for t in &topics {
        for part in &t.partitions {
            for (s, r) in part.replicas.iter().enumerate() {
                let bi = index[&r.broker];
                let d = brokers[bi]
                    .disks
                    .iter()
                    .position(|d| d.dir == r.dir)
                    .expect("dir exists");
                let k = bi * p.disks_per_broker as usize + d;
                write[k] += part.bytes_in;
                if s == 0 {
                    read[k] += part.disk_read;
                }
            }
        }
    }
    for (bi, b) in brokers.iter_mut().enumerate() {
        for (d, disk) in b.disks.iter_mut().enumerate() {
            let k = bi * p.disks_per_broker as usize + d;
            let bg = rng.random_range(1.0..1.05);
            disk.write_median = write[k] * bg;
            disk.write_p95 = disk.write_median * 1.5;
            disk.read_median = read[k];
            disk.read_p95 = read[k] * 1.5;
            disk.util_median = ((disk.write_median + disk.read_median) / 400e6).min(1.0);
            disk.util_p95 = (disk.util_median * 1.5).min(1.0);
        }
    }
    ClusterSpec {
        name: String::new(),
        brokers,
        topics,
        groups,
        follower_cpu_fraction: 0.3,
    }
}

/// The shape of a generated worker fleet (`guardian consumers simulate`).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetParams {
    pub partitions: u32,
    pub workers: u32,
    pub pools: u32,
    /// σ of the lognormal per-partition CPU (0: every partition the same).
    pub skew: f64,
}

/// A worker fleet and its bindings, from a seed:
/// - workers spread round-robin over pools `pool-0…`; a third of them are
///   slow (capacity 1), the rest fast (capacity 2) — mixed hardware;
/// - topics of 1–16 partitions (mean ≈ 8, as in the reconciliation
///   platform of seed `000_…`: 360 topics, 3,000 partitions), each bound to
///   one pool, or — one topic in four, when there are two pools or more —
///   to two pools at 70/30;
/// - per-partition CPU lognormal (median 0.05 cores, σ = `skew`); 5 % of
///   partitions unmeasured (new), 10 % lagging (1k–500k records);
/// - no current owners (the first plan).
pub fn fleet(
    p: &FleetParams,
    seed: u64,
) -> (Vec<crate::consumer::Worker>, Vec<crate::consumer::Binding>) {
    use crate::consumer::{Binding, PartitionLoad, PoolShare, Worker};
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0_05e7);
    let pools = p.pools.max(1);
    let workers = (0..p.workers)
        .map(|i| Worker {
            id: format!("w{i:04}"),
            pool: format!("pool-{}", i % pools),
            capacity: if rng.random_bool(1.0 / 3.0) { 1.0 } else { 2.0 },
        })
        .collect();
    let cpu = LogNormal::new(0.05f64.ln(), p.skew.max(0.0)).expect("valid lognormal");
    let mut bindings = Vec::new();
    let mut left = p.partitions;
    let mut t = 0;
    while left > 0 {
        let n = rng.random_range(1..=16).min(left);
        left -= n;
        let first = rng.random_range(0..pools);
        let shares = if pools >= 2 && rng.random_bool(0.25) {
            vec![
                PoolShare {
                    pool: format!("pool-{first}"),
                    ratio: 70,
                },
                PoolShare {
                    pool: format!("pool-{}", (first + 1) % pools),
                    ratio: 30,
                },
            ]
        } else {
            vec![PoolShare {
                pool: format!("pool-{first}"),
                ratio: 100,
            }]
        };
        let partitions = (0..n as i32)
            .map(|partition| {
                let c = cpu.sample(&mut rng);
                PartitionLoad {
                    partition,
                    cpu: (!rng.random_bool(0.05)).then_some(c),
                    lag: if rng.random_bool(0.1) {
                        rng.random_range(1_000..500_000)
                    } else {
                        0
                    },
                    owner: None,
                }
            })
            .collect();
        bindings.push(Binding {
            cluster: "kafka-1".into(),
            topic: format!("topic-{t:03}"),
            group: format!("group-{t:03}"),
            pools: shares,
            partitions,
        });
        t += 1;
    }
    (workers, bindings)
}
