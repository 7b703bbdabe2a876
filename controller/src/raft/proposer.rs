//! Leader-side group commit. openraft 0.9 appends (and fsyncs) each
//! `client_write` on its own, so concurrent writes would pay one fsync each.
//! The proposer queues writes and proposes everything that arrived while the
//! previous proposals were in flight as one `Command::Batch` log entry; each
//! caller gets its own item's result.

use std::sync::Arc;

use guardian_meta_store::{CommandResponse, Raft};
use guardian_proto::domain::{Command, Request};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::tasks::Tasks;

/// Upper bound on a batch's approximate encoded size.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Upper bound on requests per batch.
const MAX_BATCH_ITEMS: usize = 1024;

struct Pending {
    req: Request,
    reply: oneshot::Sender<Result<CommandResponse, ApiError>>,
}

/// Handle to the batching task. Cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Proposer {
    /// Starts the batching task; it ends when `shutdown` is cancelled (or
    /// every handle is dropped), failing what is still queued.
    /// `max_in_flight`: proposals at once; more writes wait and join the next batch.
    pub fn start(
        raft: Raft,
        max_in_flight: usize,
        tasks: &Tasks,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(
            "proposer",
            run(raft, rx, max_in_flight.max(1), tasks.clone(), shutdown),
        );
        Self { tx }
    }

    /// Proposes `req` (possibly batched with others) and waits for its result.
    pub async fn propose(&self, req: Request) -> Result<CommandResponse, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { req, reply })
            .map_err(|_| ApiError::Unavailable {
                reason: "controller is shutting down".into(),
            })?;
        rx.await.map_err(|_| ApiError::Unavailable {
            reason: "controller is shutting down".into(),
        })?
    }
}

async fn run(
    raft: Raft,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    max_in_flight: usize,
    tasks: Tasks,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
        };
        // While every slot is busy, more writes queue up behind `first`.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut size = first.req.command.approx_size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_ITEMS && size < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    size += p.req.command.approx_size();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tasks.spawn("proposal", async move {
            let _permit = permit;
            propose(&raft, batch).await;
        });
    }
    // Queued writes were never proposed: they fail, and the client may
    // send them again.
    rx.close();
    while let Ok(p) = rx.try_recv() {
        let _ = p.reply.send(Err(shutting_down()));
    }
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable {
        reason: "controller is shutting down".into(),
    }
}

async fn propose(raft: &Raft, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        if let Some(p) = batch.pop() {
            let r = raft
                .client_write(p.req)
                .await
                .map(|r| r.data)
                .map_err(ApiError::from);
            let _ = p.reply.send(r);
        }
        return;
    }
    let now_ms = batch.iter().map(|p| p.req.now_ms).max().unwrap_or(0);
    let (reqs, replies): (Vec<Request>, Vec<_>) =
        batch.into_iter().map(|p| (p.req, p.reply)).unzip();
    let n = reqs.len();
    let req = Request::new(now_ms, Command::Batch(reqs));
    match raft.client_write(req).await {
        Ok(resp) => match resp.data {
            CommandResponse::Batch(results) if results.len() == n => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            other => {
                let e = ApiError::Internal {
                    reason: format!("batch of {n} applied as {other:?}"),
                };
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        },
        Err(e) => {
            let e = ApiError::from(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
