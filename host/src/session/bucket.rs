//! Which bucket of the state store one call uses (docs/architecture.md#state-model).
//!
//! In order: the handle the call passes as its `sessionId` argument (it must
//! be one the same principal minted; anything else is "not found", never
//! read); else the legacy transport session's own handle (stdio process,
//! `Mcp-Session-Id`), minted on the session's first call; else the
//! principal's default bucket.

use super::Session;
use crate::state::{BucketKey, Handle, Store, StoreError};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The argument that names a handle, in every tool that reads or writes session state.
pub const SESSION_ID_ARG: &str = "sessionId";

/// The bucket one call reads and writes, within its principal.
#[derive(Debug, Clone, PartialEq)]
pub struct CallBucket {
    /// The principal id (`operator:<name>`, `tenant:<id>`) the store files state under.
    pub principal: Arc<str>,
    pub key: BucketKey,
    /// The handle that names the bucket, when it is a handle's bucket.
    pub handle: Option<Handle>,
}

impl CallBucket {
    /// A handle's bucket.
    pub fn of_handle(principal: Arc<str>, handle: Handle) -> Self {
        Self { principal, key: BucketKey::handle(&handle), handle: Some(handle) }
    }

    /// The principal's default bucket.
    pub fn default_of(principal: Arc<str>) -> Self {
        Self { principal, key: BucketKey::default_bucket(), handle: None }
    }
}

/// The call's bucket, shared by its imports: `set_budget_guard` may move a
/// call from the default bucket onto a freshly minted handle.
pub type SharedBucket = Arc<Mutex<CallBucket>>;

/// Why a call's bucket could not be resolved; the text is the agent's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BucketError {
    #[error(
        "sessionId not found: \"{shown}\" names no session of yours (unknown, pruned after being idle, or minted \
         for another caller). Pass a sessionId returned by omniroute_set_budget_guard to this caller, or leave \
         sessionId out to use this connection's session (or, without one, your default session)."
    )]
    NotFound { shown: String },
    #[error("sessionId must be a string: the handle omniroute_set_budget_guard returned as its sessionId")]
    NotAString,
    #[error("the session state is unavailable: {0}")]
    Store(StoreError),
}

/// Resolves the bucket of a call by `principal` over `session`, whose
/// arguments may name a handle (see the module doc).
pub async fn resolve(
    store: &Store,
    principal: &str,
    session: &Session,
    session_id: Option<&Value>,
) -> Result<CallBucket, BucketError> {
    let principal_arc: Arc<str> = Arc::from(principal);
    match session_id {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            let not_found = || BucketError::NotFound { shown: shown(text) };
            let handle = Handle::parse(text).ok_or_else(not_found)?;
            return match store.resolve(principal, handle.as_str()).await.map_err(BucketError::Store)? {
                Some(_) => Ok(CallBucket::of_handle(principal_arc, handle)),
                None => Err(not_found()),
            };
        }
        Some(_) => return Err(BucketError::NotAString),
    }
    match session.handle(store, principal).await.map_err(BucketError::Store)? {
        Some(handle) => Ok(CallBucket::of_handle(principal_arc, handle)),
        None => Ok(CallBucket::default_of(principal_arc)),
    }
}

/// A passed handle as error texts show it: a prefix, never the whole secret.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(9).collect();
    if cut.len() < text.len() { format!("{cut}…") } else { cut }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Retention, SqliteStore};

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("omr-bucket-{}-{}", std::process::id(), crate::db::random_hex(6).unwrap()));
        let store: Store = Arc::new(SqliteStore::open(&dir.join("state.sqlite"), Retention::default()).unwrap());
        (store, dir)
    }

    #[tokio::test]
    async fn handles_resolve_only_for_their_principal() {
        let (store, dir) = store();
        let stateless = Session::stateless("x");
        let mine = store.mint_handle("tenant:a").await.unwrap();
        let arg = Value::from(mine.as_str());
        let b = resolve(&store, "tenant:a", &stateless, Some(&arg)).await.unwrap();
        assert_eq!(b.key, BucketKey::handle(&mine));
        let err = resolve(&store, "tenant:b", &stateless, Some(&arg)).await.unwrap_err();
        assert!(matches!(err, BucketError::NotFound { .. }), "{err:?}");
        assert!(!err.to_string().contains(&mine.as_str()[9..]), "the error never repeats the whole handle");
        assert!(err.to_string().starts_with("sessionId not found"), "{err}");
        let garbage = Value::from("budget_123");
        assert!(matches!(resolve(&store, "tenant:a", &stateless, Some(&garbage)).await, Err(BucketError::NotFound { .. })));
        assert_eq!(resolve(&store, "tenant:a", &stateless, Some(&Value::from(3))).await, Err(BucketError::NotAString));
        let default = resolve(&store, "tenant:a", &stateless, None).await.unwrap();
        assert_eq!(default, CallBucket::default_of(Arc::from("tenant:a")));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_legacy_session_keeps_one_handle() {
        let (store, dir) = store();
        let session = Session::legacy("stdio-1");
        let first = resolve(&store, "operator:local", &session, None).await.unwrap();
        let second = resolve(&store, "operator:local", &session, None).await.unwrap();
        assert!(first.handle.is_some());
        assert_eq!(first, second);
        let _ = std::fs::remove_dir_all(dir);
    }
}
