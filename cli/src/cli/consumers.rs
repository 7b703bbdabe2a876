//! `guardian consumers …`: consumer scheduling — worker pools, bindings of
//! a topic's group to pools with ratios, the workers and the plan (on the
//! controller), and `simulate`, the consumer planner run locally on a
//! generated worker fleet (what-if, no controller needed).

use std::time::Instant;

use clap::{Args, Subcommand};
use guardian_planner::consumer::{plan_consumers, ConsumerOptions, ConsumerPlan, Worker};
use guardian_planner::generate::{fleet, FleetParams};
use serde_json::{json, Value};

use guardian_controller::client::ConsumersStub;
use guardian_proto::pb;

use super::plan::{print, usage};
use super::{CliError, Ctx, Format};

#[derive(Subcommand, Debug)]
pub enum ConsumersCmd {
    /// Plan a generated worker fleet: plan time, CPU spread and its bound,
    /// then the replan after one worker joins (its moves against its fair
    /// share).
    Simulate(SimulateArgs),
    /// Worker pools (virtual consumer clusters).
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Bind a topic's consumer group to pools: `--pool P=70 --pool Q=30`
    /// splits its partitions 70/30 between the pools' workers.
    Bind(BindArgs),
    /// Stop scheduling a topic's group (its plan is dropped).
    Unbind(KeyArgs),
    /// Workers: pool, capacity, last heartbeat, partitions run and owned.
    Workers,
    /// Every bound partition's owner and state (running, starting,
    /// handing-off).
    Plan,
    /// Pools (with the autoscaling signal), workers and bindings (with
    /// lag and its status) at a glance.
    Status,
    /// Lag per partition of a topic: the leader's latest reading and its
    /// status for each bound group (or the one named; an unbound group is
    /// read from Kafka now). For lag-aware producers.
    Lag(LagArgs),
}

#[derive(Args, Debug)]
pub struct LagArgs {
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub topic: String,
    /// One group (default: every group bound to the topic).
    #[arg(long, default_value = "")]
    pub group: String,
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Refused while a binding names it or a worker is in it.
    Delete {
        name: String,
    },
    List,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub group: String,
}

#[derive(Args, Debug)]
pub struct BindArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// POOL=RATIO (repeatable; RATIO defaults to 1).
    #[arg(long = "pool", required = true)]
    pub pools: Vec<String>,
}

/// Whether the command runs locally (no controller).
pub fn is_local(cmd: &ConsumersCmd) -> bool {
    matches!(cmd, ConsumersCmd::Simulate(_))
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = 3000)]
    pub partitions: u32,
    #[arg(long, default_value_t = 200)]
    pub workers: u32,
    #[arg(long, default_value_t = 1)]
    pub pools: u32,
    /// σ of the lognormal per-partition CPU (0: all equal).
    #[arg(long, default_value_t = 1.0)]
    pub skew: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Half-width of the balance band around each pool's mean utilisation.
    #[arg(long, default_value_t = 0.05)]
    pub tolerance: f64,
}

fn pools_json(p: &ConsumerPlan) -> Value {
    json!(p
        .pools
        .iter()
        .map(|x| json!({
            "pool": x.pool,
            "workers": x.workers,
            "partitions": x.partitions,
            "load": x.load,
            "capacity": x.capacity,
            "mean_utilization": x.mean_utilization,
            "max_utilization": x.max_utilization,
            "cpu_spread": x.cpu_spread,
            "spread_bound": x.spread_bound,
        }))
        .collect::<Vec<_>>())
}

