//! [`KafkaClient`]: the real admin client. Each call goes where Kafka
//! wants it, with a cache per route that the matching error invalidates:
//!
//! | calls | sent to | cache, invalidated on |
//! |---|---|---|
//! | Metadata, DescribeCluster, CreateTopics, CreatePartitions, DeleteTopics, reassignments, elections, quotas, TOPIC and default-BROKER configs | any broker (KRaft forwards to the controller) | — |
//! | DescribeLogDirs, AlterReplicaLogDirs, BROKER configs | the named broker (else a controller, when configured) | broker addresses; connection errors, unknown broker |
//! | ListOffsets | each partition's leader | leaders; `NOT_LEADER_OR_FOLLOWER`, `UNKNOWN_LEADER_EPOCH`, `LEADER_NOT_AVAILABLE` |
//! | DescribeGroups, OffsetFetch | the group coordinator (FindCoordinator) | coordinators; `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE` |
//! | ListGroups | every broker | — |
//!
//! Every call has one deadline; retriable Kafka errors and lost
//! connections are retried with backoff inside it, and the last error is
//! returned when it passes.

mod configs;
mod groups;
mod replicas;
mod topics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::sync::Mutex;

use crate::conn::{ConnectOptions, Connection};
use crate::error::KafkaError;
use crate::types::{Features, TopicPartition};

/// Backoff between retries: doubling from 50 ms to 1 s.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Admin client of one Kafka cluster.
pub struct KafkaClient {
    bootstrap: Vec<String>,
    /// KRaft controllers (`bootstrap.controllers`, KIP-919): BROKER configs
    /// of a broker that does not answer go here.
    controllers: Vec<String>,
    deadline: Duration,
    opts: ConnectOptions,
    conns: Mutex<HashMap<String, Arc<Mutex<Connection>>>>,
    brokers: Mutex<HashMap<i32, String>>,
    leaders: Mutex<HashMap<TopicPartition, i32>>,
    coordinators: Mutex<HashMap<String, i32>>,
}

/// Where one request goes.
#[derive(Debug, Clone)]
enum Route {
    /// The bootstrap servers, then every known broker.
    Any,
    /// That broker.
    Broker(i32),
    /// That broker, then the KRaft controllers (BROKER configs).
    BrokerOrControllers(i32),
    /// The group's coordinator (FindCoordinator, cached).
    Coordinator(String),
}

impl KafkaClient {
    /// A client for the cluster reachable at `bootstrap` (`host:port` each);
    /// every call is bounded by `deadline`.
    pub fn new(bootstrap: &[String], deadline: Duration) -> Self {
        Self::with_options(bootstrap, deadline, ConnectOptions::default())
    }

    /// A client whose connections use `opts` (TLS, SASL).
    pub fn with_options(bootstrap: &[String], deadline: Duration, opts: ConnectOptions) -> Self {
        Self {
            bootstrap: bootstrap.to_vec(),
            controllers: Vec::new(),
            deadline,
            opts,
            conns: Mutex::new(HashMap::new()),
            brokers: Mutex::new(HashMap::new()),
            leaders: Mutex::new(HashMap::new()),
            coordinators: Mutex::new(HashMap::new()),
        }
    }

