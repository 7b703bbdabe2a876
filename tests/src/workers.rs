//! `guardian-worker` processes for the consumer-scheduling test and bench:
//! spawn one, and read back its log (`p TOPIC PARTITION OFFSET AT_MS` per
//! record processed, `c TOPIC PARTITION NEXT EPOCH WHY SENT_AT_MS` per
//! commit; each line flushed before it counts).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{guardian_bin, TestCluster};

/// The worker binary beside this tree's `guardian` (built with the
/// workspace: `guardian-consumer` has an integration test).
pub fn worker_bin() -> PathBuf {
    guardian_bin().with_file_name("guardian-worker")
}

/// An example program of the workspace (`cargo test` builds examples):
/// `target/<profile>/examples/NAME`.
pub fn example_bin(name: &str) -> PathBuf {
    guardian_bin()
        .parent()
        .expect("the guardian binary is in a directory")
        .join("examples")
        .join(name)
}

/// A running worker. Dropping it does not stop the process: call `kill`.
pub struct Worker {
    pub id: String,
    pub log: PathBuf,
    pub child: Child,
}

/// One record a worker processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Wall clock when the handler ran, ms since the epoch.
    pub at_ms: u64,
}

/// One commit a worker sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLine {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
    pub epoch: u64,
    pub why: String,
    pub sent_at_ms: u64,
}

/// Starts `guardian-worker --endpoints … --id ID --pool POOL --log DIR/ID.log`
/// plus `args`; stderr goes to `DIR/ID.stderr`.
pub fn spawn(endpoints: &[String], dir: &Path, id: &str, pool: &str, args: &[&str]) -> Worker {
    let log = dir.join(format!("{id}.log"));
    let stderr = std::fs::File::create(dir.join(format!("{id}.stderr"))).expect("worker stderr");
    let child = Command::new(worker_bin())
        .args(["--endpoints", &endpoints.join(",")])
        .args(["--id", id, "--pool", pool])
        .args(args)
        .arg("--log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("run guardian-worker");
    Worker {
        id: id.to_string(),
        log,
        child,
    }
}

impl Worker {
    fn lines(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Whole lines only: the last may still be being written.
        let whole = text.rfind('\n').map_or("", |i| &text[..i]);
        whole
            .lines()
            .map(|l| l.split(' ').map(str::to_string).collect())
            .collect()
    }

    /// The records processed so far, in the order processed.
    pub fn processed(&self) -> Vec<Processed> {
        self.lines()
            .into_iter()
            .filter(|f| f.len() == 5 && f[0] == "p")
            .map(|f| Processed {
                topic: f[1].clone(),
                partition: f[2].parse().expect("partition"),
                offset: f[3].parse().expect("offset"),
                at_ms: f[4].parse().expect("at_ms"),
            })
            .collect()
    }

    /// The commits sent so far, in the order sent.
    pub fn commits(&self) -> Vec<CommitLine> {
        self.lines()
            .into_iter()
            .filter(|f| f.len() == 7 && f[0] == "c")
            .map(|f| CommitLine {
                topic: f[1].clone(),
                partition: f[2].parse().expect("partition"),
                next: f[3].parse().expect("next offset"),
                epoch: f[4].parse().expect("epoch"),
                why: f[5].clone(),
                sent_at_ms: f[6].parse().expect("sent_at_ms"),
            })
            .collect()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wall clock, ms since the epoch (what the worker logs).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// The controller's consumer-scheduling state (`GetConsumers`, as JSON):
/// pools, workers, bindings with each partition's owner and state.
pub async fn consumers(g: &TestCluster) -> serde_json::Value {
    let r = g
        .client()
        .call_on::<guardian_controller::client::ConsumersStub, _, _, _>(|mut s| async move {
            s.get_consumers(guardian_proto::pb::ConsumersRequest { stale: false })
                .await
        })
        .await
        .expect("GetConsumers");
    serde_json::from_str(&r.json).expect("consumers JSON")
}
