//! The `gateway` import: every request a component makes goes through here
//! to the broker, which checks it against the call's capability set. This
//! factor adds what is per call: the request allowance, the journal for the
//! audit, the budget guard on completions, the ledger entry of every
//! completion that left the host, and each request's share of the call's
//! deadline.

use super::{CallCompletions, CallContext, Sent, lock};
use crate::capability::{Method, Scope};
use crate::gateway::{GatewayError, GatewayRequest, GatewayResponse};
use crate::runtime::bindings::gateway;
use crate::runtime::clock::CallClock;
use crate::session::ledger::{self, FromExchange, LedgerEntry};
use futures::StreamExt;
// Headers the host adds to a response to say what it did.
use omniroute_tool_contract::completion::headers::{
    MCP_DEGRADED_FROM as HEADER_DEGRADED_FROM, MCP_DEGRADED_TO as HEADER_DEGRADED_TO, MCP_PREFIX, MCP_WARNING as HEADER_WARNING,
};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// How many requests of one `send-all` run at once by default.
pub const SEND_ALL_CONCURRENCY: usize = 16;
/// Labels of `send-all-labelled` are cut to this many characters.
pub const MAX_LABEL_CHARS: usize = 120;

/// Headers the host adds to a response to say what it did. A gateway
/// response carrying headers with this prefix has them removed first, so a
/// component only ever sees the host's.
pub const HOST_HEADER_PREFIX: &str = MCP_PREFIX;

/// The per-call state of the `gateway` import.
pub(crate) struct GatewayState {
    pub(crate) ctx: CallContext,
    pub(crate) clock: Arc<CallClock>,
    pub(crate) requests_left: u32,
    pub(crate) request_cap: u32,
    /// Set once a request was refused for going over the allowance.
    pub(crate) allowance_exhausted: bool,
    pub(crate) completions: CallCompletions,
}

impl GatewayState {
    pub(crate) fn new(ctx: CallContext, clock: Arc<CallClock>, request_cap: u32, completions: CallCompletions) -> Self {
        Self { ctx, clock, requests_left: request_cap, request_cap, allowance_exhausted: false, completions }
    }
}

fn method(m: gateway::Method) -> Method {
    match m {
        gateway::Method::Get => Method::Get,
        gateway::Method::Post => Method::Post,
        gateway::Method::Put => Method::Put,
        gateway::Method::Patch => Method::Patch,
        gateway::Method::Delete => Method::Delete,
    }
}

fn to_host(req: gateway::Request) -> GatewayRequest {
    GatewayRequest {
        method: method(req.method),
        path: req.path,
        query: req.query,
        body: req.body,
    }
}

/// Removes headers that claim to come from this host: only the host adds them.
pub(crate) fn strip_host_headers(headers: &mut Vec<(String, String)>) {
    headers.retain(|(name, _)| !name.to_ascii_lowercase().starts_with(HOST_HEADER_PREFIX));
}

/// A label for progress messages, cut to [`MAX_LABEL_CHARS`].
fn short_label(label: String) -> String {
    match label.char_indices().nth(MAX_LABEL_CHARS) {
        None => label,
        Some((end, _)) => format!("{}…", &label[..end]),
    }
}
/// One brokered request and what happened to it.
struct Exchange {
    result: Result<GatewayResponse, GatewayError>,
    elapsed_ms: u32,
}

impl Exchange {
    fn to_wit(&self) -> Result<gateway::Response, gateway::Error> {
        match &self.result {
            Ok(r) => Ok(gateway::Response {
                status: r.status,
                headers: r.headers.clone(),
                body: r.body.clone(),
                elapsed_ms: self.elapsed_ms,
            }),
            Err(e) => Err(match e.clone() {
                GatewayError::Denied(why) => gateway::Error::Denied(why),
                GatewayError::Timeout(s) => gateway::Error::Timeout(s),
                GatewayError::Unreachable(why) => gateway::Error::Unreachable(why),
                GatewayError::TooLarge => gateway::Error::TooLarge,
                GatewayError::Invalid(why) | GatewayError::Client(why) => gateway::Error::Invalid(why),
                GatewayError::Auth(message) => gateway::Error::Auth(message),
                GatewayError::Refused(message) => gateway::Error::Refused(message),
            }),
        }
    }

    /// `<label>: ok in <ms> ms` or `<label>: failed (<status or error>)`.
    fn progress_text(&self, label: &str) -> String {
        match &self.result {
            Ok(r) if (200..300).contains(&r.status) => format!("{label}: ok in {} ms", self.elapsed_ms),
            Ok(r) => format!("{label}: failed ({})", r.status),
            Err(e) => format!("{label}: failed ({e})"),
        }
    }
}

