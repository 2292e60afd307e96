//! [`FakeHost`]: the gateway, session and progress of one native test
//! call, with the in-memory [`MemorySession`] and [`RecordingProgress`],
//! and small helpers for reading tool outputs.

use std::cell::RefCell;
use std::collections::HashMap;

use omniroute_tool_sdk::ledger::{Annotation, BudgetGuard, LedgerEntry};
use omniroute_tool_sdk::{Ctx, Progress, Session, Tool, call_json};
use serde_json::Value;

use crate::checks::assert_output_valid;
use crate::fake_gateway::FakeGateway;

/// An in-memory [`Session`]: the host-owned state (start, ledger, routing
/// index, guard, handle) seeded by the test in the host's JSON shapes, the
/// tool's writes (guard, annotations, private values) recorded for asserts.
#[derive(Debug, Default)]
pub struct MemorySession {
    values: RefCell<HashMap<String, String>>,
    refused: Vec<String>,
    start: Option<String>,
    ledger: Vec<LedgerEntry>,
    requests: Vec<LedgerEntry>,
    guard: RefCell<Option<BudgetGuard>>,
    refuse_guard: bool,
    handle: Option<String>,
    annotations: RefCell<Vec<Annotation>>,
    refuse_annotations: bool,
}

/// `value` as `T`, or a panic that names what the test passed.
fn parse<T: serde::de::DeserializeOwned>(what: &str, value: &Value) -> T {
    T::deserialize(value).unwrap_or_else(|e| panic!("{what} is not in the host's shape: {e}: {value}"))
}

impl MemorySession {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pre-sets a private value of the tool.
    pub fn with(self, key: &str, value: &str) -> Self {
        self.values
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        self
    }

    /// The session start the host reports (ISO 8601).
    pub fn with_start(mut self, iso: &str) -> Self {
        self.start = Some(iso.to_string());
        self
    }

    /// The session's ledger: a JSON array of entries in the host's shape
    /// (see [`crate::ledger_entry`]).
    pub fn with_ledger(mut self, entries: &Value) -> Self {
        self.ledger = parse("the ledger", entries);
        self
    }

    /// An entry of the routing index (found by its `requestId`).
    pub fn with_request(mut self, entry: &Value) -> Self {
        self.requests.push(parse("the routing index entry", entry));
        self
    }

    /// The session's budget guard (`set_budget_guard`'s JSON shape).
    pub fn with_guard(self, guard: &Value) -> Self {
        *self.guard.borrow_mut() = Some(parse("the budget guard", guard));
        self
    }

    /// The handle the host names this session with.
    pub fn with_handle(mut self, handle: &str) -> Self {
        self.handle = Some(handle.to_string());
        self
    }

    /// Makes every `set` of the private `key` fail, as the host does past its limits.
    pub fn refusing(mut self, key: &str) -> Self {
        self.refused.push(key.to_string());
        self
    }

    /// Refuses `set_budget_guard`, as the host does without `write:budget`.
    pub fn refusing_guard(mut self) -> Self {
        self.refuse_guard = true;
        self
    }

    /// Refuses annotations, as the host does for a completion the call did not send.
    pub fn refusing_annotations(mut self) -> Self {
        self.refuse_annotations = true;
        self
    }

    /// The guard as stored now, in its JSON shape.
    pub fn guard_json(&self) -> Option<Value> {
        self.guard.borrow().as_ref().map(BudgetGuard::to_value)
    }

    /// The annotations the tool made, in order.
    pub fn annotations(&self) -> Vec<Annotation> {
        self.annotations.borrow().clone()
    }

    /// The newest annotation, in its JSON shape.
    pub fn last_annotation_json(&self) -> Option<Value> {
        self.annotations.borrow().last().and_then(|a| serde_json::to_value(a).ok())
    }
}

