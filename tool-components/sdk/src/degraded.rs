//! The `degraded` list: tools that combine several gateway
//! sources keep going when one fails, and say exactly which one and why.

use serde_json::{Value, json};

use crate::failure::GatewayFailure;

/// Collects the sources that failed during one call, in the order they were
/// looked at, and renders them as `[{source, error}]`.
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
    failures: Vec<GatewayFailure>,
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
        self.failures.push(failure);
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    /// The recorded failures, in order.
    pub fn failures(&self) -> &[GatewayFailure] {
        &self.failures
    }

    /// `[{"source": "<METHOD> <path>", "error": "<text>"}]`, always an array
    /// (empty when everything succeeded).
    pub fn to_value(&self) -> Value {
        Value::Array(
            self.failures
                .iter()
                .map(|f| json!({ "source": f.source, "error": f.message }))
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
    }
}
