//! Mutual TLS on the raft port (`[raft.tls]`): three nodes whose
//! certificates a test CA signed form a group and replicate; callers
//! without a certificate, with one from another CA, or in plaintext are
//! refused at the handshake and never reach Raft; a rotated certificate is
//! served without a restart and a set that does not load is refused while
//! the previous one stays in use; no key material in any node's log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use guardian_proto::pb;
use guardian_proto::pb::raft_peer_client::RaftPeerClient;
use guardian_tests::certs::{Leaf, TestCa};
use guardian_tests::{cluster, wait_until, TestCluster};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const SANS: &[&str] = &["127.0.0.1", "localhost"];

/// Writes a file whole (a temporary name, then a rename), as an operator's
/// rotation tool would.
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Which certificate node `addr`'s raft port presents to a client holding
/// `client` (signed by `ca`); `Err` when the handshake fails.
async fn presented(addr: &str, ca: &TestCa, client: Option<&Leaf>) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some(l) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(l.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(l.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3: the server checks the client's certificate after the
    // client's side of the handshake is done; a refusal arrives as an
    // alert on the first read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut buf))
        .await
        .map_err(|_| "no answer".to_string())?
        .map_err(|e| e.to_string())?;
    let (_, conn) = tls.get_ref();
    Ok(conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default())
}

async fn peer_client(
    addr: &str,
    ca: &TestCa,
    leaf: Option<&Leaf>,
) -> RaftPeerClient<tonic::transport::Channel> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem()));
    if let Some(l) = leaf {
        tls = tls.identity(Identity::from_pem(&l.cert_pem, &l.key_pem));
    }
    let ep = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    RaftPeerClient::new(ep.connect_lazy())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t59_raft_port_speaks_mutual_tls_and_reloads_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("guardian peers");
    let leaf = ca.issue("guardian node", SANS);
    let (cert, key, ca_file) = (
        dir.path().join("peer.crt"),
        dir.path().join("peer.key"),
        dir.path().join("ca.crt"),
    );
    put(&cert, &leaf.cert_pem);
    put(&key, &leaf.key_pem);
    put(&ca_file, ca.pem());
    let extra = format!(
        "[raft.tls]\ncert-file = \"{}\"\nkey-file = \"{}\"\nca-file = \"{}\"\n",
        cert.display(),
        key.display(),
        ca_file.display()
    );
    let c = TestCluster::start_with(3, &extra).await;
    let cl = c.client();
    let add = |name: &'static str| {
        let cl = &cl;
        async move {
            cl.call(|mut s| async move {
                s.add_cluster(pb::AddClusterRequest {
                    cluster: Some(cluster(name)),
                })
                .await
            })
            .await
            .unwrap_or_else(|e| panic!("add {name}: {e}"))
        }
    };
    // Peers replicate over mutual TLS; RaftStatus reaches each over it.
    add("over-mtls").await;
    let st = cl
        .call(|mut s| async move { s.raft_status(pb::RaftStatusRequest {}).await })
        .await
        .unwrap();
    assert!(st.nodes.iter().all(|n| n.role != "unreachable"), "{st:?}");

    let raft1 = c.node(1).raft.clone();
    // A caller whose certificate the CA signed gets in.
    let mut good = peer_client(&raft1, &ca, Some(&leaf)).await;
    good.node_status(pb::NodeStatusRequest {}).await.unwrap();
    // Without a certificate, with another CA's, or in plaintext: refused
    // before any RPC, and the vote never reaches Raft.
    let vote = pb::VoteRequest {
        vote: Some(pb::Vote {
            term: 999,
            node_id: 9,
            committed: false,
        }),
        last_log_id: None,
    };
    let mut anonymous = peer_client(&raft1, &ca, None).await;
    let e = anonymous
        .vote(vote)
        .await
        .expect_err("no client certificate");
    assert!(
        matches!(
            e.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ),
        "{e:?}"
    );
    let other = TestCa::new("someone else");
    let stranger_leaf = other.issue("stranger", SANS);
    let mut stranger = peer_client(&raft1, &ca, Some(&stranger_leaf)).await;
    let e = stranger.vote(vote).await.expect_err("foreign CA");
    assert!(
        matches!(
            e.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ),
        "{e:?}"
    );
    assert!(presented(&raft1, &ca, Some(&stranger_leaf)).await.is_err());
    assert!(presented(&raft1, &ca, None).await.is_err());
    let mut plain = RaftPeerClient::new(
        Endpoint::from_shared(format!("http://{raft1}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy(),
    );
    let mut req = tonic::Request::new(vote);
    req.set_timeout(Duration::from_secs(3));
    plain.vote(req).await.expect_err("plaintext");
    let s = c.node_status(1).await.unwrap();
    assert!(s.term < 999, "term {}", s.term);
    assert_eq!(presented(&raft1, &ca, Some(&leaf)).await.unwrap(), leaf.der);

    // Rotation: a new certificate from the same CA, served without restart.
    let rotated = ca.issue("guardian node (rotated)", SANS);
    put(&key, &rotated.key_pem);
    put(&cert, &rotated.cert_pem);
    wait_until(
        "every node presents the rotated certificate",
        Duration::from_secs(15),
        || async {
            for n in 1..=3 {
                let got = presented(&c.node(n).raft, &ca, Some(&rotated)).await.ok()?;
                if got != rotated.der {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    add("after-rotation").await;

    // A key that does not match the certificate: refused, the rotated set
    // stays in use, replication goes on.
    put(&key, &ca.issue("unrelated", SANS).key_pem);
    wait_until(
        "the nodes refuse the mismatched set",
        Duration::from_secs(15),
        || async {
            (1..=3)
                .all(|n| {
                    std::fs::read_to_string(c.node(n).dir.join("guardian.log"))
                        .is_ok_and(|l| l.contains("raft port TLS files not reloaded"))
                })
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        presented(&raft1, &ca, Some(&rotated)).await.unwrap(),
        rotated.der
    );
    add("after-bad-key").await;

    // No key material in any log.
    for n in 1..=3 {
        let log = std::fs::read_to_string(c.node(n).dir.join("guardian.log")).unwrap();
        for secret in [&leaf.key_pem, &rotated.key_pem] {
            let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
            assert!(!log.contains("PRIVATE KEY"), "node {n} logged a key");
            assert!(!log.contains(&body[..40]), "node {n} logged key material");
        }
    }
}
