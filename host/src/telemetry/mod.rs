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
