//! Tiered-storage metadata (KIP-405) end to end: the `guardian remote-log`
//! CLI against 3 real nodes, and the same answers across a leader kill, a
//! full restart and a snapshot install.

use std::io::Write;
use std::time::Duration;

use guardian_controller::client::{AdminClient, RemoteLogStub};
use guardian_proto::domain::KafkaUuid;
use guardian_proto::pb;
use guardian_tests::{cli, wait_until, TestCluster};
use serde_json::Value;

const TOPIC: &str = "orders";

fn topic_id() -> KafkaUuid {
    KafkaUuid::from_random_bytes([7; 16])
}

fn seg_id(n: u32) -> KafkaUuid {
    let mut b = [0x22; 16];
    b[..4].copy_from_slice(&n.to_be_bytes());
    KafkaUuid::from_random_bytes(b)
}

fn tp(partition: i32) -> pb::TopicIdPartition {
    pb::TopicIdPartition {
        topic_id: topic_id().0.to_vec(),
        topic: TOPIC.into(),
        partition,
    }
}

fn add(partition: i32, n: u32, start: i64, end: i64, epochs: &[(i32, i64)]) -> pb::RemoteLogEvent {
    pb::RemoteLogEvent {
        partition: Some(tp(partition)),
        leader_epoch: None,
        event: Some(pb::remote_log_event::Event::AddSegment(
            pb::RemoteLogSegment {
                segment_id: seg_id(n).0.to_vec(),
                start_offset: start,
                end_offset: end,
                broker_id: 1,
                max_timestamp_ms: 1000,
                event_timestamp_ms: 1,
                segment_leader_epochs: epochs
                    .iter()
                    .map(|&(epoch, start_offset)| pb::EpochStartOffset {
                        epoch,
                        start_offset,
                    })
                    .collect(),
                segment_size_in_bytes: 1 << 20,
                custom_metadata: None,
                state: pb::RemoteLogSegmentState::CopySegmentStarted as i32,
                txn_index_empty: !n.is_multiple_of(3),
            },
        )),
    }
}

fn set(partition: i32, n: u32, state: pb::RemoteLogSegmentState) -> pb::RemoteLogEvent {
    pb::RemoteLogEvent {
        partition: Some(tp(partition)),
        leader_epoch: None,
        event: Some(pb::remote_log_event::Event::UpdateSegment(
            pb::RemoteLogSegmentUpdate {
                segment_id: seg_id(n).0.to_vec(),
                broker_id: 2,
                event_timestamp_ms: 2,
                custom_metadata: None,
                state: state as i32,
            },
        )),
    }
}

async fn track(cl: &AdminClient, partitions: i32) {
    let req = pb::TrackPartitionsRequest {
        broker_id: 1,
        partitions: (0..partitions)
            .map(|p| pb::TrackedPartition {
                partition: Some(tp(p)),
                leader_epoch: Some(0),
            })
            .collect(),
    };
    cl.call_on(|mut s: RemoteLogStub| {
        let r = req.clone();
        async move { s.track_partitions(r).await }
    })
    .await
    .unwrap();
}

async fn apply(cl: &AdminClient, events: Vec<pb::RemoteLogEvent>) -> Vec<pb::EventResult> {
    let req = pb::ApplyEventsRequest { events };
    cl.call_on(|mut s: RemoteLogStub| {
        let r = req.clone();
        async move { s.apply_events(r).await }
    })
    .await
    .unwrap()
    .results
}

