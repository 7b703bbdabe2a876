//! The web dashboard, on the node's HTTP port under `/ui/`: server-rendered
//! pages (no build step, no assets outside the binary) over the same
//! handlers the gRPC API uses, through the controller handle.
//!
//! Pages: the federation (clusters; brokers × disks heat maps of fullness
//! and write rate; stale reporters), a cluster (brokers, disks, hottest
//! partitions, the abnormal queue, active throttles), executions (list,
//! approve / cancel) and one execution (per-task progress, bytes, ETA),
//! events (filterable by cluster and kind). Every page refreshes its main
//! section when the replicated state changes (`/ui/sse`, server-sent
//! events of the applied index).
//!
//! Sessions: `POST /ui/login` with a token (any, when no token is
//! configured) sets an `HttpOnly; SameSite=Strict` cookie naming a random
//! session kept in this node's memory (12 h); every state-changing request
//! carries the session's CSRF token and needs the operator role; the acting
//! principal (`dashboard <role>#<token hash>`, never the token) is recorded
//! in the approval or cancel event.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use guardian_proto::domain::Command;
use guardian_proto::execution::{Control, ExecutionCmd};
use guardian_proto::pb;
use serde_json::Value;

use super::{Api, Call};
use crate::config::{AuthConfig, Role};
use crate::error::ApiError;

const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const COOKIE: &str = "guardian_session";

struct Session {
    role: Role,
    principal: String,
    csrf: String,
    until: Instant,
}

/// The dashboard's state: the API, the configured tokens, the sessions.
pub struct Dashboard {
    api: Arc<Api>,
    tokens: HashMap<String, Role>,
    sessions: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// A short, stable tag for a token (never the token).
fn token_tag(t: &str) -> String {
    let h = t.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:04x}", h >> 48)
}

/// `s` with HTML's special characters escaped.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut i = 0;
    while v.abs() >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `application/x-www-form-urlencoded` into pairs.
