//! pb ⇄ domain for the tiered-storage metadata types. Field paths in errors
//! are dynamic (`events[3].add_segment.end_offset`), so these are functions
//! taking the path rather than `TryFrom` impls.

use crate::domain::{InvalidField, KafkaUuid};
use crate::pb;
use crate::remote_log::{
    EventKind, PartitionDelete, PartitionDeleteState, RemoteLogEvent, Segment, SegmentState,
    SegmentUpdate, TopicIdPartition, TrackedPartition,
};

use super::ConvError;

fn missing(field: &str) -> ConvError {
    ConvError::Invalid(InvalidField::new(field, "is required"))
}

fn uuid(b: &[u8], field: &str) -> Result<KafkaUuid, ConvError> {
    let arr: [u8; 16] = b
        .try_into()
        .map_err(|_| InvalidField::new(field, format!("{} bytes, expected 16", b.len())))?;
    Ok(KafkaUuid(arr))
}

pub fn partition_to_pb(p: &TopicIdPartition) -> pb::TopicIdPartition {
    pb::TopicIdPartition {
        topic_id: p.topic_id.0.to_vec(),
        topic: p.topic.clone(),
        partition: p.partition,
    }
}

pub fn partition_from_pb(
    p: Option<pb::TopicIdPartition>,
    field: &str,
) -> Result<TopicIdPartition, ConvError> {
    let p = p.ok_or_else(|| missing(field))?;
    Ok(TopicIdPartition {
        topic_id: uuid(&p.topic_id, "topic_id").map_err(|e| e.under(field))?,
        topic: p.topic,
        partition: p.partition,
    })
}

pub fn segment_state_to_pb(s: SegmentState) -> pb::RemoteLogSegmentState {
    match s {
        SegmentState::CopySegmentStarted => pb::RemoteLogSegmentState::CopySegmentStarted,
        SegmentState::CopySegmentFinished => pb::RemoteLogSegmentState::CopySegmentFinished,
        SegmentState::DeleteSegmentStarted => pb::RemoteLogSegmentState::DeleteSegmentStarted,
        SegmentState::DeleteSegmentFinished => pb::RemoteLogSegmentState::DeleteSegmentFinished,
    }
}

pub fn segment_state_from_pb(v: i32, field: &str) -> Result<SegmentState, ConvError> {
    match pb::RemoteLogSegmentState::try_from(v) {
        Ok(pb::RemoteLogSegmentState::CopySegmentStarted) => Ok(SegmentState::CopySegmentStarted),
        Ok(pb::RemoteLogSegmentState::CopySegmentFinished) => Ok(SegmentState::CopySegmentFinished),
        Ok(pb::RemoteLogSegmentState::DeleteSegmentStarted) => {
            Ok(SegmentState::DeleteSegmentStarted)
        }
        Ok(pb::RemoteLogSegmentState::DeleteSegmentFinished) => {
            Ok(SegmentState::DeleteSegmentFinished)
        }
        _ => Err(InvalidField::new(field, format!("{v} is not a segment state")).into()),
    }
}

pub fn delete_state_to_pb(s: PartitionDeleteState) -> pb::RemotePartitionDeleteState {
    match s {
        PartitionDeleteState::DeletePartitionMarked => {
            pb::RemotePartitionDeleteState::DeletePartitionMarked
        }
        PartitionDeleteState::DeletePartitionStarted => {
            pb::RemotePartitionDeleteState::DeletePartitionStarted
        }
        PartitionDeleteState::DeletePartitionFinished => {
            pb::RemotePartitionDeleteState::DeletePartitionFinished
        }
    }
}

/// `UNSPECIFIED` → `None`.
pub fn delete_state_from_pb(
    v: i32,
    field: &str,
) -> Result<Option<PartitionDeleteState>, ConvError> {
    match pb::RemotePartitionDeleteState::try_from(v) {
        Ok(pb::RemotePartitionDeleteState::Unspecified) => Ok(None),
        Ok(pb::RemotePartitionDeleteState::DeletePartitionMarked) => {
            Ok(Some(PartitionDeleteState::DeletePartitionMarked))
        }
        Ok(pb::RemotePartitionDeleteState::DeletePartitionStarted) => {
            Ok(Some(PartitionDeleteState::DeletePartitionStarted))
        }
        Ok(pb::RemotePartitionDeleteState::DeletePartitionFinished) => {
            Ok(Some(PartitionDeleteState::DeletePartitionFinished))
        }
        Err(_) => {
            Err(InvalidField::new(field, format!("{v} is not a partition delete state")).into())
        }
    }
}

pub fn segment_to_pb(s: &Segment) -> pb::RemoteLogSegment {
    pb::RemoteLogSegment {
        segment_id: s.id.0.to_vec(),
        start_offset: s.start_offset,
        end_offset: s.end_offset,
        broker_id: s.broker_id,
        max_timestamp_ms: s.max_timestamp_ms,
        event_timestamp_ms: s.event_timestamp_ms,
        segment_leader_epochs: s
            .leader_epochs
            .iter()
            .map(|&(epoch, start_offset)| pb::EpochStartOffset {
                epoch,
                start_offset,
            })
            .collect(),
        segment_size_in_bytes: s.size_in_bytes,
        custom_metadata: s.custom_metadata.clone(),
        state: segment_state_to_pb(s.state) as i32,
        txn_index_empty: s.txn_index_empty,
    }
}

/// Leader epochs are sorted here; duplicates are left for validation to name.
pub fn segment_from_pb(s: pb::RemoteLogSegment, field: &str) -> Result<Segment, ConvError> {
    segment_from_pb_rel(s).map_err(|e| e.under(field))
}

