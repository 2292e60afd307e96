//! The completion ledger (docs/architecture.md#ledger): one entry per `POST /v1/chat/completions`
//! the host brokered in a session, success or failure. The host fills every
//! field it can see on the wire (request id, provider, model, cost, tokens,
//! latency, cache, status), so no tool can under-report what was spent; tools
//! may only add the facts only they know (combo, role, fallbacks, degrade).

use crate::gateway::{GatewayError, GatewayRequest, GatewayResponse};
use omniroute_tool_contract::completion::{COMPLETIONS, Routing};
pub use omniroute_tool_contract::ledger::{Annotation, LedgerEntry};
// The routing index (request id -> entry) is the store's `find_request`.
use serde_json::Value;
use std::time::SystemTime;

/// Whether a request is a chat completion (the requests the ledger records).
pub fn is_completion(req: &GatewayRequest) -> bool {
    req.method == crate::capability::Method::Post && req.path == COMPLETIONS
}

/// Building a ledger entry from what crossed the wire (the entry's type is
/// the contract's, shared with the tools that read it).
pub trait FromExchange {
    /// The entry of one brokered completion: the gateway's routing headers,
    /// the status, the body's `usage` when a success lacks token headers,
    /// and why it failed.
    fn from_exchange(
        origin: &str,
        req: &GatewayRequest,
        result: &Result<GatewayResponse, GatewayError>,
        sent_at: SystemTime,
        received_at: SystemTime,
    ) -> Self;
}

impl FromExchange for LedgerEntry {
    fn from_exchange(
        origin: &str,
        req: &GatewayRequest,
        result: &Result<GatewayResponse, GatewayError>,
        sent_at: SystemTime,
        received_at: SystemTime,
    ) -> Self {
        let requested_model = req
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_owned));
        let (routing, status, error) = match result {
            Err(e) => (Routing::default(), None, Some(transport_error(e))),
            Ok(resp) => {
                let success = (200..300).contains(&resp.status);
                let body: Option<Value> = serde_json::from_str(&resp.body).ok();
                let mut routing = Routing::from_headers(&resp.headers);
                // Headers are the gateway's accounting; body usage only when they are absent.
                if let (true, Some(body)) = (success, &body) {
                    routing.fill_tokens_from_usage(body);
                }
                let error = (!success).then(|| response_error(resp.status, body.as_ref(), &resp.body));
                (routing, Some(resp.status), error)
            }
        };
        let mut entry = LedgerEntry {
            request_id: routing.request_id,
            sent_at: super::iso8601(sent_at),
            received_at: super::iso8601(received_at),
            origin: origin.to_owned(),
            requested_model,
            combo: None,
            role: None,
            status,
            success: status.is_some_and(|s| (200..300).contains(&s)),
            provider: routing.provider,
            model: routing.model,
            cost: routing.cost,
            tokens_in: routing.tokens_in,
            tokens_out: routing.tokens_out,
            latency_ms: routing.latency_ms,
            cache: routing.cache,
            fallbacks_triggered: None,
            degraded_from: None,
            error,
        };
        bound_strings(&mut entry);
        entry
    }
}

/// Longest text kept in a ledger field (model, provider, combo, role, ...):
/// the ledger lives as long as its session, and a client chooses some of
/// these strings (the requested model), so none may grow without bound.
pub const MAX_LEDGER_TEXT_CHARS: usize = 256;
/// Longest error text kept in a ledger entry.
pub const MAX_LEDGER_ERROR_CHARS: usize = 1024;

/// Cuts every text field of `entry` to its cap (on a character boundary,
/// marked with `…`). Applied to what the wire gave and to tool annotations.
pub fn bound_strings(entry: &mut LedgerEntry) {
    let short = [
        &mut entry.request_id,
        &mut entry.requested_model,
        &mut entry.combo,
        &mut entry.role,
        &mut entry.provider,
        &mut entry.model,
        &mut entry.cache,
        &mut entry.degraded_from,
    ];
    for field in short {
        if let Some(text) = field.as_mut() {
            cut(text, MAX_LEDGER_TEXT_CHARS);
        }
    }
    cut(&mut entry.origin, MAX_LEDGER_TEXT_CHARS);
    if let Some(text) = entry.error.as_mut() {
        cut(text, MAX_LEDGER_ERROR_CHARS);
    }
}

fn cut(text: &mut String, max_chars: usize) {
    if let Some((at, _)) = text.char_indices().nth(max_chars) {
        text.truncate(at);
        text.push('…');
    }
}

fn transport_error(e: &GatewayError) -> String {
    match e {
        GatewayError::Timeout(s) => format!("timeout after {s} s"),
        other => other.to_string(),
    }
}

