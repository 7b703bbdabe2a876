//! guardian-reporter: the sidecar that runs beside each Kafka broker (no JVM,
//! no broker patch) and returns the whole broker in one gRPC call
//! (`Reporter.GetSnapshot`), where JMX would need one request per MBean.
//!
//! - [`kafka`]: the broker's log dirs read from disk in Kafka's own formats
//!   (meta.properties, partition dirs and segments, offset checkpoints,
//!   `-future` and `-delete` dirs), defensively: damage is a warning.
//! - [`host`]: device and filesystem per log dir, `/proc` disk, memory, CPU
//!   and network counters.
//! - [`broker_metrics`]: the broker's Prometheus endpoint (JMX exporter):
//!   per-topic bytes in/out and messages in, under-replicated partitions,
//!   request-handler idle ratio, p99 request latencies.
//! - [`sampler`]: one snapshot (partitions as packed parallel arrays, topics
//!   interned) with rates derived from the previous sample; JSON view.
//! - [`server`]: the gRPC service plus `/healthz` and `/metrics` on the same port.
//!
//! Depends on `guardian-proto` only (no RocksDB, no openraft).

pub mod broker_metrics;
pub mod host;
pub mod kafka;
pub mod sampler;
pub mod server;
