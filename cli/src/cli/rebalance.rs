//! `guardian rebalance …`: plans on live data, reviewed and approved,
//! carried out by the leader's executor.

use clap::Subcommand;
use guardian_proto::pb;
use serde_json::Value;

use super::{CliError, Ctx};

#[derive(Subcommand, Debug)]
pub enum RebalanceCmd {
    /// Plan a balance of a cluster on live data and store it for review.
    Propose {
        #[arg(long)]
        cluster: String,
        /// A goal override, NAME=VALUE (disk_bytes=1.05, max_disk_fill=0.9, …).
        #[arg(long = "goal", value_parser = parse_goal)]
        goals: Vec<(String, f64)>,
        /// Replica moves touching one broker per batch (default 5).
        #[arg(long)]
        max_moves_per_broker: Option<u32>,
        /// Plan and print without storing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Proposals and executions.
    List {
        #[arg(long)]
        cluster: Option<String>,
    },
    /// One execution: state, per-task progress in bytes, ETA, throttles, events.
    Show {
        id: u64,
    },
    /// Approve a proposal: the executor starts it. Writes the rollback
    /// file first: the assignment before the execution, in
    /// `kafka-reassign-partitions` JSON (with `log_dirs`).
    Approve {
        id: u64,
        /// Where to write the rollback file (default
        /// `guardian-rollback-<cluster>-<id>.json` here).
        #[arg(long)]
        rollback_file: Option<std::path::PathBuf>,
    },
    /// Propose the way back from a finished execution: every partition it
    /// changed returns to its replicas, dirs and leader from before.
    Revert {
        id: u64,
        #[command(flatten)]
        p: super::workflow::ProposeArgs,
    },
    /// Cancel: in-flight moves reverted, throttles restored.
    Cancel {
        id: u64,
    },
    /// No new task starts; running ones finish.
    Pause {
        id: u64,
    },
    Resume {
        id: u64,
    },
}

fn parse_goal(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    let v: f64 = v.parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok((k.to_string(), v))
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// The human view of an execution.
fn render(v: &Value) -> String {
    use std::fmt::Write;
    let e = &v["execution"];
    let s = &e["summary"];
    let mut out = String::new();
    let id = e["id"].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "execution {} on cluster {}: {}{}{}",
        if id == 0 {
            "(dry run)".to_string()
        } else {
            id.to_string()
        },
        e["cluster"].as_str().unwrap_or(""),
        e["state"].as_str().unwrap_or(""),
        if e["paused"].as_bool() == Some(true) {
            " (paused)"
        } else {
            ""
        },
        match e["reason"].as_str() {
            Some(r) if !r.is_empty() => format!(" — {r}"),
            _ => String::new(),
        }
    );
    let r = &e["roll"];
    if r.is_object() {
        let batches = r["batches"].as_array().map_or(0, Vec::len);
        let _ = writeln!(
            out,
            "rolling restart: batch {}/{batches}, {}; restarted in this batch {}",
            (r["batch"].as_u64().unwrap_or(0) as usize + 1).min(batches),
            r["phase"].as_str().unwrap_or(""),
            r["restarted"]
        );
    }
    let done = v["bytes_done"].as_u64().unwrap_or(0);
    let total = s["bytes_to_move"].as_u64().unwrap_or(0);
    if !r.is_object() {
        let _ = writeln!(
            out,
            "bytes to move {} (lower bound {}), done {}; ETA {} s at {}/s per broker",
            gib(total),
            gib(s["bytes_lower_bound"].as_u64().unwrap_or(0)),
            gib(done),
            v["eta_secs"].as_u64().unwrap_or(0),
            gib(e["throttle_rate"].as_u64().unwrap_or(0)),
        );
    }
    if let Some(t) = s["table"].as_str() {
        out.push_str(t);
    }
    for (label, key) in [("warning", "warnings"), ("unplaced", "unplaced")] {
        for w in s[key].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{label}: {}", w.as_str().unwrap_or(""));
        }
    }
    let tasks = v["tasks"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "tasks ({}):", tasks.len());
    for t in tasks.iter().take(50) {
        let _ = writeln!(
            out,
            "  {:>4} {}-{} {:?} → {:?} {} {}/{} {}",
            t["index"],
            t["topic"].as_str().unwrap_or(""),
            t["partition"],
            t["original"]
                .as_array()
                .map(|a| a
                    .iter()
                    .map(|x| x.as_i64().unwrap_or(0))
                    .collect::<Vec<_>>())
                .unwrap_or_default(),
            t["target"]
                .as_array()
                .map(|a| a
                    .iter()
                    .map(|x| x.as_i64().unwrap_or(0))
                    .collect::<Vec<_>>())
                .unwrap_or_default(),
            t["state"].as_str().unwrap_or(""),
            t["progress_bytes"],
            t["bytes"],
            t["reason"].as_str().unwrap_or(""),
        );
    }
    if tasks.len() > 50 {
        let _ = writeln!(out, "  … {} more (-o json for all)", tasks.len() - 50);
    }
    let ledger = e["ledger"].as_array().cloned().unwrap_or_default();
    if !ledger.is_empty() {
        let _ = writeln!(out, "throttles:");
        for l in &ledger {
            let _ = writeln!(
                out,
                "  {} {} = {} (before: {}) [{}]",
                l["entity"],
                l["key"].as_str().unwrap_or(""),
                l["written"].as_str().unwrap_or("-"),
                l["prior"].as_str().unwrap_or("none"),
                l["state"].as_str().unwrap_or(""),
            );
        }
    }
    let events = e["events"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "events:");
    for ev in events.iter().rev().take(15).rev() {
        let _ = writeln!(
            out,
            "  {} {}",
            ev["at_ms"],
            ev["text"].as_str().unwrap_or("")
        );
    }
    out
}

