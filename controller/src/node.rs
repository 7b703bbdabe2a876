//! Starting and stopping one controller node: open the store, start Raft,
//! serve the raft port (peers) and the admin port (clients).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use guardian_meta_store::Raft;
use guardian_proto::pb::guardian_admin_server::GuardianAdminServer;
use guardian_proto::pb::raft_peer_server::RaftPeerServer;
use guardian_proto::pb::remote_log_metadata_server::RemoteLogMetadataServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::api::{AdminService, Api, Auth, RemoteLogService};
use crate::config::{ConfigError, NodeConfig};
use crate::leader::collector::Collector;
use crate::leader::Supervisor;
use crate::raft::network::{PeerNetwork, MAX_RAFT_MESSAGE_BYTES};
use crate::raft::peer_service::RaftPeerService;
use crate::raft::peer_tls::PeerTls;
use crate::raft::Controller;
use crate::tasks::Tasks;

/// How long a stopping node waits for its tasks to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("opening store: {0}")]
    Open(#[from] guardian_meta_store::OpenError),
    #[error("binding {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("server task: {0}")]
    Task(String),
}

/// A running node. Drop does not stop it: call [`RunningNode::shutdown`].
pub struct RunningNode {
    pub ctl: Controller,
    pub admin_addr: SocketAddr,
    pub raft_addr: SocketAddr,
    /// The HTTP port (`/metrics`), when `http-listen` is set.
    pub http_addr: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: Tasks,
    store: guardian_meta_store::StoreClosed,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
}

fn raft_config(cfg: &NodeConfig) -> Result<Arc<openraft::Config>, NodeError> {
    let r = &cfg.raft;
    let c = openraft::Config {
        cluster_name: "guardian".into(),
        heartbeat_interval: r.heartbeat_interval_ms,
        election_timeout_min: r.election_timeout_min_ms,
        election_timeout_max: r.election_timeout_max_ms,
        install_snapshot_timeout: 2_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_logs_since_last),
        max_in_snapshot_log_to_keep: r.max_in_snapshot_log_to_keep,
        snapshot_max_chunk_size: r.snapshot_chunk_bytes,
        max_payload_entries: r.max_payload_entries,
        // Enabled by `hold_elections_until_settled` once the node has heard
        // from a leader (or after a grace period).
        enable_elect: false,
        ..Default::default()
    };
    Ok(Arc::new(
        c.validate().map_err(|e| NodeError::Raft(e.to_string()))?,
    ))
}

