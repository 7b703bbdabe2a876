//! Restart: every node stopped and started again from the same directory
//! keeps the registry; `guardian dev` resumes from disk.

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

/// Runs `guardian dev` and returns (child, endpoints) once it prints the export line.
fn start_dev(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(guardian_bin())
        .args(["dev", "--data-dir"])
        .arg(dir)
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
    std::thread::spawn(move || for _ in lines {});
    (child, endpoints)
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
