//! The MCP face of the server: an rmcp `ServerHandler` whose tools come from
//! the registry and whose calls go to the [`CallService`]. One handler value
//! per MCP session; the transport tells it who is calling
//! ([`ResolveCaller`]), so the handler has one shape for every transport.

mod protocol;

use crate::call::{CallService, Caller, Outcome, ToolCall};
use crate::registry::ToolEntry;
use crate::runtime::ProgressSink;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use rmcp::ErrorData as McpError;
use std::sync::Arc;

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
    callers: Arc<dyn ResolveCaller>,
}

impl McpHandler {
    /// A handler for a new session whose callers `callers` resolves.
    pub fn new(service: Arc<CallService>, callers: Arc<dyn ResolveCaller>) -> Self {
        Self { service, callers }
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
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
        let registry = self.service.registry();
        let tools = registry
            .tools()
            .iter()
            .filter(|t| caller.principal.lists(t.name(), &t.scopes))
            .map(|t| to_mcp_tool(t))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = self.callers.resolve(&context)?;
        let (progress, forwarder) = match context.meta.get_progress_token() {
            Some(token) => {
                let (sink, forwarder) = progress_sink(context.peer.clone(), token);
                (Some(sink), Some(forwarder))
            }
            None => (None, None),
        };
        let mut meta = context.meta.0.0.clone();
        if let Some(m) = &request.meta {
            meta.extend(m.0.0.clone());
        }
        let cancel = Some(context.ct.clone());
        let call = ToolCall { name: request.name.to_string(), arguments: request.arguments, meta, progress, cancel };
        let outcome = self.service.call(&caller, call).await;
        // The call is over and its sink dropped: the forwarder sends the last
        // report it holds and ends, so progress precedes the result; a client
        // too slow to take even that does not hold the result back.
        if let Some(mut forwarder) = forwarder
            && tokio::time::timeout(std::time::Duration::from_secs(1), &mut forwarder).await.is_err()
        {
            forwarder.abort();
        }
        match outcome {
            Outcome::Answered(result) => Ok(result.into()),
            Outcome::UnknownTool(name) => Err(McpError::invalid_params(
                format!("Unknown tool \"{name}\". Call tools/list to see the tools this server offers."),
                None,
            )),
        }
    }

    /// Requests rmcp could not route: an unknown method, or a known one whose
    /// params do not parse. The answer names the problem without echoing
    /// what the client sent beyond a short prefix.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        Err(protocol::unroutable(&request.method, request.params.as_ref(), Some(&context.meta.0.0)))
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
