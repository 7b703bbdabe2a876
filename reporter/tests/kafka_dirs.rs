//! The real `guardian-reporter` binary on directories in Kafka's on-disk
//! format that the test writes and grows.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use guardian_proto::domain::KafkaUuid;
use guardian_proto::pb;
use guardian_proto::pb::reporter_client::ReporterClient;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_guardian-reporter");

/// Appends `n` v2 record batches of `records` records each (header fields
/// that matter: base offset, length, magic 2, last offset delta).
fn append_batches(log: &Path, mut base: i64, n: usize, records: i32, payload: usize) -> i64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    for _ in 0..n {
        let body_len = 49 + payload; // bytes after the 12-byte prefix
        let mut b = Vec::with_capacity(12 + body_len);
        b.extend_from_slice(&base.to_be_bytes());
        b.extend_from_slice(&(body_len as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&0u32.to_be_bytes()); // crc (not checked)
        b.extend_from_slice(&0u16.to_be_bytes()); // attributes
        b.extend_from_slice(&(records - 1).to_be_bytes()); // last offset delta
        b.resize(12 + body_len, 0x61);
        f.write_all(&b).unwrap();
        base += records as i64;
    }
    base
}

struct Broker {
    dir: tempfile::TempDir,
    topic_id: KafkaUuid,
}

impl Broker {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meta.properties"),
            "#\n#Sun Nov 22 04:00:00 UTC 2026\nnode.id=7\nversion=1\ncluster.id=Fy2jq5gDRvG0iQEetx3Bjg\ndirectory.id=KJtFdoi5RdSiRp1D8sZFGg\n",
        )
        .unwrap();
        let b = Broker {
            dir,
            topic_id: KafkaUuid::from_random_bytes([9; 16]),
        };
        for p in 0..3 {
            let pd = b.part(p);
            std::fs::create_dir_all(&pd).unwrap();
            std::fs::write(
                pd.join("partition.metadata"),
                format!("version: 0\ntopic_id: {}\n", b.topic_id),
            )
            .unwrap();
            // Two segments: 0..=99 and 100.. (active), 10 records per batch.
            append_batches(&pd.join("00000000000000000000.log"), 0, 10, 10, 100);
            append_batches(&pd.join("00000000000000000100.log"), 100, 5, 10, 100);
            // Preallocated, mostly empty active index.
            std::fs::write(pd.join("00000000000000000100.index"), vec![0u8; 4096]).unwrap();
        }
        b.checkpoints(&[(0, 140), (1, 130), (2, 150)]);
        b
    }

    fn part(&self, p: i32) -> std::path::PathBuf {
        self.dir.path().join(format!("orders.v1-{p}"))
    }

    fn checkpoints(&self, hw: &[(i32, i64)]) {
        let body = |v: &[(i32, i64)]| {
            let mut s = format!("0\n{}\n", v.len());
            for (p, o) in v {
                s.push_str(&format!("orders.v1 {p} {o}\n"));
            }
            s
        };
        let d = self.dir.path();
        std::fs::write(d.join("replication-offset-checkpoint"), body(hw)).unwrap();
        std::fs::write(d.join("recovery-point-offset-checkpoint"), body(hw)).unwrap();
        std::fs::write(
            d.join("log-start-offset-checkpoint"),
            body(&[(0, 20), (1, 0), (2, 0)]),
        )
        .unwrap();
    }
}

