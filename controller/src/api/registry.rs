//! Registry RPCs: clusters, brokers, tenants and their pools, placement
//! policies, id allocation. Writes go through Raft and answer with the
//! applied value; reads are linearizable unless `stale`.

use guardian_meta_store::CommandResponse;
use guardian_proto::conv::{id_kind_from_pb, required};
use guardian_proto::domain::{self, validate_name, Command};
use guardian_proto::pb;

use super::{unexpected, Api, Call};
use crate::error::ApiError;

pub async fn add_cluster(
    api: &Call<'_>,
    r: pb::AddClusterRequest,
) -> Result<pb::Cluster, ApiError> {
    let c: domain::Cluster = required(r.cluster, "cluster")
        .map_err(ApiError::from)?
        .into();
    match api.write(Command::AddCluster(c)).await? {
        CommandResponse::Cluster(c) => Ok(c.into()),
        other => Err(unexpected(other)),
    }
}

pub async fn list_clusters(
    api: &Call<'_>,
    r: pb::ListClustersRequest,
) -> Result<pb::ListClustersResponse, ApiError> {
    api.ctl.read_barrier(r.stale).await?;
    let st = api.ctl.state();
    Ok(pb::ListClustersResponse {
        clusters: st
            .registry
            .clusters
            .values()
            .cloned()
            .map(Into::into)
            .collect(),
    })
}

pub async fn get_cluster(
    api: &Call<'_>,
    r: pb::GetClusterRequest,
) -> Result<pb::Cluster, ApiError> {
    validate_name("name", &r.name).map_err(ApiError::from)?;
    api.ctl.read_barrier(r.stale).await?;
    let st = api.ctl.state();
    let c = st
        .registry
        .clusters
        .get(&r.name)
        .ok_or_else(|| ApiError::NotFound {
            what: format!("cluster {:?}", r.name),
        })?;
    Ok(c.clone().into())
}

pub async fn remove_cluster(
    api: &Call<'_>,
    r: pb::RemoveClusterRequest,
) -> Result<pb::Empty, ApiError> {
    api.write(Command::RemoveCluster { name: r.name }).await?;
    Ok(pb::Empty {})
}

pub async fn add_broker(api: &Call<'_>, r: pb::AddBrokerRequest) -> Result<pb::Broker, ApiError> {
    let b: domain::Broker = required(r.broker, "broker").map_err(ApiError::from)?.into();
    match api.write(Command::AddBroker(b)).await? {
        CommandResponse::Broker(b) => Ok(b.into()),
        other => Err(unexpected(other)),
    }
}

pub async fn list_brokers(
    api: &Call<'_>,
    r: pb::ListBrokersRequest,
) -> Result<pb::ListBrokersResponse, ApiError> {
    let st = api.cluster_state(&r.cluster, r.stale).await?;
    Ok(pb::ListBrokersResponse {
        brokers: st
            .registry
            .brokers_of(&r.cluster)
            .cloned()
            .map(Into::into)
            .collect(),
    })
}

pub async fn remove_broker(
    api: &Call<'_>,
    r: pb::RemoveBrokerRequest,
) -> Result<pb::Empty, ApiError> {
    api.write(Command::RemoveBroker {
        cluster: r.cluster,
        broker_id: r.broker_id,
    })
    .await?;
    Ok(pb::Empty {})
}

pub async fn create_tenant(
    api: &Call<'_>,
    r: pb::CreateTenantRequest,
) -> Result<pb::Tenant, ApiError> {
    let t: domain::Tenant = required(r.tenant, "tenant").map_err(ApiError::from)?.into();
    match api.write(Command::CreateTenant(t)).await? {
        CommandResponse::Tenant(t) => Ok(t.into()),
        other => Err(unexpected(other)),
    }
}

pub async fn delete_tenant(
    api: &Call<'_>,
    r: pb::DeleteTenantRequest,
) -> Result<pb::Empty, ApiError> {
    api.write(Command::DeleteTenant { name: r.name }).await?;
    Ok(pb::Empty {})
}

