//! guardian-worker usage errors: exit code 2 and a message naming the flag,
//! before any connection is attempted (the endpoint given is one nobody
//! listens on, so a run that got past validation would hang, and is killed
//! and failed instead).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn worker(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardian-worker"))
        .args(args)
        .env_remove("GUARDIAN_ENDPOINTS")
        .env_remove("GUARDIAN_TOKEN")
        .env_remove("GUARDIAN_CA_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run guardian-worker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("guardian-worker {args:?} still running after 20 s: the bad input was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OK: [&str; 6] = ["--endpoints", "127.0.0.1:1", "--id", "w1", "--pool", "p"];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    OK.iter().copied().chain(extra.iter().copied()).collect()
}

#[test]
fn missing_required_flags_are_named() {
    let (code, err) = worker(&["--id", "w1", "--pool", "p"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--endpoints"), "{err}");
    let (code, err) = worker(&["--endpoints", "127.0.0.1:1", "--pool", "p"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--id"), "{err}");
}

#[test]
fn bad_values_are_named() {
    for (extra, flag) in [
        (&["--capacity", "0"][..], "--capacity"),
        (&["--capacity", "NaN"][..], "--capacity"),
        (&["--fixed-cpu=-1"][..], "--fixed-cpu"),
        (&["--commit-interval-ms", "0"][..], "--commit-interval-ms"),
        (&["--kafka", "group.id"][..], "--kafka group.id"),
        (&["--kafka", "=x"][..], "--kafka =x"),
        (&["--output-topic", "out"][..], "--transactional-id-prefix"),
        (&["--output-topic", ""][..], "--output-topic"),
        (
            &["--transactional-id-prefix", " ", "--output-topic", "o"][..],
            "--transactional-id-prefix",
        ),
        (&["--ca-file", "/nonexistent/ca.pem"][..], "--ca-file"),
    ] {
        let (code, err) = worker(&with(extra));
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(flag), "{extra:?} should name {flag}: {err}");
    }
    let (code, err) = worker(&["--endpoints", "127.0.0.1:1", "--id", " ", "--pool", "p"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--id"), "{err}");
}
