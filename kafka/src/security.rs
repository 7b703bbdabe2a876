//! TLS (rustls) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; `rsasl`
//! runs the mechanisms) for broker connections, configured with the same
//! keys a Kafka client uses:
//!
//! | key | values |
//! |---|---|
//! | `security.protocol` | `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT`, `SASL_SSL` |
//! | `ssl.ca.location` | PEM file of the CA(s) that sign the brokers' certificates |
//! | `ssl.endpoint.identification.name` | name to verify in the certificate instead of the host |
//! | `sasl.mechanism` | `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` |
//! | `sasl.username`, `sasl.password` | credentials (never logged) |

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::conn::Connection;
use crate::error::KafkaError;

/// How a connection is secured; the default is plain TCP.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ConnectOptions {
    /// Options from client config keys (table above). An unknown key
    /// prefixed `ssl.`/`sasl.`/`security.`, a missing credential or an
    /// unsupported mechanism is an error naming the key.
    pub fn from_config<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, KafkaError> {
        let mut protocol = "PLAINTEXT".to_string();
        let (mut ca, mut name, mut mech, mut user, mut pass) = (None, None, None, None, None);
        for (k, v) in pairs {
            match k {
                "security.protocol" => protocol = v.to_ascii_uppercase(),
                "ssl.ca.location" => ca = Some(v.to_string()),
                "ssl.endpoint.identification.name" => name = Some(v.to_string()),
                "sasl.mechanism" => mech = Some(v.to_string()),
                "sasl.username" => user = Some(v.to_string()),
                "sasl.password" => pass = Some(v.to_string()),
                k if k.starts_with("ssl.")
                    || k.starts_with("sasl.")
                    || k.starts_with("security.") =>
                {
                    return Err(KafkaError::Config {
                        key: "security",
                        reason: format!("unknown key {k:?}"),
                    })
                }
                _ => {}
            }
        }
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(KafkaError::Config {
                    key: "security.protocol",
                    reason: format!(
                        "{other:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                    ),
                })
            }
        };
        let tls = if tls {
            let ca = ca.ok_or(KafkaError::Config {
                key: "ssl.ca.location",
                reason: format!("required with security.protocol={protocol}"),
            })?;
            let pem = std::fs::read(&ca).map_err(|e| KafkaError::Config {
                key: "ssl.ca.location",
                reason: format!("reading {ca}: {e}"),
            })?;
            Some(Tls::from_ca_pem(&pem, name)?)
        } else {
            None
        };
        let sasl = if sasl {
            let need = |v: Option<String>, key| {
                v.ok_or(KafkaError::Config {
                    key,
                    reason: format!("required with security.protocol={protocol}"),
                })
            };
            Some(Sasl::new(
                &need(mech, "sasl.mechanism")?,
                &need(user, "sasl.username")?,
                &need(pass, "sasl.password")?,
            )?)
        } else {
            None
        };
        Ok(ConnectOptions { tls, sasl })
    }
}

/// TLS to the brokers, verifying their certificates against given CAs.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl Tls {
    /// Trusts the CA certificates in `pem`; `server_name` overrides the
    /// name verified in each broker's certificate (default: its host).
    pub fn from_ca_pem(pem: &[u8], server_name: Option<String>) -> Result<Self, KafkaError> {
        use rustls_pki_types::pem::PemObject;
        let bad = |reason: String| KafkaError::Config {
            key: "ssl.ca.location",
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A TLS client session over `tcp`, verified against the CA (the
    /// name checked is `server_name`, else `addr`'s host).
    pub async fn wrap(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, KafkaError> {
        let host = self
            .server_name
            .clone()
            .unwrap_or_else(|| addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string());
        let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| {
            KafkaError::Config {
                key: "ssl.endpoint.identification.name",
                reason: format!("{host:?}: {e}"),
            }
        })?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| KafkaError::Connect {
                addr: addr.to_string(),
                source,
            })
    }
}

/// A SASL mechanism Kafka and this client both speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials; `Debug` never shows the password.
#[derive(Clone)]
pub struct Sasl {
    pub mechanism: Mechanism,
    username: String,
    password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism.name())
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Sasl {
    /// `mechanism` as Kafka names it; anything but PLAIN and SCRAM-SHA-256/512
    /// (GSSAPI, OAUTHBEARER, …) is a config error.
    pub fn new(mechanism: &str, username: &str, password: &str) -> Result<Self, KafkaError> {
        let mechanism = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            "SCRAM-SHA-512" => Mechanism::ScramSha512,
            other => {
                return Err(KafkaError::Config {
                    key: "sasl.mechanism",
                    reason: format!(
                        "{other:?} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 are)"
                    ),
                })
            }
        };
        Ok(Sasl {
            mechanism,
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    /// SaslHandshake, then SaslAuthenticate rounds until the mechanism
    /// finishes (SCRAM verifies the server's final message).
    pub(crate) async fn authenticate(&self, c: &mut Connection) -> Result<(), KafkaError> {
        use rsasl::prelude::*;
        let addr = c.addr().to_string();
        let mech = self.mechanism.name();
        let failed = |reason: String| KafkaError::Kafka {
            api: "SaslAuthenticate",
            resource: format!("user {:?} with {mech} ({reason})", self.username),
            code: 58,
            name: "SaslAuthenticationFailed".into(),
        };
        let v = c.version(ApiKey::SaslHandshake, (1, 1))?;
        let hs: SaslHandshakeResponse = c
            .send(
                ApiKey::SaslHandshake,
                v,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech)),
            )
            .await?;
        if hs.error_code != 0 {
            let offered: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(KafkaError::Config {
                key: "sasl.mechanism",
                reason: format!("{addr} does not enable {mech} (it offers {offered:?})"),
            });
        }
        let av = c.version(ApiKey::SaslAuthenticate, (0, 2))?;
        let config =
            SASLConfig::with_credentials(None, self.username.clone(), self.password.clone())
                .map_err(|e| failed(e.to_string()))?;
        let name = Mechname::parse(mech.as_bytes()).map_err(|e| failed(e.to_string()))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[name])
            .map_err(|e| failed(e.to_string()))?;
        let mut input: Option<Vec<u8>> = None;
        loop {
            let mut out = Vec::new();
            let state = session
                .step(input.as_deref(), &mut out)
                .map_err(|e| failed(e.to_string()))?;
            let send = !matches!(state, State::Finished(MessageSent::No));
            if send {
                let r: SaslAuthenticateResponse = c
                    .send(
                        ApiKey::SaslAuthenticate,
                        av,
                        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out)),
                    )
                    .await?;
                if r.error_code != 0 {
                    return Err(failed(
                        r.error_message
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| format!("error {}", r.error_code)),
                    ));
                }
                input = Some(r.auth_bytes.to_vec());
            }
            if state.is_finished() {
                return Ok(());
            }
        }
    }
}
