//! One call's telemetry (the call's span and its metrics), from admission
//! to the committed audit row: the call service's use of the `telemetry`
//! primitives, kept here so `telemetry` depends on nothing the gateway
//! broker sits under.

use crate::app::App;
use crate::runtime::StopCause;
use crate::telemetry::metrics::{self, Metrics};
use crate::telemetry::{CallOutcome, trace};
use serde_json::{Map, Value};
use std::time::Instant;

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
struct InFlight(&'static Metrics);

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

