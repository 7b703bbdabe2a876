//! From the throttle planner's actions to claims in Kafka's own knobs, and
//! back: what Guardian wants now ([`wants`]), where a reader's quota must
//! be written for Kafka to apply it ([`resolve_quota`]), and writing and
//! restoring a claim's target ([`current`], [`set`]; the loop restores the prior value).
//!
//! Kafka applies the **most specific** matching quota entity: user +
//! client-id, user + default client, user, default user + client-id,
//! default user + default client, default user, client-id, default
//! client-id. A `client-id` quota is silently ignored whenever any user
//! or default-user quota matches, so the level written is the one that
//! wins for the reader — never an operator's own entity, which is left
//! alone.

use guardian_kafka::types::{
    AlterConfigOp, ConfigResource, ConfigSource, QuotaEntity, QuotaEntry, QuotaMatch,
};
use guardian_kafka::{KafkaAdmin, KafkaError};
use guardian_planner::throttle::{ThrottleAction, ThrottlePlan};
use guardian_proto::governance::ThrottleTarget;

/// The quota key governance sets.
pub const CONSUMER_RATE: &str = "consumer_byte_rate";

/// A throttle the plan wants in force now.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub target: ThrottleTarget,
    pub value: String,
    pub reason: String,
    /// The rate behind it (bytes/s), for the events.
    pub rate: f64,
}

/// Where `client_id`'s consumer quota must be written so Kafka applies
/// it, given every quota entity the cluster has; or why it cannot be.
pub fn resolve_quota(
    entries: &[QuotaEntry],
    client_id: &str,
) -> Result<(ThrottleTarget, String), String> {
    let has = |e: &QuotaEntry, user: Option<Option<&str>>, client: Option<Option<&str>>| {
        let get = |t: &str| {
            e.entity
                .0
                .iter()
                .find(|(x, _)| x == t)
                .map(|(_, n)| n.as_deref())
        };
        get("user") == user
            && get("client-id") == client
            && e.values.iter().any(|(k, _)| k == CONSUMER_RATE)
    };
    let value = |e: &QuotaEntry| {
        e.values
            .iter()
            .find(|(k, _)| k == CONSUMER_RATE)
            .map_or(0.0, |(_, v)| *v)
    };
    let named_users = entries
        .iter()
        .any(|e| e.entity.0.iter().any(|(t, n)| t == "user" && n.is_some()));
    let note = if named_users {
        " (readers authenticated as a user with a quota of its own are not limited by it)"
    } else {
        ""
    };
    if let Some(e) = entries
        .iter()
        .find(|e| has(e, Some(None), Some(Some(client_id))))
    {
        return Err(format!(
            "the operator's quota user=<default>,client-id={client_id} ({} bytes/s) is in force: left alone",
            value(e)
        ));
    }
    let default_user = entries
        .iter()
        .find(|e| has(e, Some(None), Some(None)) || has(e, Some(None), None));
    if let Some(e) = default_user {
        return Ok((
            ThrottleTarget::ClientQuota {
                user: Some(String::new()),
                client_id: Some(client_id.to_string()),
            },
            format!(
                "written at user=<default>,client-id={client_id}: the default-user quota {} ({} bytes/s) would shadow a client-id quota{note}",
                e.entity,
                value(e)
            ),
        ));
    }
    if let Some(e) = entries.iter().find(|e| has(e, None, Some(Some(client_id)))) {
        return Err(format!(
            "the operator's quota client-id={client_id} ({} bytes/s) is in force: left alone",
            value(e)
        ));
    }
    Ok((
        ThrottleTarget::ClientQuota {
            user: None,
            client_id: Some(client_id.to_string()),
        },
        format!("written at client-id={client_id}{note}"),
    ))
}

/// The Kafka quota entity of a client-quota target.
pub fn quota_entity(t: &ThrottleTarget) -> Option<QuotaEntity> {
    let ThrottleTarget::ClientQuota { user, client_id } = t else {
        return None;
    };
    let name = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let mut parts = Vec::new();
    if let Some(u) = user {
        parts.push(("user".to_string(), name(u)));
    }
    if let Some(c) = client_id {
        parts.push(("client-id".to_string(), name(c)));
    }
    Some(QuotaEntity(parts))
}

