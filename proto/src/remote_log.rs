//! Domain types of the tiered-storage metadata service (KIP-405
//! `RemoteLogMetadataManager` semantics): remote log segments, their state
//! machine, partition deletion, and the events brokers send.
//!
//! Field names follow Kafka's `RemoteLogSegmentMetadata` /
//! `RemoteLogSegmentMetadataUpdate` / `RemotePartitionDeleteMetadata` records.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{validate_name, InvalidField, KafkaUuid};

type Valid = Result<(), InvalidField>;

/// The most events one write may carry.
pub const MAX_EVENTS_PER_WRITE: usize = 10_000;
/// The most partitions one track/untrack call may name.
pub const MAX_PARTITIONS_PER_CALL: usize = 10_000;
/// Largest custom metadata accepted per segment (Kafka's own default cap,
/// `remote.log.metadata.custom.metadata.max.bytes`, is 128 bytes).
pub const MAX_CUSTOM_METADATA_BYTES: usize = 64 * 1024;

/// Kafka's `TopicIdPartition`. Identity is (`topic_id`, `partition`); the name
/// is carried along and must stay the same for a topic id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicIdPartition {
    pub topic_id: KafkaUuid,
    pub topic: String,
    pub partition: i32,
}

impl TopicIdPartition {
    /// The key the state is stored under.
    pub fn key(&self) -> PartitionKey {
        PartitionKey {
            topic_id: self.topic_id,
            partition: self.partition,
        }
    }

    /// Checks the fields; errors name them under `field`.
    pub fn validate(&self, field: &str) -> Valid {
        validate_name("topic", &self.topic).map_err(|e| e.under(field))?;
        if self.partition < 0 {
            return Err(InvalidField::new("partition", "must be >= 0").under(field));
        }
        if self.topic_id == KafkaUuid::ZERO {
            return Err(InvalidField::new("topic_id", "must not be the zero uuid").under(field));
        }
        Ok(())
    }
}

impl fmt::Display for TopicIdPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}-{}", self.topic_id, self.topic, self.partition)
    }
}

/// (topic id, partition): how partitions are keyed in memory and on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionKey {
    pub topic_id: KafkaUuid,
    pub partition: i32,
}

/// `Display` and `FromStr` by Kafka's state names (`as_str` over `ALL`).
macro_rules! kafka_state_names {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = InvalidField;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::ALL
                    .into_iter()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = <$t>::ALL.iter().map(|st| st.as_str()).collect();
                        InvalidField::new(
                            "state",
                            format!("{s:?} is not one of {}", names.join(", ")),
                        )
                    })
            }
        }
    };
}

/// Kafka's `RemoteLogSegmentState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SegmentState {
    CopySegmentStarted,
    CopySegmentFinished,
    DeleteSegmentStarted,
    DeleteSegmentFinished,
}

impl SegmentState {
    pub const ALL: [SegmentState; 4] = [
        SegmentState::CopySegmentStarted,
        SegmentState::CopySegmentFinished,
        SegmentState::DeleteSegmentStarted,
        SegmentState::DeleteSegmentFinished,
    ];

    /// Kafka's `RemoteLogSegmentState.isValidTransition`: a new segment must
    /// start in COPY_SEGMENT_STARTED; self-transitions are idempotent retries;
    /// STARTED → DELETE_STARTED is the failed-copy path.
    pub fn is_valid_transition(from: Option<SegmentState>, to: SegmentState) -> bool {
        use SegmentState::*;
        match from {
            None => to == CopySegmentStarted,
            Some(f) if f == to => true,
            Some(CopySegmentStarted) => matches!(to, CopySegmentFinished | DeleteSegmentStarted),
            Some(CopySegmentFinished) => to == DeleteSegmentStarted,
            Some(DeleteSegmentStarted) => to == DeleteSegmentFinished,
            Some(DeleteSegmentFinished) => false,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SegmentState::CopySegmentStarted => "COPY_SEGMENT_STARTED",
            SegmentState::CopySegmentFinished => "COPY_SEGMENT_FINISHED",
            SegmentState::DeleteSegmentStarted => "DELETE_SEGMENT_STARTED",
            SegmentState::DeleteSegmentFinished => "DELETE_SEGMENT_FINISHED",
        }
    }
}

kafka_state_names!(SegmentState);

/// Kafka's `RemotePartitionDeleteState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PartitionDeleteState {
    DeletePartitionMarked,
    DeletePartitionStarted,
    DeletePartitionFinished,
}

impl PartitionDeleteState {
    pub const ALL: [PartitionDeleteState; 3] = [
        PartitionDeleteState::DeletePartitionMarked,
        PartitionDeleteState::DeletePartitionStarted,
        PartitionDeleteState::DeletePartitionFinished,
    ];

