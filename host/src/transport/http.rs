//! MCP Streamable HTTP at `/mcp` (rmcp), `/healthz` and `/readyz`, for many
//! tenants: bearer-token authentication, Host/Origin allow-lists against DNS
//! rebinding, session ids bound to the tenant that created them, graceful
//! shutdown that lets calls in flight finish and flushes the audit log.

use crate::app::App;
use crate::mcp::McpHandler;
use crate::tenants::{Tenant, Tenants};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for calls in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `serve --http` was given.
pub struct HttpOptions {
    pub addr: SocketAddr,
    pub tenants: Tenants,
    /// Extra `Host` values (name or name:port) besides loopback.
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values (scheme://host[:port]) besides loopback origins.
    pub allowed_origins: Vec<String>,
}

struct Shared {
    app: Arc<App>,
    tenants: Tenants,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    /// mcp-session-id -> tenant id.
    owners: Mutex<HashMap<String, String>>,
}

/// Binds, prints `omniroute-mcp listening on http://ADDR/mcp` on stderr,
/// serves until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(app: Arc<App>, options: HttpOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.addr))?;
    let local = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let in_flight = TaskTracker::new();
    let router = router(app.clone(), options, shutdown.clone(), in_flight.clone());
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
    if tokio::time::timeout(SHUTDOWN_GRACE, in_flight.wait()).await.is_err() {
        tracing::warn!("calls still running after {SHUTDOWN_GRACE:?}; stopping them");
    }
    // Let finished calls' responses reach their clients; then end the MCP
    // sessions and their SSE streams so the remaining connections close.
    let finished = tokio::time::timeout(Duration::from_millis(500), &mut server).await.is_ok();
    shutdown.cancel();
    if !finished {
        let _ = tokio::time::timeout(Duration::from_secs(3), &mut server).await;
    }
    app.audit.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
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
pub fn router(app: Arc<App>, options: HttpOptions, shutdown: CancellationToken, in_flight: TaskTracker) -> Router {
    let config = StreamableHttpServerConfig::default()
        // Host and Origin are checked (with tenant-aware errors) in `guard`.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_cancellation_token(shutdown);
    let factory_app = app.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(McpHandler::for_http(factory_app.clone(), in_flight.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let shared = Arc::new(Shared {
        app,
        tenants: options.tenants,
        allowed_hosts: options.allowed_hosts,
        allowed_origins: options.allowed_origins,
        owners: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let tools = shared.app.registry().tools().len();
    let reason = if tools == 0 {
        Some("no tool component could be loaded".to_owned())
    } else if !shared.app.plugins_ready() {
        Some("the plugin folder is still being loaded".to_owned())
    } else {
        shared.app.audit.check().err().map(|e| e.0)
    };
    match reason {
        None => (StatusCode::OK, Json(json!({ "status": "ready", "tools": tools, "tenants": shared.tenants.len() })))
            .into_response(),
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "reason": reason }))).into_response()
        }
    }
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

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Splits `name[:port]` / `[v6][:port]` into (name, port).
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            return (host, tail.strip_prefix(':'));
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

fn host_allowed(shared: &Shared, host: &str) -> bool {
    let (name, _) = split_authority(host);
    is_loopback_host(name)
        || shared.allowed_hosts.iter().any(|a| {
            a.eq_ignore_ascii_case(host) || (!a.contains(':') && a.eq_ignore_ascii_case(name))
        })
}

fn origin_allowed(shared: &Shared, origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else { return false };
    let Some(host) = url.host_str() else { return false };
    let normalized = url.origin().ascii_serialization();
    (matches!(url.scheme(), "http" | "https") && is_loopback_host(host))
        || shared
            .allowed_origins
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&normalized) || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// DNS-rebinding checks, authentication and session ownership, before rmcp.
async fn guard(State(shared): State<Arc<Shared>>, mut request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match &host {
        Some(h) if host_allowed(&shared, h) => {}
        Some(h) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("Host \"{h}\" is not allowed (DNS rebinding protection); start the server with --allowed-host {h} to serve it"),
            );
        }
        None => return refuse(StatusCode::FORBIDDEN, "a Host header is required"),
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(&shared, origin) {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("Origin \"{origin}\" is not allowed (DNS rebinding protection); start the server with --allowed-origin {origin} to serve it"),
            );
        }
    }
    let Some(token) = bearer(headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Missing bearer token: send \"Authorization: Bearer <token>\" with a token from `omniroute-mcp tenants add`",
        );
    };
    let Some(tenant) = shared.tenants.authenticate(token) else {
        return refuse(StatusCode::UNAUTHORIZED, "Invalid bearer token: it matches no tenant of this server");
    };
    let session_id = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session_id {
        let owner = shared.owners.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        if owner.as_deref().is_some_and(|o| o != tenant.id) {
            tracing::warn!(tenant = %tenant.id, "refused a request for another tenant's MCP session");
            return refuse(
                StatusCode::FORBIDDEN,
                "This MCP session belongs to another tenant; initialize your own session",
            );
        }
    }
    let is_delete = request.method() == Method::DELETE;
    request.extensions_mut().insert::<Arc<Tenant>>(tenant.clone());
    let response = next.run(request).await;
    let mut owners = shared.owners.lock().unwrap_or_else(|p| p.into_inner());
    match &session_id {
        None => {
            if let Some(created) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                owners.insert(created.to_owned(), tenant.id.clone());
            }
        }
        Some(id) if is_delete && response.status().is_success() => {
            owners.remove(id);
        }
        Some(_) => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(split_authority("127.0.0.1:8931"), ("127.0.0.1", Some("8931")));
        assert_eq!(split_authority("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_authority("localhost"), ("localhost", None));
        assert!(is_loopback_host("::1") && is_loopback_host("LOCALHOST") && !is_loopback_host("evil.example"));
    }
}
