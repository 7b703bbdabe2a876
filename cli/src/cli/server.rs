//! `guardian server`: run one controller node until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use guardian_controller::config::NodeConfig;
use guardian_controller::node;

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// TOML config file (see deploy/guardian.example.toml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub node_id: Option<u64>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// IP:PORT; port 0 picks a free port (printed on stdout).
    #[arg(long)]
    pub admin_listen: Option<String>,
    #[arg(long)]
    pub raft_listen: Option<String>,
    #[arg(long)]
    pub advertise_admin: Option<String>,
    #[arg(long)]
    pub advertise_raft: Option<String>,
}

fn config(a: &ServerArgs) -> anyhow::Result<NodeConfig> {
    let mut cfg = match &a.config {
        Some(p) => NodeConfig::load(p)?,
        None => NodeConfig::new(
            a.node_id.unwrap_or(0),
            a.data_dir.clone().unwrap_or_default(),
            a.admin_listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:7070".into()),
            a.raft_listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:7071".into()),
        ),
    };
    if let Some(v) = a.node_id {
        cfg.node_id = v;
    }
    if let Some(v) = &a.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &a.admin_listen {
        cfg.admin_listen = v.clone();
    }
    if let Some(v) = &a.raft_listen {
        cfg.raft_listen = v.clone();
    }
    if let Some(v) = &a.advertise_admin {
        cfg.advertise_admin = Some(v.clone());
    }
    if let Some(v) = &a.advertise_raft {
        cfg.advertise_raft = Some(v.clone());
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Waits for SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a supervisor that sends
/// SIGTERM right after reading the `listening` line must not hit the default
/// action (death by signal, a non-zero exit).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

pub async fn run(a: &ServerArgs) -> ExitCode {
    let cfg = match config(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let stop = shutdown_signal();
    let node = match node::start(cfg.clone()).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One machine-readable line, so harnesses learn OS-assigned ports.
    println!(
        "{}",
        serde_json::json!({
            "event": "listening",
            "node_id": cfg.node_id,
            "admin_addr": node.ctl.admin_addr,
            "raft_addr": node.ctl.raft_addr,
        })
    );
    stop.await;
    tracing::info!(node_id = cfg.node_id, "shutting down");
    match node.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