fn form(body: &str) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let b = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(&b[i + 1..i + 3]), 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
nav{background:#1f2937;padding:.6em 1em}nav a{color:#e5e7eb;margin-right:1.2em;text-decoration:none}\
nav form{display:inline;float:right}main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;font-size:.9em}th{background:#f3f4f6}\
.heat{display:inline-grid;gap:2px;margin:.3em 1em 1em 0}.heat div{width:14px;height:14px;border-radius:2px}\
.err{color:#b91c1c}.muted{color:#6b7280}progress{width:12em}button{cursor:pointer}";

/// Refreshes `#main` from `?fragment=1` of the same page whenever the
/// replicated state changes (at most once a second).
const SCRIPT: &str = "(()=>{let busy=false,again=false;async function refresh(){if(busy){again=true;return}busy=true;\
try{const u=new URL(location.href);u.searchParams.set('fragment','1');const r=await fetch(u,{credentials:'same-origin'});\
if(r.ok){document.getElementById('main').innerHTML=await r.text()}}catch(e){}\
setTimeout(()=>{busy=false;if(again){again=false;refresh()}},1000)}\
const es=new EventSource('/ui/sse');es.onmessage=()=>refresh();})();";

impl Dashboard {
    pub fn new(api: Arc<Api>, auth: &AuthConfig) -> Arc<Self> {
        Arc::new(Dashboard {
            api,
            tokens: auth
                .tokens
                .iter()
                .map(|t| (t.token.expose().to_string(), t.role))
                .collect(),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// `/ui/…` and `/` (a redirect to it).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(|| async { redirect("/ui/") }))
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .route("/ui/login", get(login_page).post(login))
            .route("/ui/logout", post(logout))
            .route("/ui/", get(overview))
            .route("/ui/cluster/{name}", get(cluster_page))
            .route("/ui/executions", get(executions_page))
            .route("/ui/executions/{id}", get(execution_page))
            .route("/ui/executions/{id}/{action}", post(control))
            .route("/ui/events", get(events_page))
            .route("/ui/sse", get(sse))
            .with_state(self)
    }

    fn call(&self) -> Call<'_> {
        Call {
            api: &self.api,
            id: None,
        }
    }

    /// The session of a request, if any and unexpired.
    fn session(&self, headers: &HeaderMap) -> Option<(String, Role, String, String)> {
        let id = cookie(headers)?;
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        s.retain(|_, v| v.until > now);
        let v = s.get(&id)?;
        Some((id, v.role, v.principal.clone(), v.csrf.clone()))
    }

    fn page(&self, title: &str, csrf: &str, principal: &str, main: &str) -> String {
        format!(
            "<!doctype html><html><head><meta charset=utf-8><link rel=icon href=\"data:,\"><title>{t} · Guardian</title>\
             <style>{STYLE}</style></head><body><nav><a href=/ui/>Federation</a>\
             <a href=/ui/executions>Executions</a><a href=/ui/events>Events</a>\
             <form method=post action=/ui/logout><input type=hidden name=csrf value=\"{c}\">\
             <span class=muted>{p}</span> <button>Log out</button></form></nav>\
             <main id=main>{main}</main><script>{SCRIPT}</script></body></html>",
            t = esc(title),
            c = esc(csrf),
            p = esc(principal),
        )
    }

    /// A page, or its main section alone (`?fragment=1`); the login page
    /// without a session.
    fn respond(
        &self,
        headers: &HeaderMap,
        q: &HashMap<String, String>,
        title: &str,
        main: String,
    ) -> Response {
        let Some((_, _, principal, csrf)) = self.session(headers) else {
            return redirect("/ui/login");
        };
        if q.contains_key("fragment") {
            return html(StatusCode::OK, main);
        }
        html(StatusCode::OK, self.page(title, &csrf, &principal, &main))
    }
}

fn error_html(e: &ApiError) -> String {
    format!("<p class=err>{}</p>", esc(&e.to_string()))
}

async fn login_page(State(d): State<Arc<Dashboard>>) -> Response {
    let hint = if d.tokens.is_empty() {
        "No tokens are configured on this controller: any token (or none) logs in."
    } else {
        "Log in with a viewer, operator or admin token of this controller."
    };
    html(
        StatusCode::OK,
        format!(
            "<!doctype html><html><head><meta charset=utf-8><link rel=icon href=\"data:,\"><title>Log in · Guardian</title>\
             <style>{STYLE}</style></head><body><main><h1>Guardian</h1><p class=muted>{hint}</p>\
             <form method=post action=/ui/login><input type=password name=token autocomplete=off>\
             <button type=submit>Log in</button></form></main></body></html>"
        ),
    )
}

async fn login(State(d): State<Arc<Dashboard>>, body: String) -> Response {
    let f = form(&body);
    let token = f.get("token").cloned().unwrap_or_default();
    let role = if d.tokens.is_empty() {
        Role::Admin
    } else {
        match d.tokens.get(&token) {
            Some(r) => *r,
            None => {
                return html(
                    StatusCode::UNAUTHORIZED,
                    "<p class=err>Unknown token.</p><a href=/ui/login>Try again</a>".into(),
                )
            }
        }
    };
    let principal = if d.tokens.is_empty() {
        "dashboard (open)".to_string()
    } else {
        format!(
            "dashboard {}#{}",
            format!("{role:?}").to_lowercase(),
            token_tag(&token)
        )
    };
    let id = random_hex();
    d.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(
        id.clone(),
        Session {
            role,
            principal,
            csrf: random_hex(),
            until: Instant::now() + SESSION_TTL,
        },
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/ui/".to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={}",
                    SESSION_TTL.as_secs()
                ),
            ),
        ],
    )
        .into_response()
}

