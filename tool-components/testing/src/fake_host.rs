//! [`FakeHost`]: the gateway, session and progress of one native test
//! call, with the in-memory [`MemorySession`] and [`RecordingProgress`],
//! and small helpers for reading tool outputs.

use std::cell::RefCell;
use std::collections::HashMap;

use omniroute_tool_sdk::{Ctx, Progress, Session, Tool, call_json};
use serde_json::Value;

use crate::checks::assert_output_valid;
use crate::fake_gateway::FakeGateway;

/// An in-memory [`Session`].
#[derive(Debug, Default)]
pub struct MemorySession {
    values: RefCell<HashMap<String, String>>,
    refused: Vec<String>,
}

impl MemorySession {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pre-sets a key, e.g. a host-owned `ledger`.
    pub fn with(self, key: &str, value: &str) -> Self {
        self.values
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Makes every `set` of `key` fail, as the host refuses writes to its
    /// own keys or past its size limits.
    pub fn refusing(mut self, key: &str) -> Self {
        self.refused.push(key.to_string());
        self
    }
}

impl Session for MemorySession {
    fn get(&self, key: &str) -> Option<String> {
        self.values.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        if self.refused.iter().any(|k| k == key) {
            return Err(format!("\"{key}\" is read-only to tools"));
        }
        self.values
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
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
        let s = MemorySession::new().with("ledger", "[]");
        assert_eq!(s.get_json("ledger"), Some(json!([])));
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
        let s = MemorySession::new().refusing("ledger");
        assert!(s.set("ledger", "[]").is_err());
        assert_eq!(s.get("ledger"), None);
        assert!(s.set("other", "1").is_ok());
    }
}
