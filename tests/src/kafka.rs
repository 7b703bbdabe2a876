//! Real Apache Kafka for the tests: KRaft JVMs from the Maven jars of
//! `tests/kafka/pom.xml`, on 127.0.0.1, formatted and started by the test.
//!
//! - The jars: `$GUARDIAN_KAFKA_LIBS`, else `/var/tmp/guardian-kafka/<hash of
//!   the pom>`; when missing, [`libs`] runs the same `mvn … dependency:copy-dependencies`
//!   as `.ci/run` (once, under a lock file), so `cargo test --workspace`
//!   works on its own.
//! - [`KafkaCluster::start`]: one combined controller+broker node, or one
//!   controller and three brokers on racks `r1`–`r3`; every broker has two
//!   log dirs. Formats every node (`kafka.tools.StorageTool format`, static
//!   voters), starts the JVMs (small heap, serial GC, C1 only), then waits —
//!   on Metadata, never on a sleep — until every broker is listed.
//! - A node that does not come up puts its log into the panic message. Drop
//!   stops every JVM (SIGTERM, then SIGKILL after 10 s).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guardian_kafka::{ClusterMetadata, Connection};

const POM: &str = include_str!("../kafka/pom.xml");

/// The cache of Kafka's jars for this pom.
pub fn libs_dir() -> PathBuf {
    if let Ok(d) = std::env::var("GUARDIAN_KAFKA_LIBS") {
        return PathBuf::from(d);
    }
    PathBuf::from(format!(
        "/var/tmp/guardian-kafka/{}",
        crate::cache::key(POM)
    ))
}

/// The jars, fetched with Maven if they are not there yet.
pub fn libs() -> PathBuf {
    crate::cache::filled(libs_dir(), "Kafka's jars", |tmp| {
        let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka/pom.xml");
        let out = Command::new("mvn")
            .args(["-B", "-q", "-f"])
            .arg(&pom)
            .args(["dependency:copy-dependencies", "-DincludeScope=runtime"])
            .arg(format!("-DoutputDirectory={}", tmp.display()))
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "mvn failed (is Maven Central reachable?): {}",
                String::from_utf8_lossy(&o.stdout)
            )),
            Err(e) => Err(format!("running mvn (is it installed?): {e}")),
        }
    })
}

/// Which cluster to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One node, controller and broker (id 1, rack `r1`).
    Combined,
    /// Controller 100; brokers 1, 2, 3 on racks `r1`, `r2`, `r3`, each
    /// with the Prometheus JMX exporter agent ([`KafkaNode::metrics_url`]).
    ControllerAndThreeBrokers,
    /// One combined node that also listens with SASL_SSL
    /// ([`KafkaNode::secure_addr`], CA in [`KafkaCluster::ca_pem`]): PLAIN
    /// and SCRAM-SHA-256/512 with the users of [`SASL_USERS`].
    CombinedSecure,
}

/// The SASL users of [`Layout::CombinedSecure`]: (mechanism, user, password).
pub const SASL_USERS: [(&str, &str, &str); 3] = [
    ("PLAIN", "alice", "alice-secret"),
    ("SCRAM-SHA-256", "bob", "bob-secret"),
    ("SCRAM-SHA-512", "carol", "carol-secret"),
];

/// The JMX exporter's rules: what the reporter reads (per-topic and total
/// bytes/messages counters, under-replicated partitions, request-handler
/// idle ratio, request p99s).
const JMX_RULES: &str = r#"lowercaseOutputName: true
lowercaseOutputLabelNames: true
includeObjectNames:
  - "kafka.server:type=BrokerTopicMetrics,*"
  - "kafka.server:type=ReplicaManager,*"
  - "kafka.server:type=KafkaRequestHandlerPool,*"
  - "kafka.network:type=RequestMetrics,name=TotalTimeMs,*"
