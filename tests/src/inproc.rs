//! Controller nodes started inside the test process (`node::start`), for
//! tests that must see a node's own tasks or drive its fail points; the
//! rest of the suite runs real `guardian` processes ([`crate::TestCluster`]).

use std::path::Path;
use std::time::{Duration, Instant};

use guardian_controller::client::AdminClient;
use guardian_controller::config::NodeConfig;
use guardian_controller::node::{self, RunningNode};
use guardian_proto::pb;

/// Starts a node with id `id` on `dir`, on ports the kernel picks.
pub async fn start(id: u64, dir: &Path) -> RunningNode {
    let cfg = NodeConfig::new(
        id,
        dir.to_path_buf(),
        "127.0.0.1:0".into(),
        "127.0.0.1:0".into(),
    );
    node::start(cfg).await.expect("node starts")
}

/// Starts `n` nodes (ids 1..=n) on fresh temporary dirs and forms a group
/// of them. Keep the dirs as long as the nodes.
pub async fn group(n: u64) -> (Vec<tempfile::TempDir>, Vec<RunningNode>) {
    let dirs: Vec<_> = (0..n)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(start(i as u64 + 1, d.path()).await);
    }
    initialize(&nodes.iter().collect::<Vec<_>>()).await;
    (dirs, nodes)
}

/// Forms a group of `nodes` (all voters) through the first one's admin API.
pub async fn initialize(nodes: &[&RunningNode]) {
    let members = nodes
        .iter()
        .map(|n| pb::NodeSpec {
            id: n.ctl.id,
            raft_addr: n.raft_addr.to_string(),
            admin_addr: n.admin_addr.to_string(),
        })
        .collect::<Vec<_>>();
    let c = client(nodes);
    c.call(|mut s| {
        let members = members.clone();
        async move { s.initialize(pb::InitializeRequest { members }).await }
    })
    .await
    .expect("initialize");
}

/// A leader-following client over `nodes`' admin ports.
pub fn client(nodes: &[&RunningNode]) -> AdminClient {
    let eps: Vec<String> = nodes.iter().map(|n| n.admin_addr.to_string()).collect();
    AdminClient::new(&eps, None).expect("client")
}

/// Waits (polling observable state, at most `within`) until `f` holds.
pub async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The node among `nodes` that is leader, once there is one.
pub async fn leader<'a>(nodes: &[&'a RunningNode]) -> &'a RunningNode {
    until("a leader", Duration::from_secs(10), || {
        nodes
            .iter()
            .any(|n| n.ctl.local_status().role == openraft::ServerState::Leader)
    })
    .await;
    nodes
        .iter()
        .find(|n| n.ctl.local_status().role == openraft::ServerState::Leader)
        .expect("a leader")
}
