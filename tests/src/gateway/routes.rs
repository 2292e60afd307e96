//! The fake gateway's state and its one request handler.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::server::ConnKiller;
use super::{OverrideAction, Overrides, RecordedRequest};
use crate::lock;

/// Largest request body the gateway reads.
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// GET routes answered with a fixed fixture.
const STATIC_GETS: &[(&str, &str)] = &[
    ("/api/rate-limits", "rate-limits-populated.json"),
    ("/api/cache", "cache.json"),
    ("/api/cache/stats", "cache-stats.json"),
    ("/api/usage/quota", "usage-quota.json"),
    ("/api/usage/analytics", "usage-analytics-1d.json"),
    ("/api/provider-metrics", "provider-metrics.json"),
    ("/api/provider-nodes", "provider-nodes.json"),
    ("/api/pricing", "pricing.json"),
    ("/api/pricing/models", "pricing-models-excerpt.json"),
    ("/api/usage/call-logs", "call-logs.json"),
    ("/api/token-health", "token-health.json"),
    ("/v1/models", "v1-models-populated.json"),
];

/// Parsed fixtures, loaded once per process.
struct Fixtures {
    static_gets: HashMap<&'static str, Bytes>,
    health: Value,
    health_uptime: f64,
    metrics_all: Bytes,
    metrics_coding_fast: Bytes,
    metrics_none: Bytes,
    combos: Value,
    resilience: Value,
    chat_body: Bytes,
    chat_headers: Vec<(HeaderName, HeaderValue)>,
    unauthorized_client: Bytes,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let bytes = |name: &str| Bytes::from(load_fixture(name).to_string());
        let health = load_fixture("health-populated.json");
        let health_uptime = health["uptime"]
            .as_f64()
            .expect("health fixture has a numeric uptime");
        let chat = load_fixture("chat-completion-combo.json");
        let chat_headers = chat["headers"]
            .as_object()
            .expect("chat fixture has headers")
            .iter()
            .filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "x-request-id" | "content-type" | "x-omniroute-route-class"
                )
            })
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).expect("fixture header name"),
                    HeaderValue::from_str(
                        value.as_str().expect("fixture header value is a string"),
                    )
                    .expect("fixture header value"),
                )
            })
            .collect();
        Fixtures {
            static_gets: STATIC_GETS
                .iter()
                .map(|(path, file)| (*path, bytes(file)))
                .collect(),
            health,
            health_uptime,
            metrics_all: bytes("combo-metrics-all.json"),
            metrics_coding_fast: bytes("combo-metrics-coding-fast.json"),
            metrics_none: bytes("combo-metrics-by-id-or-unknown.json"),
            combos: load_fixture("combos-populated.json"),
            resilience: load_fixture("resilience-defaults.json"),
            chat_body: Bytes::from(chat["body"].to_string()),
            chat_headers,
            unauthorized_client: Bytes::from(
                load_fixture("auth-client-api-anonymous-401.json")["body"].to_string(),
            ),
        }
    })
}

/// How the server's startup probe ends its `User-Agent` (`host/src/gateway/probe.rs`).
const STARTUP_PROBE_AGENT_SUFFIX: &str = " startup-probe";

/// Reads and parses `tool-components/testing/fixtures/gateway/<name>`.
pub(crate) fn load_fixture(name: &str) -> Value {
    let path = crate::paths::gateway_fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read gateway fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("gateway fixture {} is not JSON: {e}", path.display()))
}

