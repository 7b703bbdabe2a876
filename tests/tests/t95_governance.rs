//! Live governance on real Kafka (1 controller + 3 brokers) with a real
//! `guardian-reporter` beside every broker: a consumer group that reads
//! far behind the log end while its leader's page cache is overridden
//! small and its disk's read budget low gets a `consumer_byte_rate`
//! quota naming the group, the partition and the reason — in observe mode
//! only recorded, in enforce mode written at the level Kafka applies (a
//! `user=<default>` quota set first shadows client-id quotas, so it goes
//! to `user=<default>,client-id=…`); the Guardian leader is SIGKILLed
//! while it holds the quota; production stops, the group catches up, and
//! the new leader removes the quota. Nothing of Guardian's is left on
//! the cluster; the operator's quota is untouched.
//!
//! A follower stopped while a producer writes and restarted far behind
//! gets a replication throttle (its catch-up reads exceed the leader
//! dir's budget), removed once it is back in the ISR. A broker SIGKILLed
//! past `healing.broker-failure-ms` is healed around (one that returns
//! first cancels its proposal).
//!
//! On one host all log dirs share one page cache and one disk: the
//! decisions come from the overridden inputs (`guardian broker set`),
//! never from real disk reads.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use guardian_kafka::types::{ConfigResource, QuotaEntity, QuotaMatch};
use guardian_kafka::{KafkaAdmin, KafkaClient};
use guardian_tests::conformance::create;
use guardian_tests::kafka::ops::{add_cluster, own_override, run_cli, shared};
use guardian_tests::{guardian_bin, wait_until, TestCluster};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

const TOPIC: &str = "t95-q";
const GROUP: &str = "t95-cold";
const READER: &str = "t95-reader";

struct Reporter(Child);

impl Drop for Reporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reporter(dirs: &[PathBuf], metrics: Option<&str>) -> (Reporter, String) {
    let mut cmd = Command::new(guardian_bin().with_file_name("guardian-reporter"));
    for d in dirs {
        cmd.arg("--log-dir").arg(d);
    }
    if let Some(m) = metrics {
        cmd.args(["--broker-metrics", m]);
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run guardian-reporter");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?}"));
    let addr = v["listening"].as_str().unwrap().to_string();
    (Reporter(child), addr)
}

fn config(mode: &str) -> String {
    format!(
        "[collect]\ninterval-ms = 500\ntimeout-ms = 400\n[governance]\ninterval-ms = 1000\nmode = \"{mode}\"\nclaim-ttl-ms = 10000\nrelease-after-rounds = 3\nmin-rate = 10000\nmigrate-after-rounds = 0\n"
    )
}

