//! Real Apache Kafka (KRaft, from the Maven jars), one combined node per
//! binary that also listens with SASL_SSL: Guardian's client negotiates
//! versions, reads Metadata, and authenticates over TLS with PLAIN and
//! SCRAM-SHA-256/512; wrong credentials, an unknown CA and bad security
//! config are typed errors that name what failed and never the password.

use std::time::{Duration, Instant};

use guardian_kafka::{ConnectOptions, KafkaClient, KafkaError, Sasl, Tls};
use guardian_tests::kafka::{KafkaCluster, Layout, SASL_USERS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combined_node_comes_up_and_answers() {
    let started = Instant::now();
    let one = KafkaCluster::shared(Layout::CombinedSecure)
        .await
        .lock()
        .await;
    eprintln!(
        "kafka start (or wait for it): combined node {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let m = one.metadata().await.unwrap();
    assert_eq!(m.cluster_id.as_deref(), Some(one.cluster_id.as_str()));
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].id, 1);
    assert_eq!(m.brokers[0].rack.as_deref(), Some("r1"));
    assert_eq!(
        format!("{}:{}", m.brokers[0].host, m.brokers[0].port),
        one.bootstrap()[0]
    );
    let a = KafkaClient::new(&one.bootstrap(), Duration::from_secs(10));
    let f = a.features().await.unwrap();
    assert!(
        f.reassignment_rf_guard && f.log_dir_bytes && f.fenced_brokers,
        "{f:?}"
    );
}

fn secure(ca: &[u8], mech: &str, user: &str, pass: &str) -> ConnectOptions {
    ConnectOptions {
        tls: Some(Tls::from_ca_pem(ca, None).unwrap()),
        sasl: Some(Sasl::new(mech, user, pass).unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_over_tls_with_every_mechanism() {
    let k = KafkaCluster::shared(Layout::CombinedSecure)
        .await
        .lock()
        .await;
    let addr = k.nodes[0].secure_addr.clone().unwrap();
    let ca = k.ca_pem.clone().unwrap();
    for (mech, user, pass) in SASL_USERS {
        let a = KafkaClient::with_options(
            std::slice::from_ref(&addr),
            Duration::from_secs(10),
            secure(&ca, mech, user, pass),
        );
        let c = a
            .describe_cluster()
            .await
            .unwrap_or_else(|e| panic!("{mech}: {e}"));
        assert_eq!(c.cluster_id, k.cluster_id);
        // The broker advertises the listener the client came in on.
        assert_eq!(
            format!("{}:{}", c.brokers[0].host, c.brokers[0].port),
            addr,
            "{mech}"
        );
        a.metadata().await.unwrap();
    }
    // A wrong password: refused, naming the user and mechanism, not the password.
    let a = KafkaClient::with_options(
        std::slice::from_ref(&addr),
        Duration::from_secs(10),
        secure(&ca, "SCRAM-SHA-256", "bob", "not-bobs-password"),
    );
    let e = a.describe_cluster().await.unwrap_err();
    assert_eq!(e.kafka_name(), Some("SaslAuthenticationFailed"), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("bob") && msg.contains("SCRAM-SHA-256"),
        "{msg}"
    );
    assert!(!msg.contains("not-bobs-password"), "{msg}");
    // A CA that did not sign the broker's certificate: a connect error.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let a = KafkaClient::with_options(
        std::slice::from_ref(&addr),
        Duration::from_secs(5),
        secure(
            other.cert.pem().as_bytes(),
            "PLAIN",
            "alice",
            "alice-secret",
        ),
    );
    let e = a.describe_cluster().await.unwrap_err();
    assert!(matches!(e, KafkaError::Connect { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // Plaintext to the TLS listener: an error within the deadline, no panic.
    let t = Instant::now();
    let a = KafkaClient::new(std::slice::from_ref(&addr), Duration::from_secs(3));
    assert!(a.describe_cluster().await.is_err());
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn security_config_errors_name_the_key() {
    let e = Sasl::new("GSSAPI", "u", "p").unwrap_err();
    assert!(
        matches!(
            e,
            KafkaError::Config {
                key: "sasl.mechanism",
                ..
            }
        ),
        "{e}"
    );
    let e = ConnectOptions::from_config([("security.protocol", "SASL_SSL")]).unwrap_err();
    assert!(
        matches!(
            e,
            KafkaError::Config {
                key: "ssl.ca.location",
                ..
            }
        ),
        "{e}"
    );
    let e = ConnectOptions::from_config([
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
    ])
    .unwrap_err();
    assert!(
        matches!(
            e,
            KafkaError::Config {
                key: "sasl.username",
                ..
            }
        ),
        "{e}"
    );
    let e = ConnectOptions::from_config([("security.protocol", "KERBEROS")]).unwrap_err();
    assert!(
        matches!(
            e,
            KafkaError::Config {
                key: "security.protocol",
                ..
            }
        ),
        "{e}"
    );
    let e = ConnectOptions::from_config([("sasl.jaas.config", "x")]).unwrap_err();
    assert!(e.to_string().contains("sasl.jaas.config"), "{e}");
    let o = ConnectOptions::from_config([
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "carol"),
        ("sasl.password", "carol-secret"),
    ])
    .unwrap();
    let shown = format!("{o:?}");
    assert!(
        shown.contains("carol") && !shown.contains("carol-secret"),
        "{shown}"
    );
}
