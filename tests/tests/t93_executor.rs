//! The executor on real Kafka (1 controller + 3 brokers, two log dirs
//! each) driven by a 3-node Guardian through the CLI, as an operator would:
//! discover, propose, review, approve, watch, done. Every test holds the
//! binary's shared Kafka cluster for its whole run and leaves it as found.
//!
//! - a skewed layout (every replica on broker 1's first dir, data in
//!   every partition) is balanced: every new replica lands once, in its
//!   planned dir (watched while it runs); placement as planned (broker and dir),
//!   leaders as planned, every record still readable (count and
//!   checksum), and the throttle ledger restored exactly — an operator's
//!   per-broker rate set before the run is the same after it, a rate the
//!   operator set only as the cluster default gets no per-broker override
//!   (restore DELETEs), no Guardian throttle is left;
//! - the Guardian leader SIGKILLed mid-execution: the new leader adopts
//!   the journal and finishes, no reassignment lost.

use std::collections::BTreeMap;
use std::time::Duration;

use guardian_kafka::*;
use guardian_tests::conformance::eventually;
use guardian_tests::kafka::data::{read_all, skewed};
use guardian_tests::kafka::ops::{own_override, register, run_cli, shared, wait_state, Shared};
use guardian_tests::TestCluster;
use serde_json::Value;

const RATE: &str = "leader.replication.throttled.rate";
const FRATE: &str = "follower.replication.throttled.rate";