fn segment_from_pb_rel(s: pb::RemoteLogSegment) -> Result<Segment, ConvError> {
    let mut leader_epochs: Vec<(i32, i64)> = s
        .segment_leader_epochs
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    leader_epochs.sort_unstable();
    Ok(Segment {
        id: uuid(&s.segment_id, "segment_id")?,
        start_offset: s.start_offset,
        end_offset: s.end_offset,
        broker_id: s.broker_id,
        max_timestamp_ms: s.max_timestamp_ms,
        event_timestamp_ms: s.event_timestamp_ms,
        leader_epochs,
        size_in_bytes: s.segment_size_in_bytes,
        custom_metadata: s.custom_metadata,
        state: segment_state_from_pb(s.state, "state")?,
        txn_index_empty: s.txn_index_empty,
    })
}

pub fn event_to_pb(e: &RemoteLogEvent) -> pb::RemoteLogEvent {
    use pb::remote_log_event::Event;
    let event = match &e.kind {
        EventKind::AddSegment(s) => Event::AddSegment(segment_to_pb(s)),
        EventKind::UpdateSegment(u) => Event::UpdateSegment(pb::RemoteLogSegmentUpdate {
            segment_id: u.id.0.to_vec(),
            broker_id: u.broker_id,
            event_timestamp_ms: u.event_timestamp_ms,
            custom_metadata: u.custom_metadata.clone(),
            state: segment_state_to_pb(u.state) as i32,
        }),
        EventKind::DeletePartition(d) => Event::DeletePartition(pb::RemotePartitionDelete {
            broker_id: d.broker_id,
            event_timestamp_ms: d.event_timestamp_ms,
            state: delete_state_to_pb(d.state) as i32,
        }),
    };
    pb::RemoteLogEvent {
        partition: Some(partition_to_pb(&e.partition)),
        leader_epoch: e.leader_epoch,
        event: Some(event),
    }
}

pub fn event_from_pb(e: pb::RemoteLogEvent, field: &str) -> Result<RemoteLogEvent, ConvError> {
    event_from_pb_rel(e).map_err(|err| err.under(field))
}

fn event_from_pb_rel(e: pb::RemoteLogEvent) -> Result<RemoteLogEvent, ConvError> {
    use pb::remote_log_event::Event;
    let partition = partition_from_pb(e.partition, "partition")?;
    let kind = match e.event.ok_or_else(|| missing("event"))? {
        Event::AddSegment(s) => EventKind::AddSegment(segment_from_pb(s, "add_segment")?),
        Event::UpdateSegment(u) => {
            let under = |e: ConvError| e.under("update_segment");
            EventKind::UpdateSegment(SegmentUpdate {
                id: uuid(&u.segment_id, "segment_id").map_err(under)?,
                broker_id: u.broker_id,
                event_timestamp_ms: u.event_timestamp_ms,
                custom_metadata: u.custom_metadata,
                state: segment_state_from_pb(u.state, "state").map_err(under)?,
            })
        }
        Event::DeletePartition(d) => {
            let f = "delete_partition.state";
            EventKind::DeletePartition(PartitionDelete {
                broker_id: d.broker_id,
                event_timestamp_ms: d.event_timestamp_ms,
                state: delete_state_from_pb(d.state, f)?.ok_or_else(|| missing(f))?,
            })
        }
    };
    Ok(RemoteLogEvent {
        partition,
        leader_epoch: e.leader_epoch,
        kind,
    })
}

pub fn tracked_to_pb(t: &TrackedPartition) -> pb::TrackedPartition {
    pb::TrackedPartition {
        partition: Some(partition_to_pb(&t.partition)),
        leader_epoch: t.leader_epoch,
    }
}

pub fn tracked_from_pb(
    t: pb::TrackedPartition,
    field: &str,
) -> Result<TrackedPartition, ConvError> {
    Ok(TrackedPartition {
        partition: partition_from_pb(t.partition, "partition").map_err(|e| e.under(field))?,
        leader_epoch: t.leader_epoch,
    })
}

/// Converts a list; an item's error is named by its index (`events[3]…`).
/// `f` gets `""` as its field path (errors relative to the item).
pub fn list_from_pb<P, T>(
    items: Vec<P>,
    field: &str,
    f: impl Fn(P, &str) -> Result<T, ConvError>,
) -> Result<Vec<T>, ConvError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, p)| f(p, "").map_err(|e| e.under(&format!("{field}[{i}]"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trip_and_field_paths() {
        let e = RemoteLogEvent {
            partition: TopicIdPartition {
                topic_id: KafkaUuid::from_random_bytes([3; 16]),
                topic: "t".into(),
                partition: 2,
            },
            leader_epoch: Some(4),
            kind: EventKind::AddSegment(Segment {
                id: KafkaUuid::from_random_bytes([9; 16]),
                start_offset: 0,
                end_offset: 10,
                broker_id: 1,
                max_timestamp_ms: 5,
                event_timestamp_ms: 6,
                leader_epochs: vec![(0, 0), (2, 5)],
                size_in_bytes: 100,
                custom_metadata: Some(vec![1, 2]),
                state: SegmentState::CopySegmentStarted,
                txn_index_empty: true,
            }),
        };
        assert_eq!(event_from_pb(event_to_pb(&e), "e").unwrap(), e);
        let mut bad = event_to_pb(&e);
        bad.partition.as_mut().unwrap().topic_id = vec![1];
        let err = event_from_pb(bad, "events[3]").unwrap_err();
        assert_eq!(err.field(), "events[3].partition.topic_id");
        let mut bad = event_to_pb(&e);
        bad.event = None;
        assert_eq!(event_from_pb(bad, "e").unwrap_err().field(), "e.event");
    }
}
