//! Integration harness: real `guardian` processes on 127.0.0.1, each with
//! its own data directory and ports reserved below the ephemeral range
//! ([`reserve_port`]); kill (SIGKILL), stop (SIGTERM) and restart (same
//! directory, same ports, retried while the port is still in use) any node;
//! wait on observable state with deadlines — never fixed sleeps.

pub mod bench;
pub mod cache;
pub mod certs;
pub mod conformance;
pub mod history;
pub mod inproc;
pub mod kafka;
pub mod python;
pub mod robustness;
pub mod workers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guardian_controller::client::AdminClient;
use guardian_proto::pb;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `guardian` binary: `$GUARDIAN_BIN`, or the one next to this test's
/// target directory (built by `cargo test --workspace`); either way, one
/// built from this tree (`check_stamp`).
pub fn guardian_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GUARDIAN_BIN") {
        let bin = PathBuf::from(p);
        check_stamp(&bin);
        return bin;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("guardian");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p guardian-cli` (or `cargo test --workspace`), or set GUARDIAN_BIN",
        bin.display()
    );
    check_stamp(&bin);
    bin
}

/// Panics unless `bin --version` carries this build's
/// [`guardian_controller::BUILD_STAMP`]: a `guardian` left in a shared
/// target dir by another tree (or not rebuilt, as after `cargo test -p
/// guardian-tests`) would test other code. Checked once per process.
fn check_stamp(bin: &Path) {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let out = Command::new(bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("running {} --version: {e}", bin.display()));
        let version = String::from_utf8_lossy(&out.stdout);
        let want = format!("(build {})", guardian_controller::BUILD_STAMP);
        assert!(
            version.contains(&want),
            "{} is not the binary of this tree: it says {:?}, this build is {want}; \
             run `cargo build -p guardian-cli` (or `cargo test --workspace`)",
            bin.display(),
            version.trim()
        );
    });
}

/// One controller node process.
pub struct TestNode {
    pub id: u64,
    pub dir: PathBuf,
    pub admin: String,
    pub raft: String,
    /// The HTTP port (`/metrics`, `/healthz`).
    pub http: String,
    child: Option<Child>,
}

impl TestNode {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id while the node runs.
    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }
}

/// Extra TOML appended to every node's config (e.g. `[raft]` tuning).
pub const DEFAULT_EXTRA: &str = "";

pub struct TestCluster {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub nodes: Vec<TestNode>,
    extra: String,
    /// Admin token used by the harness itself when auth is on.
    token: Option<String>,
    /// CA (PEM) the harness trusts when the admin ports speak TLS.
    ca: Option<Vec<u8>>,
}

fn write_config(
    node_dir: &Path,
    id: u64,
    (admin, raft, http): (&str, &str, &str),
    extra: &str,
) -> PathBuf {
    std::fs::create_dir_all(node_dir).expect("node dir");
    let cfg = format!(
        "node-id = {id}\ndata-dir = \"{}\"\nadmin-listen = \"{admin}\"\nraft-listen = \"{raft}\"\nhttp-listen = \"{http}\"\n{extra}\n",
        node_dir.join("data").display()
    );
    let p = node_dir.join("guardian.toml");
    std::fs::write(&p, cfg).expect("write config");
    p
}

/// The kernel's ephemeral port range (`ip_local_port_range`).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A free 127.0.0.1 port for a test node, from a band just below the
/// kernel's ephemeral range. Port-0 binds and outgoing connections only take
/// ephemeral ports, so no other test can grab a killed node's port before it
/// restarts; `guardian dev` uses the band above this one. Never the same
/// port twice in one test binary.
pub fn reserve_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (lo, _) = ephemeral_range();
    let top = u32::from(lo)
        .saturating_sub(HARNESS_BAND_OFFSET)
        .max(1024 + HARNESS_BAND);
    let bottom = top - HARNESS_BAND;
    let start = std::process::id() * 97;
    for _ in 0..HARNESS_BAND {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (bottom + (start + n) % HARNESS_BAND) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{bottom}..{top}");
}

/// The harness band is `[lo - 12000, lo - 6000)`; `guardian dev`'s is
/// `[lo - 6000, lo)` (`cli/dev.rs`).
const HARNESS_BAND_OFFSET: u32 = 6000;
const HARNESS_BAND: u32 = 6000;

/// Spawns `guardian server` and reads its `listening` line for the bound
/// ports. A port still (or already) in use is retried for up to 10 s —
/// the one failure a restart on the same ports can meet.
fn spawn_node(node_dir: &Path, cfg: &Path) -> (Child, String, String) {
    spawn_node_env(node_dir, cfg, &[])
}

