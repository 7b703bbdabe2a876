//! The robustness runner: three real `guardian server` processes under a
//! mixed load while faults are injected, every client operation recorded,
//! the history checked ([`crate::history`]). Used by the `robustness`
//! binary (long runs) and by t55 (the bounded CI run).
//!
//! Faults: SIGKILL of the leader or a follower, SIGSTOP/SIGCONT of the
//! leader (it wakes believing it leads), SIGKILL of every node at once,
//! network partitions through the raft transport's directed-link fail
//! points (the leader isolated, a follower isolated, the leader's outgoing
//! messages lost one way), added delay with jitter and message loss on every
//! link, and a slow fsync on the leader (`store::wal_sync`).
//!
//! Load, per fault phase, on keys of its own: register writes and removes
//! (placement policies of one cluster, one register per topic), linearizable
//! reads sent to each node directly (a deposed leader must not answer from
//! its own state), stale reads (checked only for values nobody wrote),
//! cluster registrations and listings (a grow-only set), id allocation
//! (no id twice) and remote-log segment uploads and listings (a grow-only
//! set; both events of an upload land together).
//!
//! Checks: linearizability per register key; grow-only sets; no
//! acknowledged write lost (a final read after healing); no id issued
//! twice; no call answered later than its deadline (plus a margin);
//! every error has a code (counted by code in the report).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardian_controller::client::{AdminClient, RemoteLogStub};
use guardian_proto::domain::KafkaUuid;
use guardian_proto::pb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{
    check_grow_only_set, check_registers, Nanos, RegCall, RegOp, RegOut, SetAdd, SetRead, Verdict,
};
use crate::TestCluster;

