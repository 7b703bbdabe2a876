//! The deployment files, checked offline: every Kubernetes object in
//! `deploy/k8s/` parses as its API type (`k8s-openapi`, Kubernetes 1.33)
//! and serializes back to exactly what the file says (a misspelled or
//! unknown field would be dropped, and differ); the controller's shape
//! holds (3 replicas, `Parallel` pod management, a headless service that
//! publishes not-ready addresses, probes that need no quorum on a port the
//! container declares, one voter at a time in the disruption budget); the
//! config template is a valid `guardian server` config for every ordinal;
//! the init Job names every voter; `deploy/docker-compose.yml` is YAML with
//! Kafka and three Guardian nodes.

use std::path::{Path, PathBuf};

use guardian_controller::config::NodeConfig;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every document of a YAML file, as JSON.
fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::to_value(v).unwrap()
        })
        .collect()
}

/// `v` as `T`, and `T` back to exactly `v`.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value, what: &str) -> T {
    let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        &back, v,
        "{what}: a field the Kubernetes API does not have (or of the wrong type) was dropped"
    );
    t
}

#[test]
fn kubernetes_manifests_are_valid_api_objects_with_a_quorum_safe_shape() {
    let mut sts = None;
    let mut headless = None;
    let mut pdb = None;
    let mut config = None;
    let mut job = None;
    for file in ["k8s/guardian.yaml", "k8s/guardian-init.yaml"] {
        for d in docs(&deploy().join(file)) {
            let what = format!("{file}: {} {}", d["kind"], d["metadata"]["name"]);
            match d["kind"].as_str().unwrap() {
                "StatefulSet" => sts = Some(typed::<StatefulSet>(&d, &what)),
                "Service" => {
                    let s: Service = typed(&d, &what);
                    if s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
                        headless = Some(s);
                    }
                }
                "PodDisruptionBudget" => pdb = Some(typed::<PodDisruptionBudget>(&d, &what)),
                "ConfigMap" => config = Some(typed::<ConfigMap>(&d, &what)),
                "Job" => job = Some(typed::<Job>(&d, &what)),
                k => panic!("{what}: unexpected kind {k}"),
            }
        }
    }
    let sts = sts.expect("a StatefulSet");
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    let headless = headless.expect("a headless service");
    assert_eq!(
        spec.service_name.as_deref(),
        headless.metadata.name.as_deref()
    );
    assert_eq!(
        headless.spec.as_ref().unwrap().publish_not_ready_addresses,
        Some(true)
    );
    let c = &spec.template.spec.as_ref().unwrap().containers[0];
    let ports: Vec<String> = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    for probe in [&c.readiness_probe, &c.liveness_probe] {
        let h = probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .expect("an HTTP probe");
        assert_eq!(
            h.path.as_deref(),
            Some("/healthz"),
            "a probe that needs no quorum"
        );
        let port = match &h.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
            other => panic!("probe port by name, not {other:?}"),
        };
        assert!(ports.contains(&port), "{port} not in {ports:?}");
    }
    let pdb = pdb.expect("a PodDisruptionBudget");
    let ps = pdb.spec.unwrap();
    assert_eq!(
        ps.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(ps.selector, Some(spec.selector.clone()));

    // The config template, as each pod writes it, is a valid config.
    let tmpl = config.expect("a ConfigMap").data.unwrap()["guardian.toml.tmpl"].clone();
    for ord in 0..3 {
        let text = tmpl
            .replace("@ID@", &(ord + 1).to_string())
            .replace("@HOST@", &format!("guardian-{ord}"))
            .replace("@NS@", "default");
        let cfg: NodeConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        cfg.validate().unwrap();
        assert_eq!(cfg.node_id, ord + 1);
        assert!(cfg.http_listen.is_some(), "the probes' port is served");
    }
    // The init Job names all three voters.
    let job = job.expect("the init Job");
    let script = job.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap()
        .join("\n");
    assert!(script.contains("raft init"), "{script}");
    assert_eq!(script.matches("--member \"$(m ").count(), 3, "{script}");
    assert!(
        script.contains("already initialized"),
        "re-runs are safe: {script}"
    );
}

#[test]
fn docker_compose_has_kafka_and_three_guardian_nodes() {
    let d = docs(&deploy().join("docker-compose.yml"));
    let services = d[0]["services"].as_object().expect("services");
    assert!(services.contains_key("kafka"));
    for n in 1..=3 {
        let s = &services[&format!("guardian-{n}")];
        let cmd = s["command"].as_str().unwrap();
        assert!(cmd.contains(&format!("node-id = {n}")), "{cmd}");
        assert!(cmd.contains("guardian server"), "{cmd}");
    }
}