fn spawn_node_env(node_dir: &Path, cfg: &Path, env: &[(&str, &str)]) -> (Child, String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_spawn_node(node_dir, cfg, env) {
            Ok(v) => return v,
            Err(log) if log.contains("Address already in use") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(log) => panic!("node in {} did not start; log:\n{log}", node_dir.display()),
        }
    }
}

fn try_spawn_node(
    node_dir: &Path,
    cfg: &Path,
    env: &[(&str, &str)],
) -> Result<(Child, String, String), String> {
    let log_path = node_dir.join("guardian.log");
    let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len()) as usize;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node_dir.join("guardian.log"))
        .expect("log file");
    let mut child = Command::new(guardian_bin())
        .arg("server")
        .arg("--config")
        .arg(cfg)
        .env("GUARDIAN_LOG", "info,openraft=info")
        // `/debug/failpoints` on the HTTP port (the binary `cargo test
        // --workspace` builds has the `failpoints` feature).
        .env("GUARDIAN_FAIL_CONTROL", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn guardian server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listening line");
    let v: serde_json::Value = match serde_json::from_str(line.trim()) {
        Ok(v) => v,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read(&log_path).unwrap_or_default();
            let new = String::from_utf8_lossy(log.get(log_start..).unwrap_or_default());
            return Err(format!("({e})\n{new}"));
        }
    };
    Ok((
        child,
        v["admin_addr"].as_str().expect("admin_addr").to_string(),
        v["raft_addr"].as_str().expect("raft_addr").to_string(),
    ))
}

