//! The live model: what the planners see of a real cluster, built from
//! the registry, the collector's windows and what Kafka reports. Pure (no
//! I/O, no clock): the executor gathers [`LiveInputs`], this builds the
//! [`planner::model::ClusterSpec`].
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
//!   not used;
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
                        warnings.push(format!(
                            "{}-{}: the replica on broker {b} is not in any log dir Kafka reports; placed in {} for planning",
                            t.name, p.partition, bs.disks[0].dir
                        ));
                        bs.disks[0].dir.clone()
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
    })
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
fn policy(reg: &Registry, cluster: &str, topic: &str) -> PolicySpec {
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
