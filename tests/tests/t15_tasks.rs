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
