//! The live model: what the planners see of a real cluster, built from
//! the registry, the collector's windows and what Kafka reports. Pure (no
//! I/O, no clock): the executor gathers [`LiveInputs`], this builds the
//! [`guardian_planner::model::ClusterSpec`].
//!
//! Every input that is missing or stale is handled by an explicit rule and
//! named in [`LiveModel::warnings`]; nothing unknown is read as zero:
//! - a broker Kafka lists but the registry does not know → an error (its
//!   log dirs and capacities are unknown; `guardian cluster discover`
//!   registers it);
//! - a registered broker Kafka does not list → dead: nothing moves to it,
//!   its replicas are planned off it (the healing case);
//! - a log dir Kafka reports but the registry does not know → planned with
//!   the capacity Kafka reports (an error if Kafka reports none); a dir
//!   with a Kafka error → failed; a registered dir Kafka does not report →
//!   not used; a live broker's replica no online dir lists → in its
//!   offline dir (Kafka lists no replicas of a failed dir);
//! - a follower out of the ISR → catching up, lagging by the bytes its
//!   leader's replica holds beyond its own;
//! - a broker without a fresh reporter → the rate goals (disk write/read,
//!   network, CPU) are not enforced for the whole plan: it balances disk
//!   bytes, replicas and leaders only, from Kafka's own sizes;
//! - unknown network or CPU capacity → brokers weighted equally;
//! - a broker without a rack → a rack of its own (Kafka's rule: no rack, no
//!   rack constraint);
//! - a partition with a reassignment Guardian did not start → not movable:
//!   the executor drops its tasks and names it.

use std::collections::{BTreeMap, BTreeSet};

use guardian_kafka::types::{LogDirInfo, Reassignment};
use guardian_kafka::ClusterMetadata;
use guardian_meta_store::state::registry::Registry;
use guardian_planner::model::{
    BrokerSpec, ClusterSpec, DiskSpec, FutureSpec, PartitionSpec, PolicySpec, ReplicaSpec,
    TopicSpec,
};

use crate::load::BrokerLoad;

/// Everything the builder reads, gathered by the caller.
pub struct LiveInputs<'a> {
    pub cluster: &'a str,
    pub registry: &'a Registry,
    /// The leader's load windows of this cluster's brokers.
    pub load: &'a BTreeMap<i32, &'a BrokerLoad>,
    pub now_ms: u64,
    /// The collector's interval (a broker is stale after 3 of them).
    pub collect_interval_ms: u64,
    pub metadata: &'a ClusterMetadata,
    /// DescribeLogDirs per broker listed in Metadata (an error text when
    /// the broker could not be asked).
    pub log_dirs: &'a BTreeMap<i32, Result<Vec<LogDirInfo>, String>>,
    pub reassignments: &'a [Reassignment],
}

/// The model with what was missing and the partitions it must not move.
#[derive(Debug, Clone)]
pub struct LiveModel {
    pub spec: ClusterSpec,
    pub warnings: Vec<String>,
    /// Partitions with a reassignment in flight (not Guardian's).
    pub frozen: BTreeSet<(String, i32)>,
    /// Topic ids by name (URL-safe base64).
    pub topic_ids: BTreeMap<String, String>,
    /// Whether every broker had a fresh reporter (else the rate goals are
    /// off).
    pub rates_known: bool,
    /// Whether every broker has a registered NIC and CPU capacity (else
    /// brokers are weighted equally, capacity 1 each).
    pub capacity_known: bool,
}

/// A live model that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LiveModelError(pub String);

