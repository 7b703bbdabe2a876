//! Real data on a shared 1+3 cluster (read-mostly: each test creates its
//! own topics, reads, and deletes them; nothing broker-global changes).
//!
//! - brokers and their dirs exactly as configured, with filesystem bytes;
//! - rdkafka produces; ListOffsets (to each leader) agrees;
//! - a real consumer group that committed part-way: its lag;
//! - the reporter on a real broker: per-partition size, log end offset,
//!   high watermark and topic id agree with DescribeLogDirs, ListOffsets
//!   and Metadata; `--broker-metrics` reads the JMX exporter and its
//!   byte rates move under load.

use std::time::Duration;

use guardian_kafka::*;
use guardian_tests::conformance::{self, eventually};
use guardian_tests::kafka::{data, KafkaCluster, Layout};

/// Addresses and dirs of the shared cluster, without holding it.
async fn cluster() -> (
    Vec<String>,
    Vec<(i32, Vec<std::path::PathBuf>, Option<String>)>,
) {
    let k = KafkaCluster::shared(Layout::ControllerAndThreeBrokers)
        .await
        .lock()
        .await;
    let nodes = k
        .nodes
        .iter()
        .filter(|n| n.broker_addr.is_some())
        .map(|n| (n.id, n.log_dirs.clone(), n.metrics_url.clone()))
        .collect();
    (k.bootstrap(), nodes)
}

