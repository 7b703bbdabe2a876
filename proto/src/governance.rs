//! Live governance's replicated records: the **event log** (every decision
//! Guardian makes — throttles set, renewed and removed, proposals,
//! execution steps, healing, reporters stale or rejected — with its
//! cluster, subject, reason and figures) and the **throttle claims** the
//! governance loop holds on a cluster (what it set, what was there
//! before, why, until when).
//!
//! Persisted as JSON inside one protobuf `bytes` field, like the
//! executor's records ([`crate::execution`]): they are Guardian's own data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{validate_name, InvalidField, Valid};

/// Events carried by one log entry.
pub const MAX_EVENTS_PER_ENTRY: usize = 1_000;

/// One decision or observation, in the order Raft applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Assigned at apply, from 1, never reused.
    #[serde(default)]
    pub seq: u64,
    pub at_ms: u64,
    /// The Kafka cluster it concerns (empty: the federation).
    pub cluster: String,
    /// What kind of decision: `throttle.set`, `throttle.renewed`,
    /// `throttle.removed`, `throttle.observed`, `proposal`, `execution`,
    /// `healing`, `reporter` …
    pub kind: String,
    /// What it acted on: `broker 3`, `group g1`, `t-0`, `execution 7` …
    pub subject: String,
    pub text: String,
    /// The figures behind it (bytes/s, seconds, counts).
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
}

// Figures are finite (callers never record NaN), so equality is total.
impl Eq for EventRecord {}

/// How many events the log keeps (oldest dropped first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub max_events: u32,
    /// Events older than this (by the entry's time) are dropped.
    pub max_age_ms: u64,
}

/// What a throttle claim sets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ThrottleTarget {
    /// A client quota (`consumer_byte_rate`) on the entity that wins
    /// Kafka's precedence for the reader: `user` and/or `client_id`
    /// (`Some("")` = the `<default>` entity).
    ClientQuota {
        user: Option<String>,
        client_id: Option<String>,
    },
    /// A broker config key (`leader.replication.throttled.rate`,
    /// `follower.replication.throttled.rate`,
    /// `replica.alter.log.dirs.io.max.bytes.per.second`).
    BrokerConfig { broker: i32, key: String },
    /// A topic config key (`leader.replication.throttled.replicas`,
    /// `follower.replication.throttled.replicas`).
    TopicConfig { topic: String, key: String },
}

impl std::fmt::Display for ThrottleTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |v: &Option<String>| match v.as_deref() {
            Some("") => "<default>".to_string(),
            Some(s) => s.to_string(),
            None => String::new(),
        };
        match self {
            ThrottleTarget::ClientQuota { user, client_id } => {
                let mut parts = Vec::new();
                if user.is_some() {
                    parts.push(format!("user={}", name(user)));
                }
                if client_id.is_some() {
                    parts.push(format!("client-id={}", name(client_id)));
                }
                write!(f, "quota {} consumer_byte_rate", parts.join(","))
            }
            ThrottleTarget::BrokerConfig { broker, key } => write!(f, "broker {broker} {key}"),
            ThrottleTarget::TopicConfig { topic, key } => write!(f, "topic {topic} {key}"),
        }
    }
}

/// Where a claim is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Observe mode: recorded what Guardian would set; nothing written.
    Observed,
    /// Journaled; the value may or may not be in Kafka yet (a crash
    /// between the journal and the write is finished by the next round).
    Applying,
    /// Guardian's value is in force (read back).
    Applied,
    /// Someone else changed the value after Guardian wrote it: left alone,
    /// never restored over theirs.
    Conflict,
}