    /// MARKED → STARTED → FINISHED, one step at a time; self-transitions are
    /// idempotent retries.
    pub fn is_valid_transition(from: Option<Self>, to: Self) -> bool {
        use PartitionDeleteState::*;
        match from {
            None => to == DeletePartitionMarked,
            Some(f) if f == to => true,
            Some(DeletePartitionMarked) => to == DeletePartitionStarted,
            Some(DeletePartitionStarted) => to == DeletePartitionFinished,
            Some(DeletePartitionFinished) => false,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            PartitionDeleteState::DeletePartitionMarked => "DELETE_PARTITION_MARKED",
            PartitionDeleteState::DeletePartitionStarted => "DELETE_PARTITION_STARTED",
            PartitionDeleteState::DeletePartitionFinished => "DELETE_PARTITION_FINISHED",
        }
    }
}

kafka_state_names!(PartitionDeleteState);

/// A remote log segment's metadata (Kafka's `RemoteLogSegmentMetadata`
/// without the partition, which the container carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub id: KafkaUuid,
    pub start_offset: i64,
    pub end_offset: i64,
    pub broker_id: i32,
    pub max_timestamp_ms: i64,
    pub event_timestamp_ms: i64,
    /// (leader epoch, first offset of that epoch in the segment), sorted by
    /// epoch, never empty.
    pub leader_epochs: Vec<(i32, i64)>,
    pub size_in_bytes: i64,
    pub custom_metadata: Option<Vec<u8>>,
    pub state: SegmentState,
    /// KIP-1058: true when the segment's transaction index is empty.
    pub txn_index_empty: bool,
}

impl Segment {
    /// The last offset of `epoch` inside this segment: the next epoch's start
    /// − 1, or the segment's end offset (Kafka's `highestOffsetForEpoch`).
    pub fn epoch_end_offset(&self, epoch: i32) -> i64 {
        match self.leader_epochs.iter().find(|(e, _)| *e > epoch) {
            Some((_, next_start)) => next_start - 1,
            None => self.end_offset,
        }
    }

    /// Checks the fields; errors name them under `field`.
    pub fn validate(&self, field: &str) -> Valid {
        self.validate_rel().map_err(|e| e.under(field))
    }

    fn validate_rel(&self) -> Valid {
        if self.start_offset < 0 {
            return Err(InvalidField::new("start_offset", "must be >= 0"));
        }
        if self.end_offset < self.start_offset {
            return Err(InvalidField::new(
                "end_offset",
                format!(
                    "{} is below start_offset {}",
                    self.end_offset, self.start_offset
                ),
            ));
        }
        if self.broker_id < 0 {
            return Err(InvalidField::new("broker_id", "must be >= 0"));
        }
        if self.size_in_bytes < 0 {
            return Err(InvalidField::new("segment_size_in_bytes", "must be >= 0"));
        }
        if self.leader_epochs.is_empty() {
            return Err(InvalidField::new(
                "segment_leader_epochs",
                "must not be empty",
            ));
        }
        for w in self.leader_epochs.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(InvalidField::new(
                    "segment_leader_epochs",
                    format!("epoch {} is listed twice or out of order", w[1].0),
                ));
            }
        }
        if let Some((e, o)) = self.leader_epochs.iter().find(|(e, o)| *e < 0 || *o < 0) {
            return Err(InvalidField::new(
                "segment_leader_epochs",
                format!("epoch {e} → offset {o}: epochs and offsets must be >= 0"),
            ));
        }
        validate_custom("custom_metadata", &self.custom_metadata)
    }
}

