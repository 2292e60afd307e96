//! The WIT glue (wasm32 only): bindings for world `omniroute:tool/tool` and
//! implementations of [`Gateway`], [`Session`] and [`Progress`] over its
//! imports. Tool crates never use this module directly; `export_tool!` does.

use crate::gateway::{Gateway, GatewayError, GatewayResult, Method, Request, Response};
use crate::tool::{Ctx, Progress, Session, Tool, call_json};

wit_bindgen::generate!({
    world: "tool",
    path: "../../tools-wit/wit",
    pub_export_macro: true,
    export_macro_name: "__export_tool_world",
    default_bindings_module: "omniroute_tool_sdk::wit",
});

use omniroute::tool::{gateway, progress, session};

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

/// The host's per-session state, through the `session` import.
pub struct WitSession;

impl Session for WitSession {
    fn get(&self, key: &str) -> Option<String> {
        session::get(key)
    }

    fn set(&self, key: &str, value: &str) -> Result<(), String> {
        session::set(key, value)
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
