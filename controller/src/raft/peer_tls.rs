//! Mutual TLS on the raft port (`[raft.tls]`): every node presents a
//! certificate signed by the cluster's CA and accepts only peers that do
//! (the peer token, when set, is checked on top). The files are re-read
//! when they change — a rotated certificate, key or CA takes effect for
//! new connections within [`RELOAD_EVERY`] without a restart; a set that
//! does not load (a key that does not match, a half-written file) is
//! refused with a warning and the previous one stays in use.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::PeerTlsConfig;
use crate::tasks::Tasks;

/// How often the files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// How long a peer may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The loaded files: the server side (acceptor) and the client side
/// (channels to peers), swapped together on reload.
pub struct PeerTls {
    files: PeerTlsConfig,
    server: RwLock<Arc<ServerConfig>>,
    client: RwLock<ClientTlsConfig>,
    /// Bumped on every reload: channels built before it are rebuilt.
    generation: AtomicU64,
    stamp: Mutex<Stamp>,
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))
}

fn stamp(files: &PeerTlsConfig) -> Stamp {
    [&files.cert_file, &files.key_file, &files.ca_file]
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn build(files: &PeerTlsConfig) -> Result<(Arc<ServerConfig>, ClientTlsConfig), String> {
    let (cert_pem, key_pem, ca_pem) = (
        read(&files.cert_file)?,
        read(&files.key_file)?,
        read(&files.ca_file)?,
    );
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", files.cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: {e}", files.key_file.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&ca_pem) {
        let ca = ca.map_err(|e| format!("{}: {e}", files.ca_file.display()))?;
        roots
            .add(ca)
            .map_err(|e| format!("{}: {e}", files.ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no CA certificate", files.ca_file.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("peer CA {}: {e}", files.ca_file.display()))?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{} / {}: {e}",
                files.cert_file.display(),
                files.key_file.display()
            )
        })?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let client = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca_pem))
        .identity(Identity::from_pem(&cert_pem, &key_pem));
    Ok((Arc::new(server), client))
}

impl PeerTls {
    /// Loads the files; an error names the file and what is wrong.
    pub fn load(files: &PeerTlsConfig) -> Result<Arc<PeerTls>, String> {
        let st = stamp(files);
        let (server, client) = build(files)?;
        Ok(Arc::new(PeerTls {
            files: files.clone(),
            server: RwLock::new(server),
            client: RwLock::new(client),
            generation: AtomicU64::new(1),
            stamp: Mutex::new(st),
        }))
    }

    /// Re-reads the files if any changed since the last load. `Ok(true)`:
    /// the new set is in use.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.files);
        {
            let last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if *last == now {
                return Ok(false);
            }
        }
        // Record the attempt either way: a bad set is reported once, and
        // retried when the files change again.
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = now;
        let (server, client) = build(&self.files)?;
        *self.server.write().unwrap_or_else(|p| p.into_inner()) = server;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(true)
    }

    /// The current generation and client config (for a peer channel).
    pub fn client(&self) -> (u64, ClientTlsConfig) {
        let c = self
            .client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (self.generation.load(Ordering::Acquire), c)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.server
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Checks the files every [`RELOAD_EVERY`] until `stop`.
pub async fn watch(tls: Arc<PeerTls>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match tls.reload_if_changed() {
            Ok(true) => tracing::info!(
                cert = %tls.files.cert_file.display(),
                "raft port TLS files reloaded"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "raft port TLS files not reloaded; the previous ones stay in use")
            }
        }
    }
}

/// Accepted connections after a successful mutual-TLS handshake with the
/// acceptor current at accept time. A peer that presents no certificate,
/// one the CA did not sign, or plaintext is dropped (logged at debug: any
/// port scanner would otherwise fill the log).
pub fn incoming(
    listener: TcpListener,
    tls: Arc<PeerTls>,
    tasks: &Tasks,
    stop: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let handshakes = tasks.clone();
    tasks.spawn("raft tls accept", async move {
        loop {
            let (sock, addr): (TcpStream, SocketAddr) = tokio::select! {
                _ = stop.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "raft port accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = sock.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            handshakes.spawn("raft tls handshake", async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                    Ok(Ok(s)) => {
                        let _ = tx.send(Ok(s)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %addr, error = %e, "raft port: TLS handshake refused")
                    }
                    Err(_) => tracing::debug!(peer = %addr, "raft port: TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