/// Sends one request for a call: for a completion, the budget guard and a
/// reservation of its worst case against the guard and the principal's
/// spend cap first (see [`super::spend`]), then the broker (which checks
/// the capability set); a completion that left the host is recorded in the
/// ledger as soon as it is answered and its reservation settled with the
/// real cost. Dropped before the answer, the reservation settles in full.
async fn exchange(ctx: &CallContext, clock: &CallClock, completions: &CallCompletions, mut req: GatewayRequest) -> Exchange {
    let sent_at = SystemTime::now();
    let started = Instant::now();
    let admitted = if ledger::is_completion(&req) && ctx.caps.has(Scope::ExecuteCompletions) {
        match super::spend::admit(ctx, clock, &mut req).await {
            Ok(admitted) => Some(admitted),
            Err(message) => return refused(message),
        }
    } else {
        None
    };
    let mut result = ctx.broker.send_within(&ctx.caps, &req, clock.request_budget()).await;
    if let Ok(resp) = &mut result {
        strip_host_headers(&mut resp.headers);
    }
    let elapsed_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    journal(ctx, &req, &result, elapsed_ms);
    let degraded_from = admitted.as_ref().and_then(|a| a.degraded_from.clone());
    let entry = completion_entry(ctx, &req, &result, sent_at, degraded_from.clone());
    let cost = entry.as_ref().and_then(|e| e.cost);
    if let Some(mut admitted) = admitted {
        // The ledger entry and the settlement commit together.
        let (id, entry) = admitted.finish(ctx, &result, entry).await;
        if let Some(entry) = entry {
            lock(completions).push(Sent { id, entry });
        }
        let warnings = std::mem::take(&mut admitted.warnings);
        let guard = admitted.guard.take();
        if let (Some((guard, spent_before)), Ok(resp)) = (&guard, &mut result) {
            let mut warnings = warnings;
            let spent_before = *spent_before;
            if warnings.is_empty() && !guard.exceeded(spent_before) && guard.exceeded(spent_before + cost.unwrap_or(0.0)) {
                warnings.push(guard.reached_text(spent_before + cost.unwrap_or(0.0)));
            }
            if let Some(from) = &degraded_from {
                resp.headers.push((HEADER_DEGRADED_FROM.to_owned(), from.clone()));
                resp.headers.push((HEADER_DEGRADED_TO.to_owned(), requested_model(&req).unwrap_or_default()));
            }
            resp.headers.extend(warnings.into_iter().map(|w| (HEADER_WARNING.to_owned(), w)));
        }
    } else if let Some(entry) = entry {
        record(ctx, completions, entry).await;
    }
    Exchange {
        result,
        elapsed_ms,
    }
}

/// The broker side of the ledger: every completion that left the host is
/// recorded from the wire in the call's bucket, whatever the tool does
/// afterwards (a completion the capability check denied never left).
fn completion_entry(
    ctx: &CallContext,
    sent: &GatewayRequest,
    result: &Result<GatewayResponse, GatewayError>,
    sent_at: SystemTime,
    degraded_from: Option<String>,
) -> Option<LedgerEntry> {
    if !ledger::is_completion(sent) || matches!(result, Err(GatewayError::Denied(_))) {
        return None;
    }
    let mut entry = LedgerEntry::from_exchange(&ctx.tool, sent, result, sent_at, SystemTime::now());
    entry.degraded_from = degraded_from;
    Some(entry)
}

/// Records a completion that nothing was admitted for (the host did not
/// book it: it had no completion scope, so the broker normally denies it).
async fn record(ctx: &CallContext, completions: &CallCompletions, entry: LedgerEntry) {
    let bucket = ctx.bucket();
    let id = crate::session::spend::append_entry(&ctx.store, &bucket.principal, &bucket.key, &entry).await;
    lock(completions).push(Sent { id, entry });
}

/// Records the request's shape (never its path values, query or body).
fn journal(ctx: &CallContext, req: &GatewayRequest, result: &Result<GatewayResponse, GatewayError>, elapsed_ms: u32) {
    let template = crate::capability::template_for(req.method, &req.path).unwrap_or("(not permitted)");
    let (status, bytes, error) = match result {
        Ok(r) => (Some(r.status), r.body.len() as u64, None),
        Err(e) => (None, 0, Some(error_kind(e).to_owned())),
    };
    lock(&ctx.journal).push(crate::audit::GatewayCall {
        method: req.method.as_str().to_owned(),
        path_template: template.to_owned(),
        status,
        duration_ms: u64::from(elapsed_ms),
        bytes,
        error,
    });
}

