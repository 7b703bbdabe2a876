//! The federation registry: the replicated state and its deterministic apply.
//!
//! [`Registry::apply`] is pure: no clock (time comes from the log entry's
//! `now_ms`), no I/O, ordered maps only. It reports which [`Key`]s it touched
//! so the store can write exactly those to RocksDB in the entry's batch.

use std::collections::{BTreeMap, BTreeSet};

use guardian_proto::domain::{
    Broker, Cluster, Command, IdKind, KafkaUuid, PartitionList, PartitionLoadSample,
    PlacementPolicy, Request, Tenant, NO_SAMPLE,
};
use guardian_proto::remote_log::PartitionKey;

use crate::remote_log::RemoteLogState;
use crate::types::{CommandResponse, Rejection};

/// A persisted item of the registry (one RocksDB key in the `sm_data` family).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Cluster(String),
    Broker(String, i32),
    Tenant(String),
    /// (cluster, topic); topic `""` is the cluster-level policy.
    Policy(String, String),
    Id(KafkaUuid),
    Counters,
    /// Remote log: a partition's record (name, hosts, fence, deletion).
    RlPartition(PartitionKey),
    /// Remote log: a segment's metadata.
    RlSegment(PartitionKey, KafkaUuid),
    /// Remote log: (epoch, epoch start offset) → segment served by lookups.
    RlOffset(PartitionKey, i32, i64),
    /// Remote log: a segment listed for an epoch but not served by lookups.
    RlUnref(PartitionKey, i32, KafkaUuid),
    /// Remote log: highest offset ever copied for an epoch.
    RlHighest(PartitionKey, i32),
    /// A broker's load history (cluster, broker id).
    Load(String, i32),
    /// A broker's partition list for its per-partition history.
    PartitionList(String, i32),
    /// One slot of a broker's per-partition history (cluster, broker, slot).
    PartitionSlot(String, i32, u64),
}

/// Buckets of load history kept per series (an hour of one-minute buckets).
pub const HISTORY_BUCKETS: u64 = 60;

/// (bucket, value) points, oldest first, at most [`HISTORY_BUCKETS`].
pub type Series = Vec<(u64, u64)>;

/// One disk's load history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskHistory {
    pub write: Series,
    pub read: Series,
    pub util_ppm: Series,
}

/// A broker's load history, recorded by the leader bucket by bucket so a new
/// leader starts with the last hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadHistory {
    pub bytes_in: Series,
    pub cpu_ppm: Series,
    pub disks: BTreeMap<String, DiskHistory>,
}

/// Buckets per slot of per-partition history: partitions are recorded at a
/// coarser grain than brokers and disks (a federation has millions).
pub const PARTITION_SLOT_BUCKETS: u64 = 5;

/// Slots of per-partition history kept (the same hour).
pub const PARTITION_SLOTS: u64 = HISTORY_BUCKETS / PARTITION_SLOT_BUCKETS;

/// A broker's per-partition bytes-in history: its partition list and, per
/// slot, one mean per partition in list order ([`NO_SAMPLE`] where none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionHistory {
    pub partitions: PartitionList,
    /// `partitions.fingerprint()`, kept with it.
    pub fingerprint: u64,
    /// (slot, means), oldest first, at most [`PARTITION_SLOTS`].
    pub slots: Vec<(u64, Vec<u32>)>,
}

