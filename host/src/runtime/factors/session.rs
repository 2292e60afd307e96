//! The call's session state, shared by two imports: the typed `state`
//! interface (`omniroute:tool@0.1.1`, in [`super::state`]) and this file's
//! key-value `session` interface, which components built against 0.1.0 use.
//! Both reach the call's bucket in the state store (session start, budget
//! guard, ledger, tool-private values), the routing index, the call's
//! handle and annotations of the completions this call sent, through the
//! typed methods of [`SessionState`].
//!
//! In the key form, keys that the host owns are read-only to tools;
//! `budget-guard` may be set only by a call that holds `write:budget`. Every
//! other key is private to the tool that wrote it, so one tool (or plugin)
//! cannot read or poison another's.

use super::{CallCompletions, lock};
use crate::capability::{CapabilitySet, Scope};
use crate::runtime::bindings::session;
use crate::session::bucket::{CallBucket, SharedBucket};
use crate::session::ledger::{Annotation, LedgerEntry};
use crate::session::{
    KEY_BUDGET_GUARD, KEY_LEDGER, KEY_LEDGER_ANNOTATION, KEY_REQUEST_PREFIX, KEY_SESSION_HANDLE, KEY_SESSION_START,
};
use crate::state::{Store, StoreError};
use std::sync::Arc;

/// The per-call state of the `session` import.
pub(crate) struct SessionState {
    pub(crate) tool: Arc<str>,
    pub(crate) caps: CapabilitySet,
    pub(crate) store: Store,
    pub(crate) bucket: SharedBucket,
    pub(crate) default_guard: Option<Arc<str>>,
    pub(crate) completions: CallCompletions,
}

/// Why a `session.set` was refused; shown to the tool.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("\"{0}\" is owned by the host and read-only to tools")]
    ReadOnly(String),
    #[error("setting the budget guard needs the write:budget scope")]
    NeedsWriteBudget,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionState {
    fn bucket(&self) -> CallBucket {
        lock(&self.bucket).clone()
    }

    /// Applies an annotation to a completion this call sent: by request id,
    /// or the newest one without an id (a failed send).
    pub(super) async fn annotate(&mut self, note: &Annotation) -> Result<(), String> {
        let target = {
            let mut completions = lock(&self.completions);
            let found = completions.iter_mut().rev().find(|sent| match &note.request_id {
                Some(id) => sent.entry.request_id.as_deref() == Some(id.as_str()),
                None => sent.entry.request_id.is_none(),
            });
            found.map(|sent| {
                sent.entry.annotate(note);
                crate::session::ledger::bound_strings(&mut sent.entry);
                (sent.id, sent.entry.clone())
            })
        };
        match target {
            Some((Some(id), entry)) => {
                let principal = self.bucket().principal;
                self.store.update_ledger(&principal, id, &entry).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Some((None, _)) => Ok(()),
            None => Err("no completion sent by this call matches that requestId".to_owned()),
        }
    }

    /// `ledger-annotation`'s JSON form of [`SessionState::annotate`].
    async fn annotate_json(&mut self, value: &str) -> Result<(), String> {
        let note: Annotation = serde_json::from_str(value).map_err(|e| {
            format!("ledger-annotation must be a JSON object with requestId, combo, role, fallbacksTriggered, degradedFrom: {e}")
        })?;
        self.annotate(&note).await
    }

    /// ISO 8601 time the call's bucket was first used.
    pub(super) async fn session_start(&self) -> Result<String, StoreError> {
        let bucket = self.bucket();
        let state = self.store.open_bucket(&bucket.principal, &bucket.key).await?;
        Ok(crate::session::iso8601_ms(state.started_ms))
    }

    /// The bucket's completions, oldest first.
    pub(super) async fn ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let bucket = self.bucket();
        Ok(self.store.ledger(&bucket.principal, &bucket.key).await?.into_iter().map(|r| r.entry).collect())
    }

    /// The routing index: the principal's newest completion with this request id.
    pub(super) async fn find_request(&self, request_id: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let principal = self.bucket().principal;
        Ok(self.store.find_request(&principal, request_id).await?.map(|r| r.entry))
    }

    /// The bucket's guard JSON, else the principal's default budget.
    pub(super) async fn guard_json(&self) -> Result<Option<String>, StoreError> {
        let bucket = self.bucket();
        let state = self.store.open_bucket(&bucket.principal, &bucket.key).await?;
        Ok(state.budget_guard.or_else(|| self.default_guard.as_deref().map(str::to_owned)))
    }

    /// Stores the bucket's guard; only a call holding `write:budget` may.
    pub(super) async fn set_guard_json(&self, json: &str) -> Result<(), SessionError> {
        if !self.caps.has(Scope::WriteBudget) {
            return Err(SessionError::NeedsWriteBudget);
        }
        let bucket = self.bucket();
        self.store.set_guard(&bucket.principal, &bucket.key, Some(json)).await?;
        Ok(())
    }

    /// A value private to the calling tool.
    pub(super) async fn private_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let bucket = self.bucket();
        self.store.get_value(&bucket.principal, &bucket.key, &self.tool, key).await
    }

    /// Stores a value private to the calling tool.
    pub(super) async fn set_private_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let bucket = self.bucket();
        self.store.set_value(&bucket.principal, &bucket.key, &self.tool, key, value).await
    }

    /// The call's handle; a call on the default bucket that holds
    /// `write:budget` gets a fresh one and moves onto it.
    pub(super) async fn handle(&self) -> Result<Option<String>, StoreError> {
        let bucket = self.bucket();
        if let Some(handle) = bucket.handle {
            return Ok(Some(handle.to_string()));
        }
        if !self.caps.has(Scope::WriteBudget) {
            return Ok(None);
        }
        let handle = self.store.mint_handle(&bucket.principal).await?;
        *lock(&self.bucket) = CallBucket::of_handle(bucket.principal, handle.clone());
        Ok(Some(handle.to_string()))
    }

    /// A key of the 0.1.0 `session` interface.
    async fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(id) = key.strip_prefix(KEY_REQUEST_PREFIX) {
            return Ok(self.find_request(id).await?.and_then(|e| serde_json::to_string(&e).ok()));
        }
        Ok(match key {
            KEY_SESSION_START => Some(serde_json::Value::from(self.session_start().await?).to_string()),
            KEY_BUDGET_GUARD => self.guard_json().await?,
            KEY_LEDGER => serde_json::to_string(&self.ledger().await?).ok(),
            KEY_SESSION_HANDLE => self.handle().await?.map(|h| serde_json::Value::from(h).to_string()),
            _ => self.private_value(key).await?,
        })
    }

    /// A write of the 0.1.0 `session` interface.
    async fn write(&self, key: &str, value: &str) -> Result<(), SessionError> {
        match key {
            KEY_SESSION_START | KEY_LEDGER | KEY_SESSION_HANDLE => return Err(SessionError::ReadOnly(key.to_owned())),
            _ if key.starts_with(KEY_REQUEST_PREFIX) => return Err(SessionError::ReadOnly(key.to_owned())),
            KEY_BUDGET_GUARD => return self.set_guard_json(value).await,
            _ => {}
        }
        self.set_private_value(key, value).await?;
        Ok(())
    }
}

