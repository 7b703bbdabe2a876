//! Leader-only work. The [`Supervisor`] watches openraft's metrics: when
//! this node becomes leader it starts the leader-only tasks (the
//! [`collector`], the executor, governance and consumer scheduling) under one cancellation token; when it stops leading (or
//! the node stops) it cancels them, waits for them to end and drops their
//! soft state. What a new leader needs is replicated, never kept here.

pub mod collector;

use std::sync::Arc;

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::executor::Executor;
use crate::raft::Controller;
use crate::tasks::Tasks;
use collector::Collector;

/// Starts and stops the leader-only tasks as leadership comes and goes.
pub struct Supervisor {
    pub ctl: Controller,
    pub collector: Arc<Collector>,
    pub executor: Arc<Executor>,
    pub governance: Arc<crate::governance::Governance>,
    pub consumers: Arc<crate::consumers::Scheduler>,
    pub tasks: Tasks,
}

impl Supervisor {
    /// Runs until `shutdown` is cancelled; then nothing it started runs.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut metrics = self.ctl.raft.metrics();
        let mut term: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
        loop {
            let leading = metrics.borrow_and_update().state == ServerState::Leader;
            match (leading, term.is_some()) {
                (true, false) => {
                    let token = shutdown.child_token();
                    tracing::info!(node_id = self.ctl.id, "leader: starting leader-only tasks");
                    let c = self.tasks.spawn(
                        "collector",
                        self.collector.clone().run(self.ctl.clone(), token.clone()),
                    );
                    let x = self.tasks.spawn(
                        "executor",
                        self.executor.clone().run(self.ctl.clone(), token.clone()),
                    );
                    let g = self.tasks.spawn(
                        "governance",
                        self.governance.clone().run(self.ctl.clone(), token.clone()),
                    );
                    let s = self.tasks.spawn(
                        "consumer scheduling",
                        self.consumers.clone().run(self.ctl.clone(), token.clone()),
                    );
                    let h = tokio::spawn(async move {
                        let _ = c.await;
                        let _ = x.await;
                        let _ = g.await;
                        let _ = s.await;
                    });
                    term = Some((token, h));
                }
                (false, true) => {
                    if let Some((token, h)) = term.take() {
                        tracing::info!(
                            node_id = self.ctl.id,
                            "no longer leader: stopping leader-only tasks"
                        );
                        token.cancel();
                        let _ = h.await;
                    }
                    self.collector.clear();
                    self.executor.clear();
                    self.governance.clear();
                    self.consumers.clear();
                }
                _ => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = metrics.changed() => if changed.is_err() { break },
            }
        }
        if let Some((token, h)) = term.take() {
            token.cancel();
            let _ = h.await;
        }
        self.collector.clear();
        self.executor.clear();
        self.governance.clear();
        self.consumers.clear();
    }
}
