//! Real Apache Kafka (KRaft, from the Maven jars) comes up in the harness
//! and answers Guardian's own client: ApiVersions is negotiated and
//! Metadata lists every broker with its rack, on both layouts.

use guardian_tests::kafka::{KafkaCluster, Layout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_comes_up_and_lists_its_brokers() {
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
    drop(one);

    let started = std::time::Instant::now();
    let four = KafkaCluster::start(Layout::ControllerAndThreeBrokers).await;
    let four_s = started.elapsed().as_secs_f64();
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
    eprintln!("kafka start: combined {combined_s:.1} s, 1 controller + 3 brokers {four_s:.1} s");
}
