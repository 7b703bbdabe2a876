//! CLI usage errors: clear messages and exit code 2, before any network I/O.

use std::process::Command;

fn guardian(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guardian"))
        .args(args)
        .env_remove("GUARDIAN_ENDPOINTS")
        .output()
        .expect("run guardian");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_endpoints_is_a_usage_error() {
    let (code, err) = guardian(&["cluster", "list"]);
    assert_eq!(code, 2);
    assert!(err.contains("GUARDIAN_ENDPOINTS"), "{err}");
}

#[test]
fn bad_endpoint_is_named() {
    let (code, err) = guardian(&["--endpoints", "localhost", "cluster", "list"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"localhost\""), "{err}");
}

#[test]
fn invalid_server_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("g.toml");
    std::fs::write(
        &cfg,
        "node-id = 1\ndata-dir = \"/tmp/x\"\nadmin-listen = \"127.0.0.1:0\"\nraft-listen = \"127.0.0.1:0\"\n[raft]\nelection-timeout-min-ms = 10\n",
    )
    .unwrap();
    let (code, err) = guardian(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("raft.election-timeout-min-ms"), "{err}");
}

#[test]
fn node_id_zero_is_rejected() {
    let (code, err) = guardian(&["server", "--node-id", "0", "--data-dir", "/tmp/never"]);
    assert_eq!(code, 2);
    assert!(err.contains("node-id"), "{err}");
}
