//! Who owns each Streamable HTTP session, how many each tenant holds, and
//! which idle sessions are parked.
//!
//! A session is bound to its tenant when rmcp initializes it. An idle one
//! (no request or stream open for `park_after`) is *parked*: rmcp's worker,
//! its channels and tasks (about 60 KiB) are dropped and only this entry is
//! kept (its owner, its `initialize` parameters and its [`Session`], copied
//! into fresh allocations so they pin none of the pages the worker gives
//! back). Its next request restores it through rmcp's session store, which
//! replays the `initialize` on a new worker; the client notices nothing and
//! the session keeps its state bucket, because the restored handler gets the
//! same [`Session`] back. A session is forgotten after `idle` without a
//! request (live or parked), on DELETE, or when its start fails; the
//! tenant's slot is free again then.

use crate::auth::{Principal, PrincipalId};
use crate::session::Session;
use futures::{Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, InitializeRequestParams, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::store::{SessionState, SessionStore, SessionStoreError};
use rmcp::transport::streamable_http_server::session::{RestoreOutcome, SessionId, SessionManager, ServerSseMessage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The sessions by id, and the session starts in progress.
#[derive(Debug, Default)]
pub(super) struct SessionOwners {
    inner: Mutex<Owners>,
}

#[derive(Debug, Default)]
struct Owners {
    by_session: HashMap<String, Entry>,
    /// Sessions (live and parked) plus session starts in progress, per principal.
    held: HashMap<PrincipalId, u32>,
}

/// One session, live or parked.
#[derive(Debug)]
struct Entry {
    principal: PrincipalId,
    /// What the client sent in `initialize` (JSON), replayed to restore the session.
    init: Option<Box<str>>,
    /// The transport session its requests share (and the state bucket it minted).
    session: Arc<Session>,
    /// Requests answered and SSE streams still open.
    open: u32,
    /// When the last request or stream ended (or started).
    last: Instant,
    /// rmcp's worker is gone; the next request restores it.
    parked: bool,
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Swept {
    /// Live sessions now parked: their rmcp workers are to be closed.
    pub parked: Vec<String>,
    /// Sessions forgotten after `idle` without a request; those that were
    /// still live are in `close` too.
    pub expired: usize,
    /// rmcp workers to close (parked now, or expired while live).
    pub close: Vec<String>,
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

/// Keeps a session counted as busy (never parked) while a request's answer
/// or an SSE stream is open; on drop the session's idle time starts again.
struct Busy {
    owners: Arc<SessionOwners>,
    session: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(entry) = self.owners.lock().by_session.get_mut(&self.session) {
            entry.open = entry.open.saturating_sub(1);
            entry.last = Instant::now();
        }
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

    fn forget(&mut self, session: &str) -> Option<Entry> {
        let entry = self.by_session.remove(session)?;
        crate::telemetry::metrics::http_session(entry.principal.as_str(), false);
        self.release(&entry.principal);
        Some(entry)
    }
}

impl SessionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Owners> {
        // Single map updates: a panic elsewhere cannot leave them half done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant a session (live or parked) belongs to.
    pub(super) fn owner(&self, session: &str) -> Option<PrincipalId> {
        self.lock().by_session.get(session).map(|e| e.principal.clone())
    }

    /// The transport session whose requests share state, kept across parking.
    pub(super) fn session(&self, session: &str) -> Option<Arc<Session>> {
        self.lock().by_session.get(session).map(|e| e.session.clone())
    }

    /// Makes room for a session `principal` is about to start, or says why
    /// there is none (its `max_sessions` are all held).
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

    /// `session` has started (or is being restored) for `principal`.
    fn bind(&self, session: &str, principal: &PrincipalId) {
        let mut owners = self.lock();
        match owners.by_session.get_mut(session) {
            Some(entry) => {
                entry.parked = false;
                entry.last = Instant::now();
            }
            None => {
                let entry = Entry {
                    principal: principal.clone(),
                    init: None,
                    session: Arc::new(Session::legacy(session)),
                    open: 0,
                    last: Instant::now(),
                    parked: false,
                };
                owners.by_session.insert(session.to_owned(), entry);
                crate::telemetry::metrics::http_session(principal.as_str(), true);
                *owners.held.entry(principal.clone()).or_default() += 1;
            }
        }
    }

    /// `session` has ended; forgetting it twice is harmless.
    fn forget(&self, session: &str) {
        self.lock().forget(session);
    }

    /// rmcp's worker for `session` has ended: the session stays, parked,
    /// until it is restored or forgotten.
    fn worker_ended(&self, session: &str) {
        if let Some(entry) = self.lock().by_session.get_mut(session) {
            entry.parked = true;
        }
    }

    /// A request or stream of `session` starts: it is busy until the guard drops.
    fn busy(self: &Arc<Self>, session: &str) -> Busy {
        if let Some(entry) = self.lock().by_session.get_mut(session) {
            entry.open += 1;
            entry.last = Instant::now();
        }
        Busy { owners: self.clone(), session: session.to_owned() }
    }

    /// A request of `session` that opens no stream (a notification or a response).
    fn touch(&self, session: &str) {
        if let Some(entry) = self.lock().by_session.get_mut(session) {
            entry.last = Instant::now();
        }
    }

    /// Parks the live sessions idle for `park_after` and forgets every
    /// session idle for `idle`, as of `now`. Busy sessions are left alone.
    /// A parked entry is moved into fresh allocations before its worker is
    /// closed, so the worker's pages are wholly free afterwards.
    fn sweep(&self, now: Instant, park_after: Duration, idle: Duration) -> Swept {
        let mut owners = self.lock();
        let mut swept = Swept::default();
        let mut expired = Vec::new();
        for (id, entry) in owners.by_session.iter() {
            if entry.open > 0 {
                continue;
            }
            let quiet = now.saturating_duration_since(entry.last);
            if quiet >= idle {
                expired.push(id.clone());
                if !entry.parked {
                    swept.close.push(id.clone());
                }
            } else if !entry.parked && quiet >= park_after {
                swept.parked.push(id.clone());
                swept.close.push(id.clone());
            }
        }
        for id in &expired {
            owners.forget(id);
        }
        for id in &swept.parked {
            if let Some((old_id, old)) = owners.by_session.remove_entry(id.as_str()) {
                let entry = Entry {
                    principal: old.principal.clone(),
                    init: old.init.as_deref().map(Box::from),
                    session: Arc::new(old.session.relocated()),
                    open: 0,
                    last: old.last,
                    parked: true,
                };
                owners.by_session.insert(old_id.as_str().to_owned(), entry);
            }
        }
        swept.expired = expired.len();
        swept
    }

    /// Sessions held, and how many of them are parked.
    pub(super) fn counts(&self) -> (usize, usize) {
        let owners = self.lock();
        (owners.by_session.len(), owners.by_session.values().filter(|e| e.parked).count())
    }

    /// Sessions plus starts in progress of `principal`.
    #[cfg(test)]
    fn held(&self, principal: &PrincipalId) -> u32 {
        self.lock().held.get(principal).copied().unwrap_or(0)
    }
}

/// rmcp's session store, kept in [`SessionOwners`]: rmcp stores a session's
/// `initialize` parameters once it is initialized, loads them to restore a
/// session it does not have (a parked one), and deletes them on DELETE.
pub(super) struct ParkedSessions(pub Arc<SessionOwners>);

#[async_trait::async_trait]
impl SessionStore for ParkedSessions {
    /// Only a parked session is restored; one that was forgotten is gone (404).
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let init = self.0.lock().by_session.get(session_id).filter(|e| e.parked).and_then(|e| e.init.clone());
        match init {
            Some(json) => Ok(Some(SessionState::new(serde_json::from_str::<InitializeRequestParams>(&json)?))),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let json = serde_json::to_string(&state.initialize_params)?;
        if let Some(entry) = self.0.lock().by_session.get_mut(session_id) {
            entry.init = Some(json.into_boxed_str());
        }
        Ok(())
    }

    /// The client ended the session (DELETE).
    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.0.forget(session_id);
        Ok(())
    }
}

/// rmcp's session manager, with every session's start, activity and end
/// reported to [`SessionOwners`], and idle sessions parked.
pub(super) struct TrackedSessions<M> {
    inner: M,
    owners: Arc<SessionOwners>,
}

impl<M> TrackedSessions<M> {
    pub(super) fn new(inner: M, owners: Arc<SessionOwners>) -> Self {
        Self { inner, owners }
    }
}

impl<M: SessionManager> TrackedSessions<M> {
    /// Parks idle sessions and forgets expired ones until `shutdown`; gives
    /// the memory of parked workers back to the system.
    pub(super) fn spawn_sweeper(self: &Arc<Self>, park_after: Duration, idle: Duration, shutdown: CancellationToken) {
        let every = (park_after.min(idle) / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(this) = this.upgrade() else { return };
                let swept = this.owners.sweep(Instant::now(), park_after, idle);
                for id in &swept.close {
                    if let Err(e) = this.inner.close_session(&SessionId::from(id.as_str())).await {
                        tracing::debug!(session = %id, error = %e, "closing an idle session's worker");
                    }
                }
                if !swept.close.is_empty() || swept.expired > 0 {
                    let (held, parked) = this.owners.counts();
                    tracing::debug!(parked_now = swept.parked.len(), expired = swept.expired, held, parked, "idle MCP sessions swept");
                    release_freed_memory().await;
                }
            }
        });
    }
}

/// Gives the heap pages freed by closed workers back to the system. glibc
/// keeps freed memory in its arenas (a thousand parked sessions would still
/// count in the RSS); `malloc_trim` returns the whole free pages.
async fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}

