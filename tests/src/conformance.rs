//! One conformance suite for [`KafkaAdmin`]: the same assertions run on
//! real Kafka (t91, a 1+3 cluster) and on [`guardian_kafka::KafkaModel`]
//! (t91's model test), so the model cannot drift from Kafka.
//!
//! Needs brokers 1, 2, 3 with two log dirs each. Every check uses its own
//! topics (prefixed), waits on observable state (never a sleep of a fixed
//! length), and leaves the cluster as it found it: topics deleted, configs
//! and quotas removed.

use std::future::Future;
use std::time::{Duration, Instant};

use guardian_kafka::*;

/// How long any one state change may take to show.
const WITHIN: Duration = Duration::from_secs(60);

/// Polls `f` until it gives `Some`, or panics naming `what` after
/// a minute.
pub async fn eventually<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + WITHIN;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {WITHIN:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

/// The Kafka error's name of a result that must have failed.
fn refused<T: std::fmt::Debug>(r: &Result<T, KafkaError>) -> String {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.kafka_name().unwrap_or("(not a Kafka error)").to_string(),
    }
}

/// Creates a topic with a manual assignment and configs and waits until
/// every partition is led with its whole ISR.
pub async fn create<A: KafkaAdmin>(
    a: &A,
    name: &str,
    assignment: Vec<Vec<i32>>,
    configs: &[(&str, &str)],
) {
    let r = a
        .create_topics(&[NewTopic {
            name: name.into(),
            assignment: assignment.clone(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }])
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    wait_replicas(a, name, &assignment).await;
}

/// Waits until Metadata shows `name` with exactly these replicas, each
/// partition led, and no reassignment left.
async fn wait_replicas<A: KafkaAdmin>(a: &A, name: &str, want: &[Vec<i32>]) {
    eventually(&format!("{name} with replicas {want:?}"), || async {
        let m = a.metadata().await.ok()?;
        let t = m.topics.iter().find(|t| t.name == name)?;
        let got: Vec<Vec<i32>> = t.partitions.iter().map(|p| p.replicas.clone()).collect();
        let led = t
            .partitions
            .iter()
            .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len());
        let moving = a
            .list_reassignments(&[])
            .await
            .ok()?
            .iter()
            .any(|r| r.topic == name);
        (got == want && led && !moving).then_some(())
    })
    .await;
}

async fn delete<A: KafkaAdmin>(a: &A, name: &str) {
    let r = a.delete_topics(&[name.to_string()]).await.unwrap();
    r[0].1.as_ref().unwrap();
    eventually(&format!("{name} deleted"), || async {
        let m = a.metadata().await.ok()?;
        (!m.topics.iter().any(|t| t.name == name)).then_some(())
    })
    .await;
}

/// Which dir of `broker` holds `tp` (not a `-future` copy), and whether a
/// future copy exists.
async fn dir_of<A: KafkaAdmin>(a: &A, broker: i32, tp: &TopicPartition) -> Option<(String, bool)> {
    let dirs = a.describe_log_dirs(broker).await.ok()?;
    let mut home = None;
    let mut future = false;
    for d in &dirs {
        for r in &d.replicas {
            if r.topic == tp.topic && r.partition == tp.partition {
                if r.is_future {
                    future = true;
                } else {
                    home = Some(d.path.clone());
                }
            }
        }
    }
    home.map(|h| (h, future))
}

/// Runs every check; `prefix` keeps topic names apart between runs.
pub async fn run_all<A: KafkaAdmin>(a: &A, prefix: &str) {
    cluster(a).await;
    topics(a, prefix).await;
    reassignments(a, prefix).await;
    log_dirs(a, prefix).await;
    configs(a, prefix).await;
    quotas(a).await;
    offsets_and_groups(a, prefix).await;
}

