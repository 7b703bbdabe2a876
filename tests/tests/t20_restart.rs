//! Restart: every node stopped and started again from the same directory
//! keeps the registry; `guardian dev` resumes from disk; `guardian dev`
//! with its simulated federation registers it, collects it, proposes a
//! rebalance and executes it once approved.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use guardian_proto::pb;
use guardian_tests::{cli, cluster, guardian_bin, wait_until, TestCluster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_full_restart_from_same_dirs_keeps_everything() {
    let mut c = TestCluster::start(3).await;
    let client = c.client();
    for i in 0..20 {
        let cl = cluster(&format!("c{i}"));
        client
            .call(|mut s| {
                let cl = cl.clone();
                async move {
                    s.add_cluster(pb::AddClusterRequest { cluster: Some(cl) })
                        .await
                }
            })
            .await
            .unwrap();
    }
    for id in 1..=3 {
        c.stop(id);
    }
    for id in 1..=3 {
        c.restart(id);
    }
    c.wait_leader(Duration::from_secs(15)).await;
    let client = c.client();
    let r = client
        .call(|mut s| async move {
            s.list_clusters(pb::ListClustersRequest { stale: false })
                .await
        })
        .await
        .unwrap();
    assert_eq!(r.clusters.len(), 20);
    // Ids keep counting from where they were.
    let added = client
        .call(|mut s| async move {
            s.add_cluster(pb::AddClusterRequest {
                cluster: Some(cluster("after-restart")),
            })
            .await
        })
        .await
        .unwrap();
    assert_eq!(added.id, 21);
}

/// Runs `guardian dev ARGS` and returns (child, endpoints, the lines it
/// prints from then on) once it prints the export line.
fn start_dev_with(
    dir: &std::path::Path,
    args: &[&str],
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = Command::new(guardian_bin())
        .args(["dev", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn guardian dev");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let endpoints = loop {
        let line = lines.next().expect("dev printed its endpoints").unwrap();
        if let Some(e) = line.strip_prefix("export GUARDIAN_ENDPOINTS=") {
            break e.to_string();
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    (child, endpoints, rx)
}

fn start_dev(dir: &std::path::Path) -> (std::process::Child, String) {
    let (c, e, _) = start_dev_with(dir, &["--no-sim"]);
    (c, e)
}

/// `guardian dev` out of the box (a small federation here): the simulated
/// cluster is registered with its reporters, collected fresh, a rebalance
/// proposal is printed, and once approved it executes to `done` on the
/// simulator; a resumed run serves the same simulated addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t22_dev_governs_a_simulated_federation() {
    let tmp = tempfile::tempdir().unwrap();
    let shape = [
        "--sim-clusters",
        "1",
        "--sim-brokers",
        "4",
        "--sim-disks",
        "2",
        "--sim-partitions",
        "24",
        "--sim-disk-gib",
        "16",
    ];
    let (mut dev, eps, lines) = start_dev_with(tmp.path(), &shape);
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--endpoints", &eps, "-o", "json"];
        all.extend_from_slice(args);
        let (code, out, err) = cli(&all);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    let brokers = json(&["broker", "list", "--cluster", "sim-0"]);
    assert_eq!(brokers.as_array().unwrap().len(), 4, "{brokers}");
    assert!(brokers
        .as_array()
        .unwrap()
        .iter()
        .all(|b| !b["reporter_endpoint"].as_str().unwrap_or("").is_empty()));
    // The proposal line, once the load is fresh.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let id = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).expect("dev printed a proposal");
        if let Some(rest) = line.strip_prefix("sim-0: proposal ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let load = json(&["load", "cluster", "sim-0"]);
    assert_eq!(load["stale_brokers"].as_u64().unwrap_or(0), 0, "{load}");
    json(&["rebalance", "approve", &id, "--rollback-file", "/dev/null"]);
    wait_until("the execution done", Duration::from_secs(120), || async {
        let v = json(&["rebalance", "show", &id]);
        let s = v["execution"]["state"].as_str().unwrap_or("").to_string();
        assert!(!["failed", "cancelled"].contains(&s.as_str()), "{v}");
        (s == "done").then_some(())
    })
    .await;
    kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM).unwrap();
    assert!(dev.wait().unwrap().success());

    // Resumed: the registry's bootstrap still answers (same ports).
    let (mut dev, eps2, _) = start_dev_with(tmp.path(), &shape);
    assert_eq!(eps, eps2);
    let c = json(&["cluster", "discover", "sim-0", "--dry-run"]);
    assert!(
        c["missing_broker_ids"]
            .as_array()
            .is_none_or(|m| m.is_empty()),
        "{c}"
    );
    kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM).unwrap();
    assert!(dev.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t21_dev_starts_three_nodes_and_resumes_from_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut dev, eps) = start_dev(tmp.path());
    assert_eq!(eps.split(',').count(), 3);
    let (code, _, err) = cli(&[
        "--endpoints",
        &eps,
        "cluster",
        "add",
        "--name",
        "dev-1",
        "--bootstrap",
        "localhost:9092",
        "--idc",
        "local",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(&["--endpoints", &eps, "raft", "status", "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
    assert!(v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["role"] != "unreachable"));

    kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM).unwrap();
    let st = dev.wait().unwrap();
    assert!(st.success(), "dev exited with {st}");
    // All three children are gone: their admin ports refuse connections.
    for ep in eps.split(',') {
        wait_until("node port closed", Duration::from_secs(10), || async {
            std::net::TcpStream::connect(ep).is_err().then_some(())
        })
        .await;
    }

    let (mut dev, eps2) = start_dev(tmp.path());
    assert_eq!(eps, eps2, "dev keeps its ports across runs");
    let (code, out, err) = cli(&["--endpoints", &eps2, "cluster", "list", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "dev-1");
    kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM).unwrap();
    assert!(dev.wait().unwrap().success());
}

async fn allocate(c: &TestCluster, kind: pb::IdKind, count: u32) -> Vec<String> {
    c.client()
        .call(|mut s| async move {
            s.allocate_ids(pb::AllocateIdsRequest {
                kind: kind as i32,
                count,
            })
            .await
        })
        .await
        .expect("allocate ids")
        .ids
}

/// Invariant 5: an issued id is never issued again — across kinds, after a
/// snapshot and a full restart. The leader's draw is made to collide with
/// an issued id (`controller::draw_ids`): apply refuses it and the leader
/// draws again, so the call still succeeds without the old id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t23_issued_ids_survive_restart_and_snapshot_and_a_collision_is_redrawn() {
    let mut c = TestCluster::start(3).await;
    let first = allocate(&c, pb::IdKind::Segment, 4).await;
    assert_eq!(first.len(), 4);
    let taken = first[0].clone();

    // A collision on the live leader: redrawn.
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    c.fail_point(
        leader,
        "controller::draw_ids",
        &format!("1*return({taken})"),
    );
    let again = allocate(&c, pb::IdKind::Segment, 2).await;
    assert_eq!(again.len(), 2);
    assert!(!again.contains(&taken), "{taken} issued twice: {again:?}");
    let redraws = |c: &TestCluster, id: u64| {
        std::fs::read_to_string(c.node(id).dir.join("guardian.log"))
            .unwrap()
            .matches("a drawn id was issued before; drawing again")
            .count()
    };
    assert_eq!(redraws(&c, leader), 1, "the collision was not redrawn");

    // Snapshot, then every node restarted from its dir.
    c.client()
        .stub(&c.node(leader).admin)
        .unwrap()
        .trigger_snapshot(pb::TriggerSnapshotRequest {})
        .await
        .unwrap();
    for id in 1..=3 {
        c.stop(id);
    }
    for id in 1..=3 {
        c.restart(id);
    }
    let leader = c.wait_leader(Duration::from_secs(15)).await;
    // The same id drawn for another kind: still refused, redrawn.
    c.fail_point(
        leader,
        "controller::draw_ids",
        &format!("1*return({taken})"),
    );
    let before = redraws(&c, leader);
    let after = allocate(&c, pb::IdKind::Topic, 3).await;
    assert_eq!(
        redraws(&c, leader),
        before + 1,
        "the collision was not redrawn"
    );
    assert_eq!(after.len(), 3);
    assert!(
        !after.contains(&taken),
        "{taken} issued again after restart: {after:?}"
    );
    let mut all: Vec<&String> = first.iter().chain(&again).chain(&after).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an id was issued twice");
}