async fn logout(State(d): State<Arc<Dashboard>>, headers: HeaderMap, body: String) -> Response {
    if let Some((id, _, _, csrf)) = d.session(&headers) {
        if form(&body).get("csrf") == Some(&csrf) {
            d.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }
    redirect("/ui/login")
}

async fn overview(State(d): State<Arc<Dashboard>>, headers: HeaderMap, uri: Uri) -> Response {
    let q = form(uri.query().unwrap_or(""));
    let call = d.call();
    let clusters =
        match super::registry::list_clusters(&call, pb::ListClustersRequest { stale: false }).await
        {
            Ok(c) => c.clusters,
            Err(e) => return d.respond(&headers, &q, "Federation", error_html(&e)),
        };
    let mut m = String::from("<h1>Federation</h1><table><tr><th>cluster</th><th>bootstrap</th><th>brokers</th><th>stale</th><th>bytes in/s</th><th>used</th><th>capacity</th></tr>");
    let mut heat = String::new();
    for c in &clusters {
        let load = super::load::load_cluster(
            &call,
            pb::LoadClusterRequest {
                cluster: c.name.clone(),
            },
        )
        .await;
        match &load {
            Ok(l) => {
                let _ = write!(
                    m,
                    "<tr><td><a href=\"/ui/cluster/{n}\">{n}</a></td><td>{b}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    l.brokers,
                    if l.stale_brokers > 0 { " class=err" } else { "" },
                    l.stale_brokers,
                    bytes(l.bytes_in_per_sec),
                    bytes(l.used_bytes as f64),
                    bytes(l.capacity_bytes as f64),
                    n = esc(&c.name),
                    b = esc(&c.bootstrap_servers.join(",")),
                );
            }
            Err(e) => {
                let _ = write!(
                    m,
                    "<tr><td><a href=\"/ui/cluster/{n}\">{n}</a></td><td colspan=6 class=err>{}</td></tr>",
                    esc(&e.to_string()),
                    n = esc(&c.name)
                );
            }
        }
        heat.push_str(&heat_maps(&d, &c.name));
    }
    m.push_str("</table>");
    if clusters.is_empty() {
        m.push_str("<p class=muted>No cluster registered yet (guardian cluster add).</p>");
    }
    m.push_str(&heat);
    d.respond(&headers, &q, "Federation", m)
}

/// Per cluster, brokers × disks: fullness and write rate (darker = more).
fn heat_maps(d: &Dashboard, cluster: &str) -> String {
    let load = d
        .api
        .collector
        .state
        .read()
        .unwrap_or_else(|p| p.into_inner());
    let brokers: Vec<(&i32, &crate::load::BrokerLoad)> = load
        .brokers
        .iter()
        .filter(|((c, _), _)| c == cluster)
        .map(|((_, id), b)| (id, b))
        .collect();
    if brokers.is_empty() {
        return String::new();
    }
    let disks = brokers
        .iter()
        .map(|b| b.1.disks.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let max_write = brokers
        .iter()
        .flat_map(|b| b.1.disks.iter().map(|d| d.write.pct(0.5)))
        .fold(1.0f64, f64::max);
    let mut out = format!("<h2>{}</h2>", esc(cluster));
    for (title, is_fill) in [("fullness", true), ("write rate", false)] {
        let _ = write!(
            out,
            "<div class=heat title=\"{title}\" style=\"grid-template-columns:repeat({},14px)\">",
            brokers.len()
        );
        for di in 0..disks {
            for (id, b) in &brokers {
                let (v, label) = match b.disks.get(di) {
                    Some(dk) if is_fill && dk.capacity_bytes > 0 => {
                        let f = 1.0 - dk.free_bytes as f64 / dk.capacity_bytes as f64;
                        (
                            f,
                            format!("broker {id} {}: {:.0} % full", dk.path, f * 100.0),
                        )
                    }
                    Some(dk) if !is_fill => {
                        let w = dk.write.pct(0.5);
                        (
                            w / max_write,
                            format!("broker {id} {}: {}/s written", dk.path, bytes(w)),
                        )
                    }
                    _ => (0.0, format!("broker {id}: no disk {di}")),
                };
                let stale = b.error.is_some();
                let color = if stale {
                    "#9ca3af".to_string()
                } else {
                    let l = 92.0 - 55.0 * v.clamp(0.0, 1.0);
                    format!("hsl({},70%,{l:.0}%)", if is_fill { 0 } else { 220 })
                };
                let _ = write!(
                    out,
                    "<div style=\"background:{color}\" title=\"{}{}\"></div>",
                    esc(&label),
                    if stale { " (stale reporter)" } else { "" }
                );
            }
        }
        let _ = write!(out, "</div><span class=muted>{title}</span> ");
    }
    out
}

async fn cluster_page(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    uri: Uri,
) -> Response {
    let q = form(uri.query().unwrap_or(""));
    let call = d.call();
    let title = format!("Cluster {name}");
    let mut m = format!("<h1>Cluster {}</h1>", esc(&name));
    match super::load::load_cluster(
        &call,
        pb::LoadClusterRequest {
            cluster: name.clone(),
        },
    )
    .await
    {
        Err(e) => {
            m.push_str(&error_html(&e));
            return d.respond(&headers, &q, &title, m);
        }
        Ok(l) => {
            m.push_str("<h2>Brokers</h2><table><tr><th>broker</th><th>reporter</th><th>state</th><th>partitions</th><th>bytes in/s</th><th>used</th><th>capacity</th></tr>");
            for b in &l.broker_loads {
                let _ = write!(
                    m,
                    "<tr><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    b.broker_id,
                    esc(&b.reporter_endpoint),
                    if b.stale { " class=err" } else { "" },
                    if b.stale { esc(&format!("stale: {}", b.stale_reason)) } else { "fresh".into() },
                    b.partitions,
                    bytes(b.bytes_in_per_sec),
                    bytes(b.used_bytes as f64),
                    bytes(b.capacity_bytes as f64),
                );
            }
            m.push_str("</table>");
        }
    }
    if let Ok(disks) = super::load::load_disks(
        &call,
        pb::LoadTopRequest {
            cluster: name.clone(),
            top: 10,
        },
    )
    .await
    {
        m.push_str("<h2>Busiest disks</h2><table><tr><th>broker</th><th>dir</th><th>full</th><th>write/s</th><th>read/s</th><th>util</th></tr>");
        for dk in &disks.disks {
            let full = if dk.capacity_bytes > 0 {
                100.0 * (1.0 - dk.free_bytes as f64 / dk.capacity_bytes as f64)
            } else {
                0.0
            };
            let _ = write!(
                m,
                "<tr><td>{}</td><td>{}</td><td>{full:.0} %</td><td>{}</td><td>{}</td><td>{:.0} %</td></tr>",
                dk.broker_id,
                esc(&dk.path),
                bytes(dk.write_bytes_per_sec),
                bytes(dk.read_bytes_per_sec),
                dk.utilization * 100.0
            );
        }
        m.push_str("</table>");
    }
    if let Ok(parts) = super::load::load_partitions(
        &call,
        pb::LoadTopRequest {
            cluster: name.clone(),
            top: 10,
        },
    )
    .await
    {
        m.push_str("<h2>Hottest partitions</h2><table><tr><th>partition</th><th>broker</th><th>dir</th><th>size</th><th>bytes in/s (p95)</th></tr>");
        for p in &parts.partitions {
            let _ = write!(
                m,
                "<tr><td>{}-{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.topic),
                p.partition,
                p.broker_id,
                esc(&p.log_dir),
                bytes(p.size_bytes as f64),
                bytes(p.bytes_in_p95)
            );
        }
        m.push_str("</table>");
    }
    m.push_str("<h2>Abnormal disk I/O</h2>");
    match super::governance::get_abnormal(
        &call,
        pb::AbnormalRequest {
            cluster: name.clone(),
        },
    )
    .await
    {
        Err(e) => m.push_str(&error_html(&e)),
        Ok(a) => {
            let v: Value = serde_json::from_str(&a.json).unwrap_or_default();
            let disks = v["plan"]["disks"].as_array().cloned().unwrap_or_default();
            if disks.is_empty() {
                let _ = write!(
                    m,
                    "<p class=muted>Nothing abnormal (mode {}).</p>",
                    esc(v["mode"].as_str().unwrap_or(""))
                );
            } else {
                m.push_str("<table><tr><th>broker</th><th>dir</th><th>behaviour</th><th>partition</th><th>bytes/s</th><th>cause</th></tr>");
                for dk in &disks {
                    for ab in dk["abnormal"].as_array().into_iter().flatten() {
                        let _ = write!(
                            m,
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            dk["broker"],
                            esc(dk["dir"].as_str().unwrap_or("")),
                            esc(ab["behaviour"].as_str().unwrap_or("")),
                            esc(ab["partition"].as_str().unwrap_or("")),
                            bytes(ab["bytes_per_sec"].as_f64().unwrap_or(0.0)),
                            esc(ab["cause"].as_str().unwrap_or(""))
                        );
                    }
                }
                m.push_str("</table>");
            }
        }
    }
    m.push_str("<h2>Active throttles</h2>");
    match super::governance::list_throttles(
        &call,
        pb::ListThrottlesRequest {
            cluster: name.clone(),
            stale: false,
        },
    )
    .await
    {
        Err(e) => m.push_str(&error_html(&e)),
        Ok(t) => {
            let v: Vec<Value> = serde_json::from_str(&t.json).unwrap_or_default();
            if v.is_empty() {
                m.push_str("<p class=muted>None.</p>");
            } else {
                m.push_str("<table><tr><th>id</th><th>target</th><th>value</th><th>state</th><th>reason</th></tr>");
                for c in &v {
                    let _ = write!(
                        m,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        c["id"],
                        esc(&c["target"].to_string()),
                        esc(c["value"].as_str().unwrap_or("")),
                        esc(&c["state"].to_string()),
                        esc(c["reason"].as_str().unwrap_or(""))
                    );
                }
                m.push_str("</table>");
            }
        }
    }
    d.respond(&headers, &q, &title, m)
}

fn control_buttons(id: u64, state: &str, csrf: &str) -> String {
    let mut out = String::new();
    let button = |action: &str, label: &str| {
        format!(
            "<form method=post action=\"/ui/executions/{id}/{action}\" style=display:inline>\
             <input type=hidden name=csrf value=\"{}\"><button name=action value={action}>{label}</button></form> ",
            esc(csrf)
        )
    };
    if state == "proposed" {
        out.push_str(&button("approve", "Approve"));
    }
    if [
        "proposed",
        "approved",
        "preflight",
        "executing",
        "verifying",
    ]
    .contains(&state)
    {
        out.push_str(&button("cancel", "Cancel"));
    }
    out
}

async fn executions_page(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let q = form(uri.query().unwrap_or(""));
    let csrf = d.session(&headers).map(|s| s.3).unwrap_or_default();
    let call = d.call();
    let mut m = String::from("<h1>Executions</h1>");
    match super::executions::list_executions(
        &call,
        pb::ListExecutionsRequest {
            cluster: String::new(),
            stale: false,
        },
    )
    .await
    {
        Err(e) => m.push_str(&error_html(&e)),
        Ok(l) => {
            m.push_str("<table><tr><th>id</th><th>cluster</th><th>kind</th><th>state</th><th>tasks</th><th>bytes</th><th></th></tr>");
            for e in l.executions.iter().rev() {
                let _ = write!(
                    m,
                    "<tr><td><a href=\"/ui/executions/{id}\">{id}</a></td><td>{}</td><td>{}</td><td class=state>{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&e.cluster),
                    esc(&e.kind),
                    esc(&e.state),
                    e.tasks_finished,
                    e.tasks,
                    bytes(e.bytes_to_move as f64),
                    control_buttons(e.id, &e.state, &csrf),
                    id = e.id,
                );
            }
            m.push_str("</table>");
        }
    }
    d.respond(&headers, &q, "Executions", m)
}

async fn execution_page(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    uri: Uri,
) -> Response {
    let q = form(uri.query().unwrap_or(""));
    let csrf = d.session(&headers).map(|s| s.3).unwrap_or_default();
    let call = d.call();
    let title = format!("Execution {id}");
    let mut m = format!("<h1>Execution {id}</h1>");
    match super::executions::get_execution(&call, pb::GetExecutionRequest { id, stale: false })
        .await
    {
        Err(e) => m.push_str(&error_html(&e)),
        Ok(j) => {
            let v: Value = serde_json::from_str(&j.json).unwrap_or_default();
            let e = &v["execution"];
            let state = e["state"].as_str().unwrap_or("");
            let tasks = v["tasks"].as_array().cloned().unwrap_or_default();
            let total: u64 = tasks.iter().filter_map(|t| t["bytes"].as_u64()).sum();
            let done: u64 = tasks
                .iter()
                .filter(|t| t["state"] == "done")
                .filter_map(|t| t["bytes"].as_u64())
                .sum();
            let finished = tasks
                .iter()
                .filter(|t| {
                    ["done", "dropped", "cancelled", "failed"]
                        .contains(&t["state"].as_str().unwrap_or(""))
                })
                .count();
            let _ = write!(
                m,
                "<p>Cluster <a href=\"/ui/cluster/{c}\">{c}</a> · {} · state <b class=state>{}</b>{} · {} of {} tasks · \
                 <progress max=\"{}\" value=\"{}\"></progress> <span class=progress>{} of {}</span></p><p>{}</p>",
                esc(e["kind"].as_str().unwrap_or("")),
                esc(state),
                if e["paused"] == true { " (paused)" } else { "" },
                finished,
                tasks.len(),
                total.max(1),
                done,
                bytes(done as f64),
                bytes(total as f64),
                control_buttons(id, state, &csrf),
                c = esc(e["cluster"].as_str().unwrap_or("")),
            );
            if let Some(r) = e["reason"].as_str().filter(|r| !r.is_empty()) {
                let _ = write!(m, "<p class=err>{}</p>", esc(r));
            }
            let table = e["summary"]["table"].as_str().unwrap_or("");
            if !table.is_empty() {
                let _ = write!(m, "<h2>Before and after</h2><pre>{}</pre>", esc(table));
            }
            m.push_str("<h2>Tasks</h2><table><tr><th>#</th><th>partition</th><th>from</th><th>to</th><th>bytes</th><th>state</th><th>reason</th></tr>");
            for t in &tasks {
                let _ = write!(
                    m,
                    "<tr><td>{}</td><td>{}-{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    t["index"],
                    esc(t["topic"].as_str().unwrap_or("")),
                    t["partition"],
                    esc(&t["original"].to_string()),
                    esc(&t["target"].to_string()),
                    bytes(t["bytes"].as_f64().unwrap_or(0.0)),
                    esc(t["state"].as_str().unwrap_or("")),
                    esc(t["reason"].as_str().unwrap_or(""))
                );
            }
            m.push_str("</table>");
        }
    }
    d.respond(&headers, &q, &title, m)
}

async fn control(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path((id, action)): Path<(u64, String)>,
    body: String,
) -> Response {
    let Some((_, role, principal, csrf)) = d.session(&headers) else {
        return html(
            StatusCode::UNAUTHORIZED,
            "<p class=err>Log in first.</p>".into(),
        );
    };
    if form(&body).get("csrf") != Some(&csrf) {
        return html(
            StatusCode::FORBIDDEN,
            "<p class=err>Missing or wrong CSRF token.</p>".into(),
        );
    }
    if role < Role::Operator {
        return html(
            StatusCode::FORBIDDEN,
            format!(
                "<p class=err>role {} may not {action} an execution</p>",
                format!("{role:?}").to_lowercase()
            ),
        );
    }
    let action = match action.as_str() {
        "approve" => Control::Approve,
        "cancel" => Control::Cancel,
        other => {
            return html(
                StatusCode::BAD_REQUEST,
                format!("<p class=err>unknown action {}</p>", esc(other)),
            );
        }
    };
    match d
        .api
        .ctl
        .write(Command::Execution(Box::new(ExecutionCmd::Control {
            id,
            action,
            by: principal,
        })))
        .await
    {
        Ok(r) => {
            if let guardian_meta_store::CommandResponse::Execution(e) = &r {
                super::executions::control_event(&d.api, e);
            }
            redirect(&format!("/ui/executions/{id}"))
        }
        Err(e) => {
            let status = match &e {
                ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
                ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::CONFLICT,
            };
            html(status, error_html(&e))
        }
    }
}

async fn events_page(State(d): State<Arc<Dashboard>>, headers: HeaderMap, uri: Uri) -> Response {
    let q = form(uri.query().unwrap_or(""));
    let cluster = q.get("cluster").cloned().unwrap_or_default();
    let kind = q.get("kind").cloned().unwrap_or_default();
    let call = d.call();
    let mut m = format!(
        "<h1>Events</h1><form method=get action=/ui/events>cluster <input name=cluster value=\"{}\"> kind <input name=kind value=\"{}\"> <button>Filter</button></form>",
        esc(&cluster),
        esc(&kind)
    );
    match super::governance::list_events(
        &call,
        pb::ListEventsRequest {
            cluster,
            after_seq: 0,
            limit: 0,
            stale: false,
        },
    )
    .await
    {
        Err(e) => m.push_str(&error_html(&e)),
        Ok(j) => {
            let evs: Vec<Value> = serde_json::from_str(&j.json).unwrap_or_default();
            m.push_str("<table><tr><th>seq</th><th>time (UTC)</th><th>cluster</th><th>kind</th><th>subject</th><th>what</th></tr>");
            for e in evs
                .iter()
                .rev()
                .filter(|e| {
                    kind.is_empty() || e["kind"].as_str().is_some_and(|k| k.starts_with(&kind))
                })
                .take(500)
            {
                let _ = write!(
                    m,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e["seq"],
                    esc(&utc(e["at_ms"].as_u64().unwrap_or(0))),
                    esc(e["cluster"].as_str().unwrap_or("")),
                    esc(e["kind"].as_str().unwrap_or("")),
                    esc(e["subject"].as_str().unwrap_or("")),
                    esc(e["text"].as_str().unwrap_or(""))
                );
            }
            m.push_str("</table>");
        }
    }
    d.respond(&headers, &q, "Events", m)
}

/// `HH:MM:SS` of a Unix time in ms (the date is in the tooltip-free seq).
fn utc(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// Server-sent events: the applied index, whenever it changes (polled
/// every 250 ms), and a comment every 15 s to keep the stream open.
async fn sse(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if d.session(&headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    }
    let ctl = d.api.ctl.clone();
    let stream = futures::stream::unfold((0u64, Instant::now()), move |(last, ping)| {
        let ctl = ctl.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let applied = ctl
                    .raft
                    .metrics()
                    .borrow()
                    .last_applied
                    .map_or(0, |l| l.index);
                if applied != last {
                    let msg = format!("data: {applied}\n\n");
                    return Some((
                        Ok::<_, std::convert::Infallible>(msg),
                        (applied, Instant::now()),
                    ));
                }
                if ping.elapsed() > Duration::from_secs(15) {
                    return Some((Ok(": keep-alive\n\n".to_string()), (last, Instant::now())));
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_html_escapes() {
        let f = form("token=a%2Bb+c&csrf=x%3D1&empty");
        assert_eq!(f["token"], "a+b c");
        assert_eq!(f["csrf"], "x=1");
        assert_eq!(f["empty"], "");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(token_tag("secret"), token_tag("secret"));
        assert_ne!(token_tag("secret"), token_tag("other"));
        assert!(!token_tag("secret").contains("secret"));
    }
}