/// The client id the governance inputs give a group whose reader cannot
/// be named (no members: it uses `assign()`), so its cold reads are still
/// found and reported.
pub fn unnamed(group: &str) -> String {
    format!("\u{0}group:{group}")
}

fn unnamed_group(client_id: &str) -> Option<&str> {
    client_id.strip_prefix("\u{0}group:")
}

/// What the plan wants, in claims: a quota per cold reader (at the level
/// that wins, never below the bytes-in of what it reads, so it can catch
/// up and the quota can lift), replication throttles and the copy rate —
/// the latter two only when `replication` is allowed (no execution owns
/// those keys on the cluster). Also returns what could not be acted on.
pub fn wants(
    plan: &ThrottlePlan,
    quotas: &[QuotaEntry],
    held: &[ThrottleTarget],
    floor_of: &dyn Fn(&str) -> f64,
    replication: bool,
) -> (Vec<Want>, Vec<String>) {
    let mut out: Vec<Want> = Vec::new();
    let mut cannot = Vec::new();
    // Guardian's own quotas are not the operator's: resolved past them.
    let held_entities: Vec<QuotaEntity> = held
        .iter()
        .filter_map(quota_entity)
        .map(normalized)
        .collect();
    let quotas: Vec<QuotaEntry> = quotas
        .iter()
        .filter(|q| !held_entities.contains(&normalized(q.entity.clone())))
        .cloned()
        .collect();
    let quotas = quotas.as_slice();
    let push = |w: Want, out: &mut Vec<Want>| {
        // One claim per target: the strictest wins.
        match out.iter_mut().find(|x| x.target == w.target) {
            Some(x) if num(&w.value) < num(&x.value) => *x = w,
            Some(_) => {}
            None => out.push(w),
        }
    };
    for a in &plan.actions {
        match a {
            ThrottleAction::ClientQuota {
                client_id,
                consumer_byte_rate,
                reason,
                ..
            } => {
                if let Some(group) = unnamed_group(client_id) {
                    cannot.push(format!(
                        "group {group} has no members (a reader using assign()): its client id is unknown, so no quota can name it ({reason})"
                    ));
                    continue;
                }
                let client = client_id.as_str();
                let floor = floor_of(client);
                let rate = (*consumer_byte_rate as f64).max(floor * 1.1).ceil();
                match resolve_quota(quotas, client) {
                    Ok((target, level)) => push(
                        Want {
                            target,
                            value: format!("{rate}"),
                            reason: format!(
                                "{reason}; client {client} limited to {rate} bytes/s, not below the {floor:.0} bytes/s written to what it reads (so it can catch up); {level}; quotas are cluster-wide: the client is limited on every broker"
                            ),
                            rate,
                        },
                        &mut out,
                    ),
                    Err(why) => cannot.push(format!("client {client}: {why}")),
                }
            }
            ThrottleAction::ReplicationThrottle { reason, .. } if !replication => {
                cannot.push(format!(
                    "replication throttle not set: an execution owns the cluster's replication throttles ({reason})"
                ));
            }
            ThrottleAction::ReplicationThrottle {
                topic,
                leader_broker,
                leader_rate,
                leader_replicas,
                follower_broker,
                follower_rate,
                follower_replicas,
                reason,
                ..
            } => {
                let b = |broker: i32, key: &str| ThrottleTarget::BrokerConfig {
                    broker,
                    key: key.to_string(),
                };
                let t = |key: &str| ThrottleTarget::TopicConfig {
                    topic: topic.clone(),
                    key: key.to_string(),
                };
                for (target, value, rate) in [
                    (
                        b(*leader_broker, "leader.replication.throttled.rate"),
                        leader_rate.to_string(),
                        *leader_rate as f64,
                    ),
                    (
                        b(*follower_broker, "follower.replication.throttled.rate"),
                        follower_rate.to_string(),
                        *follower_rate as f64,
                    ),
                    (
                        t("leader.replication.throttled.replicas"),
                        leader_replicas.join(","),
                        0.0,
                    ),
                    (
                        t("follower.replication.throttled.replicas"),
                        follower_replicas.join(","),
                        0.0,
                    ),
                ] {
                    if value.is_empty() {
                        continue;
                    }
                    let w = Want {
                        target,
                        value,
                        reason: reason.clone(),
                        rate,
                    };
                    if w.rate == 0.0 {
                        // Replica lists merge rather than compete.
                        match out.iter_mut().find(|x| x.target == w.target) {
                            Some(x) => {
                                let mut all: Vec<&str> =
                                    x.value.split(',').chain(w.value.split(',')).collect();
                                all.sort_unstable();
                                all.dedup();
                                x.value = all.join(",");
                            }
                            None => out.push(w),
                        }
                    } else {
                        push(w, &mut out);
                    }
                }
            }
            ThrottleAction::LogDirMoveRate { reason, .. } if !replication => {
                cannot.push(format!(
                    "copy rate not set: an execution owns the cluster's log-dir copy rate ({reason})"
                ));
            }
            ThrottleAction::LogDirMoveRate {
                broker,
                bytes_per_sec,
                reason,
                ..
            } => push(
                Want {
                    target: ThrottleTarget::BrokerConfig {
                        broker: *broker,
                        key: "replica.alter.log.dirs.io.max.bytes.per.second".into(),
                    },
                    value: bytes_per_sec.to_string(),
                    reason: reason.clone(),
                    rate: *bytes_per_sec as f64,
                },
                &mut out,
            ),
        }
    }
    (out, cannot)
}