/// Everything the handler shares with the `FakeGateway` handle.
pub(crate) struct Shared {
    started: Instant,
    request_ids: (RandomState, AtomicU64),
    pub(crate) combos: Mutex<Value>,
    resilience: Mutex<Value>,
    pub(crate) overrides: Mutex<Overrides>,
    pub(crate) log: Mutex<Vec<RecordedRequest>>,
    /// The server's startup probes, apart from the tools' traffic in `log`.
    pub(crate) probes: Mutex<Vec<RecordedRequest>>,
    pub(crate) api_key: Mutex<Option<String>>,
    /// When set, every `POST /v1/chat/completions` waits for the test to release it.
    pub(crate) hold: Mutex<Option<Arc<super::hold::HoldState>>>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        let f = fixtures();
        Self {
            started: Instant::now(),
            request_ids: (RandomState::new(), AtomicU64::new(0)),
            combos: Mutex::new(f.combos.clone()),
            resilience: Mutex::new(f.resilience.clone()),
            overrides: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            probes: Mutex::new(Vec::new()),
            api_key: Mutex::new(None),
            hold: Mutex::new(None),
        }
    }

    /// A fresh UUID-shaped id (version 4 layout), different for every call.
    fn request_id(&self) -> String {
        let (state, counter) = &self.request_ids;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let a = state.hash_one((n, 0u8));
        let b = state.hash_one((n, 1u8));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let startup_probe = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|agent| agent.ends_with(STARTUP_PROBE_AGENT_SUFFIX));
    let log = if startup_probe { &shared.probes } else { &shared.log };
    lock(log).push(RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });

    let held = (parts.method == Method::POST && path == "/v1/chat/completions")
        .then(|| lock(&shared.hold).clone())
        .flatten();
    if let Some(hold) = held {
        hold.wait_for_release().await;
    }

    let overridden = {
        let overrides = lock(&shared.overrides);
        overrides
            .get(&(parts.method.as_str().to_owned(), path.clone()))
            .or_else(|| overrides.get(&("*".to_owned(), path.clone())))
            .cloned()
    };
    let action = match overridden {
        None => OverrideAction::Normal,
        Some(behaviour) => {
            if let Some(delay) = behaviour.delay {
                tokio::time::sleep(delay).await;
            }
            behaviour.action
        }
    };
    let mut response = match action {
        OverrideAction::Normal => answer(
            &shared,
            &parts.method,
            &path,
            parts.uri.query(),
            &parts.headers,
            &body,
        ),
        OverrideAction::Respond {
            status,
            content_type,
            body,
            headers,
        } => {
            let mut response = reply(status, &content_type, Bytes::from(body));
            for (name, value) in headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    response.headers_mut().append(n, v);
                }
            }
            response
        }
        OverrideAction::CloseConnection => {
            if let Some(killer) = parts.extensions.get::<ConnKiller>() {
                killer.kill();
            }
            // The connection task drops this future once it sees the kill signal.
            return std::future::pending().await;
        }
    };

    let headers = response.headers_mut();
    if !headers.contains_key("x-request-id") {
        headers.insert("x-request-id", header_value(&shared.request_id()));
    }
    headers.insert(
        "x-omniroute-route-class",
        HeaderValue::from_static(route_class(&parts.method, &path)),
    );
    response
}

/// The real gateway's route class for a request (`docs/gateway.md`, route classes).
fn route_class(method: &Method, path: &str) -> &'static str {
    if path.starts_with("/v1/") || path.starts_with("/api/v1/") || path.starts_with("/api/mcp/") {
        "CLIENT_API"
    } else if method == Method::GET
        && matches!(
            path,
            "/api/monitoring/health" | "/api/settings/require-login"
        )
    {
        "PUBLIC"
    } else {
        "MANAGEMENT"
    }
}