pub fn build(i: &LiveInputs<'_>) -> Result<LiveModel, LiveModelError> {
    let mut warnings = Vec::new();
    let registered: BTreeMap<i32, &guardian_proto::domain::Broker> = i
        .registry
        .brokers
        .range((i.cluster.to_string(), i32::MIN)..=(i.cluster.to_string(), i32::MAX))
        .map(|((_, id), b)| (*id, b))
        .collect();
    let in_kafka: BTreeMap<i32, &guardian_kafka::BrokerInfo> =
        i.metadata.brokers.iter().map(|b| (b.id, b)).collect();
    if let Some(id) = in_kafka.keys().find(|id| !registered.contains_key(id)) {
        return Err(LiveModelError(format!(
            "broker {id} is in Kafka's metadata but not registered with Guardian (its log dirs and capacities are unknown); run `guardian cluster discover {}`",
            i.cluster
        )));
    }

    // Brokers and their disks.
    let mut stale = Vec::new();
    let mut no_capacity = Vec::new();
    let mut brokers = Vec::with_capacity(registered.len());
    // (broker, dir) → where replicas are; (broker, topic, partition) → (dir, size, future dir+size).
    let mut located: BTreeMap<(i32, &str, i32), (String, u64)> = BTreeMap::new();
    let mut futures: BTreeMap<(i32, &str, i32), (String, u64)> = BTreeMap::new();
    for (&id, reg) in &registered {
        let alive = in_kafka.contains_key(&id);
        let load = i.load.get(&id).copied();
        let fresh = load.filter(|l| l.stale_reason(i.now_ms, i.collect_interval_ms).is_none());
        if alive && fresh.is_none() {
            let why = load
                .and_then(|l| l.stale_reason(i.now_ms, i.collect_interval_ms))
                .unwrap_or_else(|| "no reporter collected".into());
            stale.push(format!("{id} ({why})"));
        }
        let mut disks = Vec::new();
        if !alive {
            warnings.push(format!(
                "broker {id} is registered but not in Kafka's metadata: treated as dead (nothing moves to it; its replicas are planned off it)"
            ));
            for d in &reg.log_dirs {
                disks.push(DiskSpec {
                    dir: d.path.clone(),
                    capacity_bytes: d.capacity_bytes.max(1),
                    ..DiskSpec::default()
                });
            }
        } else {
            let dirs = match i.log_dirs.get(&id) {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    return Err(LiveModelError(format!(
                        "DescribeLogDirs of broker {id} failed: {e}; cannot tell where its replicas are"
                    )))
                }
                None => {
                    return Err(LiveModelError(format!(
                        "no DescribeLogDirs answer for broker {id}"
                    )))
                }
            };
            for d in dirs {
                let known = reg.log_dirs.iter().find(|r| r.path == d.path);
                let capacity = match (known, d.total_bytes) {
                    (Some(k), _) if k.capacity_bytes > 0 => k.capacity_bytes,
                    (_, Some(t)) if t > 0 => {
                        if known.is_none() {
                            warnings.push(format!(
                                "broker {id} log dir {} is in Kafka but not in the registry: planned with the {t} bytes Kafka reports",
                                d.path
                            ));
                        }
                        t as u64
                    }
                    _ => {
                        return Err(LiveModelError(format!(
                            "broker {id} log dir {}: capacity unknown (not registered, and Kafka reports no size)",
                            d.path
                        )))
                    }
                };
                let failed = d.error.is_some();
                if let Some(e) = &d.error {
                    warnings.push(format!(
                        "broker {id} log dir {} is offline ({e}): its replicas are planned off it",
                        d.path
                    ));
                }
                let mut spec = DiskSpec {
                    dir: d.path.clone(),
                    capacity_bytes: capacity,
                    failed,
                    ..DiskSpec::default()
                };
                if let Some(dl) = fresh.and_then(|l| l.disks.iter().find(|x| x.path == d.path)) {
                    spec.write_median = dl.write.pct(0.5);
                    spec.write_p95 = dl.write.pct(0.95);
                    spec.read_median = dl.read.pct(0.5);
                    spec.read_p95 = dl.read.pct(0.95);
                    spec.util_median = dl.util.pct(0.5);
                    spec.util_p95 = dl.util.pct(0.95);
                }
                disks.push(spec);
                for r in &d.replicas {
                    let key = (id, r.topic.as_str(), r.partition);
                    let v = (d.path.clone(), r.size_bytes.max(0) as u64);
                    if r.is_future {
                        futures.insert(key, v);
                    } else {
                        located.insert(key, v);
                    }
                }
            }
            for r in &reg.log_dirs {
                if !dirs.iter().any(|d| d.path == r.path) {
                    warnings.push(format!(
                        "broker {id} log dir {} is registered but Kafka does not report it: not used",
                        r.path
                    ));
                }
            }
            if disks.is_empty() {
                return Err(LiveModelError(format!("broker {id} reports no log dirs")));
            }
        }
        let nic = reg.nic_bytes_per_sec as f64;
        let cpu = reg.cpu_cores as f64;
        if nic == 0.0 || cpu == 0.0 {
            no_capacity.push(id);
        }
        let rack = kafka_rack(
            in_kafka.get(&id).and_then(|b| b.rack.as_deref()),
            &reg.rack,
            id,
        );
        brokers.push(BrokerSpec {
            id,
            rack,
            idc: reg.idc.clone(),
            pool: reg.pool.clone().unwrap_or_default(),
            alive,
            decommission: false,
            excluded: false,
            nw_in_capacity: nic,
            nw_out_capacity: nic,
            cpu_capacity: cpu,
            page_cache_bytes: fresh.map_or(0, |l| l.page_cache_bytes),
            write_rate: 0.0,
            disks,
        });
    }
    if !no_capacity.is_empty() {
        warnings.push(format!(
            "brokers {no_capacity:?} have no registered network or CPU capacity: every broker is weighted equally"
        ));
        for b in &mut brokers {
            b.nw_in_capacity = 1.0;
            b.nw_out_capacity = 1.0;
            b.cpu_capacity = 1.0;
        }
    }
    let rates_known = stale.is_empty();
    if !rates_known {
        warnings.push(format!(
            "no fresh reporter for brokers {}: rates are unknown, so disk write/read, network and CPU goals are not enforced; the plan balances disk bytes, replicas and leaders from Kafka's sizes",
            stale.join(", ")
        ));
    }

    // Partition rates: the freshest report of each partition, from any of
    // its brokers (each reports every replica it hosts).
    let mut rates: BTreeMap<(&str, i32), f64> = BTreeMap::new();
    if rates_known {
        for l in i.load.values() {
            for p in &l.partitions {
                if !p.future {
                    let r = if p.bytes_in.held() > 0 {
                        p.bytes_in.pct(0.5)
                    } else {
                        p.bytes_in_per_sec
                    };
                    let e = rates.entry((p.topic.as_str(), p.partition)).or_insert(0.0);
                    *e = e.max(r);
                }
            }
        }
    }

    let frozen: BTreeSet<(String, i32)> = i
        .reassignments
        .iter()
        .map(|r| (r.topic.clone(), r.partition))
        .collect();
    for (t, p) in &frozen {
        warnings.push(format!(
            "{t}-{p} has a reassignment in progress that Guardian did not start: not moved"
        ));
    }

    // Topics.
    let pool_of: BTreeMap<i32, String> = brokers.iter().map(|b| (b.id, b.pool.clone())).collect();
    let mut topics = Vec::new();
    let mut topic_ids = BTreeMap::new();
    for t in &i.metadata.topics {
        topic_ids.insert(
            t.name.clone(),
            guardian_proto::domain::KafkaUuid(t.id).to_string(),
        );
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let mut pools: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &t.partitions {
            let mut replicas = Vec::with_capacity(p.replicas.len());
            let mut size = 0u64;
            for &b in &p.replicas {
                let dir = match located.get(&(b, t.name.as_str(), p.partition)) {
                    Some((dir, s)) => {
                        size = size.max(*s);
                        dir.clone()
                    }
                    None => {
                        // Dead broker, offline dir, or not yet created.
                        let Some(bs) = brokers.iter().find(|x| x.id == b) else {
                            return Err(LiveModelError(format!(
                                "{}-{} has a replica on broker {b}, which is neither in Kafka's metadata nor registered",
                                t.name, p.partition
                            )));
                        };
                        // A live broker's replica that no online dir holds
                        // is in an offline one (Kafka lists no replicas of
                        // a failed dir): plan it there, so it moves off.
                        let dir = bs
                            .disks
                            .iter()
                            .find(|d| d.failed)
                            .unwrap_or(&bs.disks[0])
                            .dir
                            .clone();
                        warnings.push(format!(
                            "{}-{}: the replica on broker {b} is not in any log dir Kafka reports; placed in {dir} for planning",
                            t.name, p.partition
                        ));
                        dir
                    }
                };
                *pools.entry(pool_of.get(&b).map_or("", |s| s)).or_default() += 1;
                replicas.push(ReplicaSpec {
                    broker: b,
                    dir,
                    lag_bytes: 0,
                });
            }
            let future = p.replicas.iter().find_map(|&b| {
                let (dir, fsize) = futures.get(&(b, t.name.as_str(), p.partition))?;
                Some(FutureSpec {
                    broker: b,
                    dir: dir.clone(),
                    remaining_bytes: size.saturating_sub(*fsize),
                    rate: 0.0,
                })
            });
            let leader = (p.leader >= 0 && p.replicas.contains(&p.leader)).then_some(p.leader);
            // A follower out of the ISR is catching up: its lag is what the
            // leader's replica holds beyond its own (DescribeLogDirs'
            // offset lag of a follower is always 0 — its high watermark
            // never passes its log end).
            if let Some(&(_, lsize)) =
                leader.and_then(|l| located.get(&(l, t.name.as_str(), p.partition)))
            {
                for r in &mut replicas {
                    if Some(r.broker) == leader || p.isr.contains(&r.broker) {
                        continue;
                    }
                    if let Some(&(_, fsize)) =
                        located.get(&(r.broker, t.name.as_str(), p.partition))
                    {
                        r.lag_bytes = lsize.saturating_sub(fsize);
                    }
                }
            }
            partitions.push(PartitionSpec {
                partition: p.partition,
                replicas,
                leader,
                size_bytes: size,
                bytes_in: rates
                    .get(&(t.name.as_str(), p.partition))
                    .copied()
                    .unwrap_or(0.0),
                bytes_out: 0.0,
                disk_read: 0.0,
                messages_in: 0.0,
                cpu: 0.0,
                future,
            });
        }
        // Tenant pools: a topic belongs to the pool holding most of its
        // replicas (the registry does not bind topics to tenants yet).
        let pool = pools
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        if pools.len() > 1 {
            warnings.push(format!(
                "topic {} has replicas in several pools {:?}: planned in pool {pool:?}",
                t.name,
                pools.keys().collect::<Vec<_>>()
            ));
        }
        topics.push(TopicSpec {
            pinned: false,
            name: t.name.clone(),
            pool,
            policy: policy(i.registry, i.cluster, &t.name),
            partitions,
        });
    }
    Ok(LiveModel {
        spec: ClusterSpec {
            name: i.cluster.to_string(),
            brokers,
            topics,
            groups: Vec::new(),
            follower_cpu_fraction: 0.3,
        },
        warnings,
        frozen,
        topic_ids,
        rates_known,
        capacity_known: no_capacity.is_empty(),
    })
}

