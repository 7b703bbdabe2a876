//! `guardian remote-log …`: the tiered-storage metadata service from the
//! command line — for operators debugging a broker, importing a
//! `__remote_log_metadata` dump, or replaying a case.
//!
//! Events and segments use the snake_case of Kafka's record fields; ids are
//! in Kafka's text form (URL-safe base64); custom metadata is base64 or null.

use std::collections::BTreeMap;
use std::io::BufRead;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::{Args, Subcommand};
use guardian_controller::client::RemoteLogStub;
use guardian_proto::domain::KafkaUuid;
use guardian_proto::pb;
use guardian_proto::remote_log::{PartitionDeleteState, SegmentState, MAX_EVENTS_PER_WRITE};
use serde::Deserialize;
use serde_json::{json, Value};

use super::registry::StaleArg;
use super::{CliError, Ctx};

#[derive(Subcommand, Debug)]
pub enum RemoteLogCmd {
    /// A broker declares it hosts the partition (as leader: pass its epoch).
    Track {
        #[command(flatten)]
        p: PartitionArgs,
        #[arg(long)]
        broker_id: i32,
        /// The broker's partition leader epoch, if it leads: fences older uploaders.
        #[arg(long)]
        leader_epoch: Option<i32>,
    },
    /// A broker stops hosting the partition.
    Untrack {
        #[command(flatten)]
        p: PartitionArgs,
        #[arg(long)]
        broker_id: i32,
    },
    /// Apply events from JSON lines (FILE or - for stdin); one result line each.
    Apply {
        /// JSON-lines file, or `-` for stdin.
        file: String,
    },
    /// The segment holding OFFSET of leader epoch EPOCH (or null).
    Get(EpochOffsetArgs),
    /// Highest offset of EPOCH ever copied to remote storage (or null).
    HighestOffset(EpochArgs),
    /// Segments of the partition (or of one leader epoch), by start offset.
    List {
        #[command(flatten)]
        p: PartitionArgs,
        #[arg(long, allow_negative_numbers = true)]
        epoch: Option<i32>,
        #[command(flatten)]
        stale: StaleArg,
    },
    /// Total size of the epoch's segments, in bytes.
    Size(EpochArgs),
    /// KIP-1058: the first segment from OFFSET, within EPOCH, with a non-empty
    /// transaction index (or null).
    NextTxnSegment(EpochOffsetArgs),
}

#[derive(Args, Debug, Clone)]
pub struct PartitionArgs {
    /// Topic id, Kafka text form.
    #[arg(long)]
    pub topic_id: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub partition: i32,
}

#[derive(Args, Debug)]
pub struct EpochArgs {
    #[command(flatten)]
    p: PartitionArgs,
    /// Leader epoch; -1 (Kafka's "no epoch") is accepted.
    #[arg(long, allow_negative_numbers = true)]
    epoch: i32,
    #[command(flatten)]
    stale: StaleArg,
}

#[derive(Args, Debug)]
pub struct EpochOffsetArgs {
    #[command(flatten)]
    p: PartitionArgs,
    /// Leader epoch; -1 (Kafka's "no epoch") is accepted.
    #[arg(long, allow_negative_numbers = true)]
    epoch: i32,
    #[arg(long, allow_negative_numbers = true)]
    offset: i64,
    #[command(flatten)]
    stale: StaleArg,
}

fn uuid(field: &str, s: &str) -> Result<KafkaUuid, String> {
    s.parse::<KafkaUuid>()
        .map_err(|e| format!("invalid {field}: {}", e.reason))
}

impl PartitionArgs {
    fn to_pb(&self) -> Result<pb::TopicIdPartition, CliError> {
        partition_pb(&self.topic_id, &self.topic, self.partition).map_err(CliError::Usage)
    }
}

fn partition_pb(
    topic_id: &str,
    topic: &str,
    partition: i32,
) -> Result<pb::TopicIdPartition, String> {
    Ok(pb::TopicIdPartition {
        topic_id: uuid("topic_id", topic_id)?.0.to_vec(),
        topic: topic.to_string(),
        partition,
    })
}

