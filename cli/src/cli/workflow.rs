//! Operator workflows: topics placed by Guardian, broker decommission and
//! maintenance, pool grow and release, IDC migration, freezing a cluster
//! and exclusions. Each kind of move is a proposal on the executor's
//! procedure (`guardian rebalance show|approve|cancel ID` work on all).

use clap::{Subcommand, ValueEnum};
use guardian_proto::pb;
use serde_json::{json, Value};

use super::{CliError, Ctx};

#[derive(Subcommand, Debug)]
pub enum TopicCmd {
    /// Create a topic with Guardian's placement: brokers and log dirs with
    /// the lowest historical load and room for the expected traffic,
    /// inside the tenant's pool and the IDC policy.
    Create {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        partitions: u32,
        #[arg(long)]
        replication_factor: u32,
        /// The tenant whose pool holds it (recorded: later plans keep it there).
        #[arg(long, default_value = "")]
        tenant: String,
        /// Expected bytes/s produced per partition (e.g. 2MB).
        #[arg(long, default_value = "0", value_parser = super::parse_bytes)]
        bytes_in_per_partition: u64,
        /// Expected bytes per partition at retention (e.g. 50GiB).
        #[arg(long, default_value = "0", value_parser = super::parse_bytes)]
        size_per_partition: u64,
        /// A topic config, KEY=VALUE (repeat).
        #[arg(long = "config", value_parser = parse_kv)]
        configs: Vec<(String, String)>,
        /// Validate through Kafka (CreateTopics validate_only); create nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Move a topic's replicas into one IDC (sets the topic's IDC policy
    /// and proposes the moves).
    MigrateIdc {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        to_idc: String,
        #[command(flatten)]
        p: ProposeArgs,
    },
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct ProposeArgs {
    /// Approve the proposal at once.
    #[arg(long)]
    pub approve: bool,
    /// Plan and print; record and store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))
}

/// Proposes a workflow's plan (see `ProposeRebalance`'s `intent`).
pub async fn propose(
    c: &Ctx,
    cluster: &str,
    intent: Value,
    p: ProposeArgs,
) -> Result<(), CliError> {
    let req = pb::ProposeRebalanceRequest {
        cluster: cluster.to_string(),
        intent: intent.to_string(),
        approve: p.approve,
        dry_run: p.dry_run,
        ..Default::default()
    };
    let r = c
        .client
        .call(|mut s| {
            let req = req.clone();
            async move { s.propose_rebalance(req).await }
        })
        .await?;
    super::rebalance::print(c, r)
}

/// Applies one change to a cluster's controls and prints them.
pub async fn update_controls(c: &Ctx, cluster: &str, cmd: Value) -> Result<(), CliError> {
    let req = pb::UpdateControlsRequest {
        cluster: cluster.to_string(),
        cmd: cmd.to_string(),
    };
    let r = c
        .client
        .call(|mut s| {
            let req = req.clone();
            async move { s.update_controls(req).await }
        })
        .await?;
    print_controls(c, cluster, &r.json)
}

pub async fn show_controls(c: &Ctx, cluster: &str) -> Result<(), CliError> {
    let cluster_s = cluster.to_string();
    let r = c
        .client
        .call(|mut s| {
            let cluster = cluster_s.clone();
            async move {
                s.get_controls(pb::GetControlsRequest {
                    cluster,
                    stale: false,
                })
                .await
            }
        })
        .await?;
    print_controls(c, cluster, &r.json)
}

fn print_controls(c: &Ctx, cluster: &str, json: &str) -> Result<(), CliError> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| CliError::Other(anyhow::anyhow!("bad controls JSON: {e}")))?;
    let list = |k: &str| {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.to_string().trim_matches('"').to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    let map = |k: &str, f: &dyn Fn(&str, &Value) -> String| {
        v[k].as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, x)| f(k, x))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    let line = format!(
        "cluster {cluster}: {}\nexcluded topics: {} (and internal __* topics, unless executor.move-internal-topics)\nexcluded brokers: {}\nmaintenance: {}\ndecommission: {}\nreleasing from pools: {}\ntopic tenants: {}",
        if v["frozen"].as_bool() == Some(true) {
            format!("FROZEN ({})", v["frozen_reason"].as_str().unwrap_or(""))
        } else {
            "actuation on".into()
        },
        list("excluded_topics"),
        list("excluded_brokers"),
        list("maintenance"),
        map("decommission", &|b, s| match s.as_str() {
            Some("empty") => format!("broker {b} empty: ready to shut down"),
            _ => format!("broker {b} draining"),
        }),
        map("releasing", &|b, t| format!("broker {b} from {t}")),
        map("topic_tenants", &|t, x| format!("{t}={}", x.as_str().unwrap_or(""))),
    );
    c.out.json_or_line(v, line);
    Ok(())
}

