//! The throttle planner: the page-cache model behind partition-level
//! throttling (seed 003).
//!
//! # Model
//! - Each broker's page cache holds roughly the last `T` seconds of
//!   everything written into it: `T = page_cache_bytes / W`, where `W` counts
//!   every insertion — produce (leaders), replication (followers), `.future`
//!   copies of intra-broker moves, and cold reads (pages read from disk).
//! - A consumer group at `lag` bytes behind the log end of partition `p`
//!   reads from cache iff `lag ≤ bytes_in(p) · T` of the leader's broker;
//!   otherwise every byte it fetches is a disk read. A lagging follower
//!   (`lag_bytes` on the replica) is the same, for replica-sync reads.
//! - Cold reads insert pages, which shortens `T`, which makes more reads
//!   cold: the planner iterates to the fixed point (monotone; at most 8
//!   rounds).
//! - Six disk-I/O behaviours per partition and disk: client write (leader
//!   produce), replica-sync write (follower replication), client read (cold
//!   consumer reads), replica-sync read (a lagging follower fetching from
//!   disk), migration read and write (a `.future` copy).
//!
//! # Decisions
//! Per disk, an **abnormal-behaviour queue** ranked by bytes/s: every disk
//! read, and every write once the disk's writes exceed its budget, each with
//! the partition that causes it and why. A disk over its read or write
//! budget gets throttles in Kafka's own knobs, cutting the least essential
//! traffic first — migrations (`replica.alter.log.dirs.io.max.bytes.per.second`
//! for `.future` copies), then cold consumers (`consumer_byte_rate` for the
//! group's user/client-id, KIP-55), then catching-up followers (KIP-73
//! `leader/follower.replication.throttled.rate` with the
//! `*.throttled.replicas` lists, never below [`CATCH_UP_FLOOR`] × the
//! partition's bytes-in, so the follower still catches up and the throttle
//! lifts). Every action has a reason and an expiry.
//! A disk whose producer and in-sync replication writes alone exceed the
//! write budget cannot be throttled healthy: it gets a **migrate-away**
//! request naming the heaviest partitions.
//!
//! Budgets: the disk's configured budget, else 1.2 × its historical p95
//! (or median), else none (never throttled, still reported).
//!
//! # Complexity
//! O(rounds · (replicas + positions) + A log A) for A abnormal entries.
//!
//! # Errors
//! None: a disk without a known budget is reported but never throttled, a
//! broker with no page cache configured has no residency window (every read
//! counts as cached), and traffic no knob can cut becomes a migrate-away.
//!
//! Deterministic: `now_ms` is an input; ordered maps only.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::ClusterModel;

/// A catching-up follower's replication throttle stays at least this
/// multiple of its partition's bytes-in, so it gains on the log end.
pub const CATCH_UP_FLOOR: f64 = 1.5;

/// The six disk-I/O behaviours of a partition on a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    ClientWrite,
    ReplicaSyncWrite,
    MigrationWrite,
    ClientRead,
    ReplicaSyncRead,
    MigrationRead,
}

impl Behaviour {
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Behaviour::ClientRead | Behaviour::ReplicaSyncRead | Behaviour::MigrationRead
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThrottleOptions {
    /// Wall-clock of the decision (the caller's; actions expire relative to it).
    pub now_ms: u64,
    /// How long an action lasts unless renewed.
    pub ttl_ms: u64,
    /// A follower catching up fetches at `catch_up_factor × bytes_in`.
    pub catch_up_factor: f64,
    /// No throttle below this many bytes/s.
    pub min_rate: f64,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions {
            now_ms: 0,
            ttl_ms: 10 * 60 * 1000,
            catch_up_factor: 3.0,
            min_rate: 1e6,
        }
    }
}

/// One broker's page-cache picture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BrokerCache {
    pub broker: i32,
    pub page_cache_bytes: u64,
    /// Bytes/s inserted into the cache (all writes + cold reads).
    pub insert_rate: f64,
    /// Residency window `T`, seconds (`None`: nothing is written).
    pub residency_s: Option<f64>,
    pub cold_read_rate: f64,
}