/// `127.0.0.1:PORT` with a port from [`reserve_port`].
fn local_addr() -> String {
    format!("127.0.0.1:{}", reserve_port())
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestCluster {
    /// Starts `n` nodes and initializes them as one group.
    pub async fn start(n: u64) -> Self {
        Self::start_with(n, DEFAULT_EXTRA).await
    }

    pub async fn start_with(n: u64, extra: &str) -> Self {
        Self::start_with_auth(n, extra, None).await
    }

    /// Like [`TestCluster::start_with`]; the harness authenticates with `token`.
    pub async fn start_with_auth(n: u64, extra: &str, token: Option<&str>) -> Self {
        Self::start_full(n, extra, token, None).await
    }

    /// Admin ports speak TLS (configured in `extra`); the harness trusts `ca`.
    pub async fn start_with_tls(n: u64, extra: &str, ca: &[u8]) -> Self {
        Self::start_full(n, extra, None, Some(ca.to_vec())).await
    }

    /// TLS admin ports (configured in `extra`, trusting `ca`) with tokens;
    /// the harness authenticates with `token`.
    pub async fn start_with_tls_auth(n: u64, extra: &str, token: &str, ca: &[u8]) -> Self {
        Self::start_full(n, extra, Some(token), Some(ca.to_vec())).await
    }

    /// Starts `n` nodes that wait, uninitialized, for `raft init` (each
    /// admin port answers before this returns).
    pub async fn start_uninitialized(n: u64) -> Self {
        let c = Self::spawn_all(n, DEFAULT_EXTRA, None, None, None);
        for node in &c.nodes {
            c.wait_admin(&node.admin).await;
        }
        c
    }

    async fn wait_admin(&self, admin: &str) {
        let client = self.client();
        wait_until("admin port", Duration::from_secs(10), || async {
            client
                .stub(admin)
                .ok()?
                .get_node_status(pb::NodeStatusRequest {})
                .await
                .ok()
        })
        .await;
    }

    /// Like [`TestCluster::start_with`], with the node directories under
    /// `base` (benchmarks: a real disk, not a tmpfs `$TMPDIR`).
    pub async fn start_in(base: &Path, n: u64, extra: &str) -> Self {
        Self::init_all(Self::spawn_all(n, extra, None, None, Some(base))).await
    }

    async fn start_full(n: u64, extra: &str, token: Option<&str>, ca: Option<Vec<u8>>) -> Self {
        Self::init_all(Self::spawn_all(n, extra, token, ca, None)).await
    }

    async fn init_all(c: Self) -> Self {
        let members = c
            .nodes
            .iter()
            .map(|n| pb::NodeSpec {
                id: n.id,
                raft_addr: n.raft.clone(),
                admin_addr: n.admin.clone(),
            })
            .collect();
        c.wait_admin(&c.nodes[0].admin).await;
        c.client()
            .stub(&c.nodes[0].admin)
            .expect("stub")
            .initialize(pb::InitializeRequest { members })
            .await
            .expect("initialize");
        c.wait_leader(Duration::from_secs(10)).await;
        c
    }

    fn spawn_all(
        n: u64,
        extra: &str,
        token: Option<&str>,
        ca: Option<Vec<u8>>,
        base: Option<&Path>,
    ) -> Self {
        let tmp = match base {
            Some(b) => tempfile::tempdir_in(b),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let root = tmp.path().to_path_buf();
        if std::env::var_os("GUARDIAN_KEEP_TEST_DIRS").is_some() {
            eprintln!("keeping node directories in {}", root.display());
        }
        let mut nodes = Vec::new();
        for id in 1..=n {
            let dir = root.join(format!("node-{id}"));
            // Fixed ports outside the ephemeral range: a restart comes back
            // at the same addresses.
            let http = local_addr();
            let cfg = write_config(&dir, id, (&local_addr(), &local_addr(), &http), extra);
            let (child, admin, raft) = spawn_node(&dir, &cfg);
            nodes.push(TestNode {
                id,
                dir,
                admin,
                raft,
                http,
                child: Some(child),
            });
        }
        TestCluster {
            _tmp: tmp,
            root,
            nodes,
            extra: extra.to_string(),
            token: token.map(str::to_string),
            ca,
        }
    }

    /// Starts one more node (id = current count + 1) that is not yet a member:
    /// it waits, uninitialized, to be added as a learner.
    pub fn spawn_unjoined(&mut self) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let dir = self.root.join(format!("node-{id}"));
        let http = local_addr();
        let cfg = write_config(&dir, id, (&local_addr(), &local_addr(), &http), &self.extra);
        let (child, admin, raft) = spawn_node(&dir, &cfg);
        self.nodes.push(TestNode {
            id,
            dir,
            admin,
            raft,
            http,
            child: Some(child),
        });
        id
    }

    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.admin.clone()).collect()
    }

    /// A leader-following client over every node.
    pub fn client(&self) -> AdminClient {
        self.with_tls(AdminClient::new(&self.endpoints(), self.token.as_deref()).expect("client"))
    }

    fn with_tls(&self, c: AdminClient) -> AdminClient {
        match &self.ca {
            Some(ca) => c.with_ca(ca),
            None => c,
        }
    }

    /// One node's own status, or `None` if it does not answer.
    pub async fn node_status(&self, id: u64) -> Option<pb::NodeStatus> {
        let n = self.node(id);
        if !n.is_running() {
            return None;
        }
        let client = self.with_tls(
            AdminClient::new(std::slice::from_ref(&n.admin), self.token.as_deref()).ok()?,
        );
        let mut req = tonic::Request::new(pb::NodeStatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        client
            .stub(&n.admin)
            .ok()?
            .get_node_status(req)
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// Waits until a running node is leader and every running node agrees.
    pub async fn wait_leader(&self, timeout: Duration) -> u64 {
        wait_until("a leader all running nodes agree on", timeout, || async {
            let mut leader = None;
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                let s = self.node_status(n.id).await?;
                if s.leader_id == 0 {
                    return None;
                }
                match leader {
                    None => leader = Some(s.leader_id),
                    Some(l) if l != s.leader_id => return None,
                    _ => {}
                }
            }
            let l = leader?;
            let running = self.nodes.iter().any(|n| n.id == l && n.is_running());
            let is_leader = self
                .node_status(l)
                .await
                .map(|s| s.role == "leader")
                .unwrap_or(false);
            (running && is_leader).then_some(l)
        })
        .await
    }

    /// SIGKILL: no shutdown, no flush beyond what was already synced.
    pub fn kill(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        if let Some(pid) = n.pid() {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if let Some(mut c) = n.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the process stays, frozen (sockets open, nothing answers)
    /// until [`TestCluster::resume`].
    pub fn pause(&mut self, id: u64) {
        if let Some(pid) = self.node(id).pid() {
            let _ = kill(pid, Signal::SIGSTOP);
        }
    }

    /// SIGCONT after [`TestCluster::pause`].
    pub fn resume(&mut self, id: u64) {
        if let Some(pid) = self.node(id).pid() {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }

    /// Configures fail point `name` on node `id` (`actions` in the `fail`
    /// crate's syntax; `"off"` turns it off) through its
    /// `/debug/failpoints` route. Panics if the node refuses: a `guardian`
    /// binary built without the `failpoints` feature has no such route.
    pub fn fail_point(&self, id: u64, name: &str, actions: &str) {
        let n = self.node(id);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let path = format!("/debug/failpoints/{name}");
        let (status, _, body) = http_request(&n.http, "PUT", &path, &headers, actions);
        assert_eq!(
            status, 200,
            "node {id} refused fail point {name}={actions}: {body} (a `guardian` binary \
             without the `failpoints` feature has no /debug/failpoints: build it with \
             `cargo test --workspace --no-run`)"
        );
    }

    /// Cuts the raft link `from → to` (messages lost) or, with `None`,
    /// restores it; `Some(fault)` is a link fail point argument
    /// (`drop`, `delay=MS,jitter=MS`), optionally with a share
    /// (`"20%"` prefix) via [`TestCluster::fail_point`].
    pub fn set_link(&self, from: u64, to: u64, actions: Option<&str>) {
        let name = guardian_controller::raft::network::link_name(from, to);
        self.fail_point(from, &name, actions.unwrap_or("off"));
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        if let Some(pid) = n.pid() {
            let _ = kill(pid, Signal::SIGTERM);
        }
        if let Some(mut c) = n.child.take() {
            let st = c.wait().expect("wait");
            assert!(
                st.success(),
                "node {id} exited with {st} on SIGTERM; its log ends:\n{}",
                self.log_tail(id)
            );
        }
    }

    /// Restarts a stopped or killed node from the same directory and ports.
    pub fn restart(&mut self, id: u64) {
        self.restart_with_fail_points(id, "");
    }

    /// [`TestCluster::restart`] with fail points set before the node does
    /// anything (`name=actions;name=actions`, `GUARDIAN_FAILPOINTS`).
    pub fn restart_with_fail_points(&mut self, id: u64, fail_points: &str) {
        let extra = self.extra.clone();
        let n = &mut self.nodes[(id - 1) as usize];
        assert!(n.child.is_none(), "node {id} is still running");
        let cfg = write_config(&n.dir, id, (&n.admin, &n.raft, &n.http), &extra);
        let (child, admin, raft) =
            spawn_node_env(&n.dir, &cfg, &[("GUARDIAN_FAILPOINTS", fail_points)]);
        assert_eq!(
            (admin.as_str(), raft.as_str()),
            (n.admin.as_str(), n.raft.as_str())
        );
        n.child = Some(child);
    }

    /// The last lines of a node's log, for assertion messages.
    pub fn log_tail(&self, id: u64) -> String {
        let text =
            std::fs::read_to_string(self.node(id).dir.join("guardian.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::env::var_os("GUARDIAN_KEEP_TEST_DIRS").is_some() {
            let tmp = std::mem::replace(&mut self._tmp, tempfile::tempdir().expect("tempdir"));
            let _ = tmp.keep();
        }
        for n in &mut self.nodes {
            if let Some(pid) = n.pid() {
                let _ = kill(pid, Signal::SIGKILL);
            }
            if let Some(mut c) = n.child.take() {
                let _ = c.wait();
            }
        }
    }
}

/// A minimal valid cluster registration.
pub fn cluster(name: &str) -> pb::Cluster {
    pb::Cluster {
        name: name.into(),
        bootstrap_servers: vec!["k1:9092".into()],
        idc: "east".into(),
        ..Default::default()
    }
}

/// A minimal valid broker registration.
pub fn broker(cluster: &str, id: i32) -> pb::Broker {
    pb::Broker {
        cluster: cluster.into(),
        broker_id: id,
        host: format!("broker-{id}"),
        rack: "r1".into(),
        reporter_endpoint: format!("broker-{id}:9300"),
        log_dirs: vec![pb::LogDir {
            path: "/data/1".into(),
            capacity_bytes: 1 << 40,
        }],
        ..Default::default()
    }
}

/// Runs the `guardian` CLI; returns (exit code, stdout, stderr).
/// Runs in a scratch dir, so files the CLI writes by default (rollback
/// files of `rebalance approve`) never land in the source tree.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let scratch = std::env::temp_dir().join("guardian-test-cli");
    std::fs::create_dir_all(&scratch).expect("a scratch dir");
    let out = Command::new(guardian_bin())
        .args(args)
        .current_dir(&scratch)
        .env_remove("GUARDIAN_ENDPOINTS")
        .output()
        .expect("run guardian");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GET http://addr/path` over HTTP/1.1: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(addr, "GET", path, &[], "");
    (status, body)
}

/// One HTTP/1.1 request (`Connection: close`): (status, response headers
/// lowercased as `name: value` lines, body — de-chunked).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let head = head.to_ascii_lowercase();
    // A chunked body: the chunks' data, joined.
    let body = if head.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((len, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    (status, head, body)
}

/// The value of one sample (`name{labels}` exactly as exposed) in a
/// Prometheus text exposition.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == sample).then(|| v.parse().ok()).flatten()
    })
}
