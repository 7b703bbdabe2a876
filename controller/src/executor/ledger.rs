//! The throttle ledger: which throttle configs an execution claims, what
//! was there before, and how to put it back.
//!
//! Keys: per broker `leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate` (replication) and
//! `replica.alter.log.dirs.io.max.bytes.per.second` (disk moves); per topic
//! `leader.replication.throttled.replicas` and
//! `follower.replication.throttled.replicas` (`partition:broker` lists).
//!
//! Values compared are always the **per-entity dynamic override** (the
//! broker's `DYNAMIC_BROKER_CONFIG` synonym, the topic's `DYNAMIC_TOPIC_CONFIG`),
//! never the effective value: a default or static value underneath must
//! neither be copied into an override nor mistaken for Guardian's.
//! Restoring SETs the prior override, or DELETEs the key if there was none.

use std::collections::{BTreeMap, BTreeSet};

use guardian_kafka::types::{ConfigEntry, ConfigResource, ConfigSource};
use guardian_proto::execution::{LedgerEntry, LedgerState, Task, ThrottleEntity};

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const DIR_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
pub const LEADER_LIST: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_LIST: &str = "follower.replication.throttled.replicas";

pub const BROKER_KEYS: [&str; 3] = [LEADER_RATE, FOLLOWER_RATE, DIR_RATE];
pub const TOPIC_KEYS: [&str; 2] = [LEADER_LIST, FOLLOWER_LIST];

/// The Kafka resource of a ledger entity.
pub fn resource(e: &ThrottleEntity) -> ConfigResource {
    match e {
        ThrottleEntity::Broker(b) => ConfigResource::Broker(*b),
        ThrottleEntity::Topic { name, .. } => ConfigResource::Topic(name.clone()),
    }
}

/// The per-entity dynamic override of `key` among described entries.
pub fn override_of(entries: &[ConfigEntry], key: &str, entity: &ThrottleEntity) -> Option<String> {
    let want = match entity {
        ThrottleEntity::Broker(_) => ConfigSource::DynamicBroker,
        ThrottleEntity::Topic { .. } => ConfigSource::DynamicTopic,
    };
    let e = entries.iter().find(|e| e.name == key)?;
    if e.source == want {
        return e.value.clone();
    }
    e.synonyms
        .iter()
        .find(|s| s.source == want)
        .and_then(|s| s.value.clone())
}

/// A new ledger entry from the override found at preflight.
pub fn record(entity: ThrottleEntity, key: &str, prior: Option<String>) -> LedgerEntry {
    let wildcard = prior.as_deref().map(str::trim) == Some("*");
    LedgerEntry {
        entity,
        key: key.to_string(),
        prior,
        written: None,
        pending: None,
        state: if wildcard {
            LedgerState::Wildcard
        } else {
            LedgerState::Recorded
        },
    }
}

/// The ledger entities an execution's tasks touch: every broker of a task
/// (rates) and every topic with a task that moves replicas (lists).
pub fn entities(tasks: &[Task]) -> BTreeSet<ThrottleEntity> {
    let mut out = BTreeSet::new();
    for t in tasks {
        if t.moves_replicas() || !t.dirs.is_empty() {
            out.extend(t.brokers().map(ThrottleEntity::Broker));
        }
        if t.moves_replicas() {
            out.insert(ThrottleEntity::Topic {
                name: t.topic.clone(),
                id: t.topic_id.clone(),
            });
        }
    }
    out
}

fn list_items(v: &str) -> BTreeSet<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether two list values hold the same entries (Kafka may reorder).
pub fn same_value(key: &str, a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if TOPIC_KEYS.contains(&key) => list_items(a) == list_items(b),
        (a, b) => a == b,
    }
}

/// What each ledger entry's override should be now, given the tasks in
/// flight: `Some(value)` while claimed (the strictest of Guardian's rate
/// and the operator's prior; the prior list plus Guardian's entries),
/// the prior (`None` = no override) once no task claims it.
pub fn desired(
    ledger: &[LedgerEntry],
    in_flight: &[&Task],
    rate: u64,
) -> BTreeMap<(ThrottleEntity, String), Option<String>> {
    desired_with(ledger, in_flight, &|_| rate)
}

/// [`desired`] with a rate per broker (the adaptive rates).
pub fn desired_with(
    ledger: &[LedgerEntry],
    in_flight: &[&Task],
    rate: &dyn Fn(i32) -> u64,
) -> BTreeMap<(ThrottleEntity, String), Option<String>> {
    let mut repl_brokers = BTreeSet::new();
    let mut dir_brokers = BTreeSet::new();
    let mut leader_items: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut follower_items: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for t in in_flight {
        if t.moves_replicas() {
            repl_brokers.extend(t.brokers());
            let l = leader_items.entry(&t.topic).or_default();
            l.extend(t.original.iter().map(|b| format!("{}:{b}", t.partition)));
            let f = follower_items.entry(&t.topic).or_default();
            f.extend(t.adding().map(|b| format!("{}:{b}", t.partition)));
        }
        // A dir move on a broker that keeps its replica.
        for (b, _) in &t.dirs {
            if t.original.contains(b) {
                dir_brokers.insert(*b);
            }
        }
    }
    let mut out = BTreeMap::new();
    for e in ledger {
        let claim = match (&e.entity, e.key.as_str()) {
            (ThrottleEntity::Broker(b), LEADER_RATE | FOLLOWER_RATE)
                if repl_brokers.contains(b) =>
            {
                Some(strictest(e.prior.as_deref(), rate(*b)))
            }
            (ThrottleEntity::Broker(b), DIR_RATE) if dir_brokers.contains(b) => {
                Some(strictest(e.prior.as_deref(), rate(*b)))
            }
            (ThrottleEntity::Topic { name, .. }, key @ (LEADER_LIST | FOLLOWER_LIST)) => {
                let items = if key == LEADER_LIST {
                    leader_items.get(name.as_str())
                } else {
                    follower_items.get(name.as_str())
                };
                items.filter(|i| !i.is_empty()).map(|items| {
                    let mut all = e.prior.as_deref().map(list_items).unwrap_or_default();
                    all.extend(items.iter().cloned());
                    all.into_iter().collect::<Vec<_>>().join(",")
                })
            }
            _ => None,
        };
        let v = match claim {
            Some(v) => Some(v),
            None => e.prior.clone(),
        };
        out.insert((e.entity.clone(), e.key.clone()), v);
    }
    out
}

