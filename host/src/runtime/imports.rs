//! The three imports of the `tool` world, implemented on the call's state.
//! Each is a thin adapter: the policy lives in `gateway` (what may be sent),
//! `session` (ledger, budget guard, state) and `capability`.

use super::bindings::{gateway, progress, session};
use super::state::{CallContext, CallState};
use crate::capability::{CapabilitySet, Method, Scope};
use crate::gateway::{GatewayError, GatewayRequest, GatewayResponse};
use crate::session::budget::{self, BudgetGuard, Decision};
use crate::session::ledger::{self, Annotation, FromExchange, LedgerEntry};
use crate::session::{KEY_BUDGET_GUARD, KEY_LEDGER_ANNOTATION, KEY_REQUEST_PREFIX};
use futures::StreamExt;
// Headers the host adds to a response to say what it did.
use omniroute_tool_contract::completion::headers::{
    MCP_DEGRADED_FROM as HEADER_DEGRADED_FROM, MCP_DEGRADED_TO as HEADER_DEGRADED_TO, MCP_WARNING as HEADER_WARNING,
};
use std::time::{Instant, SystemTime};

/// How many requests of one `send-all` run at once by default.
const SEND_ALL_CONCURRENCY: usize = 16;

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

/// One brokered request and what happened to it.
struct Exchange {
    /// What was actually sent (the budget guard may have changed the model).
    sent: GatewayRequest,
    result: Result<GatewayResponse, GatewayError>,
    sent_at: SystemTime,
    elapsed_ms: u32,
    degraded_from: Option<String>,
    /// The guard refused it: nothing left the host, nothing to record.
    refused: bool,
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

/// Sends one request for a call: the budget guard for completions, then the
/// broker (which checks the capability set).
async fn exchange(ctx: &CallContext, mut req: GatewayRequest) -> Exchange {
    let sent_at = SystemTime::now();
    let started = Instant::now();
    let mut warnings = Vec::new();
    let mut degraded_from = None;
    let guard = if ledger::is_completion(&req) && ctx.caps.has(Scope::ExecuteCompletions) {
        BudgetGuard::parse(ctx.session.get(&ctx.tool, KEY_BUDGET_GUARD).as_deref())
    } else {
        None
    };
    let spent_before = ctx.session.spent();
    if let Some(guard) = &guard {
        match guard.decide(spent_before) {
            Decision::Send { warnings: w } => warnings = w,
            Decision::Refuse(message) => return refused(req, message, sent_at),
            Decision::Degrade { tier } => match degrade(ctx, &mut req, &tier).await {
                Ok(Some(original)) => {
                    let target = requested_model(&req).unwrap_or_default();
                    warnings.push(budget::degraded_text(&original, &target, &tier));
                    degraded_from = Some(original);
                }
                Ok(None) => {}
                Err(message) => return refused(req, message, sent_at),
            },
        }
    }
    let mut result = ctx.broker.send(&ctx.caps, &req).await;
    let elapsed_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    journal(ctx, &req, &result, elapsed_ms);
    if let (Some(guard), Ok(resp)) = (&guard, &mut result) {
        let cost = LedgerEntry::from_exchange("", &req, &Ok(resp.clone()), sent_at, sent_at).cost;
        if warnings.is_empty() && !guard.exceeded(spent_before) && guard.exceeded(spent_before + cost.unwrap_or(0.0)) {
            warnings.push(guard.reached_text(spent_before + cost.unwrap_or(0.0)));
        }
        if let Some(from) = &degraded_from {
            resp.headers.push((HEADER_DEGRADED_FROM.to_owned(), from.clone()));
            resp.headers.push((HEADER_DEGRADED_TO.to_owned(), requested_model(&req).unwrap_or_default()));
        }
        resp.headers.extend(warnings.into_iter().map(|w| (HEADER_WARNING.to_owned(), w)));
    }
    Exchange {
        sent: req,
        result,
        sent_at,
        elapsed_ms,
        degraded_from,
        refused: false,
    }
}

/// Records the request's shape (never its path values, query or body).
fn journal(ctx: &CallContext, req: &GatewayRequest, result: &Result<GatewayResponse, GatewayError>, elapsed_ms: u32) {
    let template = crate::capability::template_for(req.method, &req.path).unwrap_or("(not permitted)");
    let (status, bytes, error) = match result {
        Ok(r) => (Some(r.status), r.body.len() as u64, None),
        Err(e) => (None, 0, Some(error_kind(e).to_owned())),
    };
    ctx.journal.lock().unwrap_or_else(|p| p.into_inner()).push(crate::audit::GatewayCall {
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

fn refused(req: GatewayRequest, message: String, sent_at: SystemTime) -> Exchange {
    Exchange {
        sent: req,
        result: Err(GatewayError::Refused(message)),
        sent_at,
        elapsed_ms: 0,
        degraded_from: None,
        refused: true,
    }
}

fn requested_model(req: &GatewayRequest) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(req.body.as_deref()?).ok()?;
    body.get("model")?.as_str().map(str::to_owned)
}

/// Points the completion at the degrade target. `Ok(Some(original))` when
/// the model changed, `Ok(None)` when it already was the target.
async fn degrade(ctx: &CallContext, req: &mut GatewayRequest, tier: &str) -> Result<Option<String>, String> {
    // Host-initiated reads for the host's own policy, not the tool's.
    let host_caps = CapabilitySet::new([Scope::ReadCombos, Scope::ReadModels]);
    let get = |path: &str| GatewayRequest {
        method: Method::Get,
        path: path.to_owned(),
        query: vec![],
        body: None,
    };
    let json = |r: Result<GatewayResponse, GatewayError>| {
        r.ok()
            .filter(|r| (200..300).contains(&r.status))
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
    };
    let (r_combos, r_pricing, r_nodes, r_models) =
        (get("/api/combos"), get("/api/pricing"), get("/api/provider-nodes"), get("/api/pricing/models"));
    let (combos, pricing, nodes, models) = futures::join!(
        ctx.broker.send(&host_caps, &r_combos),
        ctx.broker.send(&host_caps, &r_pricing),
        ctx.broker.send(&host_caps, &r_nodes),
        ctx.broker.send(&host_caps, &r_models),
    );
    let Some(combos) = json(combos) else {
        return Err(budget::no_target_text(tier));
    };
    let providers = omniroute_tool_contract::providers::Providers::from_json(json(nodes).as_ref(), json(models).as_ref());
    let target = budget::degrade_target(tier, &combos, json(pricing).as_ref(), &providers)
        .ok_or_else(|| budget::no_target_text(tier))?;
    let mut body: serde_json::Value = req
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| "Budget guard could not degrade: the completion body is not JSON; request not sent.".to_owned())?;
    let original = body.get("model").and_then(|m| m.as_str()).unwrap_or_default().to_owned();
    if original == target {
        return Ok(None);
    }
    body["model"] = serde_json::Value::String(target);
    req.body = Some(body.to_string());
    Ok(Some(original))
}

impl CallState {
    /// Takes `n` requests from the call's allowance, or says why not.
    fn take_requests(&mut self, n: usize) -> Result<(), gateway::Error> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if n > self.requests_left {
            return Err(gateway::Error::Invalid(format!(
                "this call may make at most {} gateway requests; {} left, {} asked",
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
        let total = reqs.len();
        let ctx = self.ctx.clone();
        let progress = self.ctx.progress.clone();
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let exchanges: Vec<Exchange> = futures::stream::iter(reqs)
            .map(|(label, req)| {
                let ctx = &ctx;
                let progress = &progress;
                let finished = &finished;
                async move {
                    let ex = exchange(ctx, req).await;
                    if let (Some(label), Some(sink)) = (label, progress) {
                        let done = finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        sink(done as f64, Some(total as f64), Some(ex.progress_text(&label)));
                    }
                    ex
                }
            })
            .buffered(max_in_flight.max(1))
            .collect()
            .await;
        exchanges
            .into_iter()
            .map(|ex| {
                self.record_if_completion(&ex);
                ex.to_wit()
            })
            .collect()
    }

    /// The broker side of the ledger: every completion that left the host
    /// is recorded from the wire, whatever the tool does afterwards.
    fn record_if_completion(&mut self, ex: &Exchange) {
        if ex.refused || !ledger::is_completion(&ex.sent) || matches!(ex.result, Err(GatewayError::Denied(_))) {
            return;
        }
        let mut entry = LedgerEntry::from_exchange(&self.ctx.tool, &ex.sent, &ex.result, ex.sent_at, SystemTime::now());
        entry.degraded_from = ex.degraded_from.clone();
        let shared = self.ctx.session.record(entry);
        self.ctx.routing_index.insert(&self.ctx.caller, &shared);
        self.completions.push(shared);
    }

    /// Applies `ledger-annotation` to a completion this call sent: by request
    /// id, or the newest one without an id (a failed send).
    fn annotate(&mut self, value: &str) -> Result<(), String> {
        let note: Annotation = serde_json::from_str(value).map_err(|e| {
            format!("ledger-annotation must be a JSON object with requestId, combo, role, fallbacksTriggered, degradedFrom: {e}")
        })?;
        let target = self.completions.iter().rev().find(|e| {
            let entry = ledger::lock(e);
            match &note.request_id {
                Some(id) => entry.request_id.as_deref() == Some(id.as_str()),
                None => entry.request_id.is_none(),
            }
        });
        match target {
            Some(entry) => {
                ledger::lock(entry).annotate(&note);
                Ok(())
            }
            None => Err("no completion sent by this call matches that requestId".to_owned()),
        }
    }
}

impl gateway::Host for CallState {
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
        let reqs = reqs.into_iter().map(|r| (Some(r.label), to_host(r.request))).collect();
        let limit = if max_in_flight == 0 { SEND_ALL_CONCURRENCY } else { (max_in_flight as usize).min(SEND_ALL_CONCURRENCY) };
        self.run_all(reqs, limit).await
    }
}

impl session::Host for CallState {
    async fn get(&mut self, key: String) -> Option<String> {
        if let Some(id) = key.strip_prefix(KEY_REQUEST_PREFIX) {
            let entry = self.ctx.routing_index.get(&self.ctx.caller, id)?;
            return serde_json::to_string(&entry).ok();
        }
        self.ctx.session.get(&self.ctx.tool, &key)
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), String> {
        if key == KEY_LEDGER_ANNOTATION {
            return self.annotate(&value);
        }
        self.ctx
            .session
            .set(&self.ctx.tool, &self.ctx.caps, &key, value)
            .map_err(|e| e.to_string())
    }
}

impl progress::Host for CallState {
    async fn report(&mut self, done: f64, total: Option<f64>, message: Option<String>) {
        if let Some(sink) = &self.ctx.progress {
            sink(done, total, message);
        }
    }
}
