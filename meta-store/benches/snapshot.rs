//! Snapshot build and install with N remote log segments (default 10 million).
//!
//! `cargo bench -p guardian-meta-store --bench snapshot -- [--segments N] [--dir D]`
//!
//! Each phase runs in its own process (this binary re-executes itself) so
//! that its peak RSS (VmHWM) is its own:
//! 1. `fill`: applies N segments (add + COPY_SEGMENT_FINISHED, batches of
//!    10,000 events per log entry) to a fresh store through the state
//!    machine's `apply`, as Raft would.
//! 2. `build`: opens the store (loads the state), builds a snapshot.
//! 3. `install`: opens an empty store (not the leader's) and installs the
//!    snapshot file the way
//!    a follower does (received into `begin_receiving_snapshot`'s file,
//!    then `install_snapshot`).
//!
//! Prints one JSON line per phase, then a summary.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use guardian_meta_store::types::{Entry, LogId};
use guardian_proto::domain::{Command, KafkaUuid, Request};
use guardian_proto::remote_log::{
    EventKind, RemoteLogEvent, Segment, SegmentState, SegmentUpdate, TopicIdPartition,
    TrackedPartition,
};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};
use serde_json::json;

// The allocator the `guardian` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEGMENTS_PER_PARTITION: u64 = 1000;
const EVENTS_PER_ENTRY: usize = 10_000;

fn vm_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kb: u64) -> u64 {
    kb / 1024
}

fn tp(p: u64) -> TopicIdPartition {
    let mut b = [0x5a; 16];
    b[..8].copy_from_slice(&(p / 100).to_be_bytes());
    TopicIdPartition {
        topic_id: KafkaUuid::from_random_bytes(b),
        topic: format!("topic-{}", p / 100),
        partition: (p % 100) as i32,
    }
}

fn seg_id(n: u64) -> KafkaUuid {
    let mut b = [0x33; 16];
    b[..8].copy_from_slice(&n.to_be_bytes());
    KafkaUuid::from_random_bytes(b)
}

/// A digest of every segment of every partition (id, offsets, epochs,
/// state, size) in listing order: equal digests mean the installed state
/// holds exactly what the leader's did. Computed outside the timed parts.
fn digest(rl: &guardian_meta_store::state::remote_log::RemoteLogState, segments: u64) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut n = 0u64;
    for p in 0..segments.div_ceil(SEGMENTS_PER_PARTITION) {
        for s in rl.list(&tp(p)).expect("tracked partition") {
            s.id.0.hash(&mut h);
            (s.start_offset, s.end_offset, s.size_in_bytes).hash(&mut h);
            format!("{:?}{:?}", s.state, s.leader_epochs).hash(&mut h);
            n += 1;
        }
    }
    format!("{n}:{:016x}", h.finish())
}

fn entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request::new(1, command)),
    }
}