fn validate_custom(field: &str, c: &Option<Vec<u8>>) -> Valid {
    match c {
        Some(c) if c.len() > MAX_CUSTOM_METADATA_BYTES => Err(InvalidField::new(
            field,
            format!(
                "{} bytes is over the {MAX_CUSTOM_METADATA_BYTES}-byte limit",
                c.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// Kafka's `RemoteLogSegmentMetadataUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentUpdate {
    pub id: KafkaUuid,
    pub broker_id: i32,
    pub event_timestamp_ms: i64,
    pub custom_metadata: Option<Vec<u8>>,
    pub state: SegmentState,
}

/// Kafka's `RemotePartitionDeleteMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDelete {
    pub broker_id: i32,
    pub event_timestamp_ms: i64,
    pub state: PartitionDeleteState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// `addRemoteLogSegmentMetadata`: the state must be COPY_SEGMENT_STARTED.
    AddSegment(Segment),
    /// `updateRemoteLogSegmentMetadata`: the state must not be COPY_SEGMENT_STARTED.
    UpdateSegment(SegmentUpdate),
    /// `putRemotePartitionDeleteMetadata`.
    DeletePartition(PartitionDelete),
}

/// One metadata event of a partition, optionally fenced by the writer's
/// partition leader epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLogEvent {
    pub partition: TopicIdPartition,
    /// The uploader's partition leader epoch; a write older than the highest
    /// epoch seen for the partition is refused.
    pub leader_epoch: Option<i32>,
    pub kind: EventKind,
}

impl RemoteLogEvent {
    /// Checks the event's own fields; errors name them under `field`.
    pub fn validate(&self, field: &str) -> Valid {
        self.validate_rel().map_err(|e| e.under(field))
    }

    fn validate_rel(&self) -> Valid {
        self.partition.validate("partition")?;
        if self.leader_epoch.is_some_and(|e| e < 0) {
            return Err(InvalidField::new("leader_epoch", "must be >= 0"));
        }
        match &self.kind {
            EventKind::AddSegment(s) => {
                if s.state != SegmentState::CopySegmentStarted {
                    return Err(InvalidField::new(
                        "add_segment.state",
                        format!(
                            "a new segment must be COPY_SEGMENT_STARTED, not {}",
                            s.state
                        ),
                    ));
                }
                s.validate("add_segment")
            }
            EventKind::UpdateSegment(u) => {
                if u.state == SegmentState::CopySegmentStarted {
                    return Err(InvalidField::new(
                        "update_segment.state",
                        "an update can not set COPY_SEGMENT_STARTED (use add_segment)",
                    ));
                }
                if u.broker_id < 0 {
                    return Err(InvalidField::new(
                        "update_segment.broker_id",
                        "must be >= 0",
                    ));
                }
                validate_custom("update_segment.custom_metadata", &u.custom_metadata)
            }
            EventKind::DeletePartition(d) => {
                if d.broker_id < 0 {
                    return Err(InvalidField::new(
                        "delete_partition.broker_id",
                        "must be >= 0",
                    ));
                }
                Ok(())
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::AddSegment(_) => "add_segment",
            EventKind::UpdateSegment(_) => "update_segment",
            EventKind::DeletePartition(_) => "delete_partition",
        }
    }

    /// Rough encoded size, to bound batched log entries.
    pub fn approx_size(&self) -> usize {
        let custom = match &self.kind {
            EventKind::AddSegment(s) => {
                s.custom_metadata.as_ref().map_or(0, Vec::len) + 16 * s.leader_epochs.len()
            }
            EventKind::UpdateSegment(u) => u.custom_metadata.as_ref().map_or(0, Vec::len),
            EventKind::DeletePartition(_) => 0,
        };
        96 + self.partition.topic.len() + custom
    }
}

/// A partition a broker declares it hosts (`onPartitionLeadershipChanges`).
/// A leader passes its leader epoch, which fences older uploaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedPartition {
    pub partition: TopicIdPartition,
    pub leader_epoch: Option<i32>,
}

/// Checks a track/untrack call's partition list.
pub fn validate_partitions<'a>(
    field: &str,
    parts: impl ExactSizeIterator<Item = &'a TopicIdPartition>,
) -> Valid {
    if parts.len() == 0 || parts.len() > MAX_PARTITIONS_PER_CALL {
        return Err(InvalidField::new(
            field,
            format!("must name 1..={MAX_PARTITIONS_PER_CALL} partitions"),
        ));
    }
    for (i, p) in parts.enumerate() {
        p.validate("")
            .map_err(|e| e.under(&format!("{field}[{i}]")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_segment_state_transitions() {
        use SegmentState::*;
        assert!(SegmentState::is_valid_transition(None, CopySegmentStarted));
        assert!(!SegmentState::is_valid_transition(
            None,
            CopySegmentFinished
        ));
        for s in SegmentState::ALL {
            assert!(SegmentState::is_valid_transition(Some(s), s), "{s} self");
        }
        let ok = [
            (CopySegmentStarted, CopySegmentFinished),
            (CopySegmentStarted, DeleteSegmentStarted),
            (CopySegmentFinished, DeleteSegmentStarted),
            (DeleteSegmentStarted, DeleteSegmentFinished),
        ];
        for a in SegmentState::ALL {
            for b in SegmentState::ALL {
                let want = a == b || ok.contains(&(a, b));
                assert_eq!(
                    SegmentState::is_valid_transition(Some(a), b),
                    want,
                    "{a}→{b}"
                );
            }
        }
    }

    #[test]
    fn states_parse_from_kafka_names() {
        for s in SegmentState::ALL {
            assert_eq!(s.as_str().parse::<SegmentState>().unwrap(), s);
        }
        for s in PartitionDeleteState::ALL {
            assert_eq!(s.as_str().parse::<PartitionDeleteState>().unwrap(), s);
        }
        assert!("COPY".parse::<SegmentState>().is_err());
    }

    #[test]
    fn epoch_end_offset_is_next_epoch_start_minus_one() {
        let s = Segment {
            id: KafkaUuid::ONE,
            start_offset: 0,
            end_offset: 99,
            broker_id: 0,
            max_timestamp_ms: -1,
            event_timestamp_ms: 0,
            leader_epochs: vec![(0, 0), (3, 40)],
            size_in_bytes: 1,
            custom_metadata: None,
            state: SegmentState::CopySegmentStarted,
            txn_index_empty: false,
        };
        assert_eq!(s.epoch_end_offset(0), 39);
        assert_eq!(s.epoch_end_offset(1), 39);
        assert_eq!(s.epoch_end_offset(3), 99);
        assert!(s.validate("s").is_ok());
        let bad = Segment {
            end_offset: -1,
            ..s.clone()
        };
        assert_eq!(bad.validate("s").unwrap_err().field, "s.end_offset");
        let bad = Segment {
            leader_epochs: vec![],
            ..s
        };
        assert_eq!(
            bad.validate("s").unwrap_err().field,
            "s.segment_leader_epochs"
        );
    }
}