/// The bindings with each partition's owner from `plan`.
fn simulate(format: Format, a: SimulateArgs) -> Result<(), CliError> {
    if a.workers == 0 || a.partitions == 0 {
        return Err(usage("--workers and --partitions must be > 0"));
    }
    if !(a.skew.is_finite() && a.skew >= 0.0) {
        return Err(usage("--skew must be a number >= 0"));
    }
    let params = FleetParams {
        partitions: a.partitions,
        workers: a.workers,
        pools: a.pools.max(1),
        skew: a.skew,
    };
    let (mut workers, bindings) = fleet(&params, a.seed);
    let opts = ConsumerOptions {
        tolerance: a.tolerance,
        ..ConsumerOptions::default()
    };
    let t0 = Instant::now();
    let first = plan_consumers(&workers, &bindings, &opts).map_err(usage)?;
    let plan_ms = t0.elapsed().as_secs_f64() * 1e3;

    // One worker joins the busiest pool (as the source article places a
    // new pod), with the fleet's most common capacity.
    let busiest = first
        .pools
        .iter()
        .max_by(|x, y| x.mean_utilization.total_cmp(&y.mean_utilization))
        .map(|x| x.pool.clone())
        .unwrap_or_default();
    let joined = Worker {
        id: "joined".into(),
        pool: busiest.clone(),
        capacity: 2.0,
    };
    workers.push(joined.clone());
    let current = first.apply(&bindings);
    let t1 = Instant::now();
    let next = plan_consumers(&workers, &current, &opts).map_err(usage)?;
    let replan_ms = t1.elapsed().as_secs_f64() * 1e3;
    let pool = next.pools.iter().find(|x| x.pool == busiest);
    let fair = pool.map_or(0.0, |x| x.mean_utilization * joined.capacity);
    let moved: f64 = next.moves.iter().map(|m| m.weight).sum();
    let to_new = next.moves.iter().filter(|m| m.to == joined.id).count();

    let v = json!({
        "partitions": a.partitions,
        "workers": a.workers,
        "pools": a.pools.max(1),
        "bindings": bindings.len(),
        "skew": a.skew,
        "seed": a.seed,
        "tolerance": a.tolerance,
        "plan_ms": plan_ms,
        "cpu_spread": first.cpu_spread,
        "spread_bound": first.spread_bound,
        "placed": first.placed,
        "unassigned": first.unassigned.len(),
        "per_pool": pools_json(&first),
        "join": {
            "pool": busiest,
            "replan_ms": replan_ms,
            "moves": next.moves.len(),
            "moves_to_new_worker": to_new,
            "moved_weight": moved,
            "fair_share": fair,
            "moved_over_fair_share": if fair > 0.0 { moved / fair } else { 0.0 },
            "cpu_spread": next.cpu_spread,
            "spread_bound": next.spread_bound,
        },
    });
    print(format, &v, || {
        let mut s = format!(
            "{} partitions in {} bindings on {} workers in {} pool(s): planned in {plan_ms:.2} ms\n\
             CPU spread (max utilisation ÷ pool mean − 1): {:.2} % (bound {:.2} %)\n",
            a.partitions,
            bindings.len(),
            a.workers,
            a.pools.max(1),
            first.cpu_spread * 100.0,
            first.spread_bound * 100.0
        );
        for p in &first.pools {
            s += &format!(
                "  {}: {} workers, {} partitions, mean utilisation {:.3}, spread {:.2} % (bound {:.2} %)\n",
                p.pool,
                p.workers,
                p.partitions,
                p.mean_utilization,
                p.cpu_spread * 100.0,
                p.spread_bound * 100.0
            );
        }
        s += &format!(
            "a worker joins {busiest}: replanned in {replan_ms:.2} ms, {} moves ({to_new} to it), moved weight {:.2} × its fair share; spread {:.2} %\n",
            next.moves.len(),
            if fair > 0.0 { moved / fair } else { 0.0 },
            next.cpu_spread * 100.0
        );
        s
    });
    Ok(())
}

pub fn run(format: Format, cmd: ConsumersCmd) -> Result<(), CliError> {
    match cmd {
        ConsumersCmd::Simulate(a) => simulate(format, a),
        _ => unreachable!("remote commands go through remote()"),
    }
}

