//! [`KafkaModel`]: an in-memory model of Kafka's admin semantics, for unit
//! tests of what Guardian decides and, later, for the simulator to serve
//! over the wire. Not a stub: it keeps what Kafka keeps and answers with
//! the error codes Kafka answers, and the conformance suite in
//! `guardian-tests` runs the same assertions on it and on real brokers.
//!
//! What it models:
//! - topics with ids, partitions, replicas, ISR and leaders; CreateTopics
//!   (counts or a manual assignment, configs validated), CreatePartitions,
//!   DeleteTopics;
//! - reassignments in stages: the target and the leaving replicas both
//!   listed, `adding`/`removing` until every new replica has copied the
//!   partition, then the target alone (leader moved if it left); cancel
//!   with a `None` target; KIP-860's replication-factor guard;
//! - log dirs: a move between dirs of a broker is a `-future` copy in the
//!   destination until it catches up; a move for a replica the broker does
//!   not hold records a preference (in memory, like Kafka) used when the
//!   replica is created;
//! - throttles that slow copies: `follower.replication.throttled.rate` /
//!   `leader.replication.throttled.rate` for replicas listed in the topic's
//!   throttled-replicas configs, `replica.alter.log.dirs.io.max.bytes.per.second`
//!   for `-future` copies; config layers (topic, per broker, broker
//!   default, static, default) with sources and synonyms;
//! - client quotas with Kafka's precedence ([`KafkaModel::effective_quota`]);
//! - routing errors: a BROKER config asked of another broker answers
//!   `INVALID_REQUEST` "Unexpected broker id", a stopped broker refuses
//!   connections;
//! - offsets (log start, log end) and groups with committed offsets.
//!
//! Time: copies advance with the wall clock, or only through
//! [`KafkaModel::advance`] with [`KafkaModel::manual_clock`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::KafkaAdmin;
use crate::error::KafkaError;
use crate::metadata::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
use crate::types::*;

/// Unthrottled copy speed of a replica (bytes per second).
const COPY_BYTES_PER_SEC: f64 = 100.0 * 1024.0 * 1024.0;
const UNLIMITED: &str = "9223372036854775807";

/// Broker configs the model knows, with Kafka's defaults.
const BROKER_KEYS: &[(&str, &str)] = &[
    ("leader.replication.throttled.rate", UNLIMITED),
    ("follower.replication.throttled.rate", UNLIMITED),
    ("replica.alter.log.dirs.io.max.bytes.per.second", UNLIMITED),
    ("log.retention.ms", "604800000"),
    ("log.segment.bytes", "1073741824"),
    ("min.insync.replicas", "1"),
];

/// Topic configs the model knows: (topic key, broker synonym, default).
const TOPIC_KEYS: &[(&str, &str, &str)] = &[
    ("retention.ms", "log.retention.ms", "604800000"),
    ("segment.bytes", "log.segment.bytes", "1073741824"),
    ("segment.ms", "log.roll.ms", "604800000"),
    ("min.insync.replicas", "min.insync.replicas", "1"),
    ("cleanup.policy", "log.cleanup.policy", "delete"),
    ("leader.replication.throttled.replicas", "", ""),
    ("follower.replication.throttled.replicas", "", ""),
];

const QUOTA_KEYS: &[&str] = &[
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
    "connection_creation_rate",
];

/// A broker of the model: id, listener, rack and its log dirs
/// (path, total bytes).
#[derive(Debug, Clone)]
pub struct ModelBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub dirs: Vec<(String, i64)>,
}

