//! `robustness`: three real `guardian server` processes under a mixed load
//! while faults are injected; every client operation recorded and the
//! history checked (linearizability per key, grow-only sets, no
//! acknowledged write lost, no id twice, no call past its deadline).
//! Exits 1 if any fault found a violation.
//!
//! ```text
//! cargo test --workspace --no-run   # the guardian binary, with fail points
//! cargo run -p guardian-tests --bin robustness -- --faults all --secs 20 --seed 1
//! ```

use std::time::Duration;

use clap::Parser;
use guardian_tests::robustness::{run, table, Fault, RunConfig};

#[derive(Parser, Debug)]
#[command(about = "Fault injection under load with checked histories")]
struct Args {
    /// `all`, or a comma-separated list (kill-leader, kill-follower,
    /// pause-leader, kill-all, isolate-leader, isolate-follower,
    /// one-way-leader, delay, loss, slow-fsync).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Seconds per fault (each fault runs at least once).
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Seeds the choice of follower, the clients' key and operation draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long each injected fault is held, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    hold_ms: u64,
    /// `table` or `json` (one object per fault).
    #[arg(short = 'o', long, default_value = "table")]
    output: String,
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let faults = match Fault::parse_list(&a.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("robustness: --faults: {e}");
            std::process::exit(2);
        }
    };
    if a.output != "table" && a.output != "json" {
        eprintln!("robustness: -o: expected table or json, got {:?}", a.output);
        std::process::exit(2);
    }
    let cfg = RunConfig {
        faults,
        secs_per_fault: a.secs,
        seed: a.seed,
        hold: Duration::from_millis(a.hold_ms),
    };
    let reports = run(&cfg).await;
    if a.output == "json" {
        for r in &reports {
            println!("{}", serde_json::to_string(r).expect("json"));
        }
    } else {
        println!(
            "robustness: 3 nodes, seed {}, {} s per fault, faults held {} ms",
            a.seed, a.secs, a.hold_ms
        );
        print!("{}", table(&reports));
    }
    if reports.iter().any(|r| !r.violations.is_empty()) {
        std::process::exit(1);
    }
}