pub async fn cluster<A: KafkaAdmin>(a: &A) {
    let c = a.describe_cluster().await.unwrap();
    let ids: Vec<i32> = c.brokers.iter().map(|b| b.id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!(c.brokers.iter().all(|b| !b.fenced));
    assert!(!c.cluster_id.is_empty());
    let m = a.metadata().await.unwrap();
    assert_eq!(m.cluster_id.as_deref(), Some(c.cluster_id.as_str()));
    for b in 1..=3 {
        let dirs = a.describe_log_dirs(b).await.unwrap();
        assert_eq!(dirs.len(), 2, "broker {b}: {dirs:?}");
        assert!(dirs
            .iter()
            .all(|d| d.error.is_none() && d.total_bytes.unwrap_or(0) > 0));
    }
    let e = a.describe_log_dirs(9).await.unwrap_err();
    assert!(matches!(e, KafkaError::UnknownBroker { id: 9 }), "{e}");
}

pub async fn topics<A: KafkaAdmin>(a: &A, prefix: &str) {
    let name = format!("{prefix}-topics");
    create(
        a,
        &name,
        vec![vec![1, 2], vec![2, 3], vec![3, 1]],
        &[("retention.ms", "3600000")],
    )
    .await;
    let m = a.metadata().await.unwrap();
    let t = m.topics.iter().find(|t| t.name == name).unwrap();
    assert_ne!(t.id, [0; 16]);
    assert_eq!(
        t.partitions.iter().map(|p| p.leader).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Refusals, typed, one per topic.
    let again = NewTopic {
        name: name.clone(),
        assignment: vec![vec![1]],
        ..Default::default()
    };
    let unknown_broker = NewTopic {
        name: format!("{prefix}-bad-broker"),
        assignment: vec![vec![1, 9]],
        ..Default::default()
    };
    let bad_name = NewTopic {
        name: format!("{prefix}/slash"),
        partitions: 1,
        replication_factor: 1,
        ..Default::default()
    };
    let too_many = NewTopic {
        name: format!("{prefix}-rf4"),
        partitions: 1,
        replication_factor: 4,
        ..Default::default()
    };
    let bad_config = NewTopic {
        name: format!("{prefix}-bad-config"),
        partitions: 1,
        replication_factor: 1,
        configs: vec![("no.such.config".into(), "1".into())],
        ..Default::default()
    };
    let r = a
        .create_topics(&[again, unknown_broker, bad_name, too_many, bad_config])
        .await
        .unwrap();
    let names: Vec<String> = r.iter().map(|(_, r)| refused(r)).collect();
    assert_eq!(
        names,
        vec![
            "TopicAlreadyExists",
            "InvalidReplicaAssignment",
            "InvalidTopicException",
            "InvalidReplicationFactor",
            "InvalidConfig"
        ]
    );
    assert!(r[0].1.as_ref().unwrap_err().to_string().contains(&name));
    // Growing: Kafka places the new partition.
    let r = a.create_partitions(&[(name.clone(), 4)]).await.unwrap();
    r[0].1.as_ref().unwrap();
    eventually("a 4th partition", || async {
        let m = a.metadata().await.ok()?;
        let t = m.topics.iter().find(|t| t.name == name)?;
        (t.partitions.len() == 4 && t.partitions[3].leader >= 0).then_some(())
    })
    .await;
    let r = a
        .create_partitions(&[(name.clone(), 2), (format!("{prefix}-none"), 2)])
        .await
        .unwrap();
    assert_eq!(refused(&r[0].1), "InvalidPartitions");
    assert_eq!(refused(&r[1].1), "UnknownTopicOrPartition");
    delete(a, &name).await;
    let r = a.delete_topics(std::slice::from_ref(&name)).await.unwrap();
    assert_eq!(refused(&r[0].1), "UnknownTopicOrPartition");
}

pub async fn reassignments<A: KafkaAdmin>(a: &A, prefix: &str) {
    let name = format!("{prefix}-reassign");
    create(a, &name, vec![vec![1, 2], vec![2, 3]], &[]).await;
    // Move partition 0 from [1,2] to [2,3]; watch it finish.
    let r = a
        .alter_reassignments(&[(tp(&name, 0), Some(vec![2, 3]))], false)
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    wait_replicas(a, &name, &[vec![2, 3], vec![2, 3]]).await;
    let leader = a
        .metadata()
        .await
        .unwrap()
        .topics
        .into_iter()
        .find(|t| t.name == name)
        .unwrap()
        .partitions[0]
        .leader;
    assert!(
        [2, 3].contains(&leader),
        "leader {leader} left with broker 1"
    );
    // Reorder partition 1 to [3,2] and elect the preferred leader.
    let r = a
        .alter_reassignments(&[(tp(&name, 1), Some(vec![3, 2]))], false)
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    wait_replicas(a, &name, &[vec![2, 3], vec![3, 2]]).await;
    let r = a.elect_preferred_leaders(&[tp(&name, 1)]).await.unwrap();
    assert_eq!(r[0].1.as_ref().unwrap(), &Election::Elected);
    eventually("broker 3 leads partition 1", || async {
        let m = a.metadata().await.ok()?;
        let t = m.topics.iter().find(|t| t.name == name)?;
        (t.partitions[1].leader == 3).then_some(())
    })
    .await;
    let r = a
        .elect_preferred_leaders(&[tp(&name, 1), tp(&format!("{prefix}-none"), 0)])
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap(), &Election::NotNeeded);
    assert_eq!(refused(&r[1].1), "UnknownTopicOrPartition");
    // Refusals: nothing to cancel, an unknown broker, an unknown
    // partition, a changed replication factor under the guard.
    let r = a
        .alter_reassignments(
            &[
                (tp(&name, 0), None),
                (tp(&name, 1), Some(vec![1, 9])),
                (tp(&name, 7), Some(vec![1, 2])),
            ],
            false,
        )
        .await
        .unwrap();
    let mut names: Vec<String> = r.iter().map(|(_, r)| refused(r)).collect();
    let r = a
        .alter_reassignments(&[(tp(&name, 0), Some(vec![1, 2, 3]))], false)
        .await
        .unwrap();
    names.push(refused(&r[0].1));
    assert_eq!(
        names,
        vec![
            "NoReassignmentInProgress",
            "InvalidReplicaAssignment",
            "UnknownTopicOrPartition",
            "InvalidReplicationFactor"
        ]
    );
    // Nothing of those started.
    assert!(a
        .list_reassignments(&[])
        .await
        .unwrap()
        .iter()
        .all(|r| r.topic != name));
    delete(a, &name).await;
}

pub async fn log_dirs<A: KafkaAdmin>(a: &A, prefix: &str) {
    let name = format!("{prefix}-dirs");
    create(a, &name, vec![vec![1, 2]], &[]).await;
    let p0 = tp(&name, 0);
    let dirs: Vec<String> = a
        .describe_log_dirs(1)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.path)
        .collect();
    let (home, _) = eventually("broker 1 holds p0", || dir_of(a, 1, &p0)).await;
    let other = dirs.iter().find(|d| **d != home).unwrap().clone();
    // Move p0 on broker 1 to its other dir; watch the future replica finish.
    let r = a
        .alter_replica_log_dirs(1, &[(p0.clone(), other.clone())])
        .await
        .unwrap();
    assert_eq!(r[0].1.as_ref().unwrap(), &LogDirMove::MoveStarted);
    eventually("p0 in the other dir of broker 1", || async {
        let (h, future) = dir_of(a, 1, &p0).await?;
        (h == other && !future).then_some(())
    })
    .await;
    // A dir that is not configured exactly: refused, named.
    let r = a
        .alter_replica_log_dirs(1, &[(p0.clone(), format!("{other}/"))])
        .await
        .unwrap();
    assert_eq!(refused(&r[0].1), "LogDirNotFound");
    // Broker 3 holds no replica of p0: the dir is recorded as its
    // preference, and a reassignment onto broker 3 creates it there.
    let dirs3: Vec<String> = a
        .describe_log_dirs(3)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.path)
        .collect();
    for want in dirs3.iter().rev() {
        let r = a
            .alter_replica_log_dirs(3, &[(p0.clone(), want.clone())])
            .await
            .unwrap();
        assert_eq!(r[0].1.as_ref().unwrap(), &LogDirMove::PreferenceRecorded);
    }
    let preferred = dirs3[0].clone();
    let r = a
        .alter_reassignments(&[(p0.clone(), Some(vec![1, 3]))], false)
        .await
        .unwrap();
    r[0].1.as_ref().unwrap();
    wait_replicas(a, &name, &[vec![1, 3]]).await;
    let (h, _) = eventually("broker 3 holds p0", || dir_of(a, 3, &p0)).await;
    assert_eq!(h, preferred, "the replica went to the recorded preference");
    delete(a, &name).await;
}

