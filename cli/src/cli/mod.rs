//! Command-line parsing (clap) and dispatch.

mod consumers;
mod dev;
mod dev_sim;
mod governance;
mod load;
mod output;
mod plan;
mod rebalance;
mod registry;
mod remote_log;
mod server;
mod workflow;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use guardian_controller::client::AdminClient;
pub use guardian_controller::error::code_name;
use guardian_proto::pb;

pub use output::Output;

#[derive(Parser, Debug)]
#[command(
    name = "guardian",
    version = concat!(env!("CARGO_PKG_VERSION"), " (build ", env!("GUARDIAN_BUILD_STAMP"), ")"),
    about = "Guardian: a Raft-replicated control plane for Kafka federations"
)]
pub struct Cli {
    /// Controller admin endpoints, HOST:PORT, comma-separated.
    #[arg(long, global = true, env = "GUARDIAN_ENDPOINTS", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Bearer token for the admin API.
    #[arg(long, global = true, env = "GUARDIAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust: talk TLS to the admin endpoints.
    #[arg(long, global = true, env = "GUARDIAN_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Give up after this many seconds (retries and leader redirects included).
    #[arg(long, global = true, default_value_t = 15)]
    pub timeout_secs: u64,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    /// `guardian rebalance show`: the plan in `kafka-reassign-partitions`
    /// JSON (with `log_dirs`) and the throttle configs it sets.
    KafkaJson,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run one controller node.
    Server(server::ServerArgs),
    /// Run a local 3-node controller as child processes (the embedded default).
    Dev(dev::DevArgs),
    /// Raft membership and status.
    #[command(subcommand)]
    Raft(RaftCmd),
    /// Kafka clusters of the federation.
    #[command(subcommand)]
    Cluster(registry::ClusterCmd),
    /// Brokers of a cluster.
    #[command(subcommand)]
    Broker(registry::BrokerCmd),
    /// Tenants.
    #[command(subcommand)]
    Tenant(registry::TenantCmd),
    /// Tenants' exclusive broker pools.
    #[command(subcommand)]
    Pool(registry::PoolCmd),
    /// Replica placement policies.
    #[command(subcommand)]
    Policy(registry::PolicyCmd),
    /// Kafka-format UUIDs.
    #[command(subcommand)]
    Ids(registry::IdsCmd),
    /// Tiered-storage metadata (KIP-405 RemoteLogMetadataManager).
    #[command(subcommand)]
    RemoteLog(remote_log::RemoteLogCmd),
    /// Load collected by the leader from the brokers' reporters.
    #[command(subcommand)]
    Load(load::LoadCmd),
    /// The planners, run locally on a scenario or a cluster JSON (what-if).
    #[command(subcommand)]
    Plan(plan::PlanCmd),
    /// Consumer scheduling: worker pools, bindings, plans (`simulate`:
    /// the planner on a generated fleet, locally).
    #[command(subcommand)]
    Consumers(consumers::ConsumersCmd),
    /// Balance a cluster on live data: propose, review, approve, watch.
    #[command(subcommand)]
    Rebalance(rebalance::RebalanceCmd),
    /// Topics placed by Guardian, and IDC migration.
    #[command(subcommand)]
    Topic(workflow::TopicCmd),
    /// Throttles Guardian holds (live governance).
    #[command(subcommand)]
    Throttle(governance::ThrottleCmd),
    /// The abnormal-behaviour queue per disk: the six behaviours, bytes/s,
    /// the root-cause partition and reader (the leader's last round).
    Abnormal {
        #[arg(long)]
        cluster: String,
    },
    /// The replicated event log: every decision Guardian made.
    Events {
        #[arg(long)]
        cluster: Option<String>,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep printing new events as they commit.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RaftCmd {
    /// Leader, term, and every node's role and progress.
    Status,
    /// Initialize a new controller group (once, on one node).
    Init(InitArgs),
    /// Add a node as a learner (it replicates but does not vote).
    AddLearner(NodeArgs),
    /// Promote a learner to voter.
    Promote(IdArg),
    /// Remove a node from the group.
    Remove(IdArg),
    /// Build a snapshot on the node behind the first endpoint (purges old log).
    Snapshot,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Members as ID=RAFT_ADDR/ADMIN_ADDR; none = the first endpoint's node alone.
    #[arg(long = "member")]
    pub members: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[arg(long)]
    pub id: u64,
    #[arg(long)]
    pub raft_addr: String,
    #[arg(long)]
    pub admin_addr: String,
}

#[derive(Args, Debug)]
pub struct IdArg {
    #[arg(long)]
    pub id: u64,
}

/// Prints a failed call as `error: CODE: message` and picks the exit code.
pub fn fail(e: impl Into<CliError>) -> ExitCode {
    let e = e.into();
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{}: {}{}", code_name(.0.code()), .0.message(), tls_hint(.0))]
    Rpc(tonic::Status),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> Self {
        CliError::Rpc(s)
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Rpc(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Other(_) => 1,
        }
    }
}

fn tls_hint(s: &tonic::Status) -> &'static str {
    if s.message().contains("h2 protocol error") || s.message().contains("invalid peer certificate")
    {
        " (does the endpoint speak TLS? pass --ca-file with the CA that signed its certificate)"
    } else {
        ""
    }
}

pub struct Ctx {
    pub client: AdminClient,
    pub out: Output,
}

fn ctx(cli: &Cli) -> Result<Ctx, CliError> {
    let mut client = AdminClient::new(&cli.endpoints, cli.token.as_deref())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    client.deadline = std::time::Duration::from_secs(cli.timeout_secs);
    if let Some(ca) = &cli.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", ca.display())))?;
        client = client.with_ca(&pem);
    }
    Ok(Ctx {
        client,
        out: Output::new(cli.format),
    })
}