/// `error.message` of a JSON error body, else the status and a short excerpt.
fn response_error(status: u16, body: Option<&Value>, raw: &str) -> String {
    let message = body.and_then(|b| {
        let err = b.get("error")?;
        err.get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .map(str::to_owned)
    });
    match message {
        Some(m) => format!("HTTP {status}: {m}"),
        None => {
            let excerpt: String = raw.chars().take(200).collect();
            if excerpt.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {excerpt}") }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_chosen_strings_are_capped() {
        let huge = "é".repeat(super::MAX_LEDGER_TEXT_CHARS * 40);
        let req = GatewayRequest {
            method: crate::capability::Method::Post,
            path: COMPLETIONS.to_owned(),
            query: vec![],
            body: Some(serde_json::json!({ "model": huge, "messages": [] }).to_string()),
        };
        let result: Result<GatewayResponse, GatewayError> = Err(GatewayError::Refused("x".repeat(100_000)));
        let entry = LedgerEntry::from_exchange(&"t".repeat(10_000), &req, &result, SystemTime::now(), SystemTime::now());
        let model = entry.requested_model.expect("the requested model is kept");
        assert_eq!(model.chars().count(), super::MAX_LEDGER_TEXT_CHARS + 1);
        assert!(model.ends_with('…'));
        assert_eq!(entry.origin.chars().count(), super::MAX_LEDGER_TEXT_CHARS + 1);
        assert_eq!(entry.error.expect("an error").chars().count(), super::MAX_LEDGER_ERROR_CHARS + 1);
    }

    use super::*;
    use crate::capability::Method;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../tool-components/testing/fixtures/gateway/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn exchange(name: &str) -> (GatewayRequest, Result<GatewayResponse, GatewayError>) {
        let f = fixture(name);
        let req = GatewayRequest {
            method: Method::Post,
            path: "/v1/chat/completions".into(),
            query: vec![],
            body: Some(f["request"]["body"].to_string()),
        };
        let headers = f["headers"]
            .as_object()
            .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        let resp = GatewayResponse {
            status: f["status"].as_u64().unwrap() as u16,
            headers,
            body: f["body"].to_string(),
        };
        (req, Ok(resp))
    }

    #[test]
    fn priced_completion_is_recorded_from_headers() {
        let (req, resp) = exchange("chat-completion-priced.json");
        let now = SystemTime::now();
        let e = LedgerEntry::from_exchange("omniroute_route_request", &req, &resp, now, now);
        assert!(e.success);
        assert_eq!(e.status, Some(200));
        assert_eq!(e.cost, Some(0.0000285));
        assert_eq!(e.tokens_in, Some(7), "headers win over the body's 2007");
        assert_eq!(e.tokens_out, Some(3));
        assert_eq!(e.model.as_deref(), Some("mock-small"));
        assert!(e.provider.as_deref().unwrap().starts_with("openai-compatible-chat-"));
        assert_eq!(e.request_id.as_deref(), Some("0a95b984-132a-4f78-a212-d46c7fff82ad"));
        assert_eq!(e.requested_model.as_deref(), Some("coding-fast"));
        assert_eq!(e.cache.as_deref(), Some("MISS"));
        assert_eq!(e.error, None);
    }

    #[test]
    fn failures_carry_no_cost_and_a_reason() {
        let (req, resp) = exchange("chat-error-breaker-open.json");
        let now = SystemTime::now();
        let e = LedgerEntry::from_exchange("omniroute_route_request", &req, &resp, now, now);
        assert!(!e.success);
        assert_eq!(e.status, Some(503));
        assert_eq!(e.cost, None);
        assert!(e.error.as_deref().unwrap().contains("circuit breaker is open"), "{:?}", e.error);
        let e = LedgerEntry::from_exchange("t", &req, &Err(GatewayError::Timeout(120)), now, now);
        assert_eq!(e.status, None);
        assert_eq!(e.error.as_deref(), Some("timeout after 120 s"));
    }

    #[test]
    fn serialises_with_the_spec_keys_in_order() {
        let (req, resp) = exchange("chat-completion-combo.json");
        let now = SystemTime::now();
        let e = LedgerEntry::from_exchange("o", &req, &resp, now, now);
        let v = serde_json::to_value(&e).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "requestId", "sentAt", "receivedAt", "origin", "requestedModel", "combo", "role", "status",
                "success", "provider", "model", "cost", "tokensIn", "tokensOut", "latencyMs", "cache",
                "fallbacksTriggered", "degradedFrom", "error"
            ]
        );
    }
}
