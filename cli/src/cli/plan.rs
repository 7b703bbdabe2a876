//! `guardian plan …`: the planners as a what-if tool, run locally (no
//! controller needed) on a generated scenario or a cluster given as JSON.

use std::io::Read;
use std::time::Instant;

use clap::{Args, Subcommand};
use guardian_planner::generate::{scenario, SCENARIOS};
use guardian_planner::{
    place, plan, plan_throttles, verify, ClusterModel, ClusterSpec, Goals, NewTopic, PlanOptions,
    ThrottleOptions,
};
use serde_json::{json, Value};

use super::{CliError, Format};

#[derive(Subcommand, Debug)]
pub enum PlanCmd {
    /// Plan a balanced cluster and print the verifier's before/after table.
    Simulate(SimulateArgs),
    /// Print a generated scenario as cluster JSON (the --from-file format).
    Generate(SourceArgs),
    /// Place a new topic (JSON: name, partitions, replication_factor,
    /// bytes_in_per_partition, size_per_partition, pool, policy).
    Place {
        #[command(flatten)]
        source: SourceArgs,
        /// The topic request as JSON, or a file holding it.
        #[arg(long)]
        topic: String,
    },
    /// Page-cache model: residency, abnormal disk I/O, throttles, migrate-away.
    Throttle {
        #[command(flatten)]
        source: SourceArgs,
        /// Decision time (ms since the epoch) the actions' expiry counts from.
        #[arg(long, default_value_t = 0)]
        now_ms: u64,
    },
}

#[derive(Args, Debug)]
pub struct SourceArgs {
    /// A generated cluster (see `--scenario list`).
    #[arg(long, default_value = "g1k", conflicts_with = "from_file")]
    pub scenario: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A cluster model as JSON (`-` = stdin); format in the README.
    #[arg(long)]
    pub from_file: Option<String>,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Override a goal, NAME=VALUE (disk_bytes=1.05, nw_in=1.2, max_disk_fill=0.9, …).
    #[arg(long = "goal")]
    pub goals: Vec<String>,
    /// Concurrent moves per broker per batch.
    #[arg(long, default_value_t = 5)]
    pub max_moves_per_broker: u32,
    /// Concurrent moves per disk per batch.
    #[arg(long, default_value_t = 2)]
    pub max_moves_per_disk: u32,
    /// Include the batches (actions in Kafka's terms, predicted load after
    /// each) in the JSON as `plan`.
    #[arg(long)]
    pub actions: bool,
}

pub(super) fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

fn load(src: &SourceArgs) -> Result<(String, ClusterModel), CliError> {
    let (label, spec) = match &src.from_file {
        Some(path) => {
            let mut text = String::new();
            if path == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| usage(format!("stdin: {e}")))?;
            } else {
                text = std::fs::read_to_string(path).map_err(|e| usage(format!("{path}: {e}")))?;
            }
            let spec: ClusterSpec =
                serde_json::from_str(&text).map_err(|e| usage(format!("{path}: {e}")))?;
            (path.clone(), spec)
        }
        None => (
            src.scenario.clone(),
            scenario(&src.scenario, src.seed).map_err(usage)?,
        ),
    };
    let m = ClusterModel::from_spec(&spec).map_err(|e| usage(format!("{label}: {e}")))?;
    Ok((label, m))
}

pub(super) fn print(format: Format, v: &Value, table: impl FnOnce() -> String) {
    match format {
        Format::Json | Format::KafkaJson => println!("{v}"),
        Format::Table => print!("{}", table()),
    }
}

