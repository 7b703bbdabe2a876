//! Self-healing of an offline log dir on real Kafka (its own 1+3
//! cluster): broker 3's second log dir is a 16 MiB tmpfs; a partition
//! whose broker-3 replica lives there is written until the tmpfs is full
//! and Kafka marks the dir offline (the broker stays up: KRaft JBOD).
//! Guardian's healing proposes moving that replica to another broker (a
//! move within broker 3 is impossible from an offline dir), the approved
//! execution restores the partition's replication factor, the replica in
//! broker 3's healthy dir is untouched, and no throttle is left.
//!
//! Mounting the tmpfs needs root, as CI has on this machine.

use std::time::Duration;

use guardian_kafka::types::ConfigResource;
use guardian_kafka::{KafkaClient, TopicPartition};
use guardian_tests::conformance::{create, eventually};
use guardian_tests::kafka::data::produce;
use guardian_tests::kafka::ops::{own_override, register, run_cli, wait_state};
use guardian_tests::kafka::{KafkaCluster, Layout};
use guardian_tests::{wait_until, TestCluster};

const FILL: &str = "t96-fill";
const KEEP: &str = "t96-keep";

fn config() -> &'static str {
    "[collect]\ninterval-ms = 500\ntimeout-ms = 400\n[governance]\ninterval-ms = 1000\nmigrate-after-rounds = 0\n[executor]\ntick-ms = 100\nthrottle-bytes-per-sec = 20971520\n"
}

/// Moves broker `b`'s replica of `topic`-0 into `dir` and waits until it
/// is there (no `-future` copy left).
async fn place(a: &KafkaClient, b: i32, topic: &str, dir: &str) {
    let tp = TopicPartition::new(topic, 0);
    for (tp, r) in a
        .alter_replica_log_dirs(b, &[(tp.clone(), dir.to_string())])
        .await
        .unwrap()
    {
        r.unwrap_or_else(|e| panic!("{tp} to {dir}: {e}"));
    }
    eventually("the replica in its dir", || async {
        let dirs = a.describe_log_dirs(b).await.ok()?;
        let here = dirs
            .iter()
            .filter(|d| d.path == dir)
            .flat_map(|d| &d.replicas)
            .any(|r| r.topic == topic && !r.is_future);
        let future = dirs
            .iter()
            .flat_map(|d| &d.replicas)
            .any(|r| r.topic == topic && r.is_future);
        (here && !future).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_log_dir_is_healed_onto_another_broker() {
    let k = KafkaCluster::start_with_tmpfs(Layout::ControllerAndThreeBrokers, &[(3, 1, 16 << 20)])
        .await;
    let bootstrap = k.bootstrap();
    let a = KafkaClient::new(&bootstrap, Duration::from_secs(20));
    let b3 = k.nodes.iter().find(|n| n.id == 3).unwrap();
    let (d0, d1) = (
        b3.log_dirs[0].display().to_string(),
        b3.log_dirs[1].display().to_string(),
    );
    create(&a, FILL, vec![vec![1, 3]], &[("segment.bytes", "4194304")]).await;
    create(&a, KEEP, vec![vec![2, 3]], &[]).await;
    place(&a, 3, FILL, &d1).await;
    place(&a, 3, KEEP, &d0).await;
    produce(&bootstrap, KEEP, 0, 100, 1024).await;

    let g = TestCluster::start_with(3, config()).await;
    let eps = register(&g, "t96", &bootstrap).await;

    // 24 MiB into a partition whose broker-3 replica has 16 MiB of room.
    produce(&bootstrap, FILL, 0, 24 * 1024, 1024).await;
    eventually("broker 3's tmpfs dir offline", || async {
        let dirs = a.describe_log_dirs(3).await.ok()?;
        dirs.iter()
            .any(|d| d.path == d1 && d.error.is_some())
            .then_some(())
    })
    .await;

    let heal = wait_until("a healing proposal", Duration::from_secs(90), || async {
        run_cli(&eps, &["rebalance", "list", "--cluster", "t96"])
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|e| e["state"] == "proposed")
    })
    .await;
    let id = heal["id"].as_u64().unwrap();
    let shown = run_cli(&eps, &["rebalance", "show", &id.to_string()]);
    let text = shown.to_string();
    assert!(
        text.contains("log dirs offline") && text.contains(&format!("broker 3 {d1}")),
        "{shown}"
    );
    let tasks = shown["tasks"].as_array().unwrap();
    assert_eq!(
        tasks.len(),
        1,
        "only the offline dir's replica moves: {shown}"
    );
    run_cli(
        &eps,
        &[
            "rebalance",
            "approve",
            &id.to_string(),
            "--rollback-file",
            "/dev/null",
        ],
    );
    wait_state(&eps, id, &["done"]).await;

    let md = a.metadata().await.unwrap();
    let replicas = |t: &str| {
        md.topics
            .iter()
            .find(|x| x.name == t)
            .unwrap()
            .partitions
            .iter()
            .find(|p| p.partition == 0)
            .unwrap()
            .clone()
    };
    let fill = replicas(FILL);
    assert_eq!(fill.replicas.len(), 2, "{fill:?}");
    assert!(
        !fill.replicas.contains(&3) && fill.replicas.contains(&1),
        "{fill:?}"
    );
    eventually("the new replica in sync", || async {
        let md = a.metadata().await.ok()?;
        let p = md.topics.iter().find(|x| x.name == FILL)?.partitions[0].clone();
        (p.isr.len() == 2).then_some(())
    })
    .await;
    assert_eq!(replicas(KEEP).replicas, vec![2, 3]);
    let healing_events = run_cli(&eps, &["events", "--cluster", "t96"]).to_string();
    assert!(
        healing_events.contains("log dirs offline"),
        "{healing_events}"
    );

    // Nothing of the execution's left on the cluster.
    for b in 1..=3 {
        for key in [
            "leader.replication.throttled.rate",
            "follower.replication.throttled.rate",
        ] {
            assert_eq!(
                own_override(&a, &ConfigResource::Broker(b), key).await,
                None,
                "broker {b} {key}"
            );
        }
    }
    for key in [
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    ] {
        assert_eq!(
            own_override(&a, &ConfigResource::Topic(FILL.into()), key).await,
            None,
            "{FILL} {key}"
        );
    }
    assert!(
        run_cli(&eps, &["throttle", "list", "--cluster", "t96"])
            .as_array()
            .is_none_or(|v| v.is_empty()),
        "no governance claim"
    );
}
