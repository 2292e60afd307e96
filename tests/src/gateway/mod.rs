//! `FakeGateway`: an in-process stand-in for an OmniRoute 3.7.9 gateway.
//!
//! It serves the real 3.7.9 response shapes from `tool-components/testing/fixtures/gateway`, records every request
//! (method, path, query, headers, body; the server's startup probes apart from the tools'
//! traffic) and lets a test override any route: another status and
//! body (JSON or HTML), a delay, or a dropped connection. It runs on its own thread with its own
//! single-threaded Tokio runtime, so it works from sync tests, async tests and benchmarks alike,
//! and a test that blocks its own runtime cannot stall it.
//!
//! Routes (everything else answers `404 {"error":"Not found"}`):
//!
//! | route | body |
//! | --- | --- |
//! | `GET /api/monitoring/health` | `health-populated.json`, `uptime` growing from the gateway's start |
//! | `GET /api/rate-limits`, `/api/cache`, `/api/cache/stats`, `/api/usage/quota`, `/api/usage/analytics`, `/api/provider-metrics`, `/api/provider-nodes`, `/api/pricing`, `/api/pricing/models`, `/api/usage/call-logs`, `/api/token-health`, `/v1/models` | the matching fixture |
//! | `GET /api/combos` | an in-memory copy of `combos-populated.json` |
//! | `PUT /api/combos/{id}` | sets `isActive` on that copy; unknown id: `404 {"error":"Combo not found"}` |
//! | `GET /api/combos/metrics[?combo=]` | all, `coding-fast`, or the "no metrics" body |
//! | `GET`, `PATCH /api/resilience` | `resilience-defaults.json`; PATCH deep-merges and answers `{"ok":true, …}` |
//! | `POST /v1/chat/completions` | `chat-completion-combo.json` body and `x-omniroute-*` headers, a fresh `x-request-id` (held until released after [`FakeGateway::hold_completions`]) |
//!
//! Every response carries `x-request-id` and `x-omniroute-route-class`, as the real gateway does.

mod hold;
mod routes;
mod server;

pub use hold::{CompletionHold, SIX_STEPS, held_six_step_gateway};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::lock;
use routes::Shared;

/// A running fake gateway on `127.0.0.1:<random port>`. Stops when dropped.
pub struct FakeGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: server::ServerHandle,
}

impl FakeGateway {
    /// Starts a gateway on a fresh loopback port. Callable with or without a Tokio runtime.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::new());
        let (addr, server) = server::spawn(Arc::clone(&shared));
        Self {
            addr,
            shared,
            _server: server,
        }
    }

    /// `http://127.0.0.1:<port>`, the value for `OMNIROUTE_BASE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order, except the server's startup probes.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// The server's startup probes received so far (`User-Agent` ending in ` startup-probe`),
    /// kept apart so that the tools' traffic can be counted exactly.
    pub fn startup_probes(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.probes).clone()
    }

    /// The requests with this method and path (path without query).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Replaces the answer for `method path` (method `*` matches any) until cleared.
    pub fn set_override(&self, method: &str, path: &str, behaviour: Override) {
        lock(&self.shared.overrides).insert(route_key(method, path), behaviour);
    }

    pub fn clear_override(&self, method: &str, path: &str) {
        lock(&self.shared.overrides).remove(&route_key(method, path));
    }

    pub fn clear_overrides(&self) {
        lock(&self.shared.overrides).clear();
    }

    /// Makes `/v1/*` answer 401 (as with `REQUIRE_API_KEY=true`) unless the request carries
    /// `Authorization: Bearer <key>`. `None` (the default) accepts anonymous client calls.
    pub fn require_api_key(&self, key: Option<&str>) {
        *lock(&self.shared.api_key) = key.map(str::to_owned);
    }

    /// From now on every `POST /v1/chat/completions` is recorded and then held until the
    /// returned handle releases it; the handle counts arrivals, answers and the requests the
    /// server abandoned while they were held (its connection closed).
    pub fn hold_completions(&self) -> CompletionHold {
        let state = Arc::new(hold::HoldState::new());
        *lock(&self.shared.hold) = Some(Arc::clone(&state));
        CompletionHold { state }
    }

    /// The current in-memory combos body (changed by `PUT /api/combos/{id}`).
    pub fn combos(&self) -> Value {
        lock(&self.shared.combos).clone()
    }

    /// A fixture from `tool-components/testing/fixtures/gateway`, parsed; e.g. `fixture("combos-populated.json")`.
    pub fn fixture(name: &str) -> Value {
        routes::load_fixture(name)
    }
}

/// A port on 127.0.0.1 with nothing listening, for "gateway down" tests.
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

/// One request as the gateway received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: Option<String>,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        routes::parse_query(self.query.as_deref())
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What an overridden route does instead of its normal answer.
#[derive(Clone, Debug)]
pub struct Override {
    pub(crate) delay: Option<Duration>,
    pub(crate) action: OverrideAction,
}

#[derive(Clone, Debug)]
pub(crate) enum OverrideAction {
    /// The route's normal answer (only the delay applies).
    Normal,
    Respond {
        status: u16,
        content_type: String,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    },
    /// Drop the TCP connection without answering.
    CloseConnection,
}

impl Override {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Self::body(status, "application/json", body.to_string())
    }

    /// `status` with an HTML body, like the 3.7.9 Next.js 404 pages.
    pub fn html(status: u16, html: impl Into<String>) -> Self {
        Self::body(status, "text/html; charset=utf-8", html.into())
    }

    /// `status` with any body and content type.
    pub fn body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            delay: None,
            action: OverrideAction::Respond {
                status,
                content_type: content_type.to_owned(),
                body: body.into(),
                headers: Vec::new(),
            },
        }
    }

    /// The normal answer, after `delay`.
    pub fn delay(delay: Duration) -> Self {
        Self {
            delay: Some(delay),
            action: OverrideAction::Normal,
        }
    }

    /// Reads the request, then drops the connection without answering.
    pub fn close_connection() -> Self {
        Self {
            delay: None,
            action: OverrideAction::CloseConnection,
        }
    }

    /// Waits `delay` before doing what this override does.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Adds a response header (only for overrides that respond with a body).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let OverrideAction::Respond { headers, .. } = &mut self.action {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// The first value of `name` (case-insensitive) in a header list.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn route_key(method: &str, path: &str) -> (String, String) {
    (method.to_ascii_uppercase(), path.to_owned())
}

pub(crate) type Overrides = HashMap<(String, String), Override>;

#[cfg(test)]
mod tests;