impl PartitionHistory {
    /// Records one slot of broker `key`. A new partition list re-orders the
    /// held slots by partition identity (partitions that left are
    /// forgotten, new ones have no sample). `false` if the values do not
    /// match the recorded list's length (a sample without a list, for a
    /// list not recorded): nothing changes then.
    fn record(
        &mut self,
        key: &(String, i32),
        slot: u64,
        s: &PartitionLoadSample,
        touched: &mut Vec<Key>,
    ) -> bool {
        let len = s.partitions.as_ref().unwrap_or(&self.partitions).len();
        if s.bytes_in.len() != len {
            return false;
        }
        let slot_key = |x: u64| Key::PartitionSlot(key.0.clone(), key.1, x);
        if let Some(list) = s.partitions.as_ref().filter(|l| **l != self.partitions) {
            let old: std::collections::HashMap<(&str, i32, bool), usize> =
                (0..self.partitions.len())
                    .map(|i| (self.partitions.key(i), i))
                    .collect();
            let map: Vec<Option<usize>> = (0..list.len())
                .map(|i| old.get(&list.key(i)).copied())
                .collect();
            for (x, vals) in &mut self.slots {
                *vals = map
                    .iter()
                    .map(|o| o.map_or(NO_SAMPLE, |j| vals[j]))
                    .collect();
                touched.push(slot_key(*x));
            }
            self.partitions = list.clone();
            self.fingerprint = list.fingerprint();
            touched.push(Key::PartitionList(key.0.clone(), key.1));
        }
        // The hour ends at the newest slot: older slots go, and a late
        // slot older than that is not kept.
        let newest = self.slots.last().map_or(slot, |l| l.0.max(slot));
        for (x, _) in self
            .slots
            .iter()
            .filter(|(x, _)| x + PARTITION_SLOTS <= newest)
        {
            touched.push(slot_key(*x));
        }
        self.slots
            .retain(|(x, _)| *x != slot && x + PARTITION_SLOTS > newest);
        if slot + PARTITION_SLOTS > newest {
            let at = self.slots.partition_point(|(x, _)| *x < slot);
            self.slots.insert(at, (slot, s.bytes_in.clone()));
            touched.push(slot_key(slot));
        }
        true
    }

    /// Every stored key of broker `key`'s history.
    fn keys(&self, key: &(String, i32), out: &mut Vec<Key>) {
        out.push(Key::PartitionList(key.0.clone(), key.1));
        for (x, _) in &self.slots {
            out.push(Key::PartitionSlot(key.0.clone(), key.1, *x));
        }
    }
}

fn record(series: &mut Series, bucket: u64, value: u64) {
    series.retain(|(b, _)| *b != bucket && b + HISTORY_BUCKETS > bucket);
    series.push((bucket, value));
    series.sort_unstable_by_key(|p| p.0);
}

fn trim(series: &mut Series, bucket: u64) {
    series.retain(|(b, _)| b + HISTORY_BUCKETS > bucket);
}

/// The replicated federation registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    pub clusters: BTreeMap<String, Cluster>,
    pub brokers: BTreeMap<(String, i32), Broker>,
    pub tenants: BTreeMap<String, Tenant>,
    pub policies: BTreeMap<(String, String), PlacementPolicy>,
    /// Every id ever issued, of any kind: never handed out twice.
    pub issued: BTreeMap<KafkaUuid, IdKind>,
    pub next_cluster_id: u64,
    /// Tiered-storage metadata (KIP-405).
    pub remote_log: RemoteLogState,
    /// Per broker: the last hour of collected load, bucket by bucket.
    pub load: BTreeMap<(String, i32), LoadHistory>,
    /// Per broker: the last hour of per-partition bytes in, slot by slot.
    pub partition_load: BTreeMap<(String, i32), PartitionHistory>,
}

fn not_found(what: impl Into<String>) -> CommandResponse {
    CommandResponse::Rejected(Rejection::NotFound { what: what.into() })
}

fn precondition(reason: impl Into<String>) -> CommandResponse {
    CommandResponse::Rejected(Rejection::FailedPrecondition {
        reason: reason.into(),
    })
}