impl ModelBroker {
    /// Broker `id` on 127.0.0.1 with two 1 TiB dirs `/data/<id>/d0|d1`.
    pub fn new(id: i32, rack: &str) -> Self {
        ModelBroker {
            id,
            host: "127.0.0.1".into(),
            port: 9092 + id,
            rack: Some(rack.into()),
            dirs: (0..2)
                .map(|d| (format!("/data/{id}/d{d}"), 1i64 << 40))
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
struct Broker {
    spec: ModelBroker,
    alive: bool,
    statics: BTreeMap<String, String>,
    dynamic: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Replica {
    dir: String,
    /// Bytes copied so far (== the partition's size once caught up).
    copied: f64,
    /// A move to another dir of the broker: (dir, bytes copied).
    future: Option<(String, f64)>,
}

#[derive(Debug, Clone)]
struct Partition {
    replicas: Vec<i32>,
    leader: i32,
    epoch: i32,
    isr: Vec<i32>,
    log_start: i64,
    log_end: i64,
    size: f64,
    placed: BTreeMap<i32, Replica>,
    /// (target, original) while a reassignment runs.
    reassigning: Option<(Vec<i32>, Vec<i32>)>,
}

#[derive(Debug, Clone)]
struct Topic {
    id: [u8; 16],
    configs: BTreeMap<String, String>,
    partitions: Vec<Partition>,
}

#[derive(Debug, Default)]
struct Group {
    committed: BTreeMap<TopicPartition, i64>,
    members: Vec<GroupMember>,
}

#[derive(Debug)]
struct State {
    cluster_id: String,
    brokers: BTreeMap<i32, Broker>,
    topics: BTreeMap<String, Topic>,
    broker_default: BTreeMap<String, String>,
    quotas: BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
    groups: BTreeMap<String, Group>,
    preferred_dirs: BTreeMap<(i32, TopicPartition), String>,
    /// Offline log dirs: (broker, path).
    failed_dirs: BTreeSet<(i32, String)>,
    /// Model seconds per wall-clock second (copies progress this much
    /// faster; the simulator's speed factor).
    speed: f64,
    next_id: u64,
    /// `None`: manual clock.
    last: Option<Instant>,
}

/// The model; cheap to share behind an `Arc`.
pub struct KafkaModel {
    state: Mutex<State>,
}

fn err(api: &'static str, resource: impl Into<String>, code: i16) -> KafkaError {
    KafkaError::check(api, resource, code).expect_err("a non-zero code")
}

fn err_msg(
    api: &'static str,
    resource: impl std::fmt::Display,
    code: i16,
    msg: &str,
) -> KafkaError {
    KafkaError::check(api, format!("{resource} ({msg})"), code).expect_err("a non-zero code")
}

impl KafkaModel {
    /// A cluster of `brokers`, copies advancing with the wall clock.
    pub fn new(cluster_id: &str, brokers: Vec<ModelBroker>) -> Self {
        let brokers = brokers
            .into_iter()
            .map(|b| {
                (
                    b.id,
                    Broker {
                        spec: b,
                        alive: true,
                        statics: BTreeMap::new(),
                        dynamic: BTreeMap::new(),
                    },
                )
            })
            .collect();
        KafkaModel {
            state: Mutex::new(State {
                cluster_id: cluster_id.to_string(),
                brokers,
                topics: BTreeMap::new(),
                broker_default: BTreeMap::new(),
                quotas: BTreeMap::new(),
                groups: BTreeMap::new(),
                preferred_dirs: BTreeMap::new(),
                failed_dirs: BTreeSet::new(),
                speed: 1.0,
                next_id: 1,
                last: Some(Instant::now()),
            }),
        }
    }

    /// Copies advance only through [`KafkaModel::advance`].
    pub fn manual_clock(self) -> Self {
        self.lock().last = None;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = s.last {
            let now = Instant::now();
            let d = (now - last).mul_f64(s.speed);
            s.step(d);
            s.last = Some(now);
        }
        s
    }

    /// Copies progress `speed` times faster than the wall clock.
    pub fn with_speed(self, speed: f64) -> Self {
        self.lock().speed = speed.max(0.0);
        self
    }

    /// Takes a log dir of a broker offline (`failed`) or back: an offline
    /// dir answers DescribeLogDirs with `KAFKA_STORAGE_ERROR` and no
    /// replicas, and its replicas leave the ISR (leadership moves) and
    /// copy nothing until it is back.
    pub fn set_dir_failed(&self, broker: i32, dir: &str, failed: bool) {
        let mut s = self.lock();
        let key = (broker, dir.to_string());
        if !failed {
            s.failed_dirs.remove(&key);
            return;
        }
        s.failed_dirs.insert(key);
        let alive: BTreeSet<i32> = s.alive_ids().into_iter().collect();
        for t in s.topics.values_mut() {
            for p in &mut t.partitions {
                if p.placed.get(&broker).is_none_or(|r| r.dir != dir) {
                    continue;
                }
                p.isr.retain(|b| *b != broker);
                if p.leader == broker {
                    p.leader = p
                        .isr
                        .iter()
                        .copied()
                        .find(|b| alive.contains(b))
                        .unwrap_or(-1);
                    p.epoch += 1;
                }
            }
        }
    }

    /// Moves the model's time forward by `d` (copies progress).
    pub fn advance(&self, d: Duration) {
        self.lock().step(d);
    }

    /// A static (`server.properties`) config of a broker.
    pub fn set_static(&self, broker: i32, key: &str, value: &str) {
        if let Some(b) = self.lock().brokers.get_mut(&broker) {
            b.statics.insert(key.into(), value.into());
        }
    }

    /// Stops (`false`) or restarts a broker: a stopped broker leaves every
    /// ISR, gives up leadership and refuses connections.
    pub fn set_alive(&self, broker: i32, alive: bool) {
        let mut s = self.lock();
        if let Some(b) = s.brokers.get_mut(&broker) {
            b.alive = alive;
        }
        let live: BTreeSet<i32> = s
            .brokers
            .values()
            .filter(|b| b.alive)
            .map(|b| b.spec.id)
            .collect();
        for t in s.topics.values_mut() {
            for p in &mut t.partitions {
                if alive {
                    if p.replicas.contains(&broker) && !p.isr.contains(&broker) {
                        p.isr.push(broker);
                    }
                    if p.leader < 0 {
                        p.leader = broker;
                        p.epoch += 1;
                    }
                } else {
                    p.isr.retain(|b| *b != broker);
                    if p.leader == broker {
                        p.leader = p
                            .isr
                            .iter()
                            .copied()
                            .find(|b| live.contains(b))
                            .unwrap_or(-1);
                        p.epoch += 1;
                    }
                }
            }
        }
    }

    /// Appends `records` records of `bytes` bytes in all to a partition.
    pub fn produce(&self, tp: &TopicPartition, records: i64, bytes: i64) -> Result<(), KafkaError> {
        let mut s = self.lock();
        let p = s.partition_mut("Produce", tp)?;
        p.log_end += records;
        p.size += bytes as f64;
        let size = p.size;
        let isr = p.isr.clone();
        for (b, r) in p.placed.iter_mut() {
            if isr.contains(b) {
                r.copied = size;
            }
        }
        Ok(())
    }

    /// A group commits `offset` on a partition.
    pub fn commit(&self, group: &str, tp: &TopicPartition, offset: i64) {
        self.lock()
            .groups
            .entry(group.to_string())
            .or_default()
            .committed
            .insert(tp.clone(), offset);
    }

    /// The quota Kafka applies to `(user, client_id)` for `key`, and the
    /// entity it comes from, in Kafka's precedence order: user+client,
    /// user+default client, user, default user+client, default
    /// user+default client, default user, client, default client.
    pub fn effective_quota(
        &self,
        user: &str,
        client_id: &str,
        key: &str,
    ) -> Option<(QuotaEntity, f64)> {
        let s = self.lock();
        let u = |n: Option<&str>| ("user".to_string(), n.map(String::from));
        let c = |n: Option<&str>| ("client-id".to_string(), n.map(String::from));
        let order = [
            vec![u(Some(user)), c(Some(client_id))],
            vec![u(Some(user)), c(None)],
            vec![u(Some(user))],
            vec![u(None), c(Some(client_id))],
            vec![u(None), c(None)],
            vec![u(None)],
            vec![c(Some(client_id))],
            vec![c(None)],
        ];
        order.into_iter().find_map(|e| {
            let e = QuotaEntity(e).normalized();
            s.quotas
                .get(&e)
                .and_then(|v| v.get(key))
                .map(|v| (e.clone(), *v))
        })
    }

    /// DescribeLogDirs as broker `receiving` answers it: its own dirs only.
    pub fn describe_log_dirs_on(&self, receiving: i32) -> Result<Vec<LogDirInfo>, KafkaError> {
        let s = self.lock();
        let b = s.live("DescribeLogDirs", receiving)?;
        let mut dirs: Vec<LogDirInfo> = b
            .spec
            .dirs
            .iter()
            .map(|(path, total)| {
                let failed = s.failed_dirs.contains(&(receiving, path.clone()));
                LogDirInfo {
                    path: path.clone(),
                    error: failed.then(|| "KAFKA_STORAGE_ERROR".to_string()),
                    total_bytes: (!failed).then_some(*total),
                    usable_bytes: (!failed).then_some(*total),
                    replicas: Vec::new(),
                }
            })
            .collect();
        for (name, t) in &s.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let Some(r) = p.placed.get(&receiving) else {
                    continue;
                };
                // Kafka's offset lag: a current log's high watermark less
                // its log end, never below 0 (so 0 for leader and follower
                // alike: a follower's high watermark never passes its log
                // end); a `-future` log's lag behind the current one.
                let lag = |copied: f64, future: bool| {
                    if !future || p.size <= 0.0 {
                        0
                    } else {
                        ((p.log_end as f64) * (1.0 - copied / p.size))
                            .round()
                            .max(0.0) as i64
                    }
                };
                let mut push = |dir: &str, copied: f64, future: bool| {
                    if let Some(d) = dirs.iter_mut().find(|d| d.path == dir && d.error.is_none()) {
                        d.replicas.push(ReplicaInfo {
                            topic: name.clone(),
                            partition: i as i32,
                            size_bytes: copied as i64,
                            offset_lag: lag(copied, future),
                            is_future: future,
                        });
                        d.usable_bytes = d.usable_bytes.map(|u| u - copied as i64);
                    }
                };
                push(&r.dir, r.copied, false);
                if let Some((fd, fc)) = &r.future {
                    push(fd, *fc, true);
                }
            }
        }
        Ok(dirs)
    }

    /// DescribeConfigs as broker `receiving` answers it: a BROKER resource
    /// naming another broker is `INVALID_REQUEST`, as in Kafka.
    pub fn describe_configs_on(
        &self,
        receiving: i32,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<Vec<ConfigEntry>, KafkaError> {
        let s = self.lock();
        s.live("DescribeConfigs", receiving)?;
        s.check_receiver("DescribeConfigs", receiving, resource)?;
        s.describe_configs(resource, keys)
    }

    /// IncrementalAlterConfigs as broker `receiving` answers it.
    pub fn alter_configs_on(
        &self,
        receiving: i32,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<(), KafkaError> {
        let mut s = self.lock();
        s.live("IncrementalAlterConfigs", receiving)?;
        s.check_receiver("IncrementalAlterConfigs", receiving, resource)?;
        s.alter_configs(resource, ops)
    }

    /// CreateTopics with `validate_only`: every check of a real create,
    /// nothing created.
    pub fn create_topics_validate(
        &self,
        topics: &[NewTopic],
    ) -> Result<PerItem<String, ()>, KafkaError> {
        self.any_broker()?;
        let mut s = self.lock();
        let kept = (s.topics.clone(), s.next_id, s.preferred_dirs.clone());
        let out = s.create_topics(topics);
        (s.topics, s.next_id, s.preferred_dirs) = kept;
        Ok(out)
    }

    /// Whether broker `id` is running (a stopped one refuses connections).
    pub fn is_alive(&self, id: i32) -> bool {
        self.lock().brokers.get(&id).is_some_and(|b| b.alive)
    }

    /// The live brokers, by id.
    pub fn alive_brokers(&self) -> Vec<i32> {
        self.lock().alive_ids()
    }

    /// A live broker to send "any broker" calls to.
    fn any_broker(&self) -> Result<i32, KafkaError> {
        let s = self.lock();
        s.brokers
            .values()
            .find(|b| b.alive)
            .map(|b| b.spec.id)
            .ok_or_else(|| KafkaError::Connect {
                addr: "(model)".into(),
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            })
    }
}

impl State {
    fn live(&self, api: &'static str, id: i32) -> Result<&Broker, KafkaError> {
        match self.brokers.get(&id) {
            None => Err(KafkaError::UnknownBroker { id }),
            Some(b) if !b.alive => Err(KafkaError::Connect {
                addr: format!("{}:{} ({api})", b.spec.host, b.spec.port),
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            }),
            Some(b) => Ok(b),
        }
    }

    fn check_receiver(
        &self,
        api: &'static str,
        receiving: i32,
        resource: &ConfigResource,
    ) -> Result<(), KafkaError> {
        match resource {
            ConfigResource::Broker(id) if *id != receiving => Err(err_msg(
                api,
                resource,
                42,
                &format!("Unexpected broker id, expected {receiving}, but received {id}"),
            )),
            _ => Ok(()),
        }
    }

    fn partition_mut(
        &mut self,
        api: &'static str,
        tp: &TopicPartition,
    ) -> Result<&mut Partition, KafkaError> {
        self.topics
            .get_mut(&tp.topic)
            .and_then(|t| t.partitions.get_mut(tp.partition.max(0) as usize))
            .filter(|_| tp.partition >= 0)
            .ok_or_else(|| err(api, tp.to_string(), 3))
    }

    /// CreateTopics on the state: one result per topic.
    fn create_topics(&mut self, topics: &[NewTopic]) -> PerItem<String, ()> {
        let s = self;
        let api = "CreateTopics";
        let mut out = Vec::new();
        for nt in topics {
            let name = &nt.name;
            let res = (|| {
                let r = format!("topic {name:?}");
                if !valid_topic_name(name) {
                    return Err(err(api, r, 17));
                }
                if s.topics.contains_key(name) {
                    return Err(err_msg(
                        api,
                        &r,
                        36,
                        &format!("Topic '{name}' already exists."),
                    ));
                }
                let alive = s.alive_ids();
                let assignment: Vec<Vec<i32>> = if nt.assignment.is_empty() {
                    if nt.partitions <= 0 {
                        return Err(err(api, r, 37));
                    }
                    let rf = nt.replication_factor as usize;
                    if rf == 0 || rf > alive.len() {
                        return Err(err(api, r, 38));
                    }
                    let start = name.bytes().map(usize::from).sum::<usize>();
                    (0..nt.partitions as usize)
                        .map(|p| {
                            (0..rf)
                                .map(|j| alive[(start + p + j) % alive.len()])
                                .collect()
                        })
                        .collect()
                } else {
                    for a in &nt.assignment {
                        let set: BTreeSet<i32> = a.iter().copied().collect();
                        if a.is_empty()
                            || set.len() != a.len()
                            || a.iter().any(|b| !s.brokers.contains_key(b))
                        {
                            return Err(err(api, r, 39));
                        }
                    }
                    nt.assignment.clone()
                };
                let known: Vec<&str> = TOPIC_KEYS.iter().map(|k| k.0).collect();
                for (k, v) in &nt.configs {
                    if !known.contains(&k.as_str()) {
                        return Err(err_msg(
                            api,
                            &r,
                            40,
                            &format!("Unknown topic config name: {k}"),
                        ));
                    }
                    if k.ends_with(".ms") && v.parse::<i64>().is_err() {
                        return Err(err_msg(
                            api,
                            &r,
                            40,
                            &format!("invalid value {v:?} for {k}"),
                        ));
                    }
                }
                let id = {
                    let mut b = [0u8; 16];
                    b[..8].copy_from_slice(&s.next_id.to_be_bytes());
                    b[8..].copy_from_slice(&0x6775_6172_6469_616e_u64.to_be_bytes());
                    s.next_id += 1;
                    b
                };
                let mut partitions = Vec::new();
                for (i, replicas) in assignment.iter().enumerate() {
                    let tp = TopicPartition::new(name.clone(), i as i32);
                    let mut placed = BTreeMap::new();
                    for b in replicas {
                        let dir = s.place_dir(*b, &tp);
                        placed.insert(
                            *b,
                            Replica {
                                dir,
                                copied: 0.0,
                                future: None,
                            },
                        );
                    }
                    let isr: Vec<i32> = replicas
                        .iter()
                        .copied()
                        .filter(|b| alive.contains(b))
                        .collect();
                    partitions.push(Partition {
                        leader: isr.first().copied().unwrap_or(-1),
                        replicas: replicas.clone(),
                        epoch: 0,
                        isr,
                        log_start: 0,
                        log_end: 0,
                        size: 0.0,
                        placed,
                        reassigning: None,
                    });
                }
                s.topics.insert(
                    name.clone(),
                    Topic {
                        id,
                        configs: nt.configs.iter().cloned().collect(),
                        partitions,
                    },
                );
                Ok(())
            })();
            out.push((name.clone(), res));
        }
        out
    }

    fn alive_ids(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| b.alive)
            .map(|b| b.spec.id)
            .collect()
    }

    /// A broker config's effective value: per broker, default, static,
    /// built-in.
    fn broker_value(&self, broker: i32, key: &str) -> Option<String> {
        let b = self.brokers.get(&broker)?;
        b.dynamic
            .get(key)
            .or_else(|| self.broker_default.get(key))
            .or_else(|| b.statics.get(key))
            .cloned()
            .or_else(|| {
                BROKER_KEYS
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            })
    }

    fn rate(&self, broker: i32, key: &str) -> f64 {
        self.broker_value(broker, key)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::MAX)
    }

    /// Whether `partition:broker` is in a throttled-replicas list.
    fn throttled(list: Option<&String>, partition: usize, broker: i32) -> bool {
        list.is_some_and(|l| {
            l.trim() == "*"
                || l.split(',')
                    .any(|e| e.trim() == format!("{partition}:{broker}"))
        })
    }

    /// Moves copies forward by `d` and finishes what has caught up.
    fn step(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut names: Vec<String> = self.topics.keys().cloned().collect();
        names.sort();
        let alive = self.alive_ids();
        let failed = self.failed_dirs.clone();
        let is_failed =
            |b: i32, dir: &str| !failed.is_empty() && failed.contains(&(b, dir.to_string()));
        for name in names {
            let n = self.topics[&name].partitions.len();
            for i in 0..n {
                // Settled partitions (no move, no copy behind, every live
                // replica in sync) have nothing to step: skipped cheaply,
                // so a large model costs little per call.
                {
                    let p = &self.topics[&name].partitions[i];
                    let settled = p.reassigning.is_none()
                        && p.placed.iter().all(|(b, r)| {
                            r.future.is_none()
                                && (!alive.contains(b)
                                    || is_failed(*b, &r.dir)
                                    || (r.copied >= p.size && p.isr.contains(b)))
                        });
                    if settled {
                        continue;
                    }
                }
                // Rates first (immutable borrow), then progress.
                let (rates, future_rates) = {
                    let t = &self.topics[&name];
                    let p = &t.partitions[i];
                    let leader_list = t.configs.get("leader.replication.throttled.replicas");
                    let follower_list = t.configs.get("follower.replication.throttled.replicas");
                    let mut rates = BTreeMap::new();
                    let mut future_rates = BTreeMap::new();
                    for (b, r) in &p.placed {
                        let mut rate = COPY_BYTES_PER_SEC;
                        if Self::throttled(follower_list, i, *b) {
                            rate = rate.min(self.rate(*b, "follower.replication.throttled.rate"));
                        }
                        if p.leader >= 0 && Self::throttled(leader_list, i, p.leader) {
                            rate =
                                rate.min(self.rate(p.leader, "leader.replication.throttled.rate"));
                        }
                        rates.insert(*b, rate);
                        if r.future.is_some() {
                            future_rates.insert(
                                *b,
                                COPY_BYTES_PER_SEC.min(
                                    self.rate(*b, "replica.alter.log.dirs.io.max.bytes.per.second"),
                                ),
                            );
                        }
                    }
                    (rates, future_rates)
                };
                let t = self.topics.get_mut(&name).expect("listed");
                let p = &mut t.partitions[i];
                let size = p.size;
                let leader_alive = p.leader >= 0;
                for (b, r) in p.placed.iter_mut() {
                    if !alive.contains(b) || failed.contains(&(*b, r.dir.clone())) {
                        continue;
                    }
                    if r.copied < size && leader_alive {
                        r.copied = (r.copied + rates[b] * secs).min(size);
                    }
                    if let Some((dir, c)) = &mut r.future {
                        *c = (*c + future_rates[b] * secs).min(size);
                        if *c >= size {
                            r.dir = dir.clone();
                            r.future = None;
                        }
                    }
                }
                for (b, r) in &p.placed {
                    // Every placed replica belongs (the target's and the
                    // leaving ones while a reassignment runs).
                    if r.copied >= size
                        && alive.contains(b)
                        && !failed.contains(&(*b, r.dir.clone()))
                        && !p.isr.contains(b)
                    {
                        p.isr.push(*b);
                    }
                }
                if let Some((target, _)) = p.reassigning.clone() {
                    if target.iter().all(|b| p.isr.contains(b)) {
                        p.replicas = target.clone();
                        p.isr.retain(|b| target.contains(b));
                        p.placed.retain(|b, _| target.contains(b));
                        if !target.contains(&p.leader) {
                            p.leader = target
                                .iter()
                                .copied()
                                .find(|b| p.isr.contains(b))
                                .unwrap_or(-1);
                            p.epoch += 1;
                        }
                        p.reassigning = None;
                    }
                }
            }
        }
    }

    /// The dir a new replica of `tp` on `broker` goes to: the recorded
    /// preference, else the dir holding the fewest replicas.
    fn place_dir(&mut self, broker: i32, tp: &TopicPartition) -> String {
        if let Some(d) = self.preferred_dirs.remove(&(broker, tp.clone())) {
            return d;
        }
        let dirs: Vec<String> = self.brokers[&broker]
            .spec
            .dirs
            .iter()
            .map(|d| d.0.clone())
            .collect();
        let count = |d: &str| {
            self.topics
                .values()
                .flat_map(|t| t.partitions.iter())
                .filter(|p| p.placed.get(&broker).is_some_and(|r| r.dir == d))
                .count()
        };
        dirs.iter()
            .min_by_key(|d| count(d))
            .cloned()
            .unwrap_or_default()
    }

    fn describe_configs(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<Vec<ConfigEntry>, KafkaError> {
        let api = "DescribeConfigs";
        let wanted = |k: &str| keys.is_empty() || keys.contains(&k);
        let mut out = Vec::new();
        match resource {
            ConfigResource::Topic(name) => {
                let t = self
                    .topics
                    .get(name)
                    .ok_or_else(|| err(api, resource.to_string(), 3))?;
                for (k, broker_key, default) in TOPIC_KEYS.iter().filter(|(k, ..)| wanted(k)) {
                    let mut synonyms = Vec::new();
                    if let Some(v) = t.configs.get(*k) {
                        synonyms.push(ConfigSynonym {
                            name: k.to_string(),
                            value: Some(v.clone()),
                            source: ConfigSource::DynamicTopic,
                        });
                    }
                    if !broker_key.is_empty() {
                        if let Some(v) = self.broker_default.get(*broker_key) {
                            synonyms.push(ConfigSynonym {
                                name: broker_key.to_string(),
                                value: Some(v.clone()),
                                source: ConfigSource::DynamicDefaultBroker,
                            });
                        }
                        synonyms.push(ConfigSynonym {
                            name: broker_key.to_string(),
                            value: Some(default.to_string()),
                            source: ConfigSource::Default,
                        });
                    }
                    let (value, source) = synonyms
                        .first()
                        .map(|y| (y.value.clone(), y.source))
                        .unwrap_or((Some(default.to_string()), ConfigSource::Default));
                    out.push(ConfigEntry {
                        name: k.to_string(),
                        value,
                        source,
                        read_only: false,
                        sensitive: false,
                        synonyms,
                    });
                }
            }
            ConfigResource::Broker(id) => {
                let b = self
                    .brokers
                    .get(id)
                    .ok_or_else(|| err(api, resource.to_string(), 42))?;
                for (k, default) in BROKER_KEYS.iter().filter(|(k, _)| wanted(k)) {
                    let mut synonyms = Vec::new();
                    for (layer, source) in [
                        (b.dynamic.get(*k), ConfigSource::DynamicBroker),
                        (
                            self.broker_default.get(*k),
                            ConfigSource::DynamicDefaultBroker,
                        ),
                        (b.statics.get(*k), ConfigSource::StaticBroker),
                        (Some(&default.to_string()), ConfigSource::Default),
                    ] {
                        if let Some(v) = layer {
                            synonyms.push(ConfigSynonym {
                                name: k.to_string(),
                                value: Some(v.clone()),
                                source,
                            });
                        }
                    }
                    let top = synonyms[0].clone();
                    out.push(ConfigEntry {
                        name: k.to_string(),
                        value: top.value,
                        source: top.source,
                        read_only: false,
                        sensitive: false,
                        synonyms,
                    });
                }
            }
            ConfigResource::BrokerDefault => {
                for (k, v) in self.broker_default.iter().filter(|(k, _)| wanted(k)) {
                    out.push(ConfigEntry {
                        name: k.clone(),
                        value: Some(v.clone()),
                        source: ConfigSource::DynamicDefaultBroker,
                        read_only: false,
                        sensitive: false,
                        synonyms: vec![ConfigSynonym {
                            name: k.clone(),
                            value: Some(v.clone()),
                            source: ConfigSource::DynamicDefaultBroker,
                        }],
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn alter_configs(
        &mut self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<(), KafkaError> {
        let api = "IncrementalAlterConfigs";
        let known: Vec<&str> = match resource {
            ConfigResource::Topic(_) => TOPIC_KEYS.iter().map(|k| k.0).collect(),
            _ => BROKER_KEYS.iter().map(|k| k.0).collect(),
        };
        for op in ops {
            if !known.contains(&op.name()) {
                return Err(err_msg(
                    api,
                    resource,
                    40,
                    &format!("unknown config {:?}", op.name()),
                ));
            }
            if let AlterConfigOp::Set(k, v) = op {
                let numeric = k.ends_with(".ms")
                    || k.ends_with(".bytes")
                    || k.ends_with(".rate")
                    || k.ends_with("per.second")
                    || k == "min.insync.replicas";
                if numeric && v.parse::<i64>().map_or(true, |n| n < 0) {
                    return Err(err_msg(
                        api,
                        resource,
                        40,
                        &format!("invalid value {v:?} for {k}"),
                    ));
                }
                if k.ends_with(".throttled.replicas") && !valid_throttle_list(v) {
                    return Err(err_msg(
                        api,
                        resource,
                        40,
                        &format!("invalid value {v:?} for {k}"),
                    ));
                }
            }
        }
        let map = match resource {
            ConfigResource::Topic(name) => {
                &mut self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| err(api, resource.to_string(), 3))?
                    .configs
            }
            ConfigResource::Broker(id) => {
                &mut self
                    .brokers
                    .get_mut(id)
                    .ok_or_else(|| err(api, resource.to_string(), 42))?
                    .dynamic
            }
            ConfigResource::BrokerDefault => &mut self.broker_default,
        };
        for op in ops {
            match op {
                AlterConfigOp::Set(k, v) => {
                    map.insert(k.clone(), v.clone());
                }
                AlterConfigOp::Delete(k) => {
                    map.remove(k);
                }
                AlterConfigOp::Append(k, v) => {
                    let mut items: Vec<String> = map
                        .get(k)
                        .map(|l| {
                            l.split(',')
                                .filter(|x| !x.is_empty())
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    for x in v.split(',') {
                        if !items.iter().any(|i| i == x) {
                            items.push(x.to_string());
                        }
                    }
                    map.insert(k.clone(), items.join(","));
                }
                AlterConfigOp::Subtract(k, v) => {
                    let drop: Vec<&str> = v.split(',').collect();
                    let items: Vec<String> = map
                        .get(k)
                        .map(|l| {
                            l.split(',')
                                .filter(|x| !x.is_empty() && !drop.contains(x))
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    map.insert(k.clone(), items.join(","));
                }
            }
        }
        Ok(())
    }
}

fn valid_throttle_list(v: &str) -> bool {
    v.trim() == "*"
        || v.is_empty()
        || v.split(',').all(|e| {
            e.trim()
                .split_once(':')
                .is_some_and(|(p, b)| p.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        })
}

fn valid_topic_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 249
        && n != "."
        && n != ".."
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}

impl KafkaAdmin for KafkaModel {
    async fn describe_cluster(&self) -> Result<ClusterDescription, KafkaError> {
        let controller = self.any_broker()?;
        let s = self.lock();
        Ok(ClusterDescription {
            cluster_id: s.cluster_id.clone(),
            controller_id: controller,
            brokers: s
                .brokers
                .values()
                .map(|b| DescribedBroker {
                    id: b.spec.id,
                    host: b.spec.host.clone(),
                    port: b.spec.port,
                    rack: b.spec.rack.clone(),
                    fenced: !b.alive,
                })
                .collect(),
        })
    }

    async fn metadata(&self) -> Result<ClusterMetadata, KafkaError> {
        let controller = self.any_broker()?;
        let s = self.lock();
        let alive = s.alive_ids();
        Ok(ClusterMetadata {
            cluster_id: Some(s.cluster_id.clone()),
            controller_id: controller,
            brokers: s
                .brokers
                .values()
                .filter(|b| b.alive)
                .map(|b| BrokerInfo {
                    id: b.spec.id,
                    host: b.spec.host.clone(),
                    port: b.spec.port,
                    rack: b.spec.rack.clone(),
                })
                .collect(),
            topics: s
                .topics
                .iter()
                .map(|(name, t)| TopicInfo {
                    name: name.clone(),
                    id: t.id,
                    internal: false,
                    partitions: t
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let replicas = match &p.reassigning {
                                Some((target, original)) => target
                                    .iter()
                                    .chain(original.iter().filter(|b| !target.contains(b)))
                                    .copied()
                                    .collect(),
                                None => p.replicas.clone(),
                            };
                            PartitionInfo {
                                partition: i as i32,
                                leader: p.leader,
                                leader_epoch: p.epoch,
                                offline: replicas
                                    .iter()
                                    .copied()
                                    .filter(|b| {
                                        !alive.contains(b)
                                            || p.placed.get(b).is_some_and(|r| {
                                                s.failed_dirs.contains(&(*b, r.dir.clone()))
                                            })
                                    })
                                    .collect(),
                                replicas,
                                isr: p.isr.clone(),
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    async fn create_topics(&self, topics: &[NewTopic]) -> Result<PerItem<String, ()>, KafkaError> {
        self.any_broker()?;
        Ok(self.lock().create_topics(topics))
    }

    async fn create_partitions(
        &self,
        topics: &[(String, i32)],
    ) -> Result<PerItem<String, ()>, KafkaError> {
        self.any_broker()?;
        let mut s = self.lock();
        let api = "CreatePartitions";
        let mut out = Vec::new();
        for (name, total) in topics {
            let r = format!("topic {name:?}");
            let res = match s.topics.get(name).map(|t| (t.partitions.len(), t.partitions[0].replicas.len())) {
                None => Err(err(api, r, 3)),
                Some((n, _)) if *total as usize <= n => Err(err_msg(
                    api,
                    &r,
                    37,
                    &format!("Topic currently has {n} partitions, which is higher than the requested {total}."),
                )),
                Some((n, rf)) => {
                    let alive = s.alive_ids();
                    for i in n..*total as usize {
                        let replicas: Vec<i32> = (0..rf).map(|j| alive[(i + j) % alive.len()]).collect();
                        let tp = TopicPartition::new(name.clone(), i as i32);
                        let mut placed = BTreeMap::new();
                        for b in &replicas {
                            let dir = s.place_dir(*b, &tp);
                            placed.insert(*b, Replica { dir, copied: 0.0, future: None });
                        }
                        let t = s.topics.get_mut(name).expect("exists");
                        t.partitions.push(Partition {
                            leader: replicas[0],
                            isr: replicas.clone(),
                            replicas,
                            epoch: 0,
                            log_start: 0,
                            log_end: 0,
                            size: 0.0,
                            placed,
                            reassigning: None,
                        });
                    }
                    Ok(())
                }
            };
            out.push((name.clone(), res));
        }
        Ok(out)
    }

    async fn delete_topics(&self, names: &[String]) -> Result<PerItem<String, ()>, KafkaError> {
        self.any_broker()?;
        let mut s = self.lock();
        Ok(names
            .iter()
            .map(|n| {
                let res = match s.topics.remove(n) {
                    Some(_) => Ok(()),
                    None => Err(err("DeleteTopics", format!("topic {n:?}"), 3)),
                };
                (n.clone(), res)
            })
            .collect())
    }

    async fn describe_configs(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<Vec<ConfigEntry>, KafkaError> {
        let receiving = match resource {
            ConfigResource::Broker(id) => *id,
            _ => self.any_broker()?,
        };
        self.describe_configs_on(receiving, resource, keys)
    }

    async fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<(), KafkaError> {
        let receiving = match resource {
            ConfigResource::Broker(id) => *id,
            _ => self.any_broker()?,
        };
        self.alter_configs_on(receiving, resource, ops)
    }

    async fn alter_reassignments(
        &self,
        targets: &[(TopicPartition, Option<Vec<i32>>)],
        allow_rf_change: bool,
    ) -> Result<PerItem<TopicPartition, ()>, KafkaError> {
        self.any_broker()?;
        let mut s = self.lock();
        let api = "AlterPartitionReassignments";
        let mut out = Vec::new();
        for (tp, target) in targets {
            let res = (|| {
                let known: BTreeSet<i32> = s.brokers.keys().copied().collect();
                let mut new_dirs = Vec::new();
                if let Some(target) = target {
                    let set: BTreeSet<i32> = target.iter().copied().collect();
                    if target.is_empty() || set.len() != target.len() {
                        return Err(err(api, tp.to_string(), 39));
                    }
                    if let Some(b) = target.iter().find(|b| !known.contains(b)) {
                        return Err(err_msg(
                            api,
                            tp,
                            39,
                            &format!("The manual partition assignment includes broker {b}, but no such broker is registered."),
                        ));
                    }
                    let p = s.partition_mut(api, tp)?;
                    let current = p.reassigning.as_ref().map_or(&p.replicas, |(_, o)| o).len();
                    if !allow_rf_change && current != target.len() {
                        return Err(err_msg(
                            api,
                            tp,
                            38,
                            "The replication factor is changed from the current assignment.",
                        ));
                    }
                    let joining: Vec<i32> = target
                        .iter()
                        .copied()
                        .filter(|b| !p.placed.contains_key(b))
                        .collect();
                    for b in joining {
                        new_dirs.push(b);
                    }
                }
                let dirs: Vec<(i32, String)> =
                    new_dirs.iter().map(|b| (*b, s.place_dir(*b, tp))).collect();
                let p = s.partition_mut(api, tp)?;
                match target {
                    None => {
                        let Some((target, original)) = p.reassigning.take() else {
                            return Err(err(api, tp.to_string(), 85));
                        };
                        // As KRaft does: the merged list (target, then the
                        // leaving replicas) minus the adding ones, in that
                        // order — not the original order.
                        let original: Vec<i32> = target
                            .iter()
                            .filter(|b| original.contains(b))
                            .chain(original.iter().filter(|b| !target.contains(b)))
                            .copied()
                            .collect();
                        p.placed.retain(|b, _| original.contains(b));
                        p.isr.retain(|b| original.contains(b));
                        p.replicas = original;
                        if !p.replicas.contains(&p.leader) {
                            p.leader = p
                                .replicas
                                .iter()
                                .copied()
                                .find(|b| p.isr.contains(b))
                                .unwrap_or(-1);
                            p.epoch += 1;
                        }
                    }
                    Some(target) => {
                        let original = p.reassigning.take().map_or(p.replicas.clone(), |(_, o)| o);
                        for (b, dir) in dirs {
                            p.placed.insert(
                                b,
                                Replica {
                                    dir,
                                    copied: 0.0,
                                    future: None,
                                },
                            );
                        }
                        // Replicas neither kept nor original leave at once.
                        p.placed
                            .retain(|b, _| target.contains(b) || original.contains(b));
                        p.isr.retain(|b| target.contains(b) || original.contains(b));
                        p.reassigning = Some((target.clone(), original));
                    }
                }
                Ok(())
            })();
            out.push((tp.clone(), res));
        }
        // A reorder or a target already in sync finishes at once.
        s.step(Duration::ZERO);
        Ok(out)
    }

    async fn list_reassignments(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Reassignment>, KafkaError> {
        self.any_broker()?;
        let s = self.lock();
        let mut out = Vec::new();
        for (name, t) in &s.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let tp = TopicPartition::new(name.clone(), i as i32);
                if !partitions.is_empty() && !partitions.contains(&tp) {
                    continue;
                }
                if let Some((target, original)) = &p.reassigning {
                    out.push(Reassignment {
                        topic: name.clone(),
                        partition: i as i32,
                        replicas: target
                            .iter()
                            .chain(original.iter().filter(|b| !target.contains(b)))
                            .copied()
                            .collect(),
                        adding: target
                            .iter()
                            .copied()
                            .filter(|b| !original.contains(b))
                            .collect(),
                        removing: original
                            .iter()
                            .copied()
                            .filter(|b| !target.contains(b))
                            .collect(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn describe_log_dirs(&self, broker: i32) -> Result<Vec<LogDirInfo>, KafkaError> {
        self.describe_log_dirs_on(broker)
    }

    async fn alter_replica_log_dirs(
        &self,
        broker: i32,
        moves: &[(TopicPartition, String)],
    ) -> Result<PerItem<TopicPartition, LogDirMove>, KafkaError> {
        let mut s = self.lock();
        let api = "AlterReplicaLogDirs";
        let dirs: Vec<String> = s
            .live(api, broker)?
            .spec
            .dirs
            .iter()
            .map(|d| d.0.clone())
            .collect();
        let mut out = Vec::new();
        for (tp, dir) in moves {
            let res = if !dirs.contains(dir) {
                Err(err_msg(
                    api,
                    format!("{tp} to {dir:?} on broker {broker}"),
                    57,
                    &format!("Log dir {dir} is not found in the config."),
                ))
            } else {
                let held = s
                    .topics
                    .get_mut(&tp.topic)
                    .and_then(|t| t.partitions.get_mut(tp.partition.max(0) as usize))
                    .and_then(|p| p.placed.get_mut(&broker));
                match held {
                    None => {
                        s.preferred_dirs.insert((broker, tp.clone()), dir.clone());
                        Ok(LogDirMove::PreferenceRecorded)
                    }
                    Some(r) => {
                        if r.dir == *dir {
                            r.future = None;
                        } else if r.future.as_ref().is_none_or(|(d, _)| d != dir) {
                            r.future = Some((dir.clone(), 0.0));
                        }
                        Ok(LogDirMove::MoveStarted)
                    }
                }
            };
            out.push((tp.clone(), res));
        }
        s.step(Duration::ZERO);
        Ok(out)
    }

    async fn elect_preferred_leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<PerItem<TopicPartition, Election>, KafkaError> {
        self.any_broker()?;
        let mut s = self.lock();
        let alive = s.alive_ids();
        let mut out = Vec::new();
        for tp in partitions {
            let res = s.partition_mut("ElectLeaders", tp).and_then(|p| {
                let preferred = p.replicas[0];
                if p.leader == preferred {
                    Ok(Election::NotNeeded)
                } else if !alive.contains(&preferred) || !p.isr.contains(&preferred) {
                    Err(err("ElectLeaders", tp.to_string(), 80))
                } else {
                    p.leader = preferred;
                    p.epoch += 1;
                    Ok(Election::Elected)
                }
            });
            out.push((tp.clone(), res));
        }
        Ok(out)
    }

    async fn describe_client_quotas(
        &self,
        components: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<QuotaEntry>, KafkaError> {
        self.any_broker()?;
        let s = self.lock();
        let matches = |e: &QuotaEntity| {
            components.iter().all(|(t, m)| {
                e.0.iter().any(|(et, n)| {
                    et == t
                        && match m {
                            QuotaMatch::Exact(x) => n.as_deref() == Some(x.as_str()),
                            QuotaMatch::Default => n.is_none(),
                            QuotaMatch::Any => true,
                        }
                })
            }) && (!strict || e.0.len() == components.len())
        };
        Ok(s.quotas
            .iter()
            .filter(|(e, v)| !v.is_empty() && matches(e))
            .map(|(e, v)| QuotaEntry {
                entity: e.clone(),
                values: v.iter().map(|(k, x)| (k.clone(), *x)).collect(),
            })
            .collect())
    }

    async fn alter_client_quotas(
        &self,
        changes: &[QuotaChange],
    ) -> Result<PerItem<QuotaEntity, ()>, KafkaError> {
        self.any_broker()?;
        let mut s = self.lock();
        let api = "AlterClientQuotas";
        let mut out = Vec::new();
        for (entity, ops) in changes {
            let e = entity.clone().normalized();
            let types: Vec<&str> = e.0.iter().map(|(t, _)| t.as_str()).collect();
            let res = if types.is_empty()
                || types
                    .iter()
                    .any(|t| !["user", "client-id", "ip"].contains(t))
                || (types.contains(&"ip") && types.len() > 1)
            {
                Err(err_msg(api, &e, 42, "Invalid quota entity combination"))
            } else if let Some((k, _)) = ops.iter().find(|(k, _)| !QUOTA_KEYS.contains(&k.as_str()))
            {
                Err(err_msg(api, &e, 42, &format!("Unknown quota key {k}")))
            } else {
                let q = s.quotas.entry(e.clone()).or_default();
                for (k, v) in ops {
                    match v {
                        Some(v) => q.insert(k.clone(), *v),
                        None => q.remove(k),
                    };
                }
                if q.is_empty() {
                    s.quotas.remove(&e);
                }
                Ok(())
            };
            out.push((entity.clone(), res));
        }
        Ok(out)
    }

    async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<PerItem<TopicPartition, i64>, KafkaError> {
        let mut s = self.lock();
        Ok(partitions
            .iter()
            .map(|tp| {
                let res = s.partition_mut("ListOffsets", tp).and_then(|p| {
                    if p.leader < 0 {
                        return Err(err("ListOffsets", tp.to_string(), 5));
                    }
                    Ok(match spec {
                        OffsetSpec::Earliest => p.log_start,
                        OffsetSpec::Latest => p.log_end,
                    })
                });
                (tp.clone(), res)
            })
            .collect())
    }

    async fn list_groups(&self) -> Result<Vec<GroupListing>, KafkaError> {
        let coordinator = self.any_broker()?;
        let s = self.lock();
        Ok(s.groups
            .iter()
            .map(|(g, grp)| GroupListing {
                group_id: g.clone(),
                protocol_type: "consumer".into(),
                state: if grp.members.is_empty() {
                    "Empty"
                } else {
                    "Stable"
                }
                .into(),
                coordinator,
            })
            .collect())
    }

    async fn describe_group(&self, group: &str) -> Result<GroupDescription, KafkaError> {
        self.any_broker()?;
        let s = self.lock();
        Ok(match s.groups.get(group) {
            None => GroupDescription {
                group_id: group.to_string(),
                state: "Dead".into(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
            Some(g) => GroupDescription {
                group_id: group.to_string(),
                state: if g.members.is_empty() {
                    "Empty"
                } else {
                    "Stable"
                }
                .into(),
                protocol_type: "consumer".into(),
                protocol: if g.members.is_empty() { "" } else { "range" }.into(),
                members: g.members.clone(),
            },
        })
    }

    async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<(TopicPartition, i64)>, KafkaError> {
        self.any_broker()?;
        let s = self.lock();
        Ok(s.groups
            .get(group)
            .map(|g| g.committed.iter().map(|(tp, o)| (tp.clone(), *o)).collect())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> KafkaModel {
        KafkaModel::new(
            "m",
            vec![
                ModelBroker::new(1, "r1"),
                ModelBroker::new(2, "r2"),
                ModelBroker::new(3, "r3"),
            ],
        )
        .manual_clock()
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn topic(m: &KafkaModel, name: &str, assignment: Vec<Vec<i32>>) {
        let r = block(m.create_topics(&[NewTopic {
            name: name.into(),
            assignment,
            ..Default::default()
        }]))
        .unwrap();
        r[0].1.as_ref().unwrap();
    }

    /// A follower throttle of 1 MiB/s makes a 10 MiB copy take 10 s of
    /// model time; lifting it lets the copy finish at full speed.
    #[test]
    fn a_throttle_slows_a_copy_and_the_move_finishes_when_it_catches_up() {
        let m = model();
        topic(&m, "t", vec![vec![1, 2]]);
        let tp = TopicPartition::new("t", 0);
        m.produce(&tp, 1000, 10 << 20).unwrap();
        block(m.alter_configs(
            &ConfigResource::Broker(3),
            &[AlterConfigOp::Set(
                "follower.replication.throttled.rate".into(),
                (1 << 20).to_string(),
            )],
        ))
        .unwrap();
        block(m.alter_configs(
            &ConfigResource::Topic("t".into()),
            &[AlterConfigOp::Set(
                "follower.replication.throttled.replicas".into(),
                "0:3".into(),
            )],
        ))
        .unwrap();
        block(m.alter_reassignments(&[(tp.clone(), Some(vec![2, 3]))], false)).unwrap()[0]
            .1
            .as_ref()
            .unwrap();
        m.advance(Duration::from_secs(5));
        let l = block(m.list_reassignments(&[])).unwrap();
        assert_eq!(
            (l[0].adding.clone(), l[0].removing.clone()),
            (vec![3], vec![1])
        );
        let size = |m: &KafkaModel| {
            m.describe_log_dirs_on(3)
                .unwrap()
                .iter()
                .flat_map(|d| d.replicas.clone())
                .next()
                .unwrap()
                .size_bytes
        };
        assert_eq!(size(&m), 5 << 20, "half copied after 5 s at 1 MiB/s");
        m.advance(Duration::from_secs(6));
        assert!(block(m.list_reassignments(&[])).unwrap().is_empty());
        let md = block(m.metadata()).unwrap();
        assert_eq!(md.topics[0].partitions[0].replicas, vec![2, 3]);
        assert_eq!(
            md.topics[0].partitions[0].leader, 2,
            "the leader left with broker 1"
        );
    }

    /// Cancelling a running move reverts to the merged order minus the
    /// adding replicas, as KRaft does: [2, 3, 1] - [3] = [2, 1].
    #[test]
    fn a_cancelled_move_reverts_in_krafts_order() {
        let m = model();
        topic(&m, "t", vec![vec![1, 2]]);
        let tp = TopicPartition::new("t", 0);
        m.produce(&tp, 10, 10 << 20).unwrap();
        block(m.alter_reassignments(&[(tp.clone(), Some(vec![2, 3]))], false)).unwrap();
        assert_eq!(
            block(m.list_reassignments(&[])).unwrap()[0].replicas,
            vec![2, 3, 1]
        );
        let r = block(m.alter_reassignments(&[(tp.clone(), None)], false)).unwrap();
        r[0].1.as_ref().unwrap();
        let md = block(m.metadata()).unwrap();
        assert_eq!(md.topics[0].partitions[0].replicas, vec![2, 1]);
        assert!(block(m.list_reassignments(&[])).unwrap().is_empty());
        let r = block(m.alter_reassignments(&[(tp, None)], false)).unwrap();
        assert_eq!(
            r[0].1.as_ref().unwrap_err().kafka_name(),
            Some("NoReassignmentInProgress")
        );
    }

    /// A `-future` copy is throttled by `replica.alter.log.dirs.io.max.bytes.per.second`.
    #[test]
    fn a_dir_move_is_a_future_replica_until_it_catches_up() {
        let m = model();
        topic(&m, "t", vec![vec![1]]);
        let tp = TopicPartition::new("t", 0);
        m.produce(&tp, 10, 4 << 20).unwrap();
        let home = m
            .describe_log_dirs_on(1)
            .unwrap()
            .into_iter()
            .find(|d| !d.replicas.is_empty())
            .unwrap()
            .path;
        let other = if home.ends_with("d0") {
            "/data/1/d1"
        } else {
            "/data/1/d0"
        }
        .to_string();
        block(m.alter_configs(
            &ConfigResource::Broker(1),
            &[AlterConfigOp::Set(
                "replica.alter.log.dirs.io.max.bytes.per.second".into(),
                (1 << 20).to_string(),
            )],
        ))
        .unwrap();
        let r = block(m.alter_replica_log_dirs(1, &[(tp.clone(), other.clone())])).unwrap();
        assert_eq!(r[0].1.as_ref().unwrap(), &LogDirMove::MoveStarted);
        m.advance(Duration::from_secs(2));
        let dirs = m.describe_log_dirs_on(1).unwrap();
        let f = dirs.iter().find(|d| d.path == other).unwrap().replicas[0].clone();
        assert!(f.is_future && f.size_bytes == 2 << 20, "{f:?}");
        m.advance(Duration::from_secs(3));
        let dirs = m.describe_log_dirs_on(1).unwrap();
        let holders: Vec<(String, bool)> = dirs
            .iter()
            .flat_map(|d| {
                d.replicas
                    .iter()
                    .map(move |r| (d.path.clone(), r.is_future))
            })
            .collect();
        assert_eq!(holders, vec![(other, false)]);
    }

    #[test]
    fn a_broker_config_asked_of_another_broker_is_invalid_request() {
        let m = model();
        let e = m
            .describe_configs_on(1, &ConfigResource::Broker(2), &[])
            .unwrap_err();
        assert_eq!(e.kafka_name(), Some("InvalidRequest"));
        assert!(
            e.to_string()
                .contains("Unexpected broker id, expected 1, but received 2"),
            "{e}"
        );
        m.set_alive(2, false);
        let e = block(m.describe_log_dirs(2)).unwrap_err();
        assert!(e.is_connection(), "{e}");
    }

    #[test]
    fn quotas_apply_in_kafkas_precedence() {
        let m = model();
        let set = |e: QuotaEntity, v: f64| {
            block(m.alter_client_quotas(&[(e, vec![("producer_byte_rate".into(), Some(v))])]))
                .unwrap()[0]
                .1
                .as_ref()
                .unwrap();
        };
        set(QuotaEntity(vec![("client-id".into(), None)]), 1.0);
        assert_eq!(
            m.effective_quota("u", "c", "producer_byte_rate").unwrap().1,
            1.0
        );
        set(QuotaEntity::client("c"), 2.0);
        assert_eq!(
            m.effective_quota("u", "c", "producer_byte_rate").unwrap().1,
            2.0
        );
        set(QuotaEntity(vec![("user".into(), None)]), 3.0);
        assert_eq!(
            m.effective_quota("u", "c", "producer_byte_rate").unwrap().1,
            3.0
        );
        set(QuotaEntity::user("u"), 4.0);
        assert_eq!(
            m.effective_quota("u", "c", "producer_byte_rate").unwrap().1,
            4.0
        );
        set(QuotaEntity::user_client("u", "c"), 5.0);
        let (e, v) = m.effective_quota("u", "c", "producer_byte_rate").unwrap();
        assert_eq!(
            (e, v),
            (QuotaEntity::user_client("u", "c").normalized(), 5.0)
        );
        // Another user falls back to the default user.
        assert_eq!(
            m.effective_quota("v", "x", "producer_byte_rate").unwrap().1,
            3.0
        );
    }

    /// Preferred leader not in sync: refused; the preference recorded for a
    /// replica not yet on the broker is where it lands.
    #[test]
    fn elections_and_recorded_dir_preferences() {
        let m = model();
        topic(&m, "t", vec![vec![1, 2]]);
        let tp = TopicPartition::new("t", 0);
        m.set_alive(1, false);
        assert_eq!(
            block(m.metadata()).unwrap().topics[0].partitions[0].leader,
            2
        );
        let r = block(m.elect_preferred_leaders(std::slice::from_ref(&tp))).unwrap();
        assert_eq!(
            r[0].1.as_ref().unwrap_err().kafka_name(),
            Some("PreferredLeaderNotAvailable")
        );
        m.set_alive(1, true);
        let r = block(m.elect_preferred_leaders(std::slice::from_ref(&tp))).unwrap();
        assert_eq!(r[0].1.as_ref().unwrap(), &Election::Elected);
        let r = block(m.alter_replica_log_dirs(3, &[(tp.clone(), "/data/3/d1".into())])).unwrap();
        assert_eq!(r[0].1.as_ref().unwrap(), &LogDirMove::PreferenceRecorded);
        block(m.alter_reassignments(&[(tp.clone(), Some(vec![1, 3]))], false)).unwrap();
        m.advance(Duration::from_millis(1));
        let d = m.describe_log_dirs_on(3).unwrap();
        assert_eq!(
            d.iter().find(|d| !d.replicas.is_empty()).unwrap().path,
            "/data/3/d1"
        );
    }

    /// An offline dir: DescribeLogDirs says so and lists nothing in it;
    /// its replicas leave the ISR (the leader moves) and show as offline.
    #[test]
    fn an_offline_dir_takes_its_replicas_out_of_the_isr() {
        let m = model();
        topic(&m, "t", vec![vec![1, 2]]);
        let tp = TopicPartition::new("t", 0);
        let dir = m.describe_log_dirs_on(1).unwrap();
        let dir = dir
            .iter()
            .find(|d| !d.replicas.is_empty())
            .unwrap()
            .path
            .clone();
        m.set_dir_failed(1, &dir, true);
        let d = m.describe_log_dirs_on(1).unwrap();
        let off = d.iter().find(|d| d.path == dir).unwrap();
        assert_eq!(off.error.as_deref(), Some("KAFKA_STORAGE_ERROR"));
        assert!(off.replicas.is_empty() && off.total_bytes.is_none());
        let p = block(m.metadata()).unwrap().topics[0].partitions[0].clone();
        assert_eq!(
            (p.leader, p.isr.clone(), p.offline.clone()),
            (2, vec![2], vec![1])
        );
        // Moved off broker 1, the partition is whole again.
        block(m.alter_reassignments(&[(tp, Some(vec![2, 3]))], false)).unwrap();
        m.advance(Duration::from_secs(1));
        let p = block(m.metadata()).unwrap().topics[0].partitions[0].clone();
        assert_eq!((p.replicas, p.offline), (vec![2, 3], vec![]));
    }
}