fn executor_config() -> &'static str {
    // A slow throttle and small per-broker budget make moves observable.
    "[executor]\ntick-ms = 100\nthrottle-bytes-per-sec = 2097152\nmax-tasks-per-broker = 2\nleader-wait-ms = 20000\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_cluster_is_balanced_and_its_throttles_restored() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    let topics = ["t93-a", "t93-b"];
    skewed(&a, &bootstrap, &d0, &topics, 6, 1500).await;
    let before: Vec<(usize, u64)> = topics.iter().map(|t| read_all(&bootstrap, t, 6)).collect();
    assert!(before.iter().all(|(n, _)| *n == 6 * 1500), "{before:?}");

    // The operator's throttles before the run: a per-broker rate on
    // broker 2, a follower rate only as the cluster default.
    a.alter_configs(
        &ConfigResource::Broker(2),
        &[AlterConfigOp::Set(RATE.into(), "3000000".into())],
    )
    .await
    .unwrap();
    a.alter_configs(
        &ConfigResource::BrokerDefault,
        &[AlterConfigOp::Set(FRATE.into(), "90000000".into())],
    )
    .await
    .unwrap();

    let g = TestCluster::start_with(3, executor_config()).await;
    let eps = register(&g, "t93", &bootstrap).await;

    // Propose: the plan, its warnings (no reporters run here), stored.
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t93"]);
    let e = &p["execution"];
    assert_eq!(e["state"], "proposed", "{p}");
    let id = e["id"].as_u64().unwrap();
    let warnings = e["summary"]["warnings"].to_string();
    assert!(warnings.contains("no fresh reporter"), "{warnings}");
    let tasks = p["tasks"].as_array().unwrap().clone();
    assert!(tasks.len() >= 6, "{p}");
    assert!(e["summary"]["bytes_to_move"].as_u64().unwrap() > 5 << 20);
    assert!(
        e["summary"]["after"]["disk_bytes"].as_f64().unwrap() < 1.3,
        "{}",
        e["summary"]["table"]
    );
    // Nothing moves before approval.
    assert!(a.list_reassignments(&[]).await.unwrap().is_empty());
    let listed = run_cli(&eps, &["rebalance", "list", "--cluster", "t93"]);
    assert_eq!(listed[0]["state"], "proposed");

    // Watch the destinations while it runs: every new replica must land
    // once, in its planned dir (its dir is set before the reassignment),
    // never as a copy in another dir or a `-future` move afterwards.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, bootstrap) = (stop.clone(), bootstrap.clone());
        tokio::spawn(async move {
            let a = KafkaClient::new(&bootstrap, Duration::from_secs(20));
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for b in 2..=3 {
                    if let Ok(dirs) = a.describe_log_dirs(b).await {
                        for d in dirs {
                            for r in d.replicas.iter().filter(|r| r.topic.starts_with("t93-")) {
                                seen.insert((
                                    b,
                                    r.topic.clone(),
                                    r.partition,
                                    d.path.clone(),
                                    r.is_future,
                                ));
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        })
    };
    run_cli(&eps, &["rebalance", "approve", &id.to_string()]);
    let done = wait_state(&eps, id, &["done"]).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.await.unwrap();
    let mut landed = 0;
    for t in done["tasks"].as_array().unwrap() {
        for d in t["dirs"].as_array().unwrap() {
            let (b, dir) = (d[0].as_i64().unwrap() as i32, d[1].as_str().unwrap());
            if b == 1 {
                continue; // broker 1's own dir moves are `-future` copies by design
            }
            let here: Vec<_> = seen
                .iter()
                .filter(|(sb, st, sp, _, _)| {
                    *sb == b
                        && st == t["topic"].as_str().unwrap()
                        && *sp as i64 == t["partition"].as_i64().unwrap()
                })
                .collect();
            assert!(!here.is_empty(), "{t} never seen on broker {b}");
            for (_, _, _, path, future) in &here {
                assert!(
                    path == dir && !future,
                    "{t}: seen in {path} (future {future}) on broker {b}, planned {dir}"
                );
            }
            landed += 1;
        }
    }
    assert!(landed >= 4, "{landed} replicas landed on new brokers");

    // Placement as planned, broker and dir; leaders as planned.
    let md = a.metadata().await.unwrap();
    let mut dirs = BTreeMap::new();
    for b in 1..=3 {
        dirs.insert(b, a.describe_log_dirs(b).await.unwrap());
    }
    let mut per_broker: BTreeMap<i32, usize> = BTreeMap::new();
    for t in done["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "done", "{t}");
        let topic = t["topic"].as_str().unwrap();
        let part = t["partition"].as_i64().unwrap() as i32;
        let target: Vec<i32> = serde_json::from_value(t["target"].clone()).unwrap();
        let p = md
            .topics
            .iter()
            .find(|x| x.name == topic)
            .unwrap()
            .partitions
            .iter()
            .find(|x| x.partition == part)
            .unwrap();
        assert_eq!(p.replicas, target, "{topic}-{part}");
        if !t["leader"].is_null() {
            assert_eq!(p.leader, target[0], "{topic}-{part} leader");
        }
        for d in t["dirs"].as_array().unwrap() {
            let (b, dir) = (d[0].as_i64().unwrap() as i32, d[1].as_str().unwrap());
            let here = dirs[&b]
                .iter()
                .find(|x| {
                    x.replicas
                        .iter()
                        .any(|r| r.topic == topic && r.partition == part)
                })
                .unwrap();
            assert_eq!(here.path, dir, "{topic}-{part} on broker {b}");
        }
    }
    for t in &md.topics {
        if topics.contains(&t.name.as_str()) {
            for p in &t.partitions {
                *per_broker.entry(p.replicas[0]).or_default() += 1;
            }
        }
    }
    assert_eq!(
        per_broker.len(),
        3,
        "every broker holds replicas: {per_broker:?}"
    );
    assert!(per_broker.values().all(|n| *n == 4), "{per_broker:?}");

    // Every record still readable.
    let after: Vec<(usize, u64)> = topics.iter().map(|t| read_all(&bootstrap, t, 6)).collect();
    assert_eq!(before, after);

    // The ledger restored exactly.
    assert_eq!(
        own_override(&a, &ConfigResource::Broker(2), RATE)
            .await
            .as_deref(),
        Some("3000000")
    );
    for b in 1..=3 {
        assert_eq!(
            own_override(&a, &ConfigResource::Broker(b), FRATE).await,
            None,
            "broker {b}"
        );
        assert_eq!(
            own_override(
                &a,
                &ConfigResource::Broker(b),
                "replica.alter.log.dirs.io.max.bytes.per.second"
            )
            .await,
            None
        );
        if b != 2 {
            assert_eq!(
                own_override(&a, &ConfigResource::Broker(b), RATE).await,
                None
            );
        }
    }
    assert_eq!(
        own_override(&a, &ConfigResource::BrokerDefault, FRATE)
            .await
            .as_deref(),
        Some("90000000")
    );
    for t in topics {
        for key in [
            "leader.replication.throttled.replicas",
            "follower.replication.throttled.replicas",
        ] {
            assert_eq!(
                own_override(&a, &ConfigResource::Topic(t.into()), key).await,
                None
            );
        }
    }
    let ledger = done["execution"]["ledger"].as_array().unwrap();
    assert!(
        ledger.iter().any(|l| l["state"] == "restored"),
        "throttles were applied and restored: {ledger:?}"
    );

    // Leave the cluster as found.
    a.alter_configs(
        &ConfigResource::Broker(2),
        &[AlterConfigOp::Delete(RATE.into())],
    )
    .await
    .unwrap();
    a.alter_configs(
        &ConfigResource::BrokerDefault,
        &[AlterConfigOp::Delete(FRATE.into())],
    )
    .await
    .unwrap();
    let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    a.delete_topics(&names).await.unwrap();
}

/// The Guardian leader SIGKILLed while reassignments are in flight: the
/// new leader adopts them from the journal (never cancels or re-sends a
/// reassignment Kafka has) and finishes the plan; throttles restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_adopts_the_execution_and_finishes_it() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    let topics = ["t93-f"];
    skewed(&a, &bootstrap, &d0, &topics, 6, 2500).await;
    let before = read_all(&bootstrap, "t93-f", 6);

    let mut g = TestCluster::start_with(3, executor_config()).await;
    let eps = register(&g, "t93f", &bootstrap).await;
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t93f"]);
    let id = p["execution"]["id"].as_u64().unwrap();
    run_cli(&eps, &["rebalance", "approve", &id.to_string()]);

    // Mid-execution: reassignments in flight on Kafka.
    let in_flight: Vec<(String, i32)> = eventually("reassignments in flight", || async {
        let l = a.list_reassignments(&[]).await.ok()?;
        (!l.is_empty()).then(|| l.into_iter().map(|r| (r.topic, r.partition)).collect())
    })
    .await;
    let leader = g.wait_leader(Duration::from_secs(10)).await;
    g.kill(leader);
    let next = g.wait_leader(Duration::from_secs(20)).await;
    assert_ne!(next, leader);

    let done = wait_state(&eps, id, &["done"]).await;
    for t in done["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "done", "{t}");
        let key = (
            t["topic"].as_str().unwrap().to_string(),
            t["partition"].as_i64().unwrap() as i32,
        );
        if in_flight.contains(&key) {
            assert_eq!(
                t["attempts"], 1,
                "adopted, not re-sent: {t}\nkilled leader {leader}; events {}",
                done["execution"]["events"]
            );
        }
    }
    let events = done["execution"]["events"].to_string();
    assert!(!events.contains("cancel"), "{events}");
    assert_eq!(read_all(&bootstrap, "t93-f", 6), before);
    for b in 1..=3 {
        for key in [RATE, FRATE] {
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
            own_override(&a, &ConfigResource::Topic("t93-f".into()), key).await,
            None
        );
    }
    a.delete_topics(&["t93-f".to_string()]).await.unwrap();
}

fn task_states(v: &Value) -> Vec<String> {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_string())
        .collect()
}