fn snapshot(dir: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["snapshot", "--log-dir", dir.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn part<'a>(s: &'a Value, topic: &str, p: i64, future: bool) -> &'a Value {
    s["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["topic"] == topic && x["partition"] == p && x["future"] == future)
        .unwrap_or_else(|| panic!("no {topic}-{p} (future {future}) in {s}"))
}

#[test]
fn snapshot_reads_kafka_log_dirs() {
    let b = Broker::new();
    let s = snapshot(b.dir.path());
    assert_eq!(s["broker_id"], 7);
    assert_eq!(s["cluster_id"], "Fy2jq5gDRvG0iQEetx3Bjg");
    assert_eq!(s["warnings"].as_array().unwrap().len(), 0, "{s}");
    let p0 = part(&s, "orders.v1", 0, false);
    assert_eq!(p0["topic_id"], b.topic_id.to_string());
    assert_eq!(p0["log_dir"], b.dir.path().to_str().unwrap());
    assert_eq!(p0["segments"], 2);
    assert_eq!(
        p0["log_start_offset"], 20,
        "from log-start-offset-checkpoint"
    );
    assert_eq!(p0["log_end_offset"], 150, "last batch 140..=149");
    assert_eq!(p0["high_watermark"], 140);
    assert_eq!(p0["size_bytes"], 15 * (12 + 49 + 100));
    let d = &s["log_dirs"][0];
    assert_eq!(d["path"], b.dir.path().to_str().unwrap());
    assert!(d["capacity_bytes"].as_u64().unwrap() > 0);
    assert!(d["free_bytes"].as_u64().unwrap() <= d["capacity_bytes"].as_u64().unwrap());
    assert!(!d["device"].as_str().unwrap().is_empty());
    assert_eq!(d["directory_id"], "KJtFdoi5RdSiRp1D8sZFGg");
}

#[test]
fn damaged_and_foreign_files_are_warnings() {
    let b = Broker::new();
    let d = b.dir.path();
    // A half-written checkpoint, a foreign dir, a bad segment name, a torn
    // last batch, garbage partition.metadata, a pending deletion.
    std::fs::write(
        d.join("replication-offset-checkpoint"),
        "0\n3\norders.v1 0 140\norders.v1 1",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("lost+found")).unwrap();
    std::fs::write(b.part(1).join("notes.log"), "x").unwrap();
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(b.part(2).join("00000000000000000100.log"))
        .unwrap();
    torn.write_all(&150i64.to_be_bytes()).unwrap();
    torn.write_all(&1000i32.to_be_bytes()).unwrap();
    std::fs::write(b.part(0).join("partition.metadata"), "\u{0}\u{0}\u{7}").unwrap();
    std::fs::create_dir_all(d.join("orders.v1-9.0123456789abcdef0123456789abcdef-delete")).unwrap();
    let s = snapshot(d);
    let w: Vec<String> = s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert!(
        w.iter()
            .any(|x| x.contains("replication-offset-checkpoint")),
        "{w:?}"
    );
    assert!(w.iter().any(|x| x.contains("lost+found")), "{w:?}");
    assert!(w.iter().any(|x| x.contains("notes.log")), "{w:?}");
    assert!(w.iter().any(|x| x.contains("partition.metadata")), "{w:?}");
    // Everything else is still reported.
    assert_eq!(
        part(&s, "orders.v1", 2, false)["log_end_offset"],
        150,
        "the torn batch is not counted"
    );
    assert_eq!(part(&s, "orders.v1", 0, false)["high_watermark"], 140);
    // Topic ids are per (interned) topic: the other partitions still carry it.
    assert_eq!(
        part(&s, "orders.v1", 0, false)["topic_id"],
        b.topic_id.to_string()
    );
    assert_eq!(s["pending_deletions"].as_array().unwrap().len(), 1);
    // No meta.properties at all: a warning, not a failure.
    std::fs::remove_file(d.join("meta.properties")).unwrap();
    let s = snapshot(d);
    assert_eq!(s["broker_id"], -1);
}

struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Served {
    let mut child = Command::new(BIN)
        .args([
            "--log-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    Served(child, v["listening"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn served_snapshots_track_growth_and_moves() {
    let b = Broker::new();
    let srv = serve(b.dir.path());
    let mut c = ReporterClient::connect(format!("http://{}", srv.1))
        .await
        .unwrap();
    let get = |c: &mut ReporterClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move {
            c.get_snapshot(pb::GetSnapshotRequest {})
                .await
                .unwrap()
                .into_inner()
        }
    };
    let s1 = get(&mut c).await;
    assert_eq!(s1.broker_id, 7);
    let t = s1.partitions.clone().unwrap();
    assert_eq!(
        t.topics,
        vec!["orders.v1".to_string()],
        "topics are interned"
    );
    assert_eq!(t.partition.len(), 3);
    assert!(
        t.bytes_in_per_sec.iter().all(|r| *r == 0.0),
        "no rate on the first sample"
    );

    // Grow partition 1 (30 records), roll a new segment on partition 2,
    // rewrite the checkpoints, and start a move of partition 0.
    std::thread::sleep(Duration::from_millis(300));
    append_batches(&b.part(1).join("00000000000000000100.log"), 150, 3, 10, 100);
    append_batches(&b.part(2).join("00000000000000000150.log"), 150, 2, 10, 100);
    b.checkpoints(&[(0, 150), (1, 180), (2, 170)]);
    let fut = b
        .dir
        .path()
        .join("orders.v1-0.0123456789abcdef0123456789abcdef-future");
    std::fs::create_dir_all(&fut).unwrap();
    append_batches(&fut.join("00000000000000000020.log"), 20, 2, 10, 100);

    let s2 = get(&mut c).await;
    assert!(s2.interval_secs > 0.2);
    let t = s2.partitions.clone().unwrap();
    let idx = |p: i32, fut: bool| {
        (0..t.partition.len())
            .find(|&i| t.partition[i] == p && t.future[i] == fut)
            .unwrap()
    };
    let p1 = idx(1, false);
    assert_eq!(t.log_end_offset[p1], 180);
    assert_eq!(t.high_watermark[p1], 180);
    let expect = 30.0 / s2.interval_secs;
    assert!(
        (t.messages_in_per_sec[p1] - expect).abs() < expect * 0.2,
        "{} vs {expect}",
        t.messages_in_per_sec[p1]
    );
    assert!(t.bytes_in_per_sec[p1] > 0.0);
    let p2 = idx(2, false);
    assert_eq!((t.segments[p2], t.log_end_offset[p2]), (3, 170));
    let f = idx(0, true);
    assert_eq!((t.log_start_offset[f], t.log_end_offset[f]), (20, 40));
    assert_eq!(t.high_watermark[f], -1);
    assert!(s2.warnings.is_empty(), "{:?}", s2.warnings);

    // /healthz and /metrics over HTTP/1.1 on the same port.
    for (path, want) in [
        ("/healthz", "ok"),
        ("/metrics", "guardian_reporter_snapshots_total 2"),
    ] {
        let mut s = std::net::TcpStream::connect(&srv.1).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains(want), "{body}");
    }
}

/// A broker's Prometheus endpoint (what the JMX exporter serves): every
/// request sees the counters 1,000 bytes further along.
fn metrics_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = format!(
                "# TYPE kafka_server_brokertopicmetrics_bytesin_total counter\n\
                 kafka_server_brokertopicmetrics_bytesin_total{{topic=\"orders.v1\",}} {}\n\
                 kafka_server_brokertopicmetrics_bytesin_total {}\n\
                 kafka_server_replicamanager_underreplicatedpartitions 1.0\n\
                 kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent 0.8\n\
                 kafka_network_requestmetrics_totaltimems{{request=\"Produce\",quantile=\"0.99\",}} 7.0\n",
                n * 1000,
                n * 1000
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

#[tokio::test]
async fn broker_metrics_are_scraped_and_a_dead_endpoint_is_a_warning() {
    let b = Broker::new();
    let url = metrics_server();
    let mut child = Command::new(BIN)
        .args([
            "--log-dir",
            b.dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--broker-metrics",
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = serde_json::from_str::<Value>(&line).unwrap()["listening"]
        .as_str()
        .unwrap()
        .to_string();
    let srv = Served(child, addr);
    let mut c = ReporterClient::connect(format!("http://{}", srv.1))
        .await
        .unwrap();
    let first = c
        .get_snapshot(pb::GetSnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let m = first.broker_metrics.unwrap();
    assert!(m.scraped, "{:?}", first.warnings);
    assert_eq!(m.under_replicated_partitions, Some(1.0));
    assert_eq!(m.request_handler_idle, Some(0.8));
    assert_eq!(m.request_p99_ms["Produce"], 7.0);
    std::thread::sleep(Duration::from_millis(200));
    let second = c
        .get_snapshot(pb::GetSnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let m = second.broker_metrics.unwrap();
    assert!(m.bytes_in_per_sec > 0.0);
    let t = m.topics.iter().find(|t| t.topic == "orders.v1").unwrap();
    assert!(t.bytes_in_per_sec > 0.0);

    // Nothing listening: the snapshot is still served, with a warning.
    let out = Command::new(BIN)
        .args([
            "snapshot",
            "--log-dir",
            b.dir.path().to_str().unwrap(),
            "--broker-metrics",
            "http://127.0.0.1:1/metrics",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["broker_metrics"]["scraped"], false);
    assert!(s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("broker metrics")));
    assert_eq!(part(&s, "orders.v1", 1, false)["log_end_offset"], 150);
}
