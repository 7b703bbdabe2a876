//! The collector: pulls every registered broker's reporter into the load
//! windows ([`crate::load`]) while this node leads, and proposes each
//! completed bucket's and slot's means through Raft. Started by the
//! leader supervisor ([`super`]) when this node gains leadership, cancelled
//! when it loses it; the windows (soft state) go with it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use guardian_meta_store::state::load::PARTITION_SLOT_BUCKETS;
use guardian_proto::domain::Command;
use guardian_proto::pb;
use guardian_proto::pb::reporter_client::ReporterClient;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::config::CollectConfig;
use crate::load::{
    accept, completed_bucket, partition_slot, recorded_lists, seed, seed_partitions, LoadState,
};
use crate::raft::Controller;
use crate::time::now_ms;

/// The load windows the `Load*` RPCs read, and the reporter channels.
pub struct Collector {
    pub state: RwLock<LoadState>,
    pub interval_ms: u64,
    cfg: CollectConfig,
    channels: std::sync::Mutex<HashMap<String, Channel>>,
    /// Reporters going stale or being rejected, and coming back.
    events: std::sync::Arc<crate::governance::events::EventLog>,
}

/// Why one pull failed (shown as the broker's stale reason).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullError {
    #[error("bad reporter endpoint {endpoint:?}: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("reporter {endpoint}: {message}")]
    Refused { endpoint: String, message: String },
    #[error("reporter {endpoint}: no answer within {timeout:?}")]
    Timeout { endpoint: String, timeout: Duration },
}

impl Collector {
    pub fn new(
        cfg: CollectConfig,
        events: std::sync::Arc<crate::governance::events::EventLog>,
    ) -> Self {
        Self {
            events,
            state: RwLock::new(LoadState::default()),
            interval_ms: cfg.interval_ms,
            cfg,
            channels: Default::default(),
        }
    }

    fn channel(&self, endpoint: &str, timeout: Duration) -> Result<Channel, PullError> {
        let mut chans = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = chans.get(endpoint) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|e| PullError::BadEndpoint {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        chans.insert(endpoint.to_string(), c.clone());
        Ok(c)
    }

    async fn pull(
        &self,
        endpoint: &str,
        timeout: Duration,
    ) -> Result<pb::BrokerSnapshot, PullError> {
        let ch = self.channel(endpoint, timeout)?;
        let mut c = ReporterClient::new(ch).max_decoding_message_size(256 << 20);
        match tokio::time::timeout(timeout, c.get_snapshot(pb::GetSnapshotRequest {})).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(PullError::Refused {
                endpoint: endpoint.to_string(),
                message: s.message().to_string(),
            }),
            Err(_) => Err(PullError::Timeout {
                endpoint: endpoint.to_string(),
                timeout,
            }),
        }
    }

