//! Guardian's planners: pure, deterministic decision code over an in-memory
//! cluster model.
//!
//! - [`model`]: [`ClusterSpec`] (plain data keyed by Kafka names, the JSON of
//!   `guardian plan simulate --from-file`) and the dense [`ClusterModel`] the
//!   planners use, with its load model.
//! - [`balance`]: one joint plan over brokers and disks — leadership changes,
//!   inter-broker reassignments and intra-broker log-dir moves — in batches,
//!   with the bytes-moved lower bound beside it.
//! - [`placement`]: replicas of new topics on the lowest historical-median
//!   load inside the tenant pool and policy.
//! - [`throttle`]: the page-cache model — residency window, cache hit or
//!   disk read per consumer group, six disk-I/O behaviours per partition,
//!   abnormal-behaviour queues per disk, throttles in Kafka's own knobs.
//! - [`consumer`]: partitions of bound topics onto consumer workers,
//!   weighted by measured CPU, capacity and lag, sticky, pool ratios held.
//! - [`mod@verify`]: replays a plan and checks every hard constraint; the
//!   before/after table.
//! - [`stats`]: max/mean per resource within tenant pools.
//! - `generate` (feature `testing`): seeded G1k, CC-parity and scenario
//!   clusters.
//!
//! No I/O: this crate must not depend on tokio, tonic, rocksdb or rdkafka
//! (`.ci/run` checks `cargo tree -p guardian-planner -e normal`). Every
//! function is deterministic: ordered maps, no clock (`now` is an input), no
//! randomness outside the seeded generator.

pub mod balance;
pub mod consumer;
pub mod error;
#[cfg(feature = "testing")]
pub mod generate;
pub mod model;
pub mod placement;
pub mod stats;
#[cfg(test)]
pub(crate) mod testkit;
pub mod throttle;
pub mod verify;

pub use balance::{plan, Action, Batch, Goals, KafkaAction, Plan, PlanOptions};
pub use consumer::{plan_consumers, ConsumerOptions, ConsumerPlan};
pub use error::{ConsumerPlanError, GoalError, ModelError, PlacementError};
pub use model::{ClusterModel, ClusterSpec, Replica, Resource};
pub use placement::{place, NewTopic, Placement};
pub use throttle::{plan_throttles, ThrottleOptions, ThrottlePlan};
pub use verify::{verify, Report, Violation};