/// Accepted connections get TCP_NODELAY: Raft and admin RPCs are small and
/// latency-bound (Nagle + delayed ACK would add ~40 ms stalls).
fn incoming(l: TcpListener) -> TcpIncoming {
    TcpIncoming::from(l).with_nodelay(Some(true))
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// Starts a node. Returns once both ports are bound and Raft is running.
pub async fn start(cfg: NodeConfig) -> Result<RunningNode, NodeError> {
    cfg.validate()?;
    #[cfg(feature = "failpoints")]
    crate::api::failpoints::configure_from_env().map_err(NodeError::Task)?;
    let dir = cfg.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| NodeError::Bind {
        what: "data dir",
        addr: dir.display().to_string(),
        source,
    })?;
    let (log, sm) = tokio::task::spawn_blocking(move || guardian_meta_store::open(&dir))
        .await
        .map_err(|e| NodeError::Task(e.to_string()))??;
    let state = sm.reader();
    let store = log.closed();

    let admin_listener = bind("admin", &cfg.admin_listen).await?;
    let raft_listener = bind("raft", &cfg.raft_listen).await?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| NodeError::Task(e.to_string()))?;
    let raft_addr = raft_listener
        .local_addr()
        .map_err(|e| NodeError::Task(e.to_string()))?;

    let peer_token: Option<String> = cfg.raft.peer_token.as_ref().map(|t| t.expose().to_string());
    let peer_tls = match &cfg.raft.tls {
        Some(files) => {
            Some(PeerTls::load(files).map_err(|e| NodeError::Tls(format!("[raft.tls]: {e}")))?)
        }
        None => None,
    };
    let raft = Raft::new(
        cfg.node_id,
        raft_config(&cfg)?,
        PeerNetwork {
            from: cfg.node_id,
            token: peer_token.clone(),
            tls: peer_tls.clone(),
        },
        log,
        sm,
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    let tasks = Tasks::default();
    let stop = CancellationToken::new();
    tasks.spawn(
        "hold elections",
        hold_elections_until_settled(
            raft.clone(),
            Duration::from_millis(2 * cfg.raft.election_timeout_max_ms),
            stop.clone(),
        ),
    );
    let ctl = Controller {
        proposer: crate::raft::proposer::Proposer::start(
            raft.clone(),
            cfg.raft.max_proposals_in_flight,
            &tasks,
            stop.clone(),
        ),
        barrier: crate::raft::barrier::ReadBarrier::start(raft.clone(), &tasks, stop.clone()),
        raft: raft.clone(),
        state,
        id: cfg.node_id,
        admin_addr: cfg
            .advertise_admin
            .clone()
            .unwrap_or_else(|| admin_addr.to_string()),
        raft_addr: cfg
            .advertise_raft
            .clone()
            .unwrap_or_else(|| raft_addr.to_string()),
    };

    let until_stopped = |t: CancellationToken| t.cancelled_owned();

    // Raft port: peers only (mutual TLS with `[raft.tls]`).
    let raft_router = Server::builder().tcp_nodelay(true).add_service(
        RaftPeerServer::new(RaftPeerService::new(ctl.clone(), peer_token.clone()))
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
    );
    let raft_srv: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match &peer_tls {
        Some(tls) => {
            tasks.spawn(
                "raft tls reload",
                crate::raft::peer_tls::watch(tls.clone(), stop.clone()),
            );
            Box::pin(raft_router.serve_with_incoming_shutdown(
                crate::raft::peer_tls::incoming(raft_listener, tls.clone(), &tasks, stop.clone()),
                until_stopped(stop.clone()),
            ))
        }
        None => Box::pin(
            raft_router
                .serve_with_incoming_shutdown(incoming(raft_listener), until_stopped(stop.clone())),
        ),
    };

    // Admin port: the admin API, health and reflection.
    let (health, health_svc) = tonic_health::server::health_reporter();
    health
        .set_serving::<GuardianAdminServer<AdminService>>()
        .await;
    health
        .set_serving::<RemoteLogMetadataServer<RemoteLogService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(guardian_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Advertise what this port serves; RaftPeer lives on the raft port.
        .with_service_name("guardian.v1.GuardianAdmin")
        .with_service_name("guardian.v1.RemoteLogMetadata")
        .with_service_name("guardian.v1.GuardianConsumers")
        .with_service_name("guardian.v1.ConsumerScheduler")
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .map_err(|e| NodeError::Task(e.to_string()))?;
    let events = Arc::new(crate::governance::events::EventLog::new(
        cfg.governance.retention(),
    ));
    let collector = Arc::new(Collector::new(cfg.collect.clone(), events.clone()));
    let metrics_collector = collector.clone();
    let executor = Arc::new(crate::executor::Executor::new(
        cfg.executor.clone(),
        cfg.kafka.clone(),
        collector.clone(),
        events.clone(),
    ));
    let governance = Arc::new(crate::governance::Governance::new(
        cfg.governance.clone(),
        cfg.healing.clone(),
        events,
        executor.clone(),
        collector.clone(),
    ));
    let consumers = Arc::new(crate::consumers::Scheduler::new(
        cfg.consumers.clone(),
        executor.clone(),
    ));
    let metrics_consumers = consumers.clone();
    let supervisor = Supervisor {
        ctl: ctl.clone(),
        collector: collector.clone(),
        executor: executor.clone(),
        governance: governance.clone(),
        consumers: consumers.clone(),
        tasks: tasks.clone(),
    };
    tasks.spawn("leader supervisor", supervisor.run(stop.clone()));
    let api = Arc::new(Api {
        ctl: ctl.clone(),
        collector,
        executor,
        governance,
        consumers,
        peer_token: peer_token.clone(),
        peer_tls,
        kafka: cfg.kafka.clone(),
    });
    let auth = Auth::new(&cfg.auth);
    let admin_svc = GuardianAdminServer::new(AdminService::new(api.clone(), auth.clone()))
        .max_decoding_message_size(cfg.grpc.max_request_bytes);
    let events_svc = guardian_proto::pb::guardian_events_server::GuardianEventsServer::new(
        crate::api::governance::EventsService::new(api.clone(), auth.clone()),
    );
    let dashboard = crate::api::dashboard::Dashboard::new(api.clone(), &cfg.auth);
    let consumers_svc = guardian_proto::pb::guardian_consumers_server::GuardianConsumersServer::new(
        crate::api::ConsumersService::new(api.clone(), auth.clone()),
    );
    let scheduler_svc = guardian_proto::pb::consumer_scheduler_server::ConsumerSchedulerServer::new(
        crate::api::SchedulerService::new(api.clone(), auth.clone()),
    );
    let remote_log_svc = RemoteLogMetadataServer::new(RemoteLogService::new(api, auth.clone()))
        .max_decoding_message_size(cfg.grpc.max_request_bytes)
        .max_encoding_message_size(cfg.grpc.max_request_bytes.max(64 << 20));
    // The admin port and the HTTP port (dashboard, metrics) share the
    // node's certificate.
    let tls_config = match &cfg.tls {
        None => None,
        Some(tls) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| NodeError::Tls(format!("reading {}: {e}", p.display())))
            };
            let identity =
                tonic::transport::Identity::from_pem(read(&tls.cert_file)?, read(&tls.key_file)?);
            Some(tonic::transport::ServerTlsConfig::new().identity(identity))
        }
    };
    let mut admin_builder = Server::builder();
    if let Some(t) = &tls_config {
        admin_builder = admin_builder
            .tls_config(t.clone())
            .map_err(|e| NodeError::Tls(e.to_string()))?;
    }
    let admin_srv = admin_builder
        .tcp_nodelay(true)
        .timeout(Duration::from_millis(cfg.grpc.request_timeout_ms))
        .concurrency_limit_per_connection(cfg.grpc.concurrency_per_connection)
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(admin_svc)
        .add_service(events_svc)
        .add_service(remote_log_svc)
        .add_service(consumers_svc)
        .add_service(scheduler_svc)
        .serve_with_incoming_shutdown(incoming(admin_listener), until_stopped(stop.clone()));

    let mut servers = vec![
        tasks.spawn("raft port", raft_srv),
        tasks.spawn("admin port", admin_srv),
    ];
    let mut http_addr = None;
    if let Some(listen) = &cfg.http_listen {
        let l = bind("http", listen).await?;
        http_addr = Some(l.local_addr().map_err(|e| NodeError::Task(e.to_string()))?);
        let (c, col, cons) = (ctl.clone(), metrics_collector, metrics_consumers);
        let router = dashboard
            .router()
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let (c, col, cons) = (c.clone(), col.clone(), cons.clone());
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            crate::metrics::render(&c, &col, &cons),
                        )
                    }
                }),
            );
        #[cfg(feature = "failpoints")]
        let router = if crate::api::failpoints::enabled() {
            tracing::warn!(
                "fail point control is on (/debug/failpoints, {}=1)",
                crate::api::failpoints::ENV
            );
            router.merge(crate::api::failpoints::router(auth.clone()))
        } else {
            router
        };
        let mut http_builder = Server::builder();
        if let Some(t) = &tls_config {
            http_builder = http_builder
                .tls_config(t.clone())
                .map_err(|e| NodeError::Tls(e.to_string()))?;
        }
        let srv = http_builder
            .accept_http1(true)
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming_shutdown(incoming(l), until_stopped(stop.clone()));
        servers.push(tasks.spawn("http port", srv));
    }
    tracing::info!(node_id = cfg.node_id, %admin_addr, %raft_addr, "controller node started");
    Ok(RunningNode {
        ctl,
        admin_addr,
        raft_addr,
        http_addr,
        stop,
        tasks,
        store,
        servers,
    })
}