    /// Forgets everything collected (a node that stops leading).
    pub fn clear(&self) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = LoadState::default();
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Collects every `collect.interval-ms` until `shutdown` is cancelled
    /// (this node stopped leading, or is stopping). Starts from the
    /// replicated history, so a new leader answers at once.
    pub async fn run(self: Arc<Self>, ctl: Controller, shutdown: CancellationToken) {
        let me = self;
        let cfg = me.cfg.clone();
        let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let bucket_ms = cfg.history_bucket_ms;
        let bucket = now_ms() / bucket_ms;
        {
            let st = ctl.state();
            let mut load = me.state.write().unwrap_or_else(|p| p.into_inner());
            *load = LoadState::default();
            seed(&mut load, &st.load.brokers);
            seed_partitions(&mut load, &st.load.partitions);
        }
        let mut recorded = bucket.saturating_sub(1);
        let mut recorded_slot = (bucket / PARTITION_SLOT_BUCKETS).saturating_sub(1);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let bucket = now_ms() / bucket_ms;
            let targets: Vec<(String, i32, String, Option<String>)> = {
                let st = ctl.state();
                st.registry
                    .brokers
                    .values()
                    .map(|b| {
                        let cid = st
                            .registry
                            .clusters
                            .get(&b.cluster)
                            .and_then(|c| c.kafka_cluster_id.clone());
                        (
                            b.cluster.clone(),
                            b.broker_id,
                            b.reporter_endpoint.clone(),
                            cid,
                        )
                    })
                    .collect()
            };
            let timeout = Duration::from_millis(cfg.timeout_ms);
            let round = std::time::Instant::now();
            let results: Vec<_> = futures::stream::iter(targets.clone())
                .map(|(cluster, id, ep, cid)| {
                    let me = me.clone();
                    async move {
                        let r = me.pull(&ep, timeout).await;
                        (cluster, id, ep, cid, r)
                    }
                })
                .buffer_unordered(cfg.concurrency)
                .collect()
                .await;
            let m = &crate::metrics::METRICS;
            m.collector_round_seconds
                .observe(crate::metrics::since(round));
            for r in &results {
                m.pull(r.4.is_ok());
            }
            let now = now_ms();
            // Once a bucket is complete, its means are replicated.
            let done = bucket.saturating_sub(1);
            let record = {
                let mut st = me.state.write().unwrap_or_else(|p| p.into_inner());
                // Brokers removed from the registry are forgotten.
                st.brokers
                    .retain(|k, _| targets.iter().any(|t| (&t.0, t.1) == (&k.0, k.1)));
                for (cluster, id, ep, cid, r) in results {
                    let b = st.brokers.entry((cluster.clone(), id)).or_default();
                    b.endpoint = ep;
                    let was_failing = b.error.is_some();
                    let outcome = r.map_err(|e| e.to_string()).and_then(|s| {
                        accept(b, id, cid.as_deref(), s, now, now / bucket_ms)
                            .map_err(|e| e.to_string())
                    });
                    match outcome {
                        Err(e) => {
                            tracing::debug!(broker = id, error = %e, "collection failed");
                            if b.error.as_deref() != Some(e.as_str()) {
                                me.events.record(
                                    &cluster,
                                    "reporter",
                                    &format!("broker {id}"),
                                    format!("reporter of broker {id} stale or rejected: {e}"),
                                    &[],
                                );
                            }
                            b.error = Some(e);
                        }
                        Ok(()) => {
                            if was_failing {
                                me.events.record(
                                    &cluster,
                                    "reporter",
                                    &format!("broker {id}"),
                                    format!("reporter of broker {id} answers again"),
                                    &[],
                                );
                            }
                        }
                    }
                }
                (done > recorded).then(|| completed_bucket(&st, done))
            };
            if let Some(brokers) = record {
                recorded = done;
                if !brokers.is_empty() {
                    let cmd = Command::RecordLoad {
                        bucket: done,
                        brokers,
                    };
                    if let Err(e) = ctl.write(cmd).await {
                        tracing::warn!(error = %e, "recording load history failed");
                    }
                }
            }
            // Per-partition means, one slot (several buckets) at a time.
            let done_slot = (bucket / PARTITION_SLOT_BUCKETS).saturating_sub(1);
            if done_slot > recorded_slot {
                recorded_slot = done_slot;
                let lists = recorded_lists(&ctl.state().load.partitions);
                // ≈ 40 ns a partition (memory-bound): off the async workers.
                let c = me.clone();
                let cmds = tokio::task::spawn_blocking(move || {
                    let load = c.state.read().unwrap_or_else(|p| p.into_inner());
                    partition_slot(&load, &lists, done_slot)
                })
                .await
                .unwrap_or_default();
                for cmd in cmds {
                    if let Err(e) = ctl.write(cmd).await {
                        tracing::warn!(error = %e, "recording partition load history failed");
                        break;
                    }
                }
            }
        }
        // The supervisor drops the soft state once this task has ended
        // (also when it panicked).
    }
}
