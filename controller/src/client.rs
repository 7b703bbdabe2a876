//! A Rust client for the admin API that follows the leader: a write sent to
//! a follower comes back `UNAVAILABLE` with the leader's admin address in
//! metadata, and the call is re-sent there; an unreachable node or a group
//! without a leader yet is retried on the other endpoints until the deadline.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guardian_proto::pb::guardian_admin_client::GuardianAdminClient;
use guardian_proto::pb::remote_log_metadata_client::RemoteLogMetadataClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::error::LEADER_ADDR_KEY;

/// Adds the bearer token, if any, to every request.
#[derive(Clone, Default)]
pub struct TokenInterceptor(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

/// A channel to one endpoint that adds the bearer token.
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;
pub type AdminStub = GuardianAdminClient<AuthChannel>;
pub type RemoteLogStub = RemoteLogMetadataClient<AuthChannel>;

/// A generated gRPC client the leader-following [`AdminClient::call_on`] can drive.
pub trait Stub {
    fn from_channel(ch: AuthChannel) -> Self;
}

impl Stub for AdminStub {
    fn from_channel(ch: AuthChannel) -> Self {
        GuardianAdminClient::new(ch)
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

fn is_retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    ) || (s.code() == Code::Internal && s.message().contains("h2 protocol error"))
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
            token: TokenInterceptor(token),
            tls: None,
            deadline: Duration::from_secs(15),
        })
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
        Ok(S::from_channel(InterceptedService::new(
            ch,
            self.token.clone(),
        )))
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

    /// [`AdminClient::call`] for any service on the admin port.
    pub async fn call_on<S, T, F, Fut>(&self, f: F) -> Result<T, Status>
    where
        S: Stub,
        F: Fn(S) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
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
            let stub = self.stub_on::<S>(&target)?;
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
            if !is_retryable(&status) || start.elapsed() >= self.deadline {
                return Err(status);
            }
            let leader = status
                .metadata()
                .get(LEADER_ADDR_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match leader {
                Some(l) if l != target => {
                    next = l;
                    continue;
                }
                _ => {
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
