//! One connection to one broker: length-prefixed frames, a correlation id
//! per request, one request in flight at a time, a deadline per call, and
//! the versions negotiated with ApiVersions at connect.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::KafkaError;
pub use crate::security::ConnectOptions;

/// A byte stream to a broker: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// The largest response frame accepted (a big cluster's Metadata is tens of
/// MiB); a larger length is a malformed frame, not an allocation.
const MAX_FRAME: usize = 256 << 20;

const CLIENT_ID: &str = "guardian";

/// A connection to one broker, versions negotiated.
pub struct Connection {
    addr: String,
    stream: Box<dyn Stream>,
    next_correlation: i32,
    /// API key → (min, max) the broker supports.
    versions: BTreeMap<i16, (i16, i16)>,
    pub deadline: Duration,
}

impl Connection {
    /// Connects to `addr` (`host:port`) over plain TCP and negotiates
    /// versions.
    pub async fn connect(addr: &str, deadline: Duration) -> Result<Self, KafkaError> {
        Self::connect_with(addr, deadline, &ConnectOptions::default()).await
    }

    /// Connects to `addr` with `opts` (TLS, SASL), negotiates versions and
    /// authenticates, all within `deadline`.
    pub async fn connect_with(
        addr: &str,
        deadline: Duration,
        opts: &ConnectOptions,
    ) -> Result<Self, KafkaError> {
        // The step in progress names the timeout, whichever of the two
        // deadlines (this one or the request's own) fires first.
        let phase = std::sync::Mutex::new("connect");
        tokio::time::timeout(deadline, Self::open(addr, deadline, opts, &phase))
            .await
            .map_err(|_| KafkaError::Timeout {
                addr: addr.to_string(),
                api: *phase.lock().unwrap_or_else(|e| e.into_inner()),
                deadline,
            })?
    }