/// One throttle Guardian holds on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Assigned at apply.
    #[serde(default)]
    pub id: u64,
    pub cluster: String,
    pub target: ThrottleTarget,
    /// The value in force (bytes/s, or a replica list).
    pub value: String,
    /// The entity's own override before Guardian wrote (`None`: there was
    /// none, so removing DELETEs the key).
    pub prior: Option<String>,
    pub state: ClaimState,
    /// Who holds it (`governance`).
    pub owner: String,
    /// The partition, group or broker and the behaviour behind it.
    pub reason: String,
    pub since_ms: u64,
    pub renewed_ms: u64,
    /// Removed (prior restored) at this time unless renewed.
    pub expires_ms: u64,
    /// No later than this, whatever the cause (the cap on its duration).
    pub hard_expiry_ms: u64,
    /// Rounds in a row in which the cause was absent (hysteresis).
    #[serde(default)]
    pub absent_rounds: u32,
}

/// What an operator knows of a broker's host that the reporter cannot
/// measure (or that a test needs fixed): its page cache and disk budgets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostOverrides {
    /// Bytes of page cache the broker's data can use (instead of the
    /// reporter's figure).
    pub page_cache_bytes: Option<u64>,
    /// Per log dir: bytes/s the disk may write / read before Guardian acts.
    pub write_budgets: BTreeMap<String, f64>,
    pub read_budgets: BTreeMap<String, f64>,
}

// Budgets are finite and >= 0 (validated), so equality is total.
impl Eq for HostOverrides {}

impl HostOverrides {
    pub fn is_empty(&self) -> bool {
        *self == HostOverrides::default()
    }
}

/// The governance domain's commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GovernanceCmd {
    /// Appends events (seqs assigned here) and trims by `retention`.
    Events {
        events: Vec<EventRecord>,
        retention: Retention,
    },
    /// Creates (`id` 0) or replaces a claim.
    PutClaim { claim: Box<Claim> },
    /// Forgets a claim (its prior value was restored, or never written).
    DropClaim { id: u64 },
    /// Replaces a broker's host overrides (empty: none).
    SetHost {
        cluster: String,
        broker: i32,
        host: HostOverrides,
    },
}

impl GovernanceCmd {
    pub fn validate(&self) -> Valid {
        match self {
            GovernanceCmd::Events { events, retention } => {
                if events.len() > MAX_EVENTS_PER_ENTRY {
                    return Err(InvalidField::new(
                        "events",
                        format!("at most {MAX_EVENTS_PER_ENTRY} per entry"),
                    ));
                }
                if retention.max_events == 0 {
                    return Err(InvalidField::new("retention.max_events", "must be >= 1"));
                }
                if events.iter().any(|e| e.kind.is_empty()) {
                    return Err(InvalidField::new("events.kind", "must not be empty"));
                }
                Ok(())
            }
            GovernanceCmd::PutClaim { claim } => {
                validate_name("claim.cluster", &claim.cluster)?;
                if claim.value.is_empty() {
                    return Err(InvalidField::new("claim.value", "must not be empty"));
                }
                Ok(())
            }
            GovernanceCmd::DropClaim { .. } => Ok(()),
            GovernanceCmd::SetHost {
                cluster,
                broker,
                host,
            } => {
                validate_name("cluster", cluster)?;
                if *broker < 0 {
                    return Err(InvalidField::new("broker", "must be >= 0"));
                }
                for (field, m) in [
                    ("disk_write_budget", &host.write_budgets),
                    ("disk_read_budget", &host.read_budgets),
                ] {
                    if let Some((d, v)) = m
                        .iter()
                        .find(|(d, v)| d.is_empty() || !v.is_finite() || **v < 0.0)
                    {
                        return Err(InvalidField::new(
                            field,
                            format!("{d:?}={v}: needs a log dir and a finite rate >= 0"),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Rough encoded size, to keep batched log entries bounded.
    pub fn approx_size(&self) -> usize {
        match self {
            GovernanceCmd::Events { events, .. } => {
                256 + events
                    .iter()
                    .map(|e| 128 + e.text.len() + e.subject.len() + 32 * e.figures.len())
                    .sum::<usize>()
            }
            GovernanceCmd::PutClaim { .. }
            | GovernanceCmd::DropClaim { .. }
            | GovernanceCmd::SetHost { .. } => 1024,
        }
    }
}
