//! The cluster model: what the planners see of a Kafka cluster.
//!
//! Two shapes of the same thing:
//! - [`ClusterSpec`] is plain data keyed by Kafka's names (broker ids, log-dir
//!   paths, topic names). It is what `guardian plan simulate --from-file`
//!   reads as JSON and what the generator writes; README documents it.
//! - [`ClusterModel`] is the validated, dense form the planners work on:
//!   brokers, disks, topics and partitions are indexed by `u32`, a partition's
//!   replicas are a slice of one flat vector, names are interned. Building it
//!   is O(brokers + disks + replicas) with one ordered map per name space.
//!
//! Load model (per replica; rates are historical medians in bytes/s):
//! - disk: `disk_bytes` = partition size; `disk_write` = bytes in (leader:
//!   produce, follower: replication); `disk_read` = the partition's cold reads,
//!   on the leader only.
//! - broker: `nw_in` = bytes in (leader and followers alike); `nw_out` on the
//!   leader = consumer bytes out + bytes in × (RF − 1) for followers' fetches;
//!   `cpu` = the partition's CPU share on the leader, a fraction of it on
//!   followers; `leaders`, `replicas` = counts.
//! - A disk's measured median write/read above what its replicas explain is a
//!   constant background load on that disk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The resources balanced and reported, in the balance planner's priority order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    DiskBytes,
    DiskWrite,
    DiskRead,
    NwIn,
    NwOut,
    Cpu,
    Leaders,
    Replicas,
}

impl Resource {
    pub const ALL: [Resource; 8] = [
        Resource::DiskBytes,
        Resource::DiskWrite,
        Resource::DiskRead,
        Resource::NwIn,
        Resource::NwOut,
        Resource::Cpu,
        Resource::Leaders,
        Resource::Replicas,
    ];

    /// The snake_case name used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            Resource::DiskBytes => "disk_bytes",
            Resource::DiskWrite => "disk_write",
            Resource::DiskRead => "disk_read",
            Resource::NwIn => "nw_in",
            Resource::NwOut => "nw_out",
            Resource::Cpu => "cpu",
            Resource::Leaders => "leaders",
            Resource::Replicas => "replicas",
        }
    }

    /// Disk resources are measured per log dir, the others per broker.
    pub fn per_disk(self) -> bool {
        matches!(
            self,
            Resource::DiskBytes | Resource::DiskWrite | Resource::DiskRead
        )
    }

    /// Loads that follow leadership, which a leader election can move for
    /// free: disk reads (cold reads hit the leader), nw out, CPU, leaders.
    pub fn leader_driven(self) -> bool {
        matches!(
            self,
            Resource::DiskRead | Resource::NwOut | Resource::Cpu | Resource::Leaders
        )
    }

    /// This resource's value in a (disk, broker) load pair.
    #[inline]
    pub fn of(self, d: &DiskLoad, b: &BrokerLoad) -> f64 {
        if self.per_disk() {
            d[self.slot()]
        } else {
            b[self.slot()]
        }
    }

    /// Index into [`DiskLoad`] (disk resources) or [`BrokerLoad`] (the rest).
    pub(crate) fn slot(self) -> usize {
        match self {
            Resource::DiskBytes | Resource::NwIn => 0,
            Resource::DiskWrite | Resource::NwOut => 1,
            Resource::DiskRead | Resource::Cpu => 2,
            Resource::Leaders => 3,
            Resource::Replicas => 4,
        }
    }
}

// ---------------------------------------------------------------- spec (JSON)

fn yes() -> bool {
    true
}
fn default_follower_cpu() -> f64 {
    0.3
}

