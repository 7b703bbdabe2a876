//! The `RemoteLogMetadata` gRPC service: Guardian as Kafka tiered storage's
//! `RemoteLogMetadataManager` (KIP-405). Thin handlers: authorize, convert,
//! write through Raft or read the applied state, convert back.
//!
//! Writes return after the entry is committed and applied (read-your-writes).
//! Reads are linearizable unless the request sets `stale`.

use guardian_meta_store::state::remote_log::{ReadError, RemoteLogState};
use guardian_meta_store::{CommandResponse, EventOutcome};
use guardian_proto::conv::remote_log as rlconv;
use guardian_proto::conv::required;
use guardian_proto::domain::{Command, InvalidField};
use guardian_proto::pb;
use guardian_proto::remote_log::{
    validate_partitions, Segment, TopicIdPartition, MAX_EVENTS_PER_WRITE,
};

use super::{Api, Call};
use crate::error::ApiError;

/// The most lookups one `GetSegments` call may carry.
pub const MAX_LOOKUPS_PER_CALL: usize = 100_000;

impl Api {
    /// A (partition, epoch) read: authorize, check the fields (before any
    /// waiting), read barrier unless stale, then `f` on the applied state.
    async fn epoch_read<T>(
        &self,
        r: pb::PartitionEpochRequest,
        f: impl FnOnce(&RemoteLogState, &TopicIdPartition, i32) -> Result<T, ReadError>,
    ) -> Result<T, ApiError> {
        let tp = partition(r.partition, "partition")?;
        // Any epoch is a valid question: Kafka answers an epoch it has no
        // segments for (-1, "no epoch", included) with empty / 0.
        let st = self.read_state(r.stale).await?;
        f(&st.remote_log, &tp, r.leader_epoch).map_err(read_error)
    }

    /// A (partition, epoch, offset) read returning one segment or none.
    async fn segment_read(
        &self,
        r: pb::GetSegmentRequest,
        f: SegmentQuery,
    ) -> Result<pb::GetSegmentResponse, ApiError> {
        let l = required(r.lookup, "lookup").map_err(ApiError::from)?;
        let (tp, epoch, offset) =
            checked_lookup(l).map_err(|e| ApiError::from(e.under("lookup")))?;
        let st = self.read_state(r.stale).await?;
        let seg = f(&st.remote_log, &tp, epoch, offset).map_err(read_error)?;
        Ok(pb::GetSegmentResponse {
            segment: seg.map(rlconv::segment_to_pb),
        })
    }

    async fn read_state(
        &self,
        stale: bool,
    ) -> Result<std::sync::RwLockReadGuard<'_, guardian_meta_store::SmState>, ApiError> {
        self.ctl.read_barrier(stale).await?;
        Ok(self.ctl.state())
    }
}

fn read_error(e: ReadError) -> ApiError {
    ApiError::NotFound {
        what: match e {
            ReadError::UnknownPartition(tp) => {
                format!("remote log metadata of partition {tp} (never tracked, or deleted)")
            }
        },
    }
}

/// A request's partition, converted and validated.
fn partition(p: Option<pb::TopicIdPartition>, field: &str) -> Result<TopicIdPartition, ApiError> {
    let tp = rlconv::partition_from_pb(p, field)?;
    tp.validate(field)?;
    Ok(tp)
}

fn result(outcome: pb::event_result::Outcome, code: &str, message: String) -> pb::EventResult {
    pb::EventResult {
        outcome: outcome as i32,
        code: code.to_string(),
        message,
    }
}

fn error_result(e: ApiError) -> pb::EventResult {
    result(
        pb::event_result::Outcome::Error,
        crate::error::code_name(e.code()),
        e.to_string(),
    )
}

fn outcome_to_pb(o: EventOutcome) -> pb::EventResult {
    match o {
        EventOutcome::Applied => result(pb::event_result::Outcome::Applied, "OK", String::new()),
        EventOutcome::Dropped(why) => result(pb::event_result::Outcome::Dropped, "OK", why),
        EventOutcome::Rejected(r) => error_result(r.into()),
    }
}

/// A per-(partition, epoch, offset) query of the remote log state.
type SegmentQuery = for<'a> fn(
    &'a RemoteLogState,
    &TopicIdPartition,
    i32,
    i64,
) -> Result<Option<&'a Segment>, ReadError>;

/// A lookup's (partition, leader epoch, offset), checked. Field names are
/// relative (`partition.topic`); callers place them under their own path,
/// on the error path only (`GetSegments` runs this per item). A negative
/// epoch or offset is not an error: as in Kafka's `RemoteLogMetadataCache`,
/// no segment holds it, so the answer is "none".
fn checked_lookup(l: pb::SegmentLookup) -> Result<(TopicIdPartition, i32, i64), InvalidField> {
    let tp = rlconv::partition_from_pb(l.partition, "partition").map_err(|e| match e {
        guardian_proto::conv::ConvError::Invalid(i) => i,
        other => InvalidField::new(other.field(), "is required"),
    })?;
    tp.validate("partition")?;
    Ok((tp, l.leader_epoch, l.offset))
}

