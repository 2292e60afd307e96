//! Who owns each live Streamable HTTP session, and how many each tenant
//! holds. A session is bound to its tenant when rmcp initializes it and
//! forgotten whenever it ends, however it ends (DELETE, idle eviction,
//! shutdown), because rmcp closes every session through its session manager
//! and [`TrackedSessions`] wraps that manager.

use crate::auth::{Principal, PrincipalId};
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::{RestoreOutcome, SessionId, SessionManager, ServerSseMessage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The live sessions by owner, and the session starts in progress.
#[derive(Debug, Default)]
pub(super) struct SessionOwners {
    inner: Mutex<Owners>,
}

#[derive(Debug, Default)]
struct Owners {
    by_session: HashMap<String, PrincipalId>,
    /// Live sessions plus session starts in progress, per principal.
    held: HashMap<PrincipalId, u32>,
}

/// A session start in progress: counts against the principal's cap until
/// it drops (by then rmcp has bound the session, or none was created).
pub(super) struct PendingStart {
    owners: Arc<SessionOwners>,
    principal: PrincipalId,
}

impl Drop for PendingStart {
    fn drop(&mut self) {
        self.owners.lock().release(&self.principal);
    }
}

impl Owners {
    fn release(&mut self, principal: &PrincipalId) {
        if let Some(n) = self.held.get_mut(principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(principal);
            }
        }
    }
}

impl SessionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Owners> {
        // Single map updates: a panic elsewhere cannot leave them half done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant a live session belongs to.
    pub(super) fn owner(&self, session: &str) -> Option<PrincipalId> {
        self.lock().by_session.get(session).cloned()
    }

    /// Makes room for a session `principal` is about to start, or says why
    /// there is none (its `max_sessions` are all live).
    pub(super) fn reserve(self: &Arc<Self>, principal: &Principal, idle: Duration) -> Result<PendingStart, String> {
        let max = principal.limits().map_or(u32::MAX, |l| l.max_sessions);
        let mut owners = self.lock();
        let held = owners.held.entry(principal.id().clone()).or_default();
        if *held >= max {
            return Err(format!(
                "Session limit reached for tenant {}: at most {max} live MCP sessions; end one (DELETE /mcp with its \
                 Mcp-Session-Id) or let one idle out (sessions are closed after {} s without a request)",
                principal.caller(),
                idle.as_secs()
            ));
        }
        *held += 1;
        Ok(PendingStart { owners: self.clone(), principal: principal.id().clone() })
    }

    /// `session` has started for `principal`.
    fn bind(&self, session: &str, principal: &PrincipalId) {
        let mut owners = self.lock();
        if owners.by_session.insert(session.to_owned(), principal.clone()).is_none() {
            crate::telemetry::metrics::http_session(principal.as_str(), true);
            *owners.held.entry(principal.clone()).or_default() += 1;
        }
    }

    /// `session` has ended; forgetting it twice is harmless.
    fn forget(&self, session: &str) {
        let mut owners = self.lock();
        if let Some(principal) = owners.by_session.remove(session) {
            crate::telemetry::metrics::http_session(principal.as_str(), false);
            owners.release(&principal);
        }
    }

    /// Live sessions plus starts in progress of `principal`.
    #[cfg(test)]
    fn held(&self, principal: &PrincipalId) -> u32 {
        self.lock().held.get(principal).copied().unwrap_or(0)
    }
}

/// rmcp's session manager, with every session's start and end reported to
/// [`SessionOwners`].
pub(super) struct TrackedSessions<M> {
    inner: M,
    owners: Arc<SessionOwners>,
}

impl<M> TrackedSessions<M> {
    pub(super) fn new(inner: M, owners: Arc<SessionOwners>) -> Self {
        Self { inner, owners }
    }
}

/// The principal the guard attached to an `initialize` request.
fn initiator(message: &ClientJsonRpcMessage) -> Option<PrincipalId> {
    let ClientJsonRpcMessage::Request(request) = message else { return None };
    let parts = request.request.extensions().get::<http::request::Parts>()?;
    parts.extensions.get::<Arc<Principal>>().map(|p| p.id().clone())
}

impl<M: SessionManager> SessionManager for TrackedSessions<M> {
    type Error = M::Error;
    type Transport = M::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    /// Binds the session before rmcp answers `initialize`, so a session that
    /// ends right after is forgotten, never left counted.
    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        if let Some(principal) = initiator(&message) {
            self.owners.bind(id, &principal);
        }
        let answer = self.inner.initialize_session(id, message).await;
        if answer.is_err() {
            self.owners.forget(id);
        }
        answer
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    /// Every end of a session comes here: DELETE, idle eviction, shutdown.
    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.owners.forget(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }

    fn event_store(&self) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Limits;
    use crate::capability::Grants;

    fn tenant(max_sessions: u32) -> Principal {
        let limits = Limits { max_concurrent: 1, rate_per_minute: 60, max_sessions };
        Principal::tenant(PrincipalId::tenant("a").unwrap(), "a", Grants::parse("*"), None, limits, None)
    }

    #[test]
    fn the_cap_counts_live_sessions_and_starts_in_progress() {
        let owners = Arc::new(SessionOwners::default());
        let a = tenant(2);
        let idle = Duration::from_secs(300);
        let first = owners.reserve(&a, idle).unwrap();
        owners.bind("s1", a.id());
        drop(first);
        let second = owners.reserve(&a, idle).unwrap();
        let err = owners.reserve(&a, idle).err().unwrap();
        assert!(err.starts_with("Session limit reached for tenant a: at most 2 live MCP sessions"), "{err}");
        assert!(err.contains("after 300 s"), "{err}");
        drop(second);
        assert_eq!(owners.held(a.id()), 1, "a start that created no session frees its slot");
        assert_eq!(owners.owner("s1").as_ref(), Some(a.id()));
        owners.forget("s1");
        owners.forget("s1");
        assert_eq!(owners.held(a.id()), 0);
        assert!(owners.owner("s1").is_none());
        assert!(owners.reserve(&a, idle).is_ok());
    }
}