    async fn open(
        addr: &str,
        deadline: Duration,
        opts: &ConnectOptions,
        phase: &std::sync::Mutex<&'static str>,
    ) -> Result<Self, KafkaError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| KafkaError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &opts.tls {
            Some(tls) => {
                *phase.lock().unwrap_or_else(|e| e.into_inner()) = "TLS handshake";
                Box::new(tls.wrap(addr, tcp).await?)
            }
            None => Box::new(tcp),
        };
        let mut c = Connection {
            addr: addr.to_string(),
            stream,
            next_correlation: 1,
            versions: BTreeMap::new(),
            deadline,
        };
        // ApiVersions v3 (KIP-511, Kafka 2.4+: the oldest broker this client
        // supports); an older broker's answer fails to decode, as Malformed.
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("guardian"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        *phase.lock().unwrap_or_else(|e| e.into_inner()) = "ApiVersions";
        let resp: ApiVersionsResponse = c.send(ApiKey::ApiVersions, 3, &req).await?;
        KafkaError::check("ApiVersions", addr, resp.error_code)?;
        c.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = &opts.sasl {
            *phase.lock().unwrap_or_else(|e| e.into_inner()) = "SaslAuthenticate";
            sasl.authenticate(&mut c).await?;
        }
        Ok(c)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `api` in `ours` that the broker supports.
    pub fn version(&self, api: ApiKey, ours: (i16, i16)) -> Result<i16, KafkaError> {
        let offered = self.versions.get(&(api as i16)).copied();
        match offered {
            Some((min, max)) if min <= ours.1 && max >= ours.0 => Ok(max.min(ours.1)),
            _ => Err(KafkaError::Unsupported {
                addr: self.addr.clone(),
                api: api_name(api),
                min: ours.0,
                max: ours.1,
                offered: offered.map_or("none".into(), |(a, b)| format!("v{a}–v{b}")),
            }),
        }
    }

    /// Sends one request at `version` and reads its response, within the
    /// connection's deadline.
    pub(crate) async fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, KafkaError> {
        let deadline = self.deadline;
        let addr = self.addr.clone();
        tokio::time::timeout(deadline, self.round_trip(api, version, req))
            .await
            .map_err(|_| KafkaError::Timeout {
                addr,
                api: api_name(api),
                deadline,
            })?
    }

    async fn round_trip<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, KafkaError> {
        let name = api_name(api);
        let malformed = |reason: String| KafkaError::Malformed {
            addr: self.addr.clone(),
            api: name,
            reason,
        };
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .and_then(|_| req.encode(&mut body, version))
            .map_err(|e| malformed(format!("encoding the request: {e}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let io = |source| KafkaError::Io {
            addr: self.addr.clone(),
            source,
        };
        self.stream.write_all(&frame).await.map_err(io)?;
        let len = self.stream.read_i32().await.map_err(io)?;
        if len < 0 || len as usize > MAX_FRAME {
            return Err(malformed(format!("frame length {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).await.map_err(io)?;
        let mut buf = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut buf, api.response_header_version(version))
            .map_err(|e| malformed(format!("header: {e}")))?;
        if h.correlation_id != correlation {
            return Err(malformed(format!(
                "correlation id {} for request {correlation}",
                h.correlation_id
            )));
        }
        let resp = Resp::decode(&mut buf, version).map_err(|e| malformed(e.to_string()))?;
        if buf.has_remaining() {
            tracing::debug!(
                api = name,
                left = buf.remaining(),
                "response bytes left over"
            );
        }
        Ok(resp)
    }
}

pub(crate) fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::Metadata => "Metadata",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::AlterReplicaLogDirs => "AlterReplicaLogDirs",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::ElectLeaders => "ElectLeaders",
        ApiKey::DescribeClientQuotas => "DescribeClientQuotas",
        ApiKey::AlterClientQuotas => "AlterClientQuotas",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        _ => "request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that reads one frame and answers `reply`.
    async fn fake(reply: Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let len = s.read_i32().await.unwrap();
            let mut b = vec![0u8; len as usize];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&reply).await.unwrap();
            // Hold the connection until the client gives up.
            let _ = s.read_u8().await;
        });
        addr
    }

    #[tokio::test]
    async fn garbage_and_lies_are_errors_not_panics() {
        let d = Duration::from_secs(2);
        // A negative frame length.
        let e = Connection::connect(&fake((-5i32).to_be_bytes().to_vec()).await, d)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, KafkaError::Malformed { .. }), "{e}");
        // A frame far larger than allowed: refused before allocating it.
        let e = Connection::connect(&fake(i32::MAX.to_be_bytes().to_vec()).await, d)
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("frame length"), "{e}");
        // A frame whose correlation id is another request's.
        let mut f = 8i32.to_be_bytes().to_vec();
        f.extend_from_slice(&77i32.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        let e = Connection::connect(&fake(f).await, d).await.err().unwrap();
        assert!(e.to_string().contains("correlation id 77"), "{e}");
        // Nobody listening.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = Connection::connect(&addr, d).await.err().unwrap();
        assert!(matches!(e, KafkaError::Connect { .. }), "{e}");
    }

    /// A broker whose ApiVersions lists only ApiVersions: every other call
    /// is a typed `Unsupported` naming the API, before anything is sent.
    #[tokio::test]
    async fn an_api_the_broker_lacks_is_unsupported_not_sent() {
        // ApiVersions v3 response: header v0 (correlation id 1), error 0,
        // api_keys (compact array of 1: key 18, v0–v3, no tags),
        // throttle 0, no tags.
        let mut body = vec![0, 0, 0, 1, 0, 0, 2, 0, 18, 0, 0, 0, 3, 0];
        body.extend_from_slice(&[0, 0, 0, 0, 0]);
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        let c = Connection::connect(&fake(f).await, Duration::from_secs(2))
            .await
            .unwrap();
        let e = c.version(ApiKey::DescribeLogDirs, (1, 4)).unwrap_err();
        assert!(
            matches!(
                e,
                KafkaError::Unsupported {
                    api: "DescribeLogDirs",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("offers none"), "{e}");
        assert_eq!(c.version(ApiKey::ApiVersions, (0, 9)).unwrap(), 3);
    }

    #[tokio::test]
    async fn a_silent_broker_times_out_within_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let _hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let t = std::time::Instant::now();
        let e = Connection::connect(&addr, Duration::from_millis(300))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                KafkaError::Timeout {
                    api: "ApiVersions",
                    ..
                }
            ),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