impl Session for MemorySession {
    fn get(&self, key: &str) -> Option<String> {
        self.values.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        if self.refused.iter().any(|k| k == key) {
            return Err(format!("\"{key}\" is refused by this test's host"));
        }
        self.values
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn session_start(&self) -> Option<String> {
        self.start.clone()
    }

    fn ledger(&self) -> Vec<LedgerEntry> {
        self.ledger.clone()
    }

    fn find_request(&self, request_id: &str) -> Option<LedgerEntry> {
        self.requests
            .iter()
            .rev()
            .find(|e| e.request_id.as_deref() == Some(request_id))
            .cloned()
    }

    fn budget_guard(&self) -> Option<BudgetGuard> {
        self.guard.borrow().clone()
    }

    fn set_budget_guard(&self, guard: &BudgetGuard) -> Result<(), String> {
        if self.refuse_guard {
            return Err("setting the budget guard needs the write:budget scope".into());
        }
        *self.guard.borrow_mut() = Some(guard.clone());
        Ok(())
    }

    fn handle(&self) -> Option<String> {
        self.handle.clone()
    }

    fn annotate(&self, note: &Annotation) -> Result<(), String> {
        if self.refuse_annotations {
            return Err("no completion sent by this call matches that requestId".into());
        }
        self.annotations.borrow_mut().push(note.clone());
        Ok(())
    }
}

/// One progress report: `(done, total, message)`.
pub type ProgressReport = (f64, Option<f64>, Option<String>);

/// A [`Progress`] that records every report.
#[derive(Debug, Default)]
pub struct RecordingProgress {
    reports: RefCell<Vec<ProgressReport>>,
}

impl RecordingProgress {
    pub fn reports(&self) -> Vec<ProgressReport> {
        self.reports.borrow().clone()
    }
}

impl Progress for RecordingProgress {
    fn report(&self, done: f64, total: Option<f64>, message: Option<&str>) {
        self.reports
            .borrow_mut()
            .push((done, total, message.map(str::to_string)));
    }
}

/// A fake host: gateway, session and progress for one test.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub gateway: FakeGateway,
    pub session: MemorySession,
    pub progress: RecordingProgress,
}

impl FakeHost {
    pub fn new(gateway: FakeGateway) -> Self {
        FakeHost {
            gateway,
            ..Default::default()
        }
    }

    /// Replaces the session (e.g. one with a host-owned `ledger`).
    pub fn with_session(mut self, session: MemorySession) -> Self {
        self.session = session;
        self
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            gateway: &self.gateway,
            session: &self.session,
            progress: &self.progress,
        }
    }

    /// Runs `T` through the same string-in, string-out path as the WIT
    /// `call` export, and parses the output back. A successful output is
    /// also checked against `T`'s declared output schema (MCP clients
    /// validate `structuredContent` against it), panicking on a mismatch.
    pub fn call<T: Tool>(&self, input: Value) -> Result<Value, String> {
        let output = call_json::<T>(&input.to_string(), &self.ctx())?;
        let output: Value = serde_json::from_str(&output).expect("call_json returns JSON");
        assert_output_valid::<T>(&output);
        Ok(output)
    }
}

/// The `source` of each `degraded` entry of a tool output, in order.
pub fn degraded_sources(output: &Value) -> Vec<String> {
    output["degraded"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|d| d["source"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The keys of a JSON object, in order (for key-order assertions).
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_and_progress_fakes() {
        let s = MemorySession::new().with_ledger(&json!([crate::ledger_entry(json!({"requestId": "r1"}))]));
        assert_eq!(s.ledger().len(), 1);
        s.set_json("k", &json!({"a":1})).unwrap();
        assert_eq!(s.get("k").as_deref(), Some(r#"{"a":1}"#));
        let p = RecordingProgress::default();
        p.report(1.0, Some(2.0), Some("half"));
        assert_eq!(
            p.reports(),
            vec![(1.0, Some(2.0), Some("half".to_string()))]
        );
    }

    #[test]
    fn refusing_session() {
        let s = MemorySession::new().refusing("mine").refusing_guard();
        assert!(s.set("mine", "[]").is_err());
        assert_eq!(s.get("mine"), None);
        assert!(s.set("other", "1").is_ok());
        let guard = BudgetGuard::new(1.0, omniroute_tool_sdk::budget::GuardAction::Block, None, 0);
        assert!(s.set_budget_guard(&guard).is_err());
        assert_eq!(s.guard_json(), None);
    }
}
