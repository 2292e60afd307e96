//! The MCP face of the server: an rmcp `ServerHandler` whose tools come from
//! the registry and whose calls run in the sandbox. One handler value per MCP
//! session; everything shared lives in [`App`].

pub mod call;
pub mod json_text;
mod result;

use crate::app::App;
use crate::registry::ToolEntry;
use crate::runtime::ProgressSink;
use crate::session::Session;
use crate::tenants::Tenant;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use rmcp::ErrorData as McpError;
use std::sync::Arc;

pub use result::{error_result, output_result};

/// Numbers sessions served without an `Mcp-Session-Id` (stateless requests).
static STATELESS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Serves one MCP session.
#[derive(Clone)]
pub struct McpHandler {
    app: Arc<App>,
    session: Arc<Session>,
    /// Streamable HTTP: the tenant and session, bound on the session's first
    /// request after `initialize` (the tenant comes from the HTTP layer).
    http: Option<HttpBinding>,
}

/// Per-session HTTP state: which tenant owns it, its `Session`, and the
/// server's tracker of calls in flight (graceful shutdown waits for them).
#[derive(Clone)]
struct HttpBinding {
    bound: Arc<std::sync::OnceLock<(Arc<Tenant>, Arc<Session>)>>,
    in_flight: tokio_util::task::TaskTracker,
}

impl McpHandler {
    /// A handler for a new session.
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            session: Arc::new(Session::new(format!("stdio-{}", std::process::id()))),
            http: None,
        }
    }

    /// A handler for one Streamable HTTP session; the tenant and session id
    /// are taken from the requests (see [`crate::transport::http`]).
    pub fn for_http(app: Arc<App>, in_flight: tokio_util::task::TaskTracker) -> Self {
        Self {
            app,
            session: Arc::new(Session::new("http-unbound")),
            http: Some(HttpBinding { bound: Default::default(), in_flight }),
        }
    }

    /// HTTP: the tenant of this request and the session it belongs to.
    fn http_caller(&self, context: &RequestContext<RoleServer>) -> Result<Option<(Arc<Tenant>, Arc<Session>)>, McpError> {
        let Some(http) = &self.http else { return Ok(None) };
        let parts = context.extensions.get::<http::request::Parts>();
        let tenant = parts
            .and_then(|p| p.extensions.get::<Arc<Tenant>>())
            .cloned()
            .ok_or_else(|| McpError::invalid_request("This request carries no authenticated tenant.", None))?;
        let session_id = parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("stateless-{}", STATELESS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        let (owner, session) = http.bound.get_or_init(|| {
            let session = Arc::new(Session::new(session_id));
            if let Some(budget) = &tenant.default_budget {
                session.set_host_budget_guard(budget.guard_json());
            }
            (tenant.clone(), session)
        });
        if owner.id != tenant.id {
            return Err(McpError::invalid_request(
                "This MCP session belongs to another tenant; start your own session with initialize.",
                None,
            ));
        }
        Ok(Some((tenant, session.clone())))
    }

    /// The session this handler serves.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
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
        if self.app.plugins.is_none() {
            return;
        }
        let mut changed = self.app.tools_changed();
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
        let mut changed = self.app.tools_changed();
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
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tenant = self.http_caller(&_context)?.map(|(t, _)| t);
        let registry = self.app.registry();
        let tools = registry
            .tools()
            .iter()
            .filter(|t| tenant.as_ref().is_none_or(|tenant| tenant.may_use(t.name(), &t.scopes)))
            .map(|t| to_mcp_tool(t))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
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
        let name: &str = request.name.as_ref();
        let cancel = context.ct.clone();
        let outcome = match self.http_caller(&context)? {
            None => {
                let caller = call::Caller {
                    id: &self.app.caller,
                    session: &self.session,
                    grants: &self.app.grants,
                    source: self.app.grants_source,
                    enforce: self.app.enforce_scopes,
                };
                call::run(&self.app, caller, name, request.arguments, &meta, progress, Some(cancel)).await
            }
            Some((tenant, session)) => {
                let caller = call::Caller {
                    id: &tenant.id,
                    session: &session,
                    grants: &tenant.grants,
                    source: "tenant",
                    // Over HTTP the tenant's scopes always gate access.
                    enforce: true,
                };
                if !tenant.tool_listed(name) && self.app.registry().get(name).is_some() {
                    let message = format!("The tool {name} is not available to tenant {}.", tenant.id);
                    call::refuse(&self.app, caller, name, request.arguments, "tool_not_allowed", message).await
                } else {
                    match tenant.admit() {
                        Err(message) => {
                            call::refuse(&self.app, caller, name, request.arguments, "tenant_limit", message).await
                        }
                        Ok(permit) => {
                            let in_flight = self.http.as_ref().map(|h| h.in_flight.clone()).unwrap_or_default();
                            let run = call::run(&self.app, caller, name, request.arguments, &meta, progress, Some(cancel));
                            let out = in_flight.track_future(run).await;
                            drop(permit);
                            out
                        }
                    }
                }
            }
        };
        // The call is over and its sink dropped: the forwarder sends the last
        // report it holds and ends, so progress precedes the result; a client
        // too slow to take even that does not hold the result back.
        if let Some(mut forwarder) = forwarder
            && tokio::time::timeout(std::time::Duration::from_secs(1), &mut forwarder).await.is_err()
        {
            forwarder.abort();
        }
        match outcome {
            Ok(result) => Ok(result.into()),
            Err(name) => Err(McpError::invalid_params(
                format!("Unknown tool \"{name}\". Call tools/list to see the tools this server offers."),
                None,
            )),
        }
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