/// Polls a config until it has `value` from `source` (brokers apply
/// config changes as they replay metadata).
async fn config_is<A: KafkaAdmin>(
    a: &A,
    r: &ConfigResource,
    key: &str,
    want: Option<(&str, ConfigSource)>,
) -> ConfigEntry {
    eventually(&format!("{r} {key} = {want:?}"), || async {
        let e = a.describe_configs(r, &[key]).await.ok()?;
        let e = e.into_iter().find(|e| e.name == key);
        match (&e, want) {
            (Some(e), Some((v, s))) if e.value.as_deref() == Some(v) && e.source == s => {
                Some(e.clone())
            }
            (Some(e), None)
                if !matches!(
                    e.source,
                    ConfigSource::DynamicBroker
                        | ConfigSource::DynamicDefaultBroker
                        | ConfigSource::DynamicTopic
                ) =>
            {
                Some(e.clone())
            }
            (None, None) => Some(ConfigEntry {
                name: key.into(),
                value: None,
                source: ConfigSource::Unknown,
                read_only: false,
                sensitive: false,
                synonyms: vec![],
            }),
            _ => None,
        }
    })
    .await
}

pub async fn configs<A: KafkaAdmin>(a: &A, prefix: &str) {
    use AlterConfigOp::*;
    use ConfigSource::*;
    const LEADER: &str = "leader.replication.throttled.rate";
    const FOLLOWER: &str = "follower.replication.throttled.rate";
    let b1 = ConfigResource::Broker(1);
    let b2 = ConfigResource::Broker(2);
    let default = ConfigResource::BrokerDefault;
    // Per broker, then the cluster default beneath it.
    a.alter_configs(&b1, &[Set(FOLLOWER.into(), "1048576".into())])
        .await
        .unwrap();
    config_is(a, &b1, FOLLOWER, Some(("1048576", DynamicBroker))).await;
    a.alter_configs(&default, &[Set(LEADER.into(), "2097152".into())])
        .await
        .unwrap();
    config_is(a, &b2, LEADER, Some(("2097152", DynamicDefaultBroker))).await;
    a.alter_configs(&b2, &[Set(LEADER.into(), "3145728".into())])
        .await
        .unwrap();
    let e = config_is(a, &b2, LEADER, Some(("3145728", DynamicBroker))).await;
    let layers: Vec<(ConfigSource, Option<&str>)> = e
        .synonyms
        .iter()
        .map(|y| (y.source, y.value.as_deref()))
        .take(2)
        .collect();
    assert_eq!(
        layers,
        vec![
            (DynamicBroker, Some("3145728")),
            (DynamicDefaultBroker, Some("2097152"))
        ],
        "the layers under the value, for a restore: {e:?}"
    );
    // An unknown topic config and a bad value: refused, nothing changed.
    let name = format!("{prefix}-configs");
    create(a, &name, vec![vec![1, 2], vec![2, 3]], &[]).await;
    let t = ConfigResource::Topic(name.clone());
    let e = a
        .alter_configs(&t, &[Set("no.such.config".into(), "1".into())])
        .await
        .unwrap_err();
    assert_eq!(e.kafka_name(), Some("InvalidConfig"), "{e}");
    let e = a
        .alter_configs(&t, &[Set("retention.ms".into(), "soon".into())])
        .await
        .unwrap_err();
    assert_eq!(e.kafka_name(), Some("InvalidConfig"), "{e}");
    // Throttled-replica lists: set, append, subtract, delete.
    const FR: &str = "follower.replication.throttled.replicas";
    a.alter_configs(&t, &[Set(FR.into(), "0:1,0:2".into())])
        .await
        .unwrap();
    config_is(a, &t, FR, Some(("0:1,0:2", DynamicTopic))).await;
    a.alter_configs(&t, &[Append(FR.into(), "1:3".into())])
        .await
        .unwrap();
    config_is(a, &t, FR, Some(("0:1,0:2,1:3", DynamicTopic))).await;
    a.alter_configs(&t, &[Subtract(FR.into(), "0:1".into())])
        .await
        .unwrap();
    config_is(a, &t, FR, Some(("0:2,1:3", DynamicTopic))).await;
    a.alter_configs(&t, &[Delete(FR.into())]).await.unwrap();
    config_is(a, &t, FR, None).await;
    let e = a
        .describe_configs(&ConfigResource::Topic(format!("{prefix}-none")), &[])
        .await
        .unwrap_err();
    assert_eq!(e.kafka_name(), Some("UnknownTopicOrPartition"), "{e}");
    delete(a, &name).await;
    // Back as found.
    a.alter_configs(&b1, &[Delete(FOLLOWER.into())])
        .await
        .unwrap();
    a.alter_configs(&b2, &[Delete(LEADER.into())])
        .await
        .unwrap();
    a.alter_configs(&default, &[Delete(LEADER.into())])
        .await
        .unwrap();
    config_is(a, &b1, FOLLOWER, None).await;
    config_is(a, &b2, LEADER, None).await;
}

