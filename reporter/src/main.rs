//! `guardian-reporter`: serve a broker's snapshot, or print one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use guardian_reporter::sampler::{snapshot_json, Sampler};

#[derive(Parser, Debug)]
#[command(
    name = "guardian-reporter",
    version,
    about = "Guardian's broker sidecar: the whole broker in one gRPC call"
)]
struct Cli {
    /// A Kafka log dir of this broker (repeat for each).
    #[arg(long = "log-dir", global = true)]
    log_dirs: Vec<PathBuf>,
    /// Address to serve gRPC (Reporter), /healthz and /metrics on.
    #[arg(long, default_value = "0.0.0.0:9300")]
    listen: String,
    /// The broker's Prometheus exporter endpoint (JMX exporter agent), e.g.
    /// http://localhost:7071/metrics: per-topic bytes in/out and messages in,
    /// under-replicated partitions, request-handler idle ratio, p99 latencies.
    #[arg(long, global = true)]
    broker_metrics: Option<String>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print one snapshot and exit.
    Snapshot {
        /// Output format (json only).
        #[arg(short = 'o', long = "output", default_value = "json", value_parser = ["json"])]
        output: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GUARDIAN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if cli.log_dirs.is_empty() {
        eprintln!("error: at least one --log-dir is required");
        return ExitCode::from(2);
    }
    let mut sampler =
        Sampler::new(cli.log_dirs.clone()).with_broker_metrics(cli.broker_metrics.clone());
    match cli.command {
        Some(Cmd::Snapshot { .. }) => {
            let s = sampler.sample();
            println!("{}", snapshot_json(&s));
            ExitCode::SUCCESS
        }
        None => {
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let res = rt.block_on(async {
                let (listener, addr) = guardian_reporter::server::bind(&cli.listen).await?;
                println!("{}", serde_json::json!({"listening": addr.to_string()}));
                let shutdown = async {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("SIGTERM handler");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                };
                guardian_reporter::server::serve(listener, sampler, shutdown).await
            });
            match res {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
