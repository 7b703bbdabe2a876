//! Every long-lived task a node starts goes through [`Tasks::spawn`], which
//! counts it while it runs (a drop guard inside the task: completed,
//! cancelled or panicked, it is uncounted). [`crate::node::RunningNode::shutdown`]
//! returns only once the count is back to zero, so nothing a node started
//! outlives it; `controller/tests/lifecycle.rs` checks that.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

/// A node's task registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct Tasks {
    live: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    changed: Arc<tokio::sync::Notify>,
}

struct Running {
    tasks: Tasks,
    name: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut live = self.tasks.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = live.get_mut(self.name) {
            *n -= 1;
            if *n == 0 {
                live.remove(self.name);
            }
        }
        drop(live);
        self.tasks.changed.notify_waiters();
    }
}

impl Tasks {
    /// Spawns `fut` on the runtime, counted under `name` until it ends.
    pub fn spawn<F>(&self, name: &'static str, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        *self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default() += 1;
        let running = Running {
            tasks: self.clone(),
            name,
        };
        tokio::spawn(async move {
            let _running = running;
            fut.await
        })
    }

    /// How many tasks are running now.
    pub fn live(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// The running tasks by name (for errors and tests).
    pub fn running(&self) -> BTreeMap<&'static str, usize> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until no task runs, or `timeout` passes (then `Err` with
    /// what still runs).
    pub async fn wait_idle(
        &self,
        timeout: std::time::Duration,
    ) -> Result<(), BTreeMap<&'static str, usize>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if self.live() == 0 {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return if self.live() == 0 {
                    Ok(())
                } else {
                    Err(self.running())
                };
            }
        }
    }
}
