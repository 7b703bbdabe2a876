//! `guardian`: the controller server, `guardian dev`, and the operator CLI.

mod cli;

// The controller allocates many small, short-lived buffers per request
// (protobuf, HTTP/2 frames, log entries); glibc malloc showed up as ~16 % of
// the leader's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GUARDIAN_LOG").unwrap_or_else(|_| {
        let default = if matches!(args.command, cli::Cmd::Server(_)) {
            "info,openraft=warn"
        } else {
            "warn"
        };
        tracing_subscriber::EnvFilter::new(default)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(cli::run(args))
}