/// A node that (re)starts does not call an election for `grace` (two
/// maximum election timeouts): a live leader's heartbeats reach it first.
/// openraft 0.9 has no pre-vote: a restarted follower whose timer fired at
/// once would bump the term and depose a healthy leader it cannot replace
/// (its log is behind), and the failed attempt also marks it "saw a greater
/// log", delaying its next election — measured as an extra ~250 ms on the
/// next failover. (The persisted vote makes `current_leader` known at start,
/// so "a leader is known" cannot stand in for "heard from the leader".)
async fn hold_elections_until_settled(raft: Raft, grace: Duration, stop: CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(grace) => raft.runtime_config().elect(true),
    }
}

impl RunningNode {
    pub fn raft(&self) -> &Raft {
        &self.ctl.raft
    }

    /// The node's task registry (what still runs; empty once
    /// [`RunningNode::shutdown`] has returned `Ok`).
    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    /// Stops serving and every task the node started, then stops Raft
    /// (flushing nothing extra: every acknowledged write is already
    /// synced). Returns once nothing the node started still runs.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.stop.cancel();
        let _ = self.ctl.raft.shutdown().await;
        for s in self.servers {
            match s.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(NodeError::Task(e.to_string())),
                Err(e) => return Err(NodeError::Task(e.to_string())),
            }
        }
        self.tasks
            .wait_idle(SHUTDOWN_GRACE)
            .await
            .map_err(|left| NodeError::Task(format!("still running after shutdown: {left:?}")))?;
        // openraft drops the store from its own tasks as they end; the data
        // dir is free once the last handle is gone.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.store.is_closed() {
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::Task(format!(
                    "the store is still open {SHUTDOWN_GRACE:?} after shutdown"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::info!(node_id = self.ctl.id, "controller node stopped");
        Ok(())
    }
}
