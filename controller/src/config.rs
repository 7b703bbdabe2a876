//! A controller node's configuration: a validated struct (kebab-case TOML,
//! unknown keys rejected). Every key is documented in
//! `deploy/guardian.example.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Errors loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid config key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's Raft id (> 0), unique in the controller group.
    pub node_id: u64,
    /// Where RocksDB keeps the log and the state machine.
    pub data_dir: PathBuf,
    /// Admin gRPC listen address (clients, CLI). Port 0 = OS-assigned.
    pub admin_listen: String,
    /// Raft peer listen address (other controller nodes only).
    pub raft_listen: String,
    /// Address other nodes and clients use to reach the admin port; defaults
    /// to the bound address.
    #[serde(default)]
    pub advertise_admin: Option<String>,
    /// Address peers use to reach the raft port; defaults to the bound address.
    #[serde(default)]
    pub advertise_raft: Option<String>,
    /// HTTP listen address: Prometheus `/metrics` and `/healthz`
    /// (read-only, no token) and the web dashboard under `/ui/` (token
    /// login, session cookie, CSRF token); TLS with the admin port's
    /// certificate when `[tls]` is set; absent = not served.
    #[serde(default)]
    pub http_listen: Option<String>,
    #[serde(default)]
    pub raft: RaftTuning,
    #[serde(default)]
    pub grpc: GrpcLimits,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub collect: CollectConfig,
    /// TLS for the admin port and the HTTP port; absent = plaintext.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How the leader talks to the Kafka clusters it governs.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// How plans are carried out on Kafka.
    #[serde(default)]
    pub executor: crate::executor::ExecutorConfig,
    /// Live throttling and the event log.
    #[serde(default)]
    pub governance: crate::governance::GovernanceConfig,
    /// Proposals that heal around failed brokers and offline dirs.
    #[serde(default)]
    pub healing: crate::governance::healing::HealingConfig,
    /// Consumer scheduling: plan interval, heartbeats, leases.
    #[serde(default)]
    pub consumers: crate::consumers::ConsumersConfig,
}

/// The leader's Kafka admin connections (every registered cluster).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Deadline of one admin call, retries included.
    pub request_timeout_ms: u64,
    /// Kafka client security keys, as a Kafka client names them:
    /// `security.protocol`, `ssl.ca.location`,
    /// `ssl.endpoint.identification.name`, `sasl.mechanism`,
    /// `sasl.username`. The password is never inline: `sasl-password-file`.
    pub security: std::collections::BTreeMap<String, String>,
    /// File holding the SASL password (first line).
    pub sasl_password_file: Option<PathBuf>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 30_000,
            security: Default::default(),
            sasl_password_file: None,
        }
    }
}

impl KafkaConfig {
    /// The connection options these keys describe (the password read
    /// from its file); a bad key or value is an error naming it.
    pub fn connect_options(&self) -> Result<guardian_kafka::ConnectOptions, ConfigError> {
        if self.security.contains_key("sasl.password") {
            return Err(invalid(
                "kafka.security",
                "sasl.password must not be inline; use kafka.sasl-password-file",
            ));
        }
        let password = match &self.sasl_password_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| {
                        invalid("kafka.sasl-password-file", format!("{}: {e}", p.display()))
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            None => None,
        };
        let pairs = self
            .security
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(password.as_deref().map(|p| ("sasl.password", p)));
        guardian_kafka::ConnectOptions::from_config(pairs)
            .map_err(|e| invalid("kafka.security", e.to_string()))
    }
}

/// Mutual TLS on the raft port (`[raft.tls]`, PEM files): this node's
/// certificate and key, and the cluster CA every peer's certificate must
/// chain to. Re-read when they change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PeerTlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

