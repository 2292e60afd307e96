//! Fakes for native unit tests of tools: a scripted gateway, an in-memory
//! session, a progress recorder, and small checks of descriptions and output
//! schemas. Nothing here talks to a real host.
//!
//! ```
//! use omniroute_tool_sdk::testing::{FakeGateway, FakeHost, Reply};
//! use omniroute_tool_sdk::{GatewayError, Method};
//!
//! let gateway = FakeGateway::new()
//!     .on_get("/api/cache", Reply::json(200, r#"{"semanticCache":{}}"#))
//!     .on_get("/api/rate-limits", Reply::error(GatewayError::Timeout(15)));
//! let host = FakeHost::new(gateway);
//! // host.call::<MyTool>(json!({})) runs the tool through the export path.
//! # let _ = host;
//! ```

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use crate::gateway::{Gateway, GatewayError, GatewayResult, Method, Request, Response};
use crate::tool::{Ctx, Progress, Session, Tool, call_json, describe_json};

/// The real gateway answers under `tests/fixtures/gateway/` (captured from
/// OmniRoute 3.7.9), one constant per file, named after it. Constants cost
/// nothing in a component that does not use them.
pub mod fixtures {
    /// The custom node of `provider-nodes.json`, `usage-quota.json`,
    /// `call-logs.json` and `chat-completion-combo.json` (prefix `mock`).
    pub const NODE_9BF: &str = "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be";
    /// The same `mock` node on the restarted gateway of
    /// `chat-completion-priced.json` and `health-open-breakers.json`.
    pub const NODE_1F2: &str = "openai-compatible-chat-1f2e00b9-0860-4f8f-93e7-2cf565feb2f4";
    pub const CACHE: &str = include_str!("../../../tests/fixtures/gateway/cache.json");
    pub const CALL_LOGS: &str = include_str!("../../../tests/fixtures/gateway/call-logs.json");
    pub const CALL_LOG_BY_REQUEST_ID_404: &str =
        include_str!("../../../tests/fixtures/gateway/call-log-by-request-id-404.json");
    pub const CALL_LOG_DETAIL: &str =
        include_str!("../../../tests/fixtures/gateway/call-log-detail.json");
    pub const CHAT_COMPLETION_COMBO: &str =
        include_str!("../../../tests/fixtures/gateway/chat-completion-combo.json");
    pub const CHAT_COMPLETION_PREFIX_PRICED_COST_ZERO: &str = include_str!(
        "../../../tests/fixtures/gateway/chat-completion-prefix-priced-cost-zero.json"
    );
    pub const CHAT_COMPLETION_PRICED: &str =
        include_str!("../../../tests/fixtures/gateway/chat-completion-priced.json");
    pub const CHAT_ERROR_ALL_ACCOUNTS_INACTIVE: &str =
        include_str!("../../../tests/fixtures/gateway/chat-error-all-accounts-inactive.json");
    pub const CHAT_ERROR_BREAKER_OPEN: &str =
        include_str!("../../../tests/fixtures/gateway/chat-error-breaker-open.json");
    pub const CHAT_ERROR_UPSTREAM_500: &str =
        include_str!("../../../tests/fixtures/gateway/chat-error-upstream-500.json");
    pub const COMBOS_POPULATED: &str =
        include_str!("../../../tests/fixtures/gateway/combos-populated.json");
    pub const COMBO_HEALTH_24H: &str =
        include_str!("../../../tests/fixtures/gateway/combo-health-24h.json");
    pub const COMBO_METRICS_ALL: &str =
        include_str!("../../../tests/fixtures/gateway/combo-metrics-all.json");
    pub const COMBO_METRICS_BY_ID_OR_UNKNOWN: &str =
        include_str!("../../../tests/fixtures/gateway/combo-metrics-by-id-or-unknown.json");
    pub const COMBO_METRICS_CODING_FAST: &str =
        include_str!("../../../tests/fixtures/gateway/combo-metrics-coding-fast.json");
    pub const HEALTH_FRESH: &str =
        include_str!("../../../tests/fixtures/gateway/health-fresh.json");
    pub const HEALTH_OPEN_BREAKERS: &str =
        include_str!("../../../tests/fixtures/gateway/health-open-breakers.json");
    pub const HEALTH_POPULATED: &str =
        include_str!("../../../tests/fixtures/gateway/health-populated.json");
    pub const PRICING: &str = include_str!("../../../tests/fixtures/gateway/pricing.json");
    pub const PRICING_MODELS_EXCERPT: &str =
        include_str!("../../../tests/fixtures/gateway/pricing-models-excerpt.json");
    pub const PROVIDER_METRICS: &str =
        include_str!("../../../tests/fixtures/gateway/provider-metrics.json");
    pub const PROVIDER_NODES: &str =
        include_str!("../../../tests/fixtures/gateway/provider-nodes.json");
    pub const RATE_LIMITS_POPULATED: &str =
        include_str!("../../../tests/fixtures/gateway/rate-limits-populated.json");
    pub const RESILIENCE_DEFAULTS: &str =
        include_str!("../../../tests/fixtures/gateway/resilience-defaults.json");
    pub const USAGE_ANALYTICS_1D: &str =
        include_str!("../../../tests/fixtures/gateway/usage-analytics-1d.json");
    pub const USAGE_ANALYTICS_FRESH: &str =
        include_str!("../../../tests/fixtures/gateway/usage-analytics-fresh.json");
    pub const USAGE_QUOTA: &str = include_str!("../../../tests/fixtures/gateway/usage-quota.json");
    pub const V1_MODELS_POPULATED: &str =
        include_str!("../../../tests/fixtures/gateway/v1-models-populated.json");
}

