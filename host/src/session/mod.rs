//! Per-MCP-session state the host owns (docs/architecture.md#state-model): when the session
//! started, and small values tools keep between calls. Stdio has one session
//! for the process; Streamable HTTP one per `Mcp-Session-Id`.
//!
//! Keys that the host owns are read-only to tools; `budget-guard` may be set
//! only by a call that holds `write:budget`. Every other key is private to the
//! tool that wrote it, so one tool (or plugin) cannot read or poison another's.

pub mod budget;
pub mod ledger;

use crate::capability::{CapabilitySet, Scope};
use ledger::{LedgerEntry, SharedEntry};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::SystemTime;

// The host-owned keys, named as the tools name them (the contract's).
pub use omniroute_tool_contract::session_keys::{
    BUDGET_GUARD as KEY_BUDGET_GUARD, LEDGER as KEY_LEDGER, LEDGER_ANNOTATION as KEY_LEDGER_ANNOTATION,
    REQUEST_PREFIX as KEY_REQUEST_PREFIX, SESSION_START as KEY_SESSION_START,
};

/// Largest value a tool may store, and most keys per tool: session state is
/// for small facts, not a database.
const MAX_VALUE_BYTES: usize = 64 * 1024;
const MAX_KEYS_PER_TOOL: usize = 64;

/// State of one MCP session.
#[derive(Debug)]
pub struct Session {
    id: String,
    started: SystemTime,
    started_iso: String,
    inner: Mutex<SessionData>,
}

#[derive(Debug, Default)]
struct SessionData {
    budget_guard: Option<String>,
    ledger: Vec<SharedEntry>,
    /// (tool name, key) -> value
    private: HashMap<(String, String), String>,
}

/// Why a `session.set` was refused; shown to the tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("\"{0}\" is owned by the host and read-only to tools")]
    ReadOnly(String),
    #[error("setting the budget guard needs the write:budget scope")]
    NeedsWriteBudget,
    #[error("session values are limited to {MAX_VALUE_BYTES} bytes")]
    TooLarge,
    #[error("a tool may keep at most {MAX_KEYS_PER_TOOL} session keys")]
    TooManyKeys,
}


impl Session {
    /// A session starting now; `id` names it in the audit log.
    pub fn new(id: impl Into<String>) -> Self {
        let started = SystemTime::now();
        Self {
            id: id.into(),
            started,
            started_iso: iso8601(started),
            inner: Mutex::new(SessionData::default()),
        }
    }

    /// The session's id (HTTP: the `Mcp-Session-Id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When `initialize` (or the process, for stdio) started the session.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Sets the budget guard on the host's behalf (a tenant's default budget).
    pub fn set_host_budget_guard(&self, json: String) {
        self.lock().budget_guard = Some(json);
    }

    /// Reads a key on behalf of `tool`.
    pub fn get(&self, tool: &str, key: &str) -> Option<String> {
        match key {
            KEY_SESSION_START => Some(serde_json::Value::from(self.started_iso.clone()).to_string()),
            KEY_BUDGET_GUARD => self.lock().budget_guard.clone(),
            KEY_LEDGER => Some(self.ledger_json()),
            _ => self.lock().private.get(&(tool.to_owned(), key.to_owned())).cloned(),
        }
    }

    /// Writes a key on behalf of `tool`, whose call holds `caps`.
    pub fn set(&self, tool: &str, caps: &CapabilitySet, key: &str, value: String) -> Result<(), SessionError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(SessionError::TooLarge);
        }
        match key {
            KEY_SESSION_START | KEY_LEDGER => Err(SessionError::ReadOnly(key.to_owned())),
            _ if key.starts_with(KEY_REQUEST_PREFIX) => Err(SessionError::ReadOnly(key.to_owned())),
            KEY_BUDGET_GUARD => {
                if !caps.has(Scope::WriteBudget) {
                    return Err(SessionError::NeedsWriteBudget);
                }
                self.lock().budget_guard = Some(value);
                Ok(())
            }
            _ => {
                let mut data = self.lock();
                let slot = (tool.to_owned(), key.to_owned());
                let count = data.private.keys().filter(|(t, _)| t == tool).count();
                if !data.private.contains_key(&slot) && count >= MAX_KEYS_PER_TOOL {
                    return Err(SessionError::TooManyKeys);
                }
                data.private.insert(slot, value);
                Ok(())
            }
        }
    }

    /// Appends a brokered completion to the ledger.
    pub fn record(&self, entry: LedgerEntry) -> SharedEntry {
        let shared = Arc::new(std::sync::Mutex::new(entry));
        self.lock().ledger.push(shared.clone());
        shared
    }

    /// The ledger as a JSON array, oldest first.
    pub fn ledger_json(&self) -> String {
        let entries: Vec<LedgerEntry> = self.lock().ledger.iter().map(|e| ledger::lock(e).clone()).collect();
        serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Σ of the known costs of the session's completions (`spent`, docs/architecture.md#ledger).
    pub fn spent(&self) -> f64 {
        self.lock().ledger.iter().filter_map(|e| ledger::lock(e).cost).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionData> {
        // A panic while holding this lock cannot leave the maps half-updated
        // (single inserts), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_per_tool() {
        let s = Session::new("test");
        let caps = CapabilitySet::default();
        s.set("a", &caps, "k", "1".into()).unwrap();
        assert_eq!(s.get("a", "k").as_deref(), Some("1"));
        assert_eq!(s.get("b", "k"), None);
    }

    #[test]
    fn host_keys_are_guarded() {
        let s = Session::new("test");
        let none = CapabilitySet::default();
        assert_eq!(
            s.set("a", &none, KEY_SESSION_START, "x".into()),
            Err(SessionError::ReadOnly(KEY_SESSION_START.into()))
        );
        assert_eq!(
            s.set("a", &none, KEY_BUDGET_GUARD, "{}".into()),
            Err(SessionError::NeedsWriteBudget)
        );
        assert_eq!(
            s.set("a", &none, "request:abc", "{}".into()),
            Err(SessionError::ReadOnly("request:abc".into()))
        );
        let budget = CapabilitySet::new([Scope::WriteBudget]);
        s.set("set_budget", &budget, KEY_BUDGET_GUARD, "{\"maxCost\":1}".into()).unwrap();
        assert_eq!(s.get("other", KEY_BUDGET_GUARD).as_deref(), Some("{\"maxCost\":1}"));
        let start = s.get("x", KEY_SESSION_START).unwrap();
        assert!(start.starts_with('"') && start.ends_with("Z\""), "{start}");
    }

    #[test]
    fn limits() {
        let s = Session::new("test");
        let caps = CapabilitySet::default();
        assert_eq!(s.set("a", &caps, "k", "x".repeat(MAX_VALUE_BYTES + 1)), Err(SessionError::TooLarge));
        for i in 0..MAX_KEYS_PER_TOOL {
            s.set("a", &caps, &format!("k{i}"), "v".into()).unwrap();
        }
        assert_eq!(s.set("a", &caps, "one-more", "v".into()), Err(SessionError::TooManyKeys));
        s.set("a", &caps, "k0", "overwrite".into()).unwrap();
    }
}
