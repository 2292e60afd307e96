//! The WIT glue (wasm32 only): bindings for world `omniroute:tool/tool` and
//! implementations of [`Gateway`], [`Session`] (over the typed `state`
//! import) and [`Progress`]. Tool crates never use this module directly;
//! `export_tool!` does.

use crate::gateway::{Gateway, GatewayError, GatewayResult, Method, Request, Response};
use crate::tool::{Ctx, Progress, Session, Tool, call_json};
use omniroute_tool_contract::budget::{BudgetGuard, GuardAction};
use omniroute_tool_contract::ledger::{Annotation, LedgerEntry};

wit_bindgen::generate!({
    world: "tool",
    path: "../../tools-wit/wit",
    pub_export_macro: true,
    export_macro_name: "__export_tool_world",
    default_bindings_module: "omniroute_tool_sdk::wit",
});

use omniroute::tool::{gateway, progress, state};

fn to_wit(req: &Request) -> gateway::Request {
    gateway::Request {
        method: match req.method {
            Method::Get => gateway::Method::Get,
            Method::Post => gateway::Method::Post,
            Method::Put => gateway::Method::Put,
            Method::Patch => gateway::Method::Patch,
            Method::Delete => gateway::Method::Delete,
        },
        path: req.path.clone(),
        query: req.query.clone(),
        body: req.body.clone(),
    }
}

fn from_wit(res: Result<gateway::Response, gateway::Error>) -> GatewayResult {
    match res {
        Ok(r) => Ok(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
            elapsed_ms: r.elapsed_ms,
        }),
        Err(gateway::Error::Denied(detail)) => Err(GatewayError::Denied(detail)),
        Err(gateway::Error::Timeout(seconds)) => Err(GatewayError::Timeout(seconds)),
        Err(gateway::Error::Unreachable(reason)) => Err(GatewayError::Unreachable(reason)),
        Err(gateway::Error::TooLarge) => Err(GatewayError::TooLarge),
        Err(gateway::Error::Invalid(detail)) => Err(GatewayError::Invalid(detail)),
        Err(gateway::Error::Auth(message)) => Err(GatewayError::Auth(message)),
        Err(gateway::Error::Refused(message)) => Err(GatewayError::Refused(message)),
    }
}

/// The host's broker, through the `gateway` import.
pub struct WitGateway;

impl Gateway for WitGateway {
    fn send(&self, req: &Request) -> GatewayResult {
        from_wit(gateway::send(&to_wit(req)))
    }

    /// One `send-all` import call: the host runs the requests concurrently.
    fn send_all(&self, reqs: &[Request]) -> Vec<GatewayResult> {
        let wit: Vec<gateway::Request> = reqs.iter().map(to_wit).collect();
        gateway::send_all(&wit).into_iter().map(from_wit).collect()
    }

    /// One `send-all-labelled` import call: concurrent, capped, with a
    /// progress notification per finished request.
    fn send_all_labelled(
        &self,
        reqs: &[(String, Request)],
        max_in_flight: u32,
    ) -> Vec<GatewayResult> {
        let wit: Vec<gateway::LabelledRequest> = reqs
            .iter()
            .map(|(label, req)| gateway::LabelledRequest {
                label: label.clone(),
                request: to_wit(req),
            })
            .collect();
        gateway::send_all_labelled(&wit, max_in_flight)
            .into_iter()
            .map(from_wit)
            .collect()
    }
}

/// The host's session state, through the typed `state` import.
pub struct WitSession;

impl Session for WitSession {
    fn get(&self, key: &str) -> Option<String> {
        state::get(key)
    }

    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        state::set(key, value)
    }

    fn session_start(&self) -> Option<String> {
        Some(state::session_start())
    }

    fn ledger(&self) -> Vec<LedgerEntry> {
        state::ledger().into_iter().map(entry_from_wit).collect()
    }

    fn find_request(&self, request_id: &str) -> Option<LedgerEntry> {
        state::find_request(request_id).map(entry_from_wit)
    }

    fn budget_guard(&self) -> Option<BudgetGuard> {
        state::guard().map(|g| BudgetGuard {
            session_id: g.session_id,
            max_cost: g.max_cost,
            action: match g.action {
                state::GuardAction::Degrade => GuardAction::Degrade,
                state::GuardAction::Block => GuardAction::Block,
                state::GuardAction::Alert => GuardAction::Alert,
            },
            degrade_to_tier: g.degrade_to_tier,
            created_at: g.created_at,
        })
    }

    fn set_budget_guard(&self, guard: &BudgetGuard) -> Result<(), String> {
        state::set_guard(&state::BudgetGuard {
            session_id: guard.session_id.clone(),
            max_cost: guard.max_cost,
            action: match guard.action {
                GuardAction::Degrade => state::GuardAction::Degrade,
                GuardAction::Block => state::GuardAction::Block,
                GuardAction::Alert => state::GuardAction::Alert,
            },
            degrade_to_tier: guard.degrade_to_tier.clone(),
            created_at: guard.created_at.clone(),
        })
    }

    fn handle(&self) -> Option<String> {
        state::handle()
    }

    fn annotate(&self, note: &Annotation) -> Result<(), String> {
        state::annotate(&state::Annotation {
            request_id: note.request_id.clone(),
            combo: note.combo.clone(),
            role: note.role.clone(),
            fallbacks_triggered: note.fallbacks_triggered,
            degraded_from: note.degraded_from.clone(),
        })
    }
}

fn entry_from_wit(e: state::LedgerEntry) -> LedgerEntry {
    LedgerEntry {
        request_id: e.request_id,
        sent_at: e.sent_at,
        received_at: e.received_at,
        origin: e.origin,
        requested_model: e.requested_model,
        combo: e.combo,
        role: e.role,
        status: e.status,
        success: e.success,
        provider: e.provider,
        model: e.model,
        cost: e.cost,
        tokens_in: e.tokens_in,
        tokens_out: e.tokens_out,
        latency_ms: e.latency_ms,
        cache: e.cache,
        fallbacks_triggered: e.fallbacks_triggered,
        degraded_from: e.degraded_from,
        error: e.error,
    }
}

/// Progress notifications, through the `progress` import.
pub struct WitProgress;

impl Progress for WitProgress {
    fn report(&self, done: f64, total: Option<f64>, message: Option<&str>) {
        progress::report(done, total, message);
    }
}

/// The body of the `call` export for `T`, against the real imports.
pub fn run<T: Tool>(input: &str) -> Result<String, String> {
    call_json::<T>(
        input,
        &Ctx {
            gateway: &WitGateway,
            session: &WitSession,
            progress: &WitProgress,
        },
    )
}
