//! Fail point control over HTTP, for the multi-process fault harness
//! (TiKV's status server does the same). Compiled only with the
//! `failpoints` feature and served only when the process was started with
//! `GUARDIAN_FAIL_CONTROL=1`; the admin role is required when tokens are
//! configured.
//!
//! - `PUT /debug/failpoints/{name}` with the actions in the body (the
//!   `fail` crate's syntax: `return(drop)`, `30%return(drop)`,
//!   `sleep(200)`, `1*return`, `off`) configures one fail point;
//! - `DELETE /debug/failpoints/{name}` removes it;
//! - `GET /debug/failpoints` lists the configured ones, `name=actions` a line.
//!
//! Fail points that must hold from the first instant (a snapshot install
//! that starts as soon as the node is back) come from
//! `GUARDIAN_FAILPOINTS=name=actions;name=actions` at start.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;

use super::Auth;
use crate::config::Role;

/// The environment variable that turns the routes on.
pub const ENV: &str = "GUARDIAN_FAIL_CONTROL";

/// The environment variable with fail points to set at start.
pub const AT_START: &str = "GUARDIAN_FAILPOINTS";

/// Whether this process serves the routes.
pub fn enabled() -> bool {
    std::env::var(ENV).is_ok_and(|v| v == "1")
}

/// Sets the fail points of [`AT_START`] (only when [`enabled`]).
pub fn configure_from_env() -> Result<(), String> {
    if !enabled() {
        return Ok(());
    }
    let Ok(spec) = std::env::var(AT_START) else {
        return Ok(());
    };
    for item in spec.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, actions) = item
            .split_once('=')
            .ok_or_else(|| format!("{AT_START}: {item:?} is not name=actions"))?;
        fail::cfg(name.trim(), actions.trim()).map_err(|e| format!("{AT_START}: {name}: {e}"))?;
        tracing::warn!(fail_point = %name.trim(), actions = %actions.trim(), "fail point configured at start");
    }
    Ok(())
}

fn check(auth: &Auth, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth.authorize_header(header, Role::Admin, "configure fail points")
        .map_err(|e| {
            let code = match e {
                crate::error::ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            (code, format!("{e}\n"))
        })
}

/// The routes, checked against `auth`.
pub fn router(auth: Auth) -> Router {
    let (a1, a2, a3) = (auth.clone(), auth.clone(), auth);
    Router::new()
        .route(
            "/debug/failpoints",
            get(move |headers: HeaderMap| async move {
                check(&a1, &headers)?;
                let mut out = String::new();
                for (name, actions) in fail::list() {
                    out.push_str(&format!("{name}={actions}\n"));
                }
                Ok::<_, (StatusCode, String)>(out)
            }),
        )
        .route(
            "/debug/failpoints/{name}",
            axum::routing::put(
                move |Path(name): Path<String>, headers: HeaderMap, body: String| async move {
                    check(&a2, &headers)?;
                    fail::cfg(name.clone(), body.trim()).map_err(|e| {
                        (
                            StatusCode::BAD_REQUEST,
                            format!("fail point {name}: {e}\n"),
                        )
                    })?;
                    tracing::warn!(fail_point = %name, actions = %body.trim(), "fail point configured");
                    Ok::<_, (StatusCode, String)>(format!("{name}={}\n", body.trim()))
                },
            )
            .delete(move |Path(name): Path<String>, headers: HeaderMap| async move {
                check(&a3, &headers)?;
                fail::remove(&name);
                tracing::warn!(fail_point = %name, "fail point removed");
                Ok::<_, (StatusCode, String)>(format!("{name} removed\n"))
            }),
        )
}