pub async fn apply_events(
    api: &Call<'_>,
    r: pb::ApplyEventsRequest,
) -> Result<pb::ApplyEventsResponse, ApiError> {
    let events = r.events;
    if events.is_empty() || events.len() > MAX_EVENTS_PER_WRITE {
        return Err(ApiError::invalid(
            "events",
            format!("must hold 1..={MAX_EVENTS_PER_WRITE} events"),
        ));
    }
    // A malformed event fails alone (named by its index); the others are
    // proposed, in order, as one command.
    let mut results: Vec<Option<pb::EventResult>> = vec![None; events.len()];
    let mut valid = Vec::with_capacity(events.len());
    let mut at = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let field = || format!("events[{i}]");
        let ev = rlconv::event_from_pb(e, "")
            .map_err(|e| ApiError::from(e.under(&field())))
            .and_then(|ev| match ev.validate("") {
                Ok(()) => Ok(ev),
                Err(e) => Err(e.under(&field()).into()),
            });
        match ev {
            Ok(ev) => {
                valid.push(ev);
                at.push(i);
            }
            Err(e) => results[i] = Some(error_result(e)),
        }
    }
    if !valid.is_empty() {
        match api
            .write(Command::RemoteLog(std::sync::Arc::new(valid)))
            .await?
        {
            CommandResponse::RemoteLog(outs) if outs.len() == at.len() => {
                for (i, o) in at.into_iter().zip(outs) {
                    results[i] = Some(outcome_to_pb(o));
                }
            }
            other => {
                return Err(ApiError::Internal {
                    reason: format!("unexpected apply result {other:?}"),
                })
            }
        }
    }
    Ok(pb::ApplyEventsResponse {
        results: results.into_iter().map(Option::unwrap_or_default).collect(),
    })
}

pub async fn track_partitions(
    api: &Call<'_>,
    r: pb::TrackPartitionsRequest,
) -> Result<pb::TrackPartitionsResponse, ApiError> {
    let partitions = rlconv::list_from_pb(r.partitions, "partitions", rlconv::tracked_from_pb)
        .map_err(ApiError::from)?;
    let cmd = Command::TrackPartitions {
        broker_id: r.broker_id,
        partitions,
    };
    cmd.validate().map_err(ApiError::from)?;
    api.write(cmd).await?;
    Ok(pb::TrackPartitionsResponse {})
}

pub async fn untrack_partitions(
    api: &Call<'_>,
    r: pb::UntrackPartitionsRequest,
) -> Result<pb::TrackPartitionsResponse, ApiError> {
    let partitions = rlconv::list_from_pb(r.partitions, "partitions", |p, f| {
        rlconv::partition_from_pb(Some(p), f)
    })
    .map_err(ApiError::from)?;
    validate_partitions("partitions", partitions.iter()).map_err(ApiError::from)?;
    let cmd = Command::UntrackPartitions {
        broker_id: r.broker_id,
        partitions,
    };
    cmd.validate().map_err(ApiError::from)?;
    api.write(cmd).await?;
    Ok(pb::TrackPartitionsResponse {})
}

pub async fn get_segment(
    api: &Call<'_>,
    r: pb::GetSegmentRequest,
) -> Result<pb::GetSegmentResponse, ApiError> {
    api.segment_read(r, RemoteLogState::segment_for).await
}

pub async fn get_segments(
    api: &Call<'_>,
    r: pb::GetSegmentsRequest,
) -> Result<pb::GetSegmentsResponse, ApiError> {
    if r.lookups.is_empty() || r.lookups.len() > MAX_LOOKUPS_PER_CALL {
        return Err(ApiError::invalid(
            "lookups",
            format!("must hold 1..={MAX_LOOKUPS_PER_CALL} lookups"),
        ));
    }
    let st = api.read_state(r.stale).await?;
    let rl = &st.remote_log;
    let results = r
        .lookups
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            checked_lookup(l)
                .map_err(|e| ApiError::from(e.under(&format!("lookups[{i}]"))))
                .and_then(|(tp, e, o)| rl.segment_for(&tp, e, o).map_err(read_error))
        })
        .map(|found| match found {
            Ok(seg) => pb::LookupResult {
                segment: seg.map(rlconv::segment_to_pb),
                ..Default::default()
            },
            Err(e) => pb::LookupResult {
                segment: None,
                error_code: crate::error::code_name(e.code()).to_string(),
                error_message: e.to_string(),
            },
        })
        .collect();
    Ok(pb::GetSegmentsResponse { results })
}

pub async fn highest_offset_for_epoch(
    api: &Call<'_>,
    r: pb::PartitionEpochRequest,
) -> Result<pb::HighestOffsetResponse, ApiError> {
    let offset = api.epoch_read(r, RemoteLogState::highest_offset).await?;
    Ok(pb::HighestOffsetResponse { offset })
}

pub async fn list_segments(
    api: &Call<'_>,
    r: pb::ListSegmentsRequest,
) -> Result<pb::ListSegmentsResponse, ApiError> {
    let tp = partition(r.partition, "partition")?;
    let st = api.read_state(r.stale).await?;
    let rl = &st.remote_log;
    let segs = match r.leader_epoch {
        Some(e) => rl.list_epoch(&tp, e),
        None => rl.list(&tp),
    }
    .map_err(read_error)?;
    Ok(pb::ListSegmentsResponse {
        segments: segs.into_iter().map(rlconv::segment_to_pb).collect(),
    })
}

pub async fn remote_log_size(
    api: &Call<'_>,
    r: pb::PartitionEpochRequest,
) -> Result<pb::RemoteLogSizeResponse, ApiError> {
    let size_in_bytes = api.epoch_read(r, RemoteLogState::size).await?;
    Ok(pb::RemoteLogSizeResponse { size_in_bytes })
}

pub async fn next_segment_with_txn_index(
    api: &Call<'_>,
    r: pb::GetSegmentRequest,
) -> Result<pb::GetSegmentResponse, ApiError> {
    api.segment_read(r, RemoteLogState::next_txn_segment).await
}