/// What a [`FakeGateway`] answers for one (method, path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Response(Response),
    Error(GatewayError),
}

impl Reply {
    /// A response with this status and body and no headers.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Reply::Response(Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            elapsed_ms: 0,
        })
    }

    /// A JSON response (`content-type: application/json`).
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Reply::Response(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            elapsed_ms: 0,
        })
    }

    /// A transport error instead of a response.
    pub fn error(error: GatewayError) -> Self {
        Reply::Error(error)
    }

    /// `unreachable("connect ECONNREFUSED 127.0.0.1:20128")`.
    pub fn unreachable(reason: &str) -> Self {
        Reply::Error(GatewayError::Unreachable(reason.to_string()))
    }

    /// The response recorded in a capture fixture such as
    /// `chat-completion-priced.json`: `{request, status, headers{…}, body}`,
    /// with the body re-serialised compactly (a string body is kept as is).
    pub fn capture(fixture: &str) -> Self {
        let capture: Value = serde_json::from_str(fixture).expect("capture fixture is JSON");
        let status = capture["status"].as_u64().expect("capture has a status") as u16;
        let headers = capture["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let body = match &capture["body"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        Reply::Response(Response {
            status,
            headers,
            body,
            elapsed_ms: 0,
        })
    }

    /// Sets the host-measured wall time of a response.
    pub fn elapsed(mut self, ms: u32) -> Self {
        if let Reply::Response(resp) = &mut self {
            resp.elapsed_ms = ms;
        }
        self
    }

    /// Adds (or, with the same name, replaces) a response header.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.map_headers(|headers| {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            headers.push((name.to_string(), value.to_string()));
        })
    }

    /// Removes a response header.
    pub fn without_header(self, name: &str) -> Self {
        self.map_headers(|headers| headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name)))
    }

    fn map_headers(mut self, f: impl FnOnce(&mut Vec<(String, String)>)) -> Self {
        if let Reply::Response(resp) = &mut self {
            f(&mut resp.headers);
        }
        self
    }
}

/// What narrows a [`FakeGateway`] reply beyond (method, path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// The query has this (key, value) pair.
    Query(String, String),
    /// The JSON body has this top-level string field (e.g. `model`).
    BodyField(String, String),
}