pub async fn topic(c: &Ctx, cmd: TopicCmd) -> Result<(), CliError> {
    match cmd {
        TopicCmd::Create {
            cluster,
            name,
            partitions,
            replication_factor,
            tenant,
            bytes_in_per_partition,
            size_per_partition,
            configs,
            dry_run,
        } => {
            let req = pb::CreateTopicRequest {
                cluster,
                name,
                partitions,
                replication_factor,
                tenant,
                bytes_in_per_partition: bytes_in_per_partition as f64,
                size_per_partition,
                configs: configs.into_iter().collect(),
                dry_run,
            };
            let r = c
                .client
                .call(|mut s| {
                    let req = req.clone();
                    async move { s.create_topic(req).await }
                })
                .await?;
            let v: Value = serde_json::from_str(&r.json)
                .map_err(|e| CliError::Other(anyhow::anyhow!("bad placement JSON: {e}")))?;
            let mut line = format!(
                "topic {} {} on cluster {}{}:",
                v["topic"].as_str().unwrap_or(""),
                if dry_run {
                    "validated by Kafka (dry run, not created)"
                } else {
                    "created"
                },
                v["cluster"].as_str().unwrap_or(""),
                match v["tenant"].as_str() {
                    Some(t) if !t.is_empty() => format!(" in tenant {t}'s pool"),
                    _ => String::new(),
                }
            );
            for p in v["partitions"].as_array().into_iter().flatten() {
                let reps: Vec<String> = p["replicas"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{}:{}", r["broker"], r["dir"].as_str().unwrap_or("")))
                    .collect();
                line.push_str(&format!("\n  {:>4}  {}", p["partition"], reps.join("  ")));
            }
            for w in v["warnings"].as_array().into_iter().flatten() {
                line.push_str(&format!("\nwarning: {}", w.as_str().unwrap_or("")));
            }
            c.out.json_or_line(v, line);
            Ok(())
        }
        TopicCmd::MigrateIdc {
            cluster,
            topic,
            to_idc,
            p,
        } => {
            propose(
                c,
                &cluster,
                json!({"kind": "migrate_idc", "topic": topic, "idc": to_idc}),
                p,
            )
            .await
        }
    }
}

pub async fn decommission(c: &Ctx, cluster: &str, id: i32, p: ProposeArgs) -> Result<(), CliError> {
    propose(c, cluster, json!({"kind": "decommission", "broker": id}), p).await
}

pub async fn maintenance(c: &Ctx, cluster: &str, id: i32, on: OnOff) -> Result<(), CliError> {
    update_controls(
        c,
        cluster,
        json!({"maintenance": {"broker": id, "on": on == OnOff::On}}),
    )
    .await
}

pub async fn exclude_brokers(
    c: &Ctx,
    cluster: &str,
    ids: &[i32],
    remove: bool,
) -> Result<(), CliError> {
    update_controls(
        c,
        cluster,
        json!({"exclude_brokers": {"ids": ids, "remove": remove}}),
    )
    .await
}

pub async fn exclude_topics(
    c: &Ctx,
    cluster: &str,
    patterns: &[String],
    remove: bool,
) -> Result<(), CliError> {
    update_controls(
        c,
        cluster,
        json!({"exclude_topics": {"patterns": patterns, "remove": remove}}),
    )
    .await
}

pub async fn freeze(c: &Ctx, cluster: &str, frozen: bool, reason: &str) -> Result<(), CliError> {
    update_controls(
        c,
        cluster,
        json!({"freeze": {"frozen": frozen, "reason": reason}}),
    )
    .await
}