/// One line of `apply` input.
#[derive(Deserialize, Debug)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
enum JsonEvent {
    AddSegment {
        topic_id: String,
        topic: String,
        partition: i32,
        segment_id: String,
        start_offset: i64,
        end_offset: i64,
        broker_id: i32,
        max_timestamp_ms: i64,
        event_timestamp_ms: i64,
        segment_leader_epochs: BTreeMap<String, i64>,
        segment_size_in_bytes: i64,
        #[serde(default)]
        custom_metadata: Option<String>,
        state: String,
        #[serde(default)]
        txn_index_empty: bool,
        #[serde(default)]
        leader_epoch: Option<i32>,
    },
    UpdateSegment {
        topic_id: String,
        topic: String,
        partition: i32,
        segment_id: String,
        broker_id: i32,
        event_timestamp_ms: i64,
        #[serde(default)]
        custom_metadata: Option<String>,
        state: String,
        #[serde(default)]
        leader_epoch: Option<i32>,
    },
    DeletePartition {
        topic_id: String,
        topic: String,
        partition: i32,
        broker_id: i32,
        event_timestamp_ms: i64,
        state: String,
        #[serde(default)]
        leader_epoch: Option<i32>,
    },
}

fn custom(c: Option<String>) -> Result<Option<Vec<u8>>, String> {
    c.map(|s| {
        B64.decode(s.as_bytes())
            .map_err(|e| format!("invalid custom_metadata: not base64: {e}"))
    })
    .transpose()
}

fn segment_state(s: &str) -> Result<i32, String> {
    let st: SegmentState = s
        .parse()
        .map_err(|e: guardian_proto::domain::InvalidField| e.reason)?;
    Ok(guardian_proto::conv::remote_log::segment_state_to_pb(st) as i32)
}

/// Parses one JSON line into the wire event.
fn parse_event(line: &str) -> Result<pb::RemoteLogEvent, String> {
    use pb::remote_log_event::Event;
    let ev: JsonEvent = serde_json::from_str(line).map_err(|e| format!("invalid event: {e}"))?;
    let (partition, leader_epoch, event) = match ev {
        JsonEvent::AddSegment {
            topic_id,
            topic,
            partition,
            segment_id,
            start_offset,
            end_offset,
            broker_id,
            max_timestamp_ms,
            event_timestamp_ms,
            segment_leader_epochs,
            segment_size_in_bytes,
            custom_metadata,
            state,
            txn_index_empty,
            leader_epoch,
        } => {
            let mut epochs = Vec::with_capacity(segment_leader_epochs.len());
            for (e, start_offset) in segment_leader_epochs {
                let epoch = e.parse::<i32>().map_err(|_| {
                    format!("invalid segment_leader_epochs: key {e:?} is not an epoch number")
                })?;
                epochs.push(pb::EpochStartOffset {
                    epoch,
                    start_offset,
                });
            }
            let seg = pb::RemoteLogSegment {
                segment_id: uuid("segment_id", &segment_id)?.0.to_vec(),
                start_offset,
                end_offset,
                broker_id,
                max_timestamp_ms,
                event_timestamp_ms,
                segment_leader_epochs: epochs,
                segment_size_in_bytes,
                custom_metadata: custom(custom_metadata)?,
                state: segment_state(&state)?,
                txn_index_empty,
            };
            (
                partition_pb(&topic_id, &topic, partition)?,
                leader_epoch,
                Event::AddSegment(seg),
            )
        }
        JsonEvent::UpdateSegment {
            topic_id,
            topic,
            partition,
            segment_id,
            broker_id,
            event_timestamp_ms,
            custom_metadata,
            state,
            leader_epoch,
        } => (
            partition_pb(&topic_id, &topic, partition)?,
            leader_epoch,
            Event::UpdateSegment(pb::RemoteLogSegmentUpdate {
                segment_id: uuid("segment_id", &segment_id)?.0.to_vec(),
                broker_id,
                event_timestamp_ms,
                custom_metadata: custom(custom_metadata)?,
                state: segment_state(&state)?,
            }),
        ),
        JsonEvent::DeletePartition {
            topic_id,
            topic,
            partition,
            broker_id,
            event_timestamp_ms,
            state,
            leader_epoch,
        } => {
            let st: PartitionDeleteState = state
                .parse()
                .map_err(|e: guardian_proto::domain::InvalidField| e.reason)?;
            (
                partition_pb(&topic_id, &topic, partition)?,
                leader_epoch,
                Event::DeletePartition(pb::RemotePartitionDelete {
                    broker_id,
                    event_timestamp_ms,
                    state: guardian_proto::conv::remote_log::delete_state_to_pb(st) as i32,
                }),
            )
        }
    };
    Ok(pb::RemoteLogEvent {
        partition: Some(partition),
        leader_epoch,
        event: Some(event),
    })
}