/// Uploads `segs` segments per partition: 100 offsets each, a new leader
/// epoch every 7 segments, every 5th segment re-uploaded over a longer
/// range (superseding), every 4th deleted.
fn workload(partitions: i32, segs: u32) -> Vec<pb::RemoteLogEvent> {
    use pb::RemoteLogSegmentState::*;
    let mut ev = Vec::new();
    for p in 0..partitions {
        for i in 0..segs {
            let n = p as u32 * 10_000 + i;
            let start = i as i64 * 100;
            let epoch = (i / 7) as i32;
            let epochs = if i % 7 == 0 && i > 0 {
                vec![(epoch - 1, start), (epoch, start + 50)]
            } else {
                vec![(epoch, start)]
            };
            ev.push(add(p, n, start, start + 99, &epochs));
            ev.push(set(p, n, CopySegmentFinished));
            if i % 5 == 4 {
                // A re-upload from the segment's start that reaches further.
                let n2 = n + 5_000;
                ev.push(add(p, n2, start, start + 149, &[(epoch, start)]));
                ev.push(set(p, n2, CopySegmentFinished));
            }
            if i % 4 == 1 {
                ev.push(set(p, n, DeleteSegmentStarted));
                ev.push(set(p, n, DeleteSegmentFinished));
            }
        }
    }
    ev
}

/// Every read answer for the workload, as comparable text.
async fn answers(cl: &AdminClient, partitions: i32, segs: u32, stale: bool) -> String {
    let mut lookups = Vec::new();
    for p in 0..partitions {
        for o in (0..segs as i64 * 100 + 200).step_by(37) {
            for e in [(o / 700) as i32, (o / 700) as i32 + 1] {
                lookups.push(pb::SegmentLookup {
                    partition: Some(tp(p)),
                    leader_epoch: e,
                    offset: o,
                });
            }
        }
    }
    let req = pb::GetSegmentsRequest { lookups, stale };
    let got = cl
        .call_on(|mut s: RemoteLogStub| {
            let r = req.clone();
            async move { s.get_segments(r).await }
        })
        .await
        .unwrap();
    let mut out = format!("{:?}\n", got.results);
    for p in 0..partitions {
        for e in 0..(segs / 7 + 2) as i32 {
            let q = pb::PartitionEpochRequest {
                partition: Some(tp(p)),
                leader_epoch: e,
                stale,
            };
            let h = cl
                .call_on(|mut s: RemoteLogStub| {
                    let r = q.clone();
                    async move { s.highest_offset_for_epoch(r).await }
                })
                .await
                .unwrap();
            let l = pb::ListSegmentsRequest {
                partition: Some(tp(p)),
                leader_epoch: Some(e),
                stale,
            };
            let list = cl
                .call_on(|mut s: RemoteLogStub| {
                    let r = l.clone();
                    async move { s.list_segments(r).await }
                })
                .await
                .unwrap();
            out.push_str(&format!("{p}/{e}: {:?} {:?}\n", h.offset, list.segments));
        }
    }
    out
}

