//! The MCP face of the server: an rmcp `ServerHandler` whose tools come from
//! the registry and whose calls go to the [`CallService`]. One handler value
//! per MCP session; the transport tells it who is calling
//! ([`ResolveCaller`]), so the handler has one shape for every transport.
//!
//! Cancellation: a `notifications/cancelled` for a running `tools/call`
//! (stdio, legacy HTTP sessions and 2026-07-28 requests alike) cancels
//! rmcp's request token, which stops the guest and drops its in-flight
//! gateway requests; rmcp then sends nothing more for that request. An HTTP
//! client that drops the connection of its `tools/call` cancels it the same
//! way ([`ClientGone`]), unless the call runs as a task ([`crate::tasks`]).

mod protocol;
mod tasks;
pub mod tasks_2025;

pub use tasks::PROGRESS_META;

use crate::call::{CallService, Caller, Outcome, ToolCall};
use crate::registry::ToolEntry;
use crate::runtime::ProgressSink;
use crate::tasks::Tasks;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CreateTaskResult, CustomRequest, CustomResult,
    GetTaskParams, GetTaskResult, Implementation, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, SubscriptionFilter, Tool, ToolAnnotations, UpdateTaskParams,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use rmcp::ErrorData as McpError;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Put by the HTTP transport into the extensions of a POST: cancelled when
/// the client goes away before the response has been sent in full, so a
/// call whose connection dropped stops like a cancelled one.
#[derive(Clone, Debug)]
pub struct ClientGone(pub CancellationToken);

/// How a transport tells the handler who sent a request and over which
/// legacy session (stdio: the operator and the process; HTTP: the tenant of
/// the bearer token and the `Mcp-Session-Id`).
pub trait ResolveCaller: Send + Sync + 'static {
    /// The caller of this request, or a protocol error when the transport
    /// cannot vouch for one.
    fn resolve(&self, context: &RequestContext<RoleServer>) -> Result<Caller, McpError>;
}

/// Serves one MCP session.
#[derive(Clone)]
pub struct McpHandler {
    service: Arc<CallService>,
    tasks: Arc<Tasks>,
    callers: Arc<dyn ResolveCaller>,
}

impl McpHandler {
    /// A handler for a new session whose callers `callers` resolves; the
    /// node's `tasks` are shared by all its sessions.
    pub fn new(service: Arc<CallService>, tasks: Arc<Tasks>, callers: Arc<dyn ResolveCaller>) -> Self {
        Self { service, tasks, callers }
    }
}

impl McpHandler {
    /// The tools `caller` may see, as tools/list shows them.
    fn listed_tools(&self, caller: &Caller) -> Vec<Tool> {
        let registry = self.service.registry();
        registry.tools().iter().filter(|t| caller.principal.lists(t.name(), &t.scopes)).map(|t| to_mcp_tool(t)).collect()
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("omniroute-mcp", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Monitor and control the OmniRoute AI gateway: health, combos, quotas, routing, costs and models. \
             Each tool runs sandboxed with only the gateway access its scopes allow.",
        )
    }