impl Matcher {
    fn matches(&self, req: &Request) -> bool {
        match self {
            Matcher::Query(k, v) => req.query.iter().any(|(qk, qv)| qk == k && qv == v),
            Matcher::BodyField(k, v) => req
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .is_some_and(|body| body[k.as_str()].as_str() == Some(v.as_str())),
        }
    }
}

/// A labelled batch as the tool sent it: the labels and the in-flight cap.
pub type LabelledBatch = (Vec<String>, u32);

/// A gateway that answers from a table keyed by (method, path) and records
/// every request it gets. The query is ignored for matching unless a reply
/// was added with a [`Matcher`] ([`FakeGateway::on_query`],
/// [`FakeGateway::on_body`]); those are tried first, the latest first. A
/// request with no entry fails with [`GatewayError::Invalid`] naming it, so a
/// test that forgot a route fails loudly.
#[derive(Debug, Default)]
pub struct FakeGateway {
    replies: HashMap<(Method, String), Reply>,
    matched: Vec<(Method, String, Matcher, Reply)>,
    requests: RefCell<Vec<Request>>,
    batches: RefCell<Vec<usize>>,
    labelled: RefCell<Vec<LabelledBatch>>,
}

impl FakeGateway {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `method path` with `reply` (replacing an earlier entry).
    pub fn on(mut self, method: Method, path: &str, reply: Reply) -> Self {
        self.replies.insert((method, path.to_string()), reply);
        self
    }

    /// Answers `GET path` with `reply`.
    pub fn on_get(self, path: &str, reply: Reply) -> Self {
        self.on(Method::Get, path, reply)
    }

    /// Answers the two provider-map sources of [`crate::providers::Providers`]
    /// with the real fixtures: `GET /api/provider-nodes` (the custom node
    /// `mock` = [`fixtures::NODE_9BF`]) and `GET /api/pricing/models`.
    pub fn with_provider_maps(self) -> Self {
        use crate::providers::{PRICING_MODELS, PROVIDER_NODES};
        self.on_get(PROVIDER_NODES, Reply::json(200, fixtures::PROVIDER_NODES))
            .on_get(
                PRICING_MODELS,
                Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
            )
    }

    /// Answers `method path` with `reply` when `matcher` also holds.
    pub fn on_matching(
        mut self,
        method: Method,
        path: &str,
        matcher: Matcher,
        reply: Reply,
    ) -> Self {
        self.matched
            .push((method, path.to_string(), matcher, reply));
        self
    }

    /// Answers `GET path` carrying the query pair `key=value` with `reply`.
    pub fn on_query(self, path: &str, key: &str, value: &str, reply: Reply) -> Self {
        let matcher = Matcher::Query(key.to_string(), value.to_string());
        self.on_matching(Method::Get, path, matcher, reply)
    }

    /// Answers `method path` whose JSON body has `field: value` with `reply`
    /// (e.g. one reply per completion `model`).
    pub fn on_body(
        self,
        method: Method,
        path: &str,
        field: &str,
        value: &str,
        reply: Reply,
    ) -> Self {
        let matcher = Matcher::BodyField(field.to_string(), value.to_string());
        self.on_matching(method, path, matcher, reply)
    }

    /// The labels and in-flight cap of each `send_all_labelled` batch, in order.
    pub fn labelled_batches(&self) -> Vec<LabelledBatch> {
        self.labelled.borrow().clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.borrow().clone()
    }

    /// The requests received so far for this path, in order.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests
            .borrow()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The size of each `send_all` batch received so far, in order: lets a
    /// test check that requests meant to run concurrently were batched.
    pub fn batches(&self) -> Vec<usize> {
        self.batches.borrow().clone()
    }