rules:
  - pattern: 'kafka.server<type=BrokerTopicMetrics, name=(BytesIn|BytesOut|MessagesIn)PerSec, topic=(.+)><>Count'
    name: kafka_server_brokertopicmetrics_$1_total
    type: COUNTER
    labels: {topic: "$2"}
  - pattern: 'kafka.server<type=BrokerTopicMetrics, name=(BytesIn|BytesOut|MessagesIn)PerSec><>Count'
    name: kafka_server_brokertopicmetrics_$1_total
    type: COUNTER
  - pattern: 'kafka.server<type=ReplicaManager, name=UnderReplicatedPartitions><>Value'
    name: kafka_server_replicamanager_underreplicatedpartitions
    type: GAUGE
  - pattern: 'kafka.server<type=KafkaRequestHandlerPool, name=RequestHandlerAvgIdlePercent><>OneMinuteRate'
    name: kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent
    type: GAUGE
  - pattern: 'kafka.network<type=RequestMetrics, name=TotalTimeMs, request=(\w+)><>99thPercentile'
    name: kafka_network_requestmetrics_totaltimems
    type: GAUGE
    labels: {request: "$1", quantile: "0.99"}
"#;

/// One Kafka node of a [`KafkaCluster`].
pub struct KafkaNode {
    pub id: i32,
    /// The broker listener (`None` for a controller-only node).
    pub broker_addr: Option<String>,
    /// The KRaft controller listener (`None` for a broker-only node).
    pub controller_addr: Option<String>,
    /// Its log dirs, exactly as configured.
    pub log_dirs: Vec<PathBuf>,
    /// The SASL_SSL listener ([`Layout::CombinedSecure`]).
    pub secure_addr: Option<String>,
    /// The JMX exporter's endpoint (`http://…/metrics`), on brokers of
    /// [`Layout::ControllerAndThreeBrokers`].
    pub metrics_url: Option<String>,
    metrics_port: Option<u16>,
    props: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running Kafka cluster; dropping it stops every node.
pub struct KafkaCluster {
    pub nodes: Vec<KafkaNode>,
    pub cluster_id: String,
    /// The CA of the SASL_SSL listener's certificate (PEM).
    pub ca_pem: Option<Vec<u8>>,
    libs: PathBuf,
    /// tmpfs mounts the cluster made ([`KafkaCluster::start_with_tmpfs`]),
    /// unmounted when it stops.
    mounts: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

const LOG4J: &str = "status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
";

/// Settings for small, fast, short-lived test brokers.
const TEST_SETTINGS: &str = "group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
auto.leader.rebalance.enable=false
log.cleaner.dedupe.buffer.size=2097152
num.network.threads=2
num.io.threads=2
replica.fetch.max.bytes=65536
replica.fetch.response.max.bytes=65536
replica.high.watermark.checkpoint.interval.ms=500
log.start.offset.checkpoint.interval.ms=500
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
";

impl KafkaCluster {
    /// Formats and starts `layout`, and returns once Metadata lists every
    /// broker.
    pub async fn start(layout: Layout) -> KafkaCluster {
        Self::start_with_tmpfs(layout, &[]).await
    }