pub async fn run(cli: Cli) -> ExitCode {
    let local = match &cli.command {
        Cmd::Plan(_) => true,
        Cmd::Consumers(c) => consumers::is_local(c),
        _ => false,
    };
    if local {
        // Local and CPU-bound: no endpoints, off the async threads.
        let format = cli.format;
        let res = tokio::task::spawn_blocking(move || match cli.command {
            Cmd::Plan(cmd) => plan::run(format, cmd),
            Cmd::Consumers(cmd) => consumers::run(format, cmd),
            _ => unreachable!("matched above"),
        })
        .await
        .unwrap_or_else(|e| Err(CliError::Other(anyhow::anyhow!("planner panicked: {e}"))));
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    let res = match &cli.command {
        Cmd::Server(a) => return server::run(a).await,
        Cmd::Dev(a) => return dev::run(a).await,

        _ => match ctx(&cli) {
            Err(e) => Err(e),
            Ok(c) => dispatch(&c, cli.command).await,
        },
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn dispatch(c: &Ctx, cmd: Cmd) -> Result<(), CliError> {
    match cmd {
        Cmd::Server(_) | Cmd::Dev(_) | Cmd::Plan(_) => unreachable!("handled in run"),
        Cmd::Consumers(x) => consumers::remote(c, x).await,
        Cmd::Raft(r) => raft(c, r).await,
        Cmd::Cluster(x) => registry::cluster(c, x).await,
        Cmd::Broker(x) => registry::broker(c, x).await,
        Cmd::Tenant(x) => registry::tenant(c, x).await,
        Cmd::Pool(x) => registry::pool(c, x).await,
        Cmd::Policy(x) => registry::policy(c, x).await,
        Cmd::Ids(x) => registry::ids(c, x).await,
        Cmd::RemoteLog(x) => remote_log::run(c, x).await,
        Cmd::Load(x) => load::run(c, x).await,
        Cmd::Rebalance(x) => rebalance::run(c, x).await,
        Cmd::Topic(x) => workflow::topic(c, x).await,
        Cmd::Throttle(x) => governance::throttle(c, x).await,
        Cmd::Abnormal { cluster } => governance::abnormal(c, cluster).await,
        Cmd::Events {
            cluster,
            after,
            follow,
        } => governance::events(c, cluster, after, follow).await,
    }
}

fn parse_member(s: &str) -> Result<pb::NodeSpec, CliError> {
    let bad = || CliError::Usage(format!("--member {s:?}: want ID=RAFT_ADDR/ADMIN_ADDR"));
    let (id, addrs) = s.split_once('=').ok_or_else(bad)?;
    let (raft_addr, admin_addr) = addrs.split_once('/').ok_or_else(bad)?;
    Ok(pb::NodeSpec {
        id: id.parse().map_err(|_| bad())?,
        raft_addr: raft_addr.into(),
        admin_addr: admin_addr.into(),
    })
}

async fn raft(c: &Ctx, cmd: RaftCmd) -> Result<(), CliError> {
    let cl = &c.client;
    match cmd {
        RaftCmd::Status => {
            let s = cl
                .call(|mut s| async move { s.raft_status(pb::RaftStatusRequest {}).await })
                .await?;
            c.out.raft_status(&s);
        }
        RaftCmd::Init(a) => {
            let members = a
                .members
                .iter()
                .map(|m| parse_member(m))
                .collect::<Result<Vec<_>, _>>()?;
            // Initialize goes to the first endpoint's node itself, never redirected.
            let mut stub = cl.stub(&cl.endpoints()[0])?;
            let r = stub
                .initialize(pb::InitializeRequest { members })
                .await?
                .into_inner();
            c.out.membership(&r);
        }
        RaftCmd::AddLearner(a) => {
            let node = pb::NodeSpec {
                id: a.id,
                raft_addr: a.raft_addr,
                admin_addr: a.admin_addr,
            };
            let r = cl
                .call(|mut s| {
                    let node = node.clone();
                    async move {
                        s.add_learner(pb::AddLearnerRequest { node: Some(node) })
                            .await
                    }
                })
                .await?;
            c.out.membership(&r);
        }
        RaftCmd::Promote(a) => {
            let r = cl
                .call(|mut s| async move { s.promote_voter(pb::NodeIdRequest { id: a.id }).await })
                .await?;
            c.out.membership(&r);
        }
        RaftCmd::Remove(a) => {
            let r = cl
                .call(|mut s| async move { s.remove_node(pb::NodeIdRequest { id: a.id }).await })
                .await?;
            c.out.membership(&r);
        }
        RaftCmd::Snapshot => {
            let mut stub = cl.stub(&cl.endpoints()[0])?;
            let r = stub
                .trigger_snapshot(pb::TriggerSnapshotRequest {})
                .await?
                .into_inner();
            c.out.json_or_line(
                serde_json::json!({"snapshot_index": r.snapshot_index}),
                format!("snapshot built at log index {}", r.snapshot_index),
            );
        }
    }
    Ok(())
}

/// Parses `PATH=BYTES` (BYTES: integer with optional K/M/G/T(i)B suffix).
pub fn parse_log_dir(s: &str) -> Result<pb::LogDir, String> {
    let (path, bytes) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: want PATH=BYTES, e.g. /data/1=4TiB"))?;
    Ok(pb::LogDir {
        path: path.to_string(),
        capacity_bytes: parse_bytes(bytes)?,
    })
}

/// `4096`, `500GB`, `4TiB`, `1.5T` → bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a byte size"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{s:?}: unknown unit {other:?}")),
    };
    let v = n * mult;
    if !(v.is_finite() && v >= 0.0 && v < u64::MAX as f64) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(v.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("4TiB").unwrap(), 4 << 40);
        assert_eq!(parse_bytes("500GB").unwrap(), 500_000_000_000);
        assert!(parse_bytes("12 parsecs").is_err());
        assert_eq!(parse_log_dir("/data/1=1KiB").unwrap().capacity_bytes, 1024);
    }
}