    fn answer(&self, req: &Request) -> GatewayResult {
        self.requests.borrow_mut().push(req.clone());
        let matched = self
            .matched
            .iter()
            .rev()
            .find(|(m, p, matcher, _)| *m == req.method && *p == req.path && matcher.matches(req))
            .map(|(_, _, _, reply)| reply);
        match matched.or_else(|| self.replies.get(&(req.method, req.path.clone()))) {
            Some(Reply::Response(resp)) => Ok(resp.clone()),
            Some(Reply::Error(err)) => Err(err.clone()),
            None => Err(GatewayError::Invalid(format!(
                "FakeGateway has no reply for {}",
                req.source()
            ))),
        }
    }
}

impl Gateway for FakeGateway {
    fn send(&self, req: &Request) -> GatewayResult {
        self.answer(req)
    }

    fn send_all(&self, reqs: &[Request]) -> Vec<GatewayResult> {
        self.batches.borrow_mut().push(reqs.len());
        reqs.iter().map(|r| self.answer(r)).collect()
    }

    fn send_all_labelled(
        &self,
        reqs: &[(String, Request)],
        max_in_flight: u32,
    ) -> Vec<GatewayResult> {
        let labels = reqs.iter().map(|(l, _)| l.clone()).collect();
        self.labelled.borrow_mut().push((labels, max_in_flight));
        reqs.iter().map(|(_, r)| self.answer(r)).collect()
    }
}

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

/// The gateway failures every tool must report with the contract's texts
/// (spec C.0.4), as `(reply for method path, expected error text)`:
/// unreachable, timeout, a JSON 401 (pretty-printed, shown compact), a JSON
/// 500, a 404 HTML page (shown by size only) and a non-JSON 2xx.
///
/// ```
/// use omniroute_tool_sdk::testing::{FakeGateway, gateway_failures};
/// use omniroute_tool_sdk::{Gateway, Method};
/// for (reply, text) in gateway_failures(Method::Get, "/api/combos") {
///     let gw = FakeGateway::new().on_get("/api/combos", reply);
///     assert_eq!(gw.get_json("/api/combos", &[]).unwrap_err().message, text);
/// }
/// ```
pub fn gateway_failures(method: Method, path: &str) -> Vec<(Reply, String)> {
    let source = format!("{method} {path}");
    let html = format!(
        "<!DOCTYPE html><html><body>{}</body></html>",
        "x".repeat(2000)
    );
    vec![
        (
            Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128"),
            format!("OmniRoute API unreachable: {source}: connect ECONNREFUSED 127.0.0.1:20128"),
        ),
        (
            Reply::error(GatewayError::Timeout(15)),
            format!("OmniRoute API timeout after 15 s: {source}"),
        ),
        (
            Reply::json(401, "{\n  \"error\": \"Authentication required\"\n}"),
            r#"OmniRoute API error [401]: {"error":"Authentication required"}"#.to_string(),
        ),
        (
            Reply::json(500, r#"{"error":"Internal Server Error"}"#),
            r#"OmniRoute API error [500]: {"error":"Internal Server Error"}"#.to_string(),
        ),
        (
            Reply::status(404, html.clone()),
            format!(
                "OmniRoute API error [404]: <non-JSON body, {} bytes>",
                html.len()
            ),
        ),
        (
            Reply::status(200, "not json"),
            "OmniRoute API error [200]: <non-JSON body, 8 bytes>".to_string(),
        ),
    ]
}

/// Checks the shape of `T::describe()` as the host will read it: key order,
/// a draft-07 object input schema, an object output schema, non-empty
/// scopes, the four annotation hints. Panics with the problem.
pub fn check_description<T: Tool>() -> Value {
    let desc: Value = serde_json::from_str(&describe_json::<T>()).expect("describe() is JSON");
    let keys: Vec<&str> = desc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        // The optional audit hint comes last when present.
        .filter(|k| *k != "audit")
        .collect();
    if let Some(audit) = desc.get("audit") {
        let pointer = audit["output"].as_str().expect("audit.output is a string");
        assert!(
            pointer.starts_with('/'),
            "audit.output must be a JSON pointer, got {pointer:?}"
        );
    }
    assert_eq!(
        keys,
        [
            "name",
            "title",
            "description",
            "inputSchema",
            "outputSchema",
            "scopes",
            "annotations"
        ],
        "describe() keys"
    );
    let input = &desc["inputSchema"];
    assert_eq!(
        input["$schema"],
        crate::schema::DRAFT_07,
        "inputSchema.$schema"
    );
    assert_eq!(input["type"], "object", "inputSchema.type");
    assert!(input["properties"].is_object(), "inputSchema.properties");
    if let Some(required) = input.get("required") {
        assert!(
            !required.as_array().unwrap().is_empty(),
            "required only when non-empty"
        );
    }
    assert_eq!(desc["outputSchema"]["type"], "object", "outputSchema.type");
    assert!(!desc["scopes"].as_array().unwrap().is_empty(), "scopes");
    for hint in [
        "readOnlyHint",
        "destructiveHint",
        "idempotentHint",
        "openWorldHint",
    ] {
        assert!(desc["annotations"][hint].is_boolean(), "annotations.{hint}");
    }
    desc
}

/// Checks that a tool's `tool.toml` names the same tool and scopes as
/// `describe()` (the host refuses to load a component where they differ).
/// Reads only the simple `key = value` lines these manifests use.
pub fn check_manifest<T: Tool>(manifest: &str) {
    let desc = T::describe();
    let field = |key: &str| -> Value {
        manifest
            .lines()
            .find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key)
                    .then(|| serde_json::from_str(v.trim()).expect("a JSON-compatible TOML value"))
            })
            .unwrap_or_else(|| panic!("tool.toml has no `{key}`"))
    };
    assert_eq!(field("name"), desc.name, "tool.toml name vs describe()");
    assert_eq!(
        field("scopes"),
        serde_json::json!(desc.scopes),
        "tool.toml scopes vs describe()"
    );
}