/// A cluster as plain data, keyed by Kafka's names. The JSON format of
/// `guardian plan simulate --from-file`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    #[serde(default)]
    pub name: String,
    pub brokers: Vec<BrokerSpec>,
    pub topics: Vec<TopicSpec>,
    /// Consumer groups' positions (for the throttle planner).
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// A follower's CPU cost as a fraction of the leader's (default 0.3).
    #[serde(default = "default_follower_cpu")]
    pub follower_cpu_fraction: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSpec {
    pub id: i32,
    #[serde(default)]
    pub rack: String,
    #[serde(default)]
    pub idc: String,
    /// Tenant pool; "" is the shared pool. Topics live only on their pool's brokers.
    #[serde(default)]
    pub pool: String,
    #[serde(default = "yes")]
    pub alive: bool,
    /// Being removed: every replica must leave it, none may arrive.
    #[serde(default)]
    pub decommission: bool,
    /// Left alone (excluded, or in maintenance): no replica arrives, none
    /// of its replicas is moved, no leadership moves to it.
    #[serde(default)]
    pub excluded: bool,
    /// Bytes/s.
    pub nw_in_capacity: f64,
    pub nw_out_capacity: f64,
    /// Cores.
    pub cpu_capacity: f64,
    #[serde(default)]
    pub page_cache_bytes: u64,
    /// Measured bytes/s written on this host (all dirs; diskstats), 0 =
    /// derive it from the replicas, moves and disk backgrounds.
    #[serde(default)]
    pub write_rate: f64,
    pub disks: Vec<DiskSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskSpec {
    pub dir: String,
    pub capacity_bytes: u64,
    pub failed: bool,
    /// Historical median / p95 of bytes/s written and read and of utilisation
    /// (0–1), as the collector measured them. 0 = unknown.
    pub write_median: f64,
    pub write_p95: f64,
    pub read_median: f64,
    pub read_p95: f64,
    pub util_median: f64,
    pub util_p95: f64,
    /// Sustainable bytes/s; 0 = unknown (the throttle planner then derives a
    /// budget from the disk's p95).
    pub write_budget: f64,
    pub read_budget: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub policy: PolicySpec,
    /// Excluded from plans: no replica or leadership of it moves.
    #[serde(default)]
    pub pinned: bool,
    pub partitions: Vec<PartitionSpec>,
}

/// A topic's placement policy (cluster default unless set per topic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySpec {
    /// No two replicas of a partition in one rack.
    pub rack_unique: bool,
    /// IDCs replicas may live in; empty = any.
    pub idcs: Vec<String>,
    /// Replicas of a partition span at least this many IDCs.
    pub min_idcs: u32,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            rack_unique: true,
            idcs: Vec::new(),
            min_idcs: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    pub partition: i32,
    /// First replica is the preferred leader.
    pub replicas: Vec<ReplicaSpec>,
    /// Current leader's broker id (default: the first replica).
    #[serde(default)]
    pub leader: Option<i32>,
    pub size_bytes: u64,
    /// Bytes/s produced (median).
    pub bytes_in: f64,
    /// Bytes/s fetched by consumers (median).
    #[serde(default)]
    pub bytes_out: f64,
    /// Bytes/s of consumer reads that miss the page cache (median).
    #[serde(default)]
    pub disk_read: f64,
    #[serde(default)]
    pub messages_in: f64,
    /// CPU share of the leader, in cores.
    #[serde(default)]
    pub cpu: f64,
    /// An in-progress intra-broker move (a `.future` dir).
    #[serde(default)]
    pub future: Option<FutureSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSpec {
    pub broker: i32,
    pub dir: String,
    /// Bytes this replica is behind the leader (followers out of sync).
    #[serde(default)]
    pub lag_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FutureSpec {
    pub broker: i32,
    pub dir: String,
    pub remaining_bytes: u64,
    /// Current copy rate, bytes/s.
    pub rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// Quota entity (KIP-55 `user`); "" = default user.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub client_id: String,
    pub positions: Vec<PositionSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionSpec {
    pub topic: String,
    pub partition: i32,
    /// Bytes between the group's position and the log end.
    pub lag_bytes: u64,
    /// Bytes/s the group fetches from this partition.
    pub rate: f64,
}

// ---------------------------------------------------------------- dense model

/// A disk's load vector (disk bytes, write, read) and a broker's (nw in,
/// nw out, CPU, leaders, replicas), in `Resource` priority order.
pub type DiskLoad = [f64; 3];
pub type BrokerLoad = [f64; 5];

#[derive(Clone, Debug, PartialEq)]
pub struct Broker {
    pub id: i32,
    pub rack: u32,
    pub idc: u32,
    pub pool: u32,
    pub alive: bool,
    pub decommission: bool,
    pub excluded: bool,
    /// nw_in, nw_out, cpu capacities (leaders/replicas have none).
    pub capacity: [f64; 3],
    pub page_cache_bytes: u64,
    pub write_rate: f64,
    /// This broker's disks: `disks[first_disk .. first_disk + n_disks]`.
    pub first_disk: u32,
    pub n_disks: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Disk {
    pub broker: u32,
    pub dir: String,
    pub capacity: u64,
    pub failed: bool,
    pub write_median: f64,
    pub write_p95: f64,
    pub read_median: f64,
    pub read_p95: f64,
    pub util_median: f64,
    pub util_p95: f64,
    pub write_budget: f64,
    pub read_budget: f64,
    /// Measured median write/read not explained by its replicas.
    pub background: [f64; 2],
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub rack_unique: bool,
    /// Allowed IDC indices; empty = any.
    pub idcs: Vec<u32>,
    pub min_idcs: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Topic {
    pub name: String,
    pub pool: u32,
    pub policy: Policy,
    pub pinned: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub topic: u32,
    pub index: i32,
    /// Replicas: `replicas[first .. first + rf]`, first = preferred leader.
    pub first: u32,
    pub rf: u8,
    /// Slot (0..rf) of the current leader.
    pub leader: u8,
    pub size: u64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub disk_read: f64,
    pub messages_in: f64,
    pub cpu: f64,
    pub future: Option<Future>,
}

/// Where a replica lives: dense broker and disk indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Replica {
    pub broker: u32,
    pub disk: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Future {
    pub disk: u32,
    pub remaining_bytes: u64,
    pub rate: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    pub user: String,
    pub client_id: String,
    /// (partition index, lag bytes, fetch rate bytes/s).
    pub positions: Vec<(u32, u64, f64)>,
}

/// The validated, dense cluster model. See the module docs for the load model.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterModel {
    pub name: String,
    pub brokers: Vec<Broker>,
    pub disks: Vec<Disk>,
    pub topics: Vec<Topic>,
    pub partitions: Vec<Partition>,
    pub replicas: Vec<Replica>,
    /// Lag in bytes per replica slot (same indexing as `replicas`).
    pub replica_lag: Vec<u64>,
    pub groups: Vec<Group>,
    pub racks: Vec<String>,
    pub idcs: Vec<String>,
    pub pools: Vec<String>,
    /// Distinct IDCs among each pool's usable brokers (what `min_idcs` can ask).
    pub pool_idcs: Vec<u32>,
    pub follower_cpu_fraction: f64,
}

/// Interns names in first-seen order (deterministic for a given input).
#[derive(Default)]
struct Interner {
    ids: BTreeMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn get(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(name.to_string(), i);
        self.names.push(name.to_string());
        i
    }
}

fn finite(v: f64, field: impl FnOnce() -> String) -> Result<f64, ModelError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ModelError::Invalid {
            field: field(),
            reason: format!("must be a finite number ≥ 0, got {v}"),
        })
    }
}

impl ClusterModel {
    /// Validates a spec and builds the dense model. O(brokers + disks +
    /// replicas · log brokers).
    ///
    /// Errors ([`ModelError`], each naming the field): duplicate broker ids,
    /// dirs or topic names; a replica on an unknown broker or dir; a partition
    /// with no replicas, a broker listed twice in one partition's replicas or
    /// a leader outside its replicas; negative or
    /// non-finite rates; a group position on an unknown partition.
    pub fn from_spec(spec: &ClusterSpec) -> Result<ClusterModel, ModelError> {
        let invalid = |field: String, reason: &str| ModelError::Invalid {
            field,
            reason: reason.to_string(),
        };
        let (mut racks, mut idcs, mut pools) = (
            Interner::default(),
            Interner::default(),
            Interner::default(),
        );
        let mut brokers = Vec::with_capacity(spec.brokers.len());
        let mut disks = Vec::new();
        let mut broker_ix: BTreeMap<i32, u32> = BTreeMap::new();
        let mut disk_ix: BTreeMap<(u32, &str), u32> = BTreeMap::new();
        for (bi, b) in spec.brokers.iter().enumerate() {
            let at = |f: &str| format!("brokers[{bi}].{f}");
            if broker_ix.insert(b.id, bi as u32).is_some() {
                return Err(invalid(at("id"), &format!("duplicate broker id {}", b.id)));
            }
            if b.disks.is_empty() {
                return Err(invalid(at("disks"), "a broker needs at least one log dir"));
            }
            let first_disk = disks.len() as u32;
            for (di, d) in b.disks.iter().enumerate() {
                let dat = |f: &str| format!("brokers[{bi}].disks[{di}].{f}");
                if d.dir.is_empty() {
                    return Err(invalid(dat("dir"), "must not be empty"));
                }
                if d.capacity_bytes == 0 {
                    return Err(invalid(dat("capacity_bytes"), "must be > 0"));
                }
                if disk_ix
                    .insert((bi as u32, d.dir.as_str()), disks.len() as u32)
                    .is_some()
                {
                    return Err(invalid(dat("dir"), &format!("duplicate log dir {}", d.dir)));
                }
                disks.push(Disk {
                    broker: bi as u32,
                    dir: d.dir.clone(),
                    capacity: d.capacity_bytes,
                    failed: d.failed,
                    write_median: finite(d.write_median, || dat("write_median"))?,
                    write_p95: finite(d.write_p95, || dat("write_p95"))?,
                    read_median: finite(d.read_median, || dat("read_median"))?,
                    read_p95: finite(d.read_p95, || dat("read_p95"))?,
                    util_median: finite(d.util_median, || dat("util_median"))?,
                    util_p95: finite(d.util_p95, || dat("util_p95"))?,
                    write_budget: finite(d.write_budget, || dat("write_budget"))?,
                    read_budget: finite(d.read_budget, || dat("read_budget"))?,
                    background: [0.0; 2],
                });
            }
            brokers.push(Broker {
                id: b.id,
                rack: racks.get(&b.rack),
                idc: idcs.get(&b.idc),
                pool: pools.get(&b.pool),
                alive: b.alive,
                decommission: b.decommission,
                excluded: b.excluded,
                capacity: [
                    finite(b.nw_in_capacity, || at("nw_in_capacity"))?,
                    finite(b.nw_out_capacity, || at("nw_out_capacity"))?,
                    finite(b.cpu_capacity, || at("cpu_capacity"))?,
                ],
                page_cache_bytes: b.page_cache_bytes,
                write_rate: finite(b.write_rate, || at("write_rate"))?,
                first_disk,
                n_disks: b.disks.len() as u32,
            });
        }
        let follower_cpu_fraction = finite(spec.follower_cpu_fraction, || {
            "follower_cpu_fraction".to_string()
        })?;

        let mut topics = Vec::with_capacity(spec.topics.len());
        let mut topic_ix: BTreeMap<&str, u32> = BTreeMap::new();
        let mut partitions = Vec::new();
        let mut replicas = Vec::new();
        let mut replica_lag = Vec::new();
        let mut part_ix: BTreeMap<(u32, i32), u32> = BTreeMap::new();
        for (ti, t) in spec.topics.iter().enumerate() {
            let at = |f: &str| format!("topics[{ti}].{f}");
            if t.name.is_empty() {
                return Err(invalid(at("name"), "must not be empty"));
            }
            if topic_ix.insert(t.name.as_str(), ti as u32).is_some() {
                return Err(invalid(at("name"), &format!("duplicate topic {}", t.name)));
            }
            let policy = Policy {
                rack_unique: t.policy.rack_unique,
                idcs: t.policy.idcs.iter().map(|i| idcs.get(i)).collect(),
                min_idcs: t.policy.min_idcs.max(1),
            };
            topics.push(Topic {
                name: t.name.clone(),
                pool: pools.get(&t.pool),
                policy,
                pinned: t.pinned,
            });
            for (pi, p) in t.partitions.iter().enumerate() {
                let pat = |f: &str| format!("topics[{ti}].partitions[{pi}].{f}");
                if p.replicas.is_empty() || p.replicas.len() > u8::MAX as usize {
                    return Err(invalid(pat("replicas"), "needs 1 to 255 replicas"));
                }
                if part_ix
                    .insert((ti as u32, p.partition), partitions.len() as u32)
                    .is_some()
                {
                    return Err(invalid(
                        pat("partition"),
                        &format!("duplicate partition {}", p.partition),
                    ));
                }
                let first = replicas.len() as u32;
                for (ri, r) in p.replicas.iter().enumerate() {
                    let rat = |f: &str| format!("topics[{ti}].partitions[{pi}].replicas[{ri}].{f}");
                    let b = *broker_ix.get(&r.broker).ok_or_else(|| {
                        invalid(rat("broker"), &format!("unknown broker {}", r.broker))
                    })?;
                    // Kafka refuses a replica list naming a broker twice
                    // (INVALID_REPLICA_ASSIGNMENT); so does the model.
                    if p.replicas[..ri].iter().any(|o| o.broker == r.broker) {
                        return Err(invalid(
                            rat("broker"),
                            &format!("broker {} is listed twice in this partition", r.broker),
                        ));
                    }
                    let d = *disk_ix.get(&(b, r.dir.as_str())).ok_or_else(|| {
                        invalid(
                            rat("dir"),
                            &format!("broker {} has no log dir {}", r.broker, r.dir),
                        )
                    })?;
                    replicas.push(Replica { broker: b, disk: d });
                    replica_lag.push(r.lag_bytes);
                }
                let leader = match p.leader {
                    None => 0,
                    Some(id) => p
                        .replicas
                        .iter()
                        .position(|r| r.broker == id)
                        .ok_or_else(|| {
                            invalid(pat("leader"), &format!("broker {id} is not a replica"))
                        })? as u8,
                };
                let future = match &p.future {
                    None => None,
                    Some(f) => {
                        let b = *broker_ix.get(&f.broker).ok_or_else(|| {
                            invalid(
                                pat("future.broker"),
                                &format!("unknown broker {}", f.broker),
                            )
                        })?;
                        let d = *disk_ix.get(&(b, f.dir.as_str())).ok_or_else(|| {
                            invalid(pat("future.dir"), &format!("unknown log dir {}", f.dir))
                        })?;
                        Some(Future {
                            disk: d,
                            remaining_bytes: f.remaining_bytes,
                            rate: finite(f.rate, || pat("future.rate"))?,
                        })
                    }
                };
                partitions.push(Partition {
                    topic: ti as u32,
                    index: p.partition,
                    first,
                    rf: p.replicas.len() as u8,
                    leader,
                    size: p.size_bytes,
                    bytes_in: finite(p.bytes_in, || pat("bytes_in"))?,
                    bytes_out: finite(p.bytes_out, || pat("bytes_out"))?,
                    disk_read: finite(p.disk_read, || pat("disk_read"))?,
                    messages_in: finite(p.messages_in, || pat("messages_in"))?,
                    cpu: finite(p.cpu, || pat("cpu"))?,
                    future,
                });
            }
        }
        let mut groups = Vec::with_capacity(spec.groups.len());
        for (gi, g) in spec.groups.iter().enumerate() {
            let mut positions = Vec::with_capacity(g.positions.len());
            for (qi, q) in g.positions.iter().enumerate() {
                let qat = |f: &str| format!("groups[{gi}].positions[{qi}].{f}");
                let t = *topic_ix
                    .get(q.topic.as_str())
                    .ok_or_else(|| invalid(qat("topic"), &format!("unknown topic {}", q.topic)))?;
                let p = *part_ix.get(&(t, q.partition)).ok_or_else(|| {
                    invalid(
                        qat("partition"),
                        &format!("unknown partition {}-{}", q.topic, q.partition),
                    )
                })?;
                positions.push((p, q.lag_bytes, finite(q.rate, || qat("rate"))?));
            }
            groups.push(Group {
                name: g.name.clone(),
                user: g.user.clone(),
                client_id: g.client_id.clone(),
                positions,
            });
        }
        let mut m = ClusterModel {
            name: spec.name.clone(),
            brokers,
            disks,
            topics,
            partitions,
            replicas,
            replica_lag,
            groups,
            racks: racks.names,
            idcs: idcs.names,
            pools: pools.names,
            pool_idcs: Vec::new(),
            follower_cpu_fraction,
        };
        let mut seen: Vec<Vec<u32>> = vec![Vec::new(); m.pools.len().max(1)];
        for b in &m.brokers {
            if b.alive && !b.decommission && !seen[b.pool as usize].contains(&b.idc) {
                seen[b.pool as usize].push(b.idc);
            }
        }
        m.pool_idcs = seen.iter().map(|s| s.len() as u32).collect();
        // Background: measured medians beyond what the replicas explain.
        let loads = m.loads(&m.replicas, &m.leaders());
        for (d, l) in m.disks.iter_mut().zip(&loads.disk) {
            d.background = [
                (d.write_median - l[1]).max(0.0),
                (d.read_median - l[2]).max(0.0),
            ];
        }
        Ok(m)
    }

    /// The replica slots of partition `p` (indices into `replicas`).
    #[inline]
    pub fn slots(&self, p: u32) -> std::ops::Range<usize> {
        let part = &self.partitions[p as usize];
        part.first as usize..part.first as usize + part.rf as usize
    }

    /// Current leader slot per partition.
    pub fn leaders(&self) -> Vec<u8> {
        self.partitions.iter().map(|p| p.leader).collect()
    }

    /// IDCs a partition of topic `t` must span: `min(min_idcs, rf, IDCs in
    /// the pool)`.
    pub fn idcs_needed(&self, t: u32, rf: u8) -> u32 {
        let topic = &self.topics[t as usize];
        topic.policy.min_idcs.min(rf as u32).min(
            self.pool_idcs
                .get(topic.pool as usize)
                .copied()
                .unwrap_or(0),
        )
    }

    /// The load one replica puts on its disk and its broker.
    #[inline]
    pub fn replica_load(&self, p: &Partition, is_leader: bool) -> (DiskLoad, BrokerLoad) {
        if is_leader {
            (
                [p.size as f64, p.bytes_in, p.disk_read],
                [
                    p.bytes_in,
                    p.bytes_out + p.bytes_in * (p.rf as f64 - 1.0),
                    p.cpu,
                    1.0,
                    1.0,
                ],
            )
        } else {
            (
                [p.size as f64, p.bytes_in, 0.0],
                [
                    p.bytes_in,
                    0.0,
                    p.cpu * self.follower_cpu_fraction,
                    0.0,
                    1.0,
                ],
            )
        }
    }

    /// Loads of every disk and broker for an assignment (`assign` indexed
    /// like `replicas`) and leader slots. Includes disk background. O(replicas).
    pub fn loads(&self, assign: &[Replica], leaders: &[u8]) -> Loads {
        let mut l = Loads {
            disk: self
                .disks
                .iter()
                .map(|d| [0.0, d.background[0], d.background[1]])
                .collect(),
            broker: vec![[0.0; 5]; self.brokers.len()],
        };
        for (pi, p) in self.partitions.iter().enumerate() {
            for s in 0..p.rf {
                let r = assign[p.first as usize + s as usize];
                let (d, b) = self.replica_load(p, s == leaders[pi]);
                add(&mut l.disk[r.disk as usize], &d);
                add(&mut l.broker[r.broker as usize], &b);
            }
        }
        l
    }

    /// A disk can hold replicas: its broker is alive and not being
    /// decommissioned, and the disk has not failed.
    #[inline]
    pub fn disk_usable(&self, d: u32) -> bool {
        let disk = &self.disks[d as usize];
        let b = &self.brokers[disk.broker as usize];
        !disk.failed && b.alive && !b.decommission
    }

    /// Readable name of a partition (`topic-N`).
    pub fn partition_name(&self, p: u32) -> String {
        let part = &self.partitions[p as usize];
        format!("{}-{}", self.topics[part.topic as usize].name, part.index)
    }
}

/// Every disk's and broker's load, updated action by action.
#[derive(Clone, Debug, PartialEq)]
pub struct Loads {
    pub disk: Vec<DiskLoad>,
    pub broker: Vec<BrokerLoad>,
}

impl Loads {
    /// Moves one replica's load from `from` to `to`. O(1).
    #[inline]
    pub fn move_replica(
        &mut self,
        m: &ClusterModel,
        p: &Partition,
        is_leader: bool,
        from: Replica,
        to: Replica,
    ) {
        let (d, b) = m.replica_load(p, is_leader);
        sub(&mut self.disk[from.disk as usize], &d);
        add(&mut self.disk[to.disk as usize], &d);
        if from.broker != to.broker {
            sub(&mut self.broker[from.broker as usize], &b);
            add(&mut self.broker[to.broker as usize], &b);
        }
    }

    /// Moves leadership of `p` from the replica at `old` to the one at `new`. O(1).
    #[inline]
    pub fn change_leader(&mut self, m: &ClusterModel, p: &Partition, old: Replica, new: Replica) {
        let (ld, lb) = m.replica_load(p, true);
        let (fd, fb) = m.replica_load(p, false);
        sub(&mut self.disk[old.disk as usize], &ld);
        add(&mut self.disk[old.disk as usize], &fd);
        sub(&mut self.disk[new.disk as usize], &fd);
        add(&mut self.disk[new.disk as usize], &ld);
        sub(&mut self.broker[old.broker as usize], &lb);
        add(&mut self.broker[old.broker as usize], &fb);
        sub(&mut self.broker[new.broker as usize], &fb);
        add(&mut self.broker[new.broker as usize], &lb);
    }
}

#[inline]
pub(crate) fn add<const N: usize>(a: &mut [f64; N], b: &[f64; N]) {
    for i in 0..N {
        a[i] += b[i];
    }
}

#[inline]
pub(crate) fn sub<const N: usize>(a: &mut [f64; N], b: &[f64; N]) {
    for i in 0..N {
        a[i] -= b[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn bad_specs_name_the_field() {
        let ok = cluster(
            vec![broker(1, "a", 1, GB), broker(2, "b", 1, GB)],
            vec![topic("t", vec![part(0, &[(1, 0), (2, 0)], 1, 1.0)])],
        );
        assert!(ClusterModel::from_spec(&ok).is_ok());
        let mut s = ok.clone();
        s.brokers[1].id = 1;
        let e = ClusterModel::from_spec(&s).unwrap_err().to_string();
        assert!(e.starts_with("brokers[1].id: duplicate broker id 1"), "{e}");
        let mut s = ok.clone();
        s.topics[0].partitions[0].replicas[1].broker = 9;
        let e = ClusterModel::from_spec(&s).unwrap_err().to_string();
        assert!(
            e.starts_with("topics[0].partitions[0].replicas[1].broker: unknown broker 9"),
            "{e}"
        );
        let mut s = ok.clone();
        s.topics[0].partitions[0].replicas[0].dir = "/nope".into();
        let e = ClusterModel::from_spec(&s).unwrap_err().to_string();
        assert!(
            e.contains("replicas[0].dir: broker 1 has no log dir /nope"),
            "{e}"
        );
        let mut s = ok.clone();
        s.topics[0].partitions[0].bytes_in = f64::NAN;
        let e = ClusterModel::from_spec(&s).unwrap_err().to_string();
        assert!(e.starts_with("topics[0].partitions[0].bytes_in:"), "{e}");
        let mut s = ok.clone();
        s.topics[0].partitions[0].leader = Some(3);
        let e = ClusterModel::from_spec(&s).unwrap_err().to_string();
        assert!(e.contains("leader: broker 3 is not a replica"), "{e}");
        let mut s = ok.clone();
        s.topics[0].partitions[0].replicas[1] = s.topics[0].partitions[0].replicas[0].clone();
        let e = ClusterModel::from_spec(&s).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "topics[0].partitions[0].replicas[1].broker: broker 1 is listed twice in this partition"
            ),
            "{e}"
        );
    }

    #[test]
    fn json_defaults_and_background() {
        let json = r#"{"brokers":[{"id":1,"nw_in_capacity":1e9,"nw_out_capacity":1e9,"cpu_capacity":8,
            "disks":[{"dir":"/d0","capacity_bytes":1000,"write_median":5e6}]}],
            "topics":[{"name":"t","partitions":[{"partition":0,"replicas":[{"broker":1,"dir":"/d0"}],
            "size_bytes":10,"bytes_in":1e6}]}]}"#;
        let spec: ClusterSpec = serde_json::from_str(json).unwrap();
        assert!(spec.brokers[0].alive && spec.topics[0].policy.rack_unique);
        let m = ClusterModel::from_spec(&spec).unwrap();
        // 5 MB/s measured, 1 MB/s explained by the replica: 4 MB/s background.
        assert_eq!(m.disks[0].background, [4e6, 0.0]);
        let bad = json.replace("\"size_bytes\"", "\"sise_bytes\"");
        assert!(serde_json::from_str::<ClusterSpec>(&bad).is_err());
    }
}