/// A segment as JSON, with the same field names as `apply`'s `add_segment`.
pub fn segment_json(p: &PartitionArgs, s: &pb::RemoteLogSegment) -> Value {
    let epochs: serde_json::Map<String, Value> = s
        .segment_leader_epochs
        .iter()
        .map(|e| (e.epoch.to_string(), json!(e.start_offset)))
        .collect();
    let state = guardian_proto::conv::remote_log::segment_state_from_pb(s.state, "state")
        .map(|st| st.as_str().to_string())
        .unwrap_or_else(|_| format!("UNKNOWN({})", s.state));
    json!({
        "topic_id": p.topic_id,
        "topic": p.topic,
        "partition": p.partition,
        "segment_id": guardian_proto::conv::uuid_from_bytes(&s.segment_id, "segment_id")
            .map(|u| u.to_string())
            .unwrap_or_default(),
        "start_offset": s.start_offset,
        "end_offset": s.end_offset,
        "broker_id": s.broker_id,
        "max_timestamp_ms": s.max_timestamp_ms,
        "event_timestamp_ms": s.event_timestamp_ms,
        "segment_leader_epochs": epochs,
        "segment_size_in_bytes": s.segment_size_in_bytes,
        "custom_metadata": s.custom_metadata.as_ref().map(|c| B64.encode(c)),
        "state": state,
        "txn_index_empty": s.txn_index_empty,
    })
}

fn segments_table(p: &PartitionArgs, segs: &[pb::RemoteLogSegment]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(vec![
            "SEGMENT", "OFFSETS", "EPOCHS", "SIZE", "STATE", "BROKER", "TXN",
        ]);
    for s in segs {
        let j = segment_json(p, s);
        let epochs: Vec<String> = s
            .segment_leader_epochs
            .iter()
            .map(|e| format!("{}@{}", e.epoch, e.start_offset))
            .collect();
        t.add_row(vec![
            j["segment_id"].as_str().unwrap_or_default().to_string(),
            format!("{}..={}", s.start_offset, s.end_offset),
            epochs.join(" "),
            s.segment_size_in_bytes.to_string(),
            j["state"].as_str().unwrap_or_default().to_string(),
            s.broker_id.to_string(),
            if s.txn_index_empty { "empty" } else { "yes" }.to_string(),
        ]);
    }
    t.to_string()
}

fn print_segment(c: &Ctx, p: &PartitionArgs, s: Option<pb::RemoteLogSegment>) {
    match s {
        Some(s) => c.out.json_or_line(
            segment_json(p, &s),
            segments_table(p, std::slice::from_ref(&s)),
        ),
        None => c.out.json_or_line(Value::Null, "no such segment".into()),
    }
}

fn lookup_req(a: &EpochOffsetArgs) -> Result<pb::GetSegmentRequest, CliError> {
    Ok(pb::GetSegmentRequest {
        lookup: Some(pb::SegmentLookup {
            partition: Some(a.p.to_pb()?),
            leader_epoch: a.epoch,
            offset: a.offset,
        }),
        stale: a.stale.stale,
    })
}

