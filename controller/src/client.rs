//! A Rust client for the admin API that follows the leader: a write sent to
//! a follower comes back `UNAVAILABLE` with the leader's admin address in
//! metadata, and the call is re-sent there; an unreachable node or a group
//! without a leader yet is retried on the other endpoints until the deadline.
//!
//! Every call carries a request id (`x-guardian-request-id`: this client's
//! random id and a sequence number, the same on every attempt of one call),
//! so a write re-sent after an ambiguous failure — its first attempt may
//! have committed — gets the first attempt's result instead of a second
//! effect. Whether to re-send is decided by [`Retry::of`] from the status's
//! code, its leader metadata and whether the transport produced it; never
//! from its message.

use std::error::Error as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guardian_proto::domain::{KafkaUuid, RequestId};

use guardian_proto::pb;
use guardian_proto::pb::guardian_admin_client::GuardianAdminClient;
use guardian_proto::pb::remote_log_metadata_client::RemoteLogMetadataClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::error::LEADER_ADDR_KEY;

/// Metadata key carrying a call's request id (`<client uuid>:<seq>`).
pub const REQUEST_ID_KEY: &str = "x-guardian-request-id";

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// A node that is not the leader named it: send it there (nothing was
    /// proposed, or the request id makes a repeat harmless).
    Redirect(String),
    /// The request may or may not have been carried out (no answer, a
    /// broken connection, a leader that lost its quorum or is stopping):
    /// send it again, to any node, only when it carries a request id.
    Ambiguous,
    /// The server answered: that is the result.
    Final,
}

impl Retry {
    /// Classifies a failed attempt. A status the transport produced
    /// (connect error, broken HTTP/2 stream, reset) carries the local error
    /// as its source; one the server sent does not.
    pub fn of(s: &Status) -> Retry {
        let leader = s
            .metadata()
            .get(LEADER_ADDR_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let (Code::Unavailable, Some(l)) = (s.code(), leader) {
            return Retry::Redirect(l);
        }
        let from_transport = s.source().is_some();
        match s.code() {
            Code::Unavailable => Retry::Ambiguous,
            Code::Unknown | Code::Cancelled | Code::Internal if from_transport => Retry::Ambiguous,
            _ => Retry::Final,
        }
    }
}

/// Adds the bearer token, if any, and the call's request id, if any, to
/// every request.
#[derive(Clone, Default)]
pub struct TokenInterceptor(
    Option<MetadataValue<tonic::metadata::Ascii>>,
    Option<MetadataValue<tonic::metadata::Ascii>>,
);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        if let Some(id) = &self.1 {
            req.metadata_mut().insert(REQUEST_ID_KEY, id.clone());
        }
        Ok(req)
    }
}

/// A channel to one endpoint that adds the bearer token.
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;
pub type AdminStub = GuardianAdminClient<AuthChannel>;
pub type RemoteLogStub = RemoteLogMetadataClient<AuthChannel>;
pub type ConsumersStub = pb::guardian_consumers_client::GuardianConsumersClient<AuthChannel>;

/// A generated gRPC client the leader-following [`AdminClient::call_on`] can drive.
pub trait Stub {
    fn from_channel(ch: AuthChannel) -> Self;
}

impl Stub for AdminStub {
    fn from_channel(ch: AuthChannel) -> Self {
        GuardianAdminClient::new(ch)
    }
}

impl Stub for ConsumersStub {
    fn from_channel(ch: AuthChannel) -> Self {
        pb::guardian_consumers_client::GuardianConsumersClient::new(ch)
    }
}

impl Stub for RemoteLogStub {
    fn from_channel(ch: AuthChannel) -> Self {
        // Listings of big partitions can exceed tonic's 4 MiB default.
        RemoteLogMetadataClient::new(ch).max_decoding_message_size(256 << 20)
    }
}

/// Leader-following admin client over a list of `host:port` endpoints.
pub struct AdminClient {
    endpoints: Vec<String>,
    /// The endpoint that last answered (usually the leader), tried first.
    preferred: Mutex<Option<String>>,
    channels: Mutex<std::collections::HashMap<String, Channel>>,
    token: TokenInterceptor,
    /// Set when the admin ports speak TLS: trust this CA, use `https://`.
    tls: Option<ClientTlsConfig>,
    /// Total time a call may take across retries and redirects.
    pub deadline: Duration,
    /// This client's id in request ids (random, one per client).
    client_id: KafkaUuid,
    next_seq: AtomicU64,
    /// Whether calls carry request ids (and so may be re-sent after an
    /// ambiguous failure). On by default.
    request_ids: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no endpoints given (use --endpoints or GUARDIAN_ENDPOINTS)")]
    NoEndpoints,
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("invalid token: {0}")]
    BadToken(String),
}