/// Server certificate and key (PEM) for the admin port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind the latest snapshot (for slow followers).
    pub max_in_snapshot_log_to_keep: u64,
    /// Snapshot chunk size on the wire.
    pub snapshot_chunk_bytes: u64,
    /// Entries per AppendEntries RPC.
    pub max_payload_entries: u64,
    /// Leader-side group commit: proposals in flight at once; writes arriving
    /// meanwhile join the next batch entry.
    pub max_proposals_in_flight: usize,
    /// Shared secret every controller node sends on, and requires from, the
    /// raft port (`x-guardian-peer-token`). Unset = the raft port trusts its
    /// network.
    pub peer_token: Option<Secret>,
    /// Mutual TLS between peers (`[raft.tls]`); unset = plaintext.
    pub tls: Option<PeerTlsConfig>,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            snapshot_logs_since_last: 10_000,
            max_in_snapshot_log_to_keep: 1_000,
            snapshot_chunk_bytes: 1 << 20,
            max_payload_entries: 512,
            max_proposals_in_flight: 1,
            peer_token: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct GrpcLimits {
    /// Largest admin request accepted (bytes); larger → RESOURCE_EXHAUSTED / OUT_OF_RANGE.
    pub max_request_bytes: usize,
    /// Server-side cap on any admin request's duration; client deadlines
    /// (`grpc-timeout`) shorter than this are honoured as given.
    pub request_timeout_ms: u64,
    /// Concurrent requests per admin connection.
    pub concurrency_per_connection: usize,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 4 << 20,
            request_timeout_ms: 30_000,
            concurrency_per_connection: 256,
        }
    }
}

/// Load collection from the brokers' reporters (leader only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CollectConfig {
    /// How often the leader pulls every reporter.
    pub interval_ms: u64,
    /// Deadline of one reporter pull; a slower reporter is marked stale.
    pub timeout_ms: u64,
    /// Reporters pulled at once.
    pub concurrency: usize,
    /// Length of one load-history bucket; the last 60 buckets are kept and
    /// replicated (a new leader starts with them).
    pub history_bucket_ms: u64,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            interval_ms: 10_000,
            timeout_ms: 2_000,
            concurrency: 64,
            history_bucket_ms: 60_000,
        }
    }
}

/// Bearer-token authentication for the admin API. With no tokens configured,
/// authentication is off (the `guardian dev` default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenConfig {
    pub token: Secret,
    pub role: Role,
}