async fn fill(dir: &Path, segments: u64) -> serde_json::Value {
    let (_log, mut sm) = guardian_meta_store::open(dir).expect("open");
    let partitions = segments.div_ceil(SEGMENTS_PER_PARTITION);
    let mut index = 1;
    let all: Vec<u64> = (0..partitions).collect();
    for chunk in all.chunks(10_000) {
        let cmd = Command::TrackPartitions {
            broker_id: 1,
            partitions: chunk
                .iter()
                .map(|&p| TrackedPartition {
                    partition: tp(p),
                    leader_epoch: Some(0),
                })
                .collect(),
        };
        sm.apply([entry(index, cmd)]).await.expect("apply");
        index += 1;
    }
    let started = Instant::now();
    let mut events = Vec::with_capacity(EVENTS_PER_ENTRY);
    let mut applied = 0u64;
    for n in 0..segments {
        let (p, i) = (
            n / SEGMENTS_PER_PARTITION,
            (n % SEGMENTS_PER_PARTITION) as i64,
        );
        let start = i * 10_000;
        let epoch = (i / 100) as i32;
        let leader_epochs = if i % 100 == 0 && i > 0 {
            vec![(epoch - 1, start), (epoch, start + 5_000)]
        } else {
            vec![(epoch, start)]
        };
        let partition = tp(p);
        events.push(RemoteLogEvent {
            partition: partition.clone(),
            leader_epoch: Some(0),
            kind: EventKind::AddSegment(Segment {
                id: seg_id(n),
                start_offset: start,
                end_offset: start + 9_999,
                broker_id: 1,
                max_timestamp_ms: 1_700_000_000_000 + n as i64,
                event_timestamp_ms: 1_700_000_000_000,
                leader_epochs,
                size_in_bytes: 512 << 20,
                custom_metadata: None,
                state: SegmentState::CopySegmentStarted,
                txn_index_empty: true,
            }),
        });
        events.push(RemoteLogEvent {
            partition,
            leader_epoch: Some(0),
            kind: EventKind::UpdateSegment(SegmentUpdate {
                id: seg_id(n),
                broker_id: 1,
                event_timestamp_ms: 1_700_000_000_001,
                custom_metadata: None,
                state: SegmentState::CopySegmentFinished,
            }),
        });
        if events.len() >= EVENTS_PER_ENTRY || n + 1 == segments {
            applied += events.len() as u64;
            let cmd = Command::RemoteLog(std::sync::Arc::new(std::mem::take(&mut events)));
            sm.apply([entry(index, cmd)]).await.expect("apply");
            index += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let count = sm.reader().read().remote_log.segment_count;
    assert_eq!(count, segments);
    json!({
        "phase": "fill", "segments": count, "events": applied, "secs": secs,
        "events_per_sec": (applied as f64 / secs) as u64,
        "rss_mib": mib(vm_kb("VmRSS:")), "peak_rss_mib": mib(vm_kb("VmHWM:")),
    })
}

async fn build(dir: &Path) -> serde_json::Value {
    let t = Instant::now();
    let (_log, mut sm) = guardian_meta_store::open(dir).expect("open");
    let load_secs = t.elapsed().as_secs_f64();
    let segments = sm.reader().read().remote_log.segment_count;
    let rss_loaded = vm_kb("VmRSS:");
    // In-process lookups on the loaded state (what one GetSegments item
    // costs without gRPC): random partition, random offset, its epoch.
    let (lookups, hits, lookup_secs) = {
        let reader = sm.reader();
        let st = reader.read();
        let rl = &st.remote_log;
        let partitions = segments.div_ceil(SEGMENTS_PER_PARTITION);
        let tps: Vec<TopicIdPartition> = (0..partitions).map(tp).collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let (n, mut hits) = (2_000_000u64, 0u64);
        let t = Instant::now();
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = &tps[(x % partitions) as usize];
            let offset = ((x >> 16) % (SEGMENTS_PER_PARTITION * 10_000)) as i64;
            let epoch = (offset / 10_000 / 100) as i32;
            if let Ok(Some(_)) = rl.segment_for(p, epoch, offset) {
                hits += 1;
            }
        }
        (n, hits, t.elapsed().as_secs_f64())
    };
    // Count from here: clear the peak so VmHWM is the build's own.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let mut b = sm.get_snapshot_builder().await;
    let snap = b.build_snapshot().await.expect("build");
    let secs = t.elapsed().as_secs_f64();
    let file = dir
        .join("snapshots")
        .join(format!("{}.snap", snap.meta.snapshot_id));
    let digest = digest(&sm.reader().read().remote_log, segments);
    json!({
        "digest": digest,
        "phase": "build", "segments": segments, "secs": secs, "load_secs": load_secs,
        "in_process_lookups_per_sec": (lookups as f64 / lookup_secs) as u64,
        "lookup_hit_ratio": hits as f64 / lookups as f64,
        "file_mib": std::fs::metadata(&file).map(|m| m.len() >> 20).unwrap_or(0),
        "file": file, "snapshot_id": snap.meta.snapshot_id,
        "last_log_index": snap.meta.last_log_id.map(|l| l.index),
        "rss_after_load_mib": mib(rss_loaded), "peak_rss_during_build_mib": mib(vm_kb("VmHWM:")),
    })
}

async fn install(file: &Path, snapshot_id: &str, index: u64, to_dir: &Path) -> serde_json::Value {
    let meta = guardian_meta_store::types::SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
        last_membership: Default::default(),
        snapshot_id: snapshot_id.to_string(),
    };
    let (_log, mut sm) = guardian_meta_store::open(to_dir).expect("open target");
    // Receive it as a follower does: into the file openraft asks us for.
    let t = Instant::now();
    let recv = sm.begin_receiving_snapshot().await.expect("begin");
    let mut to = (*recv).into_std().await;
    let from = file.to_path_buf();
    let to = tokio::task::spawn_blocking(move || {
        let mut from = std::fs::File::open(from).expect("snapshot file");
        std::io::copy(&mut from, &mut to).expect("copy");
        to
    })
    .await
    .expect("copy task");
    let recv = Box::new(tokio::fs::File::from_std(to));
    let receive_secs = t.elapsed().as_secs_f64();
    let rss_before = vm_kb("VmRSS:");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    sm.install_snapshot(&meta, recv).await.expect("install");
    let secs = t.elapsed().as_secs_f64();
    let segments = sm.reader().read().remote_log.segment_count;
    let digest = digest(&sm.reader().read().remote_log, segments);
    json!({
        "digest": digest,
        "phase": "install", "segments": segments, "secs": secs, "receive_copy_secs": receive_secs,
        "rss_before_mib": mib(rss_before), "peak_rss_during_install_mib": mib(vm_kb("VmHWM:")),
        "rss_after_mib": mib(vm_kb("VmRSS:")),
    })
}

