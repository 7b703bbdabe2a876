//! CLI usage errors: clear messages and exit code 2, before any network I/O
//! or any write to disk. Each run is bounded: a command that was wrongly
//! accepted (a server that starts) is killed and fails the test instead of
//! hanging it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn guardian(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardian"))
        .args(args)
        .env_remove("GUARDIAN_ENDPOINTS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run guardian");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("guardian {args:?} still running after 20 s: the bad input was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_endpoints_is_a_usage_error() {
    let (code, err) = guardian(&["cluster", "list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GUARDIAN_ENDPOINTS"), "{err}");
}

#[test]
fn bad_endpoint_is_named() {
    let (code, err) = guardian(&["--endpoints", "localhost", "cluster", "list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"localhost\""), "{err}");
}

#[test]
fn invalid_server_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("g.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &cfg,
        format!(
            "node-id = 1\ndata-dir = \"{}\"\nadmin-listen = \"127.0.0.1:0\"\nraft-listen = \"127.0.0.1:0\"\n[raft]\nelection-timeout-min-ms = 10\n",
            data.display()
        ),
    )
    .unwrap();
    let (code, err) = guardian(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("raft.election-timeout-min-ms"), "{err}");
    assert!(!data.exists(), "a refused config created its data dir");
}

#[test]
fn node_id_zero_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never");
    let (code, err) = guardian(&[
        "server",
        "--node-id",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("node-id"), "{err}");
    assert!(!data.exists(), "a refused node id created its data dir");
}