    /// Once the client is ready, tells it whenever a plugin reload changes
    /// the tool list, until its transport closes.
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        let app = self.service.app();
        if app.plugins().is_none() {
            return;
        }
        let mut changed = app.tools_changed();
        let peer = context.peer;
        tokio::spawn(async move {
            let mut alive = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tokio::select! {
                    update = changed.changed() => {
                        if update.is_err() {
                            break;
                        }
                        if let Err(e) = peer.notify_tool_list_changed().await {
                            tracing::debug!(error = %e, "tools/list_changed not delivered; the session is gone");
                            break;
                        }
                    }
                    _ = alive.tick() => {
                        if peer.is_transport_closed() {
                            break;
                        }
                    }
                }
            }
        });
    }

    /// MCP 2026-07-28 clients have no session to be told on: they learn of
    /// tool list changes (a plugin reload, or plugins arriving after start)
    /// through `subscriptions/listen`.
    fn accepted_subscription_filter(&self, _requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changed = self.service.app().tools_changed();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                update = changed.changed() => {
                    if update.is_err() || context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let caller = self.callers.resolve(&context)?;
        Ok(ListToolsResult::with_all_items(self.listed_tools(&caller)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = self.callers.resolve(&context)?;
        let mut meta = context.meta.0.0.clone();
        if let Some(m) = &request.meta {
            meta.extend(m.0.0.clone());
        }
        // A long tool runs as a task when the client can take a task handle.
        if context.client_capabilities().is_some_and(|c| c.supports_tasks()) && self.tasks.supports(&request.name) {
            let call = ToolCall { name: request.name.to_string(), arguments: request.arguments, meta, progress: None, cancel: None };
            let record = self.tasks.start(caller, call).await.map_err(tasks::to_mcp_error)?;
            return Ok(CallToolResponse::Task(CreateTaskResult::new(tasks::task_of(&record))));
        }
        let (progress, forwarder) = match context.meta.get_progress_token() {
            Some(token) => {
                let (sink, forwarder) = progress_sink(context.peer.clone(), token);
                (Some(sink), Some(forwarder))
            }
            None => (None, None),
        };
        let (cancel, _watch) = call_token(&context);
        let call = ToolCall { name: request.name.to_string(), arguments: request.arguments, meta, progress, cancel: Some(cancel.clone()) };
        // Boxed: the call's future (the sandboxed run, the audit commit) is
        // large, and rmcp moves the request's future into a task of its own;
        // boxed, a pointer moves instead of kilobytes, several times per request.
        let outcome = Box::pin(self.service.call(&caller, call)).await;
        // The call is over and its sink dropped: the forwarder sends the last
        // report it holds and ends, so progress precedes the result; a client
        // too slow to take even that does not hold the result back. A
        // cancelled call sends nothing further.
        if let Some(mut forwarder) = forwarder {
            if cancel.is_cancelled() {
                forwarder.abort();
            } else if tokio::time::timeout(std::time::Duration::from_secs(1), &mut forwarder).await.is_err() {
                forwarder.abort();
            }
        }
        match outcome {
            Outcome::Answered(result) => Ok(result.into()),
            Outcome::UnknownTool(name) => Err(McpError::invalid_params(
                format!("Unknown tool \"{name}\". Call tools/list to see the tools this server offers."),
                None,
            )),
        }
    }

    /// `tasks/get`: the caller's task, with its result once it has one.
    async fn get_task(&self, request: GetTaskParams, context: RequestContext<RoleServer>) -> Result<GetTaskResult, McpError> {
        let caller = self.callers.resolve(&context)?;
        let record = self.tasks.get(&caller, &request.task_id).await.map_err(tasks::to_mcp_error)?;
        Ok(tasks::get_result(&record))
    }

    /// `tasks/update`: no tool asks for input mid-call, so there is nothing
    /// to deliver; a known task is acknowledged, an unknown one is an error.
    async fn update_task(&self, request: UpdateTaskParams, context: RequestContext<RoleServer>) -> Result<(), McpError> {
        let caller = self.callers.resolve(&context)?;
        self.tasks.get(&caller, &request.task_id).await.map_err(tasks::to_mcp_error)?;
        Ok(())
    }

    /// `tasks/cancel`: stops the task (at once on the node running it, else
    /// within the poll interval); `tasks/get` says `cancelled` once stopped.
    async fn cancel_task(&self, request: CancelTaskParams, context: RequestContext<RoleServer>) -> Result<(), McpError> {
        let caller = self.callers.resolve(&context)?;
        self.tasks.cancel(&caller, &request.task_id).await.map_err(tasks::to_mcp_error)
    }

    /// Requests rmcp could not route: an unknown method, or a known one whose
    /// params do not parse. The answer names the problem without echoing
    /// what the client sent beyond a short prefix.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        if tasks_2025::is_ours(&request.method) {
            let caller = self.callers.resolve(&context)?;
            let tools = || {
                let list = ListToolsResult::with_all_items(self.listed_tools(&caller));
                serde_json::to_value(list).unwrap_or_default()
            };
            let answer = tasks_2025::answer(&self.tasks, caller.clone(), &request.method, request.params, tools, context.ct.clone()).await?;
            return Ok(CustomResult::new(answer));
        }
        Err(protocol::unroutable(&request.method, request.params.as_ref(), Some(&context.meta.0.0)))
    }
}

/// The token that stops a call: rmcp's request token (`notifications/cancelled`,
/// the end of the session, a dropped 2026-07-28 request), or the HTTP
/// client going away mid-call ([`ClientGone`]). The returned guard ends the
/// watch when the call is over.
fn call_token(context: &RequestContext<RoleServer>) -> (CancellationToken, Option<AbortOnDrop>) {
    let gone = context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientGone>())
        .map(|g| g.0.clone());
    let Some(gone) = gone else {
        return (context.ct.clone(), None);
    };
    let token = context.ct.child_token();
    let (watched, request) = (token.clone(), context.ct.clone());
    let watch = tokio::spawn(async move {
        tokio::select! {
            () = gone.cancelled() => {
                tracing::info!("the HTTP client went away mid-call; cancelling the call");
                watched.cancel();
            }
            () = request.cancelled() => {}
            () = watched.cancelled() => {}
        }
    });
    (token, Some(AbortOnDrop(watch)))
}

/// Aborts a helper task when the call it watches is over.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn to_mcp_tool(entry: &ToolEntry) -> Tool {
    let d = &entry.description;
    let mut tool = Tool::new(d.name.clone(), d.description.clone(), Arc::new(d.input_schema.clone()));
    if let Some(title) = &d.title {
        tool = tool.with_title(title.clone());
    }
    if let Some(schema) = &d.output_schema {
        tool = tool.with_raw_output_schema(Arc::new(schema.clone()));
    }
    let a = &d.annotations;
    tool.with_annotations(ToolAnnotations::from_raw(
        d.title.clone(),
        a.read_only_hint,
        a.destructive_hint,
        a.idempotent_hint,
        a.open_world_hint,
    ))
}

/// Forwards the call's progress to the client (coalesced and capped per
/// call, see [`crate::runtime::factors::progress`]), without blocking the guest.
fn progress_sink(
    peer: rmcp::Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
) -> (ProgressSink, tokio::task::JoinHandle<()>) {
    crate::runtime::factors::progress::forwarder(move |report| {
        let mut param = ProgressNotificationParam::new(token.clone(), report.done);
        param.total = report.total;
        param.message = report.message;
        let peer = peer.clone();
        async move {
            match peer.notify_progress(param).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "progress notification not delivered");
                    false
                }
            }
        }
    })
}