/// One entry of a disk's abnormal-behaviour queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Abnormal {
    pub partition: String,
    pub behaviour: Behaviour,
    pub bytes_per_sec: f64,
    pub cause: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiskIo {
    pub broker: i32,
    pub dir: String,
    pub write: f64,
    pub read: f64,
    pub write_budget: Option<f64>,
    pub read_budget: Option<f64>,
    /// Ranked by bytes/s, heaviest first.
    pub abnormal: Vec<Abnormal>,
}

/// A throttle in Kafka's terms.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ThrottleAction {
    /// `AlterClientQuotas`: `consumer_byte_rate` for user/client-id.
    ClientQuota {
        user: String,
        client_id: String,
        consumer_byte_rate: u64,
        reason: String,
        expires_at_ms: u64,
    },
    /// Broker configs `leader.replication.throttled.rate` (on the leader) /
    /// `follower.replication.throttled.rate` (on the follower) and the
    /// topic's `leader.replication.throttled.replicas` /
    /// `follower.replication.throttled.replicas` entries (`partition:broker`).
    ReplicationThrottle {
        topic: String,
        leader_broker: i32,
        leader_rate: u64,
        leader_replicas: Vec<String>,
        follower_broker: i32,
        follower_rate: u64,
        follower_replicas: Vec<String>,
        reason: String,
        expires_at_ms: u64,
    },
    /// Broker config `replica.alter.log.dirs.io.max.bytes.per.second`.
    LogDirMoveRate {
        broker: i32,
        bytes_per_sec: u64,
        reason: String,
        expires_at_ms: u64,
    },
}

/// A disk that throttles cannot cool down: move partitions off it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrateAway {
    pub broker: i32,
    pub dir: String,
    /// Write bytes/s above the budget that only moving partitions can remove.
    pub excess_write: f64,
    /// Heaviest writers first.
    pub partitions: Vec<String>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThrottlePlan {
    pub brokers: Vec<BrokerCache>,
    /// Disks with something abnormal, worst first.
    pub disks: Vec<DiskIo>,
    pub actions: Vec<ThrottleAction>,
    pub migrate_away: Vec<MigrateAway>,
}

struct Io {
    partition: u32,
    behaviour: Behaviour,
    rate: f64,
    /// Group index for client reads, follower slot for sync reads.
    who: usize,
    cause: String,
}

/// Bytes in the largest unit that keeps a digit before the point.
fn bytes(v: f64) -> String {
    let units = [("GB", 1e9), ("MB", 1e6), ("KB", 1e3)];
    for (u, f) in units {
        if v.abs() >= f {
            return format!("{:.2} {u}", v / f);
        }
    }
    format!("{v:.0} B")
}