fn run_phase(args: &[&str]) -> serde_json::Value {
    let out = Process::new(std::env::current_exe().expect("exe"))
        .args(args)
        .output()
        .expect("run phase");
    assert!(
        out.status.success(),
        "phase {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(line.lines().last().unwrap_or("null")).expect("json");
    println!("{v}");
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("fill") => {
            let v = rt.block_on(fill(Path::new(&args[1]), args[2].parse().expect("N")));
            println!("{v}");
        }
        Some("build") => println!("{}", rt.block_on(build(Path::new(&args[1])))),
        Some("install") => {
            let index = args[3].parse().expect("index");
            let v = rt.block_on(install(
                Path::new(&args[1]),
                &args[2],
                index,
                Path::new(&args[4]),
            ));
            println!("{v}");
        }
        _ => {
            let segments: u64 = arg("--segments")
                .map(|s| s.parse().expect("--segments N"))
                .unwrap_or(10_000_000);
            let keep = arg("--dir").map(PathBuf::from);
            let tmp = tempfile::tempdir_in(keep.as_deref().unwrap_or(Path::new("/var/tmp")))
                .expect("tempdir");
            // fsync and page-cache figures on tmpfs would measure nothing.
            let fs = Process::new("stat")
                .args(["-f", "-c", "%T"])
                .arg(tmp.path())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            println!("{}", json!({"data_dir": tmp.path(), "filesystem": fs}));
            let (a, b) = (tmp.path().join("leader"), tmp.path().join("follower"));
            let n = segments.to_string();
            let fill = run_phase(&["fill", a.to_str().unwrap(), &n]);
            let build = run_phase(&["build", a.to_str().unwrap()]);
            let install = run_phase(&[
                "install",
                build["file"].as_str().expect("file"),
                build["snapshot_id"].as_str().expect("id"),
                &build["last_log_index"].to_string(),
                b.to_str().unwrap(),
            ]);
            // The installed state must be the leader's, segment for segment.
            assert_eq!(fill["segments"], segments, "fill stored every segment");
            assert_eq!(
                install["segments"], segments,
                "install restored every segment"
            );
            assert_eq!(
                install["digest"], build["digest"],
                "the installed segments differ from the leader's"
            );
            let secs = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0);
            // "build + install" is what BENCHMARKS.md's goal counts; the copy
            // stands for the network transfer, reported beside it.
            let total = secs(&build, "secs") + secs(&install, "secs");
            let end_to_end = total + secs(&install, "receive_copy_secs");
            println!(
                "{}",
                json!({
                    "summary": "snapshot", "segments": segments,
                    "fill_events_per_sec": fill["events_per_sec"],
                    "in_process_lookups_per_sec": build["in_process_lookups_per_sec"],
                    "build_secs": build["secs"], "install_secs": install["secs"],
                    "transfer_copy_secs": install["receive_copy_secs"],
                    "build_plus_install_secs": total,
                    "build_copy_install_secs": end_to_end,
                    "installed_digest_matches": true,
                    "file_mib": build["file_mib"],
                    "state_rss_mib": build["rss_after_load_mib"],
                    "build_peak_rss_mib": build["peak_rss_during_build_mib"],
                    "install_peak_rss_mib": install["peak_rss_during_install_mib"],
                })
            );
        }
    }
}
