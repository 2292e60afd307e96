//! OpenTelemetry traces of tool calls, exported over OTLP/HTTP (JSON
//! encoding) when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; off otherwise.
//!
//! One server span per `tools/call` (named and attributed per the MCP
//! semantic conventions: `tools/call {tool}`, `mcp.method.name`,
//! `gen_ai.tool.name`), whose parent is the client's `_meta.traceparent`
//! (W3C trace context) when it sent one; child spans for argument validation, the sandboxed run,
//! each gateway request (which carries the span in its own `traceparent`
//! header, so the gateway's traces join) and the audit commit. Spans carry
//! names, ids, status codes and outcomes, never argument values or prompts.
//!
//! The current span travels with the call's future in a task-local, so the
//! gateway broker finds it without every layer passing it along.

use serde_json::{Value, json};
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// W3C trace context: the ids a span hands to its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl SpanContext {
    /// Parses a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`); `None`
    /// for anything malformed, all-zero ids or version `ff`, as the W3C
    /// spec says to ignore them.
    pub fn parse(header: &str) -> Option<SpanContext> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version.eq_ignore_ascii_case("ff") || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flag = [0u8; 1];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        hex::decode_to_slice(flags, &mut flag).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] || trace.chars().any(|c| c.is_ascii_uppercase()) {
            return None;
        }
        Some(SpanContext { trace_id, span_id, flags: flag[0] })
    }

    /// The `traceparent` header value naming this span.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", hex::encode(self.trace_id), hex::encode(self.span_id), self.flags)
    }

    /// A child of `self` (same trace, new span id).
    fn child(&self) -> SpanContext {
        SpanContext { span_id: random_span_id(), ..*self }
    }

    /// A new trace's root (sampled).
    fn root() -> SpanContext {
        let mut trace_id = [0u8; 16];
        if getrandom::fill(&mut trace_id).is_err() || trace_id == [0; 16] {
            trace_id = fallback_id().to_be_bytes();
        }
        SpanContext { trace_id, span_id: random_span_id(), flags: 1 }
    }
}

fn random_span_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    if getrandom::fill(&mut id).is_err() || id == [0; 8] {
        id = (fallback_id() as u64 | 1).to_be_bytes();
    }
    id
}

/// Ids when the OS RNG fails: unique within the process, never zero.
fn fallback_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    now ^ u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// OTLP span kinds.
#[derive(Debug, Clone, Copy)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// A span being timed; [`Span::end`] hands it to the exporter.
#[derive(Debug)]
pub struct Span {
    context: SpanContext,
    parent: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<(&'static str, Value)>,
    error: Option<String>,
}

impl Span {
    /// The ids children and outgoing requests carry.
    pub fn context(&self) -> SpanContext {
        self.context
    }

    /// Adds an attribute (a name from the semantic conventions; never an
    /// argument value).
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        self.attributes.push((key, value.into()));
    }

    /// Marks the span failed with a short, value-free description.
    pub fn fail(&mut self, description: impl Into<String>) {
        self.error = Some(description.into());
    }

    /// Ends the span now and queues it for export.
    pub fn end(self) {
        if let Some(exporter) = EXPORTER.get() {
            exporter.queue(self.to_otlp(SystemTime::now()));
        }
    }

    fn to_otlp(&self, end: SystemTime) -> Value {
        let nanos = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_string();
        let attributes: Vec<Value> = self.attributes.iter().map(|(k, v)| json!({ "key": k, "value": any_value(v) })).collect();
        let mut span = json!({
            "traceId": hex::encode(self.context.trace_id),
            "spanId": hex::encode(self.context.span_id),
            "name": self.name,
            "kind": self.kind as u8,
            "startTimeUnixNano": nanos(self.start),
            "endTimeUnixNano": nanos(end.max(self.start)),
            "attributes": attributes,
            "status": match &self.error {
                None => json!({ "code": 0 }),
                Some(message) => json!({ "code": 2, "message": message }),
            },
        });
        if let Some(parent) = self.parent {
            span["parentSpanId"] = json!(hex::encode(parent));
        }
        span
    }
}

/// An OTLP `AnyValue`.
fn any_value(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n.as_f64() }),
        Value::String(s) => json!({ "stringValue": s }),
        other => json!({ "stringValue": other.to_string() }),
    }
}

tokio::task_local! {
    /// The span the running code belongs to (the call's, or a child).
    static CURRENT: SpanContext;
}

/// Whether traces are exported (OTLP configured and the exporter started).
pub fn enabled() -> bool {
    EXPORTER.get().is_some()
}

/// The current span's context, when tracing is on and code runs inside one.
pub fn current() -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    CURRENT.try_with(|c| *c).ok()
}

/// Starts the server span of one request, child of the client's
/// `traceparent` when it sent a valid one; `None` when tracing is off.
pub fn server_span(name: String, traceparent: Option<&str>) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let parent = traceparent.and_then(SpanContext::parse);
    let context = match parent {
        Some(p) => p.child(),
        None => SpanContext::root(),
    };
    Some(Span {
        context,
        parent: parent.map(|p| p.span_id),
        name,
        kind: SpanKind::Server,
        start: SystemTime::now(),
        attributes: Vec::new(),
        error: None,
    })
}

