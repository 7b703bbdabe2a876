//! The web dashboard.
//!
//! - In headless Chromium (Debian's `chromium`, driven by `playwright-core`
//!   from `tests/browser`), against `guardian dev` with a small simulated
//!   federation: the pages load without console errors, show the
//!   simulated cluster, the waiting proposal is approved from the page, its
//!   progress advances without a reload, and the approval event names the
//!   dashboard principal. Screenshots: `$CARGO_TARGET_DIR/dashboard/`.
//! - Sessions over plain HTTP on a controller with tokens: no session → the
//!   login page; an unknown token refused; the cookie is HttpOnly and
//!   SameSite=Strict; a state change without the CSRF token refused; a
//!   viewer may read but not approve; the token never appears in a page.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use guardian_tests::{guardian_bin, http_request, TestCluster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `playwright-core` in `tests/browser/node_modules` (`npm ci` the first
/// time, from the lock file).
fn playwright() {
    let dir = browser_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .expect("npm runs (Node.js 20 and npm are needed for the browser test)");
    assert!(
        out.status.success(),
        "npm ci in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_approves_and_follows_an_execution_in_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    );
    playwright();
    let tmp = tempfile::tempdir().unwrap();
    let mut dev = Command::new(guardian_bin())
        .args(["dev", "--data-dir"])
        .arg(tmp.path())
        .args([
            "--sim-clusters",
            "1",
            "--sim-brokers",
            "4",
            "--sim-disks",
            "2",
            "--sim-partitions",
            "24",
            "--sim-disk-gib",
            "64",
            "--sim-speed",
            "20",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn guardian dev");
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    // Every node's metrics address, the leader, then the proposal line.
    let mut http = std::collections::BTreeMap::new();
    let mut leader = 0u64;
    loop {
        let line = lines.next().expect("dev prints its proposal").unwrap();
        if let Some(rest) = line.strip_prefix("node ") {
            let id: u64 = rest.split(':').next().unwrap().parse().unwrap();
            if let Some(m) = rest.split("metrics http://").nth(1) {
                http.insert(id, m.split('/').next().unwrap().to_string());
            }
        }
        if let Some(l) = line.strip_prefix("leader: node ") {
            leader = l.trim().parse().unwrap();
        }
        if line.starts_with("sim-0: proposal ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{}", http[&leader]);
    let shots = PathBuf::from(
        std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR"))),
    )
    .join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(200),
        tokio::process::Command::new("node")
            .arg(browser_dir().join("dashboard.mjs"))
            .arg(&base)
            .arg(&shots)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run ends within 200 s")
    .expect("node runs");
    kill(Pid::from_raw(dev.id() as i32), Signal::SIGTERM).unwrap();
    let _ = dev.wait();
    assert!(
        out.status.success(),
        "the browser run failed (screenshots in {}):\n{}{}",
        shots.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shots.join("execution-done.png").exists());
}

const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-012345678";
const ADMIN: &str = "admin-token-0123456789ab";

/// Logs in with `token`: the session cookie and the page's CSRF token.
fn login(addr: &str, token: &str) -> (String, String) {
    let (status, head, _) = http_request(addr, "POST", "/ui/login", &[], &format!("token={token}"));
    assert_eq!(status, 303, "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.starts_with("set-cookie: guardian_session="))
        .unwrap_or_else(|| panic!("no session cookie: {head}"))
        .to_string();
    assert!(
        cookie_line.contains("httponly") && cookie_line.contains("samesite=strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line["set-cookie: ".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _, page) = http_request(addr, "GET", "/ui/executions", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains(token), "the token is never in a page");
    let csrf = page
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token in the page")
        .to_string();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_sessions_need_a_token_csrf_and_the_operator_role() {
    let extra = format!(
        "[auth]\ntokens = [\n  {{ token = \"{VIEWER}\", role = \"viewer\" }},\n  {{ token = \"{OPERATOR}\", role = \"operator\" }},\n  {{ token = \"{ADMIN}\", role = \"admin\" }},\n]\n"
    );
    let c = TestCluster::start_with_auth(1, &extra, Some(ADMIN)).await;
    let addr = c.nodes[0].http.clone();

    // No session: every page sends the browser to the login page.
    let (status, head, _) = http_request(&addr, "GET", "/ui/", &[], "");
    assert_eq!(status, 303);
    assert!(head.contains("location: /ui/login"), "{head}");
    let (status, _, _) = http_request(&addr, "POST", "/ui/login", &[], "token=wrong");
    assert_eq!(status, 401);

    // A viewer reads, but may not approve.
    let (cookie, csrf) = login(&addr, VIEWER);
    let (status, _, page) = http_request(&addr, "GET", "/ui/", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200);
    assert!(page.contains("Federation"), "{page}");
    let (status, _, page) = http_request(
        &addr,
        "POST",
        "/ui/executions/1/approve",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("role viewer"), "{page}");

    // An operator without the CSRF token: refused; with it, the request
    // reaches the state machine (no execution 7 here: NOT_FOUND, named).
    let (cookie, csrf) = login(&addr, OPERATOR);
    let (status, _, page) = http_request(
        &addr,
        "POST",
        "/ui/executions/7/approve",
        &[("Cookie", &cookie)],
        "csrf=forged",
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("CSRF"), "{page}");
    let (status, _, page) = http_request(
        &addr,
        "POST",
        "/ui/executions/7/approve",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("execution 7"), "{page}");
}
