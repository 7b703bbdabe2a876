//! `DiscoverCluster`: the leader reads a registered cluster from Kafka —
//! DescribeCluster through its bootstrap servers, then DescribeLogDirs of
//! each broker — and records what it found (Kafka cluster id, every broker
//! with its host, rack and log dirs, paths exactly as Kafka reports them)
//! through Raft. A dry run computes the same report from the registry
//! without writing. Unreachable bootstrap servers: `FAILED_PRECONDITION`
//! naming them (not `UNAVAILABLE`, which clients retry as a controller
//! problem).

use std::time::Duration;

use guardian_kafka::{KafkaClient, KafkaError};
use guardian_meta_store::CommandResponse;
use guardian_proto::domain::{Command, DiscoveredBroker, LogDir};
use guardian_proto::pb;

use super::{unexpected, Call};
use crate::error::ApiError;

const DEADLINE: Duration = Duration::from_secs(8);

pub async fn discover_cluster(
    api: &Call<'_>,
    r: pb::DiscoverClusterRequest,
) -> Result<pb::DiscoverClusterResponse, ApiError> {
    let bootstrap = api.cluster_state(&r.name, false).await?.registry.clusters[&r.name]
        .bootstrap_servers
        .clone();
    // Only the leader talks to Kafka; a follower names it.
    api.ctl.ensure_leader()?;
    let opts = api
        .kafka
        .connect_options()
        .map_err(|e| ApiError::FailedPrecondition {
            reason: e.to_string(),
        })?;
    // At most DEADLINE per call, so an unreachable cluster answers the
    // CLI (15 s by default) with Kafka's error, not a timeout of its own.
    let deadline = Duration::from_millis(api.kafka.request_timeout_ms).min(DEADLINE);
    let kafka = KafkaClient::with_options(&bootstrap, deadline, opts);
    let unreachable = |e: KafkaError| ApiError::FailedPrecondition {
        reason: format!(
            "cannot reach Kafka cluster {:?} at {}: {e}",
            r.name,
            bootstrap.join(",")
        ),
    };
    let described = kafka.describe_cluster().await.map_err(unreachable)?;
    let mut brokers = Vec::with_capacity(described.brokers.len());
    for b in &described.brokers {
        let dirs =
            kafka
                .describe_log_dirs(b.id)
                .await
                .map_err(|e| ApiError::FailedPrecondition {
                    reason: format!(
                        "DescribeLogDirs of broker {} of Kafka cluster {:?}: {e}",
                        b.id, r.name
                    ),
                })?;
        brokers.push(DiscoveredBroker {
            broker_id: b.id,
            host: b.host.clone(),
            rack: b.rack.clone().unwrap_or_default(),
            log_dirs: dirs
                .iter()
                .map(|d| LogDir {
                    path: d.path.clone(),
                    capacity_bytes: d.total_bytes.unwrap_or(0).max(0) as u64,
                })
                .collect(),
        });
    }
    let report = if r.dry_run {
        let st = api.ctl.state();
        let now = crate::time::now_ms();
        st.registry
            .plan_discovery(&r.name, &described.cluster_id, &brokers, now)
            .map_err(ApiError::from)?
            .1
    } else {
        match api
            .write(Command::DiscoverCluster {
                cluster: r.name.clone(),
                kafka_cluster_id: described.cluster_id.clone(),
                brokers,
            })
            .await?
        {
            CommandResponse::Discovered(report) => report,
            other => return Err(unexpected(other)),
        }
    };
    Ok(pb::DiscoverClusterResponse {
        kafka_cluster_id: described.cluster_id,
        changes: report.changes,
        missing_broker_ids: report.missing,
        brokers: report.brokers.into_iter().map(Into::into).collect(),
        dry_run: r.dry_run,
    })
}