    /// [`KafkaCluster::start`], with some brokers' log dirs on small tmpfs
    /// mounts — `(node id, index in its log dirs, bytes)` — so a test can
    /// fill one until Kafka marks it offline (needs root; panics, saying
    /// so, when `mount` refuses).
    pub async fn start_with_tmpfs(layout: Layout, tmpfs: &[(i32, usize, u64)]) -> KafkaCluster {
        let libs = libs();
        let dir = tempfile::Builder::new()
            .prefix("guardian-kafka-")
            .tempdir_in(std::env::temp_dir())
            .expect("temp dir");
        std::fs::write(dir.path().join("log4j2.properties"), LOG4J).expect("log4j2 config");
        // Not starting with '-' (the tool would read it as a flag), not reserved.
        let cluster_id = (0u8..)
            .map(|i| {
                let mut b = rand_bytes();
                b[15] = i;
                guardian_proto::domain::KafkaUuid::from_random_bytes(b)
            })
            .find(|u| u.is_allocatable())
            .expect("an id")
            .to_string();
        let specs: Vec<(i32, &str, Option<&str>)> = match layout {
            Layout::Combined | Layout::CombinedSecure => vec![(1, "broker,controller", Some("r1"))],
            Layout::ControllerAndThreeBrokers => vec![
                (100, "controller", None),
                (1, "broker", Some("r1")),
                (2, "broker", Some("r2")),
                (3, "broker", Some("r3")),
            ],
        };
        let brokers = specs.iter().filter(|s| s.2.is_some()).count();
        // Internal topics at RF 2 on three brokers: like any real cluster
        // larger than its replication factor, a broker can be drained.
        let rf = if brokers >= 3 { 2 } else { 1 };
        let ports: Vec<(u16, u16)> = specs
            .iter()
            .map(|_| (crate::reserve_port(), crate::reserve_port()))
            .collect();
        let voters: Vec<String> = specs
            .iter()
            .zip(&ports)
            .filter(|(s, _)| s.1.contains("controller"))
            .map(|(s, p)| format!("{}@127.0.0.1:{}", s.0, p.1))
            .collect();
        let mut nodes = Vec::new();
        let mut mounts = Vec::new();
        let mut ca_pem = None;
        for ((id, roles, rack), (bport, cport)) in specs.iter().zip(&ports) {
            let home = dir.path().join(format!("n{id}"));
            std::fs::create_dir_all(&home).expect("node dir");
            let is_broker = roles.contains("broker");
            let is_controller = roles.contains("controller");
            let mut listeners = Vec::new();
            if is_broker {
                listeners.push(format!("PLAINTEXT://127.0.0.1:{bport}"));
            }
            if is_controller {
                listeners.push(format!("CONTROLLER://127.0.0.1:{cport}"));
            }
            let secure = layout == Layout::CombinedSecure;
            let sport = secure.then(crate::reserve_port);
            if let Some(sp) = sport {
                listeners.push(format!("SECURE://127.0.0.1:{sp}"));
            }
            let log_dirs: Vec<PathBuf> = if is_broker {
                vec![home.join("d0"), home.join("d1")]
            } else {
                vec![]
            };
            for (i, d) in log_dirs.iter().enumerate() {
                if let Some((_, _, bytes)) = tmpfs.iter().find(|t| t.0 == *id && t.1 == i) {
                    std::fs::create_dir_all(d).expect("log dir");
                    let out = Command::new("mount")
                        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                        .arg(d)
                        .output()
                        .expect("mount runs");
                    assert!(
                        out.status.success(),
                        "mounting a {bytes}-byte tmpfs on {} (the test needs root): {}",
                        d.display(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    mounts.push(d.clone());
                }
            }
            let mut p = format!(
                "process.roles={roles}\nnode.id={id}\ncontroller.quorum.voters={}\n\
                 listeners={}\ncontroller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_SSL\n\
                 metadata.log.dir={}\n",
                voters.join(","),
                listeners.join(","),
                home.join("meta").display(),
            );
            if let Some(sp) = sport {
                let ck = rcgen::generate_simple_self_signed(vec![
                    "127.0.0.1".into(),
                    "localhost".into(),
                ])
                .expect("a certificate");
                let pem = home.join("server.pem");
                std::fs::write(
                    &pem,
                    format!("{}{}", ck.signing_key.serialize_pem(), ck.cert.pem()),
                )
                .expect("server.pem");
                ca_pem = Some(ck.cert.pem().into_bytes());
                let jaas = "org.apache.kafka.common.security";
                p.push_str(&format!(
                    "advertised.listeners=PLAINTEXT://127.0.0.1:{bport},SECURE://127.0.0.1:{sp}\n\
                     sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n\
                     listener.name.secure.plain.sasl.jaas.config={jaas}.plain.PlainLoginModule required user_alice=\"alice-secret\";\n\
                     listener.name.secure.scram-sha-256.sasl.jaas.config={jaas}.scram.ScramLoginModule required;\n\
                     listener.name.secure.scram-sha-512.sasl.jaas.config={jaas}.scram.ScramLoginModule required;\n\
                     ssl.keystore.type=PEM\nssl.keystore.location={}\n",
                    pem.display()
                ));
            } else if is_broker {
                p.push_str(&format!(
                    "advertised.listeners=PLAINTEXT://127.0.0.1:{bport}\n"
                ));
            }
            if is_broker {
                p.push_str(&format!(
                    "\
                     inter.broker.listener.name=PLAINTEXT\nbroker.rack={}\nlog.dirs={}\n",
                    rack.unwrap_or("r1"),
                    log_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                ));
            } else {
                p.push_str(&format!("log.dirs={}\n", home.join("meta").display()));
            }
            p.push_str(&format!(
                "offsets.topic.replication.factor={rf}\noffsets.topic.num.partitions=1\n\
                 transaction.state.log.replication.factor={rf}\n\
                 transaction.state.log.min.isr=1\ntransaction.state.log.num.partitions=1\n\
                 share.coordinator.state.topic.replication.factor={rf}\n\
                 share.coordinator.state.topic.min.isr=1\n"
            ));
            p.push_str(TEST_SETTINGS);
            let props = home.join("server.properties");
            std::fs::write(&props, p).expect("server.properties");
            nodes.push(KafkaNode {
                id: *id,
                broker_addr: is_broker.then(|| format!("127.0.0.1:{bport}")),
                controller_addr: is_controller.then(|| format!("127.0.0.1:{cport}")),
                log_dirs,
                secure_addr: sport.map(|p| format!("127.0.0.1:{p}")),
                metrics_url: None,
                metrics_port: None,
                props,
                log: home.join("kafka.log"),
                child: None,
            });
        }
        if layout == Layout::ControllerAndThreeBrokers {
            std::fs::write(dir.path().join("jmx-rules.yaml"), JMX_RULES).expect("jmx rules");
            for n in nodes.iter_mut().filter(|n| n.broker_addr.is_some()) {
                let port = crate::reserve_port();
                n.metrics_port = Some(port);
                n.metrics_url = Some(format!("http://127.0.0.1:{port}/metrics"));
            }
        }
        let mut c = KafkaCluster {
            nodes,
            cluster_id,
            ca_pem,
            libs,
            mounts,
            dir,
        };
        // Format every node at once (one short JVM each), then start them.
        let formats: Vec<_> = c
            .nodes
            .iter()
            .map(|n| {
                let mut cmd = c.java();
                cmd.args([
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    &c.cluster_id,
                    "-c",
                ])
                .arg(&n.props);
                if layout == Layout::CombinedSecure {
                    for (mech, user, pass) in SASL_USERS.iter().filter(|u| u.0 != "PLAIN") {
                        cmd.arg("--add-scram")
                            .arg(format!("{mech}=[name={user},password={pass}]"));
                    }
                }
                cmd.stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("java runs")
            })
            .collect();
        for (f, n) in formats.into_iter().zip(&c.nodes) {
            let out = f.wait_with_output().expect("format ends");
            assert!(
                out.status.success(),
                "formatting node {}: {}{}",
                n.id,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for i in 0..c.nodes.len() {
            c.start_node(i);
        }
        c.wait_brokers(brokers, Duration::from_secs(60)).await;
        c
    }

    fn java(&self) -> Command {
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xms64m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            self.dir.path().join("log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}/*", self.libs.display()));
        cmd
    }

    fn start_node(&mut self, i: usize) {
        let n = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("node log");
        let mut cmd = self.java();
        if let Some(port) = n.metrics_port {
            let agent = std::fs::read_dir(&self.libs)
                .expect("the jar cache")
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| {
                    p.file_name().is_some_and(|f| {
                        f.to_string_lossy().starts_with("jmx_prometheus_javaagent")
                    })
                })
                .expect("the JMX exporter agent jar is in the cache");
            cmd.arg(format!(
                "-javaagent:{}=127.0.0.1:{port}:{}",
                agent.display(),
                self.dir.path().join("jmx-rules.yaml").display()
            ));
        }
        let child = cmd
            .arg(format!(
                "-Dkafka.logs.dir={}",
                n.log.parent().expect("node dir").display()
            ))
            .arg("kafka.Kafka")
            .arg(&n.props)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("java runs");
        self.nodes[i].child = Some(child);
    }

    /// `host:port` of every broker, for a bootstrap list.
    pub fn bootstrap(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.broker_addr.clone())
            .collect()
    }

    /// Metadata from the first broker that answers.
    pub async fn metadata(&self) -> Result<ClusterMetadata, guardian_kafka::KafkaError> {
        let mut last = None;
        for addr in self.bootstrap() {
            match Connection::connect(&addr, Duration::from_secs(5)).await {
                Ok(mut c) => match c.metadata(None).await {
                    Ok(m) => return Ok(m),
                    Err(e) => last = Some(e),
                },
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("a cluster has brokers"))
    }

    /// Waits until Metadata lists `n` brokers; on timeout (or a node that
    /// exited) panics with every node's log.
    pub async fn wait_brokers(&mut self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(m) = self.metadata().await {
                if m.brokers.len() == n {
                    return;
                }
            }
            let exited: Vec<i32> = self
                .nodes
                .iter_mut()
                .filter_map(|x| {
                    let gone = x
                        .child
                        .as_mut()
                        .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                    gone.then_some(x.id)
                })
                .collect();
            if !exited.is_empty() || Instant::now() > deadline {
                panic!(
                    "Kafka did not list {n} brokers within {within:?} (nodes exited: {exited:?})\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn node_mut(&mut self, id: i32) -> &mut KafkaNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("a node of the cluster")
    }

    /// SIGKILLs node `id` (no shutdown hook runs) and waits for it to exit.
    pub fn kill(&mut self, id: i32) {
        if let Some(mut c) = self.node_mut(id).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs node `id` (a controlled shutdown: its leadership moves,
    /// its logs close cleanly) and waits for it to exit (SIGKILL after 60 s).
    pub fn terminate(&mut self, id: i32) {
        if let Some(mut c) = self.node_mut(id).child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `id` again on its dirs and waits until it answers on
    /// its listener and Metadata lists `brokers` brokers.
    pub async fn restart(&mut self, id: i32, brokers: usize) {
        let i = self
            .nodes
            .iter()
            .position(|n| n.id == id)
            .expect("a node of the cluster");
        assert!(self.nodes[i].child.is_none(), "node {id} is running");
        self.start_node(i);
        if let Some(addr) = self.nodes[i].broker_addr.clone() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Connection::connect(&addr, Duration::from_secs(2))
                .await
                .is_err()
            {
                assert!(
                    Instant::now() < deadline,
                    "broker {id} did not come back within 60 s\n{}",
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.wait_brokers(brokers, Duration::from_secs(60)).await;
    }

    /// The tail of every node's log.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                format!(
                    "--- node {} ({}) ---\n{}",
                    n.id,
                    n.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The clusters [`KafkaCluster::shared`] started, stopped at process exit.
static SHARED: std::sync::Mutex<Vec<(Layout, &'static tokio::sync::Mutex<KafkaCluster>)>> =
    std::sync::Mutex::new(Vec::new());

extern "C" fn stop_shared() {
    let shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    for (_, c) in shared.iter() {
        if let Ok(mut c) = c.try_lock() {
            c.stop();
            let _ = std::fs::remove_dir_all(c.dir.path());
        }
    }
}

impl KafkaCluster {
    /// One cluster of `layout` per test binary, started by the first test
    /// that asks and stopped when the process exits, so a binary's tests
    /// pay one JVM start. Tests that change broker-global state (configs,
    /// quotas, kills) hold the lock for their whole run — the serial group
    /// — and leave the cluster as they found it; read-only tests take it
    /// briefly for addresses.
    pub async fn shared(layout: Layout) -> &'static tokio::sync::Mutex<KafkaCluster> {
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = STARTING.lock().await;
        let found = SHARED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(l, _)| *l == layout)
            .map(|(_, c)| *c);
        if let Some(c) = found {
            return c;
        }
        let c: &'static tokio::sync::Mutex<KafkaCluster> = Box::leak(Box::new(
            tokio::sync::Mutex::new(KafkaCluster::start(layout).await),
        ));
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if shared.is_empty() {
            // SAFETY: registering a plain extern "C" fn with no arguments.
            unsafe { libc::atexit(stop_shared) };
        }
        shared.push((layout, c));
        c
    }

    /// Stops every node: SIGTERM, then SIGKILL after 10 s.
    fn stop(&mut self) {
        for n in &mut self.nodes {
            if let Some(c) = &n.child {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for m in self.mounts.drain(..) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    b[..8].copy_from_slice(&(t as u64).to_be_bytes());
    b[8..12].copy_from_slice(&std::process::id().to_be_bytes());
    b
}

/// Helpers of the tests that drive Guardian against the shared Kafka
/// cluster through the CLI, as an operator would.
pub mod ops {
    use std::time::Duration;

    use guardian_kafka::*;
    use serde_json::Value;

    use super::{KafkaCluster, Layout};
    use crate::{cli, TestCluster};

    /// The override a resource has for `key` at its own level.
    pub async fn own_override(a: &KafkaClient, r: &ConfigResource, key: &str) -> Option<String> {
        let own = match r {
            ConfigResource::BrokerDefault => ConfigSource::DynamicDefaultBroker,
            ConfigResource::Topic(_) => ConfigSource::DynamicTopic,
            _ => ConfigSource::DynamicBroker,
        };
        let e = a.describe_configs(r, &[key]).await.unwrap();
        let e = e.iter().find(|e| e.name == key)?;
        if e.source == own {
            return e.value.clone();
        }
        e.synonyms
            .iter()
            .find(|s| s.source == own)
            .and_then(|s| s.value.clone())
    }

    /// The binary's shared 1+3 cluster, held for the whole test (the serial
    /// group), with a client and broker 1's first log dir.
    pub struct Shared {
        pub k: tokio::sync::MutexGuard<'static, KafkaCluster>,
        pub bootstrap: Vec<String>,
        pub a: KafkaClient,
        pub d0: String,
    }

    pub async fn shared() -> Shared {
        let k = KafkaCluster::shared(Layout::ControllerAndThreeBrokers)
            .await
            .lock()
            .await;
        let bootstrap = k.bootstrap();
        let a = KafkaClient::new(&bootstrap, Duration::from_secs(20));
        let d0 = k.nodes.iter().find(|n| n.id == 1).unwrap().log_dirs[0]
            .display()
            .to_string();
        Shared {
            k,
            bootstrap,
            a,
            d0,
        }
    }

    pub fn run_cli(eps: &str, args: &[&str]) -> Value {
        let mut all = vec!["--endpoints", eps, "-o", "json", "--timeout-secs", "60"];
        all.extend_from_slice(args);
        let (code, out, err) = cli(&all);
        assert_eq!(code, 0, "guardian {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    pub async fn wait_state(eps: &str, id: u64, states: &[&str]) -> Value {
        let mut last = Value::Null;
        for _ in 0..1200 {
            let v = run_cli(eps, &["rebalance", "show", &id.to_string()]);
            let s = v["execution"]["state"].as_str().unwrap_or("").to_string();
            if states.contains(&s.as_str()) {
                return v;
            }
            assert!(
                !["failed", "cancelled"].contains(&s.as_str()),
                "execution {id} ended {s}: {}",
                v["execution"]
            );
            last = v;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("execution {id} never reached {states:?}: {last}");
    }

    /// Registers the Kafka cluster with Guardian and discovers its brokers.
    pub async fn register(g: &TestCluster, name: &str, bootstrap: &[String]) -> String {
        let eps = add_cluster(g, name, bootstrap);
        run_cli(&eps, &["cluster", "discover", name]);
        eps
    }

    /// Registers the Kafka cluster (IDC `east`) without its brokers.
    pub fn add_cluster(g: &TestCluster, name: &str, bootstrap: &[String]) -> String {
        let eps = g.endpoints().join(",");
        let (code, _, err) = cli(&[
            "--endpoints",
            &eps,
            "cluster",
            "add",
            "--name",
            name,
            "--bootstrap",
            &bootstrap.join(","),
            "--idc",
            "east",
        ]);
        assert_eq!(code, 0, "{err}");
        eps
    }

    /// Runs one of Kafka's stock tools (`kafka-tools`, e.g.
    /// `org.apache.kafka.tools.reassign.ReassignPartitionsCommand`):
    /// exit code, stdout, stderr.
    pub fn kafka_tool(class: &str, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg("-cp")
            .arg(format!("{}/*", super::libs().display()))
            .arg(class)
            .args(args)
            .output()
            .expect("java runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The data plane of the tests, on rdkafka (librdkafka).
pub mod data {
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Message, Offset, TopicPartitionList};

    /// Creates `topics` × `parts` partitions, RF 1, all on broker 1's first
    /// dir (an executor's skewed starting point), each with `records`
    /// records of 1 KiB.
    pub async fn skewed(
        a: &guardian_kafka::KafkaClient,
        bootstrap: &[String],
        d0: &str,
        topics: &[&str],
        parts: i32,
        records: usize,
    ) {
        for t in topics {
            crate::conformance::create(
                a,
                t,
                (0..parts).map(|_| vec![1]).collect(),
                &[("segment.bytes", "1048576")],
            )
            .await;
            let moves: Vec<(guardian_kafka::TopicPartition, String)> = (0..parts)
                .map(|p| (guardian_kafka::TopicPartition::new(*t, p), d0.to_string()))
                .collect();
            for (tp, r) in a.alter_replica_log_dirs(1, &moves).await.unwrap() {
                r.unwrap_or_else(|e| panic!("{tp} to {d0}: {e}"));
            }
        }
        crate::conformance::eventually("every replica in broker 1's first dir", || async {
            let dirs = a.describe_log_dirs(1).await.ok()?;
            let n = dirs
                .iter()
                .filter(|d| d.path == d0)
                .flat_map(|d| &d.replicas)
                .filter(|r| topics.contains(&r.topic.as_str()) && !r.is_future)
                .count();
            let futures = dirs.iter().flat_map(|d| &d.replicas).any(|r| r.is_future);
            (n == topics.len() * parts as usize && !futures).then_some(())
        })
        .await;
        for t in topics {
            for p in 0..parts {
                produce(bootstrap, t, p, records, 1024).await;
            }
        }
    }

    /// Reads every partition of `topic` from the start: (records, checksum of
    /// partition, offset and key).
    pub fn read_all(bootstrap: &[String], topic: &str, parts: i32) -> (usize, u64) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap.join(","))
            .set("group.id", format!("t93-read-{topic}"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let (mut n, mut sum) = (0usize, 0u64);
        let mut idle = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while idle < 30 && std::time::Instant::now() < deadline {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    idle = 0;
                    n += 1;
                    let key = m.key().map(|k| String::from_utf8_lossy(k).to_string());
                    let h = key
                        .unwrap_or_default()
                        .bytes()
                        .fold((m.partition() as u64) << 40 ^ m.offset() as u64, |h, b| {
                            h.wrapping_mul(31).wrapping_add(b as u64)
                        });
                    sum = sum.wrapping_add(h);
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => idle += 1,
            }
        }
        (n, sum)
    }

    /// Produces `count` records of `size` bytes to one partition (acks=all)
    /// and returns the offset of the last.
    pub async fn produce(
        bootstrap: &[String],
        topic: &str,
        partition: i32,
        count: usize,
        size: usize,
    ) -> i64 {
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap.join(","))
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000")
            .create()
            .expect("an rdkafka producer");
        let payload = vec![b'g'; size];
        let mut last = -1;
        for chunk in (0..count).collect::<Vec<_>>().chunks(256) {
            let sends: Vec<_> = chunk
                .iter()
                .map(|i| {
                    let key = i.to_string();
                    let rec = FutureRecord::to(topic)
                        .partition(partition)
                        .key(&key)
                        .payload(&payload);
                    let f = p.send_result(rec).expect("queued");
                    async move { f.await.expect("delivered").expect("acknowledged") }
                })
                .collect();
            for s in sends {
                let d = s.await;
                last = last.max(d.offset);
            }
        }
        last
    }

    /// A consumer joins `group` on `topic` (one partition), reads `n`
    /// records from the start, commits the offset after the last one it
    /// read, and leaves the group.
    pub fn consume_and_commit(bootstrap: &[String], group: &str, topic: &str, n: usize) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap.join(","))
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("an rdkafka consumer");
        c.subscribe(&[topic]).expect("subscribed");
        let mut read = 0;
        let mut next = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while read < n {
            assert!(
                std::time::Instant::now() < deadline,
                "read {read} of {n} records"
            );
            if let Some(m) = c.poll(Duration::from_millis(200)) {
                let m = m.expect("a record");
                next = m.offset() + 1;
                read += 1;
            }
        }
        let mut commit = TopicPartitionList::new();
        commit
            .add_partition_offset(topic, 0, Offset::Offset(next))
            .expect("partition");
        c.commit(&commit, CommitMode::Sync).expect("committed");
    }
}

/// Live traffic for tests that change a cluster under load: producers
/// (acks=all, idempotent, each record's key and value a unique id) and
/// one consumer in a group, counting what each side saw.
pub mod traffic {
    use std::collections::{BTreeSet, VecDeque};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::Message;

    /// Running traffic; [`Traffic::stop`] ends it and reports.
    pub struct Traffic {
        stop: Arc<AtomicBool>,
        stop_consumer: Arc<AtomicBool>,
        producers: Vec<tokio::task::JoinHandle<(Vec<String>, Vec<String>)>>,
        consumer: Option<std::thread::JoinHandle<()>>,
        consumed: Arc<Mutex<BTreeSet<String>>>,
    }

    /// What the clients saw.
    #[derive(Debug)]
    pub struct Report {
        /// Ids whose produce was acknowledged.
        pub acked: BTreeSet<String>,
        /// Produce errors surfaced to the application (after the client's
        /// own retries).
        pub errors: Vec<String>,
        /// Ids the consumer read.
        pub consumed: BTreeSet<String>,
    }

    impl Traffic {
        /// `producers` producers of about 200 records/s each, and one
        /// consumer in `group`, on `topic`.
        pub fn start(bootstrap: &[String], topic: &str, producers: usize, group: &str) -> Traffic {
            let stop = Arc::new(AtomicBool::new(false));
            let stop_consumer = Arc::new(AtomicBool::new(false));
            let consumed = Arc::new(Mutex::new(BTreeSet::new()));
            let servers = bootstrap.join(",");
            let producers = (0..producers)
                .map(|n| {
                    let (stop, topic, servers) = (stop.clone(), topic.to_string(), servers.clone());
                    tokio::spawn(async move {
                        let p: FutureProducer = ClientConfig::new()
                            .set("bootstrap.servers", &servers)
                            .set("acks", "all")
                            .set("enable.idempotence", "true")
                            .set("linger.ms", "5")
                            .set("message.timeout.ms", "120000")
                            .create()
                            .expect("an rdkafka producer");
                        let (mut acked, mut errors) = (Vec::new(), Vec::new());
                        let mut inflight = VecDeque::new();
                        let settle =
                            |acked: &mut Vec<String>, errors: &mut Vec<String>, r: (String, _)| {
                                let (id, r): (String, Result<_, _>) = r;
                                match r {
                                    Ok(Ok(_)) => acked.push(id),
                                    Ok(Err((e, _))) => errors.push(format!("{id}: {e}")),
                                    Err(e) => errors.push(format!("{id}: {e}")),
                                }
                            };
                        let mut seq = 0u64;
                        while !stop.load(Ordering::SeqCst) {
                            let id = format!("p{n}-{seq}");
                            seq += 1;
                            match p.send_result(FutureRecord::to(&topic).key(&id).payload(&id)) {
                                Ok(f) => inflight.push_back((id, f)),
                                Err((e, _)) => errors.push(format!("{id}: not queued: {e}")),
                            }
                            while inflight.len() > 50 {
                                let (id, f) = inflight.pop_front().expect("non-empty");
                                settle(&mut acked, &mut errors, (id, f.await));
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        while let Some((id, f)) = inflight.pop_front() {
                            settle(&mut acked, &mut errors, (id, f.await));
                        }
                        (acked, errors)
                    })
                })
                .collect();
            let consumer = {
                let (stop, seen, topic, group) = (
                    stop_consumer.clone(),
                    consumed.clone(),
                    topic.to_string(),
                    group.to_string(),
                );
                std::thread::spawn(move || {
                    let c: BaseConsumer = ClientConfig::new()
                        .set("bootstrap.servers", &servers)
                        .set("group.id", &group)
                        .set("auto.offset.reset", "earliest")
                        .set("enable.auto.commit", "true")
                        .create()
                        .expect("an rdkafka consumer");
                    c.subscribe(&[&topic]).expect("subscribed");
                    while !stop.load(Ordering::SeqCst) {
                        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                            if let Some(k) = m.key() {
                                seen.lock()
                                    .unwrap()
                                    .insert(String::from_utf8_lossy(k).into_owned());
                            }
                        }
                    }
                })
            };
            Traffic {
                stop,
                stop_consumer,
                producers,
                consumer: Some(consumer),
                consumed,
            }
        }

        /// Records the consumer has read so far.
        pub fn consumed(&self) -> usize {
            self.consumed.lock().unwrap().len()
        }

        /// Stops the producers (every record in flight settles), waits up
        /// to `catch_up` for the consumer to read every acknowledged
        /// record, stops it and reports.
        pub async fn stop(mut self, catch_up: Duration) -> Report {
            self.stop.store(true, Ordering::SeqCst);
            let (mut acked, mut errors) = (BTreeSet::new(), Vec::new());
            for p in self.producers.drain(..) {
                let (a, e) = p.await.expect("a producer task");
                acked.extend(a);
                errors.extend(e);
            }
            let deadline = Instant::now() + catch_up;
            while Instant::now() < deadline && !acked.is_subset(&self.consumed.lock().unwrap()) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.stop_consumer.store(true, Ordering::SeqCst);
            if let Some(c) = self.consumer.take() {
                let _ = c.join();
            }
            let consumed = self.consumed.lock().unwrap().clone();
            Report {
                acked,
                errors,
                consumed,
            }
        }
    }
}
