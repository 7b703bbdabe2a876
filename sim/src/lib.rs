//! `guardian-sim`: a simulated Kafka federation that Guardian governs with
//! exactly the code it uses for real Kafka.
//!
//! Each simulated cluster is one [`guardian_kafka::KafkaModel`] (the same
//! model the unit tests use, so the two cannot drift) with one
//! [`wire::BrokerFront`] listener per broker speaking Kafka's wire
//! protocol on 127.0.0.1, advertised in Metadata. The conformance suite
//! that runs on real Kafka (`guardian-tests`, t97) runs against these
//! listeners with the same assertions.
//!
//! A cluster is populated from the planner's seeded generator
//! ([`guardian_planner::generate`]): the same scenario and seed give the
//! same topics, placement (brokers and dirs), sizes and consumer groups.
//!
//! Around the model: traffic that grows the logs and moves consumer
//! positions ([`traffic`], [`SimCluster::run_traffic`]), each broker's
//! `Reporter` gRPC snapshot ([`reporter`], [`SimCluster::serve_reporters`]),
//! scripted broker and log-dir faults (the binary's `--fail-broker`,
//! `--fail-dir`), and what an operator registers
//! ([`SimCluster::registration`]). `guardian dev` governs these clusters;
//! `fleet-bench` (`guardian-tests`) measures Guardian at fleet scale on them.

pub mod reporter;
pub mod traffic;
pub mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use guardian_kafka::model::ModelBroker;
use guardian_kafka::types::{NewTopic, TopicPartition};
use guardian_kafka::{KafkaAdmin, KafkaModel};
use guardian_planner::model::ClusterSpec;
use tokio::net::TcpListener;