/// Topic patterns (names or regular expressions over the whole name),
/// compiled. `__*` internal topics are excluded unless `move_internal`.
pub struct Exclusions {
    patterns: Vec<regex::Regex>,
    move_internal: bool,
}

impl Exclusions {
    /// Compiles the patterns; a bad one is named.
    pub fn new(patterns: &[String], move_internal: bool) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| format!("topic pattern {p:?} is not a regular expression: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patterns,
            move_internal,
        })
    }

    pub fn excludes(&self, topic: &str) -> bool {
        (!self.move_internal && topic.starts_with("__"))
            || self.patterns.iter().any(|p| p.is_match(topic))
    }
}

/// Overlays an operator's standing controls on a live model: excluded
/// topics are pinned; excluded and maintenance brokers are left alone (no
/// replica arrives, none leaves, no leadership arrives); decommissioning
/// brokers are drained; a broker being released from a tenant pool is
/// put in a pool of its own, so its tenant's replicas leave it and nothing
/// arrives; topics bound to a tenant are planned in its pool.
pub fn apply_controls(
    live: &mut LiveModel,
    c: &guardian_proto::execution::ClusterControls,
    ex: &Exclusions,
) {
    for b in &mut live.spec.brokers {
        if c.decommission.contains_key(&b.id) {
            b.decommission = true;
        } else if c.excluded_brokers.contains(&b.id) || c.maintenance.contains(&b.id) {
            b.excluded = true;
        }
        if c.releasing.contains_key(&b.id) {
            b.pool = super::workflow::releasing_pool(b.id);
        }
    }
    let mut pinned = Vec::new();
    for t in &mut live.spec.topics {
        if let Some(tenant) = c.topic_tenants.get(&t.name) {
            t.pool = tenant.clone();
        }
        if ex.excludes(&t.name) {
            t.pinned = true;
            if !t.name.starts_with("__") {
                pinned.push(t.name.clone());
            }
        }
    }
    if !pinned.is_empty() {
        live.warnings
            .push(format!("excluded topics, not moved: {}", pinned.join(", ")));
    }
    let left: Vec<String> = c
        .excluded_brokers
        .iter()
        .chain(&c.maintenance)
        .map(|b| b.to_string())
        .collect();
    if !left.is_empty() {
        live.warnings.push(format!(
            "brokers left alone (excluded or in maintenance): {}",
            left.join(", ")
        ));
    }
}