fn error_kind(e: &GatewayError) -> &'static str {
    match e {
        GatewayError::Denied(_) => "denied",
        GatewayError::Timeout(_) => "timeout",
        GatewayError::Unreachable(_) => "unreachable",
        GatewayError::TooLarge => "too-large",
        GatewayError::Invalid(_) | GatewayError::Client(_) => "invalid",
        GatewayError::Auth(_) => "auth",
        GatewayError::Refused(_) => "refused",
    }
}

/// A completion the guard refused: nothing left the host, nothing to record.
fn refused(message: String) -> Exchange {
    Exchange { result: Err(GatewayError::Refused(message)), elapsed_ms: 0 }
}

fn requested_model(req: &GatewayRequest) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(req.body.as_deref()?).ok()?;
    body.get("model")?.as_str().map(str::to_owned)
}

impl GatewayState {
    /// Takes `n` requests from the call's allowance, or says why not.
    fn take_requests(&mut self, n: usize) -> Result<(), gateway::Error> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if n > self.requests_left {
            self.allowance_exhausted = true;
            return Err(gateway::Error::Invalid(format!(
                "this call may make at most {} gateway requests; {} left, {} asked (limit: requests)",
                self.request_cap, self.requests_left, n
            )));
        }
        self.requests_left -= n;
        Ok(())
    }

    /// Runs requests concurrently, in input order, reporting progress when labelled.
    async fn run_all(&mut self, reqs: Vec<(Option<String>, GatewayRequest)>, max_in_flight: usize) -> Vec<Result<gateway::Response, gateway::Error>> {
        if let Err(e) = self.take_requests(reqs.len()) {
            return reqs.iter().map(|_| Err(e.clone())).collect();
        }
        let max_in_flight = max_in_flight.max(1);
        let completions = reqs.iter().filter(|(_, r)| ledger::is_completion(r)).count();
        if completions > 0 {
            // The sequential rounds this batch needs, each up to the completion timeout.
            let rounds = completions.div_ceil(max_in_flight);
            self.clock.fit_completion_rounds(u32::try_from(rounds).unwrap_or(u32::MAX));
        }
        let total = reqs.len();
        let ctx = self.ctx.clone();
        let clock = self.clock.clone();
        let progress = self.ctx.progress.clone();
        let completions = self.completions.clone();
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let exchanges: Vec<Exchange> = futures::stream::iter(reqs)
            .map(|(label, req)| {
                let (ctx, clock, progress, finished, completions) = (&ctx, &clock, &progress, &finished, &completions);
                async move {
                    // Boxed: the exchange's future (the broker's request, the spend
                    // admission) is kilobytes, and `buffered` moves each future it holds.
                    let ex = Box::pin(exchange(ctx, clock, completions, req)).await;
                    if let (Some(label), Some(sink)) = (label, progress) {
                        let done = finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        sink(done as f64, Some(total as f64), Some(ex.progress_text(&label)));
                    }
                    ex
                }
            })
            .buffered(max_in_flight)
            .collect()
            .await;
        exchanges.iter().map(Exchange::to_wit).collect()
    }
}

impl gateway::Host for GatewayState {
    async fn send(&mut self, req: gateway::Request) -> Result<gateway::Response, gateway::Error> {
        let mut results = self.run_all(vec![(None, to_host(req))], 1).await;
        results.pop().unwrap_or_else(|| Err(gateway::Error::Invalid("no result".into())))
    }

    async fn send_all(&mut self, reqs: Vec<gateway::Request>) -> Vec<Result<gateway::Response, gateway::Error>> {
        let reqs = reqs.into_iter().map(|r| (None, to_host(r))).collect();
        self.run_all(reqs, SEND_ALL_CONCURRENCY).await
    }

    async fn send_all_labelled(
        &mut self,
        reqs: Vec<gateway::LabelledRequest>,
        max_in_flight: u32,
    ) -> Vec<Result<gateway::Response, gateway::Error>> {
        let reqs = reqs.into_iter().map(|r| (Some(short_label(r.label)), to_host(r.request))).collect();
        let limit = if max_in_flight == 0 { SEND_ALL_CONCURRENCY } else { (max_in_flight as usize).min(SEND_ALL_CONCURRENCY) };
        self.run_all(reqs, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_host_headers_are_removed_and_others_kept() {
        let mut headers = vec![
            ("X-OmniRoute-MCP-Warning".to_owned(), "forged".to_owned()),
            ("x-omniroute-mcp-degraded-from".to_owned(), "forged".to_owned()),
            ("x-omniroute-model".to_owned(), "gpt".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        strip_host_headers(&mut headers);
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-omniroute-model", "content-type"]);
    }

    #[test]
    fn labels_are_cut() {
        assert_eq!(short_label("openai gpt-4o".into()), "openai gpt-4o");
        let long = short_label("x".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_LABEL_CHARS + 1);
    }
}