/// Held claims against wants: per held claim, the want renewing it (its
/// index), and the wants no claim holds yet. O((h + w) log w).
pub fn diff(
    held: &[guardian_proto::governance::Claim],
    wants: &[Want],
) -> (Vec<Option<usize>>, Vec<usize>) {
    let by_target: std::collections::BTreeMap<&ThrottleTarget, usize> = wants
        .iter()
        .enumerate()
        .map(|(i, w)| (&w.target, i))
        .collect();
    let renew: Vec<Option<usize>> = held
        .iter()
        .map(|c| by_target.get(&c.target).copied())
        .collect();
    let taken: std::collections::BTreeSet<usize> = renew.iter().flatten().copied().collect();
    let fresh = (0..wants.len()).filter(|i| !taken.contains(i)).collect();
    (renew, fresh)
}

fn normalized(mut e: QuotaEntity) -> QuotaEntity {
    e.0.sort();
    e
}

fn num(v: &str) -> f64 {
    v.parse().unwrap_or(f64::INFINITY)
}

/// The value at exactly `t` now (the entity's own override; `None`: none).
pub async fn current<K: KafkaAdmin>(
    k: &K,
    t: &ThrottleTarget,
) -> Result<Option<String>, KafkaError> {
    match t {
        ThrottleTarget::ClientQuota { .. } => {
            let e = quota_entity(t).expect("a quota target");
            let comps: Vec<(String, QuotaMatch)> =
                e.0.iter()
                    .map(|(ty, n)| {
                        (
                            ty.clone(),
                            n.clone().map_or(QuotaMatch::Default, QuotaMatch::Exact),
                        )
                    })
                    .collect();
            let found = k.describe_client_quotas(&comps, true).await?;
            Ok(found
                .iter()
                .flat_map(|q| q.values.iter())
                .find(|(key, _)| key == CONSUMER_RATE)
                .map(|(_, v)| format!("{v}")))
        }
        ThrottleTarget::BrokerConfig { broker, key } => {
            own(
                k,
                &ConfigResource::Broker(*broker),
                key,
                ConfigSource::DynamicBroker,
            )
            .await
        }
        ThrottleTarget::TopicConfig { topic, key } => {
            own(
                k,
                &ConfigResource::Topic(topic.clone()),
                key,
                ConfigSource::DynamicTopic,
            )
            .await
        }
    }
}