/// Validates `value` against `schema`, supporting the keywords tool schemas
/// use (`type`, `properties`, `required`, `items`, `enum`,
/// `additionalProperties`, `maxLength` plus annotations). An unsupported
/// keyword is an error, so a schema cannot silently go unchecked.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(schema, value, "$")
}

fn validate_at(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return match schema {
            Value::Bool(true) => Ok(()),
            _ => Err(format!("{at}: schema is not an object")),
        };
    };
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "$schema" | "description" | "title" | "default" | "required" => {}
            "type" => {
                let allowed: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("{at}: bad `type`")),
                };
                if !allowed.iter().any(|t| has_type(value, t)) {
                    return Err(format!("{at}: {value} is not of type {allowed:?}"));
                }
            }
            "enum" => {
                if !rule
                    .as_array()
                    .is_some_and(|options| options.contains(value))
                {
                    return Err(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "maxLength" => {
                if let (Some(s), Some(max)) = (value.as_str(), rule.as_u64())
                    && s.chars().count() as u64 > max
                {
                    return Err(format!("{at}: longer than {max}"));
                }
            }
            "properties" => {
                if let Some(obj) = value.as_object() {
                    for (name, sub) in rule.as_object().ok_or(format!("{at}: bad `properties`"))? {
                        if let Some(v) = obj.get(name) {
                            validate_at(sub, v, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(obj) = value.as_object() {
                    let known = schema.get("properties").and_then(Value::as_object);
                    for (name, v) in obj {
                        if known.is_none_or(|k| !k.contains_key(name)) {
                            match rule {
                                Value::Bool(false) => {
                                    return Err(format!("{at}: unexpected property `{name}`"));
                                }
                                _ => validate_at(rule, v, &format!("{at}.{name}"))?,
                            }
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        validate_at(rule, v, &format!("{at}[{i}]"))?;
                    }
                }
            }
            other => {
                return Err(format!(
                    "{at}: unsupported keyword `{other}` in this checker"
                ));
            }
        }
    }
    if let (Some(required), Some(obj)) = (schema.get("required"), value.as_object()) {
        for name in required.as_array().ok_or(format!("{at}: bad `required`"))? {
            let name = name.as_str().ok_or(format!("{at}: bad `required`"))?;
            if !obj.contains_key(name) {
                return Err(format!("{at}: missing required property `{name}`"));
            }
        }
    }
    Ok(())
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|x| x.fract() == 0.0),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// Asserts that `output` validates against `T`'s declared output schema.
pub fn assert_output_valid<T: Tool>(output: &Value) {
    if let Err(problem) = validate(&T::describe().output_schema, output) {
        panic!("output does not match the outputSchema: {problem}\noutput: {output:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fake_gateway_matches_method_and_path_and_records() {
        let gw = FakeGateway::new().on_get("/a", Reply::json(200, "{\"x\":1}"));
        assert_eq!(gw.get_json("/a", &[("q", "1")]).unwrap(), json!({"x":1}));
        let err = gw.get_json("/b", &[]).unwrap_err();
        assert_eq!(
            err.message,
            "Invalid gateway request: FakeGateway has no reply for GET /b"
        );
        let reqs = gw.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].query, vec![("q".to_string(), "1".to_string())]);
        assert_eq!(
            gw.send_all(&[Request::get("/a"), Request::get("/a")]).len(),
            2
        );
        assert_eq!(gw.batches(), vec![2]);
    }

    #[test]
    fn matchers_and_labelled_batches() {
        let post =
            |model: &str| Request::new(Method::Post, "/c").json_body(&json!({"model": model}));
        let gw = FakeGateway::new()
            .on(Method::Post, "/c", Reply::json(200, "0"))
            .on_body(
                Method::Post,
                "/c",
                "model",
                "a",
                Reply::json(200, "1").elapsed(7),
            )
            .on_get("/q", Reply::json(200, "0"))
            .on_query("/q", "p", "x", Reply::json(200, "1"))
            .on_query("/q", "p", "x", Reply::json(200, "2"));
        let results = gw.send_all_labelled(
            &[("first".into(), post("a")), ("second".into(), post("b"))],
            4,
        );
        let bodies: Vec<(String, u32)> = results
            .into_iter()
            .map(|r| r.map(|r| (r.body, r.elapsed_ms)).unwrap())
            .collect();
        assert_eq!(bodies, [("1".to_string(), 7), ("0".to_string(), 0)]);
        assert_eq!(
            gw.labelled_batches(),
            vec![(vec!["first".to_string(), "second".to_string()], 4)]
        );
        assert_eq!(
            gw.get_json("/q", &[("p", "x")]).unwrap(),
            json!(2),
            "latest matcher wins"
        );
        assert_eq!(gw.get_json("/q", &[("p", "y")]).unwrap(), json!(0));
    }

    /// The trait's default ignores labels and the cap.
    #[test]
    fn default_labelled_send_uses_send_all() {
        struct Plain(FakeGateway);
        impl Gateway for Plain {
            fn send(&self, req: &Request) -> GatewayResult {
                self.0.send(req)
            }
        }
        let plain = Plain(FakeGateway::new().on_get("/a", Reply::json(200, "1")));
        let out = plain.send_all_labelled(&[("l".into(), Request::get("/a"))], 0);
        assert_eq!(out[0].as_ref().unwrap().body, "1");
        assert!(plain.0.labelled_batches().is_empty());
    }

    #[test]
    fn json_helpers_turn_statuses_into_failures() {
        let gw = FakeGateway::new()
            .on_get(
                "/500",
                Reply::json(500, r#"{"status":"error","error":"Health check failed"}"#),
            )
            .on_get("/text", Reply::status(200, "OK"))
            .on_get("/down", Reply::unreachable("connection refused"));
        let results = gw.send_all_json(&[
            Request::get("/500"),
            Request::get("/text"),
            Request::get("/down"),
        ]);
        let texts: Vec<String> = results
            .into_iter()
            .map(|r| r.unwrap_err().message)
            .collect();
        assert_eq!(
            texts,
            [
                r#"OmniRoute API error [500]: {"status":"error","error":"Health check failed"}"#,
                "OmniRoute API error [200]: <non-JSON body, 2 bytes>",
                "OmniRoute API unreachable: GET /down: connection refused",
            ]
        );
    }

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
    fn validator_checks_what_it_claims() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": ["number", "null"]},
                "b": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
            },
            "required": ["a"],
            "additionalProperties": false,
        });
        assert!(validate(&schema, &json!({"a": null, "b": ["x"]})).is_ok());
        assert!(
            validate(&schema, &json!({"b": []}))
                .unwrap_err()
                .contains("missing required")
        );
        assert!(
            validate(&schema, &json!({"a": "1"}))
                .unwrap_err()
                .contains("not of type")
        );
        assert!(
            validate(&schema, &json!({"a": 1, "b": ["z"]}))
                .unwrap_err()
                .contains("not one of")
        );
        assert!(
            validate(&schema, &json!({"a": 1, "c": 1}))
                .unwrap_err()
                .contains("unexpected")
        );
        assert!(
            validate(&json!({"oneOf": []}), &json!(1))
                .unwrap_err()
                .contains("unsupported")
        );
    }

    #[test]
    fn capture_replies_and_headers() {
        let reply = Reply::capture(include_str!(
            "../../../tests/fixtures/gateway/chat-completion-priced.json"
        ));
        let Reply::Response(resp) = &reply else {
            panic!("a response")
        };
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("X-OmniRoute-Response-Cost"),
            Some("0.0000285000")
        );
        assert_eq!(
            resp.header_number("x-omniroute-response-cost"),
            Some(0.0000285)
        );
        assert_eq!(
            serde_json::from_str::<Value>(&resp.body).unwrap()["model"],
            "mock-small"
        );
        let Reply::Response(changed) = reply
            .header("x-omniroute-cache", "HIT")
            .without_header("x-request-id")
        else {
            panic!("a response")
        };
        assert_eq!(changed.header("x-omniroute-cache"), Some("HIT"));
        assert_eq!(changed.header("x-request-id"), None);
        assert_eq!(
            Reply::unreachable("x").header("a", "b"),
            Reply::unreachable("x")
        );
    }

    #[test]
    fn refusing_session() {
        let s = MemorySession::new().refusing("ledger");
        assert!(s.set("ledger", "[]").is_err());
        assert_eq!(s.get("ledger"), None);
        assert!(s.set("other", "1").is_ok());
    }

    #[test]
    fn json_and_response_keeps_the_response() {
        use crate::gateway::json_and_response;
        let req = Request::new(Method::Post, "/v1/chat/completions");
        let answer = |reply: Reply| match reply {
            Reply::Response(r) => Ok(r),
            Reply::Error(e) => Err(e),
        };
        let ok = Reply::json(200, r#"{"a":1}"#).header("x-request-id", "r1");
        let (json, resp) = json_and_response(&req, answer(ok)).unwrap();
        assert_eq!(json, json!({"a":1}));
        assert_eq!(resp.header("x-request-id"), Some("r1"));
        let failed = Reply::json(503, r#"{"e":1}"#).header("x-request-id", "r2");
        let (failure, resp) = json_and_response(&req, answer(failed)).unwrap_err();
        assert_eq!(failure.message, r#"OmniRoute API error [503]: {"e":1}"#);
        assert_eq!(resp.unwrap().header("x-request-id"), Some("r2"));
        let (failure, resp) =
            json_and_response(&req, answer(Reply::status(200, "data: x"))).unwrap_err();
        assert_eq!(failure.status, Some(200));
        assert!(resp.is_some());
        let (failure, resp) =
            json_and_response(&req, answer(Reply::unreachable("down"))).unwrap_err();
        assert_eq!(
            failure.message,
            "OmniRoute API unreachable: POST /v1/chat/completions: down"
        );
        assert!(resp.is_none());
    }
}
