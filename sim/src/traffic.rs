//! Traffic on a simulated cluster, in real time: producers append at each
//! partition's bytes-in rate (records of 1 KiB), and consumer groups
//! commit — a caught-up group at the log end, a lagging one the same
//! number of records behind it, so its lag stays (it reads at the
//! production rate, from disk). Copies and moves run at the model's speed
//! factor; traffic does not (rates stay what Guardian measures).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardian_kafka::types::{OffsetSpec, TopicPartition};
use guardian_kafka::{KafkaAdmin, KafkaModel};
use guardian_planner::model::ClusterSpec;

/// Bytes per simulated record.
pub const RECORD_BYTES: f64 = 1024.0;

/// One consumer group's positions: partition and records behind the log
/// end.
#[derive(Debug, Clone)]
pub struct GroupFlow {
    pub name: String,
    pub positions: Vec<(TopicPartition, i64)>,
}

/// What flows through one cluster.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// Bytes in per second, by partition.
    pub bytes_in: BTreeMap<TopicPartition, f64>,
    pub groups: Vec<GroupFlow>,
}

impl Traffic {
    /// The rates and groups of a generated cluster.
    pub fn from_spec(spec: &ClusterSpec) -> Self {
        let mut bytes_in = BTreeMap::new();
        for t in &spec.topics {
            for p in &t.partitions {
                bytes_in.insert(TopicPartition::new(t.name.clone(), p.partition), p.bytes_in);
            }
        }
        let groups = spec
            .groups
            .iter()
            .map(|g| GroupFlow {
                name: g.name.clone(),
                positions: g
                    .positions
                    .iter()
                    .map(|p| {
                        (
                            TopicPartition::new(p.topic.clone(), p.partition),
                            (p.lag_bytes as f64 / RECORD_BYTES) as i64,
                        )
                    })
                    .collect(),
            })
            .collect();
        Traffic { bytes_in, groups }
    }
}

/// Drives `traffic` into `model` every `tick` until the task is dropped.
pub async fn run(model: Arc<KafkaModel>, traffic: Arc<Mutex<Traffic>>, tick: Duration) {
    let mut carry: BTreeMap<TopicPartition, f64> = BTreeMap::new();
    let mut last = Instant::now();
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = Instant::now();
        let dt = (now - last).as_secs_f64();
        last = now;
        let t = traffic.lock().unwrap_or_else(|p| p.into_inner()).clone();
        step(&model, &t, &mut carry, dt).await;
    }
}

/// `dt` seconds of traffic: appends, then commits.
pub async fn step(
    model: &KafkaModel,
    t: &Traffic,
    carry: &mut BTreeMap<TopicPartition, f64>,
    dt: f64,
) {
    for (tp, rate) in &t.bytes_in {
        let c = carry.entry(tp.clone()).or_default();
        *c += rate * dt;
        let records = (*c / RECORD_BYTES).floor();
        if records >= 1.0 {
            let bytes = records * RECORD_BYTES;
            *c -= bytes;
            // A partition deleted meanwhile: nothing to append to.
            let _ = model.produce(tp, records as i64, bytes as i64);
        }
    }
    for g in &t.groups {
        let tps: Vec<TopicPartition> = g.positions.iter().map(|p| p.0.clone()).collect();
        let Ok(ends) = model.list_offsets(&tps, OffsetSpec::Latest).await else {
            continue;
        };
        for ((tp, behind), (_, end)) in g.positions.iter().zip(ends) {
            if let Ok(end) = end {
                model.commit(&g.name, tp, (end - behind).max(0));
            }
        }
    }
}
