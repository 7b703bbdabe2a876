//! The `Load*` RPCs: the leader's load windows (views in
//! [`crate::load::query`]). Load lives on the leader: anywhere else they
//! answer `UNAVAILABLE` naming the leader, which clients follow.

use guardian_proto::domain::validate_name;
use guardian_proto::pb;

use super::{Api, Call};
use crate::error::ApiError;
use crate::load::{query, LoadState};
use crate::time::now_ms;

impl Api {
    /// Runs `f` on the leader's load windows once `cluster` is known to
    /// exist and this node leads.
    fn with_load<T>(
        &self,
        cluster: &str,
        f: impl FnOnce(&LoadState, &guardian_meta_store::SmState) -> T,
    ) -> Result<T, ApiError> {
        validate_name("cluster", cluster)?;
        self.ctl.ensure_leader()?;
        let sm = self.ctl.state();
        if !sm.registry.clusters.contains_key(cluster) {
            return Err(ApiError::NotFound {
                what: format!("cluster {cluster:?}"),
            });
        }
        let load = self
            .collector
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner());
        Ok(f(&load, &sm))
    }
}

pub async fn load_cluster(
    api: &Call<'_>,
    r: pb::LoadClusterRequest,
) -> Result<pb::LoadClusterResponse, ApiError> {
    let interval = api.collector.interval_ms;
    api.with_load(&r.cluster, |load, sm| {
        query::cluster(load, sm, &r.cluster, now_ms(), interval)
    })
}

pub async fn load_disks(
    api: &Call<'_>,
    r: pb::LoadTopRequest,
) -> Result<pb::LoadDisksResponse, ApiError> {
    let interval = api.collector.interval_ms;
    let disks = api.with_load(&r.cluster, |load, _| {
        query::disks(load, &r.cluster, now_ms(), interval, r.top)
    })?;
    Ok(pb::LoadDisksResponse { disks })
}

pub async fn load_partitions(
    api: &Call<'_>,
    r: pb::LoadTopRequest,
) -> Result<pb::LoadPartitionsResponse, ApiError> {
    let partitions = api.with_load(&r.cluster, |load, _| {
        query::partitions(load, &r.cluster, r.top)
    })?;
    Ok(pb::LoadPartitionsResponse { partitions })
}