/// Starts a child of `parent` (or of the current span).
pub fn child_span(parent: Option<SpanContext>, name: impl Into<String>, kind: SpanKind) -> Option<Span> {
    let parent = parent.or_else(current)?;
    Some(Span {
        context: parent.child(),
        parent: Some(parent.span_id),
        name: name.into(),
        kind,
        start: SystemTime::now(),
        attributes: Vec::new(),
        error: None,
    })
}

/// Runs `fut` with `span` as the current span (a no-op without one).
pub async fn within<F: Future>(span: Option<SpanContext>, fut: F) -> F::Output {
    match span {
        Some(context) => CURRENT.scope(context, fut).await,
        None => fut.await,
    }
}

/// The OTLP/HTTP exporter: spans are queued (never blocking a call; a full
/// queue drops and counts) and posted in batches by a background task.
struct Exporter {
    queue: mpsc::Sender<Value>,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Spans waiting for export at most; more are dropped (and logged).
const QUEUE: usize = 4096;
/// Largest batch per request, and how long a span waits for its batch.
const BATCH: usize = 512;
const BATCH_DELAY: Duration = Duration::from_millis(200);

impl Exporter {
    fn queue(&self, span: Value) {
        if self.queue.try_send(span).is_err() {
            tracing::debug!("trace export queue full; a span was dropped");
        }
    }
}

/// Where and how to export, from the standard OpenTelemetry variables.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The full traces URL (`…/v1/traces`).
    pub url: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS`.
    pub headers: Vec<(String, String)>,
    /// `OTEL_SERVICE_NAME`, default `omniroute-mcp`.
    pub service_name: String,
}

impl OtlpConfig {
    /// Reads the standard variables through `get`; `None` when traces are
    /// not configured (no endpoint, `OTEL_SDK_DISABLED=true`, or
    /// `OTEL_TRACES_EXPORTER=none`).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Option<OtlpConfig> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return None;
        }
        let url = match get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => format!("{}/v1/traces", get("OTEL_EXPORTER_OTLP_ENDPOINT")?.trim_end_matches('/')),
        };
        let headers = [get("OTEL_EXPORTER_OTLP_HEADERS"), get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")]
            .into_iter()
            .flatten()
            .flat_map(|list| {
                list.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), percent_decode(v.trim())))
                    .collect::<Vec<_>>()
            })
            .collect();
        let service_name = get("OTEL_SERVICE_NAME").unwrap_or_else(|| "omniroute-mcp".to_owned());
        Some(OtlpConfig { url, headers, service_name })
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// Starts the exporter when the environment configures OTLP (call once,
/// inside the runtime). Returns whether traces are on.
pub fn start_from_env() -> bool {
    match OtlpConfig::from_vars(|k| std::env::var(k).ok()) {
        Some(config) => start(config),
        None => false,
    }
}

/// Starts the exporter for `config` (idempotent: the first config wins).
pub fn start(config: OtlpConfig) -> bool {
    let (tx, rx) = mpsc::channel(QUEUE);
    if EXPORTER.set(Exporter { queue: tx }).is_err() {
        return true;
    }
    tracing::info!(url = %config.url, service = %config.service_name, "exporting traces over OTLP/HTTP (JSON)");
    tokio::spawn(export_loop(config, rx));
    true
}

async fn export_loop(config: OtlpConfig, mut rx: mpsc::Receiver<Value>) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot build the OTLP client, traces are not exported: {e}");
            return;
        }
    };
    let resource = json!({ "attributes": [
        { "key": "service.name", "value": { "stringValue": config.service_name } },
        { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
    ]});
    let mut failures_logged = false;
    while let Some(first) = rx.recv().await {
        let mut spans = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while spans.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => spans.push(span),
                _ => break,
            }
        }
        let body = json!({ "resourceSpans": [{
            "resource": resource,
            "scopeSpans": [{ "scope": { "name": "omniroute-mcp", "version": env!("CARGO_PKG_VERSION") }, "spans": spans }],
        }]});
        let mut request = client.post(&config.url).header("content-type", "application/json").body(body.to_string());
        for (k, v) in &config.headers {
            request = request.header(k, v);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => failures_logged = false,
            outcome => {
                if !failures_logged {
                    let why = match outcome {
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(url = %config.url, "OTLP trace export failed ({why}); spans of this batch are lost");
                    failures_logged = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_values_are_ignored() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = SpanContext::parse(good).unwrap();
        assert_eq!(ctx.header(), good);
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(SpanContext::parse(bad), None, "{bad}");
        }
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        assert_ne!(child.span_id, ctx.span_id);
    }

    #[test]
    fn otlp_variables_follow_the_specification() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(OtlpConfig::from_vars(vars(&[])), None);
        let c = OtlpConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"), ("OTEL_EXPORTER_OTLP_HEADERS", "a=b%20c, d=e")])).unwrap();
        assert_eq!(c.url, "http://c:4318/v1/traces");
        assert_eq!(c.headers, vec![("a".to_owned(), "b c".to_owned()), ("d".to_owned(), "e".to_owned())]);
        assert_eq!(c.service_name, "omniroute-mcp");
        let c = OtlpConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t/x")])).unwrap();
        assert_eq!(c.url, "http://t/x");
        assert_eq!(OtlpConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_SDK_DISABLED", "true")])), None);
        assert_eq!(OtlpConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_TRACES_EXPORTER", "none")])), None);
    }
}