/// Pause, resume and cancel, with an operator at work: a pause starts no
/// new task (running ones finish); a change the operator makes to
/// Guardian's throttle mid-run is left alone; an operator's `*` list is
/// never touched; cancel reverts the moves in flight and restores the
/// rest of the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_leave_the_operator_in_charge() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    let topic = "t93-c";
    skewed(&a, &bootstrap, &d0, &[topic], 8, 2500).await;
    let follower_list = ConfigResource::Topic(topic.into());
    let flist = "follower.replication.throttled.replicas";
    a.alter_configs(
        &follower_list,
        &[AlterConfigOp::Set(flist.into(), "*".into())],
    )
    .await
    .unwrap();

    let g = TestCluster::start_with(3, executor_config()).await;
    let eps = register(&g, "t93c", &bootstrap).await;
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t93c"]);
    let id = p["execution"]["id"].as_u64().unwrap().to_string();
    let original: BTreeMap<i32, Vec<i32>> = p["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["topic"] == topic)
        .map(|t| {
            (
                t["partition"].as_i64().unwrap() as i32,
                serde_json::from_value(t["original"].clone()).unwrap(),
            )
        })
        .collect();
    run_cli(&eps, &["rebalance", "approve", &id]);
    eventually("reassignments in flight", || async {
        (!a.list_reassignments(&[]).await.ok()?.is_empty()).then_some(())
    })
    .await;

    // Pause: what runs finishes, nothing new starts.
    let paused = run_cli(&eps, &["rebalance", "pause", &id]);
    assert_eq!(paused["execution"]["paused"], true);
    let at_pause = task_states(&paused);
    eventually("the running moves finishing", || async {
        a.list_reassignments(&[])
            .await
            .ok()?
            .is_empty()
            .then_some(())
    })
    .await;
    let later = run_cli(&eps, &["rebalance", "show", &id]);
    let started = |s: &[String]| s.iter().filter(|x| *x != "pending").count();
    assert_eq!(started(&task_states(&later)), started(&at_pause), "{later}");
    assert!(
        task_states(&later).iter().any(|s| s == "pending"),
        "{later}"
    );

    // Once Guardian has put broker 1's rate back (nothing of it runs),
    // the operator sets it; Kafka's configs have no compare-and-set, so
    // the test waits until broker 1 itself reports the operator's value.
    eventually("broker 1's rate restored while paused", || async {
        let v = run_cli(&eps, &["rebalance", "show", &id]);
        v["execution"]["ledger"]
            .as_array()?
            .iter()
            .any(|l| l["entity"]["broker"] == 1 && l["key"] == RATE && l["state"] == "restored")
            .then_some(())
    })
    .await;
    a.alter_configs(
        &ConfigResource::Broker(1),
        &[AlterConfigOp::Set(RATE.into(), "777000".into())],
    )
    .await
    .unwrap();
    eventually("broker 1 reporting the operator's rate", || async {
        (own_override(&a, &ConfigResource::Broker(1), RATE)
            .await
            .as_deref()
            == Some("777000"))
        .then_some(())
    })
    .await;

    // Resume: new tasks start; then cancel mid-move.
    run_cli(&eps, &["rebalance", "resume", &id]);
    eventually("moves in flight again", || async {
        (!a.list_reassignments(&[]).await.ok()?.is_empty()).then_some(())
    })
    .await;
    run_cli(&eps, &["rebalance", "cancel", &id]);
    let end = wait_state(&eps, id.parse().unwrap(), &["cancelled"]).await;
    assert!(a.list_reassignments(&[]).await.unwrap().is_empty());
    let md = a.metadata().await.unwrap();
    let parts = &md
        .topics
        .iter()
        .find(|t| t.name == topic)
        .unwrap()
        .partitions;
    // (The plan may also move leaders of other topics, e.g. __consumer_offsets.)
    for t in end["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["topic"] == topic)
    {
        let part = t["partition"].as_i64().unwrap() as i32;
        let now = &parts.iter().find(|p| p.partition == part).unwrap().replicas;
        match t["state"].as_str().unwrap() {
            "done" => assert_eq!(
                now,
                &serde_json::from_value::<Vec<i32>>(t["target"].clone()).unwrap()
            ),
            "cancelled" => assert_eq!(now, &original[&part], "reverted: {t}"),
            other => panic!("task {t} ended {other}"),
        }
    }
    let events = end["execution"]["events"].to_string();
    assert!(events.contains("changed by someone else"), "{events}");
    assert!(events.contains("already `*`"), "{events}");
    // The operator's values stand; Guardian's are gone.
    assert_eq!(
        own_override(&a, &ConfigResource::Broker(1), RATE)
            .await
            .as_deref(),
        Some("777000")
    );
    assert_eq!(
        own_override(&a, &follower_list, flist).await.as_deref(),
        Some("*")
    );
    for b in 1..=3 {
        assert_eq!(
            own_override(&a, &ConfigResource::Broker(b), FRATE).await,
            None,
            "broker {b}"
        );
        if b != 1 {
            assert_eq!(
                own_override(&a, &ConfigResource::Broker(b), RATE).await,
                None,
                "broker {b}"
            );
        }
    }
    assert_eq!(
        own_override(&a, &follower_list, "leader.replication.throttled.replicas").await,
        None
    );
    assert_eq!(read_all(&bootstrap, topic, 8).0, 8 * 2500);
    a.alter_configs(
        &ConfigResource::Broker(1),
        &[AlterConfigOp::Delete(RATE.into())],
    )
    .await
    .unwrap();
    a.delete_topics(&[topic.to_string()]).await.unwrap();
}

/// Kills the destination of a move in flight; `grace_ms` decides whether
/// it is back in time. Returns the execution at its end and the broker.
async fn kill_destination(name: &str, grace_ms: u64, back_within_grace: bool) {
    let Shared {
        mut k,
        bootstrap,
        a,
        d0,
    } = shared().await;
    let topic = format!("t93-{name}");
    skewed(&a, &bootstrap, &d0, &[&topic], 6, 3000).await;
    let before = read_all(&bootstrap, &topic, 6);
    let cfg = format!(
        "[executor]\ntick-ms = 100\nthrottle-bytes-per-sec = 1048576\nmax-tasks-per-broker = 2\nleader-wait-ms = 20000\nbroker-grace-ms = {grace_ms}\n"
    );
    let g = TestCluster::start_with(3, &cfg).await;
    let cluster = format!("t93{name}");
    let eps = register(&g, &cluster, &bootstrap).await;
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", &cluster]);
    let id = p["execution"]["id"].as_u64().unwrap();
    run_cli(&eps, &["rebalance", "approve", &id.to_string()]);
    let victim: i32 = eventually("a move to broker 2 or 3 in flight", || async {
        let l = a.list_reassignments(&[]).await.ok()?;
        l.iter().flat_map(|r| r.adding.clone()).find(|b| *b != 1)
    })
    .await;
    k.kill(victim);
    let (state, end) = if back_within_grace {
        k.restart(victim, 3).await;
        let end = wait_state(&eps, id, &["done"]).await;
        ("done", end)
    } else {
        // Past the grace period its moves fail; the rest finishes; the
        // execution waits in verifying for its rates.
        let v = eventually("the dead destination's tasks failed", || async {
            let v = run_cli(&eps, &["rebalance", "show", &id.to_string()]);
            let failed = v["tasks"].as_array().unwrap().iter().any(|t| {
                t["state"] == "failed"
                    && t["reason"].as_str().unwrap().contains("destination broker")
            });
            (failed && v["execution"]["state"] == "verifying").then_some(v)
        })
        .await;
        // Its list entries are gone at once, through the topic.
        for key in [
            "leader.replication.throttled.replicas",
            "follower.replication.throttled.replicas",
        ] {
            let l = own_override(&a, &ConfigResource::Topic(topic.clone()), key).await;
            assert!(
                !l.unwrap_or_default().contains(&format!(":{victim}")),
                "{key}"
            );
        }
        assert!(a.list_reassignments(&[]).await.unwrap().is_empty());
        drop(v);
        k.restart(victim, 3).await;
        // Failed only after its rates are restored.
        let mut end = Value::Null;
        for _ in 0..600 {
            end = run_cli(&eps, &["rebalance", "show", &id.to_string()]);
            if end["execution"]["state"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ("failed", end)
    };
    assert_eq!(end["execution"]["state"], state, "{end}");
    if back_within_grace {
        assert!(
            end["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["state"] == "done"),
            "{end}"
        );
    } else {
        assert!(end["execution"]["reason"]
            .as_str()
            .unwrap()
            .contains("tasks failed"));
    }
    for b in 1..=3 {
        for key in [RATE, FRATE] {
            assert_eq!(
                own_override(&a, &ConfigResource::Broker(b), key).await,
                None,
                "broker {b} {key}"
            );
        }
    }
    assert_eq!(read_all(&bootstrap, &topic, 6), before);
    a.delete_topics(std::slice::from_ref(&topic)).await.unwrap();
}

/// A destination SIGKILLed mid-move and kept down past the grace period:
/// its tasks fail (cancelled in Kafka), its list entries go at once, its
/// rates are restored when it returns, the execution fails with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_gone_past_the_grace_period_fails_its_tasks() {
    kill_destination("g", 6_000, false).await;
}

/// A destination SIGKILLed and restarted within the grace period: nothing
/// cancelled, the plan completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_restarted_within_the_grace_period_loses_nothing() {
    kill_destination("r", 120_000, true).await;
}

/// Fail points at the executor's step boundary on real Kafka: the first
/// three executing steps stop right after their journal write, before any
/// Kafka request (`executor::after_journal`). The same leader's next steps
/// find tasks journaled as started that Kafka never saw, send them, and
/// the plan completes with its throttles restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_stopped_after_their_journal_are_finished() {
    use guardian_tests::inproc;
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    let topic = "t93-p";
    skewed(&a, &bootstrap, &d0, &[topic], 6, 500).await;
    let before = read_all(&bootstrap, topic, 6);
    let scenario = fail::FailScenario::setup();
    let (_dirs, nodes) = inproc::group(1).await;
    let all: Vec<&_> = nodes.iter().collect();
    let c = inproc::client(&all);
    c.call(|mut s| {
        let cl = pb_cluster("t93p", &bootstrap);
        async move {
            s.add_cluster(guardian_proto::pb::AddClusterRequest { cluster: Some(cl) })
                .await
        }
    })
    .await
    .unwrap();
    c.call(|mut s| async move {
        s.discover_cluster(guardian_proto::pb::DiscoverClusterRequest {
            name: "t93p".into(),
            dry_run: false,
        })
        .await
    })
    .await
    .unwrap();
    let p = c
        .call(|mut s| async move {
            s.propose_rebalance(guardian_proto::pb::ProposeRebalanceRequest {
                cluster: "t93p".into(),
                ..Default::default()
            })
            .await
        })
        .await
        .unwrap();
    let p: Value = serde_json::from_str(&p.json).unwrap();
    let id = p["execution"]["id"].as_u64().unwrap();
    fail::cfg("executor::after_journal", "3*return").unwrap();
    c.call(|mut s| async move {
        s.control_execution(guardian_proto::pb::ControlExecutionRequest {
            id,
            action: "approve".into(),
        })
        .await
    })
    .await
    .unwrap();
    let end: Value = eventually("the execution finishing", || async {
        let r = c
            .call(|mut s| async move {
                s.get_execution(guardian_proto::pb::GetExecutionRequest { id, stale: false })
                    .await
            })
            .await
            .ok()?;
        let v: Value = serde_json::from_str(&r.json).ok()?;
        let state = v["execution"]["state"].as_str()?.to_string();
        assert!(!["failed", "cancelled"].contains(&state.as_str()), "{v}");
        (state == "done").then_some(v)
    })
    .await;
    fail::remove("executor::after_journal");
    scenario.teardown();
    let events = end["execution"]["events"].to_string();
    assert!(
        events.contains("sending it again"),
        "journaled but never sent, then sent: {events}"
    );
    assert!(
        end["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "done"),
        "{end}"
    );
    assert_eq!(read_all(&bootstrap, topic, 6), before);
    for b in 1..=3 {
        for key in [RATE, FRATE] {
            assert_eq!(
                own_override(&a, &ConfigResource::Broker(b), key).await,
                None,
                "broker {b} {key}"
            );
        }
    }
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    a.delete_topics(&[topic.to_string()]).await.unwrap();
}

fn pb_cluster(name: &str, bootstrap: &[String]) -> guardian_proto::pb::Cluster {
    guardian_proto::pb::Cluster {
        name: name.into(),
        bootstrap_servers: bootstrap.to_vec(),
        idc: "east".into(),
        ..Default::default()
    }
}

/// A plan the cluster drifted from before it ran: preflight fails it,
/// naming the partition, touches nothing, and a fresh plan of the cluster
/// as it is now waits for review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_plan_is_not_run_but_planned_again() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    let topic = "t93-d";
    skewed(&a, &bootstrap, &d0, &[topic], 6, 10).await;
    let g = TestCluster::start_with(3, executor_config()).await;
    let eps = register(&g, "t93d", &bootstrap).await;
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t93d"]);
    let id = p["execution"]["id"].as_u64().unwrap();
    let moved = p["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["topic"] == topic
                && t["original"] == serde_json::json!([1])
                && t["target"] != serde_json::json!([1])
        })
        .expect("a move of the topic")["partition"]
        .as_i64()
        .unwrap() as i32;
    // The operator moves one of the plan's partitions by hand meanwhile.
    let tp = TopicPartition::new(topic, moved);
    for (_, r) in a
        .alter_reassignments(&[(tp.clone(), Some(vec![3]))], false)
        .await
        .unwrap()
    {
        r.unwrap();
    }
    eventually("the operator's move done", || async {
        let md = a.metadata().await.ok()?;
        let t = md.topics.iter().find(|t| t.name == topic)?;
        let l = a.list_reassignments(&[]).await.ok()?;
        (l.is_empty() && t.partitions[moved as usize].replicas == [3]).then_some(())
    })
    .await;
    run_cli(&eps, &["rebalance", "approve", &id.to_string()]);
    let mut failed = Value::Null;
    for _ in 0..300 {
        failed = run_cli(&eps, &["rebalance", "show", &id.to_string()]);
        if failed["execution"]["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reason = failed["execution"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("changed since the plan") && reason.contains(&format!("{topic}-{moved}")),
        "{failed}"
    );
    assert!(
        failed["execution"]["ledger"].as_array().unwrap().is_empty(),
        "nothing recorded, nothing touched"
    );
    let again: Value = eventually("a new proposal", || async {
        let l = run_cli(&eps, &["rebalance", "list", "--cluster", "t93d"]);
        l.as_array()?
            .iter()
            .find(|e| e["id"] != id && e["state"] == "proposed")
            .cloned()
    })
    .await;
    let again = run_cli(&eps, &["rebalance", "show", &again["id"].to_string()]);
    let w = again["execution"]["summary"]["warnings"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        w.starts_with(&format!(
            "re-planned: execution {id} found that cluster changed"
        )),
        "{again}"
    );
    assert!(again["tasks"].as_array().unwrap().iter().all(|t| {
        t["topic"] != topic
            || t["partition"].as_i64() != Some(moved as i64)
            || t["original"] == serde_json::json!([3])
    }));
    let c = run_cli(
        &eps,
        &["rebalance", "cancel", &again["execution"]["id"].to_string()],
    );
    assert_eq!(c["execution"]["state"], "cancelled");
    a.delete_topics(&[topic.to_string()]).await.unwrap();
}

/// `foreign-reassignments = "cancel"`: a reassignment someone else started
/// is cancelled before planning and named in the proposal (the default,
/// `leave`, is in the live model's tests: reported, not moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_reassignments_can_be_cancelled_before_planning() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    let topic = "t93-x";
    skewed(&a, &bootstrap, &d0, &[topic], 2, 3000).await;
    // Someone else's slow move: throttled by hand to 100 KB/s.
    a.alter_configs(
        &ConfigResource::Topic(topic.into()),
        &[
            AlterConfigOp::Set("leader.replication.throttled.replicas".into(), "*".into()),
            AlterConfigOp::Set("follower.replication.throttled.replicas".into(), "*".into()),
        ],
    )
    .await
    .unwrap();
    for b in [1, 2] {
        a.alter_configs(
            &ConfigResource::Broker(b),
            &[
                AlterConfigOp::Set(RATE.into(), "100000".into()),
                AlterConfigOp::Set(FRATE.into(), "100000".into()),
            ],
        )
        .await
        .unwrap();
    }
    let tp = TopicPartition::new(topic, 0);
    for (_, r) in a
        .alter_reassignments(&[(tp.clone(), Some(vec![2]))], false)
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let cfg = format!("{}foreign-reassignments = \"cancel\"\n", executor_config());
    let g = TestCluster::start_with(1, &cfg).await;
    let eps = register(&g, "t93x", &bootstrap).await;
    let p = run_cli(
        &eps,
        &["rebalance", "propose", "--cluster", "t93x", "--dry-run"],
    );
    let w = p["execution"]["summary"]["warnings"].to_string();
    assert!(
        w.contains(&format!("{topic}-0 has a reassignment in progress")),
        "a dry run cancels nothing: {w}"
    );
    assert!(!a.list_reassignments(&[]).await.unwrap().is_empty());
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t93x"]);
    let w = p["execution"]["summary"]["warnings"].to_string();
    assert!(
        w.contains("cancelled 1 reassignments Guardian did not start")
            && w.contains(&format!("{topic}-0")),
        "{w}"
    );
    assert!(a.list_reassignments(&[]).await.unwrap().is_empty());
    eventually("the cancelled move reverted", || async {
        let md = a.metadata().await.ok()?;
        (md.topics.iter().find(|t| t.name == topic)?.partitions[0].replicas == [1]).then_some(())
    })
    .await;
    run_cli(
        &eps,
        &["rebalance", "cancel", &p["execution"]["id"].to_string()],
    );
    for b in [1, 2] {
        a.alter_configs(
            &ConfigResource::Broker(b),
            &[
                AlterConfigOp::Delete(RATE.into()),
                AlterConfigOp::Delete(FRATE.into()),
            ],
        )
        .await
        .unwrap();
    }
    a.delete_topics(&[topic.to_string()]).await.unwrap();
}
