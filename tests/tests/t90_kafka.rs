//! Real Apache Kafka (KRaft, from the Maven jars) comes up in the harness
//! and answers Guardian's own client: ApiVersions is negotiated and
//! Metadata lists every broker with its rack, on both layouts.

use guardian_tests::kafka::{KafkaCluster, Layout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combined_node_comes_up_and_answers() {
    let started = std::time::Instant::now();
    let one = KafkaCluster::start(Layout::Combined).await;
    let combined_s = started.elapsed().as_secs_f64();
    let m = one.metadata().await.unwrap();
    assert_eq!(m.cluster_id.as_deref(), Some(one.cluster_id.as_str()));
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].id, 1);
    assert_eq!(m.brokers[0].rack.as_deref(), Some("r1"));
    assert_eq!(
        format!("{}:{}", m.brokers[0].host, m.brokers[0].port),
        one.bootstrap()[0]
    );
    eprintln!("kafka start: combined node {combined_s:.1} s");
}

/// One controller and three brokers: Metadata lists the brokers with their
/// racks (not the controller); topics created with a manual assignment and
/// configs land where asked;
/// each broker's DescribeLogDirs names its two dirs exactly as configured,
/// with their filesystem's bytes, and holds the replicas it was given;
/// refusals come back typed, per topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_topics_and_log_dirs_on_real_kafka() {
    use guardian_kafka::{KafkaClient, NewTopic};
    use std::time::Duration;
    let started = std::time::Instant::now();
    let four = KafkaCluster::start(Layout::ControllerAndThreeBrokers).await;
    let four_s = started.elapsed().as_secs_f64();
    eprintln!("kafka start: 1 controller + 3 brokers {four_s:.1} s");

    let m = four.metadata().await.unwrap();
    assert_eq!(m.cluster_id.as_deref(), Some(four.cluster_id.as_str()));
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
    for n in four.nodes.iter().filter(|n| n.broker_addr.is_some()) {
        assert_eq!(n.log_dirs.len(), 2);
    }
    let k = four;
    let admin = KafkaClient::new(&k.bootstrap(), Duration::from_secs(10));
    let topic = NewTopic {
        name: "t90-manual".into(),
        assignment: vec![vec![1, 2], vec![2, 3], vec![3, 1]],
        configs: vec![("retention.ms".into(), "3600000".into())],
        ..Default::default()
    };
    let r = admin
        .create_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    r[0].1.as_ref().unwrap();
    // Brokers learn of the topic from the controller a moment later: wait
    // (on Metadata) until every partition has a leader.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = admin.metadata().await.unwrap();
        let led = m
            .topics
            .iter()
            .find(|t| t.name == "t90-manual")
            .is_some_and(|t| t.partitions.len() == 3 && t.partitions.iter().all(|p| p.leader >= 0));
        if led {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "t90-manual not led: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let t = m.topics.iter().find(|t| t.name == "t90-manual").unwrap();
    let replicas: Vec<Vec<i32>> = t.partitions.iter().map(|p| p.replicas.clone()).collect();
    assert_eq!(replicas, topic.assignment);
    assert_ne!(t.id, [0; 16]);
    // Creating it again: refused, typed, named.
    let r = admin
        .create_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    let e = r[0].1.as_ref().unwrap_err();
    assert_eq!(e.kafka_name(), Some("TopicAlreadyExists"), "{e}");
    assert!(e.to_string().contains("t90-manual"), "{e}");
    // Each broker's dirs, exactly as configured, with their replicas (a
    // follower creates its replica when it catches up with the metadata:
    // wait on DescribeLogDirs until it holds what it was assigned).
    for n in k.nodes.iter().filter(|n| n.broker_addr.is_some()) {
        let want: Vec<i32> = (0..3)
            .filter(|p| topic.assignment[*p as usize].contains(&n.id))
            .collect();
        let held = |dirs: &[guardian_kafka::LogDirInfo]| {
            let mut h: Vec<i32> = dirs
                .iter()
                .flat_map(|d| d.replicas.iter())
                .filter(|r| r.topic == "t90-manual")
                .map(|r| r.partition)
                .collect();
            h.sort();
            h
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let dirs = loop {
            let dirs = admin.describe_log_dirs(n.id).await.unwrap();
            if held(&dirs) == want || std::time::Instant::now() > deadline {
                break dirs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let paths: Vec<String> = dirs.iter().map(|d| d.path.clone()).collect();
        let configured: Vec<String> = n.log_dirs.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(paths, configured, "broker {}", n.id);
        for d in &dirs {
            assert!(d.error.is_none(), "{d:?}");
            assert!(d.total_bytes.unwrap() >= d.usable_bytes.unwrap(), "{d:?}");
            assert!(d.usable_bytes.unwrap() > 0, "{d:?}");
        }
        assert_eq!(held(&dirs), want, "broker {}", n.id);
    }
    // An assignment naming a broker that does not exist: refused, typed.
    let bad = NewTopic {
        name: "t90-bad".into(),
        assignment: vec![vec![1, 9]],
        ..Default::default()
    };
    let r = admin.create_topics(&[bad]).await.unwrap();
    assert!(r[0].1.is_err());
    // Delete: gone from Metadata; deleting it again names the topic.
    let r = admin
        .delete_topics(&["t90-manual".to_string()])
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    let r = admin
        .delete_topics(&["t90-manual".to_string()])
        .await
        .unwrap();
    let e = r[0].1.as_ref().unwrap_err();
    assert_eq!(e.kafka_name(), Some("UnknownTopicOrPartition"), "{e}");
}