/// A fault the runner injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillLeader,
    KillFollower,
    PauseLeader,
    KillAll,
    IsolateLeader,
    IsolateFollower,
    OneWayLeader,
    Delay,
    Loss,
    SlowFsync,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::PauseLeader,
        Fault::KillAll,
        Fault::IsolateLeader,
        Fault::IsolateFollower,
        Fault::OneWayLeader,
        Fault::Delay,
        Fault::Loss,
        Fault::SlowFsync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillFollower => "kill-follower",
            Fault::PauseLeader => "pause-leader",
            Fault::KillAll => "kill-all",
            Fault::IsolateLeader => "isolate-leader",
            Fault::IsolateFollower => "isolate-follower",
            Fault::OneWayLeader => "one-way-leader",
            Fault::Delay => "delay",
            Fault::Loss => "loss",
            Fault::SlowFsync => "slow-fsync",
        }
    }

    /// Parses `all` or a comma-separated list of names.
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        if s == "all" {
            return Ok(Fault::ALL.to_vec());
        }
        s.split(',')
            .map(|n| {
                Fault::ALL
                    .into_iter()
                    .find(|f| f.name() == n.trim())
                    .ok_or_else(|| {
                        format!(
                            "unknown fault {n:?}; known: all, {}",
                            Fault::ALL.map(Fault::name).join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// What one fault's phase found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FaultReport {
    pub fault: String,
    /// Injections (inject, hold, heal, recover) in the phase.
    pub runs: u32,
    /// Client operations recorded.
    pub ops: u64,
    /// Failed operations by gRPC code name.
    pub errors: BTreeMap<String, u64>,
    /// Longest stretch without any acknowledged write.
    pub max_unavailable_ms: u64,
    pub violations: Vec<String>,
}

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub faults: Vec<Fault>,
    /// Length of each fault's phase (at least one injection).
    pub secs_per_fault: u64,
    pub seed: u64,
    /// How long a fault is held before it is healed.
    pub hold: Duration,
}

/// A client call's deadline; an answer later than this plus
/// [`HANG_MARGIN`] is a violation.
const CALL_DEADLINE: Duration = Duration::from_secs(4);
const HANG_MARGIN: Duration = Duration::from_secs(2);
/// Register keys per phase.
const KEYS: usize = 4;
/// The cluster the policies (registers) belong to.
const REG_CLUSTER: &str = "rob";

/// Whether a failed write may still have taken effect.
fn indeterminate(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unavailable | DeadlineExceeded | Cancelled | Unknown | Internal | Aborted
    )
}

/// The code's name; a follower's refusal naming the leader (a read sent
/// to it directly) is counted apart, as `redirect`.
fn code_name(s: &tonic::Status) -> String {
    let redirect = s.code() == tonic::Code::Unavailable
        && s.metadata()
            .get(guardian_controller::error::LEADER_ADDR_KEY)
            .is_some();
    if redirect {
        "redirect".into()
    } else {
        format!("{:?}", s.code())
    }
}

/// Everything the clients of one phase recorded.
#[derive(Default)]
struct Recorded {
    regs: Vec<RegCall>,
    stale_values: Vec<(String, u64)>,
    adds: Vec<SetAdd>,
    lists: Vec<SetRead>,
    seg_adds: Vec<SetAdd>,
    seg_lists: Vec<SetRead>,
    half_applied: Vec<String>,
    ids: Vec<String>,
    /// Ack times of every acknowledged write.
    acks: Vec<Nanos>,
    errors: BTreeMap<String, u64>,
    ops: u64,
    /// Calls answered past their deadline, and refusals no correct run
    /// gives (a unique name `ALREADY_EXISTS`, a valid write `INVALID_ARGUMENT`).
    unexpected: Vec<String>,
    /// Values every register write used (stale reads may only see these).
    written: BTreeSet<u64>,
}

struct Shared {
    start: Instant,
    rec: Mutex<Recorded>,
    stop: AtomicBool,
    phase: usize,
}

impl Shared {
    fn now(&self) -> Nanos {
        self.start.elapsed().as_nanos() as Nanos
    }

    fn record<F: FnOnce(&mut Recorded)>(&self, f: F) {
        f(&mut self.rec.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Counts one finished call; a failure by its code; a late answer.
    fn finish(&self, what: &str, invoke: Nanos, err: Option<&tonic::Status>) -> Nanos {
        let t = self.now();
        self.record(|r| {
            r.ops += 1;
            if let Some(e) = err {
                *r.errors.entry(code_name(e)).or_default() += 1;
            }
            if Duration::from_nanos(t - invoke) > CALL_DEADLINE + HANG_MARGIN {
                r.unexpected.push(format!(
                    "{what} invoked at {:.1} ms answered after {:.1} ms (deadline {CALL_DEADLINE:?})",
                    invoke as f64 / 1e6,
                    (t - invoke) as f64 / 1e6
                ));
            }
        });
        t
    }
}

fn client(c: &TestCluster) -> AdminClient {
    let mut cl = c.client();
    cl.deadline = CALL_DEADLINE;
    cl
}

fn key(phase: usize, k: usize) -> String {
    format!("p{phase}-k{k}")
}

/// A value's rack name carries the value (racks are names: `v<n>`).
fn policy(phase: usize, k: usize, v: u64) -> pb::PlacementPolicy {
    pb::PlacementPolicy {
        cluster: REG_CLUSTER.into(),
        topic: key(phase, k),
        allowed_racks: vec![format!("v{v}")],
        ..Default::default()
    }
}

/// The phase's register values in a policy listing.
fn values(phase: usize, l: &pb::ListPlacementPoliciesResponse) -> BTreeMap<String, u64> {
    let prefix = format!("p{phase}-");
    l.policies
        .iter()
        .filter(|p| p.topic.starts_with(&prefix))
        .filter_map(|p| {
            let v = p.allowed_racks.first()?.strip_prefix('v')?.parse().ok()?;
            Some((p.topic.clone(), v))
        })
        .collect()
}

/// Register writer `w`: sets (80 %) and removes (20 %) on random keys.
async fn writer(sh: Arc<Shared>, cl: AdminClient, w: u64, mut rng: StdRng) {
    let mut seq = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        seq += 1;
        let k = rng.random_range(0..KEYS);
        let phase = sh.phase;
        let invoke = sh.now();
        if rng.random_bool(0.8) {
            let v = (w << 32) | seq;
            sh.record(|r| {
                r.written.insert(v);
            });
            let req = pb::SetPlacementPolicyRequest {
                policy: Some(policy(phase, k, v)),
            };
            let res = cl
                .call(|mut s| {
                    let req = req.clone();
                    async move { s.set_placement_policy(req).await }
                })
                .await;
            let t = sh.finish("set", invoke, res.as_ref().err());
            let complete = match &res {
                Ok(_) => Some((t, RegOut::Done)),
                Err(e) if indeterminate(e.code()) => None,
                Err(e) => {
                    sh.record(|r| r.unexpected.push(format!("set refused: {e}")));
                    continue;
                }
            };
            sh.record(|r| {
                if complete.is_some() {
                    r.acks.push(t);
                }
                r.regs.push(RegCall {
                    key: key(phase, k),
                    op: RegOp::Set(v),
                    invoke,
                    complete,
                });
            });
        } else {
            let req = pb::RemovePlacementPolicyRequest {
                cluster: REG_CLUSTER.into(),
                topic: key(phase, k),
            };
            let res = cl
                .call(|mut s| {
                    let req = req.clone();
                    async move { s.remove_placement_policy(req).await }
                })
                .await;
            let t = sh.finish("remove", invoke, res.as_ref().err());
            let complete = match &res {
                Ok(_) => Some((t, RegOut::Removed(true))),
                Err(e) if e.code() == tonic::Code::NotFound => Some((t, RegOut::Removed(false))),
                Err(e) if indeterminate(e.code()) => None,
                Err(e) => {
                    sh.record(|r| r.unexpected.push(format!("remove refused: {e}")));
                    continue;
                }
            };
            sh.record(|r| {
                if matches!(complete, Some((_, RegOut::Removed(true)))) {
                    r.acks.push(t);
                }
                r.regs.push(RegCall {
                    key: key(phase, k),
                    op: RegOp::Remove,
                    invoke,
                    complete,
                });
            });
        }
    }
}

/// The policy listing from one node only (no redirect followed).
async fn policies_on(
    cl: &AdminClient,
    endpoint: &str,
    stale: bool,
) -> Result<pb::ListPlacementPoliciesResponse, tonic::Status> {
    let mut s = cl.stub(endpoint)?;
    let mut req = tonic::Request::new(pb::ListPlacementPoliciesRequest {
        cluster: REG_CLUSTER.into(),
        stale,
    });
    req.set_timeout(Duration::from_secs(2));
    match tokio::time::timeout(CALL_DEADLINE, s.list_placement_policies(req)).await {
        Ok(r) => r.map(|r| r.into_inner()),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer")),
    }
}

/// A linearizable listing read at [invoke, t], as one read of every key.
fn record_reads(
    sh: &Shared,
    phase: usize,
    invoke: Nanos,
    t: Nanos,
    l: &pb::ListPlacementPoliciesResponse,
) {
    let vals = values(phase, l);
    sh.record(|r| {
        for k in 0..KEYS {
            r.regs.push(RegCall {
                key: key(phase, k),
                op: RegOp::Read,
                invoke,
                complete: Some((t, RegOut::Value(vals.get(&key(phase, k)).copied()))),
            });
        }
    });
}

/// The phase's clusters in a listing.
fn phase_clusters(phase: usize, l: pb::ListClustersResponse) -> BTreeSet<String> {
    let prefix = format!("p{phase}-");
    l.clusters
        .into_iter()
        .map(|c| c.name)
        .filter(|c| c.starts_with(&prefix))
        .collect()
}

/// Linearizable reads sent to one node only (no redirect followed): a
/// node that is not the leader, or a deposed one, must refuse.
async fn node_reader(sh: Arc<Shared>, cl: AdminClient, endpoint: String) {
    while !sh.stop.load(Ordering::Relaxed) {
        let phase = sh.phase;
        let invoke = sh.now();
        let res = policies_on(&cl, &endpoint, false).await;
        let t = sh.finish("read", invoke, res.as_ref().err());
        match res {
            Ok(l) => record_reads(&sh, phase, invoke, t, &l),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Stale reads from every node in turn: only values some writer sent.
async fn stale_reader(sh: Arc<Shared>, cl: AdminClient, endpoints: Vec<String>) {
    let mut i = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        i += 1;
        let endpoint = &endpoints[i % endpoints.len()];
        let phase = sh.phase;
        let invoke = sh.now();
        let res = policies_on(&cl, endpoint, true).await;
        sh.finish("stale read", invoke, res.as_ref().err());
        match res {
            Ok(l) => sh.record(|r| r.stale_values.extend(values(phase, &l))),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Registers clusters `p<phase>-c<n>` and lists them (linearizable,
/// through the leader).
async fn registrar(sh: Arc<Shared>, cl: AdminClient) {
    let mut n = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        n += 1;
        let phase = sh.phase;
        let name = format!("p{phase}-c{n}");
        let invoke = sh.now();
        let req = pb::AddClusterRequest {
            cluster: Some(crate::cluster(&name)),
        };
        let res = cl
            .call(|mut s| {
                let req = req.clone();
                async move { s.add_cluster(req).await }
            })
            .await;
        let t = sh.finish("cluster add", invoke, res.as_ref().err());
        match &res {
            Err(e) if !indeterminate(e.code()) => {
                // A unique name refused (ALREADY_EXISTS after a retry the
                // request id should have answered) is a violation.
                sh.record(|r| {
                    r.unexpected
                        .push(format!("cluster add {name} refused: {e}"))
                });
            }
            _ => sh.record(|r| {
                let acked = res.is_ok().then_some(t);
                if acked.is_some() {
                    r.acks.push(t);
                }
                r.adds.push(SetAdd {
                    element: name.clone(),
                    invoke,
                    acked,
                });
            }),
        }
        if n.is_multiple_of(3) {
            let invoke = sh.now();
            let res = cl
                .call(|mut s| async move {
                    s.list_clusters(pb::ListClustersRequest { stale: false })
                        .await
                })
                .await;
            let t = sh.finish("cluster list", invoke, res.as_ref().err());
            if let Ok(l) = res {
                let elements = phase_clusters(phase, l);
                sh.record(|r| {
                    r.lists.push(SetRead {
                        invoke,
                        complete: t,
                        elements,
                    })
                });
            }
        }
    }
}

/// Allocates ids; every id seen must be new.
async fn allocator(sh: Arc<Shared>, cl: AdminClient) {
    while !sh.stop.load(Ordering::Relaxed) {
        let invoke = sh.now();
        let res = cl
            .call(|mut s| async move {
                s.allocate_ids(pb::AllocateIdsRequest {
                    kind: pb::IdKind::Topic as i32,
                    count: 3,
                })
                .await
            })
            .await;
        let t = sh.finish("ids allocate", invoke, res.as_ref().err());
        if let Ok(r) = res {
            sh.record(|rec| {
                rec.acks.push(t);
                rec.ids.extend(r.ids);
            });
        }
    }
}

fn partition(phase: usize) -> pb::TopicIdPartition {
    let mut b = [0x52; 16];
    b[..8].copy_from_slice(&(phase as u64 + 1).to_be_bytes());
    pb::TopicIdPartition {
        topic_id: KafkaUuid::from_random_bytes(b).0.to_vec(),
        topic: format!("rob-{phase}"),
        partition: 0,
    }
}

fn segment_id(phase: usize, n: u64) -> Vec<u8> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(phase as u64 + 1).to_be_bytes());
    b[8..].copy_from_slice(&n.to_be_bytes());
    KafkaUuid::from_random_bytes(b).0.to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Uploads segments (COPY_SEGMENT_STARTED and _FINISHED in one call, as
/// one log entry) of the phase's partition and lists them.
async fn uploader(sh: Arc<Shared>, cl: AdminClient) {
    use pb::remote_log_event::Event;
    let phase = sh.phase;
    let tp = partition(phase);
    let track = pb::TrackPartitionsRequest {
        broker_id: 1,
        partitions: vec![pb::TrackedPartition {
            partition: Some(tp.clone()),
            leader_epoch: Some(0),
        }],
    };
    while cl
        .call_on(|mut s: RemoteLogStub| {
            let track = track.clone();
            async move { s.track_partitions(track).await }
        })
        .await
        .is_err()
    {
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut n = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        let start = n as i64 * 100;
        let id = segment_id(phase, n);
        n += 1;
        let events = vec![
            pb::RemoteLogEvent {
                partition: Some(tp.clone()),
                leader_epoch: Some(0),
                event: Some(Event::AddSegment(pb::RemoteLogSegment {
                    segment_id: id.clone(),
                    start_offset: start,
                    end_offset: start + 99,
                    broker_id: 1,
                    max_timestamp_ms: 1_700_000_000_000,
                    event_timestamp_ms: 1_700_000_000_000,
                    segment_leader_epochs: vec![pb::EpochStartOffset {
                        epoch: 0,
                        start_offset: start,
                    }],
                    segment_size_in_bytes: 1 << 20,
                    custom_metadata: None,
                    state: pb::RemoteLogSegmentState::CopySegmentStarted as i32,
                    txn_index_empty: true,
                })),
            },
            pb::RemoteLogEvent {
                partition: Some(tp.clone()),
                leader_epoch: Some(0),
                event: Some(Event::UpdateSegment(pb::RemoteLogSegmentUpdate {
                    segment_id: id.clone(),
                    broker_id: 1,
                    event_timestamp_ms: 1_700_000_000_001,
                    custom_metadata: None,
                    state: pb::RemoteLogSegmentState::CopySegmentFinished as i32,
                })),
            },
        ];
        let invoke = sh.now();
        let req = pb::ApplyEventsRequest { events };
        let res = cl
            .call_on(|mut s: RemoteLogStub| {
                let req = req.clone();
                async move { s.apply_events(req).await }
            })
            .await;
        let t = sh.finish("remote-log apply", invoke, res.as_ref().err());
        match &res {
            Ok(r) => {
                let all = r.results.len() == 2
                    && r.results
                        .iter()
                        .all(|x| x.outcome == pb::event_result::Outcome::Applied as i32);
                sh.record(|rec| {
                    if !all {
                        rec.half_applied.push(format!(
                            "upload of segment {} answered {:?} (a retry applied twice?)",
                            hex(&id),
                            r.results
                        ));
                    }
                    rec.acks.push(t);
                    rec.seg_adds.push(SetAdd {
                        element: hex(&id),
                        invoke,
                        acked: Some(t),
                    });
                });
            }
            Err(e) if indeterminate(e.code()) => sh.record(|rec| {
                rec.seg_adds.push(SetAdd {
                    element: hex(&id),
                    invoke,
                    acked: None,
                })
            }),
            Err(e) => sh.record(|rec| {
                rec.unexpected
                    .push(format!("remote-log apply refused: {e}"))
            }),
        }
        if n.is_multiple_of(2) {
            let invoke = sh.now();
            let req = pb::ListSegmentsRequest {
                partition: Some(tp.clone()),
                leader_epoch: None,
                stale: false,
            };
            let res = cl
                .call_on(|mut s: RemoteLogStub| {
                    let req = req.clone();
                    async move { s.list_segments(req).await }
                })
                .await;
            let t = sh.finish("remote-log list", invoke, res.as_ref().err());
            if let Ok(l) = res {
                sh.record(|rec| {
                    for s in &l.segments {
                        if s.state != pb::RemoteLogSegmentState::CopySegmentFinished as i32 {
                            rec.half_applied.push(format!(
                                "segment {} listed in state {} (its two events are one entry)",
                                hex(&s.segment_id),
                                s.state
                            ));
                        }
                    }
                    rec.seg_lists.push(SetRead {
                        invoke,
                        complete: t,
                        elements: l.segments.iter().map(|s| hex(&s.segment_id)).collect(),
                    });
                });
            }
        }
    }
}

/// Injects `fault`; returns what to undo.
async fn inject(c: &mut TestCluster, fault: Fault, rng: &mut StdRng) -> Vec<Undo> {
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let followers: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
    let follower = followers[rng.random_range(0..followers.len())];
    let all: Vec<u64> = (1..=3).collect();
    let links = |nodes: &[u64], peers: &[u64]| -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        for &a in nodes {
            for &b in peers {
                if a != b {
                    v.push((a, b));
                }
            }
        }
        v
    };
    match fault {
        Fault::KillLeader => {
            c.kill(leader);
            vec![Undo::Restart(leader)]
        }
        Fault::KillFollower => {
            c.kill(follower);
            vec![Undo::Restart(follower)]
        }
        Fault::PauseLeader => {
            c.pause(leader);
            vec![Undo::Resume(leader)]
        }
        Fault::KillAll => {
            for n in 1..=3 {
                c.kill(n);
            }
            all.iter().map(|&n| Undo::Restart(n)).collect()
        }
        Fault::IsolateLeader | Fault::IsolateFollower => {
            let x = if fault == Fault::IsolateLeader {
                leader
            } else {
                follower
            };
            let mut cut = links(&[x], &all);
            cut.extend(links(&all, &[x]));
            for &(a, b) in &cut {
                c.set_link(a, b, Some("return(drop)"));
            }
            cut.into_iter().map(|(a, b)| Undo::Link(a, b)).collect()
        }
        Fault::OneWayLeader => {
            let cut = links(&[leader], &all);
            for &(a, b) in &cut {
                c.set_link(a, b, Some("return(drop)"));
            }
            cut.into_iter().map(|(a, b)| Undo::Link(a, b)).collect()
        }
        Fault::Delay => {
            let cut = links(&all, &all);
            for &(a, b) in &cut {
                c.set_link(a, b, Some("return(delay=20,jitter=40)"));
            }
            cut.into_iter().map(|(a, b)| Undo::Link(a, b)).collect()
        }
        Fault::Loss => {
            let cut = links(&all, &all);
            for &(a, b) in &cut {
                c.set_link(a, b, Some("20%return(drop)"));
            }
            cut.into_iter().map(|(a, b)| Undo::Link(a, b)).collect()
        }
        Fault::SlowFsync => {
            c.fail_point(leader, "store::wal_sync", "sleep(150)");
            vec![Undo::FailPoint(leader, "store::wal_sync")]
        }
    }
}

/// How a fault is taken back.
enum Undo {
    Restart(u64),
    Resume(u64),
    Link(u64, u64),
    FailPoint(u64, &'static str),
}

fn heal(c: &mut TestCluster, undo: Vec<Undo>) {
    for u in undo {
        match u {
            Undo::Restart(n) => c.restart(n),
            Undo::Resume(n) => c.resume(n),
            Undo::Link(a, b) => c.set_link(a, b, None),
            Undo::FailPoint(n, name) => c.fail_point(n, name, "off"),
        }
    }
}

/// Waits until every node answers, agrees on the leader and has applied
/// what the leader had committed when the wait began; `Err` with every
/// node's status if that takes longer than [`RECOVERY`].
async fn recovered(c: &TestCluster) -> Result<(), String> {
    let deadline = Instant::now() + RECOVERY;
    let mut target = None;
    loop {
        let mut statuses = Vec::new();
        for n in 1..=3 {
            statuses.push((n, c.node_status(n).await));
        }
        let leaders: BTreeSet<u64> = statuses
            .iter()
            .filter_map(|(_, s)| s.as_ref().map(|s| s.leader_id))
            .collect();
        let leader = statuses
            .iter()
            .find(|(_, s)| s.as_ref().is_some_and(|s| s.role == "leader"))
            .map(|(n, s)| (*n, s.as_ref().map_or(0, |s| s.last_applied_index)));
        if let (Some((l, applied)), true) = (leader, leaders.len() == 1) {
            let t = *target.get_or_insert(applied);
            let all = statuses.iter().all(|(_, s)| {
                s.as_ref()
                    .is_some_and(|s| s.last_applied_index >= t && s.leader_id == l)
            });
            if all {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            let shown: Vec<String> = statuses
                .iter()
                .map(|(n, s)| match s {
                    Some(s) => format!(
                        "node {n}: {} term {} leader {} log {} applied {}",
                        s.role, s.term, s.leader_id, s.last_log_index, s.last_applied_index
                    ),
                    None => format!("node {n}: no answer"),
                })
                .collect();
            return Err(format!(
                "not recovered {RECOVERY:?} after healing: {}",
                shown.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long the group may take to settle after a fault is healed.
const RECOVERY: Duration = Duration::from_secs(30);

/// Runs one fault's phase: load throughout, injections until the phase's
/// time is up, then the checks.
async fn phase(c: &mut TestCluster, phase: usize, fault: Fault, cfg: &RunConfig) -> FaultReport {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ ((phase as u64 + 1) * 0x9E37_79B9));
    let sh = Arc::new(Shared {
        start: Instant::now(),
        rec: Mutex::new(Recorded::default()),
        stop: AtomicBool::new(false),
        phase,
    });
    let endpoints = c.endpoints();
    let mut tasks = Vec::new();
    for w in 0..2u64 {
        let r = StdRng::seed_from_u64(cfg.seed.wrapping_add(w + 1).wrapping_mul(phase as u64 + 7));
        tasks.push(tokio::spawn(writer(sh.clone(), client(c), w + 1, r)));
    }
    for e in &endpoints {
        tasks.push(tokio::spawn(node_reader(sh.clone(), client(c), e.clone())));
    }
    tasks.push(tokio::spawn(stale_reader(
        sh.clone(),
        client(c),
        endpoints.clone(),
    )));
    tasks.push(tokio::spawn(registrar(sh.clone(), client(c))));
    tasks.push(tokio::spawn(allocator(sh.clone(), client(c))));
    tasks.push(tokio::spawn(uploader(sh.clone(), client(c))));

    let until = Instant::now() + Duration::from_secs(cfg.secs_per_fault);
    let mut runs = 0;
    let mut violations = Vec::new();
    loop {
        // Healthy load first, then the fault.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let undo = inject(c, fault, &mut rng).await;
        runs += 1;
        tokio::time::sleep(cfg.hold).await;
        heal(c, undo);
        if let Err(e) = recovered(c).await {
            violations.push(format!("injection {runs}: {e}"));
            break;
        }
        if Instant::now() >= until {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sh.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }

    // Final reads after healing: every acknowledged write must be there.
    let cl = client(c);
    let invoke = sh.now();
    let l = cl
        .call(|mut s| async move {
            s.list_placement_policies(pb::ListPlacementPoliciesRequest {
                cluster: REG_CLUSTER.into(),
                stale: false,
            })
            .await
        })
        .await;
    let t = sh.now();
    match l {
        Ok(l) => record_reads(&sh, phase, invoke, t, &l),
        Err(e) => violations.push(format!("final policy read failed after healing: {e}")),
    }
    let invoke = sh.now();
    match cl
        .call(|mut s| async move {
            s.list_clusters(pb::ListClustersRequest { stale: false })
                .await
        })
        .await
    {
        Ok(l) => {
            let t = sh.now();
            let elements = phase_clusters(phase, l);
            sh.record(|r| {
                r.lists.push(SetRead {
                    invoke,
                    complete: t,
                    elements,
                })
            });
        }
        Err(e) => violations.push(format!("final cluster list failed after healing: {e}")),
    }
    let invoke = sh.now();
    match cl
        .call_on(|mut s: RemoteLogStub| async move {
            s.list_segments(pb::ListSegmentsRequest {
                partition: Some(partition(phase)),
                leader_epoch: None,
                stale: false,
            })
            .await
        })
        .await
    {
        Ok(l) => {
            let t = sh.now();
            sh.record(|r| {
                r.seg_lists.push(SetRead {
                    invoke,
                    complete: t,
                    elements: l.segments.iter().map(|s| hex(&s.segment_id)).collect(),
                })
            });
        }
        Err(e) if e.code() == tonic::Code::NotFound => {}
        Err(e) => violations.push(format!("final segment list failed after healing: {e}")),
    }
    let end = sh.now();

    let rec = std::mem::take(&mut *sh.rec.lock().unwrap_or_else(|p| p.into_inner()));
    for (k, v) in check_registers(&rec.regs, 20_000_000) {
        match v {
            Verdict::Violation(m) => violations.push(format!("register {k}: {m}")),
            Verdict::Inconclusive => {
                violations.push(format!("register {k}: undecided within the step budget"))
            }
            Verdict::Linearizable => {}
        }
    }
    for (k, v) in &rec.stale_values {
        if !rec.written.contains(v) {
            violations.push(format!(
                "stale read of {k} returned v{v}, which nobody wrote"
            ));
        }
    }
    violations.extend(check_grow_only_set("clusters", &rec.adds, &rec.lists, 10));
    violations.extend(check_grow_only_set(
        "remote-log segments",
        &rec.seg_adds,
        &rec.seg_lists,
        10,
    ));
    violations.extend(rec.half_applied.iter().take(10).cloned());
    let mut seen = BTreeSet::new();
    for id in &rec.ids {
        if !seen.insert(id) {
            violations.push(format!("id {id} issued twice"));
        }
    }
    violations.extend(rec.unexpected.iter().take(10).cloned());
    let mut acks = rec.acks.clone();
    acks.push(0);
    acks.push(end);
    acks.sort_unstable();
    let max_gap = acks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    FaultReport {
        fault: fault.name().into(),
        runs,
        ops: rec.ops,
        errors: rec.errors,
        max_unavailable_ms: max_gap / 1_000_000,
        violations,
    }
}

/// Starts a 3-node cluster and runs every fault's phase in order.
pub async fn run(cfg: &RunConfig) -> Vec<FaultReport> {
    let mut c = TestCluster::start(3).await;
    let cl = client(&c);
    cl.call(|mut s| async move {
        s.add_cluster(pb::AddClusterRequest {
            cluster: Some(crate::cluster(REG_CLUSTER)),
        })
        .await
    })
    .await
    .expect("register the policies' cluster");
    let mut out = Vec::new();
    for (i, f) in cfg.faults.iter().enumerate() {
        let r = phase(&mut c, i, *f, cfg).await;
        eprintln!(
            "robustness: {} done: {} runs, {} ops, {} violations",
            r.fault,
            r.runs,
            r.ops,
            r.violations.len()
        );
        out.push(r);
    }
    out
}

/// The report as a table.
pub fn table(reports: &[FaultReport]) -> String {
    let mut s = format!(
        "{:<17} {:>4} {:>7} {:>10} {:>8}  {}\n",
        "fault", "runs", "ops", "violations", "max-gap", "errors by code"
    );
    for r in reports {
        let errs: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s.push_str(&format!(
            "{:<17} {:>4} {:>7} {:>10} {:>6}ms  {}\n",
            r.fault,
            r.runs,
            r.ops,
            r.violations.len(),
            r.max_unavailable_ms,
            errs.join(", ")
        ));
        for v in &r.violations {
            s.push_str(&format!("    violation: {v}\n"));
        }
    }
    s
}