pub fn run(format: Format, cmd: PlanCmd) -> Result<(), CliError> {
    match cmd {
        PlanCmd::Simulate(a) if a.source.scenario == "list" => {
            for (name, what) in SCENARIOS {
                println!("{name:<14} {what}");
            }
            Ok(())
        }
        PlanCmd::Simulate(a) => simulate(format, a),
        PlanCmd::Generate(src) => {
            let spec = scenario(&src.scenario, src.seed).map_err(usage)?;
            println!("{}", serde_json::to_string(&spec).map_err(usage)?);
            Ok(())
        }
        PlanCmd::Place { source, topic } => {
            let (_, m) = load(&source)?;
            let text = if topic.trim_start().starts_with('{') {
                topic
            } else {
                std::fs::read_to_string(&topic).map_err(|e| usage(format!("{topic}: {e}")))?
            };
            let t: NewTopic =
                serde_json::from_str(&text).map_err(|e| usage(format!("--topic: {e}")))?;
            let t0 = Instant::now();
            let p = place(&m, &t).map_err(|e| usage(format!("placement: {e}")))?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let v = json!({"topic": p.topic, "place_ms": ms, "partitions": p.partitions.iter().map(|r| r.iter().map(|(b, d)| json!({"broker": b, "dir": d})).collect::<Vec<_>>()).collect::<Vec<_>>()});
            print(format, &v, || {
                let mut s = format!("{} partitions placed in {ms:.1} ms\n", p.partitions.len());
                for (i, r) in p.partitions.iter().enumerate() {
                    let reps: Vec<String> = r.iter().map(|(b, d)| format!("{b}:{d}")).collect();
                    s += &format!("{}-{i}\t{}\n", p.topic, reps.join(" "));
                }
                s
            });
            Ok(())
        }
        PlanCmd::Throttle { source, now_ms } => {
            let (_, m) = load(&source)?;
            let o = ThrottleOptions {
                now_ms,
                ..ThrottleOptions::default()
            };
            let t0 = Instant::now();
            let p = plan_throttles(&m, &o);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let mut v = serde_json::to_value(&p).map_err(usage)?;
            v["plan_ms"] = json!(ms);
            print(format, &v, || {
                let mut s = format!(
                    "throttle plan in {ms:.1} ms: {} disks with abnormal I/O, {} actions, {} migrate-away\n",
                    p.disks.len(),
                    p.actions.len(),
                    p.migrate_away.len()
                );
                for d in p.disks.iter().take(10) {
                    s += &format!(
                        "{}:{} write {:.1} MB/s read {:.1} MB/s\n",
                        d.broker,
                        d.dir,
                        d.write / 1e6,
                        d.read / 1e6
                    );
                    for a in d.abnormal.iter().take(3) {
                        s += &format!(
                            "  {:?} {} {:.2} MB/s: {}\n",
                            a.behaviour,
                            a.partition,
                            a.bytes_per_sec / 1e6,
                            a.cause
                        );
                    }
                }
                for a in p.actions.iter().take(20) {
                    s += &format!("{}\n", serde_json::to_string(a).unwrap_or_default());
                }
                s
            });
            Ok(())
        }
    }
}

fn simulate(format: Format, a: SimulateArgs) -> Result<(), CliError> {
    let mut goals = Goals::default();
    for g in &a.goals {
        let (k, v) = g
            .split_once('=')
            .ok_or_else(|| usage(format!("--goal {g}: expected NAME=VALUE")))?;
        let v: f64 = v
            .parse()
            .map_err(|_| usage(format!("--goal {g}: {v:?} is not a number")))?;
        goals.set(k, v).map_err(|e| usage(format!("--goal {e}")))?;
    }
    let opts = PlanOptions {
        max_moves_per_broker: a.max_moves_per_broker.max(1),
        max_moves_per_disk: a.max_moves_per_disk.max(1),
        ..PlanOptions::default()
    };
    let (label, m) = load(&a.source)?;
    let t0 = Instant::now();
    let p = plan(&m, &goals, &opts).map_err(usage)?;
    let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
    let r = verify(&m, &p, &goals);
    let stats = |s: &std::collections::BTreeMap<
        guardian_planner::Resource,
        guardian_planner::stats::Stat,
    >| {
        s.iter()
            .map(|(k, v)| (k.name().to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let mut v = json!({
        "cluster": label,
        "seed": if a.source.from_file.is_some() { Value::Null } else { json!(a.source.seed) },
        "brokers": m.brokers.len(),
        "disks": m.disks.len(),
        "partitions": m.partitions.len(),
        "replicas": m.replicas.len(),
        "plan_ms": plan_ms,
        "moves": r.moves,
        "inter_broker_moves": r.inter_broker_moves,
        "intra_broker_moves": r.intra_broker_moves,
        "leader_moves": r.leader_moves,
        "batches": r.batches,
        "bytes_moved": r.bytes_moved,
        "bytes_lower_bound": r.bytes_lower_bound,
        "bytes_over_lower_bound": r.bytes_over_lower_bound,
        "hard_violations": r.hard_violations,
        "hard_violations_before": r.hard_violations_before,
        "unplaced": p.unplaced,
        "feasibility": r.feasibility.iter().map(|(k, v)| (k.name().to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "before": stats(&r.before),
        "after": stats(&r.after),
        "goals": goals,
    });
    if a.actions {
        let batches: Vec<Value> = p
            .in_kafka_terms(&m)
            .into_iter()
            .zip(&p.batches)
            .map(|(actions, b)| {
                let predicted: serde_json::Map<_, _> = b
                    .predicted
                    .iter()
                    .map(|(r, x)| (r.name().to_string(), json!(x)))
                    .collect();
                json!({"bytes": b.bytes, "predicted_max_over_mean": predicted, "actions": actions})
            })
            .collect();
        v["plan"] = Value::Array(batches);
    }
    print(format, &v, || {
        format!(
            "{label}: {} brokers, {} disks, {} replicas; planned in {plan_ms:.0} ms\n{}",
            m.brokers.len(),
            m.disks.len(),
            m.replicas.len(),
            r.table()
        )
    });
    if r.hard_violations.is_empty() {
        Ok(())
    } else {
        Err(CliError::Other(anyhow::anyhow!(
            "{} hard constraint violation(s) remain after the plan",
            r.hard_violations.len()
        )))
    }
}