/// Kafka's rack if it reports one, else the registry's, else a rack of
/// the broker's own.
fn kafka_rack(kafka: Option<&str>, registered: &str, id: i32) -> String {
    match kafka.filter(|r| !r.is_empty()) {
        Some(r) => r.to_string(),
        None if !registered.is_empty() => registered.to_string(),
        None => format!("(broker {id})"),
    }
}

/// The topic's placement policy: its own, else the cluster's, else the
/// default (rack-unique, any IDC).
pub fn policy(reg: &Registry, cluster: &str, topic: &str) -> PolicySpec {
    let p = reg
        .policies
        .get(&(cluster.to_string(), topic.to_string()))
        .or_else(|| reg.policies.get(&(cluster.to_string(), String::new())));
    match p {
        None => PolicySpec::default(),
        Some(p) => PolicySpec {
            rack_unique: true,
            idcs: p.allowed_idcs.clone(),
            min_idcs: (p.replicas_per_idc.len() as u32).max(1),
        },
    }
}

#[cfg(test)]
mod tests {
    use guardian_kafka::types::ReplicaInfo;
    use guardian_kafka::{BrokerInfo, PartitionInfo, TopicInfo};
    use guardian_proto::domain::{Broker, LogDir};

    use super::*;
    use crate::load::{DiskLoad, PartitionLoad};

