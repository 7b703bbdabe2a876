//! The federation registry: clusters, brokers, tenants and their pools,
//! placement policies and issued ids — its commands, its keys (tags `c\0`,
//! `b\0`, `t\0`, `p\0`, `i\0`, `n\0`: [`super::keys`]), their values and
//! their loading.
//!
//! Pure: no clock (time comes from the log entry's `now_ms`), no I/O,
//! ordered maps only. Every change is reported as a [`RegistryKey`] so the
//! store writes exactly those keys in the entry's batch.

use std::collections::{BTreeMap, BTreeSet};

use guardian_proto::domain::{
    Broker, Cluster, DiscoveredBroker, IdKind, KafkaUuid, LogDir, PlacementPolicy, Tenant,
};
use guardian_proto::pb;
use prost::Message;

use super::keys::{put_broker, KeyReader};
use super::load::LoadHistories;
use super::Key;
use crate::error::{decode, StoreError};
use crate::types::{CommandResponse, DiscoveryReport, Rejection};

/// A persisted item of the registry (one `sm_data` key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegistryKey {
    Cluster(String),
    Broker(String, i32),
    Tenant(String),
    /// (cluster, topic); topic `""` is the cluster-level policy.
    Policy(String, String),
    Id(KafkaUuid),
    Counters,
}

impl From<RegistryKey> for Key {
    fn from(k: RegistryKey) -> Key {
        Key::Registry(k)
    }
}

/// The tags of this domain's keys.
pub(crate) const TAGS: [&[u8; 2]; 6] = [b"c\0", b"b\0", b"t\0", b"p\0", b"i\0", b"n\0"];

impl RegistryKey {
    /// The RocksDB key.
    pub fn bytes(&self, out: &mut Vec<u8>) {
        match self {
            RegistryKey::Cluster(n) => {
                out.extend_from_slice(b"c\0");
                out.extend_from_slice(n.as_bytes());
            }
            RegistryKey::Broker(c, id) => put_broker(out, b"b\0", c, *id),
            RegistryKey::Tenant(n) => {
                out.extend_from_slice(b"t\0");
                out.extend_from_slice(n.as_bytes());
            }
            RegistryKey::Policy(c, t) => {
                out.extend_from_slice(b"p\0");
                out.extend_from_slice(c.as_bytes());
                out.push(0);
                out.extend_from_slice(t.as_bytes());
            }
            RegistryKey::Id(u) => {
                out.extend_from_slice(b"i\0");
                out.extend_from_slice(&u.0);
            }
            RegistryKey::Counters => out.extend_from_slice(b"n\0"),
        }
    }
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
    pub fn create_tenant(
        &mut self,
        t: &Tenant,
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
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
        touched.push(RegistryKey::Tenant(t.name.clone()).into());
        CommandResponse::Tenant(t)
    }

    pub fn delete_tenant(&mut self, name: &str, touched: &mut Vec<Key>) -> CommandResponse {
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
        touched.push(RegistryKey::Tenant(name.to_string()).into());
        CommandResponse::Done
    }

    pub fn set_policy(&mut self, p: &PlacementPolicy, touched: &mut Vec<Key>) -> CommandResponse {
        if !self.clusters.contains_key(&p.cluster) {
            return not_found(format!("cluster {:?}", p.cluster));
        }
        let key = (p.cluster.clone(), p.topic.clone().unwrap_or_default());
        self.policies.insert(key.clone(), p.clone());
        touched.push(RegistryKey::Policy(key.0, key.1).into());
        CommandResponse::Policy(p.clone())
    }

    pub fn remove_policy(
        &mut self,
        cluster: &str,
        topic: Option<&str>,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        let key = (cluster.to_string(), topic.unwrap_or_default().to_string());
        if self.policies.remove(&key).is_none() {
            return not_found(match topic {
                Some(t) => format!("placement policy of topic {t:?} in cluster {cluster:?}"),
                None => format!("placement policy of cluster {cluster:?}"),
            });
        }
        touched.push(RegistryKey::Policy(key.0, key.1).into());
        CommandResponse::Done
    }