/// One simulated cluster: its model, its brokers' listeners and, once
/// started, their reporters and traffic.
pub struct SimCluster {
    pub name: String,
    pub cluster_id: String,
    pub model: Arc<KafkaModel>,
    /// `host:port` of every broker, by id.
    pub brokers: Vec<(i32, String)>,
    /// `host:port` of every broker's `Reporter` gRPC API
    /// ([`SimCluster::serve_reporters`]).
    pub reporters: Vec<(i32, String)>,
    pub traffic: Arc<Mutex<traffic::Traffic>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl SimCluster {
    /// Binds one listener per broker of `brokers` (their ids, racks and
    /// dirs, and the port when not 0) on `host`, and starts
    /// serving an empty cluster whose copies run at wall-clock speed.
    pub async fn start(
        name: &str,
        host: &str,
        brokers: &[ModelBroker],
    ) -> std::io::Result<SimCluster> {
        Self::start_with_speed(name, host, brokers, 1.0).await
    }

    /// [`SimCluster::start`] with copies `speed` times faster than the
    /// wall clock.
    pub async fn start_with_speed(
        name: &str,
        host: &str,
        brokers: &[ModelBroker],
        speed: f64,
    ) -> std::io::Result<SimCluster> {
        let mut listeners = Vec::new();
        let mut specs = Vec::new();
        for b in brokers {
            let l = TcpListener::bind((host, b.port.clamp(0, u16::MAX as i32) as u16)).await?;
            let port = l.local_addr()?.port();
            specs.push(ModelBroker {
                host: host.to_string(),
                port: port as i32,
                ..b.clone()
            });
            listeners.push((b.id, l, format!("{host}:{port}")));
        }
        let id = cluster_id(name);
        let model = Arc::new(KafkaModel::new(&id, specs).with_speed(speed));
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for (id, l, addr) in listeners {
            let front = wire::BrokerFront::new(model.clone(), id);
            tasks.push(tokio::spawn(front.serve(l)));
            addrs.push((id, addr));
        }
        Ok(SimCluster {
            name: name.to_string(),
            cluster_id: id,
            model,
            brokers: addrs,
            reporters: Vec::new(),
            traffic: Arc::default(),
            tasks,
        })
    }

    /// Serves every broker's `Reporter` API on its own port of `host`
    /// (`ports[i]` for broker i when given and not 0), each host with
    /// `page_cache_bytes` of page cache.
    pub async fn serve_reporters(
        &mut self,
        host: &str,
        page_cache_bytes: u64,
        ports: &[u16],
    ) -> std::io::Result<()> {
        for (i, (id, _)) in self.brokers.clone().into_iter().enumerate() {
            let port = ports.get(i).copied().unwrap_or(0);
            let l = tokio::net::TcpListener::bind((host, port)).await?;
            let addr = format!("{host}:{}", l.local_addr()?.port());
            let r = reporter::SimReporter::new(
                self.model.clone(),
                self.traffic.clone(),
                id,
                &self.cluster_id,
                page_cache_bytes,
            );
            self.tasks.push(tokio::spawn(r.serve(l)));
            self.reporters.push((id, addr));
        }
        Ok(())
    }

    /// Starts the producers and consumers of [`SimCluster::traffic`],
    /// stepping every `tick`.
    pub fn run_traffic(&mut self, tick: Duration) {
        self.tasks.push(tokio::spawn(traffic::run(
            self.model.clone(),
            self.traffic.clone(),
            tick,
        )));
    }

    /// A cluster shaped like `spec` (brokers, dirs, topics placed on the
    /// same brokers and dirs with their sizes, groups with their lag, the
    /// traffic of [`traffic::Traffic::from_spec`], not yet running).
    pub async fn from_spec(
        name: &str,
        host: &str,
        spec: &ClusterSpec,
        speed: f64,
    ) -> anyhow::Result<Self> {
        Self::from_spec_on(name, host, spec, speed, &[]).await
    }

    /// [`SimCluster::from_spec`] with broker i on `ports[i]` (when given
    /// and not 0).
    pub async fn from_spec_on(
        name: &str,
        host: &str,
        spec: &ClusterSpec,
        speed: f64,
        ports: &[u16],
    ) -> anyhow::Result<Self> {
        let brokers: Vec<ModelBroker> = spec
            .brokers
            .iter()
            .enumerate()
            .map(|(i, b)| ModelBroker {
                id: b.id,
                host: host.to_string(),
                port: ports.get(i).copied().unwrap_or(0) as i32,
                rack: Some(b.rack.clone()),
                dirs: b
                    .disks
                    .iter()
                    .map(|d| (d.dir.clone(), d.capacity_bytes as i64))
                    .collect(),
            })
            .collect();
        let c = SimCluster::start_with_speed(name, host, &brokers, speed).await?;
        let m = &c.model;
        for t in &spec.topics {
            // Where each replica goes: recorded before the topic exists,
            // as Kafka records an AlterReplicaLogDirs for a replica it
            // does not hold yet.
            for p in &t.partitions {
                for r in &p.replicas {
                    let tp = TopicPartition::new(t.name.clone(), p.partition);
                    m.alter_replica_log_dirs(r.broker, &[(tp, r.dir.clone())])
                        .await?;
                }
            }
            let mut parts: Vec<_> = t.partitions.iter().collect();
            parts.sort_by_key(|p| p.partition);
            let assignment = parts
                .iter()
                .map(|p| {
                    let mut r: Vec<i32> = p.replicas.iter().map(|r| r.broker).collect();
                    // The current leader first, so it leads from the start.
                    if let Some(l) = p.leader.and_then(|l| r.iter().position(|b| *b == l)) {
                        r.swap(0, l);
                    }
                    r
                })
                .collect();
            for (name, r) in m
                .create_topics(&[NewTopic {
                    name: t.name.clone(),
                    partitions: 0,
                    replication_factor: 0,
                    assignment,
                    configs: Vec::new(),
                }])
                .await?
            {
                r.map_err(|e| anyhow::anyhow!("creating {name}: {e}"))?;
            }
            for p in &parts {
                let tp = TopicPartition::new(t.name.clone(), p.partition);
                // One record per KiB, so offsets and bytes agree.
                let records = (p.size_bytes as f64 / traffic::RECORD_BYTES).max(1.0) as i64;
                m.produce(&tp, records, p.size_bytes as i64)?;
            }
        }
        for g in &spec.groups {
            for pos in &g.positions {
                let tp = TopicPartition::new(pos.topic.clone(), pos.partition);
                let end = m
                    .list_offsets(
                        std::slice::from_ref(&tp),
                        guardian_kafka::types::OffsetSpec::Latest,
                    )
                    .await?
                    .pop()
                    .and_then(|x| x.1.ok())
                    .unwrap_or(0);
                let behind = (pos.lag_bytes as f64 / traffic::RECORD_BYTES) as i64;
                m.commit(&g.name, &tp, (end - behind).max(0));
            }
        }
        *c.traffic.lock().unwrap_or_else(|p| p.into_inner()) = traffic::Traffic::from_spec(spec);
        Ok(c)
    }

    /// The bootstrap list: every broker's address.
    pub fn bootstrap(&self) -> Vec<String> {
        self.brokers.iter().map(|b| b.1.clone()).collect()
    }

    /// What an operator registers for this cluster, generated from `spec`:
    /// the cluster (in IDC `idc`) and each broker with its host, rack, dirs
    /// and their capacity, a 10 Gbit/s NIC, 16 cores and its reporter.
    pub fn registration(
        &self,
        spec: &ClusterSpec,
        idc: &str,
    ) -> (guardian_proto::pb::Cluster, Vec<guardian_proto::pb::Broker>) {
        use guardian_proto::pb;
        let cluster = pb::Cluster {
            name: self.name.clone(),
            bootstrap_servers: self.bootstrap(),
            idc: idc.to_string(),
            ..Default::default()
        };
        let brokers = spec
            .brokers
            .iter()
            .map(|b| pb::Broker {
                cluster: self.name.clone(),
                broker_id: b.id,
                host: "127.0.0.1".into(),
                rack: b.rack.clone(),
                reporter_endpoint: self
                    .reporters
                    .iter()
                    .find(|r| r.0 == b.id)
                    .map(|r| r.1.clone())
                    .unwrap_or_default(),
                log_dirs: b
                    .disks
                    .iter()
                    .map(|d| pb::LogDir {
                        path: d.dir.clone(),
                        capacity_bytes: d.capacity_bytes,
                    })
                    .collect(),
                nic_bytes_per_sec: 1_250_000_000,
                cpu_cores: 16,
                ..Default::default()
            })
            .collect();
        (cluster, brokers)
    }
}

/// The demo's cluster shape: `brokers` × `disks` of `disk_bytes` over
/// three racks in one IDC, `partitions` at RF 3 in topics of 12, filled to
/// 40 % (the generator places replicas the way Kafka does, so disks end up
/// skewed), one or two consumer groups per topic, a fifth of them lagging.
pub fn generated(
    brokers: u32,
    disks: u32,
    partitions: u32,
    disk_bytes: u64,
    seed: u64,
) -> ClusterSpec {
    let p = guardian_planner::generate::GenParams {
        brokers,
        disks_per_broker: disks,
        racks: 3.min(brokers),
        idcs: 1,
        pools: 0,
        partitions,
        partitions_per_topic: 12,
        rf: 3.min(brokers),
        disk_capacity: disk_bytes,
        fill: 0.4,
        groups_per_topic: 2,
    };
    guardian_planner::generate::generate(&p, seed)
}

/// A stable Kafka-style cluster id (22 URL-safe base64 characters) for a
/// simulated cluster's name.
fn cluster_id(name: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut out = String::from("sim");
    for i in 0..19 {
        for b in name.bytes().chain([i as u8]) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        out.push(A[(h >> 58) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use guardian_kafka::{KafkaAdmin, KafkaClient, KafkaError};

    use super::*;

    /// A generated cluster over the wire: the brokers, topics, dirs and
    /// groups of the spec, and Kafka's routing rules.
    #[tokio::test]
    async fn a_generated_cluster_answers_over_the_wire() {
        let p = guardian_planner::generate::GenParams {
            brokers: 4,
            disks_per_broker: 2,
            racks: 2,
            idcs: 1,
            pools: 0,
            partitions: 24,
            partitions_per_topic: 6,
            rf: 2,
            disk_capacity: 1 << 40,
            fill: 0.3,
            groups_per_topic: 1,
        };
        let spec = guardian_planner::generate::generate(&p, 3);
        let sim = SimCluster::from_spec("w", "127.0.0.1", &spec, 1.0)
            .await
            .unwrap();
        let a = KafkaClient::new(&sim.bootstrap()[..1], Duration::from_secs(5));
        let md = a.metadata().await.unwrap();
        assert_eq!(md.brokers.len(), 4);
        assert_eq!(md.topics.len(), spec.topics.len());
        // Placement and sizes as the spec has them.
        let t = &spec.topics[0];
        let p0 = &t.partitions[0];
        let r = &p0.replicas[0];
        let dirs = a.describe_log_dirs(r.broker).await.unwrap();
        let found = dirs
            .iter()
            .find(|d| {
                d.replicas
                    .iter()
                    .any(|x| x.topic == t.name && x.partition == p0.partition)
            })
            .unwrap();
        assert_eq!(found.path, r.dir);
        let size = found
            .replicas
            .iter()
            .find(|x| x.topic == t.name && x.partition == p0.partition)
            .unwrap()
            .size_bytes;
        assert_eq!(size as u64, p0.size_bytes);
        // Groups and their lag.
        let groups = a.list_groups().await.unwrap();
        assert_eq!(groups.len(), spec.groups.len());
        let g = &spec.groups[0];
        let lag = a.consumer_lag(&g.name).await.unwrap();
        assert_eq!(lag.len(), g.positions.len());
        let other = sim.brokers[1].0;
        // A stopped broker refuses: the client says which.
        sim.model.set_alive(other, false);
        let e = a.describe_log_dirs(other).await.unwrap_err();
        assert!(
            e.is_connection() || matches!(e, KafkaError::UnknownBroker { .. }),
            "{e}"
        );
    }

    /// Reporters over gRPC, with traffic running: rates from growth
    /// between samples, the configured page cache, a stopped broker
    /// unavailable.
    #[tokio::test]
    async fn reporters_see_the_traffic() {
        let spec = generated(3, 2, 12, 1 << 40, 4);
        let mut sim = SimCluster::from_spec("r", "127.0.0.1", &spec, 1.0)
            .await
            .unwrap();
        sim.serve_reporters("127.0.0.1", 1 << 30, &[])
            .await
            .unwrap();
        sim.run_traffic(Duration::from_millis(20));
        let (id, addr) = sim.reporters[0].clone();
        let mut c =
            guardian_proto::pb::reporter_client::ReporterClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
        let first = c
            .get_snapshot(guardian_proto::pb::GetSnapshotRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.broker_id, id);
        assert_eq!(first.host.unwrap().page_cache_bytes, 1 << 30);
        let here = first.partitions.unwrap().size_bytes.len();
        assert!(here > 0);
        // Wait until the traffic has appended something here.
        let mut grown = None;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let s = c
                .get_snapshot(guardian_proto::pb::GetSnapshotRequest {})
                .await
                .unwrap()
                .into_inner();
            let rate: f64 = s.partitions.as_ref().unwrap().bytes_in_per_sec.iter().sum();
            if rate > 0.0 {
                grown = Some(s);
                break;
            }
        }
        let s = grown.expect("the partitions grow");
        assert!(s.interval_secs > 0.0);
        assert!(s.log_dirs.iter().any(|d| d.write_bytes_per_sec > 0.0));
        sim.model.set_alive(id, false);
        let e = c
            .get_snapshot(guardian_proto::pb::GetSnapshotRequest {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
    }
}
