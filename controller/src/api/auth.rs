//! Bearer-token roles of the client-facing services. Which role each RPC
//! needs is written once, in the service tables of [`super`]; no handler
//! sees a token.

use std::collections::BTreeMap;

use tonic::Request;

use crate::config::{AuthConfig, Role};
use crate::error::ApiError;

/// The configured tokens and their roles; open when none is configured.
#[derive(Clone)]
pub struct Auth {
    tokens: BTreeMap<String, Role>,
}

impl Auth {
    pub fn new(auth: &AuthConfig) -> Self {
        Self {
            tokens: auth
                .tokens
                .iter()
                .map(|t| (t.token.expose().to_string(), t.role))
                .collect(),
        }
    }

    /// Checks the bearer token (when auth is configured) against `need`.
    pub fn authorize<T>(
        &self,
        req: &Request<T>,
        need: Role,
        action: &'static str,
    ) -> Result<(), ApiError> {
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.authorize_header(header, need, action)
    }

    /// [`Auth::authorize`] for an `Authorization` header's value (HTTP
    /// surfaces that take a bearer token rather than a session).
    pub fn authorize_header(
        &self,
        header: Option<&str>,
        need: Role,
        action: &'static str,
    ) -> Result<(), ApiError> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let token = header
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthenticated)?;
        let role = *self.tokens.get(token).ok_or(ApiError::Unauthenticated)?;
        if role < need {
            return Err(ApiError::PermissionDenied {
                role: format!("{role:?}").to_lowercase(),
                action,
            });
        }
        Ok(())
    }
}