async fn topic(a: &KafkaClient, name: &str, assignment: Vec<Vec<i32>>) {
    conformance::create(a, name, assignment, &[("segment.bytes", "1048576")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_and_dirs_exactly_as_configured() {
    let (bootstrap, nodes) = cluster().await;
    let a = KafkaClient::new(&bootstrap, Duration::from_secs(10));
    let m = a.metadata().await.unwrap();
    let listed: Vec<(i32, Option<&str>)> = m
        .brokers
        .iter()
        .map(|b| (b.id, b.rack.as_deref()))
        .collect();
    // The controller (100) is not a broker.
    assert_eq!(
        listed,
        vec![(1, Some("r1")), (2, Some("r2")), (3, Some("r3"))]
    );
    for (id, dirs, _) in &nodes {
        let got = a.describe_log_dirs(*id).await.unwrap();
        let paths: Vec<String> = got.iter().map(|d| d.path.clone()).collect();
        let configured: Vec<String> = dirs.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(paths, configured, "broker {id}");
        for d in &got {
            assert!(
                d.total_bytes.unwrap() >= d.usable_bytes.unwrap() && d.usable_bytes.unwrap() > 0,
                "{d:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_a_real_groups_lag() {
    let (bootstrap, _) = cluster().await;
    let a = KafkaClient::new(&bootstrap, Duration::from_secs(10));
    let name = "t92-lag";
    topic(&a, name, vec![vec![2, 3]]).await;
    let last = data::produce(&bootstrap, name, 0, 100, 100).await;
    assert_eq!(last, 99);
    let tp = TopicPartition::new(name, 0);
    let r = a
        .list_offsets(std::slice::from_ref(&tp), OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap(), &100);
    let r = a
        .list_offsets(std::slice::from_ref(&tp), OffsetSpec::Earliest)
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap(), &0);
    // A consumer reads 40, commits, and leaves.
    let (b, n) = (bootstrap.clone(), name.to_string());
    tokio::task::spawn_blocking(move || data::consume_and_commit(&b, "t92-group", &n, 40))
        .await
        .unwrap();
    let committed = a.committed_offsets("t92-group").await.unwrap();
    assert_eq!(committed, vec![(tp.clone(), 40)]);
    let lag = a.consumer_lag("t92-group").await.unwrap();
    assert_eq!(
        lag,
        vec![PartitionLag {
            topic: name.into(),
            partition: 0,
            committed: 40,
            log_end: 100,
            lag: 60
        }]
    );
    let groups = a.list_groups().await.unwrap();
    let g = groups
        .iter()
        .find(|g| g.group_id == "t92-group")
        .expect("listed");
    assert_eq!(g.protocol_type, "consumer");
    let d = eventually("the group empty after its consumer left", || async {
        let d = a.describe_group("t92-group").await.ok()?;
        (d.state == "Empty").then_some(d)
    })
    .await;
    assert!(d.members.is_empty(), "{d:?}");
    let r = a.delete_topics(&[name.to_string()]).await.unwrap();
    r[0].1.as_ref().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reporter_agrees_with_kafka() {
    let (bootstrap, nodes) = cluster().await;
    let a = KafkaClient::new(&bootstrap, Duration::from_secs(10));
    let name = "t92-reporter";
    topic(&a, name, vec![vec![1, 2], vec![1, 3]]).await;
    let (dirs, url) = nodes
        .iter()
        .find(|n| n.0 == 1)
        .map(|n| (n.1.clone(), n.2.clone()))
        .unwrap();
    let sampler = std::cell::RefCell::new(
        guardian_reporter::sampler::Sampler::new(dirs).with_broker_metrics(url),
    );
    sampler.borrow_mut().sample();
    // 3 MiB into partition 0 rolls segments (1 MiB each); 10 records into 1.
    data::produce(&bootstrap, name, 0, 192, 16 * 1024).await;
    data::produce(&bootstrap, name, 1, 10, 100).await;
    let m = a.metadata().await.unwrap();
    let topic_id = m.topics.iter().find(|t| t.name == name).unwrap().id;
    // The high-watermark checkpoint is written every 500 ms: wait until
    // the reporter's view matches Kafka's.
    let (snap, kafka) = eventually(
        "the reporter agreeing with DescribeLogDirs and ListOffsets",
        || async {
            let snap = sampler.borrow_mut().sample();
            let pt = snap.partitions.clone()?;
            let dirs = a.describe_log_dirs(1).await.ok()?;
            let ends = a
                .list_offsets(
                    &[TopicPartition::new(name, 0), TopicPartition::new(name, 1)],
                    OffsetSpec::Latest,
                )
                .await
                .ok()?;
            let mut rows = Vec::new();
            let mut want = Vec::new();
            for p in 0..2 {
                let i = (0..pt.partition.len()).find(|i| {
                    pt.topics[pt.topic_index[*i] as usize] == name && pt.partition[*i] == p
                })?;
                let dir = &snap.log_dirs[pt.log_dir_index[i] as usize].path;
                rows.push((
                    p,
                    dir.clone(),
                    pt.size_bytes[i] as i64,
                    pt.log_end_offset[i],
                    pt.high_watermark[i],
                    pt.topic_ids[pt.topic_index[i] as usize].clone(),
                ));
                let d = dirs.iter().find(|d| {
                    d.replicas
                        .iter()
                        .any(|r| r.topic == name && r.partition == p)
                })?;
                let r = d
                    .replicas
                    .iter()
                    .find(|r| r.topic == name && r.partition == p)?;
                let end = *ends[p as usize].1.as_ref().ok()?;
                want.push((p, d.path.clone(), r.size_bytes, end, end, topic_id.to_vec()));
            }
            (rows == want).then_some((snap, want))
        },
    )
    .await;
    assert_eq!(kafka[0].3, 192);
    let pt = snap.partitions.unwrap();
    let i0 = (0..pt.partition.len())
        .find(|i| pt.topics[pt.topic_index[*i] as usize] == name && pt.partition[*i] == 0)
        .unwrap();
    assert!(
        pt.segments[i0] >= 3,
        "3 MiB in 1 MiB segments: {} segments",
        pt.segments[i0]
    );
    // The JMX exporter: bytes in rise with load; the gauges are read.
    let bm = snap.broker_metrics.expect("broker metrics");
    assert!(bm.scraped, "warnings: {:?}", snap.warnings);
    assert!(bm.under_replicated_partitions.is_some(), "{bm:?}");
    assert!(!bm.request_p99_ms.is_empty(), "{bm:?}");
    data::produce(&bootstrap, name, 0, 64, 16 * 1024).await;
    let s = sampler.borrow_mut().sample();
    let bm = s.broker_metrics.expect("broker metrics");
    assert!(bm.bytes_in_per_sec > 0.0, "{bm:?} {:?}", s.warnings);
    let t = bm
        .topics
        .iter()
        .find(|t| t.topic == name)
        .expect("the topic's rates");
    assert!(t.bytes_in_per_sec > 0.0, "{t:?}");
    let r = a.delete_topics(&[name.to_string()]).await.unwrap();
    r[0].1.as_ref().unwrap();
}

/// `guardian cluster discover` on a real cluster: a dry run reports and
/// writes nothing; the real run records the Kafka cluster id and every
/// broker with its dirs exactly as Kafka reports them (a registered
/// capacity wins); a registered broker Kafka does not list is reported and
/// kept; a second run changes nothing; unreachable bootstrap servers are a
/// clear error naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_registers_every_broker_as_kafka_reports_it() {
    use guardian_proto::pb;
    use guardian_tests::{cli, TestCluster};
    let (bootstrap, nodes) = cluster().await;
    let kafka_id = KafkaCluster::shared(Layout::ControllerAndThreeBrokers)
        .await
        .lock()
        .await
        .cluster_id
        .clone();
    let g = TestCluster::start(1).await;
    let cl = g.client();
    let add = |c: pb::Cluster| {
        let cl = &cl;
        async move {
            cl.call(|mut s| {
                let c = c.clone();
                async move {
                    s.add_cluster(pb::AddClusterRequest { cluster: Some(c) })
                        .await
                }
            })
            .await
            .unwrap()
        }
    };
    add(pb::Cluster {
        name: "t92".into(),
        bootstrap_servers: bootstrap.clone(),
        idc: "east".into(),
        ..Default::default()
    })
    .await;
    let dirs2: Vec<String> = nodes
        .iter()
        .find(|n| n.0 == 2)
        .unwrap()
        .1
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    for (id, host, dirs) in [
        (
            2,
            "old-host",
            vec![pb::LogDir {
                path: dirs2[0].clone(),
                capacity_bytes: 4 << 40,
            }],
        ),
        (
            7,
            "gone",
            vec![pb::LogDir {
                path: "/data/7".into(),
                capacity_bytes: 1 << 40,
            }],
        ),
    ] {
        let b = pb::Broker {
            cluster: "t92".into(),
            broker_id: id,
            host: host.into(),
            rack: "r9".into(),
            reporter_endpoint: format!("{host}:9300"),
            log_dirs: dirs,
            ..Default::default()
        };
        cl.call(|mut s| {
            let b = b.clone();
            async move { s.add_broker(pb::AddBrokerRequest { broker: Some(b) }).await }
        })
        .await
        .unwrap();
    }
    let eps = g.endpoints().join(",");
    let list = || async {
        cl.call(|mut s| async move {
            s.list_brokers(pb::ListBrokersRequest {
                cluster: "t92".into(),
                stale: false,
            })
            .await
        })
        .await
        .unwrap()
        .brokers
    };
    let before = list().await;
    // Dry run: the report, nothing written.
    let (code, out, err) = cli(&[
        "--endpoints",
        &eps,
        "-o",
        "json",
        "cluster",
        "discover",
        "t92",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kafka_cluster_id"], kafka_id.as_str());
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["missing_broker_ids"], serde_json::json!([7]));
    let changes: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(
        changes.iter().any(|c| c.contains("Kafka cluster id")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("broker 1: registered")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c == "broker 2: host old-host -> 127.0.0.1"),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with(&format!("broker 2: log dir {} added", dirs2[1]))),
        "{changes:?}"
    );
    assert_eq!(list().await, before, "a dry run writes nothing");
    // The real run.
    let (code, out, err) = cli(&["--endpoints", &eps, "cluster", "discover", "t92"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("changed:") && out.contains("broker 7: registered but not in the cluster"),
        "{out}"
    );
    let after = list().await;
    assert_eq!(
        after.iter().map(|b| b.broker_id).collect::<Vec<_>>(),
        vec![1, 2, 3, 7]
    );
    let a = KafkaClient::new(&bootstrap, Duration::from_secs(10));
    for (id, dirs, _) in &nodes {
        let b = after.iter().find(|b| b.broker_id == *id).unwrap();
        let paths: Vec<String> = b.log_dirs.iter().map(|d| d.path.clone()).collect();
        let configured: Vec<String> = dirs.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(paths, configured, "broker {id}");
        assert_eq!(b.rack, format!("r{id}"));
        assert_eq!(b.host, "127.0.0.1");
        let kd = a.describe_log_dirs(*id).await.unwrap();
        for (d, k) in b.log_dirs.iter().zip(&kd) {
            let want = if *id == 2 && d.path == dirs2[0] {
                4 << 40
            } else {
                k.total_bytes.unwrap() as u64
            };
            assert_eq!(d.capacity_bytes, want, "broker {id} {}", d.path);
        }
    }
    let b2 = after.iter().find(|b| b.broker_id == 2).unwrap();
    assert_eq!(
        b2.reporter_endpoint, "old-host:9300",
        "what Kafka does not know is kept"
    );
    let c = cl
        .call(|mut s| async move {
            s.get_cluster(pb::GetClusterRequest {
                name: "t92".into(),
                stale: false,
            })
            .await
        })
        .await
        .unwrap();
    assert_eq!(c.kafka_cluster_id, kafka_id);
    // Again: nothing to change.
    let (code, out, err) = cli(&[
        "--endpoints",
        &eps,
        "-o",
        "json",
        "cluster",
        "discover",
        "t92",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changes"], serde_json::json!([]), "{out}");
    // Unreachable bootstrap servers: named in a final error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    add(pb::Cluster {
        name: "t92-nowhere".into(),
        bootstrap_servers: vec![closed.clone()],
        idc: "east".into(),
        ..Default::default()
    })
    .await;
    let (code, _, err) = cli(&["--endpoints", &eps, "cluster", "discover", "t92-nowhere"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("FAILED_PRECONDITION") && err.contains(&closed),
        "{err}"
    );
    let (code, _, err) = cli(&["--endpoints", &eps, "cluster", "discover", "no-such"]);
    assert_ne!(code, 0);
    assert!(err.contains("NOT_FOUND"), "{err}");
}
