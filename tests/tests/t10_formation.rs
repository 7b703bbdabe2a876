//! Formation: three real processes elect a leader; the CLI sees it and
//! round-trips registry writes as JSON.

use guardian_tests::{cli, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_three_nodes_elect_a_leader_and_the_cli_reports_it() {
    let c = TestCluster::start(3).await;
    let eps = c.endpoints().join(",");
    let (code, out, err) = cli(&["--endpoints", &eps, "raft", "status", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let leader = v["leader_id"].as_u64().expect("leader id");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(v["term"].as_u64().unwrap() >= 1);
    for n in nodes {
        assert!(n["admin_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(n["raft_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(n["last_applied_index"].as_u64().unwrap() >= 1);
        let role = n["role"].as_str().unwrap();
        let want = if n["id"].as_u64() == Some(leader) {
            "leader"
        } else {
            "follower"
        };
        assert_eq!(role, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_cli_registry_round_trip() {
    let c = TestCluster::start(3).await;
    let eps = c.endpoints().join(",");
    let run = |args: &[&str]| {
        let mut all = vec!["--endpoints", eps.as_str(), "-o", "json"];
        all.extend_from_slice(args);
        let (code, out, err) = cli(&all);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let added = run(&[
        "cluster",
        "add",
        "--name",
        "prod-a",
        "--bootstrap",
        "k1:9092,k2:9092",
        "--idc",
        "east",
    ]);
    assert_eq!(added["name"], "prod-a");
    assert_eq!(added["id"], 1);
    let list = run(&["cluster", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        list[0]["bootstrap_servers"],
        serde_json::json!(["k1:9092", "k2:9092"])
    );

    let b = run(&[
        "broker",
        "add",
        "--cluster",
        "prod-a",
        "--id",
        "1",
        "--host",
        "k1",
        "--rack",
        "r1",
        "--idc",
        "east",
        "--reporter",
        "k1:9300",
        "--log-dir",
        "/data/1=4TiB",
        "--log-dir",
        "/data/2=2TiB",
        "--nic-bytes-per-sec",
        "1.25GB",
        "--cpu-cores",
        "16",
    ]);
    assert_eq!(b["log_dirs"][0]["capacity_bytes"], 4u64 << 40);
    run(&[
        "broker",
        "add",
        "--cluster",
        "prod-a",
        "--id",
        "2",
        "--host",
        "k2",
        "--rack",
        "r2",
        "--reporter",
        "k2:9300",
        "--log-dir",
        "/data/1=1TiB",
    ]);
    let brokers = run(&["broker", "list", "--cluster", "prod-a"]);
    assert_eq!(brokers.as_array().unwrap().len(), 2);
    assert_eq!(
        brokers[1]["idc"], "east",
        "broker IDC defaults to the cluster's"
    );

    run(&[
        "tenant",
        "create",
        "payments",
        "--description",
        "card payments",
    ]);
    let pool = run(&[
        "pool",
        "add",
        "--tenant",
        "payments",
        "--cluster",
        "prod-a",
        "--broker",
        "1,2",
    ]);
    assert_eq!(pool["pool"].as_array().unwrap().len(), 2);
    let pool = run(&[
        "pool",
        "release",
        "--tenant",
        "payments",
        "--cluster",
        "prod-a",
        "--registry-only",
        "--broker",
        "2",
    ]);
    assert_eq!(
        pool["pool"],
        serde_json::json!([{"cluster": "prod-a", "broker_id": 1}])
    );
    let shown = run(&["pool", "show", "payments"]);
    assert_eq!(shown["pool"].as_array().unwrap().len(), 1);

    let p = run(&[
        "policy",
        "set",
        "--cluster",
        "prod-a",
        "--allowed-idc",
        "east,west",
        "--replicas-per-idc",
        "east=2",
        "--replicas-per-idc",
        "west=1",
    ]);
    assert_eq!(p["replicas_per_idc"]["east"], 2);
    run(&[
        "policy",
        "set",
        "--cluster",
        "prod-a",
        "--topic",
        "orders",
        "--allowed-rack",
        "r1",
    ]);
    let ps = run(&["policy", "list", "--cluster", "prod-a"]);
    assert_eq!(ps.as_array().unwrap().len(), 2);
    assert_eq!(ps[0]["topic"], serde_json::Value::Null);
    run(&[
        "policy",
        "remove",
        "--cluster",
        "prod-a",
        "--topic",
        "orders",
    ]);

    let ids = run(&["ids", "allocate", "--kind", "segment", "--count", "5"]);
    let ids = ids["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 5);
    for id in ids {
        let s = id.as_str().unwrap();
        assert_eq!(s.len(), 22, "16 bytes as unpadded base64: {s}");
        assert!(!s.starts_with('-'));
        assert!(s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    // Every node serves the registry: linearizable reads (redirected to the
    // leader when needed) at once, stale local reads once replication lands.
    for ep in c.endpoints() {
        let (code, out, err) = cli(&["--endpoints", &ep, "-o", "json", "cluster", "list"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );
        guardian_tests::wait_until(
            "stale read shows the cluster",
            std::time::Duration::from_secs(5),
            || async {
                let (code, out, _) = cli(&[
                    "--endpoints",
                    &ep,
                    "-o",
                    "json",
                    "cluster",
                    "list",
                    "--stale",
                ]);
                (code == 0 && out.contains("prod-a")).then_some(())
            },
        )
        .await;
    }

    // The rest of the registry commands, down to an empty registry; each
    // refusal on the way says why.
    let fails = |args: &[&str]| {
        let mut all = vec!["--endpoints", eps.as_str()];
        all.extend_from_slice(args);
        let (code, _, err) = cli(&all);
        assert_eq!(code, 1, "{args:?} should fail: {err}");
        err
    };
    let got = run(&["cluster", "get", "prod-a"]);
    assert_eq!(
        (got["name"].as_str(), got["idc"].as_str()),
        (Some("prod-a"), Some("east"))
    );
    let ts = run(&["tenant", "list"]);
    assert_eq!(ts.as_array().unwrap().len(), 1, "{ts}");
    assert_eq!(ts[0]["name"], "payments", "{ts}");
    assert_eq!(ts[0]["description"], "card payments", "{ts}");
    let err = fails(&["tenant", "delete", "payments"]);
    assert!(err.starts_with("error: FAILED_PRECONDITION: "), "{err}");
    let err = fails(&["broker", "remove", "--cluster", "prod-a", "--id", "1"]);
    assert!(err.starts_with("error: FAILED_PRECONDITION: "), "{err}");
    run(&[
        "pool",
        "release",
        "--tenant",
        "payments",
        "--cluster",
        "prod-a",
        "--registry-only",
        "--broker",
        "1",
    ]);
    let done = run(&["tenant", "delete", "payments"]);
    assert_eq!(done["ok"], true, "{done}");
    assert_eq!(run(&["tenant", "list"]), serde_json::json!([]));
    run(&["broker", "remove", "--cluster", "prod-a", "--id", "2"]);
    let brokers = run(&["broker", "list", "--cluster", "prod-a"]);
    assert_eq!(brokers.as_array().unwrap().len(), 1);
    assert_eq!(brokers[0]["broker_id"], 1);
    let err = fails(&["cluster", "remove", "prod-a"]);
    assert!(err.starts_with("error: FAILED_PRECONDITION: "), "{err}");
    run(&["broker", "remove", "--cluster", "prod-a", "--id", "1"]);
    let err = fails(&["broker", "remove", "--cluster", "prod-a", "--id", "1"]);
    assert!(err.starts_with("error: NOT_FOUND: "), "{err}");
    let policies = run(&["policy", "list", "--cluster", "prod-a"]);
    assert_eq!(policies.as_array().unwrap().len(), 1, "{policies}");
    run(&["policy", "remove", "--cluster", "prod-a"]);
    run(&["cluster", "remove", "prod-a"]);
    assert_eq!(run(&["cluster", "list"]), serde_json::json!([]));
    let err = fails(&["cluster", "get", "prod-a"]);
    assert_eq!(
        err.trim(),
        r#"error: NOT_FOUND: cluster "prod-a" not found"#
    );

    // A snapshot on demand covers everything applied so far.
    let applied = c.node_status(1).await.unwrap().last_applied_index;
    let ep1 = c.node(1).admin.clone();
    let (code, out, err) = cli(&["--endpoints", &ep1, "-o", "json", "raft", "snapshot"]);
    assert_eq!(code, 0, "{err}");
    let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        snap["snapshot_index"].as_u64().unwrap() >= applied,
        "{snap} < {applied}"
    );
}

/// `guardian raft init` forms a group from nodes that are waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_raft_init_via_cli_forms_the_group() {
    let c = TestCluster::start_uninitialized(3).await;
    let members: Vec<String> = c
        .nodes
        .iter()
        .map(|n| format!("{}={}/{}", n.id, n.raft, n.admin))
        .collect();
    let mut args = vec![
        "--endpoints",
        c.nodes[0].admin.as_str(),
        "-o",
        "json",
        "raft",
        "init",
    ];
    for m in &members {
        args.extend_from_slice(&["--member", m.as_str()]);
    }
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["voters"], serde_json::json!([1, 2, 3]), "{m}");
    let leader = c.wait_leader(std::time::Duration::from_secs(10)).await;
    assert!((1..=3).contains(&leader));
    // A second init is refused, and changes nothing.
    let (code, _, err) = cli(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    let (code, out, err) = cli(&[
        "--endpoints",
        &c.endpoints().join(","),
        "-o",
        "json",
        "raft",
        "status",
    ]);
    assert_eq!(code, 0, "{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_membership_add_learner_promote_remove_via_cli() {
    let mut c = TestCluster::start(3).await;
    let eps = c.endpoints().join(",");
    let json = |args: &[&str]| {
        let mut all = vec!["--endpoints", eps.as_str(), "-o", "json"];
        all.extend_from_slice(args);
        let (code, out, err) = cli(&all);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    json(&[
        "cluster",
        "add",
        "--name",
        "before-4",
        "--bootstrap",
        "k:9092",
        "--idc",
        "x",
    ]);
    let id = c.spawn_unjoined();
    let (raft, admin) = (c.node(id).raft.clone(), c.node(id).admin.clone());
    let m = json(&[
        "raft",
        "add-learner",
        "--id",
        "4",
        "--raft-addr",
        &raft,
        "--admin-addr",
        &admin,
    ]);
    assert_eq!(m["learners"], serde_json::json!([4]));
    assert_eq!(m["voters"], serde_json::json!([1, 2, 3]));
    // The learner replicates and applies the registry (its stale reads
    // catch up; add-learner returns once the log is replicated, not applied).
    guardian_tests::wait_until(
        "the learner serves the registry",
        std::time::Duration::from_secs(10),
        || async {
            let (code, out, _) = cli(&[
                "--endpoints",
                &admin,
                "-o",
                "json",
                "cluster",
                "list",
                "--stale",
            ]);
            (code == 0 && out.contains("before-4")).then_some(())
        },
    )
    .await;

    let m = json(&["raft", "promote", "--id", "4"]);
    assert_eq!(m["voters"], serde_json::json!([1, 2, 3, 4]));
    let st = json(&["raft", "status"]);
    assert_eq!(st["nodes"].as_array().unwrap().len(), 4);

    // Remove a voter that is not the leader, then the group keeps working.
    let leader = st["leader_id"].as_u64().unwrap();
    let victim = [1u64, 2, 3].into_iter().find(|n| *n != leader).unwrap();
    let m = json(&["raft", "remove", "--id", &victim.to_string()]);
    assert_eq!(m["voters"].as_array().unwrap().len(), 3);
    assert!(!m["voters"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(victim)));
    c.kill(victim);
    json(&[
        "cluster",
        "add",
        "--name",
        "after-remove",
        "--bootstrap",
        "k:9092",
        "--idc",
        "x",
    ]);
    let st = json(&["raft", "status"]);
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3);

    // Unknown node → NOT_FOUND; promoting a voter again is harmless.
    let (code, _, err) = cli(&["--endpoints", &eps, "raft", "remove", "--id", "42"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: NOT_FOUND: "), "{err}");
    let again = json(&["raft", "promote", "--id", "4"]);
    assert_eq!(
        again["voters"], m["voters"],
        "promoting voter 4 again changed the voters"
    );
    let st = json(&["raft", "status"]);
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3, "{st}");
    assert!(
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["role"] != "unreachable"),
        "{st}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_health_and_reflection_are_served() {
    let c = TestCluster::start(1).await;
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", c.node(1).admin))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "guardian.v1.GuardianAdmin".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream
        .message()
        .await
        .unwrap()
        .expect("a reflection response");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response {resp:?}")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"guardian.v1.GuardianAdmin".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    // The raft peer service is not exposed on the admin port.
    assert!(!names.iter().any(|n| n.contains("RaftPeer")), "{names:?}");
}