pub async fn list_tenants(
    api: &Call<'_>,
    r: pb::ListTenantsRequest,
) -> Result<pb::ListTenantsResponse, ApiError> {
    api.ctl.read_barrier(r.stale).await?;
    let names: Vec<String> = api.ctl.state().registry.tenants.keys().cloned().collect();
    let tenants = names
        .iter()
        .map(|n| tenant_info(api, n))
        .collect::<Result<_, _>>()?;
    Ok(pb::ListTenantsResponse { tenants })
}

pub async fn assign_pool_brokers(
    api: &Call<'_>,
    r: pb::PoolRequest,
) -> Result<pb::TenantInfo, ApiError> {
    change_pool(api, r, true).await
}

pub async fn release_pool_brokers(
    api: &Call<'_>,
    r: pb::PoolRequest,
) -> Result<pb::TenantInfo, ApiError> {
    change_pool(api, r, false).await
}

pub async fn set_placement_policy(
    api: &Call<'_>,
    r: pb::SetPlacementPolicyRequest,
) -> Result<pb::PlacementPolicy, ApiError> {
    let p: domain::PlacementPolicy = required(r.policy, "policy").map_err(ApiError::from)?.into();
    match api.write(Command::SetPolicy(p)).await? {
        CommandResponse::Policy(p) => Ok(p.into()),
        other => Err(unexpected(other)),
    }
}

pub async fn list_placement_policies(
    api: &Call<'_>,
    r: pb::ListPlacementPoliciesRequest,
) -> Result<pb::ListPlacementPoliciesResponse, ApiError> {
    let st = api.cluster_state(&r.cluster, r.stale).await?;
    Ok(pb::ListPlacementPoliciesResponse {
        policies: st
            .registry
            .policies_of(&r.cluster)
            .cloned()
            .map(Into::into)
            .collect(),
    })
}

pub async fn remove_placement_policy(
    api: &Call<'_>,
    r: pb::RemovePlacementPolicyRequest,
) -> Result<pb::Empty, ApiError> {
    api.write(Command::RemovePolicy {
        cluster: r.cluster,
        topic: if r.topic.is_empty() {
            None
        } else {
            Some(r.topic)
        },
    })
    .await?;
    Ok(pb::Empty {})
}

pub async fn allocate_ids(
    api: &Call<'_>,
    r: pb::AllocateIdsRequest,
) -> Result<pb::AllocateIdsResponse, ApiError> {
    let kind = id_kind_from_pb(r.kind, "kind").map_err(ApiError::from)?;
    let ids = api.ctl.allocate_ids(kind, r.count, api.id).await?;
    Ok(pb::AllocateIdsResponse {
        ids: ids.iter().map(|u| u.to_string()).collect(),
    })
}

/// Puts brokers into (`assign`) or releases them from a tenant's pool and
/// returns the tenant's pool as applied.
async fn change_pool(
    api: &Call<'_>,
    r: pb::PoolRequest,
    assign: bool,
) -> Result<pb::TenantInfo, ApiError> {
    let pb::PoolRequest {
        tenant,
        cluster,
        broker_ids,
    } = r;
    let cmd = if assign {
        Command::AssignPool {
            tenant: tenant.clone(),
            cluster,
            broker_ids,
        }
    } else {
        Command::ReleasePool {
            tenant: tenant.clone(),
            cluster,
            broker_ids,
        }
    };
    api.write(cmd).await?;
    tenant_info(api, &tenant)
}

fn tenant_info(api: &Api, name: &str) -> Result<pb::TenantInfo, ApiError> {
    let st = api.ctl.state();
    let t = st
        .registry
        .tenants
        .get(name)
        .ok_or_else(|| ApiError::NotFound {
            what: format!("tenant {name:?}"),
        })?;
    Ok(pb::TenantInfo {
        tenant: Some(t.clone().into()),
        pool: st
            .registry
            .pool_of(name)
            .into_iter()
            .map(|(cluster, broker_id)| pb::PoolBroker { cluster, broker_id })
            .collect(),
    })
}
