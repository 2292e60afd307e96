//! Session state the host owns (docs/architecture.md#state-model): which
//! bucket of the state store a call reads and writes, the completion ledger
//! and the budget guard. The state itself lives in the store
//! ([`crate::state`]), namespaced by principal, so it survives the stateless
//! protocol (MCP 2026-07-28), restarts and several nodes.
//!
//! A [`Session`] here is only the *transport* session a request came over:
//! the stdio process, a Streamable HTTP `Mcp-Session-Id`, or none (a
//! stateless request). [`bucket::resolve`] turns it and the call's
//! `sessionId` argument into the bucket the call uses.

pub mod bucket;
pub mod budget;
pub mod ledger;
pub mod spend;

use crate::state::{Handle, Store, StoreError};
use std::time::SystemTime;

// The host-owned keys, named as the tools name them (the contract's).
pub use omniroute_tool_contract::session_keys::{
    BUDGET_GUARD as KEY_BUDGET_GUARD, LEDGER as KEY_LEDGER, LEDGER_ANNOTATION as KEY_LEDGER_ANNOTATION,
    REQUEST_PREFIX as KEY_REQUEST_PREFIX, SESSION_HANDLE as KEY_SESSION_HANDLE, SESSION_START as KEY_SESSION_START,
};

/// The transport session a request came over.
#[derive(Debug)]
pub struct Session {
    id: String,
    /// Whether this is a legacy (initialize-based) session whose requests
    /// share state without passing a handle: the stdio process, an
    /// `Mcp-Session-Id`. A stateless request is not.
    legacy: bool,
    /// The handle whose bucket this legacy session uses, minted on its
    /// first call (so the session's state can also be named from elsewhere).
    handle: tokio::sync::OnceCell<Handle>,
}

impl Session {
    /// A legacy session (stdio process, `Mcp-Session-Id`); `id` names it in
    /// the audit log.
    pub fn legacy(id: impl Into<String>) -> Self {
        Self { id: id.into(), legacy: true, handle: tokio::sync::OnceCell::new() }
    }

    /// A request without a transport session (MCP 2026-07-28, or HTTP
    /// without `Mcp-Session-Id`); its state is the principal's default
    /// bucket unless it passes a handle.
    pub fn stateless(id: impl Into<String>) -> Self {
        Self { id: id.into(), legacy: false, handle: tokio::sync::OnceCell::new() }
    }

    /// The same session in fresh allocations (its id and minted handle): a
    /// parked HTTP session keeps this copy so that none of its small
    /// allocations pins the pages its closed worker gives back.
    pub fn relocated(&self) -> Self {
        let handle = tokio::sync::OnceCell::new_with(self.handle.get().cloned());
        Self { id: self.id.as_str().to_owned(), legacy: self.legacy, handle }
    }

    /// The session's id (HTTP: the `Mcp-Session-Id`); audit rows carry it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether requests of this session share state without a handle.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// The legacy session's handle, minted in `store` for `principal` on
    /// first use; `None` for a stateless request.
    pub async fn handle(&self, store: &Store, principal: &str) -> Result<Option<Handle>, StoreError> {
        if !self.legacy {
            return Ok(None);
        }
        self.handle.get_or_try_init(|| store.mint_handle(principal)).await.map(|h| Some(h.clone()))
    }
}

/// RFC 3339 / ISO 8601 UTC with milliseconds, as JavaScript's `toISOString`.
pub fn iso8601(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    dt.format(&format).unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// [`iso8601`] of milliseconds since the epoch.
pub fn iso8601_ms(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    iso8601(t)
}
