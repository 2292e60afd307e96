//! `GET /metrics` on its own listener (`--metrics ADDR`), for stdio and HTTP
//! alike, never on the public MCP port: the metrics name tenants. Off a
//! loopback address it needs a bearer token (`OMNIROUTE_MCP_METRICS_TOKEN`).

use super::metrics::{Metrics, install};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The environment variable holding the scrape token.
pub const TOKEN_ENV: &str = "OMNIROUTE_MCP_METRICS_TOKEN";

/// Where metrics are served and who may read them.
#[derive(Clone)]
pub struct MetricsEndpoint {
    pub addr: SocketAddr,
    /// When set, a scrape needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Why the metrics listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "--metrics {0} is not a loopback address and the metrics name tenants: set {TOKEN_ENV} so a scrape \
         needs `Authorization: Bearer <token>`, or listen on 127.0.0.1"
    )]
    NeedsToken(SocketAddr),
    #[error("cannot listen for metrics on {0}: {1} (pick another --metrics address; port 0 picks a free one)")]
    Bind(SocketAddr, std::io::Error),
}

impl MetricsEndpoint {
    /// `--metrics ADDR` with the token from the environment (empty = none).
    pub fn from_env(addr: SocketAddr) -> Self {
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        Self { addr, token }
    }
}

/// The gauges read from the server's state at each scrape (not pushed on
/// every change: reading them costs nothing between scrapes).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Tools on offer.
    pub tools_loaded: usize,
    /// Components and plugins refused at the last load.
    pub tools_refused: usize,
    /// Audit rows waiting for their commit.
    pub audit_queue: u64,
    /// Session handles per principal in the state store (`None`: the store
    /// did not answer, the gauge keeps its last values).
    pub handles: Option<Vec<(String, u64)>>,
}

/// Reads a [`Snapshot`] (`None` once the server is gone); async, for the
/// figures that come from the state store.
pub type ReadSnapshot =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Snapshot>> + Send>> + Send + Sync>;

struct Scrape {
    snapshot: ReadSnapshot,
    metrics: &'static Metrics,
    /// SHA-256 of the token: compared in constant time over fixed-size digests.
    token_sha256: Option<[u8; 32]>,
}

/// Turns metrics on, binds the listener and serves it in the background;
/// prints `omniroute-mcp metrics on http://ADDR/metrics` on stderr.
pub async fn spawn(snapshot: ReadSnapshot, endpoint: &MetricsEndpoint) -> Result<SocketAddr, EndpointError> {
    if !endpoint.addr.ip().is_loopback() && endpoint.token.is_none() {
        return Err(EndpointError::NeedsToken(endpoint.addr));
    }
    let listener = tokio::net::TcpListener::bind(endpoint.addr)
        .await
        .map_err(|e| EndpointError::Bind(endpoint.addr, e))?;
    let local = listener.local_addr().map_err(|e| EndpointError::Bind(endpoint.addr, e))?;
    let scrape = Arc::new(Scrape {
        snapshot,
        metrics: install(),
        token_sha256: endpoint.token.as_ref().map(|t| Sha256::digest(t.as_bytes()).into()),
    });
    let router = Router::new().route("/metrics", get(metrics)).with_state(scrape);
    eprintln!("omniroute-mcp metrics on http://{local}/metrics");
    tracing::info!(%local, token = endpoint.token.is_some(), "serving Prometheus metrics at /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the metrics listener stopped: {e}");
        }
    });
    Ok(local)
}

async fn metrics(State(scrape): State<Arc<Scrape>>, headers: HeaderMap) -> Response {
    if let Some(expected) = &scrape.token_sha256 {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())));
        let ok = given.is_some_and(|g| g.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"omniroute-mcp metrics\"")],
                format!("metrics need Authorization: Bearer <the {TOKEN_ENV} token>\n"),
            )
                .into_response();
        }
    }
    if let Some(now) = (scrape.snapshot)().await {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        scrape.metrics.tools_loaded.set(gauge(now.tools_loaded as u64));
        scrape.metrics.tools_refused.set(gauge(now.tools_refused as u64));
        scrape.metrics.audit_queue.set(gauge(now.audit_queue));
        if let Some(handles) = &now.handles {
            scrape.metrics.set_handles(handles);
        }
    }
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        scrape.metrics.encode(),
    )
        .into_response()
}