    /// Issues `ids` (all or none): refused if any is reserved or was ever
    /// issued before, of any kind.
    pub fn allocate_ids(
        &mut self,
        kind: IdKind,
        ids: &[KafkaUuid],
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
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
            self.issued.insert(*id, kind);
            touched.push(RegistryKey::Id(*id).into());
        }
        CommandResponse::Ids(ids.to_vec())
    }

    /// The current value of `k`, encoded; `None` if it no longer exists.
    pub fn value_bytes(&self, k: &RegistryKey) -> Option<Vec<u8>> {
        match k {
            RegistryKey::Cluster(n) => self
                .clusters
                .get(n)
                .map(|c| pb::Cluster::from(c.clone()).encode_to_vec()),
            RegistryKey::Broker(c, id) => self
                .brokers
                .get(&(c.clone(), *id))
                .map(|b| pb::Broker::from(b.clone()).encode_to_vec()),
            RegistryKey::Tenant(n) => self
                .tenants
                .get(n)
                .map(|t| pb::Tenant::from(t.clone()).encode_to_vec()),
            RegistryKey::Policy(c, t) => self
                .policies
                .get(&(c.clone(), t.clone()))
                .map(|p| pb::PlacementPolicy::from(p.clone()).encode_to_vec()),
            RegistryKey::Id(u) => self.issued.get(u).map(|k| {
                pb::IssuedIds {
                    kind: pb::IdKind::from(*k) as i32,
                    ids: vec![],
                }
                .encode_to_vec()
            }),
            RegistryKey::Counters => Some(self.next_cluster_id.to_be_bytes().to_vec()),
        }
    }

    /// Loads one stored pair of this domain.
    pub fn load_kv(&mut self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let rest = KeyReader::new(k);
        match &k[..2] {
            b"c\0" => {
                let c: pb::Cluster = decode("cluster", v)?;
                self.clusters.insert(c.name.clone(), c.into());
            }
            b"b\0" => {
                let b: pb::Broker = decode("broker", v)?;
                self.brokers
                    .insert((b.cluster.clone(), b.broker_id), b.into());
            }
            b"t\0" => {
                let t: pb::Tenant = decode("tenant", v)?;
                self.tenants.insert(t.name.clone(), t.into());
            }
            b"p\0" => {
                let p: pb::PlacementPolicy = decode("placement policy", v)?;
                self.policies
                    .insert((p.cluster.clone(), p.topic.clone()), p.into());
            }
            b"i\0" => {
                let ids: pb::IssuedIds = decode("issued id", v)?;
                let kind = guardian_proto::conv::id_kind_from_pb(ids.kind, "kind")
                    .map_err(|e| rest.bad(e))?;
                let id = guardian_proto::conv::uuid_from_bytes(rest.rest(), "id")
                    .map_err(|e| rest.bad(e))?;
                self.issued.insert(id, kind);
            }
            b"n\0" => {
                let b: [u8; 8] = v.try_into().map_err(|_| rest.bad("bad counter"))?;
                self.next_cluster_id = u64::from_be_bytes(b);
            }
            _ => return Err(rest.bad("not a registry key")),
        }
        Ok(())
    }

    pub fn add_cluster(
        &mut self,
        c: &Cluster,
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
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
        touched.push(RegistryKey::Cluster(c.name.clone()).into());
        touched.push(RegistryKey::Counters.into());
        CommandResponse::Cluster(c)
    }

    pub fn remove_cluster(&mut self, name: &str, touched: &mut Vec<Key>) -> CommandResponse {
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
        touched.push(RegistryKey::Cluster(name.to_string()).into());
        let keys: Vec<_> = self
            .policies
            .range((name.to_string(), String::new())..)
            .take_while(|((c, _), _)| c == name)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.policies.remove(&k);
            touched.push(RegistryKey::Policy(k.0, k.1).into());
        }
        CommandResponse::Done
    }

    pub fn add_broker(&mut self, b: &Broker, now: u64, touched: &mut Vec<Key>) -> CommandResponse {
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
        touched.push(RegistryKey::Broker(key.0, key.1).into());
        CommandResponse::Broker(b)
    }

    /// What recording a discovery would do, without doing it: refused if
    /// the cluster is unknown or was recorded as another Kafka cluster.
    /// Brokers are registered or updated (host, rack, log dirs as Kafka
    /// reports them); a dir keeps a non-zero registered capacity (the
    /// operator's override: dirs sharing a filesystem all report its
    /// size), else takes Kafka's. Brokers Kafka no longer lists are
    /// reported, never removed.
    pub fn plan_discovery(
        &self,
        cluster: &str,
        kafka_cluster_id: &str,
        found: &[DiscoveredBroker],
        now: u64,
    ) -> Result<(Option<Cluster>, DiscoveryReport), Rejection> {
        let Some(c) = self.clusters.get(cluster) else {
            return Err(Rejection::NotFound {
                what: format!("cluster {cluster:?}"),
            });
        };
        let mut report = DiscoveryReport::default();
        let mut updated_cluster = None;
        match c.kafka_cluster_id.as_deref() {
            Some(id) if id != kafka_cluster_id => {
                return Err(Rejection::FailedPrecondition {
                    reason: format!(
                        "cluster {cluster:?} is registered as Kafka cluster {id}, but its bootstrap servers answer as {kafka_cluster_id}"
                    ),
                })
            }
            Some(_) => {}
            None => {
                report
                    .changes
                    .push(format!("cluster: Kafka cluster id {kafka_cluster_id}"));
                updated_cluster = Some(Cluster {
                    kafka_cluster_id: Some(kafka_cluster_id.to_string()),
                    ..c.clone()
                });
            }
        }
        let mut after: BTreeMap<i32, Broker> = self
            .brokers_of(cluster)
            .map(|b| (b.broker_id, b.clone()))
            .collect();
        for f in found {
            let dirs_of = |old: &[LogDir]| -> Vec<LogDir> {
                f.log_dirs
                    .iter()
                    .map(|d| LogDir {
                        path: d.path.clone(),
                        capacity_bytes: old
                            .iter()
                            .find(|o| o.path == d.path && o.capacity_bytes > 0)
                            .map_or(d.capacity_bytes, |o| o.capacity_bytes),
                    })
                    .collect()
            };
            match after.get_mut(&f.broker_id) {
                None => {
                    let b = Broker {
                        cluster: cluster.to_string(),
                        broker_id: f.broker_id,
                        host: f.host.clone(),
                        rack: f.rack.clone(),
                        idc: c.idc.clone(),
                        reporter_endpoint: String::new(),
                        log_dirs: dirs_of(&[]),
                        nic_bytes_per_sec: 0,
                        cpu_cores: 0,
                        pool: None,
                        registered_at_ms: now,
                    };
                    let dirs: Vec<String> = b
                        .log_dirs
                        .iter()
                        .map(|d| format!("{}={}", d.path, d.capacity_bytes))
                        .collect();
                    report.changes.push(format!(
                        "broker {}: registered (host {}, rack {:?}, log dirs {})",
                        b.broker_id,
                        b.host,
                        b.rack,
                        dirs.join(" ")
                    ));
                    after.insert(b.broker_id, b);
                }
                Some(b) => {
                    let id = b.broker_id;
                    if b.host != f.host {
                        report
                            .changes
                            .push(format!("broker {id}: host {} -> {}", b.host, f.host));
                        b.host = f.host.clone();
                    }
                    if b.rack != f.rack {
                        report
                            .changes
                            .push(format!("broker {id}: rack {:?} -> {:?}", b.rack, f.rack));
                        b.rack = f.rack.clone();
                    }
                    let dirs = dirs_of(&b.log_dirs);
                    for d in &dirs {
                        match b.log_dirs.iter().find(|o| o.path == d.path) {
                            None => report.changes.push(format!(
                                "broker {id}: log dir {} added ({} bytes)",
                                d.path, d.capacity_bytes
                            )),
                            Some(o) if o.capacity_bytes != d.capacity_bytes => {
                                report.changes.push(format!(
                                    "broker {id}: log dir {} capacity {} -> {} bytes",
                                    d.path, o.capacity_bytes, d.capacity_bytes
                                ))
                            }
                            Some(_) => {}
                        }
                    }
                    for o in b
                        .log_dirs
                        .iter()
                        .filter(|o| !dirs.iter().any(|d| d.path == o.path))
                    {
                        report.changes.push(format!(
                            "broker {id}: log dir {} removed (Kafka does not report it)",
                            o.path
                        ));
                    }
                    b.log_dirs = dirs;
                }
            }
        }
        report.missing = after
            .keys()
            .copied()
            .filter(|id| !found.iter().any(|f| f.broker_id == *id))
            .collect();
        report.brokers = after.into_values().collect();
        Ok((updated_cluster, report))
    }

    /// Records a discovery ([`Registry::plan_discovery`]).
    pub fn discover(
        &mut self,
        cluster: &str,
        kafka_cluster_id: &str,
        found: &[DiscoveredBroker],
        now: u64,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        let (updated, report) = match self.plan_discovery(cluster, kafka_cluster_id, found, now) {
            Ok(v) => v,
            Err(r) => return CommandResponse::Rejected(r),
        };
        if let Some(c) = updated {
            touched.push(RegistryKey::Cluster(c.name.clone()).into());
            self.clusters.insert(c.name.clone(), c);
        }
        for b in &report.brokers {
            let key = (b.cluster.clone(), b.broker_id);
            if self.brokers.get(&key) != Some(b) {
                self.brokers.insert(key.clone(), b.clone());
                touched.push(RegistryKey::Broker(key.0, key.1).into());
            }
        }
        CommandResponse::Discovered(report)
    }

    /// Removes a broker and, with it, its load history.
    pub fn remove_broker(
        &mut self,
        cluster: &str,
        id: i32,
        load: &mut LoadHistories,
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
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
        load.forget(&key, touched);
        touched.push(RegistryKey::Broker(key.0, key.1).into());
        CommandResponse::Done
    }

    pub fn assign_pool(
        &mut self,
        tenant: &str,
        cluster: &str,
        ids: &[i32],
        touched: &mut Vec<Key>,
    ) -> CommandResponse {
        self.move_pool(tenant, cluster, ids, true, touched)
    }

    pub fn release_pool(
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
                    touched.push(RegistryKey::Broker(key.0, key.1).into());
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
    use crate::state::load::LoadKey;
    use crate::state::State;
    use guardian_proto::domain::LogDir;
    use guardian_proto::domain::{Command, Request, NO_SAMPLE};

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

    fn apply(r: &mut State, c: Command) -> CommandResponse {
        r.apply(&req(7, c), &mut Vec::new())
    }

    /// The stored key/values, as the store keeps them.
    type Kv = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

    /// Writes what `touched` names to `kv`, as the store does after apply.
    fn store(r: &State, touched: Vec<Key>, kv: &mut Kv) {
        for k in touched {
            match r.value_bytes(&k) {
                Some(v) => kv.insert(k.bytes(), v),
                None => kv.remove(&k.bytes()),
            };
        }
    }

    /// A registry loaded back from stored key/values (open, snapshot install).
    fn reload(kv: &Kv) -> State {
        let mut back = State::default();
        for (k, v) in kv {
            back.load_kv(k, v).unwrap();
        }
        back
    }

    /// Removes broker `a`/1; returns the keys touched.
    fn remove_broker_a1(r: &mut State) -> Vec<Key> {
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
        let mut r = State::default();
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
        let mut r = State::default();
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
        let mut r = State::default();
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
        assert_eq!(r.registry.brokers[&("a".to_string(), 2)].pool, None);
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
        let mut r = State::default();
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
        let mut r = State::default();
        assert_rejected(
            apply(&mut r, cluster("bad name")),
            |r| matches!(r, Rejection::InvalidArgument { field, .. } if field == "cluster.name"),
        );
    }

    #[test]
    fn batch_items_apply_in_order_with_their_own_results() {
        let mut r = State::default();
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
            let mut r = State::default();
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
        let mut r = State::default();
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
        let h = &r.load.brokers[&("a".to_string(), 1)];
        assert_eq!(h.bytes_in.len(), 60);
        assert_eq!(h.bytes_in[0], (10, 100));
        assert_eq!(h.disks["/data/1"].write.last(), Some(&(69, 69)));
        assert!(!r.load.brokers.contains_key(&("a".to_string(), 9)));
        assert_eq!(reload(&kv).load.brokers, r.load.brokers);
        // Removing the broker removes its history.
        let touched = remove_broker_a1(&mut r);
        assert!(r.load.brokers.is_empty());
        assert!(touched.contains(&Key::Load(LoadKey::Broker("a".into(), 1))));
    }

    #[test]
    fn partition_history_keeps_twelve_slots_follows_the_list_and_reloads() {
        use guardian_proto::domain::{PartitionList, PartitionLoadSample};
        let mut r = State::default();
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
        let mut record = |r: &mut State, slot, partitions, bytes_in: Vec<u32>| {
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
        assert!(!r.load.partitions.contains_key(&key));
        record(&mut r, 0, Some(list(&[("t", 0), ("t", 1)])), vec![10, 20]);
        for slot in 1..15u64 {
            record(&mut r, slot, None, vec![10 + slot as u32, NO_SAMPLE]);
        }
        let h = &r.load.partitions[&key];
        assert_eq!(h.slots.len(), 12);
        assert_eq!(h.slots[0], (3, vec![13, NO_SAMPLE]));
        // t-1 leaves, u-0 arrives: held slots follow the partitions.
        record(&mut r, 15, Some(list(&[("u", 0), ("t", 0)])), vec![7, 25]);
        let h = &r.load.partitions[&key];
        assert_eq!(h.slots[0], (4, vec![NO_SAMPLE, 14]));
        assert_eq!(h.slots.last(), Some(&(15, vec![7, 25])));
        // Wrong length without a list: not applied, nothing changes.
        let before = h.clone();
        record(&mut r, 16, None, vec![1]);
        assert_eq!(r.load.partitions[&key], before);
        // A late slot is slotted in order; one older than the hour is not.
        record(&mut r, 5, None, vec![1, 1]);
        assert_eq!(r.load.partitions[&key].slots[1], (5, vec![1, 1]));
        record(&mut r, 3, None, vec![1, 1]);
        assert_eq!(r.load.partitions[&key].slots[0].0, 4);
        assert_eq!(r.load.partitions[&key].slots.len(), 12);
        // Stored: the list and one key per slot held.
        assert_eq!(kv.keys().filter(|k| k.starts_with(b"q")).count(), 13);
        assert_eq!(reload(&kv).load.partitions, r.load.partitions);
        let touched = remove_broker_a1(&mut r);
        assert!(r.load.partitions.is_empty());
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