async fn own<K: KafkaAdmin>(
    k: &K,
    r: &ConfigResource,
    key: &str,
    source: ConfigSource,
) -> Result<Option<String>, KafkaError> {
    let entries = k.describe_configs(r, &[key]).await?;
    let Some(e) = entries.iter().find(|e| e.name == key) else {
        return Ok(None);
    };
    if e.source == source {
        return Ok(e.value.clone());
    }
    Ok(e.synonyms
        .iter()
        .find(|s| s.source == source)
        .and_then(|s| s.value.clone()))
}

/// Sets `t` to `value` (`None`: removes Guardian's override).
pub async fn set<K: KafkaAdmin>(
    k: &K,
    t: &ThrottleTarget,
    value: Option<&str>,
) -> Result<(), KafkaError> {
    match t {
        ThrottleTarget::ClientQuota { .. } => {
            let e = quota_entity(t).expect("a quota target");
            let v = value.map(|v| v.parse::<f64>().unwrap_or(0.0));
            for (_, r) in k
                .alter_client_quotas(&[(e, vec![(CONSUMER_RATE.to_string(), v)])])
                .await?
            {
                r?;
            }
            Ok(())
        }
        ThrottleTarget::BrokerConfig { broker, key } => {
            k.alter_configs(&ConfigResource::Broker(*broker), &[op(key, value)])
                .await
        }
        ThrottleTarget::TopicConfig { topic, key } => {
            k.alter_configs(&ConfigResource::Topic(topic.clone()), &[op(key, value)])
                .await
        }
    }
}

fn op(key: &str, value: Option<&str>) -> AlterConfigOp {
    match value {
        Some(v) => AlterConfigOp::Set(key.to_string(), v.to_string()),
        None => AlterConfigOp::Delete(key.to_string()),
    }
}

/// Two values of a target are the same (quotas compare as numbers:
/// Kafka answers `1000000.0` for `1000000`).
pub fn same(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => (p - q).abs() < 0.5,
            _ => {
                let mut l: Vec<&str> = x.split(',').collect();
                let mut r: Vec<&str> = y.split(',').collect();
                l.sort_unstable();
                r.sort_unstable();
                l == r
            }
        },
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(parts: &[(&str, Option<&str>)], v: f64) -> QuotaEntry {
        QuotaEntry {
            entity: QuotaEntity(
                parts
                    .iter()
                    .map(|(t, n)| (t.to_string(), n.map(String::from)))
                    .collect(),
            ),
            values: vec![(CONSUMER_RATE.to_string(), v)],
        }
    }

    #[test]
    fn the_quota_goes_where_kafka_applies_it() {
        // Nothing set: client-id.
        let (t, _) = resolve_quota(&[], "r").unwrap();
        assert_eq!(
            t,
            ThrottleTarget::ClientQuota {
                user: None,
                client_id: Some("r".into())
            }
        );
        // A default-user quota shadows client-id quotas: default user + client.
        let (t, why) = resolve_quota(&[q(&[("user", None)], 5e6)], "r").unwrap();
        assert_eq!(
            t,
            ThrottleTarget::ClientQuota {
                user: Some(String::new()),
                client_id: Some("r".into())
            }
        );
        assert!(why.contains("shadow"), "{why}");
        // The operator's own entity for the reader: left alone.
        let e = resolve_quota(&[q(&[("client-id", Some("r"))], 1e6)], "r").unwrap_err();
        assert!(e.contains("left alone"), "{e}");
        let e =
            resolve_quota(&[q(&[("user", None), ("client-id", Some("r"))], 1e6)], "r").unwrap_err();
        assert!(e.contains("left alone"), "{e}");
        // Another client's quota changes nothing.
        let (t, _) = resolve_quota(&[q(&[("client-id", Some("x"))], 1e6)], "r").unwrap();
        assert!(matches!(t, ThrottleTarget::ClientQuota { user: None, .. }));
    }

    #[test]
    fn values_compare_as_kafka_answers_them() {
        assert!(same(Some("1000000"), Some("1000000.0")));
        assert!(same(Some("0:1,1:2"), Some("1:2,0:1")));
        assert!(!same(Some("1"), None));
    }
}
