//! Load collection: 3 controller processes pull real `guardian-reporter`
//! processes reading Kafka-format log dirs; a reporter killed and restarted,
//! a lying reporter, and the leader killed — load queries stay answerable and
//! staleness is reported with its reason.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use guardian_proto::pb;
use guardian_tests::{broker, cli, cluster, guardian_bin, wait_until, TestCluster};
use serde_json::Value;

fn reporter_bin() -> PathBuf {
    guardian_bin().with_file_name("guardian-reporter")
}

/// A Kafka log dir of broker `id` with `parts` partitions of topic `t`.
fn log_dir(root: &Path, id: i32, parts: i32) -> PathBuf {
    let d = root.join(format!("broker-{id}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("meta.properties"),
        format!("node.id={id}\nversion=1\ncluster.id=k1-id\n"),
    )
    .unwrap();
    for p in 0..parts {
        let pd = d.join(format!("t-{p}"));
        std::fs::create_dir_all(&pd).unwrap();
        let mut f = std::fs::File::create(pd.join("00000000000000000000.log")).unwrap();
        f.write_all(&batch(0)).unwrap();
    }
    d
}

/// One 112-byte v2 record batch of 10 records from offset `base`.
fn batch(base: i64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&base.to_be_bytes());
    b.extend_from_slice(&100i32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&9i32.to_be_bytes());
    b.resize(112, 0x61);
    b
}