    /// Also knows the cluster's KRaft controllers (their listener
    /// addresses), for BROKER configs of a broker that is down.
    pub fn with_controllers(mut self, controllers: &[String]) -> Self {
        self.controllers = controllers.to_vec();
        self
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    async fn conn(&self, addr: &str, until: Instant) -> Result<Arc<Mutex<Connection>>, KafkaError> {
        if let Some(c) = self.conns.lock().await.get(addr) {
            return Ok(c.clone());
        }
        let left = remaining(addr, "connect", until)?;
        let c = Arc::new(Mutex::new(
            Connection::connect_with(addr, left, &self.opts).await?,
        ));
        self.conns.lock().await.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// One request to `addr` at the highest version both sides support
    /// within `range`, built for that version by `req`; a connection that
    /// failed is dropped so the next call reconnects.
    async fn send_to<Req: Encodable, Resp: Decodable>(
        &self,
        addr: &str,
        until: Instant,
        api: ApiKey,
        range: (i16, i16),
        req: &(impl Fn(i16) -> Req + Sync),
    ) -> Result<(i16, Resp), KafkaError> {
        let c = self.conn(addr, until).await?;
        let mut g = c.lock().await;
        g.deadline = remaining(addr, "request", until)?;
        let r = match g.version(api, range) {
            Ok(v) => g.send(api, v, &req(v)).await.map(|r| (v, r)),
            Err(e) => Err(e),
        };
        if matches!(
            r,
            Err(KafkaError::Io { .. } | KafkaError::Timeout { .. } | KafkaError::Malformed { .. })
        ) {
            self.conns.lock().await.remove(addr);
        }
        r
    }

    /// The bootstrap servers, then every other known broker.
    async fn any_addrs(&self) -> Vec<String> {
        let mut addrs = self.bootstrap.clone();
        for a in self.brokers.lock().await.values() {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        addrs
    }

    /// The addresses `route` resolves to, in the order to try them.
    async fn addrs(&self, route: &Route, until: Instant) -> Result<Vec<String>, KafkaError> {
        Ok(match route {
            Route::Any => self.any_addrs().await,
            Route::Broker(id) => vec![self.broker_addr(*id, until).await?],
            Route::BrokerOrControllers(id) => match self.broker_addr(*id, until).await {
                Ok(a) => std::iter::once(a)
                    .chain(self.controllers.iter().cloned())
                    .collect(),
                Err(_) if !self.controllers.is_empty() => self.controllers.clone(),
                Err(e) => return Err(e),
            },
            Route::Coordinator(group) => {
                let id = self.coordinator(group, until).await?;
                vec![self.broker_addr(id, until).await?]
            }
        })
    }

    /// One attempt along `route`: the first address that answers (a
    /// connection failure moves on to the next), its answer checked.
    async fn attempt<Req: Encodable, Resp: Decodable>(
        &self,
        route: &Route,
        until: Instant,
        api: ApiKey,
        range: (i16, i16),
        req: &(impl Fn(i16) -> Req + Sync),
        check: &(impl Fn(i16, &Resp) -> Result<(), KafkaError> + Sync),
    ) -> Result<(i16, Resp), KafkaError> {
        let mut last = None;
        for a in self.addrs(route, until).await? {
            match self.send_to(&a, until, api, range, req).await {
                Ok((v, r)) => {
                    check(v, &r)?;
                    return Ok((v, r));
                }
                Err(e) if e.is_connection() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::Connect {
            addr: "(no bootstrap servers)".into(),
            source: std::io::Error::other("no address to try"),
        }))
    }

    /// Sends along `route` until the answer passes `check`, fails for
    /// good, or the call's deadline passes; retriable errors (from the
    /// connection or from `check`) invalidate their cache and back off
    /// first.
    async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        route: Route,
        api: ApiKey,
        range: (i16, i16),
        req: impl Fn(i16) -> Req + Sync,
        check: impl Fn(i16, &Resp) -> Result<(), KafkaError> + Sync,
    ) -> Result<(i16, Resp), KafkaError> {
        let until = Instant::now() + self.deadline;
        let mut backoff = BACKOFF_START;
        loop {
            match self.attempt(&route, until, api, range, &req, &check).await {
                Err(e) if e.is_retriable() && Instant::now() + backoff < until => {
                    tracing::debug!(error = %e, "retrying");
                    self.invalidate(&e).await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                r => return r,
            }
        }
    }

    /// Drops the cache the error says is stale.
    async fn invalidate(&self, e: &KafkaError) {
        match e {
            KafkaError::Connect { .. } | KafkaError::Io { .. } | KafkaError::Timeout { .. } => {
                self.brokers.lock().await.clear();
                self.leaders.lock().await.clear();
                self.coordinators.lock().await.clear();
            }
            KafkaError::UnknownBroker { .. } => self.brokers.lock().await.clear(),
            KafkaError::Kafka { code, .. } => match code {
                6 | 5 | 74 | 76 => self.leaders.lock().await.clear(),
                14..=16 => self.coordinators.lock().await.clear(),
                _ => {}
            },
            _ => {}
        }
    }

    /// Features of the brokers, as negotiated with the first one that
    /// answers.
    pub async fn features(&self) -> Result<Features, KafkaError> {
        let until = Instant::now() + self.deadline;
        let mut last = None;
        for a in self.any_addrs().await {
            match self.conn(&a, until).await {
                Ok(c) => {
                    let c = c.lock().await;
                    return Ok(Features {
                        reassignment_rf_guard: c
                            .version(ApiKey::AlterPartitionReassignments, (1, 1))
                            .is_ok(),
                        log_dir_bytes: c.version(ApiKey::DescribeLogDirs, (4, 4)).is_ok(),
                        fenced_brokers: c.version(ApiKey::DescribeCluster, (2, 2)).is_ok(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one address"))
    }

    async fn broker_addr(&self, id: i32, until: Instant) -> Result<String, KafkaError> {
        if let Some(a) = self.brokers.lock().await.get(&id) {
            return Ok(a.clone());
        }
        self.refresh_metadata(until).await?;
        self.brokers
            .lock()
            .await
            .get(&id)
            .cloned()
            .ok_or(KafkaError::UnknownBroker { id })
    }

    /// Metadata of every topic, refreshing the broker and leader caches.
    async fn refresh_metadata(
        &self,
        until: Instant,
    ) -> Result<crate::metadata::ClusterMetadata, KafkaError> {
        let mut last = None;
        let mut got = None;
        for a in self.any_addrs().await {
            match self
                .send_to(
                    &a,
                    until,
                    ApiKey::Metadata,
                    crate::metadata::METADATA,
                    &crate::metadata::request(None),
                )
                .await
            {
                Ok((_, r)) => {
                    got = Some(crate::metadata::from_response(r)?);
                    break;
                }
                Err(e) if e.is_connection() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        let m = match got {
            Some(m) => m,
            None => return Err(last.expect("at least one address")),
        };
        *self.brokers.lock().await = m
            .brokers
            .iter()
            .map(|b| (b.id, format!("{}:{}", b.host, b.port)))
            .collect();
        *self.leaders.lock().await = m
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.leader >= 0)
                    .map(|p| (TopicPartition::new(t.name.clone(), p.partition), p.leader))
            })
            .collect();
        Ok(m)
    }

    fn timeout_ms(&self) -> i32 {
        self.deadline.as_millis().min(i32::MAX as u128) as i32
    }
}

/// The time left before `until`, or a timeout naming what ran out.
fn remaining(addr: &str, api: &'static str, until: Instant) -> Result<Duration, KafkaError> {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(KafkaError::Timeout {
            addr: addr.to_string(),
            api,
            deadline: Duration::ZERO,
        });
    }
    Ok(left)
}

fn topic_name(n: &str) -> TopicName {
    TopicName(StrBytes::from_string(n.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Groups `items` by topic, keeping first-seen order.
fn by_topic<'a, T>(
    items: impl IntoIterator<Item = (&'a TopicPartition, T)>,
) -> Vec<(String, Vec<(i32, T)>)> {
    let mut out: Vec<(String, Vec<(i32, T)>)> = Vec::new();
    for (tp, v) in items {
        match out.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push((tp.partition, v)),
            None => out.push((tp.topic.clone(), vec![(tp.partition, v)])),
        }
    }
    out
}

mod quotas;

impl crate::api::KafkaAdmin for KafkaClient {
    async fn describe_cluster(&self) -> Result<crate::types::ClusterDescription, KafkaError> {
        KafkaClient::describe_cluster(self).await
    }
    async fn metadata(&self) -> Result<crate::metadata::ClusterMetadata, KafkaError> {
        KafkaClient::metadata(self).await
    }
    async fn create_topics(
        &self,
        topics: &[crate::types::NewTopic],
    ) -> Result<crate::types::PerItem<String, ()>, KafkaError> {
        KafkaClient::create_topics(self, topics).await
    }
    async fn create_partitions(
        &self,
        topics: &[(String, i32)],
    ) -> Result<crate::types::PerItem<String, ()>, KafkaError> {
        KafkaClient::create_partitions(self, topics).await
    }
    async fn delete_topics(
        &self,
        names: &[String],
    ) -> Result<crate::types::PerItem<String, ()>, KafkaError> {
        KafkaClient::delete_topics(self, names).await
    }
    async fn describe_configs(
        &self,
        resource: &crate::types::ConfigResource,
        keys: &[&str],
    ) -> Result<Vec<crate::types::ConfigEntry>, KafkaError> {
        KafkaClient::describe_configs(self, resource, keys).await
    }
    async fn alter_configs(
        &self,
        resource: &crate::types::ConfigResource,
        ops: &[crate::types::AlterConfigOp],
    ) -> Result<(), KafkaError> {
        KafkaClient::alter_configs(self, resource, ops).await
    }
    async fn alter_reassignments(
        &self,
        targets: &[(TopicPartition, Option<Vec<i32>>)],
        allow_rf_change: bool,
    ) -> Result<crate::types::PerItem<TopicPartition, ()>, KafkaError> {
        KafkaClient::alter_reassignments(self, targets, allow_rf_change).await
    }
    async fn list_reassignments(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<crate::types::Reassignment>, KafkaError> {
        KafkaClient::list_reassignments(self, partitions).await
    }
    async fn describe_log_dirs(
        &self,
        broker: i32,
    ) -> Result<Vec<crate::types::LogDirInfo>, KafkaError> {
        KafkaClient::describe_log_dirs(self, broker).await
    }
    async fn alter_replica_log_dirs(
        &self,
        broker: i32,
        moves: &[(TopicPartition, String)],
    ) -> Result<crate::types::PerItem<TopicPartition, crate::types::LogDirMove>, KafkaError> {
        KafkaClient::alter_replica_log_dirs(self, broker, moves).await
    }
    async fn elect_preferred_leaders(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<crate::types::PerItem<TopicPartition, crate::types::Election>, KafkaError> {
        KafkaClient::elect_preferred_leaders(self, partitions).await
    }
    async fn describe_client_quotas(
        &self,
        components: &[(String, crate::types::QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<crate::types::QuotaEntry>, KafkaError> {
        KafkaClient::describe_client_quotas(self, components, strict).await
    }
    async fn alter_client_quotas(
        &self,
        changes: &[crate::types::QuotaChange],
    ) -> Result<crate::types::PerItem<crate::types::QuotaEntity, ()>, KafkaError> {
        KafkaClient::alter_client_quotas(self, changes).await
    }
    async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: crate::types::OffsetSpec,
    ) -> Result<crate::types::PerItem<TopicPartition, i64>, KafkaError> {
        KafkaClient::list_offsets(self, partitions, spec).await
    }
    async fn list_groups(&self) -> Result<Vec<crate::types::GroupListing>, KafkaError> {
        KafkaClient::list_groups(self).await
    }
    async fn describe_group(
        &self,
        group: &str,
    ) -> Result<crate::types::GroupDescription, KafkaError> {
        KafkaClient::describe_group(self, group).await
    }
    async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<(TopicPartition, i64)>, KafkaError> {
        KafkaClient::committed_offsets(self, group).await
    }
}