impl AdminClient {
    pub fn new(endpoints: &[String], token: Option<&str>) -> Result<Self, ClientError> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        for e in &endpoints {
            guardian_proto::domain::validate_endpoint("endpoint", e).map_err(|err| {
                ClientError::BadEndpoint {
                    endpoint: e.clone(),
                    reason: err.reason,
                }
            })?;
        }
        let token = token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|e| ClientError::BadToken(e.to_string()))
            })
            .transpose()?;
        Ok(Self {
            endpoints,
            preferred: Mutex::new(None),
            channels: Mutex::new(Default::default()),
            token: TokenInterceptor(token, None),
            tls: None,
            deadline: Duration::from_secs(15),
            client_id: KafkaUuid::from_random_bytes(rand::random()),
            next_seq: AtomicU64::new(1),
            request_ids: true,
        })
    }

    /// Sends no request ids: a write is then never re-sent after an
    /// ambiguous failure (only redirected by a node that is not the leader).
    pub fn without_request_ids(mut self) -> Self {
        self.request_ids = false;
        self
    }

    /// Talks TLS to every endpoint, trusting the CA certificate(s) in `ca_pem`.
    pub fn with_ca(mut self, ca_pem: &[u8]) -> Self {
        self.tls = Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)));
        self
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// An admin stub for one endpoint.
    pub fn stub(&self, endpoint: &str) -> Result<AdminStub, Status> {
        self.stub_on(endpoint)
    }

    /// A stub of any service for one endpoint (channels are cached and
    /// connect lazily).
    pub fn stub_on<S: Stub>(&self, endpoint: &str) -> Result<S, Status> {
        self.stub_on_with(endpoint, None)
    }

    fn stub_on_with<S: Stub>(&self, endpoint: &str, id: Option<RequestId>) -> Result<S, Status> {
        let ch = {
            let mut chans = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            match chans.get(endpoint) {
                Some(c) => c.clone(),
                None => {
                    let scheme = if self.tls.is_some() { "https" } else { "http" };
                    let mut ep = Endpoint::from_shared(format!("{scheme}://{endpoint}"))
                        .map_err(|e| Status::invalid_argument(format!("endpoint {endpoint}: {e}")))?
                        .connect_timeout(Duration::from_millis(300))
                        .tcp_nodelay(true);
                    if let Some(tls) = &self.tls {
                        ep = ep.tls_config(tls.clone()).map_err(|e| {
                            Status::invalid_argument(format!("tls for {endpoint}: {e}"))
                        })?;
                    }
                    let c = ep.connect_lazy();
                    chans.insert(endpoint.to_string(), c.clone());
                    c
                }
            }
        };
        let mut token = self.token.clone();
        token.1 = id.and_then(|id| MetadataValue::try_from(id.to_string()).ok());
        Ok(S::from_channel(InterceptedService::new(ch, token)))
    }

    /// Runs `f` on the admin service of the leader, following redirects and
    /// retrying unavailable endpoints until [`AdminClient::deadline`].
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, Status>
    where
        F: Fn(AdminStub) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_on(f).await
    }

    /// `cluster add`, `broker add` for each of `brokers`, then `cluster
    /// discover` — what an operator runs to register a cluster. What is
    /// already registered is kept (`ALREADY_EXISTS` counts as done), so a
    /// resumed run can call it again. The error names the step.
    pub async fn register_cluster(
        &self,
        cluster: pb::Cluster,
        brokers: &[pb::Broker],
    ) -> Result<(), Status> {
        let name = cluster.name.clone();
        let step = |what: String| {
            move |e: Status| Status::new(e.code(), format!("{what}: {}", e.message()))
        };
        let kept = |r: Result<(), Status>| match r {
            Err(e) if e.code() == Code::AlreadyExists => Ok(()),
            r => r,
        };
        kept(
            self.call(|mut s| {
                let cluster = cluster.clone();
                async move {
                    s.add_cluster(pb::AddClusterRequest {
                        cluster: Some(cluster),
                    })
                    .await
                }
            })
            .await
            .map(drop),
        )
        .map_err(step(format!("cluster add {name}")))?;
        for b in brokers {
            kept(
                self.call(|mut s| {
                    let broker = b.clone();
                    async move {
                        s.add_broker(pb::AddBrokerRequest {
                            broker: Some(broker),
                        })
                        .await
                    }
                })
                .await
                .map(drop),
            )
            .map_err(step(format!("broker add {name}/{}", b.broker_id)))?;
        }
        self.call(|mut s| {
            let name = name.clone();
            async move {
                s.discover_cluster(pb::DiscoverClusterRequest {
                    name,
                    dry_run: false,
                })
                .await
            }
        })
        .await
        .map(drop)
        .map_err(step(format!("cluster discover {name}")))
    }

    /// [`AdminClient::call`] for any service on the admin port.
    pub async fn call_on<S, T, F, Fut>(&self, f: F) -> Result<T, Status>
    where
        S: Stub,
        F: Fn(S) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let id = self.request_ids.then(|| RequestId {
            client: self.client_id,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        });
        let start = Instant::now();
        let mut next = self
            .preferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.endpoints[0].clone());
        let mut rr = 0usize;
        let mut backoff = Duration::from_millis(5);
        loop {
            let target = next.clone();
            let stub = self.stub_on_with::<S>(&target, id)?;
            // No attempt outlives the call's deadline (a leader without a
            // quorum would otherwise hold the request until the server gives up).
            let left = self.deadline.saturating_sub(start.elapsed());
            let res = match tokio::time::timeout(left, f(stub)).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "no answer from {target} within {:?}",
                        self.deadline
                    )))
                }
            };
            let status = match res {
                Ok(r) => {
                    *self.preferred.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
                    return Ok(r.into_inner());
                }
                Err(s) => s,
            };
            if start.elapsed() >= self.deadline {
                return Err(status);
            }
            match Retry::of(&status) {
                Retry::Final => return Err(status),
                Retry::Ambiguous if id.is_none() => return Err(status),
                Retry::Redirect(l) if l != target => {
                    next = l;
                    continue;
                }
                Retry::Redirect(_) | Retry::Ambiguous => {
                    rr = (rr + 1) % self.endpoints.len();
                    next = self.endpoints[rr].clone();
                    if next == target {
                        rr = (rr + 1) % self.endpoints.len();
                        next = self.endpoints[rr].clone();
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
    }
}
