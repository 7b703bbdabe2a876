//! remote-log-bench: the tiered-storage metadata service on 3 real `guardian`
//! processes (fsync on, 127.0.0.1).
//!
//! - Batched segment events: `--clients` writers, each sending `ApplyEvents`
//!   of `--batch` events (add + COPY_SEGMENT_FINISHED per segment) for its
//!   own partitions; every event is committed by a quorum and applied before
//!   the call returns.
//! - Lookups on the leader: `GetSegments` of `--lookups` lookups per call,
//!   linearizable (one read barrier per call) and stale; and one lookup per
//!   call (`GetSegment`) for the per-RPC cost.
//!
//!   cargo build --release -p guardian-cli && cargo build --release -p guardian-tests
//!   target/release/remote-log-bench [--clients 8] [--batch 2000] [--secs 10]

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use guardian_controller::client::RemoteLogStub;
use guardian_proto::domain::KafkaUuid;
use guardian_proto::pb;
use guardian_proto::pb::remote_log_metadata_client::RemoteLogMetadataClient;
use guardian_tests::bench::drive;
use guardian_tests::TestCluster;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug)]
struct Args {
    /// Concurrent writers / readers.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Events per ApplyEvents call (half adds, half finishes).
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Lookups per GetSegments call.
    #[arg(long, default_value_t = 1000)]
    lookups: usize,
    /// Partitions per writer.
    #[arg(long, default_value_t = 50)]
    partitions: u32,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Extra TOML appended to every node's config.
    #[arg(long, default_value = "")]
    extra_config: String,
    /// Where the nodes keep their data: a real disk, not a tmpfs `$TMPDIR`.
    #[arg(long, default_value = "/var/tmp")]
    data_dir: std::path::PathBuf,
    /// Send the event batches without client request ids (by default each
    /// carries one, as `AdminClient` sends them, and apply keeps its result).
    #[arg(long)]
    no_request_ids: bool,
}

const SEG_SPAN: i64 = 1000;

fn tp(writer: usize, p: u32) -> pb::TopicIdPartition {
    let mut b = [0x41; 16];
    b[..8].copy_from_slice(&(writer as u64).to_be_bytes());
    pb::TopicIdPartition {
        topic_id: KafkaUuid::from_random_bytes(b).0.to_vec(),
        topic: format!("bench-{writer}"),
        partition: p as i32,
    }
}

fn seg_id(writer: usize, n: u64) -> Vec<u8> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(writer as u64).to_be_bytes());
    b[8..].copy_from_slice(&n.to_be_bytes());
    KafkaUuid::from_random_bytes(b).0.to_vec()
}

/// Segment `n` of a writer: partition n % partitions, the (n / partitions)th
/// segment of that partition, 1,000 offsets, leader epoch 0.
fn events(writer: usize, partitions: u32, first: u64, count: usize) -> Vec<pb::RemoteLogEvent> {
    use pb::remote_log_event::Event;
    let mut out = Vec::with_capacity(count);
    for n in first..first + (count / 2) as u64 {
        let p = (n % partitions as u64) as u32;
        let start = (n / partitions as u64) as i64 * SEG_SPAN;
        let id = seg_id(writer, n);
        out.push(pb::RemoteLogEvent {
            partition: Some(tp(writer, p)),
            leader_epoch: Some(0),
            event: Some(Event::AddSegment(pb::RemoteLogSegment {
                segment_id: id.clone(),
                start_offset: start,
                end_offset: start + SEG_SPAN - 1,
                broker_id: writer as i32,
                max_timestamp_ms: 1_700_000_000_000,
                event_timestamp_ms: 1_700_000_000_000,
                segment_leader_epochs: vec![pb::EpochStartOffset {
                    epoch: 0,
                    start_offset: start,
                }],
                segment_size_in_bytes: 1 << 30,
                custom_metadata: None,
                state: pb::RemoteLogSegmentState::CopySegmentStarted as i32,
                txn_index_empty: true,
            })),
        });
        out.push(pb::RemoteLogEvent {
            partition: Some(tp(writer, p)),
            leader_epoch: Some(0),
            event: Some(Event::UpdateSegment(pb::RemoteLogSegmentUpdate {
                segment_id: id,
                broker_id: writer as i32,
                event_timestamp_ms: 1_700_000_000_001,
                custom_metadata: None,
                state: pb::RemoteLogSegmentState::CopySegmentFinished as i32,
            })),
        });
    }
    out
}

/// `n` HTTP/2 connections to `addr`, shared by the clients.
fn channels(addr: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    (0..n)
        .map(|_| {
            Ok(Endpoint::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect_lazy())
        })
        .collect()
}