fn epoch_req(a: &EpochArgs) -> Result<pb::PartitionEpochRequest, CliError> {
    Ok(pb::PartitionEpochRequest {
        partition: Some(a.p.to_pb()?),
        leader_epoch: a.epoch,
        stale: a.stale.stale,
    })
}

pub async fn run(c: &Ctx, cmd: RemoteLogCmd) -> Result<(), CliError> {
    let cl = &c.client;
    match cmd {
        RemoteLogCmd::Track {
            p,
            broker_id,
            leader_epoch,
        } => {
            let req = pb::TrackPartitionsRequest {
                broker_id,
                partitions: vec![pb::TrackedPartition {
                    partition: Some(p.to_pb()?),
                    leader_epoch,
                }],
            };
            cl.call_on(|mut s: RemoteLogStub| {
                let r = req.clone();
                async move { s.track_partitions(r).await }
            })
            .await?;
            c.out.done(&format!(
                "broker {broker_id} tracks {}-{}",
                p.topic, p.partition
            ));
        }
        RemoteLogCmd::Untrack { p, broker_id } => {
            let req = pb::UntrackPartitionsRequest {
                broker_id,
                partitions: vec![p.to_pb()?],
            };
            cl.call_on(|mut s: RemoteLogStub| {
                let r = req.clone();
                async move { s.untrack_partitions(r).await }
            })
            .await?;
            c.out.done(&format!(
                "broker {broker_id} no longer tracks {}-{}",
                p.topic, p.partition
            ));
        }
        RemoteLogCmd::Apply { file } => apply(c, &file).await?,
        RemoteLogCmd::Get(a) => {
            let req = lookup_req(&a)?;
            let r = cl
                .call_on(|mut s: RemoteLogStub| {
                    let r = req.clone();
                    async move { s.get_segment(r).await }
                })
                .await?;
            print_segment(c, &a.p, r.segment);
        }
        RemoteLogCmd::NextTxnSegment(a) => {
            let req = lookup_req(&a)?;
            let r = cl
                .call_on(|mut s: RemoteLogStub| {
                    let r = req.clone();
                    async move { s.next_segment_with_txn_index(r).await }
                })
                .await?;
            print_segment(c, &a.p, r.segment);
        }
        RemoteLogCmd::HighestOffset(a) => {
            let req = epoch_req(&a)?;
            let r = cl
                .call_on(|mut s: RemoteLogStub| {
                    let r = req.clone();
                    async move { s.highest_offset_for_epoch(r).await }
                })
                .await?;
            c.out.json_or_line(
                json!(r.offset),
                r.offset
                    .map_or_else(|| "none".to_string(), |o| o.to_string()),
            );
        }
        RemoteLogCmd::Size(a) => {
            let req = epoch_req(&a)?;
            let r = cl
                .call_on(|mut s: RemoteLogStub| {
                    let r = req.clone();
                    async move { s.remote_log_size(r).await }
                })
                .await?;
            c.out
                .json_or_line(json!(r.size_in_bytes), r.size_in_bytes.to_string());
        }
        RemoteLogCmd::List { p, epoch, stale } => {
            let req = pb::ListSegmentsRequest {
                partition: Some(p.to_pb()?),
                leader_epoch: epoch,
                stale: stale.stale,
            };
            let r = cl
                .call_on(|mut s: RemoteLogStub| {
                    let r = req.clone();
                    async move { s.list_segments(r).await }
                })
                .await?;
            let items: Vec<Value> = r.segments.iter().map(|s| segment_json(&p, s)).collect();
            c.out
                .json_or_line(Value::Array(items), segments_table(&p, &r.segments));
        }
    }
    Ok(())
}

fn result_line(outcome: &str, code: &str, message: &str) -> Value {
    json!({"result": outcome, "code": code, "message": message})
}

