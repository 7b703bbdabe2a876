//! The leader's side of the replicated event log: decisions are recorded
//! here as they are made ([`EventLog::record`]) and appended through Raft
//! in batches ([`EventLog::flush`], called by the governance loop every
//! few hundred ms). A node that stops leading drops what it had not
//! flushed (`clear`): the log holds what a leader committed.

use std::sync::Mutex;

use guardian_proto::domain::Command;
use guardian_proto::governance::{EventRecord, GovernanceCmd, Retention, MAX_EVENTS_PER_ENTRY};

use crate::raft::Controller;
use crate::time::now_ms;

/// Buffered events, flushed through Raft.
#[derive(Debug)]
pub struct EventLog {
    pending: Mutex<Vec<EventRecord>>,
    pub retention: Retention,
}

impl EventLog {
    pub fn new(retention: Retention) -> Self {
        EventLog {
            pending: Mutex::new(Vec::new()),
            retention,
        }
    }

    /// Records one decision (also logged at info).
    pub fn record(
        &self,
        cluster: &str,
        kind: &str,
        subject: &str,
        text: impl Into<String>,
        figures: &[(&str, f64)],
    ) {
        let text = text.into();
        tracing::info!(%cluster, kind, subject, "{text}");
        // Event kinds are a fixed set: a bounded label.
        crate::metrics::METRICS.event(kind);
        let e = EventRecord {
            seq: 0,
            at_ms: now_ms(),
            cluster: cluster.to_string(),
            kind: kind.to_string(),
            subject: subject.to_string(),
            text,
            figures: figures
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        };
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // A leader that cannot commit keeps a bounded backlog.
        if p.len() >= 10 * MAX_EVENTS_PER_ENTRY {
            p.remove(0);
        }
        p.push(e);
    }

    /// Appends what was recorded through Raft (kept for the next flush if
    /// the write fails).
    pub async fn flush(&self, ctl: &Controller) {
        let batch: Vec<EventRecord> = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let n = p.len().min(MAX_EVENTS_PER_ENTRY);
            p.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        let cmd = Command::Governance(Box::new(GovernanceCmd::Events {
            events: batch.clone(),
            retention: self.retention,
        }));
        if let Err(e) = ctl.write(cmd).await {
            tracing::warn!(error = %e, "appending events failed; retrying");
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let rest = std::mem::take(&mut *p);
            *p = batch;
            p.extend(rest);
        }
    }

    /// Drops what was not flushed (a node that stops leading).
    pub fn clear(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
