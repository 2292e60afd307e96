//! Who sent an MCP request over HTTP: the principal the guard authenticated
//! (carried in the request's extensions), bound with the session's state on
//! the session's first request.

use crate::auth::Principal;
use crate::call::Caller;
use crate::mcp::ResolveCaller;
use super::sessions::SessionOwners;
use crate::session::Session;
use rmcp::ErrorData as McpError;
use rmcp::service::{RequestContext, RoleServer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Numbers sessions served without an `Mcp-Session-Id` (stateless requests).
static STATELESS: AtomicU64 = AtomicU64::new(1);

/// The caller of one MCP session's requests: the tenant that started it and
/// its transport session (legacy with an `Mcp-Session-Id`, else stateless).
pub(super) struct SessionCaller {
    bound: OnceLock<Caller>,
    /// Where a legacy session's [`Session`] lives, so a parked session
    /// restored on a new handler keeps its state bucket.
    sessions: Arc<SessionOwners>,
}

impl SessionCaller {
    pub(super) fn new(sessions: Arc<SessionOwners>) -> Self {
        Self { bound: OnceLock::new(), sessions }
    }
}

impl ResolveCaller for SessionCaller {
    fn resolve(&self, context: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
        let parts = context.extensions.get::<http::request::Parts>();
        let principal = parts
            .and_then(|p| p.extensions.get::<Arc<Principal>>())
            .cloned()
            .ok_or_else(|| McpError::invalid_request("This request carries no authenticated tenant.", None))?;
        let bound = self.bound.get_or_init(|| {
            let session_id = parts.and_then(|p| p.headers.get("mcp-session-id")).and_then(|v| v.to_str().ok());
            let session = match session_id {
                Some(id) => self.sessions.session(id).unwrap_or_else(|| Arc::new(Session::legacy(id))),
                None => Arc::new(Session::stateless(format!("stateless-{}", STATELESS.fetch_add(1, Ordering::Relaxed)))),
            };
            Caller { principal: principal.clone(), session }
        });
        if bound.principal.id() != principal.id() {
            return Err(McpError::invalid_request(
                "This MCP session belongs to another tenant; start your own session with initialize.",
                None,
            ));
        }
        Ok(Caller { principal, session: bound.session.clone() })
    }
}