/// Plans throttles for the model's current state. See the module docs.
pub fn plan_throttles(m: &ClusterModel, o: &ThrottleOptions) -> ThrottlePlan {
    let nb = m.brokers.len();
    let expires = o.now_ms + o.ttl_ms;
    // Writes per broker: every replica's bytes in, plus .future copies.
    let mut writes = vec![0.0f64; nb];
    let mut disk_io: Vec<Vec<Io>> = (0..m.disks.len()).map(|_| Vec::new()).collect();
    for (p, part) in m.partitions.iter().enumerate() {
        for (s, f) in m.slots(p as u32).enumerate() {
            let r = m.replicas[f];
            writes[r.broker as usize] += part.bytes_in;
            let behaviour = if s == part.leader as usize {
                Behaviour::ClientWrite
            } else {
                Behaviour::ReplicaSyncWrite
            };
            if part.bytes_in > 0.0 {
                disk_io[r.disk as usize].push(Io {
                    partition: p as u32,
                    behaviour,
                    rate: part.bytes_in,
                    who: s,
                    cause: String::new(),
                });
            }
        }
        if let Some(fu) = &part.future {
            let to = fu.disk as usize;
            let b = m.disks[to].broker;
            writes[b as usize] += fu.rate;
            let remaining = bytes(fu.remaining_bytes as f64);
            disk_io[to].push(Io {
                partition: p as u32,
                behaviour: Behaviour::MigrationWrite,
                rate: fu.rate,
                who: 0,
                cause: format!("intra-broker move into this dir, {remaining} to go"),
            });
            if let Some(src) = m
                .slots(p as u32)
                .map(|f| m.replicas[f])
                .find(|r| r.broker == b)
            {
                disk_io[src.disk as usize].push(Io {
                    partition: p as u32,
                    behaviour: Behaviour::MigrationRead,
                    rate: fu.rate,
                    who: 0,
                    cause: format!("intra-broker move out of this dir, {remaining} to go"),
                });
            }
        }
    }
    // Writes the replicas do not explain (the disks' measured background),
    // or the host's measured write rate when that is higher.
    for (b, br) in m.brokers.iter().enumerate() {
        let disks = br.first_disk as usize..(br.first_disk + br.n_disks) as usize;
        writes[b] += m.disks[disks].iter().map(|d| d.background[0]).sum::<f64>();
        writes[b] = writes[b].max(br.write_rate);
    }
    // Fixed point of cold reads and residency.
    let leader_of =
        |p: usize| m.replicas[m.partitions[p].first as usize + m.partitions[p].leader as usize];
    let mut cold = vec![0.0f64; nb];
    let residency = |cold: &[f64], b: usize| {
        let w = writes[b] + cold[b];
        (w > 0.0).then(|| m.brokers[b].page_cache_bytes as f64 / w)
    };
    let is_cold = |t: Option<f64>, lag: u64, bytes_in: f64| match t {
        None => false,
        Some(t) => lag as f64 > bytes_in * t,
    };
    for _ in 0..8 {
        let mut next = vec![0.0f64; nb];
        for g in &m.groups {
            for &(p, lag, rate) in &g.positions {
                let b = leader_of(p as usize).broker as usize;
                if is_cold(residency(&cold, b), lag, m.partitions[p as usize].bytes_in) {
                    next[b] += rate;
                }
            }
        }
        for (p, part) in m.partitions.iter().enumerate() {
            let b = leader_of(p).broker as usize;
            for (s, f) in m.slots(p as u32).enumerate() {
                if s != part.leader as usize
                    && is_cold(residency(&cold, b), m.replica_lag[f], part.bytes_in)
                {
                    next[b] += part.bytes_in * o.catch_up_factor;
                }
            }
        }
        if next == cold {
            break;
        }
        cold = next;
    }
    let t_of: Vec<Option<f64>> = (0..nb).map(|b| residency(&cold, b)).collect();
    // A quota limits a client's fetches from one broker as a whole.
    let mut group_rate: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for (gi, g) in m.groups.iter().enumerate() {
        for &(p, _, rate) in &g.positions {
            *group_rate
                .entry((gi, leader_of(p as usize).broker as usize))
                .or_default() += rate;
        }
    }
    // Reads from disk: cold consumers and catching-up followers.
    for (gi, g) in m.groups.iter().enumerate() {
        for &(p, lag, rate) in &g.positions {
            let l = leader_of(p as usize);
            let part = &m.partitions[p as usize];
            let t = t_of[l.broker as usize];
            if rate > 0.0 && is_cold(t, lag, part.bytes_in) {
                disk_io[l.disk as usize].push(Io {
                    partition: p,
                    behaviour: Behaviour::ClientRead,
                    rate,
                    who: gi,
                    cause: format!(
                        "group {} lags {} on {}, beyond the {} the page cache holds of it (T = {:.1} s)",
                        g.name,
                        bytes(lag as f64),
                        m.partition_name(p),
                        bytes(part.bytes_in * t.unwrap_or(0.0)),
                        t.unwrap_or(0.0)
                    ),
                });
            }
        }
    }
    for (p, part) in m.partitions.iter().enumerate() {
        let l = leader_of(p);
        let t = t_of[l.broker as usize];
        for (s, f) in m.slots(p as u32).enumerate() {
            let lag = m.replica_lag[f];
            if s != part.leader as usize && part.bytes_in > 0.0 && is_cold(t, lag, part.bytes_in) {
                disk_io[l.disk as usize].push(Io {
                    partition: p as u32,
                    behaviour: Behaviour::ReplicaSyncRead,
                    rate: part.bytes_in * o.catch_up_factor,
                    who: s,
                    cause: format!(
                        "follower on broker {} is {} behind, out of the page cache",
                        m.brokers[m.replicas[f].broker as usize].id,
                        bytes(lag as f64)
                    ),
                });
            }
        }
    }

    let budget = |set: f64, p95: f64, median: f64| {
        if set > 0.0 {
            Some(set)
        } else if p95.max(median) > 0.0 {
            Some(1.2 * p95.max(median))
        } else {
            None
        }
    };
    let mut disks = Vec::new();
    let mut actions = Vec::new();
    let mut migrate_away = Vec::new();
    // Client quotas per (user, client id): the lowest rate any disk needs.
    let mut quotas: BTreeMap<(String, String), (f64, String)> = BTreeMap::new();
    // Log-dir move rate per broker: the lowest any disk needs.
    let mut dir_rates: BTreeMap<i32, (f64, String)> = BTreeMap::new();
    for (d, ios) in disk_io.iter_mut().enumerate() {
        let disk = &m.disks[d];
        let broker = m.brokers[disk.broker as usize].id;
        let write: f64 = disk.background[0]
            + ios
                .iter()
                .filter(|i| !i.behaviour.is_read())
                .map(|i| i.rate)
                .sum::<f64>();
        let read: f64 = disk.background[1]
            + ios
                .iter()
                .filter(|i| i.behaviour.is_read())
                .map(|i| i.rate)
                .sum::<f64>();
        let wb = budget(disk.write_budget, disk.write_p95, disk.write_median);
        let rb = budget(disk.read_budget, disk.read_p95, disk.read_median);
        let write_over = wb.is_some_and(|b| write > b);
        let read_over = rb.is_some_and(|b| read > b);
        let mut abnormal: Vec<&Io> = ios
            .iter()
            .filter(|i| i.behaviour.is_read() || write_over)
            .collect();
        if abnormal.is_empty() {
            continue;
        }
        abnormal.sort_by(|a, b| {
            b.rate
                .total_cmp(&a.rate)
                .then(a.partition.cmp(&b.partition))
                .then(a.behaviour.cmp(&b.behaviour))
        });
        let why = |kind: &str, total: f64, b: f64| {
            format!(
                "disk {broker}:{} {kind} {}/s over its budget {}/s",
                disk.dir,
                bytes(total),
                bytes(b)
            )
        };
        // Cut least essential traffic first until the disk fits.
        for (over, total, b, reads) in [
            (read_over, read, rb.unwrap_or(0.0), true),
            (write_over, write, wb.unwrap_or(0.0), false),
        ] {
            if !over {
                continue;
            }
            let reason = why(if reads { "reads" } else { "writes" }, total, b);
            let mut excess = total - b;
            let order: &[Behaviour] = if reads {
                &[
                    Behaviour::MigrationRead,
                    Behaviour::ClientRead,
                    Behaviour::ReplicaSyncRead,
                ]
            } else {
                &[Behaviour::MigrationWrite, Behaviour::ReplicaSyncWrite]
            };
            for &kind in order {
                for io in abnormal.iter().filter(|i| i.behaviour == kind) {
                    if excess <= 0.0 {
                        break;
                    }
                    // Catching-up followers only: in-sync replication is not throttled.
                    if kind == Behaviour::ReplicaSyncWrite
                        && m.replica_lag
                            [m.partitions[io.partition as usize].first as usize + io.who]
                            == 0
                    {
                        continue;
                    }
                    let part = &m.partitions[io.partition as usize];
                    let mut allowed = (io.rate - excess).max(o.min_rate);
                    if matches!(
                        kind,
                        Behaviour::ReplicaSyncRead | Behaviour::ReplicaSyncWrite
                    ) {
                        // A follower held at or below what the partition
                        // takes in never catches up, and the throttle
                        // would never lift: keep it above bytes-in.
                        allowed = allowed.max(part.bytes_in * CATCH_UP_FLOOR);
                    }
                    if allowed >= io.rate {
                        continue;
                    }
                    excess -= io.rate - allowed;
                    let topic = m.topics[part.topic as usize].name.clone();
                    match kind {
                        Behaviour::MigrationRead | Behaviour::MigrationWrite => {
                            let e = dir_rates
                                .entry(broker)
                                .or_insert((f64::INFINITY, String::new()));
                            if allowed < e.0 {
                                *e = (allowed, reason.clone());
                            }
                        }
                        Behaviour::ClientRead => {
                            let g = &m.groups[io.who];
                            let total = group_rate
                                .get(&(io.who, disk.broker as usize))
                                .copied()
                                .unwrap_or(io.rate);
                            let quota = (total - (io.rate - allowed)).max(o.min_rate);
                            let e = quotas
                                .entry((g.user.clone(), g.client_id.clone()))
                                .or_insert((f64::INFINITY, String::new()));
                            if quota < e.0 {
                                *e = (quota, format!("{reason}; {}", io.cause));
                            }
                        }
                        _ => {
                            let l = m.replicas[part.first as usize + part.leader as usize];
                            let fol = m.replicas[part.first as usize + io.who];
                            let (lb, fb) = (
                                m.brokers[l.broker as usize].id,
                                m.brokers[fol.broker as usize].id,
                            );
                            actions.push(ThrottleAction::ReplicationThrottle {
                                topic,
                                leader_broker: lb,
                                leader_rate: allowed as u64,
                                leader_replicas: vec![format!("{}:{lb}", part.index)],
                                follower_broker: fb,
                                follower_rate: allowed as u64,
                                follower_replicas: vec![format!("{}:{fb}", part.index)],
                                reason: format!("{reason}; {}", io.cause),
                                expires_at_ms: expires,
                            });
                        }
                    }
                }
            }
            // Writes nothing can throttle: producers and in-sync followers.
            if !reads && excess > 0.0 {
                let mut writers: Vec<&Io> = ios
                    .iter()
                    .filter(|i| {
                        matches!(
                            i.behaviour,
                            Behaviour::ClientWrite | Behaviour::ReplicaSyncWrite
                        )
                    })
                    .collect();
                writers.sort_by(|a, b| {
                    b.rate
                        .total_cmp(&a.rate)
                        .then(a.partition.cmp(&b.partition))
                });
                migrate_away.push(MigrateAway {
                    broker,
                    dir: disk.dir.clone(),
                    excess_write: excess,
                    partitions: writers
                        .iter()
                        .take(10)
                        .map(|i| m.partition_name(i.partition))
                        .collect(),
                    reason: format!(
                        "{reason}, and produce plus in-sync replication alone exceed it"
                    ),
                });
            }
        }
        disks.push(DiskIo {
            broker,
            dir: disk.dir.clone(),
            write,
            read,
            write_budget: wb,
            read_budget: rb,
            abnormal: abnormal
                .iter()
                .map(|i| Abnormal {
                    partition: m.partition_name(i.partition),
                    behaviour: i.behaviour,
                    bytes_per_sec: i.rate,
                    cause: if i.cause.is_empty() {
                        "writes while the disk is over its write budget".into()
                    } else {
                        i.cause.clone()
                    },
                })
                .collect(),
        });
    }
    for ((user, client_id), (rate, reason)) in quotas {
        actions.push(ThrottleAction::ClientQuota {
            user,
            client_id,
            consumer_byte_rate: rate as u64,
            reason,
            expires_at_ms: expires,
        });
    }
    for (broker, (rate, reason)) in dir_rates {
        actions.push(ThrottleAction::LogDirMoveRate {
            broker,
            bytes_per_sec: rate as u64,
            reason,
            expires_at_ms: expires,
        });
    }
    disks.sort_by(|a, b| {
        let w = |x: &DiskIo| x.abnormal.iter().map(|i| i.bytes_per_sec).sum::<f64>();
        w(b).total_cmp(&w(a))
            .then(a.broker.cmp(&b.broker))
            .then(a.dir.cmp(&b.dir))
    });
    let brokers = (0..nb)
        .map(|b| BrokerCache {
            broker: m.brokers[b].id,
            page_cache_bytes: m.brokers[b].page_cache_bytes,
            insert_rate: writes[b] + cold[b],
            residency_s: t_of[b],
            cold_read_rate: cold[b],
        })
        .collect();
    ThrottlePlan {
        brokers,
        disks,
        actions,
        migrate_away,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FutureSpec;
    use crate::testkit::*;

    /// One broker, 1 GB of page cache, one partition producing 1 MB/s. A
    /// group 5 GB behind reads 10 MB/s from disk; that insertion shortens
    /// the window to 1 GB / 11 MB/s ≈ 91 s, still enough for a group 50 MB
    /// behind. The cold reader gets a quota for what the disk can take.
    #[test]
    fn cold_reader_found_at_the_fixed_point_and_quota_set() {
        let mut b = broker(1, "a", 1, 1000 * GB);
        b.disks[0].read_budget = 5.0 * MB;
        let mut spec = cluster(vec![b], vec![topic("t", vec![part(0, &[(1, 0)], GB, MB)])]);
        spec.groups = vec![
            group("hot", &[("t", 0, 50_000_000, MB)]),
            group("cold", &[("t", 0, 5 * GB, 10.0 * MB)]),
        ];
        let m = ClusterModel::from_spec(&spec).unwrap();
        let o = ThrottleOptions {
            now_ms: 1_000,
            ..ThrottleOptions::default()
        };
        let p = plan_throttles(&m, &o);
        let t = p.brokers[0].residency_s.unwrap();
        assert!((t - 1e9 / 11e6).abs() < 1e-6, "{t}");
        assert_eq!(p.brokers[0].cold_read_rate, 10.0 * MB);
        assert_eq!(p.disks.len(), 1);
        let q = &p.disks[0].abnormal;
        assert_eq!(q.len(), 1, "{q:?}");
        assert_eq!(q[0].behaviour, Behaviour::ClientRead);
        assert_eq!(q[0].partition, "t-0");
        assert!(q[0].cause.contains("group cold"), "{}", q[0].cause);
        assert_eq!(
            p.actions,
            vec![ThrottleAction::ClientQuota {
                user: "user-cold".into(),
                client_id: "client-cold".into(),
                consumer_byte_rate: 5_000_000,
                reason: p.actions.first().map_or(String::new(), |a| match a {
                    ThrottleAction::ClientQuota { reason, .. } => reason.clone(),
                    _ => String::new(),
                }),
                expires_at_ms: 1_000 + o.ttl_ms,
            }]
        );
        assert!(p.migrate_away.is_empty());
    }

    /// A disk over its write budget: the `.future` copy is throttled first;
    /// producers alone still exceed it, so the disk is asked to shed partitions.
    #[test]
    fn hot_disk_throttles_the_move_then_asks_to_migrate() {
        let mut b = broker(1, "a", 2, 1000 * GB);
        b.disks[1].write_budget = 15.0 * MB;
        let mut p0 = part(0, &[(1, 1)], GB, 20.0 * MB);
        let p1 = part(1, &[(1, 0)], 10 * GB, MB);
        let mut spec = cluster(vec![b], vec![topic("t", vec![p1, p0.clone()])]);
        p0.partition = 2;
        p0.bytes_in = 0.0;
        p0.replicas[0].dir = "/d0".into();
        p0.future = Some(FutureSpec {
            broker: 1,
            dir: "/d1".into(),
            remaining_bytes: 5 * GB,
            rate: 30.0 * MB,
        });
        spec.topics[0].partitions.push(p0);
        let m = ClusterModel::from_spec(&spec).unwrap();
        let p = plan_throttles(&m, &ThrottleOptions::default());
        let hot = p.disks.iter().find(|d| d.dir == "/d1").unwrap();
        assert_eq!(hot.write, 50.0 * MB);
        assert_eq!(hot.abnormal[0].behaviour, Behaviour::MigrationWrite);
        assert!(p.actions.iter().any(|a| matches!(a,
            ThrottleAction::LogDirMoveRate { broker: 1, bytes_per_sec, .. } if *bytes_per_sec == 1_000_000)));
        assert_eq!(p.migrate_away.len(), 1);
        assert_eq!(p.migrate_away[0].partitions, vec!["t-0".to_string()]);
        // 50 − 15 = 35 MB/s over; the move keeps its 1 MB/s floor: 6 MB/s remain.
        assert!((p.migrate_away[0].excess_write - 6.0 * MB).abs() < 1.0);
        // The source dir of the move reads from disk.
        let src = p.disks.iter().find(|d| d.dir == "/d0").unwrap();
        assert_eq!(src.abnormal[0].behaviour, Behaviour::MigrationRead);
    }

    #[test]
    fn lagging_follower_gets_a_replication_throttle() {
        let mut b1 = broker(1, "a", 1, 1000 * GB);
        b1.disks[0].read_budget = 2.0 * MB;
        let mut p = part(0, &[(1, 0), (2, 0)], 100 * GB, MB);
        p.replicas[1].lag_bytes = 50 * GB;
        let spec = cluster(
            vec![b1, broker(2, "b", 1, 1000 * GB)],
            vec![topic("t", vec![p])],
        );
        let m = ClusterModel::from_spec(&spec).unwrap();
        let plan = plan_throttles(&m, &ThrottleOptions::default());
        let a = plan
            .actions
            .iter()
            .find_map(|a| match a {
                ThrottleAction::ReplicationThrottle {
                    leader_broker,
                    follower_broker,
                    leader_replicas,
                    follower_replicas,
                    leader_rate,
                    ..
                } => Some((
                    *leader_broker,
                    *follower_broker,
                    leader_replicas.clone(),
                    follower_replicas.clone(),
                    *leader_rate,
                )),
                _ => None,
            })
            .expect("a replication throttle");
        assert_eq!(a, (1, 2, vec!["0:1".into()], vec!["0:2".into()], 2_000_000));

        // A budget below what the partition takes in: the follower is
        // still allowed 1.5 × its bytes-in, so it catches up.
        let mut spec = spec;
        spec.brokers[0].disks[0].read_budget = 0.5 * MB;
        let m = ClusterModel::from_spec(&spec).unwrap();
        let plan = plan_throttles(&m, &ThrottleOptions::default());
        let rate = plan
            .actions
            .iter()
            .find_map(|a| match a {
                ThrottleAction::ReplicationThrottle { follower_rate, .. } => Some(*follower_rate),
                _ => None,
            })
            .expect("a replication throttle");
        assert_eq!(rate, (CATCH_UP_FLOOR * MB) as u64);
    }

    #[test]
    fn deterministic() {
        let mut spec = cluster(
            vec![broker(1, "a", 1, 1000 * GB), broker(2, "b", 1, 1000 * GB)],
            vec![topic(
                "t",
                (0..20)
                    .map(|i| part(i, &[(1 + i % 2, 0)], GB, MB))
                    .collect(),
            )],
        );
        spec.groups = vec![group("g", &[("t", 3, 10 * GB, MB), ("t", 4, 10 * GB, MB)])];
        let m = ClusterModel::from_spec(&spec).unwrap();
        let o = ThrottleOptions::default();
        assert_eq!(plan_throttles(&m, &o), plan_throttles(&m, &o));
    }
}
