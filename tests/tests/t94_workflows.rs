//! Operator workflows on real Kafka (1 controller + 3 brokers, two log
//! dirs each), driven through the CLI as an operator would type them.
//! Every test holds the binary's shared Kafka cluster for its whole run,
//! uses topics of its own and deletes them at the end.
//!
//! - `topic create` places replicas on the brokers **and dirs** the
//!   placement planner chose, inside the tenant's pool; `--dry-run`
//!   validates through Kafka and creates nothing; an unknown tenant is
//!   `NOT_FOUND`;
//! - `broker decommission` empties a broker even while new partitions
//!   land on it, then reports it ready to shut down;
//! - `pool release` moves the tenant off the broker before releasing it;
//!   `pool add --spread` spreads the tenant's topics onto it;
//! - `topic migrate-idc` ends with the policy met;
//! - an excluded topic is never moved, a broker in maintenance gets no
//!   new replica and its tasks wait, `cluster freeze` stops actuation
//!   mid-execution and `unfreeze` resumes it;
//! - the `kafka-json` export is accepted by the stock
//!   `kafka-reassign-partitions --verify`, and the rollback file, run by
//!   the stock tool, restores the original assignment; `rebalance revert`
//!   does the same through Guardian.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use guardian_kafka::*;
use guardian_tests::conformance::{create, eventually};
use guardian_tests::kafka::data::{produce, read_all, skewed};
use guardian_tests::kafka::ops::{
    add_cluster, kafka_tool, register, run_cli, shared, wait_state, Shared,
};
use guardian_tests::{cli, TestCluster};
use serde_json::Value;

const REASSIGN: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";

fn config() -> &'static str {
    "[executor]\ntick-ms = 100\nthrottle-bytes-per-sec = 20971520\nmax-tasks-per-broker = 2\nleader-wait-ms = 20000\n"
}

