//! Decoding a Metadata response of a fleet-sized cluster, no broker needed:
//! a response of 3 brokers and `--partitions` partitions × RF `--rf` (in
//! topics of 5,000 partitions) is encoded once at v12, then decoded into
//! Guardian's domain view `--rounds` times: time and allocations per
//! decode. (kafka-bench measures the same call against real brokers.)
//!
//!   cargo build --release -p guardian-tests
//!   target/release/kafka-decode-bench [--partitions 10000] [--rf 3] [--rounds 200]

use std::time::Instant;

use bytes::BytesMut;
use clap::Parser;
use guardian_tests::bench::{allocations, CountingAlloc};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    partitions: i32,
    #[arg(long, default_value_t = 3)]
    rf: i32,
    #[arg(long, default_value_t = 200)]
    rounds: usize,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let brokers = (1..=3)
        .map(|id| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092 + id)
                .with_rack(Some(StrBytes::from_string(format!("r{id}"))))
        })
        .collect();
    let mut topics = Vec::new();
    let mut left = a.partitions;
    while left > 0 {
        let n = left.min(5_000);
        let i = topics.len();
        let mut id = [0u8; 16];
        id[0] = i as u8 + 1;
        topics.push(
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(format!("bench-{i}")))))
                .with_topic_id(uuid::Uuid::from_bytes(id))
                .with_partitions(
                    (0..n)
                        .map(|p| {
                            let replicas: Vec<BrokerId> =
                                (0..a.rf).map(|r| BrokerId((p + r) % 3 + 1)).collect();
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(replicas[0])
                                .with_leader_epoch(1)
                                .with_isr_nodes(replicas.clone())
                                .with_replica_nodes(replicas)
                        })
                        .collect(),
                ),
        );
        left -= n;
    }
    let resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str("bench-cluster")))
        .with_controller_id(BrokerId(1))
        .with_topics(topics);
    let mut buf = BytesMut::new();
    resp.encode(&mut buf, 12)?;
    let body = buf.freeze();
    println!(
        "Metadata v12 response: {} partitions × RF {}, {} KiB",
        a.partitions,
        a.rf,
        body.len() / 1024
    );
    let mut times = Vec::with_capacity(a.rounds);
    let (n0, b0) = allocations();
    for _ in 0..a.rounds {
        let t = Instant::now();
        let m = guardian_kafka::decode_metadata(body.clone(), 12)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let parts: usize = m.topics.iter().map(|t| t.partitions.len()).sum();
        anyhow::ensure!(parts == a.partitions as usize, "decoded {parts} partitions");
        drop(m);
    }
    let (n1, b1) = allocations();
    let per = |x: u64| x as f64 / a.rounds as f64;
    println!(
        "decode → ClusterMetadata: p50 {:.2} ms  p99 {:.2} ms  ({} rounds); {:.0} allocations ({:.1} MiB) per decode",
        pct(&mut times, 0.5),
        pct(&mut times, 0.99),
        a.rounds,
        per(n1 - n0),
        per(b1 - b0) / (1024.0 * 1024.0)
    );
    Ok(())
}