/// Appends a batch to `log` every 100 ms (≈ 1,120 bytes/s) until stopped.
struct Producer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Producer {
    fn start(log: PathBuf) -> Producer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
            let mut base = 10;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(&batch(base)).unwrap();
                base += 10;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Producer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A broker's Prometheus endpoint (JMX exporter text): every request sees
/// the byte counters 1,000 further along.
fn metrics_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            let body = format!(
                "kafka_server_brokertopicmetrics_bytesout_total{{topic=\"t\",}} {n}000\n\
                 kafka_server_brokertopicmetrics_bytesout_total {n}000\n\
                 kafka_server_replicamanager_underreplicatedpartitions 1.0\n\
                 kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent 0.8\n\
                 kafka_network_requestmetrics_totaltimems{{request=\"Produce\",quantile=\"0.99\",}} 7.0\n"
            );
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/metrics")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `guardian load partitions --cluster k1 -o json`: broker 1's `t-0`.
fn partition_t0_of_broker_1(endpoints: &str) -> Value {
    let (code, out, err) = cli(&[
        "--endpoints",
        endpoints,
        "load",
        "partitions",
        "--cluster",
        "k1",
        "--top",
        "100",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let parts: Vec<Value> = serde_json::from_str(&out).unwrap();
    parts
        .into_iter()
        .find(|p| p["broker_id"] == 1 && p["topic"] == "t" && p["partition"] == 0)
        .unwrap_or_else(|| panic!("no t-0 on broker 1 in {out}"))
}

struct Reporter {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Reporter {
    fn start(dir: &Path, listen: &str) -> Reporter {
        Reporter::start_with(dir, listen, &[])
    }

    fn start_with(dir: &Path, listen: &str, extra: &[&str]) -> Reporter {
        let mut child = Command::new(reporter_bin())
            .args(["--log-dir", dir.to_str().unwrap(), "--listen", listen])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run guardian-reporter");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?}"));
        Reporter {
            child,
            addr: v["listening"].as_str().unwrap().to_string(),
            dir: dir.to_path_buf(),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `guardian load cluster k1 -o json`, or None if it failed.
fn load(endpoints: &str) -> Option<Value> {
    let (code, out, _) = cli(&[
        "--endpoints",
        endpoints,
        "--timeout-secs",
        "5",
        "load",
        "cluster",
        "k1",
        "-o",
        "json",
    ]);
    (code == 0).then(|| serde_json::from_str(&out).unwrap())
}

fn broker_state(v: &Value, id: i64) -> (bool, String) {
    let b = v["broker_loads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["broker_id"] == id)
        .unwrap();
    (
        b["stale"].as_bool().unwrap(),
        b["stale_reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_load_survives_reporter_and_leader_kills() {
    let mut c = TestCluster::start_with(
        3,
        "[collect]\ninterval-ms = 200\ntimeout-ms = 150\nhistory-bucket-ms = 400\n",
    )
    .await;
    let cl = c.client();
    cl.call(|mut s| async move {
        s.add_cluster(pb::AddClusterRequest {
            cluster: Some(cluster("k1")),
        })
        .await
    })
    .await
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let metrics_url = metrics_server();
    let mut reporters = Vec::new();
    for id in 1..=3 {
        // Broker 3's reporter reads a log dir that belongs to broker 99.
        let dir = log_dir(root.path(), if id == 3 { 99 } else { id }, 2 + id);
        // Broker 1's reporter also scrapes the broker's Prometheus metrics.
        let r = if id == 1 {
            Reporter::start_with(&dir, "127.0.0.1:0", &["--broker-metrics", &metrics_url])
        } else {
            Reporter::start(&dir, "127.0.0.1:0")
        };
        let mut b = broker("k1", id);
        b.reporter_endpoint = r.addr.clone();
        cl.call(|mut s| {
            let b = b.clone();
            async move { s.add_broker(pb::AddBrokerRequest { broker: Some(b) }).await }
        })
        .await
        .unwrap();
        reporters.push(r);
    }
    let eps = c.endpoints().join(",");
    // Broker 3 may be added after a round already started, so wait until
    // every broker has been pulled at least once ("not collected yet" gone).
    let v = wait_until(
        "brokers 1 and 2 collected, broker 3 rejected",
        Duration::from_secs(15),
        || async {
            let v = load(&eps)?;
            let (s3, why3) = broker_state(&v, 3);
            (!broker_state(&v, 1).0 && !broker_state(&v, 2).0 && !why3.contains("not collected"))
                .then_some((v, s3, why3))
        },
    )
    .await;
    let (v, stale, why) = v;
    assert_eq!(v["brokers"], 3);
    assert!(stale && why.contains("reports broker id 99"), "{why}");
    let b2 = v["broker_loads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["broker_id"] == 2)
        .unwrap();
    assert_eq!(b2["partitions"], 4);
    assert!(b2["capacity_bytes"].as_u64().unwrap() > 0);
    assert!(b2["bytes_out_per_sec"].is_null(), "no broker metrics: {b2}");
    // Broker 1's own metrics come through: bytes out (a rate, so from the
    // second scrape on), under-replicated partitions, handler idle, p99s.
    let b1 = wait_until("broker 1's metrics", Duration::from_secs(10), || async {
        let v = load(&eps)?;
        let b1 = (v["broker_loads"].as_array()?.iter())
            .find(|b| b["broker_id"] == 1)?
            .clone();
        (b1["bytes_out_per_sec"].as_f64()? > 0.0).then_some(b1)
    })
    .await;
    assert_eq!(b1["under_replicated_partitions"], 1.0, "{b1}");
    assert_eq!(b1["request_handler_idle"], 0.8, "{b1}");
    assert_eq!(b1["request_p99_ms"]["Produce"], 7.0, "{b1}");
    // Broker 1's t-0 takes writes; its per-partition history is recorded
    // every slot of 5 buckets (2 s here).
    let mut producer = Producer::start(root.path().join("broker-1/t-0/00000000000000000000.log"));
    let produced_from = now_ms();

    // A dead reporter marks only its broker stale, with the reason.
    reporters[1].kill();
    let why = wait_until("broker 2 stale", Duration::from_secs(10), || async {
        let v = load(&eps)?;
        let (s1, _) = broker_state(&v, 1);
        let (s2, why) = broker_state(&v, 2);
        (!s1 && s2).then_some(why)
    })
    .await;
    assert!(why.contains(&reporters[1].addr), "{why}");
    let (addr, dir) = (reporters[1].addr.clone(), reporters[1].dir.clone());
    reporters[1] = Reporter::start(&dir, &addr);
    wait_until("broker 2 fresh again", Duration::from_secs(10), || async {
        let v = load(&eps)?;
        (!broker_state(&v, 2).0).then_some(())
    })
    .await;

    // The leader's Prometheus metrics: Raft, collector (a killed reporter
    // counted as failed pulls and a `reporter` event), proposals.
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let (code, text) = guardian_tests::http_get(&c.node(leader).http, "/metrics");
    assert_eq!(code, 200, "{text}");
    let m = |s: &str| guardian_tests::metric(&text, s);
    assert_eq!(m("guardian_raft_is_leader"), Some(1.0), "{text}");
    assert_eq!(m("guardian_raft_leader_id"), Some(leader as f64));
    assert!(m("guardian_raft_applied_index").unwrap() > 0.0);
    assert_eq!(
        m("guardian_collector_brokers{cluster=\"k1\"}"),
        Some(3.0),
        "{text}"
    );
    assert!(m("guardian_collector_pulls_total{result=\"ok\"}").unwrap() > 0.0);
    assert!(m("guardian_collector_pulls_total{result=\"error\"}").unwrap() > 0.0);
    assert!(m("guardian_events_total{kind=\"reporter\"}").unwrap() >= 1.0);
    assert!(m("guardian_raft_proposal_seconds_count").unwrap() > 0.0);
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .all(|l| l.starts_with("guardian_")),
        "every sample is guardian_*: {text}"
    );
    dashboards_query_what_is_exposed(&text);
    let follower = c.nodes.iter().find(|n| n.id != leader).unwrap();
    let (_, text) = guardian_tests::http_get(&follower.http, "/metrics");
    assert_eq!(
        guardian_tests::metric(&text, "guardian_raft_is_leader"),
        Some(0.0)
    );
    assert_eq!(guardian_tests::http_get(&follower.http, "/healthz").0, 200);

    // The leader dies: the new leader collects and answers, starting from
    // the replicated history (buckets older than its own reign).
    let history = |v: &Value, id: i64| {
        let b = v["broker_loads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["broker_id"] == id)
            .unwrap()
            .clone();
        (
            b["history_buckets"].as_u64().unwrap(),
            b["history_first_bucket"].as_u64().unwrap(),
        )
    };
    wait_until(
        "a few history buckets recorded",
        Duration::from_secs(15),
        || async {
            let v = load(&eps)?;
            (history(&v, 1).0 >= 4).then_some(())
        },
    )
    .await;
    // A whole slot with writes has been recorded: then the writes stop, so
    // whatever the next leader knows of them comes from the recorded slots.
    // The first slot wholly after the writes began must be in the Raft log
    // (what the state machine holds, not what the leader's clock suggests).
    let slot_ms = 5 * 400;
    let full_slot = produced_from / slot_ms + 1;
    wait_until(
        "a slot with writes recorded through Raft",
        Duration::from_secs(20),
        || async {
            let v = load(&eps)?;
            let b1 = (v["broker_loads"].as_array()?.iter()).find(|b| b["broker_id"] == 1)?;
            (b1["recorded_partition_slot"].as_u64()? >= full_slot).then_some(())
        },
    )
    .await;
    producer.stop();
    wait_until(
        "the leader sees t-0's writes stop",
        Duration::from_secs(10),
        || async {
            (partition_t0_of_broker_1(&eps)["bytes_in_per_sec"].as_f64()? == 0.0).then_some(())
        },
    )
    .await;
    let t0 = partition_t0_of_broker_1(&eps);
    assert!(t0["bytes_in_p95"].as_f64().unwrap() > 0.0, "{t0}");
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let killed_at_bucket = now_ms() / 400;
    c.kill(leader);
    let survivors: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.id != leader)
        .map(|n| n.admin.clone())
        .collect();
    let eps2 = survivors.join(",");
    let v = wait_until(
        "the new leader collects",
        Duration::from_secs(15),
        || async {
            let v = load(&eps2)?;
            (!broker_state(&v, 1).0 && !broker_state(&v, 2).0).then_some(v)
        },
    )
    .await;
    let (buckets, first) = history(&v, 1);
    assert!(
        first < killed_at_bucket && buckets >= 3,
        "the new leader holds history from before the kill: first bucket {first}, killed at {killed_at_bucket}, {buckets} buckets"
    );
    // …and per-partition history: t-0's writes, which stopped before the
    // kill, from more buckets than the new leader has collected itself.
    let t0 = partition_t0_of_broker_1(&eps2);
    let own_buckets = now_ms() / 400 - killed_at_bucket + 1;
    let p95 = t0["bytes_in_p95"].as_f64().unwrap();
    assert!(
        p95 > 100.0 && p95 < 20_000.0,
        "the recorded writes (≈1,120 B/s) show in the new leader's p95: {t0}"
    );
    assert!(
        t0["history_buckets"].as_u64().unwrap() > own_buckets,
        "seeded buckets: {t0}, own buckets at most {own_buckets}"
    );

    // Top-N queries and errors.
    let (code, out, err) = cli(&[
        "--endpoints",
        &eps2,
        "load",
        "disks",
        "--cluster",
        "k1",
        "--top",
        "2",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let disks: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(!disks.is_empty() && disks.len() <= 2, "{out}");
    let (code, out, err) = cli(&[
        "--endpoints",
        &eps2,
        "load",
        "partitions",
        "--cluster",
        "k1",
        "--top",
        "3",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let parts: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p["topic"] == "t"));
    let (code, _, err) = cli(&["--endpoints", &eps2, "load", "cluster", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim(), r#"error: NOT_FOUND: cluster "nope" not found"#);
}

/// Every query of `deploy/grafana/guardian.json` and of
/// `deploy/prometheus/alerts.yml` parses as PromQL and names only metrics
/// the controller exposes (their `# TYPE` lines in `exposed`).
fn dashboards_query_what_is_exposed(exposed: &str) {
    use promql_parser::parser::Expr;
    struct Names(Vec<String>);
    impl promql_parser::util::ExprVisitor for Names {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            match e {
                Expr::VectorSelector(v) => self.0.extend(v.name.clone()),
                Expr::MatrixSelector(m) => self.0.extend(m.vs.name.clone()),
                _ => {}
            }
            Ok(true)
        }
    }
    let types: Vec<&str> = exposed
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/guardian.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    exprs.extend(
        rules
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr: "))
            .map(str::to_string),
    );
    assert!(exprs.len() > 20, "{exprs:?}");
    for q in &exprs {
        let e = promql_parser::parser::parse(q).unwrap_or_else(|err| panic!("{q}: {err}"));
        let mut names = Names(Vec::new());
        promql_parser::util::walk_expr(&mut names, &e).unwrap();
        assert!(!names.0.is_empty(), "{q} names no metric");
        for n in names.0 {
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(&n);
            assert!(
                types.contains(&base) || types.contains(&n.as_str()),
                "{q}: {n} is not exposed by /metrics"
            );
        }
    }
}
