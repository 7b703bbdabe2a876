//! Idempotent writes: the answer to a committed write is dropped (fail
//! point `controller::after_commit`, right after the commit, before the
//! response), the client re-sends it with the same request id, and gets the
//! first attempt's result — no second effect. The results are replicated:
//! after the leader is shut down, the new leader answers the same id the
//! same way. Without request ids, the client does not re-send blindly.

use std::time::Duration;

use guardian_controller::client::REQUEST_ID_KEY;
use guardian_proto::pb;
use guardian_tests::inproc;
use tonic::Code;

fn tenant(name: &str) -> pb::CreateTenantRequest {
    pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: name.into(),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_is_retried_with_the_same_result() {
    let scenario = fail::FailScenario::setup();
    let (_dirs, nodes) = inproc::group(3).await;
    let all: Vec<&_> = nodes.iter().collect();
    let leader = inproc::leader(&all).await;
    let c = inproc::client(&all);

    // The first attempt commits; its answer is dropped once. (Counted from
    // a read barrier: the new leader's own first entry is applied by then.)
    leader.ctl.read_barrier(false).await.unwrap();
    let applied = || leader.ctl.local_status().last_applied_index;
    let before = applied();
    fail::cfg("controller::after_commit", "1*return").unwrap();
    let t = c
        .call(|mut s| async move { s.create_tenant(tenant("orders")).await })
        .await
        .expect("the retry gets the first attempt's result");
    fail::remove("controller::after_commit");
    // Two entries: the first attempt and the retry, which changed nothing.
    assert_eq!(applied(), before + 2);
    {
        let st = leader.ctl.state();
        assert_eq!(st.registry.tenants.len(), 1);
        assert_eq!(st.registry.tenants["orders"].created_at_ms, t.created_at_ms);
    }

    // Id allocation: the retry gets the ids the first attempt issued.
    fail::cfg("controller::after_commit", "1*return").unwrap();
    let ids = c
        .call(|mut s| async move {
            s.allocate_ids(pb::AllocateIdsRequest {
                kind: pb::IdKind::Topic as i32,
                count: 3,
            })
            .await
        })
        .await
        .unwrap();
    fail::remove("controller::after_commit");
    assert_eq!(ids.ids.len(), 3);
    let issued: Vec<String> = leader
        .ctl
        .state()
        .registry
        .issued
        .keys()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(issued.len(), 3, "one allocation, not two");
    for id in &ids.ids {
        assert!(issued.contains(id));
    }

    // Without request ids the same lost answer is an error, not a resend.
    let plain = inproc::client(&all).without_request_ids();
    fail::cfg("controller::after_commit", "1*return").unwrap();
    let e = plain
        .call(|mut s| async move { s.create_tenant(tenant("payments")).await })
        .await
        .unwrap_err();
    fail::remove("controller::after_commit");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("failpoint"), "{e:?}");
    assert!(leader.ctl.state().registry.tenants.contains_key("payments"));

    // Replicated: a retry of the same id after failover gets the same result.
    let id = "AAAAAAAAAAAAAAAAAAAAAg:7";
    let send = |n: &guardian_controller::node::RunningNode, name: &'static str| {
        let mut r = tonic::Request::new(tenant(name));
        r.metadata_mut().insert(REQUEST_ID_KEY, id.parse().unwrap());
        let stub = c.stub(&n.admin_addr.to_string()).unwrap();
        async move { stub.clone().create_tenant(r).await.map(|r| r.into_inner()) }
    };
    let first = send(leader, "billing").await.unwrap();
    let old_leader = leader.ctl.id;
    let mut rest: Vec<_> = Vec::new();
    for n in nodes {
        if n.ctl.id == old_leader {
            n.shutdown().await.unwrap();
        } else {
            rest.push(n);
        }
    }
    let survivors: Vec<&_> = rest.iter().collect();
    let new_leader = inproc::leader(&survivors).await;
    assert_ne!(new_leader.ctl.id, old_leader);
    inproc::until(
        "the new leader has applied it",
        Duration::from_secs(10),
        || {
            new_leader
                .ctl
                .state()
                .registry
                .tenants
                .contains_key("billing")
        },
    )
    .await;
    let again = send(new_leader, "billing").await.unwrap();
    assert_eq!(again, first);
    // A new request with that name is refused as before: the retry was
    // answered from the table, not applied.
    let e = c
        .call(|mut s| async move { s.create_tenant(tenant("billing")).await })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    // A malformed request id is refused, naming the header.
    let mut r = tonic::Request::new(tenant("other"));
    r.metadata_mut()
        .insert(REQUEST_ID_KEY, "seven".parse().unwrap());
    let mut stub = c.stub(&new_leader.admin_addr.to_string()).unwrap();
    let e = stub.create_tenant(r).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "invalid x-guardian-request-id: must be <client uuid>:<seq>"
    );
    for n in rest {
        n.shutdown().await.unwrap();
    }
    scenario.teardown();
}