/// Guardian's claims on the cluster.
fn throttles(eps: &str) -> Vec<Value> {
    run_cli(eps, &["throttle", "list", "--cluster", "t95"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn events(eps: &str) -> Vec<Value> {
    run_cli(eps, &["events", "--cluster", "t95"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn quota(a: &KafkaClient, entity: &[(&str, Option<&str>)]) -> Option<f64> {
    let comps: Vec<(String, QuotaMatch)> = entity
        .iter()
        .map(|(t, n)| {
            (
                t.to_string(),
                n.map_or(QuotaMatch::Default, |n| QuotaMatch::Exact(n.into())),
            )
        })
        .collect();
    a.describe_client_quotas(&comps, true)
        .await
        .unwrap()
        .iter()
        .flat_map(|q| q.values.clone())
        .find(|(k, _)| k == "consumer_byte_rate")
        .map(|(_, v)| v)
}

/// Registers the three brokers with their reporters and overrides broker
/// 1's host: a tiny page cache and `read_budget` on the dir holding the
/// topic.
fn register(
    g: &TestCluster,
    bootstrap: &[String],
    brokers: &[Registered],
    d0: &str,
    read_budget: &str,
) -> String {
    let eps = add_cluster(g, "t95", bootstrap);
    for (id, dirs, rep) in brokers {
        let mut args = vec![
            "broker".to_string(),
            "add".into(),
            "--cluster".into(),
            "t95".into(),
            "--id".into(),
            id.to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--rack".into(),
            format!("r{id}"),
            "--reporter".into(),
            rep.clone(),
        ];
        for d in dirs {
            args.push("--log-dir".into());
            args.push(format!("{}=100GiB", d.display()));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&eps, &a);
    }
    run_cli(
        &eps,
        &[
            "broker",
            "set",
            "--cluster",
            "t95",
            "--id",
            "1",
            "--page-cache-bytes",
            "64KiB",
            "--disk-read-budget",
            &format!("{d0}={read_budget}"),
        ],
    );
    eps
}

/// A broker as registered: id, log dirs, reporter address.
type Registered = (i32, Vec<PathBuf>, String);

/// A real `guardian-reporter` beside every broker of `k`: the reporters
/// and each broker as registered.
fn start_reporters(k: &guardian_tests::kafka::KafkaCluster) -> (Vec<Reporter>, Vec<Registered>) {
    let mut reporters = Vec::new();
    let mut registered = Vec::new();
    for n in k.nodes.iter().filter(|n| n.broker_addr.is_some()) {
        let (r, addr) = reporter(&n.log_dirs, n.metrics_url.as_deref());
        reporters.push(r);
        registered.push((n.id, n.log_dirs.clone(), addr));
    }
    (reporters, registered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_reader_is_quota_throttled_then_released() {
    let s = shared().await;
    let (bootstrap, a, d0) = (s.bootstrap.clone(), s.a, s.d0.clone());
    let (reporters, registered) = start_reporters(&s.k);
    // One partition on broker 1's first dir, 1 MiB behind the reader.
    create(&a, TOPIC, vec![vec![1]], &[("segment.bytes", "1048576")]).await;
    let moves = vec![(guardian_kafka::TopicPartition::new(TOPIC, 0), d0.clone())];
    for (tp, r) in a.alter_replica_log_dirs(1, &moves).await.unwrap() {
        r.unwrap_or_else(|e| panic!("{tp} to {d0}: {e}"));
    }
    let servers = bootstrap.join(",");
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (go, servers) = (producing.clone(), servers.clone());
        std::thread::spawn(move || {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &servers)
                .set("linger.ms", "5")
                .create()
                .unwrap();
            let payload = vec![b'q'; 1000];
            for i in 0..1024 {
                let key = i.to_string();
                while p
                    .send(BaseRecord::to(TOPIC).key(&key).payload(&payload))
                    .is_err()
                {
                    p.poll(Duration::from_millis(10));
                }
            }
            p.flush(Duration::from_secs(30)).unwrap();
            // Then about 50 KB/s until told to stop.
            let mut i = 1024u64;
            while go.load(Ordering::SeqCst) {
                let key = i.to_string();
                let _ = p.send(BaseRecord::to(TOPIC).key(&key).payload(&payload));
                p.poll(Duration::from_millis(20));
                i += 1;
            }
            p.flush(Duration::from_secs(30)).unwrap();
        })
    };
    // The reader: about 100 records (100 KB) a second, committing often,
    // far behind the log end.
    let reading = Arc::new(AtomicBool::new(true));
    let consumer = {
        let (go, servers) = (reading.clone(), servers.clone());
        std::thread::spawn(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &servers)
                .set("group.id", GROUP)
                .set("client.id", READER)
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", "200")
                .set("max.partition.fetch.bytes", "16384")
                .create()
                .unwrap();
            c.subscribe(&[TOPIC]).unwrap();
            while go.load(Ordering::SeqCst) {
                let _ = c.poll(Duration::from_millis(100));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    // Observe mode: the decision is recorded, nothing is written.
    {
        let g = TestCluster::start_with(3, &config("observe")).await;
        let eps = register(&g, &bootstrap, &registered, &d0, "30KB/s");
        wait_until("an observed quota", Duration::from_secs(90), || async {
            throttles(&eps)
                .iter()
                .any(|c| c["state"] == "observed" && c["target"]["client_id"] == READER)
                .then_some(())
        })
        .await;
        wait_until("the observed event", Duration::from_secs(10), || async {
            events(&eps)
                .iter()
                .any(|e| {
                    e["kind"] == "throttle.observed" && e["text"].as_str().unwrap().contains(GROUP)
                })
                .then_some(())
        })
        .await;
        assert_eq!(quota(&a, &[("client-id", Some(READER))]).await, None);
        assert_eq!(
            quota(&a, &[("user", None), ("client-id", Some(READER))]).await,
            None
        );
    }

    // The operator's default-user quota shadows client-id quotas.
    let default_user = QuotaEntity(vec![("user".into(), None)]);
    a.alter_client_quotas(&[(
        default_user.clone(),
        vec![("consumer_byte_rate".into(), Some(50e6))],
    )])
    .await
    .unwrap();

    let mut g = TestCluster::start_with(3, &config("enforce")).await;
    let eps = register(&g, &bootstrap, &registered, &d0, "30KB/s");
    let claim = wait_until("an applied quota", Duration::from_secs(90), || async {
        throttles(&eps)
            .into_iter()
            .find(|c| c["state"] == "applied" && c["target"]["client_id"] == READER)
    })
    .await;
    let reason = claim["reason"].as_str().unwrap();
    assert!(
        reason.contains(GROUP) && reason.contains("t95-q-0") && reason.contains("user=<default>"),
        "{claim}"
    );
    assert_eq!(
        claim["target"]["user"], "",
        "written at user=<default>: {claim}"
    );
    let value: f64 = claim["value"].as_str().unwrap().parse().unwrap();
    let in_kafka = quota(&a, &[("user", None), ("client-id", Some(READER))]).await;
    assert_eq!(in_kafka, Some(value), "{claim}");
    let abnormal = run_cli(&eps, &["abnormal", "--cluster", "t95"]);
    assert!(
        abnormal["plan"]["disks"]
            .to_string()
            .contains("client_read"),
        "{abnormal}"
    );

    // An operator clears it: gone from Kafka at once, and not set again
    // before one claim TTL (10 s) has passed, although its cause persists.
    let cleared_at = std::time::Instant::now();
    run_cli(&eps, &["throttle", "clear", &claim["id"].to_string()]);
    assert_eq!(
        quota(&a, &[("user", None), ("client-id", Some(READER))]).await,
        None
    );
    let again = wait_until("the quota set again", Duration::from_secs(90), || async {
        throttles(&eps)
            .into_iter()
            .find(|c| c["state"] == "applied" && c["target"]["client_id"] == READER)
    })
    .await;
    assert!(
        cleared_at.elapsed() >= Duration::from_secs(10),
        "re-set {:?} after the clear: {again}",
        cleared_at.elapsed()
    );
    assert_ne!(again["id"], claim["id"]);

    // The leader dies holding the quota; the new one keeps the ledger.
    let leader = g.wait_leader(Duration::from_secs(10)).await;
    g.kill(leader);
    g.wait_leader(Duration::from_secs(20)).await;
    producing.store(false, Ordering::SeqCst);
    producer.join().unwrap();
    // Production stopped: the group catches up, and the new leader
    // removes the quota (its cause gone `release-after-rounds` in a row).
    wait_until("the group caught up", Duration::from_secs(120), || async {
        let lag = a.consumer_lag(GROUP).await.ok()?;
        lag.iter().all(|l| l.lag == 0).then_some(())
    })
    .await;
    wait_until("the quota removed", Duration::from_secs(60), || async {
        throttles(&eps).is_empty().then_some(())
    })
    .await;
    // And it stays removed: nothing flaps.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let left = throttles(&eps);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        quota(&a, &[("user", None), ("client-id", Some(READER))]).await,
        None,
        "Guardian's quota is gone"
    );
    assert_eq!(
        quota(&a, &[("user", None)]).await,
        Some(50e6),
        "the operator's quota is untouched"
    );
    for kind in ["throttle.set", "throttle.removed"] {
        wait_until(kind, Duration::from_secs(10), || async {
            events(&eps).iter().any(|e| e["kind"] == kind).then_some(())
        })
        .await;
    }
    for e in events(&eps) {
        eprintln!("event: {} {} {}", e["kind"], e["subject"], e["text"]);
    }
    reading.store(false, Ordering::SeqCst);
    consumer.join().unwrap();
    a.alter_client_quotas(&[(default_user, vec![("consumer_byte_rate".into(), None)])])
        .await
        .unwrap();
    a.delete_topics(&[TOPIC.to_string()]).await.unwrap();
    drop(reporters);
}

fn healing_config() -> &'static str {
    "[collect]\ninterval-ms = 500\ntimeout-ms = 400\n[governance]\ninterval-ms = 1000\nmigrate-after-rounds = 0\n[healing]\nbroker-failure-ms = 6000\n[executor]\ntick-ms = 100\nbroker-grace-ms = 3000\nthrottle-bytes-per-sec = 20971520\n"
}

/// The executions of cluster `t95h` with the healing note.
fn healing(eps: &str) -> Vec<Value> {
    run_cli(eps, &["rebalance", "list", "--cluster", "t95h"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A broker in maintenance that dies triggers no healing; a broker
/// SIGKILLed for longer than `healing.broker-failure-ms` gets a healing
/// proposal; one that comes back before it runs cancels it; an approved
/// one restores the replication factor of RF-2 topics on the two live
/// brokers, lists the RF-3 topic's partition unplaced with the reason
/// (two live brokers cannot hold three replicas), and leaves internal
/// topics alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_is_healed_and_one_that_returns_cancels_it() {
    let guardian_tests::kafka::ops::Shared {
        mut k,
        bootstrap,
        a,
        ..
    } = shared().await;
    let topic = "t95-h";
    let rf3 = "t95-h3";
    create(&a, topic, vec![vec![1, 2], vec![2, 3], vec![3, 1]], &[]).await;
    create(&a, rf3, vec![vec![1, 2, 3]], &[]).await;
    let g = TestCluster::start_with(3, healing_config()).await;
    let eps = guardian_tests::kafka::ops::register(&g, "t95h", &bootstrap).await;

    // Broker 2 in maintenance dies: rounds past broker-failure-ms make no
    // healing proposal.
    let maintenance = |on: &str| {
        run_cli(
            &eps,
            &[
                "broker",
                "maintenance",
                "--cluster",
                "t95h",
                "--id",
                "2",
                on,
            ],
        );
    };
    maintenance("on");
    k.kill(2);
    let killed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    wait_until(
        "a governance round 8 s after the kill",
        Duration::from_secs(60),
        || async {
            let (code, out, _) = guardian_tests::cli(&[
                "--endpoints",
                &eps,
                "-o",
                "json",
                "abnormal",
                "--cluster",
                "t95h",
            ]);
            let v: Value = serde_json::from_str(&out).ok()?;
            (code == 0 && v["at_ms"].as_u64()? > killed + 8_000).then_some(())
        },
    )
    .await;
    assert!(
        healing(&eps).is_empty(),
        "a broker in maintenance triggers no healing: {:?}",
        healing(&eps)
    );
    k.restart(2, 3).await;
    maintenance("off");
    guardian_tests::conformance::eventually("broker 2 in sync", || async {
        let md = a.metadata().await.ok()?;
        md.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.isr.len() == p.replicas.len())
            .then_some(())
    })
    .await;

    // Broker 3 dies and comes back before anyone approves: cancelled.
    k.kill(3);
    let first = wait_until("a healing proposal", Duration::from_secs(90), || async {
        healing(&eps).into_iter().find(|e| e["state"] == "proposed")
    })
    .await;
    let first_id = first["id"].as_u64().unwrap();
    let id = first_id.to_string();
    let shown = run_cli(&eps, &["rebalance", "show", &id]);
    let warnings = shown["execution"]["summary"]["warnings"].to_string();
    assert!(
        warnings.contains("healing") && warnings.contains("[3]"),
        "{shown}"
    );
    k.restart(3, 3).await;
    wait_until(
        "the proposal cancelled",
        Duration::from_secs(60),
        || async {
            let v = run_cli(&eps, &["rebalance", "show", &id]);
            (v["execution"]["state"] == "cancelled").then_some(())
        },
    )
    .await;
    // Everything back in sync before the next failure.
    guardian_tests::conformance::eventually("broker 3 in sync", || async {
        let md = a.metadata().await.ok()?;
        md.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.isr.len() == p.replicas.len())
            .then_some(())
    })
    .await;

    // Broker 1 dies for good: the approved proposal restores RF 2.
    k.kill(1);
    let heal = wait_until(
        "a second healing proposal",
        Duration::from_secs(90),
        || async {
            healing(&eps)
                .into_iter()
                .find(|e| e["state"] == "proposed" && e["id"].as_u64() != Some(first_id))
        },
    )
    .await;
    let hid = heal["id"].to_string();
    let shown = run_cli(&eps, &["rebalance", "show", &hid]);
    let unplaced = shown["execution"]["summary"]["unplaced"].to_string();
    assert!(
        unplaced.contains(&format!("{rf3}-0")) && unplaced.contains("no broker"),
        "the RF-3 partition is listed unplaced with the reason: {unplaced}"
    );
    run_cli(
        &eps,
        &["rebalance", "approve", &hid, "--rollback-file", "/dev/null"],
    );
    guardian_tests::kafka::ops::wait_state(&eps, hid.parse().unwrap(), &["done"]).await;
    let md = a.metadata().await.unwrap();
    let t = md.topics.iter().find(|t| t.name == topic).unwrap();
    for p in &t.partitions {
        assert_eq!(
            p.replicas.len(),
            2,
            "{topic}-{}: {:?}",
            p.partition,
            p.replicas
        );
        assert!(
            !p.replicas.contains(&1),
            "{topic}-{}: {:?}",
            p.partition,
            p.replicas
        );
    }
    k.restart(1, 3).await;
    a.delete_topics(&[topic.to_string(), rf3.to_string()])
        .await
        .unwrap();
}

fn follower_config() -> &'static str {
    "[collect]\ninterval-ms = 500\ntimeout-ms = 400\n[governance]\ninterval-ms = 500\nmode = \"enforce\"\nclaim-ttl-ms = 10000\nconfirm-rounds = 1\nrelease-after-rounds = 3\nmin-rate = 10000\nmigrate-after-rounds = 0\n[healing]\nenabled = false\n"
}

/// A follower stopped while a producer writes comes back far behind: its
/// catch-up reads (the backlog is out of the leader's overridden page
/// cache) exceed the leader dir's read budget, so Guardian sets a
/// replication throttle on the pair (`partition:broker` lists, rates
/// floored above the partition's bytes-in so it still catches up); once
/// it is back in the ISR the throttle is removed and nothing of Guardian's
/// is left on the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catching_up_follower_is_replication_throttled_then_released() {
    let s = shared().await;
    let (bootstrap, a, d0) = (s.bootstrap.clone(), s.a, s.d0.clone());
    let mut k = s.k;
    let topic = "t95-f";
    let (reporters, registered) = start_reporters(&k);
    create(&a, topic, vec![vec![1, 3]], &[("segment.bytes", "8388608")]).await;
    let tp = guardian_kafka::TopicPartition::new(topic, 0);
    for (tp, r) in a
        .alter_replica_log_dirs(1, &[(tp.clone(), d0.clone())])
        .await
        .unwrap()
    {
        r.unwrap_or_else(|e| panic!("{tp} to {d0}: {e}"));
    }
    let g = TestCluster::start_with(3, follower_config()).await;
    // Broker 1 (the leader) reads its backlog from disk within 10 MB/s:
    // the catch-up (3 × 4 MB/s by the model) exceeds it; the throttle
    // (10 MB/s, above the 1.5 × bytes-in floor) still gains 6 MB/s.
    let eps = register(&g, &bootstrap, &registered, &d0, "10MB/s");

    // A producer at about 4 MB/s for the whole test.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (go, servers) = (producing.clone(), bootstrap.join(","));
        std::thread::spawn(move || {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &servers)
                .set("linger.ms", "5")
                .set("acks", "1")
                .create()
                .unwrap();
            let payload = vec![b'f'; 4000];
            let start = std::time::Instant::now();
            let mut sent = 0u64;
            while go.load(Ordering::SeqCst) {
                // 1,000 records of 4 kB a second.
                let due = start.elapsed().as_millis() as u64;
                while sent < due {
                    let key = sent.to_string();
                    if p.send(
                        BaseRecord::to(topic)
                            .partition(0)
                            .key(&key)
                            .payload(&payload),
                    )
                    .is_err()
                    {
                        break;
                    }
                    sent += 1;
                }
                p.poll(Duration::from_millis(5));
            }
            let _ = p.flush(Duration::from_secs(10));
        })
    };
    let size_on = |b: i32| {
        let a = &a;
        let topic = topic.to_string();
        async move {
            a.describe_log_dirs(b)
                .await
                .ok()?
                .iter()
                .flat_map(|d| d.replicas.clone())
                .find(|r| r.topic == topic && !r.is_future)
                .map(|r| r.size_bytes)
        }
    };
    // Broker 3 stops; the leader gets 120 MB ahead of it (unthrottled, a
    // follower here catches up ~30 MB/s; the throttle lands ~1 s after it
    // is back).
    k.terminate(3);
    let base = size_on(1).await.unwrap_or(0);
    wait_until("a 120 MB backlog", Duration::from_secs(120), || async {
        (size_on(1).await? > base + 120_000_000).then_some(())
    })
    .await;
    let t0 = std::time::Instant::now();
    k.restart(3, 3).await;
    eprintln!("restarted in {:?}", t0.elapsed());

    // Throttled while it catches up…
    let claim = wait_until(
        "a replication throttle for the follower",
        Duration::from_secs(60),
        || async {
            // `applied`: written to Kafka and read back (a claim is
            // journaled as `applying` before it is written).
            throttles(&eps).into_iter().find(|c| {
                c["state"] == "applied"
                    && c["target"]["key"] == "follower.replication.throttled.replicas"
            })
        },
    )
    .await;
    eprintln!("claimed {:?} after the restart", t0.elapsed());
    let reason = claim["reason"].as_str().unwrap_or("").to_string();
    assert!(reason.contains("follower on broker 3"), "{claim}");
    assert_eq!(claim["value"], "0:3", "{claim}");
    let in_sync = || async {
        let md = a.metadata().await.ok()?;
        let p = md.topics.iter().find(|t| t.name == topic)?.partitions[0].clone();
        Some(p.isr.contains(&3))
    };
    // Guardian read it back through its own client; the broker this client
    // asks serves configs from its metadata image, which may trail the
    // controller by a moment: wait for it there too (or for the catch-up
    // to have finished and the list to be gone already).
    let flist = wait_until(
        "the list on the topic while the follower catches up",
        Duration::from_secs(10),
        || async {
            let l = own_override(
                &a,
                &ConfigResource::Topic(topic.into()),
                "follower.replication.throttled.replicas",
            )
            .await;
            let done = l.as_deref() == Some("0:3") || in_sync().await == Some(true);
            done.then_some(l)
        },
    )
    .await;
    eprintln!("the list on the topic: {flist:?}");
    // …back in the ISR: the throttle goes, and nothing is left.
    wait_until(
        "broker 3 back in the ISR",
        Duration::from_secs(180),
        || async { in_sync().await.filter(|s| *s) },
    )
    .await;
    eprintln!("in sync {:?} after the restart", t0.elapsed());
    wait_until("the throttle removed", Duration::from_secs(60), || async {
        throttles(&eps).is_empty().then_some(())
    })
    .await;
    producing.store(false, Ordering::SeqCst);
    producer.join().unwrap();
    for (r, key) in [
        (
            ConfigResource::Broker(1),
            "leader.replication.throttled.rate",
        ),
        (
            ConfigResource::Broker(3),
            "follower.replication.throttled.rate",
        ),
        (
            ConfigResource::Topic(topic.into()),
            "leader.replication.throttled.replicas",
        ),
        (
            ConfigResource::Topic(topic.into()),
            "follower.replication.throttled.replicas",
        ),
    ] {
        assert_eq!(own_override(&a, &r, key).await, None, "{r} {key}");
    }
    let evs = events(&eps);
    assert!(
        evs.iter().any(|e| e["kind"] == "throttle.set"
            && e["text"]
                .as_str()
                .unwrap_or("")
                .contains("follower on broker 3")),
        "{evs:?}"
    );
    assert!(
        evs.iter().any(|e| e["kind"] == "throttle.removed"),
        "{evs:?}"
    );
    a.delete_topics(&[topic.to_string()]).await.unwrap();
    drop(reporters);
}