pub async fn quotas<A: KafkaAdmin>(a: &A) {
    let u = QuotaEntity::user("conf-user");
    let uc = QuotaEntity::user_client("conf-user", "conf-client");
    let r = a
        .alter_client_quotas(&[
            (
                u.clone(),
                vec![("producer_byte_rate".into(), Some(1048576.0))],
            ),
            (
                uc.clone(),
                vec![("consumer_byte_rate".into(), Some(2097152.0))],
            ),
        ])
        .await
        .unwrap();
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    let exact = vec![("user".to_string(), QuotaMatch::Exact("conf-user".into()))];
    let got = eventually("both quota entries", || async {
        let q = a.describe_client_quotas(&exact, false).await.ok()?;
        (q.len() == 2).then_some(q)
    })
    .await;
    let of = |e: &QuotaEntity| {
        got.iter()
            .find(|q| q.entity == e.clone().normalized_for_test())
            .map(|q| q.values.clone())
    };
    assert_eq!(
        of(&u),
        Some(vec![("producer_byte_rate".to_string(), 1048576.0)]),
        "{got:?}"
    );
    assert_eq!(
        of(&uc),
        Some(vec![("consumer_byte_rate".to_string(), 2097152.0)]),
        "{got:?}"
    );
    // Strict: only the user-only entity.
    let strict = a.describe_client_quotas(&exact, true).await.unwrap();
    assert_eq!(strict.len(), 1);
    // An unknown key: refused for that entity alone.
    let r = a
        .alter_client_quotas(&[(u.clone(), vec![("no_such_rate".into(), Some(1.0))])])
        .await
        .unwrap();
    assert_eq!(refused(&r[0].1), "InvalidRequest");
    // Removed: gone.
    let r = a
        .alter_client_quotas(&[
            (u.clone(), vec![("producer_byte_rate".into(), None)]),
            (uc.clone(), vec![("consumer_byte_rate".into(), None)]),
        ])
        .await
        .unwrap();
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    eventually("quotas removed", || async {
        a.describe_client_quotas(&exact, false)
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await;
}

pub async fn offsets_and_groups<A: KafkaAdmin>(a: &A, prefix: &str) {
    let name = format!("{prefix}-offsets");
    create(a, &name, vec![vec![1, 2], vec![2, 3]], &[]).await;
    let ps = [tp(&name, 0), tp(&name, 1), tp(&name, 5)];
    for spec in [OffsetSpec::Earliest, OffsetSpec::Latest] {
        let r = a.list_offsets(&ps, spec).await.unwrap();
        assert_eq!(r[0].1.as_ref().unwrap(), &0);
        assert_eq!(r[1].1.as_ref().unwrap(), &0);
        assert_eq!(refused(&r[2].1), "UnknownTopicOrPartition");
    }
    let g = a.describe_group(&format!("{prefix}-no-group")).await;
    match g {
        Ok(g) => assert_eq!((g.state.as_str(), g.members.len()), ("Dead", 0)),
        Err(e) => assert_eq!(e.kafka_name(), Some("GroupIdNotFound"), "{e}"),
    }
    assert!(a
        .committed_offsets(&format!("{prefix}-no-group"))
        .await
        .unwrap()
        .is_empty());
    delete(a, &name).await;
}

/// `QuotaEntity` sorted by type, as Kafka answers.
trait Normalized {
    fn normalized_for_test(self) -> Self;
}

impl Normalized for QuotaEntity {
    fn normalized_for_test(mut self) -> Self {
        self.0.sort();
        self
    }
}