/// A secret read from the config (a bearer or peer token): compared and
/// sent, never shown — `Debug` prints `<redacted>`, and there is no
/// `Display`, so neither a log line nor an error message can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a token may do: viewer reads, operator also changes the registry and
/// allocates ids, admin also changes Raft membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl NodeConfig {
    /// A config with every optional section at its default.
    pub fn new(node_id: u64, data_dir: PathBuf, admin_listen: String, raft_listen: String) -> Self {
        Self {
            node_id,
            data_dir,
            admin_listen,
            raft_listen,
            advertise_admin: None,
            advertise_raft: None,
            http_listen: None,
            raft: RaftTuning::default(),
            grpc: GrpcLimits::default(),
            auth: AuthConfig::default(),
            collect: CollectConfig::default(),
            tls: None,
            kafka: KafkaConfig::default(),
            executor: Default::default(),
            governance: Default::default(),
            healing: Default::default(),
            consumers: Default::default(),
        }
    }

    /// Reads a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: p, source })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("node-id", "must be > 0"));
        }
        if self.kafka.request_timeout_ms == 0 {
            return Err(invalid("kafka.request-timeout-ms", "must be > 0"));
        }
        self.kafka.connect_options()?;
        let x = &self.executor;
        for (key, v) in [
            ("executor.tick-ms", x.tick_ms),
            ("executor.throttle-bytes-per-sec", x.throttle_bytes_per_sec),
            (
                "executor.max-tasks-per-broker",
                x.max_tasks_per_broker as u64,
            ),
            (
                "executor.max-tasks-per-cluster",
                x.max_tasks_per_cluster as u64,
            ),
            ("executor.proposal-ttl-ms", x.proposal_ttl_ms),
            (
                "executor.max-tasks-federation",
                x.max_tasks_federation as u64,
            ),
            ("executor.max-tasks-per-disk", x.max_tasks_per_disk as u64),
            ("executor.max-bytes-per-broker", x.max_bytes_per_broker),
            ("executor.max-bytes-per-disk", x.max_bytes_per_disk),
            (
                "executor.min-throttle-bytes-per-sec",
                x.min_throttle_bytes_per_sec,
            ),
            ("executor.adapt-interval-ms", x.adapt_interval_ms),
            ("executor.restart-timeout-ms", x.restart_timeout_ms),
            ("governance.interval-ms", self.governance.interval_ms),
            ("governance.claim-ttl-ms", self.governance.claim_ttl_ms),
            ("governance.max-claim-ms", self.governance.max_claim_ms),
            (
                "governance.release-after-rounds",
                self.governance.release_after_rounds as u64,
            ),
            (
                "governance.confirm-rounds",
                self.governance.confirm_rounds as u64,
            ),
            ("governance.max-events", self.governance.max_events as u64),
            (
                "governance.events-max-age-ms",
                self.governance.events_max_age_ms,
            ),
            ("healing.broker-failure-ms", self.healing.broker_failure_ms),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be > 0"));
            }
        }
        self.consumers
            .validate()
            .map_err(|(key, reason)| invalid(key, reason))?;
        if x.max_throttle_bytes_per_sec < x.min_throttle_bytes_per_sec {
            return Err(invalid(
                "executor.max-throttle-bytes-per-sec",
                "must be >= min-throttle-bytes-per-sec",
            ));
        }
        if !(x.hot_disk_util > 0.0 && x.hot_disk_util <= 1.0) {
            return Err(invalid("executor.hot-disk-util", "must be in (0, 1]"));
        }
        if x.slow_produce_p99_ms.is_nan() || x.slow_produce_p99_ms <= 0.0 {
            return Err(invalid("executor.slow-produce-p99-ms", "must be > 0"));
        }
        if let Some(h) = x.auto_approve.hours.iter().find(|h| **h > 23) {
            return Err(invalid(
                "executor.auto-approve.hours",
                format!("{h} is not an hour 0-23"),
            ));
        }
        crate::executor::utc_offset_minutes(&x.auto_approve.time_zone)
            .map_err(|e| invalid("executor.auto-approve.time-zone", e))?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir", "must not be empty"));
        }
        for (key, v) in [
            ("admin-listen", &self.admin_listen),
            ("raft-listen", &self.raft_listen),
        ] {
            v.parse::<std::net::SocketAddr>()
                .map_err(|e| invalid(key, format!("{v:?}: {e} (want IP:PORT)")))?;
        }
        for (key, v) in [
            ("advertise-admin", &self.advertise_admin),
            ("advertise-raft", &self.advertise_raft),
        ] {
            if let Some(v) = v {
                guardian_proto::domain::validate_endpoint(key, v)
                    .map_err(|e| invalid(key, e.reason))?;
            }
        }
        if self.admin_listen == self.raft_listen && !self.admin_listen.ends_with(":0") {
            return Err(invalid("raft-listen", "must differ from admin-listen"));
        }
        let r = &self.raft;
        if r.heartbeat_interval_ms == 0 {
            return Err(invalid("raft.heartbeat-interval-ms", "must be > 0"));
        }
        if r.election_timeout_min_ms <= r.heartbeat_interval_ms {
            return Err(invalid(
                "raft.election-timeout-min-ms",
                "must be greater than raft.heartbeat-interval-ms",
            ));
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return Err(invalid(
                "raft.election-timeout-max-ms",
                "must be greater than raft.election-timeout-min-ms",
            ));
        }
        if r.snapshot_logs_since_last == 0 {
            return Err(invalid("raft.snapshot-logs-since-last", "must be > 0"));
        }
        if r.snapshot_chunk_bytes < 1024
            || r.snapshot_chunk_bytes > (self.grpc.max_request_bytes as u64 / 2).max(1024)
        {
            return Err(invalid(
                "raft.snapshot-chunk-bytes",
                "must be >= 1024 and at most half of grpc.max-request-bytes",
            ));
        }
        if r.max_proposals_in_flight == 0 || r.max_proposals_in_flight > 64 {
            return Err(invalid("raft.max-proposals-in-flight", "must be 1..=64"));
        }
        if let Some(t) = &r.peer_token {
            let t = t.expose();
            if t.len() < 16 || t.chars().any(|c| !c.is_ascii_graphic()) {
                return Err(invalid(
                    "raft.peer-token",
                    "must be at least 16 printable ASCII characters",
                ));
            }
        }
        if r.max_payload_entries == 0 {
            return Err(invalid("raft.max-payload-entries", "must be > 0"));
        }
        let c = &self.collect;
        if c.interval_ms < 100 {
            return Err(invalid("collect.interval-ms", "must be >= 100"));
        }
        if c.timeout_ms == 0 || c.timeout_ms > c.interval_ms {
            return Err(invalid(
                "collect.timeout-ms",
                "must be > 0 and <= collect.interval-ms",
            ));
        }
        if c.history_bucket_ms < c.interval_ms {
            return Err(invalid(
                "collect.history-bucket-ms",
                "must be >= collect.interval-ms",
            ));
        }
        if c.concurrency == 0 {
            return Err(invalid("collect.concurrency", "must be > 0"));
        }
        if self.grpc.max_request_bytes < 64 * 1024 {
            return Err(invalid("grpc.max-request-bytes", "must be >= 65536"));
        }
        if self.grpc.request_timeout_ms == 0 {
            return Err(invalid("grpc.request-timeout-ms", "must be > 0"));
        }
        if self.grpc.concurrency_per_connection == 0 {
            return Err(invalid("grpc.concurrency-per-connection", "must be > 0"));
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [
                ("tls.cert-file", &tls.cert_file),
                ("tls.key-file", &tls.key_file),
            ] {
                if !path.is_file() {
                    return Err(invalid(
                        key,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
        }
        for t in &self.auth.tokens {
            if t.token.expose().len() < 16 {
                return Err(invalid(
                    "auth.tokens.token",
                    "tokens must be at least 16 characters",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../../deploy/guardian.example.toml");
        let cfg: NodeConfig = toml::from_str(text).expect("example parses");
        cfg.validate().expect("example validates");
    }

    /// Tokens and the peer token never show in `Debug` (the whole config
    /// may be logged) nor in a validation error.
    #[test]
    fn tokens_stay_out_of_debug_and_errors() {
        let text = "node-id = 1\ndata-dir = \"/x\"\nadmin-listen = \"127.0.0.1:1\"\nraft-listen = \"127.0.0.1:2\"\n\
            [raft]\npeer-token = \"peer-secret-0123456789\"\n\
            [auth]\ntokens = [{ token = \"admin-secret-0123456789\", role = \"admin\" }, { token = \"tinysecret\", role = \"viewer\" }]\n";
        let cfg: NodeConfig = toml::from_str(text).unwrap();
        let dbg = format!("{cfg:?}");
        for secret in [
            "peer-secret-0123456789",
            "admin-secret-0123456789",
            "tinysecret",
        ] {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
        assert!(dbg.contains("<redacted>"));
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("auth.tokens.token") && !e.contains("tinysecret"),
            "{e}"
        );
        assert_eq!(
            cfg.raft.peer_token.as_ref().map(Secret::expose),
            Some("peer-secret-0123456789")
        );
    }

    /// Kafka security: bad keys are named; the password comes only from a
    /// file and never shows in `Debug`.
    #[test]
    fn kafka_security_keys_are_checked_and_the_password_stays_out() {
        let base = "node-id = 1\ndata-dir = \"/x\"\nadmin-listen = \"127.0.0.1:1\"\nraft-listen = \"127.0.0.1:2\"\n";
        let check = |extra: &str| {
            toml::from_str::<NodeConfig>(&format!("{base}{extra}"))
                .unwrap()
                .validate()
        };
        let e = check("[kafka.security]\n\"sasl.password\" = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("sasl-password-file"), "{e}");
        let e = check("[kafka.security]\n\"security.protocol\" = \"SSL\"\n").unwrap_err();
        assert!(e.to_string().contains("ssl.ca.location"), "{e}");
        let e =
            check("[kafka.security]\n\"sasl.kerberos.service.name\" = \"kafka\"\n").unwrap_err();
        assert!(e.to_string().contains("sasl.kerberos.service.name"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret-value\n").unwrap();
        let ok = format!(
            "[kafka]\nsasl-password-file = \"{}\"\n[kafka.security]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"SCRAM-SHA-256\"\n\"sasl.username\" = \"guardian\"\n",
            pw.display()
        );
        check(&ok).unwrap();
        let cfg: NodeConfig = toml::from_str(&format!("{base}{ok}")).unwrap();
        let o = cfg.kafka.connect_options().unwrap();
        assert!(!format!("{o:?}").contains("s3cret-value"));
    }

    /// The example documents the executor's defaults; bad values name the key.
    #[test]
    fn executor_keys_are_documented_and_checked() {
        let cfg: NodeConfig =
            toml::from_str(include_str!("../../deploy/guardian.example.toml")).unwrap();
        assert_eq!(cfg.executor, crate::executor::ExecutorConfig::default());
        assert_eq!(
            cfg.governance,
            crate::governance::GovernanceConfig::default()
        );
        assert_eq!(
            cfg.healing,
            crate::governance::healing::HealingConfig::default()
        );
        assert_eq!(cfg.consumers, crate::consumers::ConsumersConfig::default());
        for (key, set) in [
            (
                "consumers.lease-ms",
                (|c: &mut NodeConfig| c.consumers.lease_ms = 1500) as fn(&mut NodeConfig),
            ),
            ("consumers.session-timeout-ms", |c| {
                c.consumers.session_timeout_ms = 6000
            }),
            ("consumers.tolerance", |c| c.consumers.tolerance = 1.5),
            ("consumers.interval-ms", |c| c.consumers.interval_ms = 0),
        ] {
            let mut bad = cfg.clone();
            set(&mut bad);
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let mut bad = cfg.clone();
        bad.executor.max_tasks_per_broker = 0;
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("executor.max-tasks-per-broker"), "{e}");
        let mut bad = cfg;
        bad.executor.auto_approve.hours = vec![24];
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("executor.auto-approve.hours"), "{e}");
        bad.executor.auto_approve.hours = vec![];
        for tz in ["CET", "UTC+8", "UTC+15:00", "UTC08:00"] {
            bad.executor.auto_approve.time_zone = tz.into();
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains("executor.auto-approve.time-zone"), "{tz}: {e}");
        }
        for (tz, min) in [("UTC", 0), ("UTC+08:00", 480), ("UTC-05:30", -330)] {
            assert_eq!(crate::executor::utc_offset_minutes(tz), Ok(min));
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<NodeConfig>(
            "node-id = 1\ndata-dir = \"/x\"\nadmin-listen = \"127.0.0.1:1\"\nraft-listen = \"127.0.0.1:2\"\nbogus = 1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn bad_election_timeouts_name_the_key() {
        let mut cfg: NodeConfig =
            toml::from_str(include_str!("../../deploy/guardian.example.toml")).unwrap();
        cfg.raft.election_timeout_max_ms = cfg.raft.election_timeout_min_ms;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("raft.election-timeout-max-ms"), "{err}");
    }
}