impl Registry {
    /// Applies one command. Deterministic; `touched` receives every key whose
    /// value changed (present → written, absent → deleted).
    pub fn apply(&mut self, req: &Request, touched: &mut Vec<Key>) -> CommandResponse {
        if let Err(e) = req.command.validate() {
            return CommandResponse::Rejected(Rejection::InvalidArgument {
                field: e.field,
                reason: e.reason,
            });
        }
        let now = req.now_ms;
        match &req.command {
            Command::Batch(items) => {
                CommandResponse::Batch(items.iter().map(|i| self.apply(i, touched)).collect())
            }
            Command::RemoteLog(events) => {
                CommandResponse::RemoteLog(self.remote_log.apply_events(events, touched))
            }
            Command::TrackPartitions {
                broker_id,
                partitions,
            } => match self.remote_log.track(*broker_id, partitions, touched) {
                Ok(()) => CommandResponse::Done,
                Err(r) => CommandResponse::Rejected(r),
            },
            Command::UntrackPartitions {
                broker_id,
                partitions,
            } => {
                self.remote_log.untrack(*broker_id, partitions, touched);
                CommandResponse::Done
            }
            Command::RecordLoad { bucket, brokers } => {
                for s in brokers {
                    let key = (s.cluster.clone(), s.broker_id);
                    if !self.brokers.contains_key(&key) {
                        continue; // removed meanwhile
                    }
                    let h = self.load.entry(key.clone()).or_default();
                    record(&mut h.bytes_in, *bucket, s.bytes_in);
                    record(&mut h.cpu_ppm, *bucket, s.cpu_ppm);
                    for d in &s.disks {
                        let dh = h.disks.entry(d.path.clone()).or_default();
                        record(&mut dh.write, *bucket, d.write);
                        record(&mut dh.read, *bucket, d.read);
                        record(&mut dh.util_ppm, *bucket, d.util_ppm);
                    }
                    for dh in h.disks.values_mut() {
                        trim(&mut dh.write, *bucket);
                        trim(&mut dh.read, *bucket);
                        trim(&mut dh.util_ppm, *bucket);
                    }
                    h.disks.retain(|_, d| !d.write.is_empty());
                    touched.push(Key::Load(key.0, key.1));
                }
                CommandResponse::Done
            }
            Command::RecordPartitionLoad { slot, brokers } => {
                for s in brokers {
                    let key = (s.cluster.clone(), s.broker_id);
                    if !self.brokers.contains_key(&key) {
                        continue; // removed meanwhile
                    }
                    let h = self.partition_load.entry(key.clone()).or_default();
                    if !h.record(&key, *slot, s, touched) && h.slots.is_empty() {
                        self.partition_load.remove(&key);
                    }
                }
                CommandResponse::Done
            }
            Command::AddCluster(c) => self.add_cluster(c, now, touched),
            Command::RemoveCluster { name } => self.remove_cluster(name, touched),
            Command::AddBroker(b) => self.add_broker(b, now, touched),
            Command::RemoveBroker { cluster, broker_id } => {
                self.remove_broker(cluster, *broker_id, touched)
            }
            Command::CreateTenant(t) => {
                if self.tenants.contains_key(&t.name) {
                    return CommandResponse::Rejected(Rejection::AlreadyExists {
                        what: format!("tenant {:?}", t.name),
                    });
                }
                let t = Tenant {
                    created_at_ms: now,
                    ..t.clone()
                };
                self.tenants.insert(t.name.clone(), t.clone());
                touched.push(Key::Tenant(t.name.clone()));
                CommandResponse::Tenant(t)
            }
            Command::DeleteTenant { name } => {
                if !self.tenants.contains_key(name) {
                    return not_found(format!("tenant {name:?}"));
                }
                let owned = self.pool_of(name);
                if !owned.is_empty() {
                    return precondition(format!(
                        "tenant {name:?} still owns {} broker(s) ({}); release them first",
                        owned.len(),
                        fmt_brokers(&owned)
                    ));
                }
                self.tenants.remove(name);
                touched.push(Key::Tenant(name.clone()));
                CommandResponse::Done
            }
            Command::AssignPool {
                tenant,
                cluster,
                broker_ids,
            } => self.assign_pool(tenant, cluster, broker_ids, touched),
            Command::ReleasePool {
                tenant,
                cluster,
                broker_ids,
            } => self.release_pool(tenant, cluster, broker_ids, touched),
            Command::SetPolicy(p) => {
                if !self.clusters.contains_key(&p.cluster) {
                    return not_found(format!("cluster {:?}", p.cluster));
                }
                let key = (p.cluster.clone(), p.topic.clone().unwrap_or_default());
                self.policies.insert(key.clone(), p.clone());
                touched.push(Key::Policy(key.0, key.1));
                CommandResponse::Policy(p.clone())
            }
            Command::RemovePolicy { cluster, topic } => {
                let key = (cluster.clone(), topic.clone().unwrap_or_default());
                if self.policies.remove(&key).is_none() {
                    return not_found(match topic {
                        Some(t) => {
                            format!("placement policy of topic {t:?} in cluster {cluster:?}")
                        }
                        None => format!("placement policy of cluster {cluster:?}"),
                    });
                }
                touched.push(Key::Policy(key.0, key.1));
                CommandResponse::Done
            }
            Command::AllocateIds { kind, ids } => {
                let mut fresh = BTreeSet::new();
                for id in ids {
                    if !id.is_allocatable() {
                        return precondition(format!("id {id} is reserved"));
                    }
                    if self.issued.contains_key(id) || !fresh.insert(*id) {
                        return CommandResponse::Rejected(Rejection::AlreadyExists {
                            what: format!("id {id}"),
                        });
                    }
                }
                for id in ids {
                    self.issued.insert(*id, *kind);
                    touched.push(Key::Id(*id));
                }
                CommandResponse::Ids(ids.clone())
            }
        }
    }