pub(super) fn print(c: &Ctx, r: pb::ExecutionJson) -> Result<(), CliError> {
    let v: Value = serde_json::from_str(&r.json)
        .map_err(|e| CliError::Other(anyhow::anyhow!("bad execution JSON: {e}")))?;
    let line = render(&v);
    c.out.json_or_line(v, line.trim_end().to_string());
    Ok(())
}

pub async fn run(c: &Ctx, cmd: RebalanceCmd) -> Result<(), CliError> {
    let cl = &c.client;
    match cmd {
        RebalanceCmd::Propose {
            cluster,
            goals,
            max_moves_per_broker,
            dry_run,
        } => {
            let req = pb::ProposeRebalanceRequest {
                cluster,
                goals: goals.into_iter().collect(),
                max_moves_per_broker: max_moves_per_broker.unwrap_or(0),
                dry_run,
                ..Default::default()
            };
            let r = cl
                .call(|mut s| {
                    let req = req.clone();
                    async move { s.propose_rebalance(req).await }
                })
                .await?;
            print(c, r)
        }
        RebalanceCmd::List { cluster } => {
            let cluster = cluster.unwrap_or_default();
            let r = cl
                .call(|mut s| {
                    let cluster = cluster.clone();
                    async move {
                        s.list_executions(pb::ListExecutionsRequest {
                            cluster,
                            stale: false,
                        })
                        .await
                    }
                })
                .await?;
            let items: Vec<Value> = r
                .executions
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "id": e.id, "cluster": e.cluster, "kind": e.kind, "state": e.state,
                        "paused": e.paused, "bytes_to_move": e.bytes_to_move, "tasks": e.tasks,
                        "tasks_finished": e.tasks_finished, "created_ms": e.created_ms,
                        "reason": e.reason,
                    })
                })
                .collect();
            let mut lines = format!(
                "{:>4}  {:<16} {:<10} {:>12} {:>11}  REASON\n",
                "ID", "CLUSTER", "STATE", "BYTES", "TASKS"
            );
            for e in &r.executions {
                lines.push_str(&format!(
                    "{:>4}  {:<16} {:<10} {:>12} {:>5}/{:<5}  {}\n",
                    e.id,
                    e.cluster,
                    format!("{}{}", e.state, if e.paused { "*" } else { "" }),
                    gib(e.bytes_to_move),
                    e.tasks_finished,
                    e.tasks,
                    e.reason
                ));
            }
            c.out
                .json_or_line(Value::Array(items), lines.trim_end().to_string());
            Ok(())
        }
        RebalanceCmd::Show { id } => {
            let r = get(c, id).await?;
            if c.out.format == super::Format::KafkaJson {
                let v = parse(&r)?;
                println!("{}", kafka_json(&v, false));
                return Ok(());
            }
            print(c, r)
        }
        RebalanceCmd::Approve { id, rollback_file } => {
            let v = parse(&get(c, id).await?)?;
            let path = rollback_file.unwrap_or_else(|| {
                format!(
                    "guardian-rollback-{}-{id}.json",
                    v["execution"]["cluster"].as_str().unwrap_or("cluster")
                )
                .into()
            });
            std::fs::write(&path, format!("{:#}\n", kafka_json(&v, true))).map_err(|e| {
                CliError::Other(anyhow::anyhow!(
                    "writing the rollback file {}: {e} (nothing approved)",
                    path.display()
                ))
            })?;
            eprintln!(
                "rollback file: {} (the assignment before execution {id}; `kafka-reassign-partitions --execute --reassignment-json-file` restores it, or `guardian rebalance revert {id}`)",
                path.display()
            );
            control(c, id, "approve").await
        }
        RebalanceCmd::Revert { id, p } => {
            let v = parse(&get(c, id).await?)?;
            let cluster = v["execution"]["cluster"].as_str().unwrap_or("").to_string();
            super::workflow::propose(
                c,
                &cluster,
                serde_json::json!({"kind": "revert", "of": id}),
                p,
            )
            .await
        }
        RebalanceCmd::Cancel { id } => control(c, id, "cancel").await,
        RebalanceCmd::Pause { id } => control(c, id, "pause").await,
        RebalanceCmd::Resume { id } => control(c, id, "resume").await,
    }
}

