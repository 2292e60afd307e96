//! MCP Streamable HTTP at `/mcp` (rmcp), `/healthz` and `/readyz`, for many
//! tenants: bearer-token authentication (static tenant tokens and OAuth
//! access tokens, with the protected-resource metadata at
//! `/.well-known/oauth-protected-resource[/mcp]`), Host/Origin allow-lists against DNS
//! rebinding, session ids bound to the tenant that created them, a cap on
//! each tenant's live sessions, idle sessions closed, graceful shutdown that
//! lets calls in flight finish and flushes the audit log.

mod caller;
mod disconnect;
mod guard;
mod sessions;
mod tasks_2025;
mod well_known;

use crate::app::App;
use crate::auth::live::LiveTenants;
use crate::auth::revocations::Revocations;
use crate::auth::tenants::Tenants;
use crate::call::CallService;
use crate::config::Settings;
use crate::mcp::McpHandler;
use crate::tasks::Tasks;
use anyhow::Context;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use sessions::{ParkedSessions, SessionOwners, TrackedSessions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for calls in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a session may go without a request before it is closed, unless
/// `--session-idle-timeout` says otherwise.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(300);

/// How long a session may go without a request (and with no stream open)
/// before it is parked, unless `--session-park-after` says otherwise. A
/// parked session costs about 15-20 KiB (measured) instead of about 62 KiB, and its next
/// request restores it (an `initialize` replayed in-process, well under a
/// millisecond), so agents pausing between turns cost little.
pub const DEFAULT_SESSION_PARK: Duration = Duration::from_secs(10);

/// What `serve --http` was given.
pub struct HttpArgs {
    pub addr: SocketAddr,
    /// The tenants file (`--tenants`, `OMNIROUTE_MCP_TENANTS`).
    pub tenants: Option<PathBuf>,
    /// Extra `Host` values (name or name:port) besides loopback.
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values (scheme://host[:port]) besides loopback origins.
    pub allowed_origins: Vec<String>,
    /// Sessions without a request for this long are closed.
    pub session_idle: Duration,
    /// Sessions without a request for this long are parked.
    pub session_park: Duration,
}

/// Loads the tenants file and the server, then serves until SIGINT/SIGTERM.
pub async fn run(settings: &Settings, args: HttpArgs) -> anyhow::Result<()> {
    let path = args.tenants.context(
        "serving over HTTP needs a tenants file: pass --tenants PATH or set OMNIROUTE_MCP_TENANTS \
         (create one with `omniroute-mcp tenants add NAME --scopes read:health --file PATH`)",
    )?;
    let tenants = Tenants::load(&path).map_err(anyhow::Error::msg)?;
    if tenants.is_empty() && tenants.oauth().is_none() {
        anyhow::bail!(
            "the tenants file {} defines no tenant and no [oauth] table; every request would be refused",
            path.display()
        );
    }
    if let Some(oauth) = tenants.oauth() {
        tracing::info!(issuers = ?oauth.issuer_urls(), "accepting OAuth access tokens");
        oauth.warm_up();
    }
    crate::gateway::probe::spawn(settings.base_url.clone());
    let app = App::start(settings).await?;
    app.watch_plugins();
    if app.registry().tools().is_empty() {
        tracing::error!("no tool could be loaded from {}; /readyz reports not ready", super::join_paths(&settings.tools_dirs));
    }
    tracing::info!(
        tools = app.registry().tools().len(),
        tenants = tenants.len(),
        gateway = %settings.base_url,
        session_idle_s = args.session_idle.as_secs(),
        session_park_s = args.session_park.as_secs(),
        "omniroute-mcp serving MCP over Streamable HTTP"
    );
    let options = HttpOptions {
        addr: args.addr,
        tenants: Arc::new(LiveTenants::from_file(tenants, path)),
        allowed_hosts: args.allowed_hosts,
        allowed_origins: args.allowed_origins,
        session_idle: args.session_idle,
        session_park: args.session_park,
    };
    serve(Arc::new(CallService::new(app)), options).await
}

/// The HTTP surface's configuration, tenants loaded.
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Reloaded on file change and SIGHUP while serving.
    pub tenants: Arc<LiveTenants>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub session_idle: Duration,
    pub session_park: Duration,
}

struct Shared {
    service: Arc<CallService>,
    tenants: Arc<LiveTenants>,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    /// Who owns each live session, and how many each tenant holds.
    sessions: Arc<SessionOwners>,
    session_idle: Duration,
    /// Principals revoked in the state store, refused on every node sharing it.
    revocations: Arc<Revocations>,
}

/// Binds, prints `omniroute-mcp listening on http://ADDR/mcp` on stderr,
/// serves until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(service: Arc<CallService>, options: HttpOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.addr))?;
    let local = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let in_flight = service.in_flight().clone();
    let app = service.app().clone();
    let tasks = Tasks::new(service.clone());
    let router = router_with_tasks(service, tasks.clone(), options, shutdown.clone());
    eprintln!("omniroute-mcp listening on http://{local}/mcp");
    tracing::info!(%local, "serving MCP Streamable HTTP at /mcp");

    let stop_accepting = CancellationToken::new();
    let mut server = {
        let stop = stop_accepting.clone();
        // Small JSON-RPC answers must not wait for Nagle's algorithm (~40 ms with delayed ACKs).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on an accepted connection: {e}");
            }
        });
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    };
    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; waiting up to {SHUTDOWN_GRACE:?} for calls in flight");
    stop_accepting.cancel();
    in_flight.close();
    // Tasks finish within the grace period or are cancelled and recorded so.
    let (calls, ()) = tokio::join!(tokio::time::timeout(SHUTDOWN_GRACE, in_flight.wait()), tasks.drain(SHUTDOWN_GRACE));
    if calls.is_err() {
        tracing::warn!("calls still running after {SHUTDOWN_GRACE:?}; stopping them");
    }
    // Let finished calls' responses reach their clients; then end the MCP
    // sessions and their SSE streams so the remaining connections close.
    let finished = tokio::time::timeout(Duration::from_millis(500), &mut server).await.is_ok();
    shutdown.cancel();
    if !finished {
        let _ = tokio::time::timeout(Duration::from_secs(3), &mut server).await;
    }
    app.audit().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT or SIGTERM (stdio uses it too).
pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The whole HTTP surface (exposed for in-process tests).
pub fn router(service: Arc<CallService>, options: HttpOptions, shutdown: CancellationToken) -> Router {
    let tasks = Tasks::new(service.clone());
    router_with_tasks(service, tasks, options, shutdown)
}

/// [`router`] with the node's tasks, which the shutdown drains.
fn router_with_tasks(service: Arc<CallService>, tasks: Arc<Tasks>, options: HttpOptions, shutdown: CancellationToken) -> Router {
    let sessions = Arc::new(SessionOwners::default());
    let mut config = StreamableHttpServerConfig::default()
        // Host and Origin are checked (with tenant-aware errors) in `guard`.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_cancellation_token(shutdown.clone());
    // Parked sessions are restored from here (see `sessions`).
    config.session_store = Some(Arc::new(ParkedSessions(sessions.clone())));
    options.tenants.watch(shutdown.clone());
    let revocations = Arc::new(Revocations::default());
    revocations.spawn_refresh(service.app().state().clone(), shutdown.clone());
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(options.session_idle);
    let tracked = Arc::new(TrackedSessions::new(manager, sessions.clone()));
    tracked.spawn_sweeper(options.session_park, options.session_idle, shutdown);
    let factory_service = service.clone();
    let factory_sessions = sessions.clone();
    let mcp = StreamableHttpService::new(
        move || {
            let callers = Arc::new(caller::SessionCaller::new(factory_sessions.clone()));
            Ok(McpHandler::new(factory_service.clone(), tasks.clone(), callers))
        },
        tracked,
        config,
    );
    let shared = Arc::new(Shared {
        service,
        tenants: options.tenants,
        allowed_hosts: options.allowed_hosts,
        allowed_origins: options.allowed_origins,
        sessions,
        session_idle: options.session_idle,
        revocations,
    });
    Router::new()
        .route_service("/mcp", mcp)
        .layer(middleware::from_fn(tasks_2025::adapt))
        .layer(middleware::from_fn_with_state(shared.clone(), guard::guard))
        .route(well_known::PATH, get(well_known::metadata))
        .route(well_known::PATH_FOR_MCP, get(well_known::metadata))
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

/// Ready when tools are loaded and calls can be audited. Anyone may ask, so
/// the reason names the problem, never a path; the server's log has details.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let app = shared.service.app();
    let tools = app.registry().tools().len();
    let reason = if tools == 0 {
        Some("no tool component could be loaded (the server log says why)")
    } else if !app.plugins_ready() {
        Some("the plugin folder is still being loaded")
    } else if app.audit().check().is_err() {
        Some("the audit log cannot record calls, so every tool call is refused (the server log says why)")
    } else {
        None
    };
    match reason {
        None => (StatusCode::OK, Json(json!({ "status": "ready", "tools": tools, "tenants": shared.tenants.current().len() })))
            .into_response(),
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "reason": reason }))).into_response()
        }
    }
}

/// An error answer whose `WWW-Authenticate` is `challenge` (OAuth's
/// `Bearer resource_metadata=…` form).
fn refuse_with_challenge(status: StatusCode, message: impl Into<String>, challenge: &str) -> Response {
    let message = message.into();
    let mut response = (status, Json(json!({ "error": status.canonical_reason().unwrap_or(""), "message": message }))).into_response();
    match header::HeaderValue::from_str(challenge) {
        Ok(value) => {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        Err(e) => tracing::error!("cannot send the WWW-Authenticate challenge {challenge:?}: {e}"),
    }
    response
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    let mut response = (status, Json(json!({ "error": status.canonical_reason().unwrap_or(""), "message": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"omniroute-mcp\""));
    }
    response
}
