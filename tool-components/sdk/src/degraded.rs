//! The `degraded` list: tools that combine several gateway sources keep
//! going when one fails, and say exactly which one and why. It also names
//! the values a source that did answer left out, so every `null` a tool
//! returns for something it could not learn has its reason beside it.

use serde_json::{Value, json};

use crate::failure::GatewayFailure;

/// Collects the sources that failed (and the values an answering source
/// left out) during one call, in the order they were looked at, and renders
/// them as `[{source, error}]`.
///
/// ```
/// use omniroute_tool_sdk::{Degraded, Gateway};
/// use omniroute_tool_testing::FakeGateway;
/// let gw = FakeGateway::new(); // answers nothing: every request fails
/// let mut degraded = Degraded::new();
/// let health = degraded.take(gw.get_json("/api/monitoring/health", &[]));
/// assert!(health.is_none());
/// assert_eq!(degraded.to_value()[0]["source"], "GET /api/monitoring/health");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Degraded {
    entries: Vec<(String, String)>,
}

impl Degraded {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value on success; on failure records it and returns `None`, so a
    /// tool can write `let x = degraded.take(...)` and fall back to null/[].
    pub fn take<T>(&mut self, result: Result<T, GatewayFailure>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(failure) => {
                self.push(failure);
                None
            }
        }
    }

    /// Records one failure.
    pub fn push(&mut self, failure: GatewayFailure) {
        self.entries.push((failure.source, failure.message));
    }

    /// Records that `source` (`"<METHOD> <path>"`) answered without `what`
    /// (e.g. `` `status` ``), so `output` (the output key) is `null`.
    pub fn missing(&mut self, source: &str, what: &str, output: &str) {
        self.entries.push((
            source.to_string(),
            format!("the answer has no {what}; {output} is null"),
        ));
    }

    /// Records why `source` was not read, or what it left unknown, in words.
    pub fn note(&mut self, source: &str, error: impl Into<String>) {
        self.entries.push((source.to_string(), error.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many sources failed or left something out so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `[{"source": "<METHOD> <path>", "error": "<text>"}]`, always an array
    /// (empty when everything succeeded).
    pub fn to_value(&self) -> Value {
        Value::Array(
            self.entries
                .iter()
                .map(|(source, error)| json!({ "source": source, "error": error }))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{GatewayError, Request};

    #[test]
    fn empty_is_an_empty_array() {
        assert_eq!(Degraded::new().to_value(), json!([]));
    }

    #[test]
    fn keeps_order_and_shape() {
        let mut d = Degraded::new();
        let a = Request::get("/api/rate-limits");
        let b = Request::get("/api/cache").query("x", "1");
        assert_eq!(d.take(Ok::<_, GatewayFailure>(1)), Some(1));
        assert_eq!(
            d.take::<()>(Err(GatewayFailure::from_error(
                &a,
                &GatewayError::Timeout(15)
            ))),
            None
        );
        d.push(GatewayFailure::from_status(&b, 503, "down"));
        assert_eq!(
            d.to_value().to_string(),
            r#"[{"source":"GET /api/rate-limits","error":"OmniRoute API timeout after 15 s: GET /api/rate-limits"},{"source":"GET /api/cache","error":"OmniRoute API error [503]: <non-JSON body, 4 bytes>"}]"#
        );
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn names_what_an_answer_left_out() {
        let mut d = Degraded::new();
        d.missing("GET /api/monitoring/health", "`status`", "status");
        assert_eq!(
            d.to_value(),
            json!([{"source": "GET /api/monitoring/health", "error": "the answer has no `status`; status is null"}])
        );
    }
}
