//! Every task a node starts ends with it: a node started in this process,
//! given work for each of its tasks (leadership starts the collector; a
//! write goes through the proposer, a linearizable read through the
//! barrier), then shut down, leaves none running — five times over, from
//! the same data dir (so nothing still holds the RocksDB lock either).

use std::time::Duration;

use guardian_proto::pb;
use guardian_tests::inproc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_outlives_its_node() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let node = inproc::start(1, dir.path()).await;
        let tasks = node.tasks();
        if round == 0 {
            inproc::initialize(&[&node]).await;
        }
        inproc::leader(&[&node]).await;
        inproc::until("the collector starts", Duration::from_secs(10), || {
            tasks.running().contains_key("collector")
        })
        .await;
        let c = inproc::client(&[&node]);
        let name = format!("t{round}");
        c.call(|mut s| {
            let tenant = Some(pb::Tenant {
                name: name.clone(),
                ..Default::default()
            });
            async move { s.create_tenant(pb::CreateTenantRequest { tenant }).await }
        })
        .await
        .unwrap();
        let listed = c
            .call(|mut s| async move {
                s.list_tenants(pb::ListTenantsRequest { stale: false })
                    .await
            })
            .await
            .unwrap();
        assert_eq!(listed.tenants.len(), round + 1);
        let running = tasks.running();
        for t in [
            "proposer",
            "read barrier",
            "leader supervisor",
            "collector",
            "raft port",
            "admin port",
        ] {
            assert!(
                running.contains_key(t),
                "round {round}: {t} not running: {running:?}"
            );
        }
        node.shutdown().await.unwrap();
        assert_eq!(
            tasks.live(),
            0,
            "round {round}: still running {:?}",
            tasks.running()
        );
    }
}

/// Leadership, not the node, bounds the leader-only tasks: a leader that
/// steps down (a higher term appeared) stops its collector; whoever leads
/// next — another node, or the same one re-elected — starts one, and only
/// the leader runs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_steps_down_stops_its_leader_only_tasks() {
    let (_dirs, nodes) = inproc::group(3).await;
    let all: Vec<&_> = nodes.iter().collect();
    let old = inproc::leader(&all).await;
    let collecting =
        |n: &guardian_controller::node::RunningNode| n.tasks().running().contains_key("collector");
    inproc::until("the leader collects", Duration::from_secs(10), || {
        collecting(old)
    })
    .await;
    for n in &nodes {
        if n.ctl.id != old.ctl.id {
            assert!(!collecting(n), "follower {} collects", n.ctl.id);
        }
    }
    // Another node calls an election (once it has heard from the leader).
    let next = nodes.iter().find(|n| n.ctl.id != old.ctl.id).unwrap();
    inproc::until(
        "the follower knows the leader",
        Duration::from_secs(10),
        || next.ctl.local_status().leader_id == Some(old.ctl.id),
    )
    .await;
    next.ctl.raft.trigger().elect().await.unwrap();
    inproc::until("the old leader steps down", Duration::from_secs(10), || {
        old.ctl.local_status().role != openraft::ServerState::Leader
    })
    .await;
    inproc::until(
        "the old leader stops collecting",
        Duration::from_secs(10),
        || !collecting(old),
    )
    .await;
    let new = inproc::leader(&all).await;
    inproc::until("the new leader collects", Duration::from_secs(10), || {
        collecting(new)
    })
    .await;
    for n in &nodes {
        if n.ctl.id != new.ctl.id {
            assert!(!collecting(n), "follower {} collects", n.ctl.id);
        }
    }
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}