fn stub(ch: &Channel) -> RemoteLogStub {
    let svc = tonic::service::interceptor::InterceptedService::new(
        ch.clone(),
        guardian_controller::client::TokenInterceptor::default(),
    );
    RemoteLogMetadataClient::new(svc)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!(
        "remote-log-bench: 3 guardian processes on 127.0.0.1, fsync on; {} clients, {} s runs",
        a.clients, a.secs
    );
    println!(
        "data under {} ({})",
        a.data_dir.display(),
        guardian_tests::bench::fs_type(&a.data_dir)
    );
    let c = TestCluster::start_in(&a.data_dir, 3, &a.extra_config.replace("\\n", "\n")).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let addr = c.node(leader).admin.clone();
    let chans = channels(&addr, a.clients.clamp(1, 8))?;

    // Every writer's partitions are tracked by "its" broker.
    for w in 0..a.clients {
        let req = pb::TrackPartitionsRequest {
            broker_id: w as i32,
            partitions: (0..a.partitions)
                .map(|p| pb::TrackedPartition {
                    partition: Some(tp(w, p)),
                    leader_epoch: Some(0),
                })
                .collect(),
        };
        stub(&chans[0]).track_partitions(req).await?;
    }

    let (batch, partitions) = (a.batch, a.partitions);
    let (ids, salt) = (!a.no_request_ids, std::process::id() as u64);
    let wchans = chans.clone();
    let mut w = drive(a.clients, a.secs, move |c, seq| {
        let mut s = stub(&wchans[c % wchans.len()]);
        let ev = events(c, partitions, seq * (batch / 2) as u64, batch);
        async move {
            let n = ev.len();
            let r = s
                .apply_events(guardian_tests::bench::request(
                    pb::ApplyEventsRequest { events: ev },
                    ids,
                    salt,
                    c,
                    seq,
                ))
                .await
                .context("apply_events")?
                .into_inner();
            let applied = r
                .results
                .iter()
                .filter(|r| r.outcome == pb::event_result::Outcome::Applied as i32)
                .count();
            anyhow::ensure!(
                applied == n,
                "{} of {n} events not applied: {:?}",
                n - applied,
                r.results.iter().find(|r| r.outcome != 1)
            );
            Ok(n)
        }
    })
    .await;
    println!(
        "{}",
        w.items_line(&format!("segment events, batches of {batch}"), "events")
    );
    w.ensure_ok("segment events")?;
    // Lookups target offsets every partition has: the lowest highest offset
    // over the writers' last partitions (each writer fills its partitions
    // round-robin, so its last one is the shortest).
    let cl = c.client();
    let mut covered = i64::MAX;
    for wr in 0..a.clients {
        let req = pb::PartitionEpochRequest {
            partition: Some(tp(wr, a.partitions - 1)),
            leader_epoch: 0,
            stale: false,
        };
        let h = cl
            .call_on(|mut s: RemoteLogStub| {
                let r = req.clone();
                async move { s.highest_offset_for_epoch(r).await }
            })
            .await?
            .offset
            .unwrap_or(0);
        covered = covered.min(h);
    }
    // Leadership may have moved under the write load: read from the leader now.
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let addr = c.node(leader).admin.clone();
    let chans = channels(&addr, a.clients.clamp(1, 8))?;
    let total_segments = w.items / 2;
    println!(
        "  ({total_segments} segments stored; lookups cover offsets 0..={covered} of every partition)"
    );
    let span = (covered + 1).max(1) as u64;

    for stale in [false, true] {
        let (lookups, clients, partitions) = (a.lookups, a.clients, a.partitions);
        let rchans = chans.clone();
        let found = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let found_in = found.clone();
        let mut r = drive(a.clients, a.secs, move |c, seq| {
            let found = found_in.clone();
            let mut s = stub(&rchans[c % rchans.len()]);
            let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c as u64;
            let ls: Vec<pb::SegmentLookup> = (0..lookups)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let w = (x % clients as u64) as usize;
                    let p = ((x >> 8) % partitions as u64) as u32;
                    let o = ((x >> 20) % span) as i64;
                    pb::SegmentLookup {
                        partition: Some(tp(w, p)),
                        leader_epoch: 0,
                        offset: o,
                    }
                })
                .collect();
            async move {
                let r = s
                    .get_segments(pb::GetSegmentsRequest { lookups: ls, stale })
                    .await
                    .context("get_segments")?
                    .into_inner();
                let hits = r.results.iter().filter(|r| r.segment.is_some()).count();
                found.fetch_add(hits, std::sync::atomic::Ordering::Relaxed);
                Ok(r.results.len())
            }
        })
        .await;
        let mode = if stale { "stale" } else { "linearizable" };
        let hits = found.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{}  [{:.1} % found a segment]",
            r.items_line(&format!("lookups, {lookups}/call, {mode}"), "lookups"),
            100.0 * hits as f64 / r.items.max(1) as f64
        );
        r.ensure_ok(&format!("lookups ({mode})"))?;
    }

    let (clients, partitions) = (a.clients, a.partitions);
    let rchans = chans.clone();
    let mut one = drive(a.clients, a.secs, move |c, seq| {
        let mut s = stub(&rchans[c % rchans.len()]);
        let w = (seq as usize + c) % clients;
        let l = pb::SegmentLookup {
            partition: Some(tp(w, (seq % partitions as u64) as u32)),
            leader_epoch: 0,
            offset: 0,
        };
        async move {
            s.get_segment(pb::GetSegmentRequest {
                lookup: Some(l),
                stale: false,
            })
            .await
            .context("get_segment")?;
            Ok(1)
        }
    })
    .await;
    println!(
        "{}",
        one.items_line("lookups, 1/call, linearizable", "lookups")
    );
    one.ensure_ok("single lookups")?;
    Ok(())
}
