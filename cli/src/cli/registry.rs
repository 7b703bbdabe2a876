//! CLI commands for the federation registry.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use guardian_proto::pb;

use super::{parse_log_dir, CliError, Ctx};

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Register a Kafka cluster.
    Add {
        #[arg(long)]
        name: String,
        /// Bootstrap servers, HOST:PORT (repeat or comma-separate).
        #[arg(long = "bootstrap", required = true, value_delimiter = ',')]
        bootstrap: Vec<String>,
        #[arg(long)]
        idc: String,
        /// Kafka's own cluster.id (meta.properties), if known.
        #[arg(long)]
        kafka_cluster_id: Option<String>,
    },
    /// List registered clusters.
    List(StaleArg),
    /// Show one cluster.
    Get {
        name: String,
        #[command(flatten)]
        stale: StaleArg,
    },
    /// Unregister a cluster (its brokers must be removed first).
    Remove { name: String },
    /// Read the cluster from Kafka (its bootstrap servers, through the
    /// leader) and register or update every broker: host, rack, log dirs
    /// exactly as Kafka reports them with their capacity (a registered
    /// non-zero capacity wins). Prints what changed.
    Discover {
        name: String,
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop all actuation on a cluster: executions wait where they are.
    Freeze {
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume actuation.
    Unfreeze { name: String },
    /// Rolling restart (admin): batch by batch, wait until no partition
    /// is under-replicated, move the batch's leadership off, run the
    /// restart command once per broker on the Guardian leader (`sh -c`,
    /// with GUARDIAN_BROKER_ID, GUARDIAN_BROKER_HOST, GUARDIAN_CLUSTER and
    /// GUARDIAN_EXECUTION set; it must exit 0 once the broker restarted,
    /// and tolerate running twice), wait until the batch is back and in
    /// sync, restore its leadership. Needs
    /// `executor.allow-restart-commands = true` on the controllers.
    Roll {
        name: String,
        /// Brokers restarted together.
        #[arg(long, default_value_t = 1)]
        batch: u32,
        #[arg(long)]
        restart_command: String,
        /// Only these brokers (comma-separated; default: every broker).
        #[arg(long, value_delimiter = ',')]
        brokers: Vec<i32>,
        #[command(flatten)]
        p: super::workflow::ProposeArgs,
    },
    /// The cluster's standing controls: freeze, exclusions, maintenance,
    /// decommissions (and whether each broker is ready to shut down).
    Controls { name: String },
    /// Exclude topics (names or regular expressions over the whole name)
    /// from every plan; internal `__*` topics are excluded by default.
    ExcludeTopics {
        name: String,
        #[arg(required = true)]
        patterns: Vec<String>,
        /// Remove the patterns from the exclusions instead.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Args, Debug, Clone, Copy)]
pub struct StaleArg {
    /// Serve from this node's local state without a linearizable read.
    #[arg(long)]
    pub stale: bool,
}

#[derive(Subcommand, Debug)]
pub enum BrokerCmd {
    /// Register a broker of a cluster.
    Add(BrokerAdd),
    /// List a cluster's brokers.
    List {
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        stale: StaleArg,
    },
    /// Unregister a broker (it must not be in a tenant's pool).
    Remove {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        id: i32,
    },
    /// Drain a broker (a proposal on the executor); it keeps draining
    /// while Kafka places new partitions on it, and is reported ready to
    /// shut down (`guardian cluster controls`) when it holds nothing.
    Decommission {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        id: i32,
        #[command(flatten)]
        p: super::workflow::ProposeArgs,
    },
    /// Maintenance: no new replicas, its tasks pause (never cancel), no
    /// leadership moves to it.
    Maintenance {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        id: i32,
        #[arg(value_enum)]
        state: super::workflow::OnOff,
    },
    /// What the operator knows of the broker's host: its page cache and
    /// disk budgets (live governance uses them instead of measured figures).
    Set(super::governance::HostArgs),
    /// Exclude brokers from plans (no replica moves to or from them).
    Exclude {
        #[arg(long)]
        cluster: String,
        #[arg(long = "id", required = true, value_delimiter = ',')]
        ids: Vec<i32>,
        /// Include them again.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Args, Debug)]
pub struct BrokerAdd {
    #[arg(long)]
    pub cluster: String,
    #[arg(long, allow_negative_numbers = true)]
    pub id: i32,
    #[arg(long)]
    pub host: String,
    #[arg(long)]
    pub rack: String,
    /// Defaults to the cluster's IDC.
    #[arg(long, default_value = "")]
    pub idc: String,
    /// The guardian-reporter endpoint beside this broker, HOST:PORT.
    #[arg(long)]
    pub reporter: String,
    /// A log dir and its capacity, PATH=BYTES (e.g. /data/1=4TiB); repeat.
    #[arg(long = "log-dir", required = true, value_parser = parse_log_dir)]
    pub log_dirs: Vec<pb::LogDir>,
    /// NIC capacity, bytes/s (e.g. 1.25GB for 10 Gbit/s).
    #[arg(long, default_value = "0", value_parser = super::parse_bytes)]
    pub nic_bytes_per_sec: u64,
    #[arg(long, default_value_t = 0)]
    pub cpu_cores: u32,
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a tenant (its pool must be empty).
    Delete {
        name: String,
    },
    List(StaleArg),
}

#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub cluster: String,
    /// Broker ids (repeat or comma-separate).
    #[arg(
        long = "broker",
        required = true,
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub brokers: Vec<i32>,
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Put brokers into a tenant's exclusive pool (all or none).
    Add {
        #[command(flatten)]
        a: PoolArgs,
        /// Also propose spreading the tenant's topics onto the broker.
        #[arg(long)]
        spread: bool,
        #[command(flatten)]
        p: super::workflow::ProposeArgs,
    },
    /// Release a broker from a tenant's pool: the tenant's replicas on it
    /// are moved off first (a proposal), and the broker leaves the pool
    /// only once it holds none of them.
    Release {
        #[command(flatten)]
        a: PoolArgs,
        /// Change only the registry, without checking Kafka (a cluster
        /// Guardian cannot reach): replicas left on the broker stay there.
        #[arg(long)]
        registry_only: bool,
        #[command(flatten)]
        p: super::workflow::ProposeArgs,
    },
    /// Show a tenant's pool.
    Show {
        tenant: String,
        #[command(flatten)]
        stale: StaleArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Set (replace) the placement policy of a cluster, or of one topic.
    Set {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        topic: Option<String>,
        #[arg(long = "allowed-idc", value_delimiter = ',')]
        allowed_idcs: Vec<String>,
        #[arg(long = "allowed-rack", value_delimiter = ',')]
        allowed_racks: Vec<String>,
        /// IDC=N (repeat).
        #[arg(long = "replicas-per-idc")]
        replicas_per_idc: Vec<String>,
    },
    List {
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        stale: StaleArg,
    },
    Remove {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        topic: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum IdsCmd {
    /// Allocate Kafka-format UUIDs, committed through Raft, never reused.
    Allocate {
        /// topic or segment
        #[arg(long)]
        kind: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

pub async fn cluster(c: &Ctx, cmd: ClusterCmd) -> Result<(), CliError> {
    let cl = &c.client;
    match cmd {
        ClusterCmd::Add {
            name,
            bootstrap,
            idc,
            kafka_cluster_id,
        } => {
            let cluster = pb::Cluster {
                name,
                bootstrap_servers: bootstrap,
                idc,
                kafka_cluster_id: kafka_cluster_id.unwrap_or_default(),
                ..Default::default()
            };
            let r = cl
                .call(|mut s| {
                    let cluster = cluster.clone();
                    async move {
                        s.add_cluster(pb::AddClusterRequest {
                            cluster: Some(cluster),
                        })
                        .await
                    }
                })
                .await?;
            c.out.clusters(&[r], true);
        }
        ClusterCmd::List(StaleArg { stale }) => {
            let r = cl
                .call(
                    |mut s| async move { s.list_clusters(pb::ListClustersRequest { stale }).await },
                )
                .await?;
            c.out.clusters(&r.clusters, false);
        }
        ClusterCmd::Get { name, stale } => {
            let r = cl
                .call(|mut s| {
                    let name = name.clone();
                    async move {
                        s.get_cluster(pb::GetClusterRequest {
                            name,
                            stale: stale.stale,
                        })
                        .await
                    }
                })
                .await?;
            c.out.clusters(&[r], true);
        }
        ClusterCmd::Remove { name } => {
            cl.call(|mut s| {
                let name = name.clone();
                async move { s.remove_cluster(pb::RemoveClusterRequest { name }).await }
            })
            .await?;
            c.out.done(&format!("cluster {name} removed"));
        }
        ClusterCmd::Discover { name, dry_run } => {
            let r = cl
                .call(|mut s| {
                    let name = name.clone();
                    async move {
                        s.discover_cluster(pb::DiscoverClusterRequest { name, dry_run })
                            .await
                    }
                })
                .await?;
            c.out.discovery(&name, &r);
        }
        ClusterCmd::Freeze { name, reason } => {
            return super::workflow::freeze(c, &name, true, &reason).await
        }
        ClusterCmd::Unfreeze { name } => return super::workflow::freeze(c, &name, false, "").await,
        ClusterCmd::Controls { name } => return super::workflow::show_controls(c, &name).await,
        ClusterCmd::Roll {
            name,
            batch,
            restart_command,
            brokers,
            p,
        } => {
            let req = pb::RollClusterRequest {
                cluster: name,
                batch,
                restart_command,
                brokers,
                approve: p.approve,
                dry_run: p.dry_run,
            };
            let r = c
                .client
                .call(|mut s| {
                    let req = req.clone();
                    async move { s.roll_cluster(req).await }
                })
                .await?;
            return super::rebalance::print(c, r);
        }
        ClusterCmd::ExcludeTopics {
            name,
            patterns,
            remove,
        } => return super::workflow::exclude_topics(c, &name, &patterns, remove).await,
    }
    Ok(())
}

pub async fn broker(c: &Ctx, cmd: BrokerCmd) -> Result<(), CliError> {
    let cl = &c.client;
    match cmd {
        BrokerCmd::Add(a) => {
            let broker = pb::Broker {
                cluster: a.cluster,
                broker_id: a.id,
                host: a.host,
                rack: a.rack,
                idc: a.idc,
                reporter_endpoint: a.reporter,
                log_dirs: a.log_dirs,
                nic_bytes_per_sec: a.nic_bytes_per_sec,
                cpu_cores: a.cpu_cores,
                ..Default::default()
            };
            let r = cl
                .call(|mut s| {
                    let broker = broker.clone();
                    async move {
                        s.add_broker(pb::AddBrokerRequest {
                            broker: Some(broker),
                        })
                        .await
                    }
                })
                .await?;
            c.out.brokers(&[r], true);
        }
        BrokerCmd::List { cluster, stale } => {
            let r = cl
                .call(|mut s| {
                    let cluster = cluster.clone();
                    async move {
                        s.list_brokers(pb::ListBrokersRequest {
                            cluster,
                            stale: stale.stale,
                        })
                        .await
                    }
                })
                .await?;
            c.out.brokers(&r.brokers, false);
        }
        BrokerCmd::Remove { cluster, id } => {
            cl.call(|mut s| {
                let cluster = cluster.clone();
                async move {
                    s.remove_broker(pb::RemoveBrokerRequest {
                        cluster,
                        broker_id: id,
                    })
                    .await
                }
            })
            .await?;
            c.out
                .done(&format!("broker {id} of cluster {cluster} removed"));
        }
        BrokerCmd::Decommission { cluster, id, p } => {
            super::workflow::decommission(c, &cluster, id, p).await?
        }
        BrokerCmd::Maintenance { cluster, id, state } => {
            super::workflow::maintenance(c, &cluster, id, state).await?
        }
        BrokerCmd::Exclude {
            cluster,
            ids,
            remove,
        } => super::workflow::exclude_brokers(c, &cluster, &ids, remove).await?,
        BrokerCmd::Set(a) => super::governance::set_host(c, a).await?,
    }
    Ok(())
}

pub async fn tenant(c: &Ctx, cmd: TenantCmd) -> Result<(), CliError> {
    let cl = &c.client;
    match cmd {
        TenantCmd::Create { name, description } => {
            let tenant = pb::Tenant {
                name,
                description,
                created_at_ms: 0,
            };
            let r = cl
                .call(|mut s| {
                    let tenant = tenant.clone();
                    async move {
                        s.create_tenant(pb::CreateTenantRequest {
                            tenant: Some(tenant),
                        })
                        .await
                    }
                })
                .await?;
            c.out.tenants(
                &[pb::TenantInfo {
                    tenant: Some(r),
                    pool: vec![],
                }],
                true,
            );
        }
        TenantCmd::Delete { name } => {
            cl.call(|mut s| {
                let name = name.clone();
                async move { s.delete_tenant(pb::DeleteTenantRequest { name }).await }
            })
            .await?;
            c.out.done(&format!("tenant {name} deleted"));
        }
        TenantCmd::List(StaleArg { stale }) => {
            let r = cl
                .call(|mut s| async move { s.list_tenants(pb::ListTenantsRequest { stale }).await })
                .await?;
            c.out.tenants(&r.tenants, false);
        }
    }
    Ok(())
}

pub async fn pool(c: &Ctx, cmd: PoolCmd) -> Result<(), CliError> {
    let cl = &c.client;
    let req = |a: &PoolArgs| pb::PoolRequest {
        tenant: a.tenant.clone(),
        cluster: a.cluster.clone(),
        broker_ids: a.brokers.clone(),
    };
    let one = |a: &PoolArgs| match a.brokers.as_slice() {
        [b] => Ok(*b),
        _ => Err(CliError::Usage(
            "moving a tenant's replicas: one --broker at a time".into(),
        )),
    };
    let info = match cmd {
        PoolCmd::Add { a, spread, p } => {
            if spread {
                let b = one(&a)?;
                let intent =
                    serde_json::json!({"kind": "pool_add", "tenant": a.tenant, "broker": b});
                return super::workflow::propose(c, &a.cluster, intent, p).await;
            }
            let r = req(&a);
            cl.call(|mut s| {
                let r = r.clone();
                async move { s.assign_pool_brokers(r).await }
            })
            .await?
        }
        PoolCmd::Release {
            a,
            registry_only: false,
            p,
        } => {
            let b = one(&a)?;
            let intent =
                serde_json::json!({"kind": "pool_release", "tenant": a.tenant, "broker": b});
            return super::workflow::propose(c, &a.cluster, intent, p).await;
        }
        PoolCmd::Release { a, .. } => {
            let r = req(&a);
            cl.call(|mut s| {
                let r = r.clone();
                async move { s.release_pool_brokers(r).await }
            })
            .await?
        }
        PoolCmd::Show { tenant, stale } => {
            let r = cl
                .call(|mut s| async move {
                    s.list_tenants(pb::ListTenantsRequest { stale: stale.stale })
                        .await
                })
                .await?;
            r.tenants
                .into_iter()
                .find(|t| t.tenant.as_ref().map(|t| t.name.as_str()) == Some(tenant.as_str()))
                .ok_or_else(|| {
                    CliError::Rpc(tonic::Status::not_found(format!(
                        "tenant {tenant:?} not found"
                    )))
                })?
        }
    };
    c.out.pool(&info);
    Ok(())
}

pub async fn policy(c: &Ctx, cmd: PolicyCmd) -> Result<(), CliError> {
    let cl = &c.client;
    match cmd {
        PolicyCmd::Set {
            cluster,
            topic,
            allowed_idcs,
            allowed_racks,
            replicas_per_idc,
        } => {
            let mut rpi = HashMap::new();
            for kv in &replicas_per_idc {
                let (idc, n) = kv
                    .split_once('=')
                    .and_then(|(k, v)| Some((k, v.parse::<u32>().ok()?)))
                    .ok_or_else(|| {
                        CliError::Usage(format!("--replicas-per-idc {kv:?}: want IDC=N"))
                    })?;
                rpi.insert(idc.to_string(), n);
            }
            let policy = pb::PlacementPolicy {
                cluster,
                topic: topic.unwrap_or_default(),
                allowed_idcs,
                allowed_racks,
                replicas_per_idc: rpi,
            };
            let r = cl
                .call(|mut s| {
                    let policy = policy.clone();
                    async move {
                        s.set_placement_policy(pb::SetPlacementPolicyRequest {
                            policy: Some(policy),
                        })
                        .await
                    }
                })
                .await?;
            c.out.policies(&[r], true);
        }
        PolicyCmd::List { cluster, stale } => {
            let r = cl
                .call(|mut s| {
                    let cluster = cluster.clone();
                    async move {
                        s.list_placement_policies(pb::ListPlacementPoliciesRequest {
                            cluster,
                            stale: stale.stale,
                        })
                        .await
                    }
                })
                .await?;
            c.out.policies(&r.policies, false);
        }
        PolicyCmd::Remove { cluster, topic } => {
            cl.call(|mut s| {
                let (cluster, topic) = (cluster.clone(), topic.clone().unwrap_or_default());
                async move {
                    s.remove_placement_policy(pb::RemovePlacementPolicyRequest { cluster, topic })
                        .await
                }
            })
            .await?;
            c.out.done("placement policy removed");
        }
    }
    Ok(())
}

pub async fn ids(c: &Ctx, cmd: IdsCmd) -> Result<(), CliError> {
    let IdsCmd::Allocate { kind, count } = cmd;
    let k: guardian_proto::domain::IdKind =
        kind.parse()
            .map_err(|e: guardian_proto::domain::InvalidField| {
                CliError::Usage(format!("--kind: {}", e.reason))
            })?;
    let kind_pb = pb::IdKind::from(k) as i32;
    let r = c
        .client
        .call(|mut s| async move {
            s.allocate_ids(pb::AllocateIdsRequest {
                kind: kind_pb,
                count,
            })
            .await
        })
        .await?;
    c.out.ids(k.as_str(), &r.ids);
    Ok(())
}