    fn add_cluster(&mut self, c: &Cluster, now: u64, touched: &mut Vec<Key>) -> CommandResponse {
        if self.clusters.contains_key(&c.name) {
            return CommandResponse::Rejected(Rejection::AlreadyExists {
                what: format!("cluster {:?}", c.name),
            });
        }
        self.next_cluster_id += 1;
        let c = Cluster {
            id: self.next_cluster_id,
            created_at_ms: now,
            ..c.clone()
        };
        self.clusters.insert(c.name.clone(), c.clone());
        touched.push(Key::Cluster(c.name.clone()));
        touched.push(Key::Counters);
        CommandResponse::Cluster(c)
    }

    fn remove_cluster(&mut self, name: &str, touched: &mut Vec<Key>) -> CommandResponse {
        if !self.clusters.contains_key(name) {
            return not_found(format!("cluster {name:?}"));
        }
        let brokers = self.brokers_of(name).count();
        if brokers > 0 {
            return precondition(format!(
                "cluster {name:?} still has {brokers} registered broker(s); remove them first"
            ));
        }
        self.clusters.remove(name);
        touched.push(Key::Cluster(name.to_string()));
        let keys: Vec<_> = self
            .policies
            .range((name.to_string(), String::new())..)
            .take_while(|((c, _), _)| c == name)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.policies.remove(&k);
            touched.push(Key::Policy(k.0, k.1));
        }
        CommandResponse::Done
    }

    fn add_broker(&mut self, b: &Broker, now: u64, touched: &mut Vec<Key>) -> CommandResponse {
        let Some(cluster) = self.clusters.get(&b.cluster) else {
            return not_found(format!("cluster {:?}", b.cluster));
        };
        let key = (b.cluster.clone(), b.broker_id);
        if self.brokers.contains_key(&key) {
            return CommandResponse::Rejected(Rejection::AlreadyExists {
                what: format!("broker {} in cluster {:?}", b.broker_id, b.cluster),
            });
        }
        if let Some(p) = &b.pool {
            if !self.tenants.contains_key(p) {
                return not_found(format!("tenant {p:?}"));
            }
        }
        let mut b = b.clone();
        if b.idc.is_empty() {
            b.idc = cluster.idc.clone();
        }
        b.registered_at_ms = now;
        self.brokers.insert(key.clone(), b.clone());
        touched.push(Key::Broker(key.0, key.1));
        CommandResponse::Broker(b)
    }

    fn remove_broker(&mut self, cluster: &str, id: i32, touched: &mut Vec<Key>) -> CommandResponse {
        let key = (cluster.to_string(), id);
        let Some(b) = self.brokers.get(&key) else {
            if !self.clusters.contains_key(cluster) {
                return not_found(format!("cluster {cluster:?}"));
            }
            return not_found(format!("broker {id} in cluster {cluster:?}"));
        };
        if let Some(p) = &b.pool {
            return precondition(format!(
                "broker {id} of cluster {cluster:?} is in tenant {p:?}'s pool; release it first"
            ));
        }
        self.brokers.remove(&key);
        if self.load.remove(&key).is_some() {
            touched.push(Key::Load(key.0.clone(), key.1));
        }
        if let Some(h) = self.partition_load.remove(&key) {
            h.keys(&key, touched);
        }
        touched.push(Key::Broker(key.0, key.1));
        CommandResponse::Done
    }

    fn assign_pool(
        &mut self,
        tenant: &str,
        cluster: &str,
        ids: &[i32],
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        self.move_pool(tenant, cluster, ids, true, touched)
    }

    fn release_pool(
        &mut self,
        tenant: &str,
        cluster: &str,
        ids: &[i32],
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        self.move_pool(tenant, cluster, ids, false, touched)
    }

    /// Puts brokers into `tenant`'s pool (`assign`) or back into the free
    /// pool. All or nothing: every broker is checked before any changes.
    fn move_pool(
        &mut self,
        tenant: &str,
        cluster: &str,
        ids: &[i32],
        assign: bool,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        if let Some(missing) = self.missing_tenant_or_cluster(tenant, cluster) {
            return missing;
        }
        for id in ids {
            let Some(b) = self.brokers.get(&(cluster.to_string(), *id)) else {
                return not_found(format!("broker {id} in cluster {cluster:?}"));
            };
            match (&b.pool, assign) {
                (Some(p), true) if p != tenant => {
                    return precondition(format!(
                        "broker {id} of cluster {cluster:?} already belongs to tenant {p:?}'s pool"
                    ))
                }
                (p, false) if p.as_deref() != Some(tenant) => {
                    return precondition(format!(
                        "broker {id} of cluster {cluster:?} is not in tenant {tenant:?}'s pool"
                    ))
                }
                _ => {}
            }
        }
        let target = assign.then(|| tenant.to_string());
        for id in ids {
            let key = (cluster.to_string(), *id);
            if let Some(b) = self.brokers.get_mut(&key) {
                if b.pool != target {
                    b.pool = target.clone();
                    touched.push(Key::Broker(key.0, key.1));
                }
            }
        }
        self.pool_response(tenant)
    }

    fn missing_tenant_or_cluster(&self, tenant: &str, cluster: &str) -> Option<CommandResponse> {
        if !self.tenants.contains_key(tenant) {
            return Some(not_found(format!("tenant {tenant:?}")));
        }
        if !self.clusters.contains_key(cluster) {
            return Some(not_found(format!("cluster {cluster:?}")));
        }
        None
    }

    fn pool_response(&self, tenant: &str) -> CommandResponse {
        CommandResponse::Pool {
            tenant: tenant.to_string(),
            brokers: self.pool_of(tenant),
        }
    }

    /// Brokers in a tenant's exclusive pool, ordered by (cluster, id).
    pub fn pool_of(&self, tenant: &str) -> Vec<(String, i32)> {
        self.brokers
            .values()
            .filter(|b| b.pool.as_deref() == Some(tenant))
            .map(|b| (b.cluster.clone(), b.broker_id))
            .collect()
    }

    /// Brokers of one cluster, ordered by id.
    pub fn brokers_of<'a>(&'a self, cluster: &'a str) -> impl Iterator<Item = &'a Broker> + 'a {
        self.brokers
            .range((cluster.to_string(), i32::MIN)..=(cluster.to_string(), i32::MAX))
            .map(|(_, b)| b)
    }

    /// Placement policies of one cluster (cluster-level first, then by topic).
    pub fn policies_of<'a>(
        &'a self,
        cluster: &'a str,
    ) -> impl Iterator<Item = &'a PlacementPolicy> + 'a {
        self.policies
            .range((cluster.to_string(), String::new())..)
            .take_while(move |((c, _), _)| c == cluster)
            .map(|(_, p)| p)
    }
}