async fn get(c: &Ctx, id: u64) -> Result<pb::ExecutionJson, CliError> {
    Ok(c.client
        .call(|mut s| async move {
            s.get_execution(pb::GetExecutionRequest { id, stale: false })
                .await
        })
        .await?)
}

fn parse(r: &pb::ExecutionJson) -> Result<Value, CliError> {
    serde_json::from_str(&r.json)
        .map_err(|e| CliError::Other(anyhow::anyhow!("bad execution JSON: {e}")))
}

/// An execution's plan (or, `rollback`, the assignment before it) in the
/// stock `kafka-reassign-partitions` format — `version`, `partitions`
/// with `replicas` and `log_dirs` ("any" where no dir is named) — and,
/// under `guardian`, the execution, its throttle configs and (rollback)
/// its ledger of prior values.
fn kafka_json(v: &Value, rollback: bool) -> Value {
    let e = &v["execution"];
    let ints = |x: &Value| -> Vec<i64> {
        x.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect()
    };
    let dir_of = |dirs: &Value, b: i64| -> String {
        dirs.as_array()
            .into_iter()
            .flatten()
            .find(|d| d[0].as_i64() == Some(b))
            .and_then(|d| d[1].as_str())
            .unwrap_or("any")
            .to_string()
    };
    let partitions: Vec<Value> = v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let (replicas, dirs) = if rollback {
                (ints(&t["original"]), &t["original_dirs"])
            } else {
                (ints(&t["target"]), &t["dirs"])
            };
            let log_dirs: Vec<String> = replicas.iter().map(|b| dir_of(dirs, *b)).collect();
            serde_json::json!({
                "topic": t["topic"], "partition": t["partition"],
                "replicas": replicas, "log_dirs": log_dirs,
            })
        })
        .collect();
    let mut guardian = serde_json::json!({
        "execution": e["id"], "cluster": e["cluster"], "kind": e["kind"],
    });
    if rollback {
        guardian["ledger"] = e["ledger"].clone();
    } else {
        guardian["throttles"] = v["planned_throttles"].clone();
    }
    serde_json::json!({"version": 1, "partitions": partitions, "guardian": guardian})
}

async fn control(c: &Ctx, id: u64, action: &str) -> Result<(), CliError> {
    let r = c
        .client
        .call(|mut s| {
            let action = action.to_string();
            async move {
                s.control_execution(pb::ControlExecutionRequest { id, action })
                    .await
            }
        })
        .await?;
    print(c, r)
}
