//! The throttle planner's input from live data: the executor's live model
//! (brokers, dirs, replicas and where they are, reporters' medians) with
//! what governance needs on top — each partition's **current** bytes-in
//! (the reporters' latest rate, not the hour's median: a producer that
//! stops must be seen to stop), the
//! operator's host overrides (page cache, disk budgets), and every
//! consumer group's position, lag and fetch rate (OffsetFetch +
//! ListOffsets; the rate from the committed offset's progress between
//! rounds).

use std::collections::BTreeMap;

use guardian_kafka::{KafkaAdmin, KafkaError};
use guardian_planner::model::{ClusterSpec, GroupSpec, PositionSpec};
use guardian_proto::governance::HostOverrides;

use crate::executor::live_model::LiveModel;
use crate::load::BrokerLoad;

/// Committed offsets seen last round: (group, topic, partition) →
/// (offset, at ms). Soft state of the leader.
pub type Seen = BTreeMap<(String, String, i32), (i64, u64)>;

/// Bytes per record of each partition (its size over its log end), from
/// what the groups' ListOffsets answered.
pub type RecordSize = BTreeMap<(String, i32), f64>;

/// Lays the current rates and host overrides over the live model's spec
/// (replica lags are the live model's: leader bytes beyond a follower
/// out of the ISR).
pub fn enrich(
    live: &mut LiveModel,
    load: &BTreeMap<i32, &BrokerLoad>,
    hosts: &BTreeMap<i32, HostOverrides>,
) {
    let mut latest: BTreeMap<(&str, i32), f64> = BTreeMap::new();
    if live.rates_known {
        for l in load.values() {
            for p in l.partitions.iter().filter(|p| !p.future) {
                let e = latest.entry((p.topic.as_str(), p.partition)).or_insert(0.0);
                *e = e.max(p.bytes_in_per_sec);
            }
        }
    }
    let spec = &mut live.spec;
    for t in &mut spec.topics {
        for p in &mut t.partitions {
            if let Some(r) = latest.get(&(t.name.as_str(), p.partition)) {
                p.bytes_in = *r;
            }
        }
    }
    for b in &mut spec.brokers {
        let Some(h) = hosts.get(&b.id) else { continue };
        if let Some(pc) = h.page_cache_bytes {
            b.page_cache_bytes = pc;
        }
        for d in &mut b.disks {
            if let Some(v) = h.write_budgets.get(&d.dir) {
                d.write_budget = *v;
            }
            if let Some(v) = h.read_budgets.get(&d.dir) {
                d.read_budget = *v;
            }
        }
    }
}

/// Every consumer group's positions on `spec`'s partitions: lag in bytes
/// and fetch rate (bytes/s, from the committed offset's progress since
/// `seen`), with its reader's client id (or [`super::claims::unnamed`]).
/// Also fills `record_size`, and returns a note per group it could not
/// read.
pub async fn groups<K: KafkaAdmin>(
    k: &K,
    spec: &ClusterSpec,
    seen: &mut Seen,
    record_size: &mut RecordSize,
    now: u64,
) -> Result<(Vec<GroupSpec>, Vec<String>), KafkaError> {
    let size: BTreeMap<(&str, i32), u64> = spec
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| ((t.name.as_str(), p.partition), p.size_bytes))
        })
        .collect();
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut live_keys = Vec::new();
    for g in k.list_groups().await? {
        if !(g.protocol_type == "consumer" || g.protocol_type.is_empty()) {
            continue;
        }
        let lags = match k.consumer_lag(&g.group_id).await {
            Ok(l) => l,
            Err(e) => {
                notes.push(format!(
                    "group {}: its lag could not be read: {e}",
                    g.group_id
                ));
                continue;
            }
        };
        let members = match k.describe_group(&g.group_id).await {
            Ok(d) => d.members,
            Err(e) => {
                notes.push(format!("group {}: not described: {e}", g.group_id));
                Vec::new()
            }
        };
        let client_id = members
            .iter()
            .map(|m| m.client_id.clone())
            .find(|c| !c.is_empty())
            .unwrap_or_else(|| super::claims::unnamed(&g.group_id));
        let mut positions = Vec::new();
        for l in lags.iter().filter(|l| l.committed >= 0) {
            let Some(bytes) = size.get(&(l.topic.as_str(), l.partition)) else {
                continue; // a partition the live model does not plan (gone)
            };
            let per_record = if l.log_end > 0 {
                (*bytes as f64 / l.log_end as f64).max(1.0)
            } else {
                1024.0
            };
            record_size.insert((l.topic.clone(), l.partition), per_record);
            let key = (g.group_id.clone(), l.topic.clone(), l.partition);
            let rate = match seen.get(&key) {
                Some((off, at)) if now > *at && l.committed >= *off => {
                    (l.committed - off) as f64 * per_record * 1000.0 / (now - at) as f64
                }
                _ => 0.0,
            };
            seen.insert(key.clone(), (l.committed, now));
            live_keys.push(key);
            positions.push(PositionSpec {
                topic: l.topic.clone(),
                partition: l.partition,
                lag_bytes: (l.lag.max(0) as f64 * per_record) as u64,
                rate,
            });
        }
        if !positions.is_empty() {
            out.push(GroupSpec {
                name: g.group_id.clone(),
                user: String::new(),
                client_id,
                positions,
            });
        }
    }
    seen.retain(|k, _| live_keys.contains(k));
    Ok((out, notes))
}
