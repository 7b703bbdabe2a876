//! The simulator's fidelity with clients Guardian did not write: Kafka's
//! own admin tools (from the Maven jars) against a simulated cluster
//! generated from a seed — `LogDirsCommand` reports the dirs and sizes
//! Guardian's client reads, `TopicCommand` creates and describes a topic,
//! `ReassignPartitionsCommand` runs a reassignment to completion, and
//! `ConfigCommand` sets a broker config that Guardian's client then sees
//! with its source. Python's `kafka-python` admin client (pinned in
//! `tests/python/requirements.txt`) lists topics, describes log dirs, runs
//! a reassignment to completion and sets a broker config on the same sim.
//! (The conformance suite runs on the sim in t91.)

use std::time::Duration;

use guardian_kafka::types::{ConfigResource, ConfigSource};
use guardian_kafka::KafkaClient;
use guardian_tests::conformance::eventually;
use guardian_tests::kafka::ops::kafka_tool;
use serde_json::Value;

fn tool(class: &str, args: &[&str]) -> String {
    let (code, out, err) = kafka_tool(class, args);
    assert_eq!(code, 0, "{class} {args:?}: {out}\n{err}");
    out
}

fn spec() -> guardian_planner::model::ClusterSpec {
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
    guardian_planner::generate::generate(&p, 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkas_own_tools_work_against_the_simulator() {
    let sim = guardian_sim::SimCluster::from_spec("t97", "127.0.0.1", &spec(), 1.0)
        .await
        .unwrap();
    let bootstrap = sim.bootstrap()[0].clone();
    let a = KafkaClient::new(&sim.bootstrap(), Duration::from_secs(10));
    let b1 = sim.brokers[0].0.to_string();

    // LogDirsCommand: the same dirs, replicas and sizes as DescribeLogDirs.
    let out = tool(
        "org.apache.kafka.tools.LogDirsCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--describe",
            "--broker-list",
            &b1,
        ],
    );
    let json: Value = out
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON in {out}"));
    let dirs = a.describe_log_dirs(sim.brokers[0].0).await.unwrap();
    let theirs = json["brokers"][0]["logDirs"].as_array().unwrap();
    assert_eq!(theirs.len(), dirs.len(), "{json}");
    for d in &dirs {
        let t = theirs
            .iter()
            .find(|x| x["logDir"] == d.path.as_str())
            .unwrap_or_else(|| panic!("{} missing from {json}", d.path));
        let parts = t["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), d.replicas.len(), "{}", d.path);
        for r in &d.replicas {
            let name = format!("{}-{}", r.topic, r.partition);
            let x = parts
                .iter()
                .find(|x| x["partition"] == name.as_str())
                .unwrap();
            assert_eq!(x["size"].as_i64(), Some(r.size_bytes), "{name}");
        }
    }

    // TopicCommand creates a topic; it describes as Kafka would.
    tool(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--create",
            "--topic",
            "t97-small",
            "--partitions",
            "2",
            "--replication-factor",
            "2",
        ],
    );
    let out = tool(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--describe",
            "--topic",
            "t97-small",
        ],
    );
    assert!(
        out.contains("PartitionCount: 2") && out.contains("ReplicationFactor: 2"),
        "{out}"
    );

    // ReassignPartitionsCommand runs a move to completion.
    let md = a.metadata().await.unwrap();
    let t = md.topics.iter().find(|t| t.name == "t97-small").unwrap();
    let now = t.partitions[0].replicas.clone();
    let target: Vec<i32> = sim
        .brokers
        .iter()
        .map(|b| b.0)
        .filter(|b| !now.contains(b))
        .take(2)
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        serde_json::json!({"version": 1, "partitions": [
            {"topic": "t97-small", "partition": 0, "replicas": target}
        ]})
        .to_string(),
    )
    .unwrap();
    let path = file.path().display().to_string();
    let reassign = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
    let out = tool(
        reassign,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--reassignment-json-file",
            &path,
            "--execute",
        ],
    );
    assert!(out.contains("Successfully started"), "{out}");
    let out = tool(
        reassign,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--reassignment-json-file",
            &path,
            "--verify",
        ],
    );
    assert!(out.contains("t97-small-0 is completed"), "{out}");
    eventually("the move in the metadata", || async {
        let md = a.metadata().await.ok()?;
        let t = md.topics.iter().find(|t| t.name == "t97-small")?;
        let mut r = t.partitions[0].replicas.clone();
        r.sort();
        let mut want = target.clone();
        want.sort();
        (r == want).then_some(())
    })
    .await;

    // ConfigCommand sets a broker config; Guardian's client reads it back
    // as a per-broker dynamic value.
    tool(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-name",
            &b1,
            "--add-config",
            "follower.replication.throttled.rate=12345",
        ],
    );
    let cfg = a
        .describe_configs(
            &ConfigResource::Broker(sim.brokers[0].0),
            &["follower.replication.throttled.rate"],
        )
        .await
        .unwrap();
    assert_eq!(cfg[0].value.as_deref(), Some("12345"));
    assert_eq!(cfg[0].source, ConfigSource::DynamicBroker);
    let out = tool(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            &b1,
        ],
    );
    assert!(
        out.contains("follower.replication.throttled.rate=12345"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_works_against_the_simulator() {
    let sim = guardian_sim::SimCluster::from_spec("t97-py", "127.0.0.1", &spec(), 1.0)
        .await
        .unwrap();
    let a = KafkaClient::new(&sim.bootstrap(), Duration::from_secs(10));
    let bootstrap = sim.bootstrap().join(",");
    // The script blocks (its own client, its own polling): off the runtime.
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        guardian_tests::python::script("sim_admin.py", &[&bootstrap, "t97-python"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "sim_admin.py: {out}\n{err}");
    let seen: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("sim_admin.py printed no JSON ({e}): {out}\n{err}"));

    // What it listed is what Guardian's client lists.
    let md = a.metadata().await.unwrap();
    let mut brokers: Vec<i32> = md.brokers.iter().map(|b| b.id).collect();
    brokers.sort();
    assert_eq!(seen["brokers"], serde_json::json!(brokers));
    let topics = seen["topics"].as_array().unwrap();
    for t in md.topics.iter().filter(|t| t.name != "t97-python") {
        assert!(
            topics.contains(&Value::from(t.name.as_str())),
            "{} not in {topics:?}",
            t.name
        );
    }

    // Its log dirs of the first broker: the same dirs, replicas and sizes
    // (the sim's clock is still, speed 1 and no traffic).
    let dirs = a.describe_log_dirs(brokers[0]).await.unwrap();
    let theirs = seen["log_dirs"].as_object().unwrap();
    assert_eq!(theirs.len(), dirs.len(), "{theirs:?}");
    for d in &dirs {
        let t = theirs[&d.path].as_object().unwrap();
        for r in d.replicas.iter().filter(|r| r.topic != "t97-python") {
            let name = format!("{}-{}", r.topic, r.partition);
            assert_eq!(
                t[&name].as_i64(),
                Some(r.size_bytes),
                "{name} in {}",
                d.path
            );
        }
    }

    // The reassignment it ran completed, and Guardian's client sees it.
    let target = seen["target"].clone();
    assert_eq!(seen["after"], target);
    assert_ne!(seen["before"], target);
    let t = md.topics.iter().find(|t| t.name == "t97-python").unwrap();
    let mut now = t
        .partitions
        .iter()
        .find(|p| p.partition == 0)
        .unwrap()
        .replicas
        .clone();
    now.sort();
    assert_eq!(serde_json::json!(now), target);
    assert!(a.list_reassignments(&[]).await.unwrap().is_empty());

    // The config it set is a per-broker dynamic value.
    let b1 = brokers[0].to_string();
    let c = &seen["config"]["broker"][&b1]["leader.replication.throttled.rate"];
    assert_eq!(c["value"], "54321", "{}", seen["config"]);
    assert_eq!(c["config_source"], "DYNAMIC_BROKER_CONFIG");
    let cfg = a
        .describe_configs(
            &ConfigResource::Broker(brokers[0]),
            &["leader.replication.throttled.rate"],
        )
        .await
        .unwrap();
    assert_eq!(cfg[0].value.as_deref(), Some("54321"));
    assert_eq!(cfg[0].source, ConfigSource::DynamicBroker);
}