impl session::Host for SessionState {
    async fn get(&mut self, key: String) -> Option<String> {
        match self.read(&key).await {
            Ok(value) => value,
            Err(e) => {
                // The WIT get cannot fail: the tool sees "absent", the log says why.
                tracing::warn!(tool = %self.tool, key = %key, error = %e, "session state read failed");
                None
            }
        }
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), String> {
        if key == KEY_LEDGER_ANNOTATION {
            return self.annotate_json(&value).await;
        }
        self.write(&key, &value).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::session::Host;
    use crate::session::bucket::CallBucket;
    use crate::state::{Retention, SqliteStore};
    use std::sync::Mutex;

    fn state(caps: CapabilitySet) -> (SessionState, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("omr-factor-{}-{}", std::process::id(), crate::db::random_hex(6).unwrap()));
        let store: Store = Arc::new(SqliteStore::open(&dir.join("state.sqlite"), Retention::default()).unwrap());
        let s = SessionState {
            tool: Arc::from("t"),
            caps,
            store,
            bucket: Arc::new(Mutex::new(CallBucket::default_of(Arc::from("tenant:c")))),
            default_guard: Some(Arc::from(r#"{"maxCost":1,"action":"block"}"#)),
            completions: Default::default(),
        };
        (s, dir)
    }

    #[tokio::test]
    async fn host_owned_keys_are_guarded_and_private_keys_are_per_tool() {
        let (mut s, dir) = state(CapabilitySet::default());
        let err = s.set("request:abc".into(), "{}".into()).await.unwrap_err();
        assert!(err.contains("read-only"), "{err}");
        assert_eq!(s.get("request:abc".into()).await, None, "nothing was stored under the key");
        for key in [KEY_SESSION_START, KEY_LEDGER, KEY_SESSION_HANDLE] {
            assert_eq!(s.set(key.into(), "x".into()).await, Err(format!("\"{key}\" is owned by the host and read-only to tools")));
        }
        assert_eq!(
            s.set(KEY_BUDGET_GUARD.into(), "{}".into()).await,
            Err("setting the budget guard needs the write:budget scope".into())
        );
        s.set("mine".into(), "1".into()).await.unwrap();
        assert_eq!(s.get("mine".into()).await.as_deref(), Some("1"));
        s.tool = Arc::from("other");
        assert_eq!(s.get("mine".into()).await, None, "another tool's key");
        assert_eq!(s.get(KEY_BUDGET_GUARD.into()).await.as_deref(), Some(r#"{"maxCost":1,"action":"block"}"#), "the default guard");
        assert_eq!(s.get(KEY_LEDGER.into()).await.as_deref(), Some("[]"));
        let start = s.get(KEY_SESSION_START.into()).await.unwrap();
        assert!(start.starts_with('"') && start.ends_with("Z\""), "{start}");
        assert_eq!(s.get(KEY_SESSION_HANDLE.into()).await, None, "no handle is minted without write:budget");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_budget_call_on_the_default_bucket_moves_onto_a_new_handle() {
        let (mut s, dir) = state(CapabilitySet::new([Scope::WriteBudget]));
        let handle: String = serde_json::from_str(&s.get(KEY_SESSION_HANDLE.into()).await.unwrap()).unwrap();
        assert!(handle.starts_with("sh_"), "{handle}");
        s.set(KEY_BUDGET_GUARD.into(), r#"{"maxCost":2,"action":"alert"}"#.into()).await.unwrap();
        let again: String = serde_json::from_str(&s.get(KEY_SESSION_HANDLE.into()).await.unwrap()).unwrap();
        assert_eq!(again, handle, "one handle per call");
        let key = crate::state::BucketKey::handle(&crate::state::Handle::parse(&handle).unwrap());
        let stored = s.store.open_bucket("tenant:c", &key).await.unwrap();
        assert_eq!(stored.budget_guard.as_deref(), Some(r#"{"maxCost":2,"action":"alert"}"#));
        let default = s.store.open_bucket("tenant:c", &crate::state::BucketKey::default_bucket()).await.unwrap();
        assert_eq!(default.budget_guard, None, "the default bucket is untouched");
        let _ = std::fs::remove_dir_all(dir);
    }
}
