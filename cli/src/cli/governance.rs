//! Live governance from the command line: the event log (`events`,
//! `--follow`), the throttles Guardian holds (`throttle list|clear`), the
//! leader's abnormal-behaviour queue per disk (`abnormal`), and a
//! broker's host overrides (`broker set`).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Subcommand;
use guardian_proto::pb;
use serde_json::{json, Value};

use super::{CliError, Ctx};

#[derive(Subcommand, Debug)]
pub enum ThrottleCmd {
    /// Every throttle Guardian holds: target, value, reason, since, expiry, owner.
    List {
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Remove one now (its prior value restored); not set again for one
    /// claim TTL even if its cause persists.
    Clear { id: u64 },
}

fn parse(json: &str) -> Result<Value, CliError> {
    serde_json::from_str(json)
        .map_err(|e| CliError::Other(anyhow::anyhow!("bad JSON from the server: {e}")))
}

fn ago(now: u64, at: u64) -> String {
    if at > now {
        format!("in {} s", (at - now) / 1000)
    } else {
        format!("{} s ago", (now - at) / 1000)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn target(t: &Value) -> String {
    let name = |v: &Value| match v.as_str() {
        Some("") => "<default>".to_string(),
        Some(s) => s.to_string(),
        None => String::new(),
    };
    match t["kind"].as_str() {
        Some("client_quota") => {
            let mut p = Vec::new();
            if !t["user"].is_null() {
                p.push(format!("user={}", name(&t["user"])));
            }
            if !t["client_id"].is_null() {
                p.push(format!("client-id={}", name(&t["client_id"])));
            }
            format!("quota {} consumer_byte_rate", p.join(","))
        }
        Some("broker_config") => format!("broker {} {}", t["broker"], name(&t["key"])),
        Some("topic_config") => format!("topic {} {}", name(&t["topic"]), name(&t["key"])),
        _ => t.to_string(),
    }
}

pub async fn throttle(c: &Ctx, cmd: ThrottleCmd) -> Result<(), CliError> {
    let (r, cleared) = match cmd {
        ThrottleCmd::List { cluster } => {
            let req = pb::ListThrottlesRequest {
                cluster: cluster.unwrap_or_default(),
                stale: false,
            };
            let r = c
                .client
                .call(|mut s| {
                    let req = req.clone();
                    async move { s.list_throttles(req).await }
                })
                .await?;
            (r, false)
        }
        ThrottleCmd::Clear { id } => {
            let r = c
                .client
                .call(
                    |mut s| async move { s.clear_throttle(pb::ClearThrottleRequest { id }).await },
                )
                .await?;
            (r, true)
        }
    };
    let v = parse(&r.json)?;
    let t = now();
    let mut lines = String::new();
    if cleared {
        lines.push_str("cleared:\n");
    }
    lines.push_str(&format!(
        "{:>4}  {:<10} {:<48} {:>12} {:<9} {:<12} {:<12} REASON\n",
        "ID", "CLUSTER", "TARGET", "VALUE", "STATE", "SINCE", "EXPIRES"
    ));
    for x in v.as_array().into_iter().flatten() {
        lines.push_str(&format!(
            "{:>4}  {:<10} {:<48} {:>12} {:<9} {:<12} {:<12} {} (owner {})\n",
            x["id"],
            x["cluster"].as_str().unwrap_or(""),
            target(&x["target"]),
            x["value"].as_str().unwrap_or(""),
            x["state"].as_str().unwrap_or(""),
            ago(t, x["since_ms"].as_u64().unwrap_or(0)),
            ago(t, x["expires_ms"].as_u64().unwrap_or(0)),
            x["reason"].as_str().unwrap_or(""),
            x["owner"].as_str().unwrap_or(""),
        ));
    }
    c.out.json_or_line(v, lines.trim_end().to_string());
    Ok(())
}

/// `guardian abnormal --cluster C`.
pub async fn abnormal(c: &Ctx, cluster: String) -> Result<(), CliError> {
    let r = c
        .client
        .call(|mut s| {
            let cluster = cluster.clone();
            async move { s.get_abnormal(pb::AbnormalRequest { cluster }).await }
        })
        .await?;
    let v = parse(&r.json)?;
    let mut out = format!(
        "cluster {cluster}, mode {}, {}\n",
        v["mode"].as_str().unwrap_or(""),
        ago(now(), v["at_ms"].as_u64().unwrap_or(0))
    );
    for b in v["plan"]["brokers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "broker {}: page cache {} bytes, inserts {:.0} bytes/s, residency {}, cold reads {:.0} bytes/s\n",
            b["broker"],
            b["page_cache_bytes"],
            b["insert_rate"].as_f64().unwrap_or(0.0),
            b["residency_s"].as_f64().map_or("-".into(), |t| format!("{t:.1} s")),
            b["cold_read_rate"].as_f64().unwrap_or(0.0),
        ));
    }
    for d in v["plan"]["disks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "disk broker {} {}: write {:.0} (budget {}), read {:.0} (budget {}) bytes/s\n",
            d["broker"],
            d["dir"].as_str().unwrap_or(""),
            d["write"].as_f64().unwrap_or(0.0),
            d["write_budget"],
            d["read"].as_f64().unwrap_or(0.0),
            d["read_budget"],
        ));
        for a in d["abnormal"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<18} {:<12} {:>12.0} bytes/s  {}\n",
                a["behaviour"].as_str().unwrap_or(""),
                a["partition"].as_str().unwrap_or(""),
                a["bytes_per_sec"].as_f64().unwrap_or(0.0),
                a["cause"].as_str().unwrap_or("")
            ));
        }
    }
    for m in v["plan"]["migrate_away"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "migrate away: {}\n",
            m["reason"].as_str().unwrap_or("")
        ));
    }
    for w in v["cannot"].as_array().into_iter().flatten() {
        out.push_str(&format!("no lever: {}\n", w.as_str().unwrap_or("")));
    }
    for w in v["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("warning: {}\n", w.as_str().unwrap_or("")));
    }
    c.out.json_or_line(v, out.trim_end().to_string());
    Ok(())
}

