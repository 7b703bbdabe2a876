//! Bad input gets the exact gRPC code (and names the field); writes to a
//! follower are redirected; auth roles are enforced.

use std::time::Duration;

use guardian_controller::client::AdminClient;
use guardian_controller::error::LEADER_ADDR_KEY;
use guardian_proto::pb;
use guardian_tests::{broker, cli, cluster, TestCluster};
use tonic::Code;

/// The call failed with exactly `code` and exactly `message` (a message
/// ending in `…` is a prefix: the rest carries log positions).
async fn expect_code<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, tonic::Status>,
    code: Code,
    message: &str,
) {
    match r {
        Ok(v) => panic!("{what}: expected {code:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "{what}: {s:?}");
            match message.strip_suffix('…') {
                Some(prefix) => assert!(
                    s.message().starts_with(prefix),
                    "{what}: message {:?} does not start with {prefix:?}",
                    s.message()
                ),
                None => assert_eq!(s.message(), message, "{what}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_bad_requests_get_exact_codes() {
    let c = TestCluster::start(3).await;
    let cl = c.client();

    macro_rules! call {
        ($method:ident, $req:expr) => {{
            let req = $req;
            cl.call(|mut s| {
                let req = req.clone();
                async move { s.$method(req).await }
            })
            .await
        }};
    }

    // INVALID_ARGUMENT, naming the field.
    let mut bad = cluster("bad name");
    expect_code(
        "cluster name",
        call!(
            add_cluster,
            pb::AddClusterRequest {
                cluster: Some(bad.clone())
            }
        ),
        Code::InvalidArgument,
        "invalid cluster.name: character ' ' not allowed (use [a-zA-Z0-9._-])",
    )
    .await;
    bad = cluster("ok");
    bad.bootstrap_servers = vec![];
    expect_code(
        "no bootstrap",
        call!(
            add_cluster,
            pb::AddClusterRequest {
                cluster: Some(bad.clone())
            }
        ),
        Code::InvalidArgument,
        "invalid cluster.bootstrap_servers: at least one HOST:PORT is required",
    )
    .await;
    bad.bootstrap_servers = vec!["k1:99999".into()];
    expect_code(
        "bad port",
        call!(add_cluster, pb::AddClusterRequest { cluster: Some(bad) }),
        Code::InvalidArgument,
        "invalid cluster.bootstrap_servers: \"k1:99999\" has no valid port (1-65535)",
    )
    .await;
    expect_code(
        "missing cluster",
        call!(add_cluster, pb::AddClusterRequest { cluster: None }),
        Code::InvalidArgument,
        "invalid cluster: is required",
    )
    .await;
    let mut b = broker("prod", 1);
    b.log_dirs.clear();
    expect_code(
        "no log dirs",
        call!(add_broker, pb::AddBrokerRequest { broker: Some(b) }),
        Code::InvalidArgument,
        "invalid broker.log_dirs: at least one log dir is required",
    )
    .await;
    let mut b = broker("prod", 1);
    b.log_dirs[0].path = "relative/dir".into();
    expect_code(
        "relative log dir",
        call!(add_broker, pb::AddBrokerRequest { broker: Some(b) }),
        Code::InvalidArgument,
        "invalid broker.log_dirs.path: \"relative/dir\" is not an absolute path",
    )
    .await;
    let mut b = broker("prod", -1);
    b.broker_id = -1;
    expect_code(
        "negative id",
        call!(add_broker, pb::AddBrokerRequest { broker: Some(b) }),
        Code::InvalidArgument,
        "invalid broker.broker_id: must be >= 0",
    )
    .await;
    let mut b = broker("prod", 1);
    b.reporter_endpoint = "no-port".into();
    expect_code(
        "reporter",
        call!(add_broker, pb::AddBrokerRequest { broker: Some(b) }),
        Code::InvalidArgument,
        "invalid broker.reporter_endpoint: \"no-port\" is not HOST:PORT",
    )
    .await;
    expect_code(
        "ids count",
        call!(
            allocate_ids,
            pb::AllocateIdsRequest {
                kind: pb::IdKind::Segment as i32,
                count: 0
            }
        ),
        Code::InvalidArgument,
        "invalid count: must be 1..=10000",
    )
    .await;
    expect_code(
        "ids kind",
        call!(allocate_ids, pb::AllocateIdsRequest { kind: 0, count: 1 }),
        Code::InvalidArgument,
        "invalid kind: is required",
    )
    .await;
    expect_code(
        "ids kind unknown",
        call!(allocate_ids, pb::AllocateIdsRequest { kind: 77, count: 1 }),
        Code::InvalidArgument,
        "invalid kind: unknown id kind 77",
    )
    .await;
    let pol = pb::PlacementPolicy {
        cluster: "prod".into(),
        ..Default::default()
    };
    expect_code(
        "empty policy",
        call!(
            set_placement_policy,
            pb::SetPlacementPolicyRequest { policy: Some(pol) }
        ),
        Code::InvalidArgument,
        "invalid policy: a policy must constrain something",
    )
    .await;
    expect_code(
        "pool without brokers",
        call!(
            assign_pool_brokers,
            pb::PoolRequest {
                tenant: "t".into(),
                cluster: "prod".into(),
                broker_ids: vec![]
            }
        ),
        Code::InvalidArgument,
        "invalid broker_ids: at least one broker id is required",
    )
    .await;

    // NOT_FOUND.
    expect_code(
        "broker of unknown cluster",
        call!(
            add_broker,
            pb::AddBrokerRequest {
                broker: Some(broker("nope", 1))
            }
        ),
        Code::NotFound,
        "cluster \"nope\" not found",
    )
    .await;
    expect_code(
        "list unknown cluster",
        call!(
            list_brokers,
            pb::ListBrokersRequest {
                cluster: "nope".into(),
                stale: false
            }
        ),
        Code::NotFound,
        "cluster \"nope\" not found",
    )
    .await;
    expect_code(
        "get unknown cluster",
        call!(
            get_cluster,
            pb::GetClusterRequest {
                name: "nope".into(),
                stale: false
            }
        ),
        Code::NotFound,
        "cluster \"nope\" not found",
    )
    .await;
    expect_code(
        "remove unknown cluster",
        call!(
            remove_cluster,
            pb::RemoveClusterRequest {
                name: "nope".into()
            }
        ),
        Code::NotFound,
        "cluster \"nope\" not found",
    )
    .await;
    expect_code(
        "delete unknown tenant",
        call!(
            delete_tenant,
            pb::DeleteTenantRequest {
                name: "ghost".into()
            }
        ),
        Code::NotFound,
        "tenant \"ghost\" not found",
    )
    .await;

    // ALREADY_EXISTS.
    call!(
        add_cluster,
        pb::AddClusterRequest {
            cluster: Some(cluster("prod"))
        }
    )
    .unwrap();
    expect_code(
        "dup cluster",
        call!(
            add_cluster,
            pb::AddClusterRequest {
                cluster: Some(cluster("prod"))
            }
        ),
        Code::AlreadyExists,
        "cluster \"prod\" already exists",
    )
    .await;
    for id in [1, 2] {
        call!(
            add_broker,
            pb::AddBrokerRequest {
                broker: Some(broker("prod", id))
            }
        )
        .unwrap();
    }
    expect_code(
        "dup broker",
        call!(
            add_broker,
            pb::AddBrokerRequest {
                broker: Some(broker("prod", 1))
            }
        ),
        Code::AlreadyExists,
        "broker 1 in cluster \"prod\" already exists",
    )
    .await;
    expect_code(
        "remove unknown broker",
        call!(
            remove_broker,
            pb::RemoveBrokerRequest {
                cluster: "prod".into(),
                broker_id: 9
            }
        ),
        Code::NotFound,
        "broker 9 in cluster \"prod\" not found",
    )
    .await;
    for t in ["alpha", "beta"] {
        call!(
            create_tenant,
            pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: t.into(),
                    ..Default::default()
                })
            }
        )
        .unwrap();
    }
    expect_code(
        "dup tenant",
        call!(
            create_tenant,
            pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "alpha".into(),
                    ..Default::default()
                })
            }
        ),
        Code::AlreadyExists,
        "tenant \"alpha\" already exists",
    )
    .await;

    // FAILED_PRECONDITION.
    call!(
        assign_pool_brokers,
        pb::PoolRequest {
            tenant: "alpha".into(),
            cluster: "prod".into(),
            broker_ids: vec![1]
        }
    )
    .unwrap();
    expect_code(
        "broker in another pool",
        call!(
            assign_pool_brokers,
            pb::PoolRequest {
                tenant: "beta".into(),
                cluster: "prod".into(),
                broker_ids: vec![2, 1]
            }
        ),
        Code::FailedPrecondition,
        "broker 1 of cluster \"prod\" already belongs to tenant \"alpha\"'s pool",
    )
    .await;
    // All or nothing: broker 2 was not taken by the failed call.
    let tenants = call!(list_tenants, pb::ListTenantsRequest { stale: false }).unwrap();
    let beta = tenants
        .tenants
        .iter()
        .find(|t| t.tenant.as_ref().unwrap().name == "beta")
        .unwrap();
    assert!(beta.pool.is_empty());
    expect_code(
        "delete tenant owning brokers",
        call!(
            delete_tenant,
            pb::DeleteTenantRequest {
                name: "alpha".into()
            }
        ),
        Code::FailedPrecondition,
        "tenant \"alpha\" still owns 1 broker(s) (prod/1); release them first",
    )
    .await;
    expect_code(
        "release broker not in pool",
        call!(
            release_pool_brokers,
            pb::PoolRequest {
                tenant: "beta".into(),
                cluster: "prod".into(),
                broker_ids: vec![1]
            }
        ),
        Code::FailedPrecondition,
        "broker 1 of cluster \"prod\" is not in tenant \"beta\"'s pool",
    )
    .await;
    expect_code(
        "remove pooled broker",
        call!(
            remove_broker,
            pb::RemoveBrokerRequest {
                cluster: "prod".into(),
                broker_id: 1
            }
        ),
        Code::FailedPrecondition,
        "broker 1 of cluster \"prod\" is in tenant \"alpha\"'s pool; release it first",
    )
    .await;
    expect_code(
        "remove cluster with brokers",
        call!(
            remove_cluster,
            pb::RemoveClusterRequest {
                name: "prod".into()
            }
        ),
        Code::FailedPrecondition,
        "cluster \"prod\" still has 2 registered broker(s); remove them first",
    )
    .await;
    expect_code(
        "initialize twice",
        cl.stub(&c.nodes[0].admin)
            .unwrap()
            .initialize(pb::InitializeRequest { members: vec![] })
            .await,
        Code::FailedPrecondition,
        "already initialized: not allowed to initialize due to current raft state: …",
    )
    .await;

    // Request size limit (default 4 MiB).
    let mut huge = cluster("huge");
    huge.kafka_cluster_id = "x".repeat(5 << 20);
    let r = cl
        .stub(&c.nodes[0].admin)
        .unwrap()
        .add_cluster(pb::AddClusterRequest {
            cluster: Some(huge),
        })
        .await;
    let code = r.expect_err("oversized request accepted").code();
    assert!(
        matches!(code, Code::OutOfRange | Code::ResourceExhausted),
        "{code:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t31_follower_redirects_writes_to_the_leader() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let follower = c.nodes.iter().find(|n| n.id != leader).unwrap();
    let raw = AdminClient::new(std::slice::from_ref(&follower.admin), None).unwrap();
    let err = raw
        .stub(&follower.admin)
        .unwrap()
        .add_cluster(pb::AddClusterRequest {
            cluster: Some(cluster("x")),
        })
        .await
        .expect_err("follower accepted a write");
    assert_eq!(err.code(), Code::Unavailable);
    let hint = err
        .metadata()
        .get(LEADER_ADDR_KEY)
        .expect("leader metadata")
        .to_str()
        .unwrap();
    assert_eq!(hint, c.node(leader).admin);

    // A linearizable read on a follower is redirected the same way; a stale one is served.
    let err = raw
        .stub(&follower.admin)
        .unwrap()
        .list_clusters(pb::ListClustersRequest { stale: false })
        .await
        .expect_err("follower served a linearizable read");
    assert_eq!(err.code(), Code::Unavailable);
    raw.stub(&follower.admin)
        .unwrap()
        .list_clusters(pb::ListClustersRequest { stale: true })
        .await
        .expect("stale read on a follower");

    // The client, given only the follower, follows the redirect.
    let r = raw
        .call(|mut s| async move {
            s.add_cluster(pb::AddClusterRequest {
                cluster: Some(cluster("x")),
            })
            .await
        })
        .await
        .unwrap();
    assert_eq!(r.name, "x");
    // So does the CLI.
    let (code, out, err) = cli(&[
        "--endpoints",
        &follower.admin,
        "-o",
        "json",
        "cluster",
        "get",
        "x",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"name\":\"x\""));
    // And CLI errors print the gRPC code name and exit non-zero.
    let (code, _, err) = cli(&["--endpoints", &follower.admin, "cluster", "get", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim(), r#"error: NOT_FOUND: cluster "nope" not found"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t32_token_roles_are_enforced() {
    let extra = r#"
[auth]
tokens = [
  { token = "viewer-token-0123456789", role = "viewer" },
  { token = "operator-token-012345678", role = "operator" },
  { token = "admin-token-0123456789ab", role = "admin" },
]
"#;
    let c = TestCluster::start_with_auth(1, extra, Some("admin-token-0123456789ab")).await;
    let ep = c.nodes[0].admin.clone();
    let with = |t: Option<&str>| AdminClient::new(std::slice::from_ref(&ep), t).unwrap();
    let add = |cl: AdminClient| async move {
        cl.call(|mut s| async move {
            s.add_cluster(pb::AddClusterRequest {
                cluster: Some(cluster("a")),
            })
            .await
        })
        .await
    };
    assert_eq!(
        add(with(None)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        add(with(Some("wrong-token-000000000")))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        add(with(Some("viewer-token-0123456789")))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    add(with(Some("operator-token-012345678"))).await.unwrap();
    let viewer = with(Some("viewer-token-0123456789"));
    let r = viewer
        .call(|mut s| async move {
            s.list_clusters(pb::ListClustersRequest { stale: false })
                .await
        })
        .await
        .unwrap();
    assert_eq!(r.clusters.len(), 1);
    let op = with(Some("operator-token-012345678"));
    let err = op
        .call(|mut s| async move { s.remove_node(pb::NodeIdRequest { id: 1 }).await })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Fail point control on the HTTP port (test builds): admin only.
    let http = c.node(1).http.clone();
    let put = |auth: Option<&str>| {
        let h = auth.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = h
            .as_deref()
            .map(|v| vec![("Authorization", v)])
            .unwrap_or_default();
        guardian_tests::http_request(
            &http,
            "PUT",
            "/debug/failpoints/t32::probe",
            &headers,
            "off",
        )
        .0
    };
    assert_eq!(put(None), 401);
    assert_eq!(put(Some("operator-token-012345678")), 403);
    assert_eq!(put(Some("admin-token-0123456789ab")), 200);
    // No token reaches the log.
    let log = std::fs::read_to_string(c.node(1).dir.join("guardian.log")).unwrap();
    for t in [
        "viewer-token-0123456789",
        "operator-token-012345678",
        "admin-token-0123456789ab",
        "wrong-token-000000000",
    ] {
        assert!(!log.contains(t), "the log holds {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t33_admin_port_speaks_tls_when_configured() {
    let certs = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (
        certs.path().join("server.crt"),
        certs.path().join("server.key"),
    );
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let extra = format!(
        "[tls]\ncert-file = \"{}\"\nkey-file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let ca = ck.cert.pem().into_bytes();
    let c = TestCluster::start_with_tls(1, &extra, &ca).await;
    let ep = c.node(1).admin.clone();

    let tls = AdminClient::new(std::slice::from_ref(&ep), None)
        .unwrap()
        .with_ca(&ca);
    let r = tls
        .call(|mut s| async move {
            s.add_cluster(pb::AddClusterRequest {
                cluster: Some(cluster("secure")),
            })
            .await
        })
        .await
        .unwrap();
    assert_eq!(r.name, "secure");
    // The CLI with --ca-file.
    let ca_path = certs.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    let (code, out, err) = cli(&[
        "--endpoints",
        &ep,
        "--ca-file",
        ca_path.to_str().unwrap(),
        "-o",
        "json",
        "cluster",
        "list",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("secure"));
    // Plaintext to a TLS port fails instead of leaking anything.
    let mut plain = AdminClient::new(std::slice::from_ref(&ep), None).unwrap();
    plain.deadline = Duration::from_millis(500);
    let err = plain
        .call(|mut s| async move {
            s.list_clusters(pb::ListClustersRequest { stale: false })
                .await
        })
        .await
        .expect_err("plaintext accepted by a TLS port");
    // The TLS port serves nothing to a plaintext HTTP/2 preface: the call
    // fails in the transport — it runs out of time waiting, or the client
    // reads the server's TLS alert as a broken HTTP/2 frame (which of the
    // two depends on timing) — never with an answer from the service.
    let transport = match err.code() {
        Code::DeadlineExceeded => err.message() == format!("no answer from {ep} within 500ms"),
        Code::Internal | Code::Unavailable | Code::Unknown => {
            err.message().starts_with("h2 protocol error")
                || err.message().starts_with("transport error")
        }
        _ => false,
    };
    assert!(transport, "plaintext to a TLS port: {err:?}");

    // The HTTP port (dashboard, metrics) speaks TLS with the same
    // certificate; plaintext gets no page.
    let http = c.node(1).http.clone();
    let tcp = tokio::net::TcpStream::connect(&http).await.unwrap();
    let mut s = guardian_kafka::Tls::from_ca_pem(&ca, None)
        .unwrap()
        .wrap(&http, tcp)
        .await
        .expect("a TLS session with the node's certificate");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        format!("GET /ui/login HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut page = String::new();
    let _ = s.read_to_string(&mut page).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("input type=password"), "{page}");
    let mut plain = tokio::net::TcpStream::connect(&http).await.unwrap();
    plain
        .write_all(b"GET /ui/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got)).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("password"),
        "plaintext served a page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t34_raft_port_requires_the_peer_token_when_set() {
    let extra = "[raft]\npeer-token = \"peer-secret-0123456789\"\n";
    let c = TestCluster::start_with(3, extra).await;
    // The group formed and replicates: peers present the token to each other.
    c.client()
        .call(|mut s| async move {
            s.add_cluster(pb::AddClusterRequest {
                cluster: Some(cluster("p")),
            })
            .await
        })
        .await
        .unwrap();
    let st = c
        .client()
        .call(|mut s| async move { s.raft_status(pb::RaftStatusRequest {}).await })
        .await
        .unwrap();
    assert!(st.nodes.iter().all(|n| n.role != "unreachable"), "{st:?}");

    // A stranger on the raft port is turned away before openraft sees anything.
    use guardian_proto::pb::raft_peer_client::RaftPeerClient;
    let mut stranger = RaftPeerClient::connect(format!("http://{}", c.node(1).raft))
        .await
        .unwrap();
    let vote = pb::VoteRequest {
        vote: Some(pb::Vote {
            term: 999,
            node_id: 9,
            committed: false,
        }),
        last_log_id: None,
    };
    let err = stranger
        .vote(vote)
        .await
        .expect_err("vote without token accepted");
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = tonic::Request::new(vote);
    wrong
        .metadata_mut()
        .insert("x-guardian-peer-token", "nope".parse().unwrap());
    assert_eq!(
        stranger.vote(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // Every peer RPC, not only Vote, is refused without the token.
    let entries = pb::AppendEntriesRequest {
        vote: vote.vote,
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    assert_eq!(
        stranger.append_entries(entries).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let snap = pb::InstallSnapshotRequest {
        vote: vote.vote,
        meta: None,
        offset: 0,
        data: vec![1, 2, 3],
        done: true,
    };
    assert_eq!(
        stranger.install_snapshot(snap).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        stranger
            .node_status(pb::NodeStatusRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // The stranger's term never reached Raft.
    let s = c.node_status(1).await.unwrap();
    assert!(s.term < 999, "term {}", s.term);

    // The admin port does not serve RaftPeer at all, token or not.
    let mut on_admin = RaftPeerClient::connect(format!("http://{}", c.node(1).admin))
        .await
        .unwrap();
    let mut with_token = tonic::Request::new(vote);
    with_token.metadata_mut().insert(
        "x-guardian-peer-token",
        "peer-secret-0123456789".parse().unwrap(),
    );
    assert_eq!(
        on_admin.vote(with_token).await.unwrap_err().code(),
        Code::Unimplemented
    );
    assert_eq!(
        on_admin
            .node_status(pb::NodeStatusRequest {})
            .await
            .unwrap_err()
            .code(),
        Code::Unimplemented
    );
    // The secret never reaches a log line.
    for n in 1..=3 {
        let log = std::fs::read_to_string(c.node(n).dir.join("guardian.log")).unwrap();
        assert!(
            !log.contains("peer-secret-0123456789"),
            "node {n} logged the peer token"
        );
    }
}

/// Rebalance RPCs: bad input gets its code and names the field or item;
/// an unreachable Kafka cluster is FAILED_PRECONDITION naming it; nothing
/// is stored by a refused call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t35_rebalance_errors_are_named() {
    let c = TestCluster::start(1).await;
    let cl = c.client();
    let has =
        |what: &str, r: Result<pb::ExecutionJson, tonic::Status>, code: Code, needle: &str| {
            let s = r.expect_err(what);
            assert_eq!(s.code(), code, "{what}: {s:?}");
            assert!(
                s.message().contains(needle),
                "{what}: {:?} lacks {needle:?}",
                s.message()
            );
        };
    let propose = |cluster: &str, goals: Vec<(&str, f64)>| {
        let req = pb::ProposeRebalanceRequest {
            cluster: cluster.into(),
            goals: goals.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        };
        let cl = &cl;
        async move {
            cl.call(|mut s| {
                let req = req.clone();
                async move { s.propose_rebalance(req).await }
            })
            .await
        }
    };
    has(
        "unknown cluster",
        propose("nope", vec![]).await,
        Code::NotFound,
        "cluster \"nope\"",
    );
    has(
        "bad cluster name",
        propose("bad name", vec![]).await,
        Code::InvalidArgument,
        "cluster",
    );
    let mut k = cluster("dead");
    k.bootstrap_servers = vec!["127.0.0.1:1".into()];
    cl.call(|mut s| {
        let k = k.clone();
        async move {
            s.add_cluster(pb::AddClusterRequest { cluster: Some(k) })
                .await
        }
    })
    .await
    .unwrap();
    has(
        "bad goal",
        propose("dead", vec![("disk_bytes", 0.5)]).await,
        Code::InvalidArgument,
        "goals.disk_bytes",
    );
    has(
        "unknown goal",
        propose("dead", vec![("speed", 2.0)]).await,
        Code::InvalidArgument,
        "goals.speed",
    );
    has(
        "unreachable Kafka",
        propose("dead", vec![]).await,
        Code::FailedPrecondition,
        "Kafka cluster \"dead\"",
    );
    let roll = cl
        .call(|mut s| async move {
            s.roll_cluster(pb::RollClusterRequest {
                cluster: "dead".into(),
                batch: 1,
                restart_command: "true".into(),
                ..Default::default()
            })
            .await
        })
        .await;
    has(
        "a roll where restart commands are off",
        roll,
        Code::FailedPrecondition,
        "executor.allow-restart-commands",
    );
    let intent = pb::ProposeRebalanceRequest {
        cluster: "dead".into(),
        intent: r#"{"kind":"roll","batch":1,"command":"true"}"#.into(),
        ..Default::default()
    };
    let via_propose = cl
        .call(|mut s| {
            let req = intent.clone();
            async move { s.propose_rebalance(req).await }
        })
        .await;
    has(
        "a roll through ProposeRebalance",
        via_propose,
        Code::InvalidArgument,
        "RollCluster",
    );
    let control = |id: u64, action: &str| {
        let req = pb::ControlExecutionRequest {
            id,
            action: action.into(),
        };
        let cl = &cl;
        async move {
            cl.call(|mut s| {
                let req = req.clone();
                async move { s.control_execution(req).await }
            })
            .await
        }
    };
    has(
        "bad action",
        control(1, "explode").await,
        Code::InvalidArgument,
        "action",
    );
    has(
        "unknown execution",
        control(99, "approve").await,
        Code::NotFound,
        "execution 99",
    );
    let get = cl
        .call(|mut s| async move {
            s.get_execution(pb::GetExecutionRequest {
                id: 99,
                stale: false,
            })
            .await
        })
        .await;
    has("get unknown", get, Code::NotFound, "execution 99");
    let listed = cl
        .call(|mut s| async move {
            s.list_executions(pb::ListExecutionsRequest {
                cluster: String::new(),
                stale: false,
            })
            .await
        })
        .await
        .unwrap();
    assert!(listed.executions.is_empty(), "nothing stored: {listed:?}");
}

/// Governance's RPCs name bad input; the event log records a failing
/// governance round and streams it (`GuardianEvents.WatchEvents`).
#[tokio::test]
async fn t36_governance_errors_and_the_event_stream() {
    let c = TestCluster::start_with(1, "[governance]\ninterval-ms = 200\n").await;
    let cl = c.client();
    let code = |r: Result<(), tonic::Status>, want: Code, needle: &str| {
        let s = r.expect_err(needle);
        assert_eq!(s.code(), want, "{s:?}");
        assert!(
            s.message().contains(needle),
            "{:?} lacks {needle:?}",
            s.message()
        );
    };
    let clear = cl
        .call(|mut s| async move { s.clear_throttle(pb::ClearThrottleRequest { id: 99 }).await })
        .await
        .map(|_| ());
    code(clear, Code::NotFound, "throttle 99");
    let set = |cluster: &str, id: i32, json: &str| {
        let req = pb::SetBrokerHostRequest {
            cluster: cluster.into(),
            broker_id: id,
            host_json: json.into(),
        };
        let cl = &cl;
        async move {
            cl.call(|mut s| {
                let req = req.clone();
                async move { s.set_broker_host(req).await }
            })
            .await
            .map(|_| ())
        }
    };
    code(
        set("nope", 1, "{}").await,
        Code::NotFound,
        "cluster \"nope\"",
    );
    let mut k = cluster("gov");
    k.bootstrap_servers = vec!["127.0.0.1:1".into()];
    cl.call(|mut s| {
        let k = k.clone();
        async move {
            s.add_cluster(pb::AddClusterRequest { cluster: Some(k) })
                .await
        }
    })
    .await
    .unwrap();
    code(set("gov", 5, "{}").await, Code::NotFound, "broker 5");
    cl.call(|mut s| async move {
        s.add_broker(pb::AddBrokerRequest {
            broker: Some(broker("gov", 1)),
        })
        .await
    })
    .await
    .unwrap();
    code(
        set("gov", 1, "{not json").await,
        Code::InvalidArgument,
        "host_json",
    );
    code(
        set("gov", 1, r#"{"read_budgets":{"/data/1":-5}}"#).await,
        Code::InvalidArgument,
        "disk_read_budget",
    );
    set("gov", 1, r#"{"page_cache_bytes":1024}"#).await.unwrap();
    let abnormal = cl
        .call(|mut s| async move {
            s.get_abnormal(pb::AbnormalRequest {
                cluster: "nope".into(),
            })
            .await
        })
        .await
        .map(|_| ());
    code(abnormal, Code::NotFound, "cluster \"nope\"");
    let bad = cl
        .call(|mut s| async move {
            s.list_events(pb::ListEventsRequest {
                cluster: "bad name".into(),
                ..Default::default()
            })
            .await
        })
        .await
        .map(|_| ());
    code(bad, Code::InvalidArgument, "cluster");

    // Kafka is unreachable: the governance round fails, and says so.
    let mut stream = pb::guardian_events_client::GuardianEventsClient::connect(format!(
        "http://{}",
        c.endpoints()[0]
    ))
    .await
    .unwrap()
    .watch_events(pb::ListEventsRequest {
        cluster: "gov".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    let batch = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("an event within 30 s")
        .unwrap()
        .expect("the stream stays open");
    let evs: serde_json::Value = serde_json::from_str(&batch.json).unwrap();
    let first = &evs[0];
    assert_eq!(first["cluster"], "gov", "{evs}");
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .contains("governance round failed"),
        "{evs}"
    );
    assert!(batch.last_seq >= 1);
    let listed = cl
        .call(|mut s| async move {
            s.list_events(pb::ListEventsRequest {
                cluster: "gov".into(),
                ..Default::default()
            })
            .await
        })
        .await
        .unwrap();
    assert!(
        listed.json.contains("governance round failed"),
        "{}",
        listed.json
    );
}
