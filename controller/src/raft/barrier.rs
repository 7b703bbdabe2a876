//! Coalesced read barriers. A linearizable read needs a read index the
//! leader confirmed with a quorum *after* the read arrived (openraft's
//! `ensure_linearizable`: one heartbeat round to the followers). Every read
//! that arrives while a round is in flight waits for the next round, and one
//! round serves all of them: under concurrency, followers answer one
//! heartbeat per round instead of one per read, and each read still gets an
//! index confirmed after it arrived.

use guardian_meta_store::Raft;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::tasks::Tasks;

type Reply = oneshot::Sender<Result<(), ApiError>>;

/// A round that takes longer fails its readers with `UNAVAILABLE`, so a
/// hung quorum check cannot hold every later read hostage.
const MAX_ROUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Handle to the barrier task. Cheap to clone.
#[derive(Clone)]
pub struct ReadBarrier {
    tx: mpsc::UnboundedSender<Reply>,
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable {
        reason: "controller is shutting down".into(),
    }
}

impl ReadBarrier {
    /// Starts the barrier task; it ends when `shutdown` is cancelled (or
    /// every handle is dropped).
    pub fn start(raft: Raft, tasks: &Tasks, shutdown: CancellationToken) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn("read barrier", run(raft, rx, shutdown));
        Self { tx }
    }

    /// Waits for a quorum-confirmed read index taken after this call began.
    pub async fn wait(&self) -> Result<(), ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(reply).map_err(|_| shutting_down())?;
        rx.await.map_err(|_| shutting_down())?
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<Reply>, shutdown: CancellationToken) {
    let mut waiting = Vec::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
        };
        // Everyone queued so far arrived before this round starts.
        waiting.push(first);
        while let Ok(r) = rx.try_recv() {
            waiting.push(r);
        }
        let result = match tokio::time::timeout(MAX_ROUND, raft.ensure_linearizable()).await {
            Err(_) => Err(ApiError::Unavailable {
                reason: format!("no quorum confirmed the leader within {MAX_ROUND:?}"),
            }),
            Ok(r) => r.map(|_| ()).map_err(ApiError::from),
        };
        for r in waiting.drain(..) {
            let _ = r.send(result.clone());
        }
    }
}