fn event_line(e: &Value) -> String {
    format!(
        "{:>6} {} {:<10} {:<18} {:<24} {}",
        e["seq"],
        e["at_ms"],
        e["cluster"].as_str().unwrap_or(""),
        e["kind"].as_str().unwrap_or(""),
        e["subject"].as_str().unwrap_or(""),
        e["text"].as_str().unwrap_or("")
    )
}

/// `guardian events [--cluster C] [--after SEQ] [--follow]`.
pub async fn events(
    c: &Ctx,
    cluster: Option<String>,
    after: u64,
    follow: bool,
) -> Result<(), CliError> {
    let cluster = cluster.unwrap_or_default();
    let mut after = after;
    let mut all = Vec::new();
    loop {
        let req = pb::ListEventsRequest {
            cluster: cluster.clone(),
            after_seq: after,
            limit: 0,
            stale: false,
        };
        let r = c
            .client
            .call(|mut s| {
                let req = req.clone();
                async move { s.list_events(req).await }
            })
            .await?;
        let v = parse(&r.json)?;
        let evs = v.as_array().cloned().unwrap_or_default();
        after = r.last_seq;
        if follow {
            for e in &evs {
                if c.out.format == super::Format::Json {
                    println!("{e}");
                } else {
                    println!("{}", event_line(e));
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let more = !evs.is_empty() && evs.len() >= 1000;
        all.extend(evs);
        if !more {
            break;
        }
    }
    let lines: Vec<String> = all.iter().map(event_line).collect();
    c.out.json_or_line(Value::Array(all), lines.join("\n"));
    Ok(())
}

fn parse_budget(s: &str) -> Result<(String, f64), String> {
    let (dir, rate) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected DIR=BYTES (per second)"))?;
    let rate = super::parse_bytes(rate.trim_end_matches("/s"))?;
    Ok((dir.to_string(), rate as f64))
}

#[derive(clap::Args, Debug)]
pub struct HostArgs {
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub id: i32,
    /// The page cache the broker's data can use (e.g. 64GiB), instead of
    /// the reporter's figure.
    #[arg(long, value_parser = super::parse_bytes)]
    pub page_cache_bytes: Option<u64>,
    /// A disk's write budget, DIR=BYTES/s (repeat).
    #[arg(long = "disk-write-budget", value_parser = parse_budget)]
    pub write: Vec<(String, f64)>,
    /// A disk's read budget, DIR=BYTES/s (repeat).
    #[arg(long = "disk-read-budget", value_parser = parse_budget)]
    pub read: Vec<(String, f64)>,
    /// Remove every override of the broker.
    #[arg(long)]
    pub clear: bool,
}

/// `guardian broker set`.
pub async fn set_host(c: &Ctx, a: HostArgs) -> Result<(), CliError> {
    let host = if a.clear {
        json!({})
    } else {
        json!({
            "page_cache_bytes": a.page_cache_bytes,
            "write_budgets": a.write.into_iter().collect::<BTreeMap<_, _>>(),
            "read_budgets": a.read.into_iter().collect::<BTreeMap<_, _>>(),
        })
    };
    let req = pb::SetBrokerHostRequest {
        cluster: a.cluster.clone(),
        broker_id: a.id,
        host_json: host.to_string(),
    };
    c.client
        .call(|mut s| {
            let req = req.clone();
            async move { s.set_broker_host(req).await }
        })
        .await?;
    c.out.done(&format!(
        "broker {} of cluster {}: host overrides {}",
        a.id,
        a.cluster,
        if a.clear {
            "cleared".to_string()
        } else {
            host.to_string()
        }
    ));
    Ok(())
}