/// The normal answer of a route.
fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let f = fixtures();
    if route_class(method, path) == "CLIENT_API"
        && let Some(key) = lock(&shared.api_key).as_deref()
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {key}"))
    {
        return reply(401, JSON, f.unauthorized_client.clone());
    }

    match (method.as_str(), path) {
        ("GET", "/api/monitoring/health") => json_reply(200, &health_body(shared)),
        ("GET", "/api/combos") => json_reply(200, &lock(&shared.combos)),
        ("PUT", _) if path.starts_with("/api/combos/") => {
            update_combo(shared, &path["/api/combos/".len()..], body)
        }
        ("GET", "/api/combos/metrics") => {
            let combo = parse_query(query)
                .into_iter()
                .find(|(k, _)| k == "combo")
                .map(|(_, v)| v);
            let body = match combo.as_deref() {
                None => &f.metrics_all,
                Some("coding-fast") => &f.metrics_coding_fast,
                Some(_) => &f.metrics_none,
            };
            reply(200, JSON, body.clone())
        }
        ("GET", "/api/usage/combo-health") => {
            // The 3.7.9 route answers 400 without a `range` (fixture), else the persisted health.
            let has_range = parse_query(query).iter().any(|(k, _)| k == "range");
            let (status, fixture) = if has_range {
                (200, "combo-health-24h.json")
            } else {
                (400, "combo-health-no-range-400.json")
            };
            json_reply(status, &load_fixture(fixture))
        }
        ("GET", "/api/resilience") => json_reply(200, &lock(&shared.resilience)),
        ("PATCH", "/api/resilience") => patch_resilience(shared, body),
        ("POST", "/v1/chat/completions") => {
            let mut response = reply(200, JSON, f.chat_body.clone());
            response
                .headers_mut()
                .extend(f.chat_headers.iter().cloned());
            response
        }
        ("GET", _) if f.static_gets.contains_key(path) => {
            reply(200, JSON, f.static_gets[path].clone())
        }
        _ => json_reply(404, &json!({"error": "Not found"})),
    }
}

/// The health fixture with `uptime` counted from the gateway's start and a current timestamp.
fn health_body(shared: &Shared) -> Value {
    let f = fixtures();
    let uptime = f.health_uptime + shared.started.elapsed().as_secs_f64();
    let mut body = f.health.clone();
    body["uptime"] = json!(uptime);
    body["system"]["uptime"] = json!(uptime);
    body["timestamp"] = json!(iso_now());
    body
}

fn update_combo(shared: &Shared, id: &str, body: &[u8]) -> Response {
    let requested: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(active) = requested.get("isActive").and_then(Value::as_bool) else {
        let received = match requested.get("isActive") {
            None => "undefined",
            Some(Value::String(_)) => "string",
            Some(Value::Number(_)) => "number",
            Some(Value::Null) => "null",
            Some(Value::Array(_)) => "array",
            Some(_) => "object",
        };
        return json_reply(
            400,
            &json!({"error": {"message": "Invalid request", "details": [{
                "field": "isActive",
                "message": format!("Invalid input: expected boolean, received {received}"),
            }]}}),
        );
    };
    let mut combos = lock(&shared.combos);
    let found = combos["combos"]
        .as_array_mut()
        .and_then(|list| list.iter_mut().find(|c| c["id"] == id));
    match found {
        Some(combo) => {
            combo["isActive"] = json!(active);
            combo["updatedAt"] = json!(iso_now());
            json_reply(200, combo)
        }
        None => json_reply(404, &json!({"error": "Combo not found"})),
    }
}

fn patch_resilience(shared: &Shared, body: &[u8]) -> Response {
    let patch: Value = match serde_json::from_slice(body) {
        Ok(patch @ Value::Object(_)) => patch,
        _ => return json_reply(400, &json!({"error": "Invalid request body"})),
    };
    let mut current = lock(&shared.resilience);
    merge(&mut current, patch);
    let mut answer = json!({"ok": true});
    merge(&mut answer, current.clone());
    json_reply(200, &answer)
}

/// Deep merge: objects merge key by key, anything else replaces.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch,
    }
}

const JSON: &str = "application/json";

fn json_reply(status: u16, body: &Value) -> Response {
    reply(status, JSON, Bytes::from(body.to_string()))
}

fn reply(status: u16, content_type: &str, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header_value(content_type));
    response
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `application/x-www-form-urlencoded` query parsing (`+` is a space, `%XX` decoded).
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the gateway's timestamp format.
pub(crate) fn iso_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}