    const NOW: u64 = 1_000_000;

    fn registry(ids: &[i32]) -> Registry {
        let mut r = Registry::default();
        for &id in ids {
            r.brokers.insert(
                ("c".into(), id),
                Broker {
                    cluster: "c".into(),
                    broker_id: id,
                    host: format!("b{id}"),
                    rack: String::new(),
                    idc: "east".into(),
                    reporter_endpoint: format!("b{id}:9300"),
                    log_dirs: vec![
                        LogDir {
                            path: format!("/d/{id}/a"),
                            capacity_bytes: 1 << 40,
                        },
                        LogDir {
                            path: format!("/d/{id}/b"),
                            capacity_bytes: 1 << 40,
                        },
                    ],
                    nic_bytes_per_sec: 1 << 30,
                    cpu_cores: 8,
                    pool: None,
                    registered_at_ms: 0,
                },
            );
        }
        r
    }

    fn metadata(brokers: &[i32]) -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: Some("k".into()),
            controller_id: 0,
            brokers: brokers
                .iter()
                .map(|&id| BrokerInfo {
                    id,
                    host: format!("b{id}"),
                    port: 9092,
                    rack: Some(format!("r{id}")),
                })
                .collect(),
            topics: vec![TopicInfo {
                name: "t".into(),
                id: [7; 16],
                internal: false,
                partitions: (0..2)
                    .map(|p| PartitionInfo {
                        partition: p,
                        leader: 1,
                        leader_epoch: 0,
                        replicas: vec![1, 2],
                        isr: vec![1, 2],
                        offline: vec![],
                    })
                    .collect(),
            }],
        }
    }

    fn dirs(id: i32, extra: Option<(&str, Option<i64>, Option<&str>)>) -> Vec<LogDirInfo> {
        let mut v = vec![LogDirInfo {
            path: format!("/d/{id}/a"),
            error: None,
            total_bytes: Some(1 << 40),
            usable_bytes: Some(1 << 39),
            replicas: (0..2)
                .map(|p| ReplicaInfo {
                    topic: "t".into(),
                    partition: p,
                    size_bytes: 1000 + p as i64,
                    offset_lag: 0,
                    is_future: false,
                })
                .collect(),
        }];
        v.push(LogDirInfo {
            path: format!("/d/{id}/b"),
            error: None,
            total_bytes: Some(1 << 40),
            usable_bytes: Some(1 << 40),
            replicas: vec![],
        });
        if let Some((path, total, error)) = extra {
            v.push(LogDirInfo {
                path: path.into(),
                error: error.map(str::to_string),
                total_bytes: total,
                usable_bytes: total,
                replicas: vec![],
            });
        }
        v
    }

    fn fresh(id: i32) -> BrokerLoad {
        let mut l = BrokerLoad {
            last_ok_ms: Some(NOW),
            ..Default::default()
        };
        let mut d = DiskLoad {
            path: format!("/d/{id}/a"),
            ..Default::default()
        };
        for b in 0..10 {
            d.write.push(b, 100.0 * id as f64);
            d.util.push(b, 0.5);
        }
        l.disks.push(d);
        for p in 0..2 {
            let mut pl = PartitionLoad {
                topic: "t".into(),
                partition: p,
                ..Default::default()
            };
            for b in 0..10 {
                pl.bytes_in.push(b, 50.0 + p as f64);
            }
            l.partitions.push(pl);
        }
        l
    }

    fn build_with(
        reg: &Registry,
        md: &ClusterMetadata,
        log_dirs: &BTreeMap<i32, Result<Vec<LogDirInfo>, String>>,
        loads: &[(i32, BrokerLoad)],
        reassignments: &[Reassignment],
    ) -> Result<LiveModel, LiveModelError> {
        let load: BTreeMap<i32, &BrokerLoad> = loads.iter().map(|(id, l)| (*id, l)).collect();
        build(&LiveInputs {
            cluster: "c",
            registry: reg,
            load: &load,
            now_ms: NOW,
            collect_interval_ms: 10_000,
            metadata: md,
            log_dirs,
            reassignments,
        })
    }

    /// Everything fresh: the spec carries Kafka's placement and sizes, the
    /// reporters' medians, no warnings.
    #[test]
    fn fresh_inputs_make_a_full_spec() {
        let reg = registry(&[1, 2]);
        let md = metadata(&[1, 2]);
        let ld = [1, 2].iter().map(|&b| (b, Ok(dirs(b, None)))).collect();
        let loads = [(1, fresh(1)), (2, fresh(2))];
        let m = build_with(&reg, &md, &ld, &loads, &[]).unwrap();
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        assert!(m.rates_known);
        let b2 = &m.spec.brokers[1];
        assert_eq!((b2.id, b2.rack.as_str(), b2.alive), (2, "r2", true));
        assert_eq!(b2.disks[0].write_median, 200.0);
        let p1 = &m.spec.topics[0].partitions[1];
        assert_eq!(p1.size_bytes, 1001);
        assert_eq!(p1.bytes_in, 51.0);
        assert_eq!(p1.replicas[1].dir, "/d/2/a");
        assert_eq!(
            m.topic_ids["t"],
            guardian_proto::domain::KafkaUuid([7; 16]).to_string()
        );
        guardian_planner::model::ClusterModel::from_spec(&m.spec).unwrap();
    }

    /// A follower out of the ISR lags by what the leader holds beyond it;
    /// a replica no online dir lists sits in its broker's offline dir.
    #[test]
    fn catching_up_followers_and_offline_dirs_are_seen() {
        let reg = registry(&[1, 2]);
        let mut md = metadata(&[1, 2]);
        md.topics[0].partitions[0].isr = vec![1];
        let mut ld: BTreeMap<_, _> = [1].iter().map(|&b| (b, Ok(dirs(b, None)))).collect();
        let mut d2 = dirs(
            2,
            Some(("/d/2/off", Some(1 << 30), Some("KAFKA_STORAGE_ERROR"))),
        );
        d2[0].replicas[0].size_bytes = 400;
        d2[0].replicas.remove(1);
        ld.insert(2, Ok(d2));
        let m = build_with(&reg, &md, &ld, &[], &[]).unwrap();
        let parts = &m.spec.topics[0].partitions;
        assert_eq!(parts[0].replicas[1].lag_bytes, 1000 - 400);
        assert_eq!(parts[0].replicas[0].lag_bytes, 0);
        // t-1's replica on broker 2 is in no online dir: the offline one.
        assert_eq!(parts[1].replicas[1].dir, "/d/2/off");
        assert_eq!(parts[1].replicas[1].lag_bytes, 0, "in the ISR");
    }

    /// Missing and stale inputs: each named, each with its rule.
    #[test]
    fn missing_and_stale_inputs_are_named_never_zero() {
        // A broker Kafka lists but the registry does not know: an error.
        let reg = registry(&[1]);
        let md = metadata(&[1, 2]);
        let ld: BTreeMap<_, _> = [1, 2].iter().map(|&b| (b, Ok(dirs(b, None)))).collect();
        let err = build_with(&reg, &md, &ld, &[], &[]).unwrap_err();
        assert!(
            err.0.contains("broker 2") && err.0.contains("cluster discover"),
            "{err}"
        );

        // Registered broker 3 not in Kafka: dead. Broker 2 stale. An
        // unknown dir with a size; an offline dir; a foreign reassignment.
        let reg = registry(&[1, 2, 3]);
        let mut ld: BTreeMap<_, _> = BTreeMap::new();
        ld.insert(1, Ok(dirs(1, Some(("/d/1/new", Some(5 << 30), None)))));
        ld.insert(
            2,
            Ok(dirs(
                2,
                Some(("/d/2/b2", Some(1 << 30), Some("KAFKA_STORAGE_ERROR"))),
            )),
        );
        let mut stale = fresh(2);
        stale.error = Some("reporter b2:9300: connection refused".into());
        let loads = [(1, fresh(1)), (2, stale)];
        let moving = [Reassignment {
            topic: "t".into(),
            partition: 1,
            replicas: vec![1, 2, 3],
            adding: vec![3],
            removing: vec![1],
        }];
        let m = build_with(&reg, &md, &ld, &loads, &moving).unwrap();
        let w = m.warnings.join("\n");
        assert!(
            w.contains("broker 3 is registered but not in Kafka's metadata"),
            "{w}"
        );
        assert!(
            w.contains("/d/1/new is in Kafka but not in the registry"),
            "{w}"
        );
        assert!(w.contains("/d/2/b2 is offline"), "{w}");
        assert!(
            w.contains("no fresh reporter for brokers 2 (reporter b2:9300: connection refused)"),
            "{w}"
        );
        assert!(w.contains("t-1 has a reassignment in progress"), "{w}");
        assert!(!m.rates_known);
        assert!(m.frozen.contains(&("t".to_string(), 1)));
        let b = |id| m.spec.brokers.iter().find(|b| b.id == id).unwrap();
        assert!(!b(3).alive);
        assert_eq!(
            b(1).disks
                .iter()
                .find(|d| d.dir == "/d/1/new")
                .unwrap()
                .capacity_bytes,
            5 << 30
        );
        assert!(
            b(2).disks
                .iter()
                .find(|d| d.dir == "/d/2/b2")
                .unwrap()
                .failed
        );
        // Rates unknown: not read as zero from the fresh broker alone.
        assert!(m.spec.topics[0]
            .partitions
            .iter()
            .all(|p| p.bytes_in == 0.0));
        // An unknown dir without a size: an error.
        ld.insert(1, Ok(dirs(1, Some(("/d/1/x", None, None)))));
        let err = build_with(&reg, &md, &ld, &loads, &[]).unwrap_err();
        assert!(err.0.contains("/d/1/x: capacity unknown"), "{err}");
        // DescribeLogDirs failed: an error naming the broker.
        ld.insert(1, Err("timeout".into()));
        let err = build_with(&reg, &md, &ld, &loads, &[]).unwrap_err();
        assert!(
            err.0
                .contains("DescribeLogDirs of broker 1 failed: timeout"),
            "{err}"
        );
    }
}
