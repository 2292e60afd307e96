//! The completion ledger (spec C.0.7): one entry per `POST /v1/chat/completions`
//! the host brokered in a session, success or failure. The host fills every
//! field it can see on the wire (request id, provider, model, cost, tokens,
//! latency, cache, status), so no tool can under-report what was spent; tools
//! may only add the facts only they know (combo, role, fallbacks, degrade).

use crate::gateway::{GatewayError, GatewayRequest, GatewayResponse};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One brokered completion. Serialises with the spec's keys, in its order
/// (and reads back from the state store).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub request_id: Option<String>,
    pub sent_at: String,
    pub received_at: String,
    /// The tool that sent it (`omniroute_route_request`, `omniroute_test_combo`, a plugin).
    pub origin: String,
    pub requested_model: Option<String>,
    pub combo: Option<String>,
    pub role: Option<String>,
    /// HTTP status, or null when no response came back.
    pub status: Option<u16>,
    pub success: bool,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub cost: Option<f64>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub latency_ms: Option<f64>,
    pub cache: Option<String>,
    pub fallbacks_triggered: Option<u64>,
    pub degraded_from: Option<String>,
    pub error: Option<String>,
}

/// A shared, annotatable ledger entry (the session ledger and the routing
/// index hold the same entry).
pub type SharedEntry = Arc<Mutex<LedgerEntry>>;

/// Whether a request is a chat completion (the requests the ledger records).
pub fn is_completion(req: &GatewayRequest) -> bool {
    req.method == crate::capability::Method::Post && req.path == "/v1/chat/completions"
}

impl LedgerEntry {
    /// Builds the entry from what crossed the wire.
    pub fn from_exchange(
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
        let mut entry = LedgerEntry {
            request_id: None,
            sent_at: super::iso8601(sent_at),
            received_at: super::iso8601(received_at),
            origin: origin.to_owned(),
            requested_model,
            combo: None,
            role: None,
            status: None,
            success: false,
            provider: None,
            model: None,
            cost: None,
            tokens_in: None,
            tokens_out: None,
            latency_ms: None,
            cache: None,
            fallbacks_triggered: None,
            degraded_from: None,
            error: None,
        };
        match result {
            Err(e) => entry.error = Some(transport_error(e)),
            Ok(resp) => {
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                };
                let number = |name: &str| header(name).and_then(|v| v.parse::<f64>().ok()).filter(|n| n.is_finite());
                let count = |name: &str| header(name).and_then(|v| v.parse::<u64>().ok());
                let body: Option<Value> = serde_json::from_str(&resp.body).ok();
                let usage = |key: &str| {
                    body.as_ref()
                        .and_then(|b| b.get("usage"))
                        .and_then(|u| u.get(key))
                        .and_then(Value::as_u64)
                };
                entry.status = Some(resp.status);
                entry.success = (200..300).contains(&resp.status);
                entry.request_id = header("x-request-id");
                entry.provider = header("x-omniroute-provider");
                entry.model = header("x-omniroute-model");
                entry.cost = number("x-omniroute-response-cost");
                entry.latency_ms = number("x-omniroute-latency-ms");
                entry.cache = header("x-omniroute-cache");
                // Headers are the gateway's accounting; body usage only when they are absent.
                entry.tokens_in = count("x-omniroute-tokens-in").or_else(|| if entry.success { usage("prompt_tokens") } else { None });
                entry.tokens_out = count("x-omniroute-tokens-out").or_else(|| if entry.success { usage("completion_tokens") } else { None });
                if !entry.success {
                    entry.error = Some(response_error(resp.status, body.as_ref(), &resp.body));
                }
            }
        }
        entry
    }

    /// Applies a tool's annotation; only the fields a tool may know.
    pub fn annotate(&mut self, note: &Annotation) {
        if let Some(combo) = &note.combo {
            self.combo = Some(combo.clone());
        }
        if let Some(role) = &note.role {
            self.role = Some(role.clone());
        }
        if let Some(n) = note.fallbacks_triggered {
            self.fallbacks_triggered = Some(n);
        }
        if let Some(from) = &note.degraded_from {
            self.degraded_from = Some(from.clone());
        }
    }
}

/// What a tool may add to its own ledger entry (`session.set("ledger-annotation", …)`).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub request_id: Option<String>,
    pub combo: Option<String>,
    pub role: Option<String>,
    pub fallbacks_triggered: Option<u64>,
    pub degraded_from: Option<String>,
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

/// The process-wide index from `x-request-id` to ledger entry, across
/// sessions, bounded (spec C.0.7: at least the last 10,000).
#[derive(Debug)]
pub struct RoutingIndex {
    capacity: usize,
    inner: Mutex<IndexData>,
}

#[derive(Debug, Default)]
struct IndexData {
    order: VecDeque<String>,
    /// request id -> (caller, entry): a caller sees only its own completions.
    by_id: HashMap<String, (String, SharedEntry)>,
}

impl Default for RoutingIndex {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl RoutingIndex {
    /// An index keeping the newest `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(IndexData::default()),
        }
    }

    /// Adds an entry that has a request id, sent on behalf of `caller`.
    pub fn insert(&self, caller: &str, entry: &SharedEntry) {
        let Some(id) = lock(entry).request_id.clone() else { return };
        let mut data = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if data.by_id.insert(id.clone(), (caller.to_owned(), entry.clone())).is_none() {
            data.order.push_back(id);
        }
        while data.order.len() > self.capacity {
            if let Some(old) = data.order.pop_front() {
                data.by_id.remove(&old);
            }
        }
    }

    /// The entry for a request id, as it is now, if `caller` sent it.
    pub fn get(&self, caller: &str, request_id: &str) -> Option<LedgerEntry> {
        let data = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        data.by_id
            .get(request_id)
            .filter(|(owner, _)| owner == caller)
            .map(|(_, e)| lock(e).clone())
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).order.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Locks an entry; entries hold plain data, so a poisoned lock is still consistent.
pub fn lock(entry: &SharedEntry) -> std::sync::MutexGuard<'_, LedgerEntry> {
    entry.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::Method;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../tests/fixtures/gateway/{name}", env!("CARGO_MANIFEST_DIR"));
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

    #[test]
    fn index_is_bounded_and_sees_annotations() {
        let index = RoutingIndex::new(2);
        let now = SystemTime::now();
        let (req, resp) = exchange("chat-completion-combo.json");
        let mut entries = Vec::new();
        for id in ["a", "b", "c"] {
            let mut e = LedgerEntry::from_exchange("o", &req, &resp, now, now);
            e.request_id = Some(id.into());
            let shared = Arc::new(Mutex::new(e));
            index.insert("me", &shared);
            entries.push(shared);
        }
        assert_eq!(index.len(), 2);
        assert!(index.get("me", "a").is_none());
        assert!(index.get("someone-else", "b").is_none(), "callers see only their own");
        lock(&entries[2]).annotate(&Annotation { combo: Some("coding-fast".into()), ..Default::default() });
        assert_eq!(index.get("me", "c").unwrap().combo.as_deref(), Some("coding-fast"));
    }
}
