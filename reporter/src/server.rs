//! Serves the `Reporter` gRPC service and, on the same port over HTTP/1.1,
//! `/healthz` and `/metrics` (Prometheus text: the reporter's own health).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use guardian_proto::pb;
use guardian_proto::pb::reporter_server::{Reporter, ReporterServer};
use tonic::{Request, Response, Status};

use crate::sampler::Sampler;

/// What `/metrics` exposes (prometheus-client, like the controller's).
pub struct Stats {
    snapshots: prometheus_client::metrics::counter::Counter,
    build_seconds: prometheus_client::metrics::histogram::Histogram,
    last_partitions: prometheus_client::metrics::gauge::Gauge,
    last_warnings: prometheus_client::metrics::gauge::Gauge,
    registry: prometheus_client::registry::Registry,
}

impl Default for Stats {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        let snapshots = prometheus_client::metrics::counter::Counter::default();
        // 1 ms … ~8 s.
        let build_seconds = Histogram::new(exponential_buckets(1e-3, 2.0, 14));
        let last_partitions = prometheus_client::metrics::gauge::Gauge::default();
        let last_warnings = prometheus_client::metrics::gauge::Gauge::default();
        let mut registry = prometheus_client::registry::Registry::with_prefix("guardian_reporter");
        registry.register("snapshots", "Snapshots served", snapshots.clone());
        registry.register(
            "snapshot_build_seconds",
            "Time to build one snapshot",
            build_seconds.clone(),
        );
        registry.register(
            "last_snapshot_partitions",
            "Partitions in the last snapshot",
            last_partitions.clone(),
        );
        registry.register(
            "last_snapshot_warnings",
            "Warnings in the last snapshot (files that could not be read)",
            last_warnings.clone(),
        );
        Stats {
            snapshots,
            build_seconds,
            last_partitions,
            last_warnings,
            registry,
        }
    }
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
        s.snapshots.inc();
        s.build_seconds.observe(snap.build_ms / 1e3);
        s.last_partitions
            .set(snap.partitions.as_ref().map_or(0, |t| t.partition.len()) as i64);
        s.last_warnings.set(snap.warnings.len() as i64);
        Ok(Response::new(snap))
    }
}

fn metrics_text(s: &Stats) -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &s.registry);
    out
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