fn fmt_brokers(b: &[(String, i32)]) -> String {
    let mut s: Vec<String> = b.iter().take(5).map(|(c, i)| format!("{c}/{i}")).collect();
    if b.len() > 5 {
        s.push("…".into());
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardian_proto::domain::LogDir;

    fn req(now_ms: u64, command: Command) -> Request {
        Request::new(now_ms, command)
    }

    fn cluster(name: &str) -> Command {
        Command::AddCluster(Cluster {
            id: 0,
            name: name.into(),
            bootstrap_servers: vec!["k1:9092".into()],
            idc: "east".into(),
            kafka_cluster_id: None,
            created_at_ms: 0,
        })
    }

    fn broker(cluster: &str, id: i32) -> Command {
        Command::AddBroker(Broker {
            cluster: cluster.into(),
            broker_id: id,
            host: format!("b{id}"),
            rack: "r1".into(),
            idc: String::new(),
            reporter_endpoint: format!("b{id}:9300"),
            log_dirs: vec![LogDir {
                path: "/data/1".into(),
                capacity_bytes: 1 << 40,
            }],
            nic_bytes_per_sec: 0,
            cpu_cores: 8,
            pool: None,
            registered_at_ms: 0,
        })
    }

    fn apply(r: &mut Registry, c: Command) -> CommandResponse {
        r.apply(&req(7, c), &mut Vec::new())
    }

    /// The stored key/values, as the store keeps them.
    type Kv = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

    /// Writes what `touched` names to `kv`, as the store does after apply.
    fn store(r: &Registry, touched: Vec<Key>, kv: &mut Kv) {
        for k in touched {
            match crate::state_keys::value_bytes(r, &k) {
                Some(v) => kv.insert(crate::state_keys::key_bytes(&k), v),
                None => kv.remove(&crate::state_keys::key_bytes(&k)),
            };
        }
    }

    /// A registry loaded back from stored key/values (open, snapshot install).
    fn reload(kv: &Kv) -> Registry {
        let mut back = Registry::default();
        for (k, v) in kv {
            crate::state_keys::load_kv(&mut back, k, v).unwrap();
        }
        back
    }

    /// Removes broker `a`/1; returns the keys touched.
    fn remove_broker_a1(r: &mut Registry) -> Vec<Key> {
        let mut touched = Vec::new();
        let cmd = Command::RemoveBroker {
            cluster: "a".into(),
            broker_id: 1,
        };
        assert_eq!(r.apply(&req(2, cmd), &mut touched), CommandResponse::Done);
        touched
    }

    fn assert_rejected(resp: CommandResponse, f: impl Fn(&Rejection) -> bool) {
        match &resp {
            CommandResponse::Rejected(r) if f(r) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cluster_ids_and_time_come_from_the_log() {
        let mut r = Registry::default();
        let CommandResponse::Cluster(c) = apply(&mut r, cluster("a")) else {
            panic!()
        };
        assert_eq!((c.id, c.created_at_ms), (1, 7));
        assert_rejected(apply(&mut r, cluster("a")), |r| {
            matches!(r, Rejection::AlreadyExists { .. })
        });
        let CommandResponse::Cluster(c) = apply(&mut r, cluster("b")) else {
            panic!()
        };
        assert_eq!(c.id, 2);
    }

    #[test]
    fn broker_takes_cluster_idc_and_needs_cluster() {
        let mut r = Registry::default();
        assert_rejected(apply(&mut r, broker("a", 1)), |r| {
            matches!(r, Rejection::NotFound { .. })
        });
        apply(&mut r, cluster("a"));
        let CommandResponse::Broker(b) = apply(&mut r, broker("a", 1)) else {
            panic!()
        };
        assert_eq!(b.idc, "east");
        assert_rejected(apply(&mut r, broker("a", 1)), |r| {
            matches!(r, Rejection::AlreadyExists { .. })
        });
        assert_rejected(
            apply(&mut r, Command::RemoveCluster { name: "a".into() }),
            |r| matches!(r, Rejection::FailedPrecondition { .. }),
        );
    }

    #[test]
    fn pools_are_exclusive_and_block_tenant_deletion() {
        let mut r = Registry::default();
        apply(&mut r, cluster("a"));
        apply(&mut r, broker("a", 1));
        apply(&mut r, broker("a", 2));
        for t in ["t1", "t2"] {
            apply(
                &mut r,
                Command::CreateTenant(Tenant {
                    name: t.into(),
                    description: String::new(),
                    created_at_ms: 0,
                }),
            );
        }
        let assign = |t: &str, ids: Vec<i32>| Command::AssignPool {
            tenant: t.into(),
            cluster: "a".into(),
            broker_ids: ids,
        };
        assert_eq!(
            apply(&mut r, assign("t1", vec![1])),
            CommandResponse::Pool {
                tenant: "t1".into(),
                brokers: vec![("a".into(), 1)]
            }
        );
        // Broker 1 is taken: the whole command fails and broker 2 stays free.
        assert_rejected(apply(&mut r, assign("t2", vec![2, 1])), |r| {
            matches!(r, Rejection::FailedPrecondition { .. })
        });
        assert_eq!(r.brokers[&("a".to_string(), 2)].pool, None);
        assert_rejected(
            apply(&mut r, Command::DeleteTenant { name: "t1".into() }),
            |r| matches!(r, Rejection::FailedPrecondition { .. }),
        );
        let release = Command::ReleasePool {
            tenant: "t1".into(),
            cluster: "a".into(),
            broker_ids: vec![1],
        };
        apply(&mut r, release);
        assert_eq!(
            apply(&mut r, Command::DeleteTenant { name: "t1".into() }),
            CommandResponse::Done
        );
    }

    #[test]
    fn ids_are_never_issued_twice() {
        let mut r = Registry::default();
        let id = KafkaUuid::from_random_bytes([7; 16]);
        let alloc = |ids: Vec<KafkaUuid>| Command::AllocateIds {
            kind: IdKind::Segment,
            ids,
        };
        assert_eq!(
            apply(&mut r, alloc(vec![id])),
            CommandResponse::Ids(vec![id])
        );
        assert_rejected(apply(&mut r, alloc(vec![id])), |r| {
            matches!(r, Rejection::AlreadyExists { .. })
        });
        assert_rejected(apply(&mut r, alloc(vec![KafkaUuid::ONE])), |r| {
            matches!(r, Rejection::FailedPrecondition { .. })
        });
    }

    #[test]
    fn invalid_command_is_rejected_with_field() {
        let mut r = Registry::default();
        assert_rejected(
            apply(&mut r, cluster("bad name")),
            |r| matches!(r, Rejection::InvalidArgument { field, .. } if field == "cluster.name"),
        );
    }

    #[test]
    fn batch_items_apply_in_order_with_their_own_results() {
        let mut r = Registry::default();
        let batch = Command::Batch(vec![
            req(1, cluster("a")),
            req(2, cluster("a")),
            req(3, broker("a", 1)),
        ]);
        let CommandResponse::Batch(out) = apply(&mut r, batch) else {
            panic!()
        };
        assert!(matches!(out[0], CommandResponse::Cluster(_)));
        assert!(matches!(
            out[1],
            CommandResponse::Rejected(Rejection::AlreadyExists { .. })
        ));
        let CommandResponse::Broker(b) = &out[2] else {
            panic!()
        };
        assert_eq!(b.registered_at_ms, 3, "each item keeps its own timestamp");
        let nested = Command::Batch(vec![req(1, Command::Batch(vec![req(1, cluster("b"))]))]);
        assert_rejected(apply(&mut r, nested), |r| {
            matches!(r, Rejection::InvalidArgument { .. })
        });
    }

    #[test]
    fn apply_is_deterministic() {
        let cmds = [cluster("a"), broker("a", 1), broker("a", 2), cluster("b")];
        let run = || {
            let mut r = Registry::default();
            let mut touched = Vec::new();
            let out: Vec<_> = cmds
                .iter()
                .map(|c| r.apply(&req(5, c.clone()), &mut touched))
                .collect();
            (r, out, touched)
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn load_history_keeps_sixty_buckets_and_reloads() {
        use guardian_proto::domain::{BrokerLoadSample, DiskLoadSample};
        let mut r = Registry::default();
        apply(&mut r, cluster("a"));
        apply(&mut r, broker("a", 1));
        let mut kv = Kv::new();
        for bucket in 0..70u64 {
            let mut touched = Vec::new();
            let cmd = Command::RecordLoad {
                bucket,
                brokers: vec![
                    BrokerLoadSample {
                        cluster: "a".into(),
                        broker_id: 1,
                        bytes_in: bucket * 10,
                        cpu_ppm: 500_000,
                        disks: vec![DiskLoadSample {
                            path: "/data/1".into(),
                            write: bucket,
                            read: 0,
                            util_ppm: 1,
                        }],
                    },
                    // Not registered: ignored.
                    BrokerLoadSample {
                        cluster: "a".into(),
                        broker_id: 9,
                        bytes_in: 1,
                        cpu_ppm: 0,
                        disks: vec![],
                    },
                ],
            };
            assert_eq!(r.apply(&req(1, cmd), &mut touched), CommandResponse::Done);
            store(&r, touched, &mut kv);
        }
        let h = &r.load[&("a".to_string(), 1)];
        assert_eq!(h.bytes_in.len(), 60);
        assert_eq!(h.bytes_in[0], (10, 100));
        assert_eq!(h.disks["/data/1"].write.last(), Some(&(69, 69)));
        assert!(!r.load.contains_key(&("a".to_string(), 9)));
        assert_eq!(reload(&kv).load, r.load);
        // Removing the broker removes its history.
        let touched = remove_broker_a1(&mut r);
        assert!(r.load.is_empty());
        assert!(touched.contains(&Key::Load("a".into(), 1)));
    }

    #[test]
    fn partition_history_keeps_twelve_slots_follows_the_list_and_reloads() {
        use guardian_proto::domain::{PartitionList, PartitionLoadSample};
        let mut r = Registry::default();
        apply(&mut r, cluster("a"));
        apply(&mut r, broker("a", 1));
        let list = |parts: &[(&str, i32)]| {
            let mut topics: Vec<String> = parts.iter().map(|p| p.0.to_string()).collect();
            topics.dedup();
            PartitionList {
                topic_index: parts
                    .iter()
                    .map(|p| topics.iter().position(|t| t == p.0).unwrap() as u32)
                    .collect(),
                topics,
                partition: parts.iter().map(|p| p.1).collect(),
                future: vec![false; parts.len()],
            }
        };
        let mut kv = Kv::new();
        let mut record = |r: &mut Registry, slot, partitions, bytes_in: Vec<u32>| {
            let cmd = Command::RecordPartitionLoad {
                slot,
                brokers: vec![PartitionLoadSample {
                    cluster: "a".into(),
                    broker_id: 1,
                    partitions,
                    bytes_in,
                }],
            };
            let mut touched = Vec::new();
            assert_eq!(r.apply(&req(1, cmd), &mut touched), CommandResponse::Done);
            store(r, touched, &mut kv);
        };
        let key = ("a".to_string(), 1);
        // No list recorded yet: a sample without one is not applied.
        record(&mut r, 0, None, vec![1, 2]);
        assert!(!r.partition_load.contains_key(&key));
        record(&mut r, 0, Some(list(&[("t", 0), ("t", 1)])), vec![10, 20]);
        for slot in 1..15u64 {
            record(&mut r, slot, None, vec![10 + slot as u32, NO_SAMPLE]);
        }
        let h = &r.partition_load[&key];
        assert_eq!(h.slots.len(), 12);
        assert_eq!(h.slots[0], (3, vec![13, NO_SAMPLE]));
        // t-1 leaves, u-0 arrives: held slots follow the partitions.
        record(&mut r, 15, Some(list(&[("u", 0), ("t", 0)])), vec![7, 25]);
        let h = &r.partition_load[&key];
        assert_eq!(h.slots[0], (4, vec![NO_SAMPLE, 14]));
        assert_eq!(h.slots.last(), Some(&(15, vec![7, 25])));
        // Wrong length without a list: not applied, nothing changes.
        let before = h.clone();
        record(&mut r, 16, None, vec![1]);
        assert_eq!(r.partition_load[&key], before);
        // A late slot is slotted in order; one older than the hour is not.
        record(&mut r, 5, None, vec![1, 1]);
        assert_eq!(r.partition_load[&key].slots[1], (5, vec![1, 1]));
        record(&mut r, 3, None, vec![1, 1]);
        assert_eq!(r.partition_load[&key].slots[0].0, 4);
        assert_eq!(r.partition_load[&key].slots.len(), 12);
        // Stored: the list and one key per slot held.
        assert_eq!(kv.keys().filter(|k| k.starts_with(b"q")).count(), 13);
        assert_eq!(reload(&kv).partition_load, r.partition_load);
        let touched = remove_broker_a1(&mut r);
        assert!(r.partition_load.is_empty());
        store(&r, touched, &mut kv);
        assert!(!kv.keys().any(|k| k.starts_with(b"q")));
    }

    #[test]
    fn partition_load_validation_names_the_field() {
        use guardian_proto::domain::{PartitionList, PartitionLoadSample};
        let cmd = |partitions: PartitionList, bytes_in: Vec<u32>| Command::RecordPartitionLoad {
            slot: 1,
            brokers: vec![PartitionLoadSample {
                cluster: "a".into(),
                broker_id: 1,
                partitions: Some(partitions),
                bytes_in,
            }],
        };
        let l = PartitionList {
            topics: vec!["t".into()],
            topic_index: vec![0, 1],
            partition: vec![0, 1],
            future: vec![false, false],
        };
        assert_eq!(
            cmd(l.clone(), vec![1, 2]).validate().unwrap_err().field,
            "brokers[0].partitions.topic_index[1]"
        );
        let l = PartitionList {
            topic_index: vec![0, 0],
            ..l
        };
        assert_eq!(
            cmd(l, vec![1]).validate().unwrap_err().field,
            "brokers[0].bytes_in"
        );
    }
}