/// One throttle config an execution will set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Planned {
    /// `broker N` or `topic NAME`.
    pub entity: String,
    pub key: String,
    pub value: String,
}

/// Every throttle config `tasks` set when all run at `rate` (before any
/// prior override is known: the ledger keeps a stricter prior).
pub fn planned(tasks: &[Task], rate: u64) -> Vec<Planned> {
    let ledger: Vec<LedgerEntry> = entities(tasks)
        .into_iter()
        .flat_map(|e| {
            let keys: &[&str] = match e {
                ThrottleEntity::Broker(_) => &BROKER_KEYS,
                ThrottleEntity::Topic { .. } => &TOPIC_KEYS,
            };
            keys.iter()
                .map(move |k| record(e.clone(), k, None))
                .collect::<Vec<_>>()
        })
        .collect();
    let all: Vec<&Task> = tasks.iter().collect();
    desired(&ledger, &all, rate)
        .into_iter()
        .filter_map(|((e, key), v)| {
            Some(Planned {
                entity: match e {
                    ThrottleEntity::Broker(b) => format!("broker {b}"),
                    ThrottleEntity::Topic { name, .. } => format!("topic {name}"),
                },
                key,
                value: v?,
            })
        })
        .collect()
}

/// Never looser than what the operator had.
fn strictest(prior: Option<&str>, rate: u64) -> String {
    match prior.and_then(|p| p.trim().parse::<u64>().ok()) {
        Some(p) if p < rate => p.to_string(),
        _ => rate.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use guardian_proto::execution::TaskState;

    use super::*;

    fn task(topic: &str, p: i32, original: &[i32], target: &[i32]) -> Task {
        Task {
            index: 0,
            topic: topic.into(),
            topic_id: "id".into(),
            partition: p,
            original: original.to_vec(),
            target: target.to_vec(),
            dirs: Vec::new(),
            leader: None,
            bytes: 1,
            state: TaskState::Submitted,
            started_ms: 0,
            finished_ms: 0,
            reason: String::new(),
            attempts: 1,
            original_dirs: vec![],
        }
    }

    fn topic(name: &str) -> ThrottleEntity {
        ThrottleEntity::Topic {
            name: name.into(),
            id: "id".into(),
        }
    }

    /// Claims: the strictest rate, the operator's list entries kept,
    /// a wildcard left alone, and the prior back once nothing is in flight.
    #[test]
    fn claims_and_restores() {
        let t = task("a", 0, &[1, 2], &[2, 3]);
        let ledger = vec![
            record(ThrottleEntity::Broker(1), LEADER_RATE, None),
            record(ThrottleEntity::Broker(2), LEADER_RATE, Some("500".into())),
            record(ThrottleEntity::Broker(3), LEADER_RATE, Some("9000".into())),
            record(topic("a"), LEADER_LIST, Some("7:1".into())),
            record(topic("a"), FOLLOWER_LIST, None),
            record(ThrottleEntity::Broker(4), LEADER_RATE, None),
        ];
        let d = desired(&ledger, &[&t], 1000);
        let get = |e: ThrottleEntity, k: &str| d[&(e, k.to_string())].clone();
        assert_eq!(
            get(ThrottleEntity::Broker(1), LEADER_RATE).as_deref(),
            Some("1000")
        );
        assert_eq!(
            get(ThrottleEntity::Broker(2), LEADER_RATE).as_deref(),
            Some("500")
        );
        assert_eq!(
            get(ThrottleEntity::Broker(3), LEADER_RATE).as_deref(),
            Some("1000")
        );
        assert_eq!(get(topic("a"), LEADER_LIST).as_deref(), Some("0:1,0:2,7:1"));
        assert_eq!(get(topic("a"), FOLLOWER_LIST).as_deref(), Some("0:3"));
        assert_eq!(get(ThrottleEntity::Broker(4), LEADER_RATE), None);
        let idle = desired(&ledger, &[], 1000);
        for e in &ledger {
            assert_eq!(idle[&(e.entity.clone(), e.key.clone())], e.prior);
        }
        assert_eq!(
            record(topic("a"), LEADER_LIST, Some("*".into())).state,
            LedgerState::Wildcard
        );
        assert!(same_value(LEADER_LIST, Some("1:2,0:1"), Some("0:1, 1:2")));
    }
}