/// Replicas per partition of `topic`, by partition.
async fn assignment(a: &KafkaClient, topic: &str) -> BTreeMap<i32, Vec<i32>> {
    let md = a.metadata().await.unwrap();
    md.topics
        .iter()
        .find(|t| t.name == topic)
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition, p.replicas.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// (broker, partition) → dir of every replica of `topic`.
async fn dirs_of(a: &KafkaClient, topic: &str) -> BTreeMap<(i32, i32), String> {
    let mut out = BTreeMap::new();
    for b in 1..=3 {
        for d in a.describe_log_dirs(b).await.unwrap() {
            for r in d
                .replicas
                .iter()
                .filter(|r| r.topic == topic && !r.is_future)
            {
                out.insert((b, r.partition), d.path.clone());
            }
        }
    }
    out
}

async fn delete(a: &KafkaClient, topics: &[&str]) {
    let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    a.delete_topics(&names).await.unwrap();
    eventually("topics deleted", || async {
        let md = a.metadata().await.ok()?;
        (!md.topics.iter().any(|t| names.contains(&t.name))).then_some(())
    })
    .await;
}

/// A tenant whose pool is brokers 2 and 3.
fn tenant_on_2_and_3(eps: &str, tenant: &str, cluster: &str) {
    run_cli(eps, &["tenant", "create", tenant]);
    run_cli(
        eps,
        &[
            "pool",
            "add",
            "--tenant",
            tenant,
            "--cluster",
            cluster,
            "--broker",
            "2,3",
        ],
    );
}

fn id_of(v: &Value) -> String {
    v["execution"]["id"]
        .as_u64()
        .expect("a stored execution")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_create_places_replicas_on_the_chosen_brokers_and_dirs_of_the_pool() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        ..
    } = shared().await;
    let g = TestCluster::start_with(3, config()).await;
    let eps = register(&g, "t94a", &bootstrap).await;
    tenant_on_2_and_3(&eps, "t94-ten", "t94a");
    let create = |extra: &[&str]| {
        let mut args = vec![
            "topic",
            "create",
            "--cluster",
            "t94a",
            "--name",
            "t94-a",
            "--partitions",
            "6",
            "--replication-factor",
            "2",
            "--tenant",
            "t94-ten",
            "--bytes-in-per-partition",
            "1MB",
            "--config",
            "retention.ms=3600000",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };

    // A dry run is validated by Kafka and creates nothing.
    let args = create(&["--dry-run"]);
    let dry = run_cli(&eps, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["partitions"].as_array().unwrap().len(), 6);
    assert!(
        assignment(&a, "t94-a").await.is_empty(),
        "created by a dry run"
    );
    // Kafka's own validation answers a dry run: a bad config is refused.
    let mut bad = create(&["--dry-run"]);
    bad.extend([
        "--config".to_string(),
        "cleanup.policy=nonsense".to_string(),
    ]);
    let mut all = vec!["--endpoints", &eps];
    all.extend(bad.iter().map(String::as_str));
    let (code, _, err) = cli(&all);
    assert_ne!(code, 0);
    assert!(err.contains("CreateTopics (validate only)"), "{err}");

    // Created: every replica in the tenant's pool, on the planned dir.
    let args = create(&[]);
    let made = run_cli(&eps, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let got = assignment(&a, "t94-a").await;
    assert_eq!(got.len(), 6);
    let dirs = dirs_of(&a, "t94-a").await;
    let mut per_dir: BTreeMap<String, usize> = BTreeMap::new();
    for p in made["partitions"].as_array().unwrap() {
        let part = p["partition"].as_i64().unwrap() as i32;
        let planned: Vec<(i32, String)> = p["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["broker"].as_i64().unwrap() as i32,
                    r["dir"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let brokers: Vec<i32> = planned.iter().map(|(b, _)| *b).collect();
        assert_eq!(got[&part], brokers, "partition {part}");
        for (b, dir) in &planned {
            assert!([2, 3].contains(b), "partition {part} outside the pool: {b}");
            assert_eq!(dirs.get(&(*b, part)), Some(dir), "partition {part} on {b}");
            *per_dir.entry(format!("{b}:{dir}")).or_default() += 1;
        }
    }
    // Four dirs in the pool, twelve replicas: spread over all four. Not
    // exactly three each: placement weighs what the dirs already hold, and
    // tests that ran before in this binary (a drain, a roll) leave
    // internal-topic replicas on some of them.
    assert_eq!(per_dir.len(), 4, "{per_dir:?}");
    let (lo, hi) = (
        per_dir.values().min().unwrap(),
        per_dir.values().max().unwrap(),
    );
    assert!(hi - lo <= 2, "{per_dir:?}");
    let cfg = a
        .describe_configs(&ConfigResource::Topic("t94-a".into()), &["retention.ms"])
        .await
        .unwrap();
    assert_eq!(cfg[0].value.as_deref(), Some("3600000"));
    // The topic's tenant is recorded.
    let controls = run_cli(&eps, &["cluster", "controls", "t94a"]);
    assert_eq!(controls["topic_tenants"]["t94-a"], "t94-ten", "{controls}");

    // Errors: an unknown tenant, an existing topic.
    let (code, _, err) = cli(&[
        "--endpoints",
        &eps,
        "topic",
        "create",
        "--cluster",
        "t94a",
        "--name",
        "t94-z",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
        "--tenant",
        "nobody",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    assert!(err.contains("nobody"), "{err}");
    let (code, _, err) = cli(&[
        "--endpoints",
        &eps,
        "topic",
        "create",
        "--cluster",
        "t94a",
        "--name",
        "t94-a",
        "--partitions",
        "1",
        "--replication-factor",
        "1",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    delete(&a, &["t94-a"]).await;
    // A deleted topic loses its tenant (after UNBIND_AFTER_MS, 30 s), so a
    // new topic of that name is no tenant's until bound again.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let c = run_cli(&eps, &["cluster", "controls", "t94a"]);
        if c["topic_tenants"].get("t94-a").is_none() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still bound: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_empties_a_broker_while_new_partitions_land_on_it() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        ..
    } = shared().await;
    create(&a, "t94-d", (0..6).map(|p| vec![p % 3 + 1]).collect(), &[]).await;
    for p in 0..6 {
        produce(&bootstrap, "t94-d", p, 300, 1024).await;
    }
    let before = read_all(&bootstrap, "t94-d", 6);
    let g = TestCluster::start_with(3, config()).await;
    let eps = register(&g, "t94d", &bootstrap).await;

    let p = run_cli(
        &eps,
        &[
            "broker",
            "decommission",
            "--cluster",
            "t94d",
            "--id",
            "3",
            "--approve",
        ],
    );
    assert_eq!(p["execution"]["kind"], "decommission", "{p}");
    let first = id_of(&p);
    let controls = run_cli(&eps, &["cluster", "controls", "t94d"]);
    assert_eq!(controls["decommission"]["3"], "draining", "{controls}");
    // Meanwhile Kafka's own placer (here: a manual assignment) puts a new
    // topic on the broker being drained.
    create(&a, "t94-d2", vec![vec![3], vec![3]], &[]).await;
    produce(&bootstrap, "t94-d2", 0, 100, 1024).await;
    wait_state(&eps, first.parse().unwrap(), &["done"]).await;

    // It keeps draining what arrives after the first round (and the
    // internal topics), until the broker is empty, then says so.
    let off_3 = || async {
        let md = a.metadata().await.ok()?;
        md.topics
            .iter()
            .filter(|t| t.name.starts_with("t94-d"))
            .flat_map(|t| &t.partitions)
            .all(|p| !p.replicas.contains(&3))
            .then_some(())
    };
    eventually("t94-d* off broker 3", off_3).await;
    let empty = || async {
        let c = run_cli(&eps, &["cluster", "controls", "t94d"]);
        (c["decommission"]["3"] == "empty").then_some(())
    };
    eventually("broker 3 reported ready to shut down", empty).await;
    let md = a.metadata().await.unwrap();
    let left: Vec<String> = md
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.replicas.contains(&3))
                .map(move |p| format!("{}-{}", t.name, p.partition))
        })
        .collect();
    assert!(left.is_empty(), "broker 3 still holds {left:?}");
    let execs = run_cli(&eps, &["rebalance", "list", "--cluster", "t94d"]);
    let execs = execs.as_array().unwrap().clone();
    assert!(execs.len() >= 2, "a follow-up drain ran: {execs:?}");
    assert!(
        execs.iter().all(|e| e["kind"] == "decommission"),
        "{execs:?}"
    );
    let text = cli(&["--endpoints", &eps, "cluster", "controls", "t94d"]).1;
    assert!(text.contains("ready to shut down"), "{text}");
    assert_eq!(read_all(&bootstrap, "t94-d", 6), before);
    delete(&a, &["t94-d", "t94-d2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_release_moves_the_tenant_off_first_and_pool_add_spreads_onto_the_broker() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        ..
    } = shared().await;
    let g = TestCluster::start_with(3, config()).await;
    let eps = register(&g, "t94p", &bootstrap).await;
    tenant_on_2_and_3(&eps, "t94-pt", "t94p");
    run_cli(
        &eps,
        &[
            "topic",
            "create",
            "--cluster",
            "t94p",
            "--name",
            "t94-p",
            "--partitions",
            "4",
            "--replication-factor",
            "1",
            "--tenant",
            "t94-pt",
        ],
    );
    for p in 0..4 {
        produce(&bootstrap, "t94-p", p, 200, 1024).await;
    }
    let on =
        |asg: &BTreeMap<i32, Vec<i32>>, b: i32| asg.values().filter(|r| r.contains(&b)).count();
    assert_eq!(on(&assignment(&a, "t94-p").await, 3), 2);

    // Release broker 3: the tenant's replicas leave it first.
    let p = run_cli(
        &eps,
        &[
            "pool",
            "release",
            "--tenant",
            "t94-pt",
            "--cluster",
            "t94p",
            "--broker",
            "3",
            "--approve",
        ],
    );
    assert_eq!(p["execution"]["kind"], "pool-release", "{p}");
    // Still in the pool while it holds the tenant's data.
    let pool = run_cli(&eps, &["pool", "show", "t94-pt"]);
    assert_eq!(pool["pool"].as_array().unwrap().len(), 2, "{pool}");
    wait_state(&eps, id_of(&p).parse().unwrap(), &["done"]).await;
    eventually("broker 3 released", || async {
        let pool = run_cli(&eps, &["pool", "show", "t94-pt"]);
        (pool["pool"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let asg = assignment(&a, "t94-p").await;
    assert_eq!(on(&asg, 3), 0, "{asg:?}");
    assert_eq!(on(&asg, 2), 4, "{asg:?}");

    // Add it back and spread the tenant's topics onto it.
    let p = run_cli(
        &eps,
        &[
            "pool",
            "add",
            "--tenant",
            "t94-pt",
            "--cluster",
            "t94p",
            "--broker",
            "3",
            "--spread",
            "--approve",
        ],
    );
    assert_eq!(p["execution"]["kind"], "pool-add", "{p}");
    wait_state(&eps, id_of(&p).parse().unwrap(), &["done"]).await;
    let asg = assignment(&a, "t94-p").await;
    assert!(on(&asg, 3) >= 1, "nothing spread onto broker 3: {asg:?}");
    assert_eq!(on(&asg, 1), 0, "left the pool: {asg:?}");
    delete(&a, &["t94-p"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_idc_ends_with_the_policy_met() {
    let Shared {
        k, bootstrap, a, ..
    } = shared().await;
    let g = TestCluster::start_with(3, config()).await;
    let eps = add_cluster(&g, "t94m", &bootstrap);
    // Broker 3 is in IDC west, the others in the cluster's (east).
    let dirs: Vec<String> = k
        .nodes
        .iter()
        .find(|n| n.id == 3)
        .unwrap()
        .log_dirs
        .iter()
        .map(|d| format!("{}=1TiB", d.display()))
        .collect();
    let mut add = vec![
        "broker",
        "add",
        "--cluster",
        "t94m",
        "--id",
        "3",
        "--host",
        "127.0.0.1",
        "--rack",
        "r3",
        "--idc",
        "west",
        "--reporter",
        "127.0.0.1:1",
    ];
    for d in &dirs {
        add.extend(["--log-dir", d.as_str()]);
    }
    run_cli(&eps, &add);
    run_cli(&eps, &["cluster", "discover", "t94m"]);
    create(&a, "t94-m", vec![vec![1], vec![2], vec![1]], &[]).await;
    create(&a, "t94-m2", vec![vec![1]], &[]).await;
    produce(&bootstrap, "t94-m", 0, 100, 1024).await;

    // An IDC no broker is in is refused, naming the IDCs there are.
    let (code, _, err) = cli(&[
        "--endpoints",
        &eps,
        "topic",
        "migrate-idc",
        "--cluster",
        "t94m",
        "--topic",
        "t94-m",
        "--to-idc",
        "mars",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("mars") && err.contains("west"), "{err}");

    let p = run_cli(
        &eps,
        &[
            "topic",
            "migrate-idc",
            "--cluster",
            "t94m",
            "--topic",
            "t94-m",
            "--to-idc",
            "west",
            "--approve",
        ],
    );
    assert_eq!(p["execution"]["kind"], "migrate-idc", "{p}");
    wait_state(&eps, id_of(&p).parse().unwrap(), &["done"]).await;
    let asg = assignment(&a, "t94-m").await;
    assert!(asg.values().all(|r| r == &vec![3]), "{asg:?}");
    // Only the migrated topic moved.
    assert_eq!(assignment(&a, "t94-m2").await[&0], vec![1]);
    let pol = run_cli(&eps, &["policy", "list", "--cluster", "t94m"]);
    assert!(pol.to_string().contains("west"), "{pol}");
    delete(&a, &["t94-m", "t94-m2"]).await;
}

fn tasks_of(v: &Value) -> Vec<Value> {
    v["tasks"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusions_maintenance_and_freeze_keep_the_operator_in_charge() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    skewed(&a, &bootstrap, &d0, &["t94-x", "t94-y"], 6, 1500).await;
    let before = read_all(&bootstrap, "t94-y", 6);
    let g = TestCluster::start_with(3, config()).await;
    let eps = register(&g, "t94x", &bootstrap).await;

    // A bad pattern is refused, naming the field.
    let (code, _, err) = cli(&[
        "--endpoints",
        &eps,
        "cluster",
        "exclude-topics",
        "t94x",
        "t94-(",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("topics"), "{err}");
    run_cli(&eps, &["cluster", "exclude-topics", "t94x", "t94-x"]);
    run_cli(
        &eps,
        &[
            "broker",
            "maintenance",
            "--cluster",
            "t94x",
            "--id",
            "3",
            "on",
        ],
    );
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t94x"]);
    let tasks = tasks_of(&p);
    assert!(!tasks.is_empty(), "{p}");
    for t in &tasks {
        assert_ne!(t["topic"], "t94-x", "an excluded topic is planned: {t}");
        let target: Vec<i32> = serde_json::from_value(t["target"].clone()).unwrap();
        assert!(
            !target.contains(&3),
            "a replica planned onto broker 3 in maintenance: {t}"
        );
    }
    let warnings = p["execution"]["summary"]["warnings"].to_string();
    assert!(warnings.contains("t94-x"), "{warnings}");
    run_cli(
        &eps,
        &[
            "broker",
            "maintenance",
            "--cluster",
            "t94x",
            "--id",
            "3",
            "off",
        ],
    );

    // Broker 2 goes into maintenance after approval: its tasks wait.
    run_cli(
        &eps,
        &[
            "broker",
            "maintenance",
            "--cluster",
            "t94x",
            "--id",
            "2",
            "on",
        ],
    );
    let id = id_of(&p);
    run_cli(&eps, &["rebalance", "approve", &id]);
    let waiting = eventually("tasks waiting for broker 2", || async {
        let v = run_cli(&eps, &["rebalance", "show", &id]);
        v["execution"]["events"]
            .to_string()
            .contains("broker 2 is in maintenance")
            .then_some(v)
    })
    .await;
    assert_eq!(waiting["execution"]["state"], "executing");
    for t in tasks_of(&waiting) {
        let touches: Vec<i32> = serde_json::from_value(t["target"].clone()).unwrap();
        if touches.contains(&2) {
            assert_eq!(t["state"], "pending", "{t}");
        }
    }
    run_cli(
        &eps,
        &[
            "broker",
            "maintenance",
            "--cluster",
            "t94x",
            "--id",
            "2",
            "off",
        ],
    );

    // Freeze mid-execution: nothing is journaled or sent while frozen.
    eventually("a task under way", || async {
        let v = run_cli(&eps, &["rebalance", "show", &id]);
        tasks_of(&v)
            .iter()
            .any(|t| t["state"] == "submitted" || t["state"] == "done")
            .then_some(())
    })
    .await;
    let frozen = run_cli(
        &eps,
        &["cluster", "freeze", "t94x", "--reason", "incident 42"],
    );
    assert_eq!(frozen["frozen"], true);
    let at = run_cli(&eps, &["rebalance", "show", &id]);
    // Fifteen executor ticks with nothing recorded.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = run_cli(&eps, &["rebalance", "show", &id]);
    assert_eq!(
        at["execution"]["version"], later["execution"]["version"],
        "stepped while frozen"
    );
    let p2 = run_cli(
        &eps,
        &["rebalance", "propose", "--cluster", "t94x", "--dry-run"],
    );
    assert!(
        p2["execution"]["summary"]["warnings"]
            .to_string()
            .contains("frozen"),
        "{p2}"
    );
    run_cli(&eps, &["cluster", "unfreeze", "t94x"]);
    let done = wait_state(&eps, id.parse().unwrap(), &["done"]).await;
    assert!(
        tasks_of(&done).iter().all(|t| t["state"] == "done"),
        "{done}"
    );
    // The excluded topic is where it was: every replica on broker 1.
    assert!(assignment(&a, "t94-x")
        .await
        .values()
        .all(|r| r == &vec![1]));
    assert_eq!(read_all(&bootstrap, "t94-y", 6), before);
    delete(&a, &["t94-x", "t94-y"]).await;
}

fn write(path: &std::path::Path, v: &str) {
    std::fs::write(path, v).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_json_export_and_the_rollback_file_work_with_the_stock_tool() {
    let Shared {
        k: _held,
        bootstrap,
        a,
        d0,
    } = shared().await;
    skewed(&a, &bootstrap, &d0, &["t94-k"], 6, 500).await;
    let original = assignment(&a, "t94-k").await;
    let original_dirs = dirs_of(&a, "t94-k").await;
    let g = TestCluster::start_with(3, config()).await;
    let eps = register(&g, "t94k", &bootstrap).await;
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t94k"]);
    let id = id_of(&p);

    let tmp = tempfile::tempdir().unwrap();
    let (code, plan, err) = cli(&[
        "--endpoints",
        &eps,
        "-o",
        "kafka-json",
        "rebalance",
        "show",
        &id,
    ]);
    assert_eq!(code, 0, "{err}");
    let pv: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(pv["version"], 1);
    assert_eq!(
        pv["partitions"].as_array().unwrap().len(),
        tasks_of(&p).len()
    );
    assert!(
        pv["guardian"]["throttles"]
            .to_string()
            .contains("leader.replication.throttled.rate"),
        "{pv}"
    );
    let plan_file = tmp.path().join("plan.json");
    write(&plan_file, &plan);
    let rollback = tmp.path().join("rollback.json");
    let (code, _, err) = cli(&[
        "--endpoints",
        &eps,
        "-o",
        "json",
        "rebalance",
        "approve",
        &id,
        "--rollback-file",
        rollback.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("rollback file"), "{err}");
    wait_state(&eps, id.parse().unwrap(), &["done"]).await;

    // The stock tool reads Guardian's plan and finds it carried out.
    let bs = bootstrap.join(",");
    let (code, out, err) = kafka_tool(
        REASSIGN,
        &[
            "--bootstrap-server",
            &bs,
            "--reassignment-json-file",
            plan_file.to_str().unwrap(),
            "--verify",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("is completed"), "{out}");
    assert!(!out.contains("still in progress"), "{out}");
    assert_ne!(assignment(&a, "t94-k").await, original);

    // The rollback file, run by the stock tool, restores the assignment.
    let rb = rollback.to_str().unwrap();
    let (code, out, err) = kafka_tool(
        REASSIGN,
        &[
            "--bootstrap-server",
            &bs,
            "--reassignment-json-file",
            rb,
            "--execute",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    eventually("the stock tool's rollback complete", || async {
        let (code, out, _) = kafka_tool(
            REASSIGN,
            &[
                "--bootstrap-server",
                &bs,
                "--reassignment-json-file",
                rb,
                "--verify",
            ],
        );
        (code == 0 && !out.contains("in progress")).then_some(())
    })
    .await;
    assert_eq!(assignment(&a, "t94-k").await, original);
    assert_eq!(dirs_of(&a, "t94-k").await, original_dirs);

    // Guardian's own way back: run the plan again, then revert it.
    let p = run_cli(&eps, &["rebalance", "propose", "--cluster", "t94k"]);
    let id = id_of(&p);
    run_cli(
        &eps,
        &[
            "rebalance",
            "approve",
            &id,
            "--rollback-file",
            tmp.path().join("r2.json").to_str().unwrap(),
        ],
    );
    wait_state(&eps, id.parse().unwrap(), &["done"]).await;
    assert_ne!(assignment(&a, "t94-k").await, original);
    let r = run_cli(&eps, &["rebalance", "revert", &id, "--approve"]);
    assert_eq!(r["execution"]["kind"], "revert", "{r}");
    wait_state(&eps, id_of(&r).parse().unwrap(), &["done"]).await;
    assert_eq!(assignment(&a, "t94-k").await, original);
    assert_eq!(dirs_of(&a, "t94-k").await, original_dirs);
    let leaders: BTreeSet<i32> = a
        .metadata()
        .await
        .unwrap()
        .topics
        .iter()
        .filter(|t| t.name == "t94-k")
        .flat_map(|t| t.partitions.iter().map(|p| p.leader))
        .collect();
    assert_eq!(leaders, BTreeSet::from([1]));
    delete(&a, &["t94-k"]).await;
}

/// (replicas, leader) of every partition, by topic and partition.
async fn leadership(a: &KafkaClient) -> BTreeMap<(String, i32), (Vec<i32>, i32)> {
    let md = a.metadata().await.unwrap();
    md.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    (t.name.clone(), p.partition),
                    (p.replicas.clone(), p.leader),
                )
            })
        })
        .collect()
}

/// A rolling restart of all three brokers, one at a time, while two
/// producers (acks=all, idempotent) and a consumer run: the restart
/// command is a hook that asks the test to restart the JVM broker
/// (SIGTERM, start again on its dirs). The Guardian leader is SIGKILLed
/// while broker 2's command runs: the new leader runs it again and
/// finishes the roll. No record is lost, no produce fails, and every
/// partition ends with its replicas and leader as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_nothing_and_puts_leaders_back() {
    let Shared {
        mut k,
        bootstrap,
        a,
        ..
    } = shared().await;
    let topic = "t94-roll";
    create(
        &a,
        topic,
        vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
        &[("min.insync.replicas", "2")],
    )
    .await;
    let cfg = format!(
        "{}allow-restart-commands = true\nrestart-timeout-ms = 300000\n",
        config()
    );
    let mut g = TestCluster::start_with(3, &cfg).await;
    let eps = register(&g, "t94r", &bootstrap).await;
    let hooks = tempfile::tempdir().unwrap();
    let d = hooks.path().display().to_string();
    let command = format!(
        "touch {d}/req-$GUARDIAN_BROKER_ID-$$; while [ ! -f {d}/done-$GUARDIAN_BROKER_ID-$$ ]; do sleep 0.1; done"
    );
    let before = leadership(&a).await;
    let traffic =
        guardian_tests::kafka::traffic::Traffic::start(&bootstrap, topic, 2, "t94-roll-g");
    eventually("the consumer reads", || async {
        (traffic.consumed() > 100).then_some(())
    })
    .await;

    let p = run_cli(
        &eps,
        &[
            "cluster",
            "roll",
            "t94r",
            "--restart-command",
            &command,
            "--approve",
        ],
    );
    assert_eq!(p["execution"]["kind"], "roll", "{p}");
    let id: u64 = id_of(&p).parse().unwrap();
    let mut handled = BTreeSet::new();
    let mut restarts: BTreeMap<i32, u32> = BTreeMap::new();
    let mut killed = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(400);
    let done = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the roll did not finish"
        );
        let v = run_cli(&eps, &["rebalance", "show", &id.to_string()]);
        match v["execution"]["state"].as_str().unwrap_or("") {
            "done" => break v,
            s @ ("failed" | "cancelled") => panic!("the roll ended {s}: {}", v["execution"]),
            _ => {}
        }
        let mut reqs: Vec<String> = std::fs::read_dir(hooks.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("req-") && !handled.contains(n))
            .collect();
        reqs.sort();
        for req in reqs {
            let rest = req.trim_start_matches("req-").to_string();
            let b: i32 = rest.split('-').next().unwrap().parse().unwrap();
            // No partition it could hand over is still led by it.
            for ((t, p), (replicas, leader)) in leadership(&a).await {
                let elsewhere = replicas.iter().any(|r| *r != b);
                assert!(
                    leader != b || !elsewhere,
                    "{t}-{p} is still led by broker {b} when its restart command runs"
                );
            }
            if b == 2 && killed.is_none() {
                let leader = g.wait_leader(Duration::from_secs(10)).await;
                g.kill(leader);
                killed = Some(leader);
            }
            k.terminate(b);
            k.restart(b, 3).await;
            *restarts.entry(b).or_default() += 1;
            std::fs::write(hooks.path().join(format!("done-{rest}")), "").unwrap();
            handled.insert(req);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let next = g.wait_leader(Duration::from_secs(20)).await;
    assert_ne!(Some(next), killed);
    let events = done["execution"]["events"].to_string();
    assert!(
        events.contains("started by an earlier leader"),
        "the new leader re-ran broker 2's command: {events}"
    );
    // Broker 2 twice: once for the killed leader's command, once for the
    // new leader's (a restart command must tolerate running twice).
    assert_eq!(
        restarts,
        BTreeMap::from([(1, 1), (2, 2), (3, 1)]),
        "{events}"
    );
    eprintln!("the roll's events: {events}");

    let report = traffic.stop(Duration::from_secs(60)).await;
    assert!(
        report.errors.is_empty(),
        "produce errors: {:?}",
        report.errors
    );
    assert!(report.acked.len() > 1000, "{} records", report.acked.len());
    let missing: Vec<&String> = report.acked.difference(&report.consumed).take(10).collect();
    assert!(
        missing.is_empty(),
        "acknowledged, never consumed: {missing:?}"
    );
    let (stored, _) = read_all(&bootstrap, topic, 3);
    assert_eq!(
        stored,
        report.acked.len(),
        "records in the log vs acknowledged"
    );

    // Leaders back where they were; no replica order changed.
    let after = leadership(&a).await;
    for (tp, (replicas, leader)) in &before {
        let Some((r, l)) = after.get(tp) else {
            continue;
        };
        assert_eq!(r, replicas, "{tp:?} replicas");
        if *leader == replicas[0] {
            assert_eq!(l, leader, "{tp:?} leader");
        }
    }
    delete(&a, &[topic]).await;
}
