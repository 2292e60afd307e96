//! What operators see: logs on stderr (in stdio mode stdout carries JSON-RPC
//! only, through a writer that never blocks the server and never writes a
//! line longer than [`stderr::MAX_LINE_BYTES`]), Prometheus metrics on their
//! own listener ([`metrics`], [`endpoint`]), and the per-call hook the call
//! path uses ([`CallTelemetry`]).

pub mod endpoint;
pub mod metrics;
pub mod stderr;
pub mod trace;

pub use metrics::CallOutcome;
pub use stderr::{LogGuard, StderrLog};

use crate::app::App;
use crate::runtime::StopCause;
use serde_json::{Map, Value};
use std::time::Instant;

/// Sends logs to stderr, never stdout, filtered by `filter` (tracing syntax).
/// Keep the guard until exit: dropping it flushes what is queued.
pub fn init_logging(filter: &str) -> Option<LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match StderrLog::start() {
        Ok((writer, guard)) => {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi).try_init();
            Some(guard)
        }
        Err(e) => {
            // No thread for the queue: write directly (may block on a full pipe).
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
            tracing::warn!("cannot start the stderr log thread ({e}); logging directly to stderr");
            None
        }
    }
}

/// How one call ended, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEnd {
    pub outcome: CallOutcome,
    /// The sandbox's stop cause (or the limit the call reached), if any.
    pub stop: Option<StopCause>,
}

impl CallEnd {
    /// An end without a sandbox stop.
    pub fn plain(outcome: CallOutcome) -> Self {
        Self { outcome, stop: None }
    }
}

/// The label a tool name gets: its own when a tool of that name is loaded,
/// else `unknown` (client strings never become label values).
fn tool_label(app: &App, name: &str) -> String {
    if app.registry().get(name).is_some() { name.to_owned() } else { "unknown".to_owned() }
}

/// One call's telemetry, from admission to the committed audit row. With
/// metrics off it holds a timestamp and does nothing else.
pub struct CallTelemetry {
    started: Instant,
    _in_flight: Option<InFlight>,
    /// The call's server span, when traces are exported.
    span: Option<trace::Span>,
}

/// Counts a call in `calls_in_flight` while it lives.
struct InFlight(&'static metrics::Metrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.calls_in_flight.dec();
    }
}

impl CallTelemetry {
    /// A call of `tool` admitted now; `meta` is the request's `_meta`, whose
    /// `traceparent` (W3C) becomes the parent of the call's span.
    pub fn start(app: &App, tool: &str, meta: &Map<String, Value>) -> Self {
        let in_flight = metrics::metrics().map(|m| {
            m.calls_in_flight.inc();
            InFlight(m)
        });
        let span = trace::enabled().then(|| {
            let tool = tool_label(app, tool);
            let traceparent = meta.get("traceparent").and_then(Value::as_str);
            trace::server_span(format!("tools/call {tool}"), traceparent).map(|mut span| {
                span.set("mcp.method.name", "tools/call");
                span.set("gen_ai.operation.name", "execute_tool");
                span.set("gen_ai.tool.name", tool);
                span
            })
        });
        Self { started: Instant::now(), _in_flight: in_flight, span: span.flatten() }
    }

    /// Time since the call was admitted.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Runs the argument check as a child span of the call's (failed when
    /// the arguments are invalid; the reason stays out of the span).
    pub fn validation<T, E>(&self, check: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let Some(parent) = &self.span else { return check() };
        let span = trace::child_span(Some(parent.context()), "validate_arguments", trace::SpanKind::Internal);
        let result = check();
        if let Some(mut span) = span {
            if result.is_err() {
                span.fail("the arguments do not match the tool's inputSchema");
            }
            span.end();
        }
        result
    }

    /// Runs the sandboxed call as a child span of the call's; gateway
    /// requests made inside become its children.
    pub async fn sandboxed<F: Future>(&self, fut: F) -> F::Output {
        let Some(parent) = &self.span else { return fut.await };
        let span = trace::child_span(Some(parent.context()), "sandbox.run", trace::SpanKind::Internal);
        let output = trace::within(span.as_ref().map(trace::Span::context), fut).await;
        if let Some(span) = span {
            span.end();
        }
        output
    }

    /// Records the end of the call: `commit` writes its audit row (timed,
    /// and counted as an audit failure when it errs); returns what it returned.
    pub async fn finish<T, E>(
        mut self,
        app: &App,
        tool: &str,
        tenant: &str,
        end: CallEnd,
        commit: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let m = metrics::metrics();
        if m.is_none() && self.span.is_none() {
            return commit.await;
        }
        let audit_span = self.span.as_ref().and_then(|s| trace::child_span(Some(s.context()), "audit.commit", trace::SpanKind::Internal));
        let audit_started = Instant::now();
        let result = commit.await;
        if let Some(mut span) = audit_span {
            if result.is_err() {
                span.fail("the audit row could not be written");
            }
            span.end();
        }
        if let Some(mut span) = self.span.take() {
            span.set("omniroute.call.outcome", format!("{:?}", end.outcome));
            if let Some(cause) = end.stop {
                span.set("omniroute.stop_cause", cause.as_str());
            }
            if end.outcome != CallOutcome::ok {
                span.set("error.type", format!("{:?}", end.outcome));
                span.fail(format!("{:?}", end.outcome));
            }
            span.end();
        }
        if let Some(m) = m {
            m.audit_commit(audit_started.elapsed(), result.is_ok());
            m.call(&tool_label(app, tool), tenant, end.outcome, end.stop, self.started.elapsed());
        }
        result
    }
}

/// One gateway request: timed and counted by route template and status
/// class, and, with traces on, a client span whose context is current
/// while `send` runs (the broker puts it in the `traceparent` header).
pub async fn gateway_request<T>(
    method: crate::capability::Method,
    path: &str,
    status: impl Fn(&T) -> Option<u16>,
    send: impl Future<Output = T>,
) -> T {
    let m = metrics::metrics();
    let span = trace::current().is_some().then(|| {
        let route = crate::capability::template_for(method, path).unwrap_or("other");
        trace::child_span(None, format!("{} {route}", method.as_str()), trace::SpanKind::Client).map(|mut span| {
            span.set("http.request.method", method.as_str());
            span.set("url.template", route);
            span
        })
    });
    let span = span.flatten();
    if m.is_none() && span.is_none() {
        return send.await;
    }
    let started = Instant::now();
    let result = trace::within(span.as_ref().map(trace::Span::context), send).await;
    let code = status(&result);
    if let Some(mut span) = span {
        match code {
            Some(code) => {
                span.set("http.response.status_code", i64::from(code));
                if code >= 500 {
                    span.fail(format!("HTTP {code}"));
                }
            }
            None => span.fail("no response"),
        }
        span.end();
    }
    if let Some(m) = m {
        // Only permitted paths are sent, so a template always exists.
        let route = crate::capability::template_for(method, path).unwrap_or("other");
        m.gateway(method.as_str(), route, code, started.elapsed());
    }
    result
}

/// The `traceparent` header for an outgoing gateway request, when traces are on.
pub fn traceparent() -> Option<String> {
    trace::current().map(|c| c.header())
}
