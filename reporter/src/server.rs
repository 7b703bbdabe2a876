//! Serves the `Reporter` gRPC service and, on the same port over HTTP/1.1,
//! `/healthz` and `/metrics` (Prometheus text: the reporter's own health).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use guardian_proto::pb;
use guardian_proto::pb::reporter_server::{Reporter, ReporterServer};
use tonic::{Request, Response, Status};

use crate::sampler::Sampler;

/// Counters behind `/metrics`.
#[derive(Default)]
pub struct Stats {
    snapshots: AtomicU64,
    last_build_us: AtomicU64,
    last_partitions: AtomicU64,
    last_warnings: AtomicU64,
}

pub struct ReporterService {
    sampler: Arc<Mutex<Sampler>>,
    stats: Arc<Stats>,
}

impl ReporterService {
    pub fn new(sampler: Sampler, stats: Arc<Stats>) -> Self {
        Self {
            sampler: Arc::new(Mutex::new(sampler)),
            stats,
        }
    }
}

#[tonic::async_trait]
impl Reporter for ReporterService {
    async fn get_snapshot(
        &self,
        _req: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::BrokerSnapshot>, Status> {
        let sampler = self.sampler.clone();
        // Disk reads: off the async workers. One sample at a time (rates are
        // between consecutive samples).
        let snap = tokio::task::spawn_blocking(move || {
            sampler.lock().unwrap_or_else(|p| p.into_inner()).sample()
        })
        .await
        .map_err(|e| Status::internal(format!("sampling failed: {e}")))?;
        let s = &self.stats;
        s.snapshots.fetch_add(1, Ordering::Relaxed);
        s.last_build_us
            .store((snap.build_ms * 1000.0) as u64, Ordering::Relaxed);
        s.last_partitions.store(
            snap.partitions.as_ref().map_or(0, |t| t.partition.len()) as u64,
            Ordering::Relaxed,
        );
        s.last_warnings
            .store(snap.warnings.len() as u64, Ordering::Relaxed);
        Ok(Response::new(snap))
    }
}

fn metrics_text(s: &Stats) -> String {
    let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
    format!(
        "# TYPE guardian_reporter_snapshots_total counter\n\
         guardian_reporter_snapshots_total {}\n\
         # TYPE guardian_reporter_last_snapshot_build_seconds gauge\n\
         guardian_reporter_last_snapshot_build_seconds {}\n\
         # TYPE guardian_reporter_last_snapshot_partitions gauge\n\
         guardian_reporter_last_snapshot_partitions {}\n\
         # TYPE guardian_reporter_last_snapshot_warnings gauge\n\
         guardian_reporter_last_snapshot_warnings {}\n",
        g(&s.snapshots),
        g(&s.last_build_us) as f64 / 1e6,
        g(&s.last_partitions),
        g(&s.last_warnings),
    )
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sampler: Sampler,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stats = Arc::new(Stats::default());
    let svc = ReporterServer::new(ReporterService::new(sampler, stats.clone()))
        .max_encoding_message_size(256 << 20);
    let router = tonic::service::Routes::new(svc)
        .into_axum_router()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let stats = stats.clone();
                async move { metrics_text(&stats) }
            }),
        );
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Binds `addr` (port 0 picks one).
pub async fn bind(addr: &str) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
