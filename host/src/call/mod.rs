//! The call service: one `tools/call` for one principal, end to end.
//!
//! Every transport reaches the tools through [`CallService::call`] with the
//! [`Caller`] it resolved. Admission (the tool allow-list, rate and
//! concurrency limits) is decided here from the principal, then the call runs
//! (lookup, scope check, argument validation, sandbox, audit row committed)
//! and ends in a typed [`Outcome`].

mod observe;
mod result;
mod run;

pub use result::{error_result, output_result};
pub use run::meta_scopes;

use crate::app::App;
use crate::auth::Principal;
use crate::registry::Registry;
use crate::runtime::ProgressSink;
use crate::session::Session;
use rmcp::model::CallToolResult;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// Who is calling, and over which legacy session (stdio: the process; HTTP:
/// the `Mcp-Session-Id`, or a throwaway one for a stateless request).
#[derive(Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub session: Arc<Session>,
}

/// One `tools/call` as the client sent it.
pub struct ToolCall {
    pub name: String,
    pub arguments: Option<Map<String, Value>>,
    /// The request's `_meta` (its scopes can narrow, never widen, the grants).
    pub meta: Map<String, Value>,
    /// Where `progress.report` goes, when the client asked for progress.
    pub progress: Option<ProgressSink>,
    /// Fires when the client cancels the request: the guest is stopped.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

/// How a call ended. Every outcome has been audited before it is returned.
#[derive(Debug)]
pub enum Outcome {
    /// The agent's answer: the tool's result, or a refusal it can act on.
    Answered(CallToolResult),
    /// No tool has this name: a protocol error (invalid params) for the client.
    UnknownTool(String),
}

/// Runs tool calls for every transport.
pub struct CallService {
    app: Arc<App>,
    /// Calls in flight; graceful shutdown waits for them.
    in_flight: TaskTracker,
}

impl CallService {
    pub fn new(app: Arc<App>) -> Self {
        Self { app, in_flight: TaskTracker::new() }
    }

    /// The server the calls run on.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The current tools. Hold the `Arc` for the length of one request.
    pub fn registry(&self) -> Arc<Registry> {
        self.app.registry()
    }

    /// The calls in flight, for graceful shutdown (close it, then wait).
    pub fn in_flight(&self) -> &TaskTracker {
        &self.in_flight
    }

    /// Admits and runs one call for `caller`.
    pub async fn call(&self, caller: &Caller, call: ToolCall) -> Outcome {
        let principal = &caller.principal;
        if !principal.may_call(&call.name) && self.app.registry().get(&call.name).is_some() {
            let message = format!("The tool {} is not available to tenant {}.", call.name, principal.caller());
            return run::refuse(&self.app, caller, call, "tool_not_allowed", message).await;
        }
        let permit = match principal.admit_call_in(self.app.state()).await {
            Ok(permit) => permit,
            Err(message) => return run::refuse(&self.app, caller, call, "tenant_limit", message).await,
        };
        let outcome = self.in_flight.track_future(run::run(&self.app, caller, call)).await;
        drop(permit);
        outcome
    }
}
