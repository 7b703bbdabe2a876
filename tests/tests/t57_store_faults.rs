//! Store fail points in real `guardian server` processes (set over
//! `/debug/failpoints` or at start through `GUARDIAN_FAILPOINTS`): an
//! append is acknowledged only after the WAL sync returns on a quorum; a
//! snapshot install interrupted after it was recorded is finished from the
//! received file at the next open, with nothing lost.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use guardian_controller::client::AdminClient;
use guardian_proto::pb;
use guardian_tests::{cluster, wait_until, TestCluster};

async fn add(cl: &AdminClient, name: &str) {
    let c = cluster(name);
    cl.call(|mut s| {
        let c = c.clone();
        async move {
            s.add_cluster(pb::AddClusterRequest { cluster: Some(c) })
                .await
        }
    })
    .await
    .unwrap_or_else(|e| panic!("add {name}: {e}"));
}

async fn stale_names(c: &TestCluster, id: u64) -> Option<BTreeSet<String>> {
    let cl = AdminClient::new(&[c.node(id).admin.clone()], None).ok()?;
    let mut req = tonic::Request::new(pb::ListClustersRequest { stale: true });
    req.set_timeout(Duration::from_millis(500));
    let l = cl
        .stub(&c.node(id).admin)
        .ok()?
        .list_clusters(req)
        .await
        .ok()?;
    Some(
        l.into_inner()
            .clusters
            .into_iter()
            .map(|c| c.name)
            .collect(),
    )
}

/// Invariants 2 and 9 through a seam: the followers' WAL syncs are held
/// 800 ms (`store::wal_sync` sleeps before `flush_wal`), so a write cannot
/// be acknowledged sooner — it commits only once a follower's sync has
/// returned. A flush callback fired before the sync would answer at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t57_a_write_is_acknowledged_only_after_a_quorum_synced_it() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let cl = c.client();
    add(&cl, "warm").await;
    let followers: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
    for &f in &followers {
        c.fail_point(f, "store::wal_sync", "sleep(800)");
    }
    for i in 0..3 {
        let t = Instant::now();
        add(&cl, &format!("held-{i}")).await;
        assert!(
            t.elapsed() >= Duration::from_millis(800),
            "write {i} acknowledged after {:?}, before any follower's WAL sync returned",
            t.elapsed()
        );
    }
    for &f in &followers {
        c.fail_point(f, "store::wal_sync", "off");
    }
    add(&cl, "after").await;
}

/// Invariant 14: a lagging node restarted with `store::install_snapshot`
/// failing receives the leader's snapshot, records it and marks it
/// installing, then fails before streaming it in (its Raft stops on the
/// storage error). SIGKILLed and started again without the fail point, it
/// finishes the install from the received file at open and has every
/// cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t58_an_interrupted_snapshot_install_is_finished_at_the_next_open() {
    let extra = "[raft]\nsnapshot-logs-since-last = 100000\nmax-in-snapshot-log-to-keep = 0\nsnapshot-chunk-bytes = 4096\n";
    let mut c = TestCluster::start_with(3, extra).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let lagger = (1..=3).find(|&n| n != leader).unwrap();
    c.kill(lagger);
    let cl = c.client();
    for i in 0..150 {
        add(&cl, &format!("s{i}")).await;
    }
    let snap = cl
        .stub(&c.node(leader).admin)
        .unwrap()
        .trigger_snapshot(pb::TriggerSnapshotRequest {})
        .await
        .unwrap()
        .into_inner()
        .snapshot_index;
    wait_until(
        "the leader purges its log behind the snapshot",
        Duration::from_secs(10),
        || async { (c.node_status(leader).await?.purged_index > 0).then_some(()) },
    )
    .await;

    c.restart_with_fail_points(lagger, "store::install_snapshot=return");
    wait_until(
        "the lagger's install fails at the fail point",
        Duration::from_secs(30),
        || async {
            let log = std::fs::read_to_string(c.node(lagger).dir.join("guardian.log")).ok()?;
            log.contains("failpoint store::install_snapshot")
                .then_some(())
        },
    )
    .await;
    c.kill(lagger);
    c.restart(lagger);
    let s = wait_until(
        "the lagger finishes the install and catches up",
        Duration::from_secs(30),
        || async {
            let s = c.node_status(lagger).await?;
            (s.last_applied_index >= snap && s.snapshot_index >= snap).then_some(s)
        },
    )
    .await;
    assert!(s.purged_index <= s.snapshot_index, "{s:?}");
    let names = stale_names(&c, lagger)
        .await
        .expect("stale read on the lagger");
    let want: BTreeSet<String> = (0..150).map(|i| format!("s{i}")).collect();
    assert!(
        want.is_subset(&names),
        "missing after the finished install: {:?}\n{}",
        want.difference(&names).collect::<Vec<_>>(),
        c.log_tail(lagger)
    );
    add(&cl, "after-install").await;
}