fn count_found(answers: &str) -> usize {
    answers.matches("segment: Some").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_cli_track_apply_and_query() {
    let c = TestCluster::start(3).await;
    c.wait_leader(Duration::from_secs(10)).await;
    let ep = c.endpoints().join(",");
    let tid = topic_id().to_string();
    let part = [
        "--topic-id",
        tid.as_str(),
        "--topic",
        TOPIC,
        "--partition",
        "0",
    ];
    let run = |args: &[&str]| {
        let mut a = vec!["--endpoints", ep.as_str()];
        a.extend_from_slice(args);
        cli(&a)
    };
    let with_part = |cmd: &str, extra: &[&str]| {
        let mut a = vec!["remote-log", cmd];
        a.extend_from_slice(&part);
        a.extend_from_slice(extra);
        a.extend_from_slice(&["-o", "json"]);
        run(&a)
    };

    // Unknown partition: reads NOT_FOUND, writes FAILED_PRECONDITION.
    let (code, _, err) = with_part("get", &["--epoch", "0", "--offset", "5"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim(),
        format!("error: NOT_FOUND: remote log metadata of partition {tid}:{TOPIC}-0 (never tracked, or deleted) not found")
    );
    let s1 = seg_id(1).to_string();
    let s2 = seg_id(2).to_string();
    let line = |ev: &str, rest: &str| {
        format!(r#"{{"event":"{ev}","topic_id":"{tid}","topic":"{TOPIC}","partition":0,{rest}}}"#)
    };
    let add1 = line(
        "add_segment",
        &format!(
            r#""segment_id":"{s1}","start_offset":0,"end_offset":99,"broker_id":1,"max_timestamp_ms":-1,"event_timestamp_ms":0,"segment_leader_epochs":{{"0":0,"3":40}},"segment_size_in_bytes":1024,"custom_metadata":null,"state":"COPY_SEGMENT_STARTED","txn_index_empty":false"#
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, format!("{add1}\n")).unwrap();
    let (code, out, _) = run(&["remote-log", "apply", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(out.contains("FAILED_PRECONDITION"), "{out}");

    let (code, _, err) = with_part("track", &["--broker-id", "1", "--leader-epoch", "3"]);
    assert_eq!(code, 0, "{err}");
    let fin1 = line(
        "update_segment",
        &format!(
            r#""segment_id":"{s1}","broker_id":1,"event_timestamp_ms":5,"custom_metadata":"AAE=","state":"COPY_SEGMENT_FINISHED""#
        ),
    );
    let add2 = line(
        "add_segment",
        &format!(
            r#""segment_id":"{s2}","start_offset":100,"end_offset":199,"broker_id":1,"max_timestamp_ms":-1,"event_timestamp_ms":0,"segment_leader_epochs":{{"3":100}},"segment_size_in_bytes":2048,"custom_metadata":null,"state":"COPY_SEGMENT_STARTED","txn_index_empty":true"#
        ),
    );
    let fin2 = add2
        .replace("\"event\":\"add_segment\"", "\"event\":\"update_segment\"")
        .replace("COPY_SEGMENT_STARTED", "COPY_SEGMENT_FINISHED");
    let fin2 = fin2.replace(
        r#","start_offset":100,"end_offset":199,"broker_id":1,"max_timestamp_ms":-1,"event_timestamp_ms":0,"segment_leader_epochs":{"3":100},"segment_size_in_bytes":2048,"custom_metadata":null"#,
        r#","broker_id":1,"event_timestamp_ms":6,"custom_metadata":null"#,
    )
    .replace(r#","txn_index_empty":true"#, "");
    let readd1 = add1.clone();
    let fenced = add2.replace("\"partition\":0,", "\"partition\":0,\"leader_epoch\":2,");
    let input = [
        add1.as_str(),
        fin1.as_str(),
        "{not json",
        add2.as_str(),
        fin2.as_str(),
        readd1.as_str(),
        fenced.as_str(),
    ]
    .join("\n");
    let mut child = std::process::Command::new(guardian_tests::guardian_bin())
        .args(["--endpoints", ep.as_str(), "remote-log", "apply", "-"])
        .env_remove("GUARDIAN_ENDPOINTS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = results
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["applied", "applied", "error", "applied", "applied", "dropped", "error"],
        "{stdout}"
    );
    assert_eq!(results[2]["code"], "INVALID_ARGUMENT");
    assert_eq!(results[6]["code"], "FAILED_PRECONDITION");
    assert!(results[6]["message"].as_str().unwrap().contains("fenced"));
    assert_ne!(
        o.status.code(),
        Some(0),
        "errors make the exit code non-zero"
    );

    // Reads.
    let json = |cmd: &str, extra: &[&str]| {
        let (code, out, err) = with_part(cmd, extra);
        assert_eq!(code, 0, "{cmd}: {err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let got = json("get", &["--epoch", "3", "--offset", "45"]);
    assert_eq!(got["segment_id"], s1.as_str());
    assert_eq!(got["segment_leader_epochs"]["3"], 40);
    assert_eq!(got["custom_metadata"], "AAE=");
    assert_eq!(got["state"], "COPY_SEGMENT_FINISHED");
    assert_eq!(got["topic"], TOPIC);
    assert_eq!(
        json("get", &["--epoch", "0", "--offset", "45"]),
        Value::Null
    );
    assert_eq!(
        json("get", &["--epoch", "3", "--offset", "150"])["segment_id"],
        s2.as_str()
    );
    assert_eq!(json("highest-offset", &["--epoch", "0"]), 39);
    assert_eq!(json("highest-offset", &["--epoch", "3"]), 199);
    assert_eq!(json("highest-offset", &["--epoch", "9"]), Value::Null);
    let list = json("list", &[]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(json("list", &["--epoch", "0"]).as_array().unwrap().len(), 1);
    assert_eq!(json("size", &["--epoch", "3"]), 1024 + 2048);
    // Seg 1 has a transaction index, seg 2 does not.
    assert_eq!(
        json("next-txn-segment", &["--epoch", "3", "--offset", "40"])["segment_id"],
        s1.as_str()
    );
    assert_eq!(
        json("next-txn-segment", &["--epoch", "3", "--offset", "100"]),
        Value::Null
    );
    // Negative epochs and offsets, typed as operators type them: Kafka's
    // RemoteLogMetadataCache answers "no segment" / empty / 0, so does this.
    assert_eq!(
        json("get", &["--epoch", "-1", "--offset", "45"]),
        Value::Null
    );
    assert_eq!(
        json("get", &["--epoch", "3", "--offset", "-1"]),
        Value::Null
    );
    assert_eq!(json("highest-offset", &["--epoch", "-1"]), Value::Null);
    assert_eq!(json("size", &["--epoch", "-1"]), 0);
    assert_eq!(json("list", &["--epoch", "-1"]), serde_json::json!([]));
    assert_eq!(
        json("next-txn-segment", &["--epoch", "-1", "--offset", "-5"]),
        Value::Null
    );
    // Untracked by its only broker: still readable, no longer writable.
    let (code, out, err) = with_part("untrack", &["--broker-id", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["ok"],
        true,
        "{out}"
    );
    assert_eq!(
        json("get", &["--epoch", "3", "--offset", "45"])["segment_id"],
        s1.as_str()
    );
    let del2 = line(
        "update_segment",
        &format!(
            r#""segment_id":"{s2}","broker_id":1,"event_timestamp_ms":9,"custom_metadata":null,"state":"DELETE_SEGMENT_STARTED""#
        ),
    );
    std::fs::write(&file, format!("{del2}\n")).unwrap();
    let (code, out, err) = run(&["remote-log", "apply", file.to_str().unwrap(), "-o", "json"]);
    assert_ne!(code, 0, "a failed event fails the command");
    assert_eq!(err.trim(), "error: 1 of 1 events failed");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (r["result"].as_str(), r["code"].as_str()),
        (Some("error"), Some("FAILED_PRECONDITION")),
        "{r}"
    );
    assert_eq!(
        json("list", &[]).as_array().unwrap().len(),
        2,
        "nothing changed"
    );

    // Malformed input names the field.
    let (code, _, err) = run(&[
        "remote-log",
        "get",
        "--topic-id",
        "not-a-uuid",
        "--topic",
        TOPIC,
        "--partition",
        "0",
        "--epoch",
        "0",
        "--offset",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: invalid topic_id: \"not-a-uuid\" is not URL-safe base64"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t61_same_answers_across_leader_kill_and_full_restart() {
    let (parts, segs) = (4, 60);
    let mut c = TestCluster::start(3).await;
    let cl = c.client();
    track(&cl, parts).await;
    let events = workload(parts, segs);
    for chunk in events.chunks(500) {
        let res = apply(&cl, chunk.to_vec()).await;
        assert!(
            res.iter()
                .all(|r| r.outcome == pb::event_result::Outcome::Applied as i32),
            "{res:?}"
        );
    }
    let before = answers(&cl, parts, segs, false).await;
    assert!(count_found(&before) > 100, "the workload is served");

    let leader = c.wait_leader(Duration::from_secs(10)).await;
    c.kill(leader);
    let cl = c.client();
    assert_eq!(
        answers(&cl, parts, segs, false).await,
        before,
        "after the leader's kill"
    );
    c.restart(leader);
    wait_until("restarted node serves", Duration::from_secs(10), || async {
        c.node_status(leader).await
    })
    .await;

    for id in 1..=3 {
        c.stop(id);
    }
    for id in 1..=3 {
        c.restart(id);
    }
    c.wait_leader(Duration::from_secs(15)).await;
    let cl = c.client();
    assert_eq!(
        answers(&cl, parts, segs, false).await,
        before,
        "after a full restart"
    );
    // Every node answers the same from its own state.
    for n in &c.nodes {
        let only = AdminClient::new(std::slice::from_ref(&n.admin), None).unwrap();
        let a = wait_until("node caught up", Duration::from_secs(10), || async {
            let a = answers(&only, parts, segs, true).await;
            (a == before).then_some(a)
        })
        .await;
        assert_eq!(a, before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t62_lagging_node_rebuilds_remote_log_state_from_a_snapshot() {
    let extra = "[raft]\nsnapshot-logs-since-last = 100000\nmax-in-snapshot-log-to-keep = 0\nsnapshot-chunk-bytes = 65536\n";
    let (parts, segs) = (3, 50);
    let mut c = TestCluster::start_with(3, extra).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let lagger = c.nodes.iter().find(|n| n.id != leader).unwrap().id;
    c.kill(lagger);
    let cl = c.client();
    track(&cl, parts).await;
    for chunk in workload(parts, segs).chunks(300) {
        let res = apply(&cl, chunk.to_vec()).await;
        assert_eq!(res.len(), chunk.len());
        assert!(
            res.iter()
                .all(|r| r.outcome == pb::event_result::Outcome::Applied as i32),
            "{res:?}"
        );
    }
    let before = answers(&cl, parts, segs, false).await;
    // 3 partitions × 50 segments: most lookups find a segment.
    assert!(count_found(&before) > 100, "the workload is served");
    let leader_ep = c.node(leader).admin.clone();
    let snap = cl
        .stub(&leader_ep)
        .unwrap()
        .trigger_snapshot(pb::TriggerSnapshotRequest {})
        .await
        .unwrap()
        .into_inner()
        .snapshot_index;
    wait_until("leader purges its log", Duration::from_secs(10), || async {
        let s = c.node_status(leader).await?;
        (s.purged_index > 0).then_some(())
    })
    .await;
    c.restart(lagger);
    let s = wait_until(
        "lagger installs the snapshot",
        Duration::from_secs(30),
        || async {
            let s = c.node_status(lagger).await?;
            // Applied and snapshot index are separate metrics updates.
            (s.last_applied_index >= snap && s.snapshot_index >= snap).then_some(s)
        },
    )
    .await;
    assert!(s.snapshot_index >= snap, "caught up without a snapshot");
    let only = AdminClient::new(&[c.node(lagger).admin.clone()], None).unwrap();
    assert_eq!(answers(&only, parts, segs, true).await, before);
    // And again after it restarts from what it installed.
    c.stop(lagger);
    c.restart(lagger);
    let only = AdminClient::new(&[c.node(lagger).admin.clone()], None).unwrap();
    let a = wait_until(
        "lagger answers after restart",
        Duration::from_secs(15),
        || async {
            let req = pb::GetSegmentsRequest {
                lookups: vec![pb::SegmentLookup {
                    partition: Some(tp(0)),
                    leader_epoch: 0,
                    offset: 0,
                }],
                stale: true,
            };
            let mut s: RemoteLogStub = only.stub_on(&only.endpoints()[0]).ok()?;
            s.get_segments(req).await.ok()?;
            Some(answers(&only, parts, segs, true).await)
        },
    )
    .await;
    assert_eq!(a, before);
}
