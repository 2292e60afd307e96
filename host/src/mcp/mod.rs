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
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::ErrorData as McpError;
use std::sync::Arc;

pub use result::{error_result, output_result};

/// Serves one MCP session.
#[derive(Clone)]
pub struct McpHandler {
    app: Arc<App>,
    session: Arc<Session>,
}

impl McpHandler {
    /// A handler for a new session.
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            session: Arc::new(Session::new(format!("stdio-{}", std::process::id()))),
        }
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

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.app.registry.tools().iter().map(|t| to_mcp_tool(t)).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| progress_sink(context.peer.clone(), token));
        let mut meta = context.meta.0.0.clone();
        if let Some(m) = &request.meta {
            meta.extend(m.0.0.clone());
        }
        let caller = call::Caller {
            id: &self.app.caller,
            session: &self.session,
            grants: &self.app.grants,
            source: self.app.grants_source,
        };
        match call::run(&self.app, caller, request.name.as_ref(), request.arguments, &meta, progress).await {
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

/// Forwards `progress.report` to the client in order, without blocking the guest.
fn progress_sink(peer: rmcp::Peer<RoleServer>, token: rmcp::model::ProgressToken) -> ProgressSink {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, Option<f64>, Option<String>)>();
    tokio::spawn(async move {
        while let Some((done, total, message)) = rx.recv().await {
            let mut param = ProgressNotificationParam::new(token.clone(), done);
            param.total = total;
            param.message = message;
            if let Err(e) = peer.notify_progress(param).await {
                tracing::debug!(error = %e, "progress notification not delivered");
                break;
            }
        }
    });
    Arc::new(move |done, total, message| {
        let _ = tx.send((done, total, message));
    })
}
