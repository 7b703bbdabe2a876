//! A lag-aware producer (seed `002_…`): it sends each record to the
//! partition whose queue — the consumers' lag — is shortest, so a slow
//! consumer gets less new work instead of falling further behind.
//!
//! Every `--refresh-ms` it reads the lag of `--group` on `--topic` from
//! Guardian (`GuardianConsumers.GetPartitionLag`: the leader's latest
//! reading for a bound group, Kafka's figures now for any other); between
//! readings it counts what it sent to each partition on top, so records
//! spread over the shortest queues rather than all landing on one.
//!
//!   cargo run -p guardian-consumer --example lag_aware_producer -- \
//!     --endpoints 127.0.0.1:7001 --cluster k1 --topic orders --group billing \
//!     --bootstrap 127.0.0.1:9092 --count 1000
//!
//! It prints one line per partition it wrote to: `PARTITION RECORDS`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use guardian_proto::pb;
use guardian_proto::pb::guardian_consumers_client::GuardianConsumersClient;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[derive(Parser, Debug)]
struct Args {
    /// Guardian admin endpoints, comma-separated (any node; a follower
    /// answers UNAVAILABLE and the next one is tried).
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    #[arg(long, env = "GUARDIAN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The Kafka cluster's name in Guardian.
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    topic: String,
    /// The consumer group whose queues to keep short.
    #[arg(long)]
    group: String,
    /// The Kafka cluster's bootstrap servers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    bootstrap: Vec<String>,
    #[arg(long, default_value_t = 100)]
    count: usize,
    #[arg(long, default_value_t = 1000)]
    refresh_ms: u64,
}

/// Lag per partition of `group` on `topic`, from the first endpoint that
/// answers.
async fn lag(a: &Args) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut last = None;
    for ep in &a.endpoints {
        let mut c = match GuardianConsumersClient::connect(format!("http://{ep}")).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(anyhow::anyhow!("{ep}: {e}"));
                continue;
            }
        };
        let mut req = tonic::Request::new(pb::PartitionLagRequest {
            cluster: a.cluster.clone(),
            topic: a.topic.clone(),
            group: a.group.clone(),
        });
        if let Some(t) = &a.token {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse()?);
        }
        match c.get_partition_lag(req).await {
            Ok(r) => {
                return Ok(r
                    .into_inner()
                    .partitions
                    .into_iter()
                    .filter(|p| p.group == a.group && p.error.is_empty())
                    .map(|p| (p.partition, p.lag.max(0)))
                    .collect())
            }
            Err(s) if s.code() == tonic::Code::Unavailable => {
                last = Some(anyhow::anyhow!("{ep}: {}", s.message()));
            }
            Err(s) => anyhow::bail!("GetPartitionLag: {:?}: {}", s.code(), s.message()),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no endpoint")))
}

/// The partition with the shortest estimated queue (lowest number on a tie).
fn shortest(queue: &BTreeMap<i32, i64>) -> Option<i32> {
    queue
        .iter()
        .min_by_key(|(p, q)| (**q, **p))
        .map(|(p, _)| *p)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", a.bootstrap.join(","))
        .set("acks", "all")
        .create()?;
    let mut queue = lag(&a).await?;
    anyhow::ensure!(
        !queue.is_empty(),
        "no lag reading for group {:?} on topic {:?}",
        a.group,
        a.topic
    );
    let mut read_at = Instant::now();
    let mut sent: BTreeMap<i32, usize> = BTreeMap::new();
    for i in 0..a.count {
        if read_at.elapsed() >= Duration::from_millis(a.refresh_ms) {
            if let Ok(q) = lag(&a).await {
                if !q.is_empty() {
                    queue = q;
                }
            }
            read_at = Instant::now();
        }
        let p = shortest(&queue).expect("a partition");
        let payload = format!("record {i}");
        producer
            .send(
                FutureRecord::<(), _>::to(&a.topic)
                    .partition(p)
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce to partition {p}: {e}"))?;
        *queue.entry(p).or_default() += 1;
        *sent.entry(p).or_default() += 1;
    }
    for (p, n) in sent {
        println!("{p} {n}");
    }
    Ok(())
}
