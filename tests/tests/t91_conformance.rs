//! The admin client on a 1+3 cluster (two log dirs per broker), every test
//! in the serial group: each holds the binary's shared cluster for its
//! whole run and leaves it as found (topics deleted, throttles and quotas
//! removed, brokers running).
//!
//! - the conformance suite (`guardian_tests::conformance`): the same
//!   assertions on real Kafka, on the in-memory model and on the
//!   simulator's wire front end (that model behind Kafka's protocol);
//! - a throttled move between brokers shows its stages (adding/removing)
//!   and finishes once the throttle is lifted;
//! - a throttled move between the dirs of a broker shows its `-future`
//!   replica, to DescribeLogDirs and to the reporter;
//! - a broker SIGKILLed mid-call: a typed error within the deadline, the
//!   rest of the cluster keeps answering, recovery after the restart.

use std::time::{Duration, Instant};

use guardian_kafka::model::ModelBroker;
use guardian_kafka::*;
use guardian_tests::conformance::{self, eventually};
use guardian_tests::kafka::{data, KafkaCluster, Layout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_passes_the_suite() {
    let m = KafkaModel::new(
        "model-cluster",
        vec![
            ModelBroker::new(1, "r1"),
            ModelBroker::new(2, "r2"),
            ModelBroker::new(3, "r3"),
        ],
    );
    conformance::run_all(&m, "t91m").await;
}

/// The simulator's wire front end (the same model behind Kafka's
/// protocol, one listener per broker), through the real admin client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_passes_the_suite_over_the_wire() {
    let brokers: Vec<ModelBroker> = (1..=3)
        .map(|id| ModelBroker::new(id, &format!("r{id}")))
        .collect();
    let sim = guardian_sim::SimCluster::start("t91s", "127.0.0.1", &brokers)
        .await
        .unwrap();
    let a = KafkaClient::new(&sim.bootstrap(), Duration::from_secs(20));
    conformance::run_all(&a, "t91s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kafka_passes_the_suite() {
    let k = KafkaCluster::shared(Layout::ControllerAndThreeBrokers)
        .await
        .lock()
        .await;
    let a = KafkaClient::new(&k.bootstrap(), Duration::from_secs(20));
    conformance::run_all(&a, "t91k").await;
}

async fn topic(a: &KafkaClient, name: &str, assignment: Vec<Vec<i32>>) {
    conformance::create(a, name, assignment, &[]).await;
}

/// Waits until `tp` has no reassignment and exactly `want` as replicas,
/// all in sync.
async fn settles(a: &KafkaClient, tp: &TopicPartition, want: &[i32]) {
    eventually(&format!("{tp} settled on {want:?}"), || async {
        let l = a.list_reassignments(std::slice::from_ref(tp)).await.ok()?;
        let m = a.metadata().await.ok()?;
        let t = m.topics.iter().find(|t| t.name == tp.topic)?;
        let p = &t.partitions[tp.partition as usize];
        (l.is_empty() && p.replicas == want && p.isr.len() == want.len()).then_some(())
    })
    .await;
}

/// Every dynamic throttle config on the brokers and the broker default.
async fn throttles_left(a: &KafkaClient) -> Vec<String> {
    let mut left = Vec::new();
    for r in [
        ConfigResource::Broker(1),
        ConfigResource::Broker(2),
        ConfigResource::Broker(3),
        ConfigResource::BrokerDefault,
    ] {
        for e in a.describe_configs(&r, &[]).await.unwrap() {
            let dynamic = matches!(
                e.source,
                ConfigSource::DynamicBroker | ConfigSource::DynamicDefaultBroker
            );
            if dynamic && (e.name.contains("throttled") || e.name.contains("alter.log.dirs")) {
                left.push(format!("{r}: {}={:?}", e.name, e.value));
            }
        }
    }
    left
}

/// Removes throttles an earlier, failed test of this binary left behind
/// (each test still checks it leaves none itself), so one failure does not
/// fail the rest of the serial group too; says what it removed.
async fn clear_leftovers(a: &KafkaClient) {
    for r in [
        ConfigResource::Broker(1),
        ConfigResource::Broker(2),
        ConfigResource::Broker(3),
        ConfigResource::BrokerDefault,
    ] {
        let own = if r == ConfigResource::BrokerDefault {
            ConfigSource::DynamicDefaultBroker
        } else {
            ConfigSource::DynamicBroker
        };
        for e in a.describe_configs(&r, &[]).await.unwrap() {
            if e.source == own
                && (e.name.contains("throttled") || e.name.contains("alter.log.dirs"))
            {
                eprintln!(
                    "removing {r}: {}={:?}, left by an earlier failed test",
                    e.name, e.value
                );
                a.alter_configs(&r, &[AlterConfigOp::Delete(e.name.clone())])
                    .await
                    .unwrap();
            }
        }
    }
    eventually("no throttle left over", || async {
        throttles_left(a).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_move_between_brokers_shows_its_stages() {
    let k = KafkaCluster::shared(Layout::ControllerAndThreeBrokers)
        .await
        .lock()
        .await;
    let a = KafkaClient::new(&k.bootstrap(), Duration::from_secs(20));
    clear_leftovers(&a).await;
    let name = "t91-throttled-move";
    topic(&a, name, vec![vec![1, 2]]).await;
    data::produce(&k.bootstrap(), name, 0, 256, 16 * 1024).await; // 4 MiB
                                                                  // Throttle the new replica's fetches to 256 KiB/s, as the reassign tool
                                                                  // would: rate on the receiving broker, the replica in the topic's list.
    use AlterConfigOp::*;
    a.alter_configs(
        &ConfigResource::Broker(3),
        &[Set(
            "follower.replication.throttled.rate".into(),
            "262144".into(),
        )],
    )
    .await
    .unwrap();
    let t = ConfigResource::Topic(name.into());
    a.alter_configs(
        &t,
        &[Set(
            "follower.replication.throttled.replicas".into(),
            "0:3".into(),
        )],
    )
    .await
    .unwrap();
    let tp = TopicPartition::new(name, 0);
    let r = a
        .alter_reassignments(&[(tp.clone(), Some(vec![2, 3]))], false)
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    // While it copies: listed with broker 3 adding and broker 1 leaving,
    // and broker 3's replica is smaller than the leader's.
    let seen = eventually("the move in progress", || async {
        let l = a.list_reassignments(std::slice::from_ref(&tp)).await.ok()?;
        let r = l.into_iter().next()?;
        let dirs = a.describe_log_dirs(3).await.ok()?;
        let size = dirs
            .iter()
            .flat_map(|d| &d.replicas)
            .find(|r| r.topic == name)?
            .size_bytes;
        (size > 0).then_some((r, size))
    })
    .await;
    assert_eq!(
        (seen.0.adding.clone(), seen.0.removing.clone()),
        (vec![3], vec![1]),
        "{seen:?}"
    );
    assert_eq!(seen.0.replicas, vec![2, 3, 1]);
    assert!(seen.1 < 4 * 1024 * 1024, "copied {} bytes already", seen.1);
    // Cancel it (a null target): back to brokers 1 and 2.
    let r = a
        .alter_reassignments(&[(tp.clone(), None)], false)
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    // KRaft reverts to the merged list minus the adding replicas, in the
    // merged order: [2, 3, 1] - [3] = [2, 1], not the original [1, 2] — a
    // cancel can change the preferred leader. (Broker 3 deletes its
    // partial copy on its own schedule.)
    settles(&a, &tp, &[2, 1]).await;
    // Again, and this time let it finish.
    let r = a
        .alter_reassignments(&[(tp.clone(), Some(vec![2, 3]))], false)
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    // Lift the throttle: the move finishes, broker 1 leaves.
    a.alter_configs(
        &ConfigResource::Broker(3),
        &[Delete("follower.replication.throttled.rate".into())],
    )
    .await
    .unwrap();
    a.alter_configs(
        &t,
        &[Delete("follower.replication.throttled.replicas".into())],
    )
    .await
    .unwrap();
    settles(&a, &tp, &[2, 3]).await;
    let r = a.delete_topics(&[name.to_string()]).await.unwrap();
    r[0].1.as_ref().unwrap();
    assert_eq!(throttles_left(&a).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_move_between_dirs_shows_its_future_replica() {
    let k = KafkaCluster::shared(Layout::ControllerAndThreeBrokers)
        .await
        .lock()
        .await;
    let a = KafkaClient::new(&k.bootstrap(), Duration::from_secs(20));
    clear_leftovers(&a).await;
    let name = "t91-future";
    topic(&a, name, vec![vec![1]]).await;
    data::produce(&k.bootstrap(), name, 0, 256, 16 * 1024).await; // 4 MiB
    let tp = TopicPartition::new(name, 0);
    let dirs = a.describe_log_dirs(1).await.unwrap();
    let home = dirs
        .iter()
        .find(|d| d.replicas.iter().any(|r| r.topic == name))
        .unwrap()
        .path
        .clone();
    let other = dirs.iter().find(|d| d.path != home).unwrap().path.clone();
    use AlterConfigOp::*;
    const RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
    a.alter_configs(
        &ConfigResource::Broker(1),
        &[Set(RATE.into(), "262144".into())],
    )
    .await
    .unwrap();
    eventually("the dir throttle applied", || async {
        let c = a
            .describe_configs(&ConfigResource::Broker(1), &[RATE])
            .await
            .ok()?;
        (c.first()?.value.as_deref() == Some("262144")).then_some(())
    })
    .await;
    let r = a
        .alter_replica_log_dirs(1, &[(tp.clone(), other.clone())])
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap(), &LogDirMove::MoveStarted);
    // While it copies: a future replica in the destination, to Kafka and
    // to the reporter reading the broker's dirs.
    let future = eventually("a -future replica", || async {
        let dirs = a.describe_log_dirs(1).await.ok()?;
        let d = dirs.iter().find(|d| d.path == other)?;
        d.replicas
            .iter()
            .find(|r| r.topic == name && r.is_future)
            .cloned()
    })
    .await;
    assert!(future.size_bytes < 4 * 1024 * 1024, "{future:?}");
    let node = k.nodes.iter().find(|n| n.id == 1).unwrap();
    let mut sampler = guardian_reporter::sampler::Sampler::new(node.log_dirs.clone());
    let snap = sampler.sample();
    let pt = snap.partitions.unwrap_or_default();
    let futures: Vec<(String, String)> = (0..pt.partition.len())
        .filter(|i| pt.future[*i] && pt.topics[pt.topic_index[*i] as usize] == name)
        .map(|i| {
            (
                pt.topics[pt.topic_index[i] as usize].clone(),
                snap.log_dirs[pt.log_dir_index[i] as usize].path.clone(),
            )
        })
        .collect();
    assert_eq!(
        futures,
        vec![(name.to_string(), other.clone())],
        "warnings: {:?}",
        snap.warnings
    );
    // Lift the throttle: the replica lands in the other dir.
    a.alter_configs(&ConfigResource::Broker(1), &[Delete(RATE.into())])
        .await
        .unwrap();
    eventually("the replica in the other dir", || async {
        let dirs = a.describe_log_dirs(1).await.ok()?;
        let holders: Vec<(&str, bool)> = dirs
            .iter()
            .flat_map(|d| {
                d.replicas
                    .iter()
                    .filter(|r| r.topic == name)
                    .map(move |r| (d.path.as_str(), r.is_future))
            })
            .collect();
        (holders == vec![(other.as_str(), false)]).then_some(())
    })
    .await;
    let r = a.delete_topics(&[name.to_string()]).await.unwrap();
    r[0].1.as_ref().unwrap();
    assert_eq!(throttles_left(&a).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_call_is_a_typed_error_then_recovers() {
    let mut k = KafkaCluster::shared(Layout::ControllerAndThreeBrokers)
        .await
        .lock()
        .await;
    let deadline = Duration::from_secs(4);
    let a = std::sync::Arc::new(KafkaClient::new(&k.bootstrap(), deadline));
    clear_leftovers(&a).await;
    let name = "t91-kill";
    topic(&a, name, vec![vec![3, 1], vec![1, 2]]).await;
    a.describe_log_dirs(3).await.unwrap();
    // Calls to broker 3 in a loop; SIGKILL it while they run.
    let looping = {
        let a = a.clone();
        tokio::spawn(async move {
            loop {
                let t = Instant::now();
                if let Err(e) = a.describe_log_dirs(3).await {
                    return (e, t.elapsed());
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    k.kill(3);
    let (e, took) = tokio::time::timeout(Duration::from_secs(30), looping)
        .await
        .unwrap()
        .unwrap();
    assert!(
        e.is_connection() || matches!(e, KafkaError::UnknownBroker { id: 3 }),
        "{e}"
    );
    assert!(
        took < deadline + Duration::from_secs(2),
        "the error took {took:?}"
    );
    // The others keep answering; partition 0 gets a new leader.
    eventually("broker 1 leads partition 0", || async {
        let m = a.metadata().await.ok()?;
        (m.topics.iter().find(|t| t.name == name)?.partitions[0].leader == 1).then_some(())
    })
    .await;
    let r = a
        .list_offsets(&[TopicPartition::new(name, 0)], OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap(), &0);
    // Back: broker 3 answers again and rejoins the ISR.
    k.restart(3, 3).await;
    eventually("broker 3 back in the ISR", || async {
        a.describe_log_dirs(3).await.ok()?;
        let m = a.metadata().await.ok()?;
        (m.topics.iter().find(|t| t.name == name)?.partitions[0]
            .isr
            .contains(&3))
        .then_some(())
    })
    .await;
    let r = a.delete_topics(&[name.to_string()]).await.unwrap();
    r[0].1.as_ref().unwrap();
}
