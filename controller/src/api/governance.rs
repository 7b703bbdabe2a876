//! Live governance's RPCs: the event log (`ListEvents`, and the
//! `GuardianEvents.WatchEvents` stream), the throttle claims
//! (`ListThrottles`, `ClearThrottle`), the leader's abnormal-behaviour
//! queue (`GetAbnormal`) and the operator's host overrides
//! (`SetBrokerHost`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use guardian_proto::domain::{validate_name, Command};
use guardian_proto::governance::{GovernanceCmd, HostOverrides};
use guardian_proto::pb;
use tokio_stream::Stream;

use super::auth::Auth;
use super::{Api, Call};
use crate::config::Role;
use crate::error::ApiError;

const DEFAULT_LIMIT: usize = 1_000;

fn json<T: serde::Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::Internal {
        reason: e.to_string(),
    })
}

fn events_after(api: &Api, r: &pb::ListEventsRequest) -> Result<pb::EventsJson, ApiError> {
    let limit = match r.limit {
        0 => DEFAULT_LIMIT,
        n => n as usize,
    };
    let st = api.ctl.state();
    let evs: Vec<_> = st
        .governance
        .events_after(r.after_seq, &r.cluster, limit)
        .collect();
    let last_seq = evs.last().map_or(r.after_seq, |e| e.seq);
    Ok(pb::EventsJson {
        json: json(&evs)?,
        last_seq,
    })
}

pub async fn list_events(
    api: &Call<'_>,
    r: pb::ListEventsRequest,
) -> Result<pb::EventsJson, ApiError> {
    if !r.cluster.is_empty() {
        validate_name("cluster", &r.cluster)?;
    }
    api.ctl.read_barrier(r.stale).await?;
    events_after(api, &r)
}

pub async fn list_throttles(
    api: &Call<'_>,
    r: pb::ListThrottlesRequest,
) -> Result<pb::ThrottlesJson, ApiError> {
    if !r.cluster.is_empty() {
        validate_name("cluster", &r.cluster)?;
    }
    api.ctl.read_barrier(r.stale).await?;
    let st = api.ctl.state();
    let claims: Vec<_> = st
        .governance
        .claims
        .values()
        .filter(|c| r.cluster.is_empty() || c.cluster == r.cluster)
        .collect();
    Ok(pb::ThrottlesJson {
        json: json(&claims)?,
    })
}

pub async fn clear_throttle(
    api: &Call<'_>,
    r: pb::ClearThrottleRequest,
) -> Result<pb::ThrottlesJson, ApiError> {
    api.ctl.ensure_leader()?;
    let c = api.governance.clear_claim(&api.ctl, r.id).await?;
    Ok(pb::ThrottlesJson { json: json(&[c])? })
}

pub async fn get_abnormal(
    api: &Call<'_>,
    r: pb::AbnormalRequest,
) -> Result<pb::AbnormalJson, ApiError> {
    drop(api.cluster_state(&r.cluster, false).await?);
    api.ctl.ensure_leader()?;
    let p = api
        .governance
        .picture(&r.cluster)
        .ok_or_else(|| ApiError::Unavailable {
            reason: format!(
                "no governance round of cluster {:?} yet on this leader (every governance.interval-ms = {} ms)",
                r.cluster, api.governance.cfg.interval_ms
            ),
        })?;
    Ok(pb::AbnormalJson { json: json(&p)? })
}

pub async fn set_broker_host(
    api: &Call<'_>,
    r: pb::SetBrokerHostRequest,
) -> Result<pb::Empty, ApiError> {
    {
        let st = api.cluster_state(&r.cluster, false).await?;
        if !st
            .registry
            .brokers
            .contains_key(&(r.cluster.clone(), r.broker_id))
        {
            return Err(ApiError::NotFound {
                what: format!("broker {} of cluster {:?}", r.broker_id, r.cluster),
            });
        }
    }
    let host: HostOverrides = serde_json::from_str(&r.host_json)
        .map_err(|e| ApiError::invalid("host_json", format!("not host overrides: {e}")))?;
    api.write(Command::Governance(Box::new(GovernanceCmd::SetHost {
        cluster: r.cluster,
        broker: r.broker_id,
        host,
    })))
    .await?;
    Ok(pb::Empty {})
}

/// The `GuardianEvents` service: the event log as a stream.
pub struct EventsService {
    api: Arc<Api>,
    auth: Auth,
}

impl EventsService {
    pub fn new(api: Arc<Api>, auth: Auth) -> Self {
        Self { api, auth }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::EventsJson, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl pb::guardian_events_server::GuardianEvents for EventsService {
    type WatchEventsStream = EventStream;

    /// Every event after `after_seq` from this node's applied state, then
    /// new ones as they apply (polled every 200 ms); ends when the client
    /// goes away.
    async fn watch_events(
        &self,
        req: tonic::Request<pb::ListEventsRequest>,
    ) -> Result<tonic::Response<Self::WatchEventsStream>, tonic::Status> {
        self.auth.authorize(&req, Role::Viewer, "read events")?;
        let mut r = req.into_inner();
        if !r.cluster.is_empty() {
            validate_name("cluster", &r.cluster).map_err(ApiError::from)?;
        }
        let api = self.api.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let batch = events_after(&api, &r);
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if batch.last_seq > r.after_seq {
                    r.after_seq = batch.last_seq;
                    if tx.send(Ok(batch)).await.is_err() {
                        return;
                    }
                    continue;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
