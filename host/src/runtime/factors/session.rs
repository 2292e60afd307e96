//! The `session` import: the call's bucket in the state store (session
//! start, budget guard, ledger, tool-private values), the routing index
//! behind the read-only `request:<id>` keys, the call's handle behind
//! `session-handle`, and annotations of the completions this call sent.
//!
//! Keys that the host owns are read-only to tools; `budget-guard` may be set
//! only by a call that holds `write:budget`. Every other key is private to
//! the tool that wrote it, so one tool (or plugin) cannot read or poison
//! another's.

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

    /// Applies `ledger-annotation` to a completion this call sent: by request
    /// id, or the newest one without an id (a failed send).
    async fn annotate(&mut self, value: &str) -> Result<(), String> {
        let note: Annotation = serde_json::from_str(value).map_err(|e| {
            format!("ledger-annotation must be a JSON object with requestId, combo, role, fallbacksTriggered, degradedFrom: {e}")
        })?;
        let target = {
            let mut completions = lock(&self.completions);
            let found = completions.iter_mut().rev().find(|sent| match &note.request_id {
                Some(id) => sent.entry.request_id.as_deref() == Some(id.as_str()),
                None => sent.entry.request_id.is_none(),
            });
            found.map(|sent| {
                sent.entry.annotate(&note);
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

    /// The call's handle; a call on the default bucket that holds
    /// `write:budget` gets a fresh one and moves onto it.
    async fn handle(&self) -> Result<Option<String>, StoreError> {
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

    async fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        let bucket = self.bucket();
        let principal = &*bucket.principal;
        if let Some(id) = key.strip_prefix(KEY_REQUEST_PREFIX) {
            let found = self.store.find_request(principal, id).await?;
            return Ok(found.and_then(|r| serde_json::to_string(&r.entry).ok()));
        }
        Ok(match key {
            KEY_SESSION_START => {
                let state = self.store.open_bucket(principal, &bucket.key).await?;
                Some(serde_json::Value::from(crate::session::iso8601_ms(state.started_ms)).to_string())
            }
            KEY_BUDGET_GUARD => {
                let state = self.store.open_bucket(principal, &bucket.key).await?;
                state.budget_guard.or_else(|| self.default_guard.as_deref().map(str::to_owned))
            }
            KEY_LEDGER => {
                let entries: Vec<LedgerEntry> =
                    self.store.ledger(principal, &bucket.key).await?.into_iter().map(|r| r.entry).collect();
                serde_json::to_string(&entries).ok()
            }
            KEY_SESSION_HANDLE => self.handle().await?.map(|h| serde_json::Value::from(h).to_string()),
            _ => self.store.get_value(principal, &bucket.key, &self.tool, key).await?,
        })
    }

    async fn write(&self, key: &str, value: &str) -> Result<(), SessionError> {
        match key {
            KEY_SESSION_START | KEY_LEDGER | KEY_SESSION_HANDLE => return Err(SessionError::ReadOnly(key.to_owned())),
            _ if key.starts_with(KEY_REQUEST_PREFIX) => return Err(SessionError::ReadOnly(key.to_owned())),
            _ => {}
        }
        let bucket = self.bucket();
        if key == KEY_BUDGET_GUARD {
            if !self.caps.has(Scope::WriteBudget) {
                return Err(SessionError::NeedsWriteBudget);
            }
            self.store.set_guard(&bucket.principal, &bucket.key, Some(value)).await?;
            return Ok(());
        }
        self.store.set_value(&bucket.principal, &bucket.key, &self.tool, key, value).await?;
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
            return self.annotate(&value).await;
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
