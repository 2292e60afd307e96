//! The `session` import: per-session state through [`Session`], the routing
//! index behind the read-only `request:<id>` keys, and annotations of the
//! completions this call sent.

use super::{CallCompletions, lock};
use crate::capability::CapabilitySet;
use crate::runtime::bindings::session;
use crate::session::ledger::{self, Annotation, RoutingIndex};
use crate::session::{KEY_LEDGER_ANNOTATION, KEY_REQUEST_PREFIX, Session};
use std::sync::Arc;

/// The per-call state of the `session` import.
pub(crate) struct SessionState {
    pub(crate) tool: Arc<str>,
    pub(crate) caller: Arc<str>,
    pub(crate) caps: CapabilitySet,
    pub(crate) session: Arc<Session>,
    pub(crate) routing_index: Arc<RoutingIndex>,
    pub(crate) completions: CallCompletions,
}

impl SessionState {
    /// Applies `ledger-annotation` to a completion this call sent: by request
    /// id, or the newest one without an id (a failed send).
    fn annotate(&mut self, value: &str) -> Result<(), String> {
        let note: Annotation = serde_json::from_str(value).map_err(|e| {
            format!("ledger-annotation must be a JSON object with requestId, combo, role, fallbacksTriggered, degradedFrom: {e}")
        })?;
        let completions = lock(&self.completions);
        let target = completions.iter().rev().find(|e| {
            let entry = ledger::lock(e);
            match &note.request_id {
                Some(id) => entry.request_id.as_deref() == Some(id.as_str()),
                None => entry.request_id.is_none(),
            }
        });
        match target {
            Some(entry) => {
                ledger::lock(entry).annotate(&note);
                Ok(())
            }
            None => Err("no completion sent by this call matches that requestId".to_owned()),
        }
    }
}

impl session::Host for SessionState {
    async fn get(&mut self, key: String) -> Option<String> {
        if let Some(id) = key.strip_prefix(KEY_REQUEST_PREFIX) {
            let entry = self.routing_index.get(&self.caller, id)?;
            return serde_json::to_string(&entry).ok();
        }
        self.session.get(&self.tool, &key)
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), String> {
        if key == KEY_LEDGER_ANNOTATION {
            return self.annotate(&value);
        }
        self.session.set(&self.tool, &self.caps, &key, value).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::session::Host;

    fn state() -> SessionState {
        SessionState {
            tool: Arc::from("t"),
            caller: Arc::from("c"),
            caps: CapabilitySet::default(),
            session: Arc::new(Session::new("s")),
            routing_index: Arc::new(RoutingIndex::new(4)),
            completions: Default::default(),
        }
    }

    #[tokio::test]
    async fn host_owned_request_keys_cannot_be_set() {
        let mut s = state();
        let err = s.set("request:abc".into(), "{}".into()).await.unwrap_err();
        assert!(err.contains("read-only"), "{err}");
        assert_eq!(s.get("request:abc".into()).await, None, "nothing was stored under the key");
        s.set("mine".into(), "1".into()).await.unwrap();
        assert_eq!(s.get("mine".into()).await.as_deref(), Some("1"));
    }
}