/// `stream`, keeping its session busy until the stream is dropped.
fn while_open<S: Stream<Item = ServerSseMessage>>(stream: S, busy: Busy) -> impl Stream<Item = ServerSseMessage> {
    stream.map(move |message| {
        let _busy = &busy;
        message
    })
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

    /// Binds the session before rmcp answers `initialize` (or a restore
    /// replays it), so a session that ends right after is forgotten, never
    /// left counted.
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

    /// Every end of an rmcp worker comes here: DELETE (then the store's
    /// `delete` forgets the session), parking, rmcp's idle timeout, shutdown.
    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.owners.worker_ended(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let busy = Arc::clone(&self.owners).busy(id);
        let stream = self.inner.create_stream(id, message).await?;
        Ok(while_open(stream, busy))
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.owners.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let busy = Arc::clone(&self.owners).busy(id);
        let stream = self.inner.create_standalone_stream(id).await?;
        Ok(while_open(stream, busy))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let busy = Arc::clone(&self.owners).busy(id);
        let stream = self.inner.resume(id, last_event_id).await?;
        Ok(while_open(stream, busy))
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

    #[tokio::test]
    async fn idle_sessions_are_parked_then_forgotten_and_busy_ones_are_left_alone() {
        let owners = Arc::new(SessionOwners::default());
        let store = ParkedSessions(owners.clone());
        let a = tenant(5);
        let (park, idle) = (Duration::from_secs(10), Duration::from_secs(300));
        let t0 = Instant::now();
        owners.bind("quiet", a.id());
        owners.bind("busy", a.id());
        store.store("quiet", &SessionState::new(InitializeRequestParams::default())).await.unwrap();
        let session = owners.session("quiet").unwrap();
        let open = owners.busy("busy");
        assert!(store.load("quiet").await.unwrap().is_none(), "a live session is not restored");

        let swept = owners.sweep(t0 + Duration::from_secs(11), park, idle);
        assert_eq!(swept, Swept { parked: vec!["quiet".to_owned()], expired: 0, close: vec!["quiet".to_owned()] });
        assert_eq!(owners.held(a.id()), 2, "a parked session keeps its slot");
        assert_eq!(owners.owner("quiet").as_ref(), Some(a.id()), "and its owner");
        assert!(store.load("quiet").await.unwrap().is_some(), "a parked session is restorable");
        assert_eq!(owners.sweep(t0 + Duration::from_secs(12), park, idle), Swept::default(), "parked once");

        // The restore replays initialize: live again, same Session, counted once.
        owners.bind("quiet", a.id());
        let restored = owners.session("quiet").unwrap();
        assert_eq!(restored.id(), session.id(), "the restored session is the same session");
        assert!(!Arc::ptr_eq(&restored, &session), "moved into fresh allocations when parked");
        assert_eq!(owners.held(a.id()), 2);
        assert_eq!(owners.counts(), (2, 0));

        // After `idle` without a request a session is forgotten; a busy one is not.
        let swept = owners.sweep(t0 + Duration::from_secs(400), park, idle);
        assert_eq!(swept, Swept { parked: vec![], expired: 1, close: vec!["quiet".to_owned()] });
        assert_eq!(owners.held(a.id()), 1);
        assert!(owners.owner("quiet").is_none() && store.load("quiet").await.unwrap().is_none());
        drop(open);
        assert_eq!(owners.sweep(Instant::now() + Duration::from_secs(11), park, idle).parked, vec!["busy".to_owned()]);

        // DELETE of a parked session forgets it.
        store.delete("busy").await.unwrap();
        assert_eq!(owners.held(a.id()), 0);
    }
}