async fn state(c: &Ctx) -> Result<Value, CliError> {
    let r = c
        .client
        .call_on::<ConsumersStub, _, _, _>(|mut s| async move {
            s.get_consumers(pb::ConsumersRequest { stale: false }).await
        })
        .await?;
    serde_json::from_str(&r.json)
        .map_err(|e| CliError::Other(anyhow::anyhow!("bad JSON from the server: {e}")))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The commands that talk to the controller.
pub async fn remote(c: &Ctx, cmd: ConsumersCmd) -> Result<(), CliError> {
    match cmd {
        ConsumersCmd::Simulate(_) => unreachable!("local"),
        ConsumersCmd::Pool(PoolCmd::Create { name, description }) => {
            c.client
                .call_on::<ConsumersStub, _, _, _>(|mut s| {
                    let r = pb::CreateWorkerPoolRequest {
                        name: name.clone(),
                        description: description.clone(),
                    };
                    async move { s.create_worker_pool(r).await }
                })
                .await?;
            c.out.done(&format!("worker pool {name} created"));
        }
        ConsumersCmd::Pool(PoolCmd::Delete { name }) => {
            c.client
                .call_on::<ConsumersStub, _, _, _>(|mut s| {
                    let r = pb::DeleteWorkerPoolRequest { name: name.clone() };
                    async move { s.delete_worker_pool(r).await }
                })
                .await?;
            c.out.done(&format!("worker pool {name} deleted"));
        }
        ConsumersCmd::Pool(PoolCmd::List) => {
            let v = state(c).await?;
            let mut t = format!("{:<20} {:>7}  DESCRIPTION\n", "POOL", "WORKERS");
            for p in v["pools"].as_array().into_iter().flatten() {
                t += &format!(
                    "{:<20} {:>7}  {}\n",
                    s(&p["name"]),
                    s(&p["workers"]),
                    s(&p["description"])
                );
            }
            c.out
                .json_or_line(v["pools"].clone(), t.trim_end().to_string());
        }
        ConsumersCmd::Bind(a) => {
            let mut pools = Vec::new();
            for p in &a.pools {
                let (pool, ratio) = match p.split_once('=') {
                    Some((n, r)) => (
                        n.to_string(),
                        r.parse::<u32>().map_err(|_| {
                            CliError::Usage(format!(
                                "--pool {p}: the ratio {r:?} is not a whole number"
                            ))
                        })?,
                    ),
                    None => (p.clone(), 1),
                };
                pools.push(pb::PoolRatio { pool, ratio });
            }
            let req = pb::BindRequest {
                cluster: a.key.cluster.clone(),
                topic: a.key.topic.clone(),
                group: a.key.group.clone(),
                pools,
            };
            c.client
                .call_on::<ConsumersStub, _, _, _>(|mut s| {
                    let r = req.clone();
                    async move { s.bind(r).await }
                })
                .await?;
            c.out.done(&format!(
                "{}/{} (group {}) bound to {}",
                a.key.cluster,
                a.key.topic,
                a.key.group,
                a.pools.join(", ")
            ));
        }
        ConsumersCmd::Unbind(k) => {
            let req = pb::UnbindRequest {
                cluster: k.cluster.clone(),
                topic: k.topic.clone(),
                group: k.group.clone(),
            };
            c.client
                .call_on::<ConsumersStub, _, _, _>(|mut s| {
                    let r = req.clone();
                    async move { s.unbind(r).await }
                })
                .await?;
            c.out.done(&format!(
                "{}/{} (group {}) unbound",
                k.cluster, k.topic, k.group
            ));
        }
        ConsumersCmd::Workers => {
            let v = state(c).await?;
            let mut t = format!(
                "{:<16} {:<14} {:>8} {:>10} {:>7} {:>5}\n",
                "WORKER", "POOL", "CAPACITY", "HEARTBEAT", "RUNNING", "OWNS"
            );
            for w in v["workers"].as_array().into_iter().flatten() {
                let hb = w["last_heartbeat_ms_ago"]
                    .as_u64()
                    .map_or("-".to_string(), |ms| {
                        format!("{:.1} s ago", ms as f64 / 1e3)
                    });
                t += &format!(
                    "{:<16} {:<14} {:>8} {:>10} {:>7} {:>5}\n",
                    s(&w["id"]),
                    s(&w["pool"]),
                    s(&w["capacity"]),
                    hb,
                    s(&w["running"]),
                    s(&w["owns"])
                );
            }
            c.out
                .json_or_line(v["workers"].clone(), t.trim_end().to_string());
        }
        ConsumersCmd::Plan => {
            let v = state(c).await?;
            let mut t = format!("epoch {}\n", v["epoch"]);
            for b in v["bindings"].as_array().into_iter().flatten() {
                t += &format!(
                    "{}/{} group {} (epoch {}):\n",
                    s(&b["cluster"]),
                    s(&b["topic"]),
                    s(&b["group"]),
                    b["epoch"]
                );
                for p in b["partitions"].as_array().into_iter().flatten() {
                    t += &format!(
                        "  {:>4}  {:<16} {}\n",
                        p["partition"],
                        s(&p["owner"]),
                        s(&p["state"])
                    );
                }
            }
            c.out.json_or_line(v.clone(), t.trim_end().to_string());
        }
        ConsumersCmd::Status => {
            let v = state(c).await?;
            let mut t = format!("plan epoch {}\n", v["epoch"]);
            for b in v["bindings"].as_array().into_iter().flatten() {
                let parts = b["partitions"].as_array().map_or(0, |p| p.len());
                let running = b["partitions"]
                    .as_array()
                    .map_or(0, |p| p.iter().filter(|x| x["state"] == "running").count());
                let pools: Vec<String> = b["pools"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{}={}", s(&p["pool"]), p["ratio"]))
                    .collect();
                t += &format!(
                    "{}/{} group {}: {running}/{parts} partitions running, pools {}, lag {} ({})\n",
                    s(&b["cluster"]),
                    s(&b["topic"]),
                    s(&b["group"]),
                    pools.join(" "),
                    s(&b["lag"]),
                    s(&b["lag_status"]),
                );
            }
            for p in v["pools"].as_array().into_iter().flatten() {
                let a = &p["autoscaling"];
                t += &format!(
                    "pool {}: {} workers, wants {} ({} partitions, {} lagging, {:.2} cores used)\n",
                    s(&p["name"]),
                    s(&p["workers"]),
                    s(&a["desired"]),
                    s(&a["partitions"]),
                    s(&a["lagging"]),
                    a["cpu_cores"].as_f64().unwrap_or(0.0),
                );
            }
            t += &format!(
                "{} workers in {} pools",
                v["workers"].as_array().map_or(0, |w| w.len()),
                v["pools"].as_array().map_or(0, |p| p.len())
            );
            c.out.json_or_line(v.clone(), t);
        }
        ConsumersCmd::Lag(a) => {
            let req = pb::PartitionLagRequest {
                cluster: a.cluster.clone(),
                topic: a.topic.clone(),
                group: a.group.clone(),
            };
            let r = c
                .client
                .call_on::<ConsumersStub, _, _, _>(|mut s| {
                    let r = req.clone();
                    async move { s.get_partition_lag(r).await }
                })
                .await?;
            let rows: Vec<Value> = r
                .partitions
                .iter()
                .map(|p| {
                    json!({
                        "group": p.group,
                        "partition": p.partition,
                        "committed": p.committed,
                        "log_end": p.log_end,
                        "lag": p.lag,
                        "status": p.status,
                        "age_ms": p.age_ms,
                        "error": (!p.error.is_empty()).then_some(&p.error),
                    })
                })
                .collect();
            let mut t = format!(
                "{:<20} {:>5} {:>12} {:>12} {:>10}  STATUS\n",
                "GROUP", "PART", "COMMITTED", "LOG END", "LAG"
            );
            for p in &r.partitions {
                t += &format!(
                    "{:<20} {:>5} {:>12} {:>12} {:>10}  {}{}\n",
                    p.group,
                    p.partition,
                    p.committed,
                    p.log_end,
                    p.lag,
                    if p.status.is_empty() { "-" } else { &p.status },
                    if p.error.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", p.error)
                    }
                );
            }
            c.out.json_or_line(json!(rows), t.trim_end().to_string());
        }
    }
    Ok(())
}