/// Reads JSON lines, sends them in batches (one Raft entry each), prints one
/// result line per event in input order. Exits non-zero if any event failed.
async fn apply(c: &Ctx, file: &str) -> Result<(), CliError> {
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).map_err(|e| CliError::Usage(format!("{file}: {e}")))?,
        ))
    };
    let mut parsed: Vec<Result<pb::RemoteLogEvent, String>> = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| CliError::Usage(format!("{file}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        parsed.push(parse_event(&line).map_err(|e| format!("line {}: {e}", n + 1)));
    }
    let mut failed = 0usize;
    let total = parsed.len();
    // One JSON line per event whatever the output format: the input is JSON
    // lines too, and scripts zip the two.
    let mut print = |v: Value, is_err: bool| {
        failed += usize::from(is_err);
        println!("{v}");
    };
    for chunk in parsed.chunks(MAX_EVENTS_PER_WRITE) {
        let events: Vec<pb::RemoteLogEvent> = chunk
            .iter()
            .filter_map(|e| e.as_ref().ok().cloned())
            .collect();
        let mut results = if events.is_empty() {
            Vec::new()
        } else {
            let req = pb::ApplyEventsRequest { events };
            c.client
                .call_on(|mut s: RemoteLogStub| {
                    let r = req.clone();
                    async move { s.apply_events(r).await }
                })
                .await?
                .results
        }
        .into_iter();
        for item in chunk {
            match item {
                Err(e) => print(result_line("error", "INVALID_ARGUMENT", e), true),
                Ok(_) => {
                    let r = results.next().unwrap_or_default();
                    let (name, is_err) = match pb::event_result::Outcome::try_from(r.outcome) {
                        Ok(pb::event_result::Outcome::Applied) => ("applied", false),
                        Ok(pb::event_result::Outcome::Dropped) => ("dropped", false),
                        _ => ("error", true),
                    };
                    print(result_line(name, &r.code, &r.message), is_err);
                }
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Usage(format!(
            "{failed} of {total} events failed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_event_lines() {
        let add = r#"{"event":"add_segment","topic_id":"AQEBAQEBQQGBAQEBAQEBAQ","topic":"t","partition":0,"segment_id":"AgICAgICQgKCAgICAgICAg","start_offset":0,"end_offset":99,"broker_id":1,"max_timestamp_ms":-1,"event_timestamp_ms":0,"segment_leader_epochs":{"0":0,"3":40},"segment_size_in_bytes":1024,"custom_metadata":null,"state":"COPY_SEGMENT_STARTED","txn_index_empty":false}"#;
        let e = parse_event(add).unwrap();
        let Some(pb::remote_log_event::Event::AddSegment(s)) = e.event else {
            panic!()
        };
        assert_eq!(s.segment_leader_epochs.len(), 2);
        assert_eq!(s.segment_leader_epochs[1].start_offset, 40);
        let upd = r#"{"event":"update_segment","topic_id":"AQEBAQEBQQGBAQEBAQEBAQ","topic":"t","partition":0,"segment_id":"AgICAgICQgKCAgICAgICAg","broker_id":1,"event_timestamp_ms":5,"custom_metadata":"AAE=","state":"COPY_SEGMENT_FINISHED"}"#;
        assert!(parse_event(upd).is_ok());
        let del = r#"{"event":"delete_partition","topic_id":"AQEBAQEBQQGBAQEBAQEBAQ","topic":"t","partition":0,"broker_id":1,"event_timestamp_ms":5,"state":"DELETE_PARTITION_MARKED"}"#;
        assert!(parse_event(del).is_ok());
        for bad in [
            r#"{"event":"nope"}"#,
            &add.replace("COPY_SEGMENT_STARTED", "COPY"),
            &add.replace("\"topic\":\"t\"", "\"topik\":\"t\""),
            &upd.replace("AAE=", "***"),
        ] {
            assert!(parse_event(bad).is_err(), "{bad}");
        }
    }
}
