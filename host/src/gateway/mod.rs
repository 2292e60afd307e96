//! The broker: the only code that talks to the OmniRoute gateway.
//!
//! Components hand it (method, path, query, body). It checks the pair against
//! the call's [`CapabilitySet`], adds the credentials that fit the route class
//! (docs/architecture.md#gateway-credentials), sends with one shared keep-alive client to the one configured
//! base URL, and caps time and size. Redirects and proxies are disabled so a
//! request can never end up anywhere else.

mod body_text;
mod credentials;
mod error;
mod login;
pub mod probe;

pub use credentials::{Credentials, InvalidCredential, RouteClass, route_class};
pub use body_text::body_text;
pub use error::GatewayError;
use login::{Access, DashboardLogin};

use crate::capability::{CapabilitySet, Method, normalize_path};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, Instant};
use url::Url;

/// A request as a component sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What the gateway answered; any status is a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Timeouts and caps for gateway traffic.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// e.g. `http://localhost:20128`, without a trailing slash.
    pub base_url: Url,
    pub credentials: Credentials,
    /// `OMNIROUTE_DASHBOARD_PASSWORD`, for management routes.
    pub dashboard_password: Option<String>,
    /// Connect timeout for every request.
    pub connect_timeout: Duration,
    /// Whole-request timeout for everything but completions (docs/architecture.md#timeouts: 15 s).
    pub request_timeout: Duration,
    /// Whole-request timeout for `POST /v1/chat/completions` (docs/architecture.md#timeouts: 120 s).
    pub completion_timeout: Duration,
    /// Largest response body read (docs/architecture.md#limits-of-a-call: 1 MiB).
    pub max_response_bytes: usize,
}

impl BrokerConfig {
    /// Defaults (docs/architecture.md#timeouts) for a given base URL.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            credentials: Credentials::default(),
            dashboard_password: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            completion_timeout: Duration::from_secs(120),
            max_response_bytes: 1024 * 1024,
        }
    }
}

/// Response headers never passed to a component: they carry credentials.
const HIDDEN_RESPONSE_HEADERS: &[&str] = &["set-cookie", "set-cookie2", "authorization", "proxy-authenticate", "www-authenticate"];

/// Shared by every call of the process; cheap to clone via `Arc`.
#[derive(Debug)]
pub struct Broker {
    client: reqwest::Client,
    config: BrokerConfig,
    login: DashboardLogin,
}

impl Broker {
    /// Builds the one HTTP client of the process.
    pub fn new(config: BrokerConfig) -> Result<Self, GatewayError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("omniroute-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GatewayError::Client(e.to_string()))?;
        let login = DashboardLogin::new(config.dashboard_password.clone());
        Ok(Self { client, config, login })
    }

    /// The configured gateway.
    pub fn base_url(&self) -> &Url {
        &self.config.base_url
    }

    /// The configuration in force.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Sends one request on behalf of a call holding `caps`. Refusals happen
    /// before anything touches the network.
    pub async fn send(
        &self,
        caps: &CapabilitySet,
        req: &GatewayRequest,
    ) -> Result<GatewayResponse, GatewayError> {
        self.send_within(caps, req, Duration::MAX).await
    }

    /// [`Self::send`] bounded by `limit` as well as by the request's own
    /// timeout (whichever is smaller): a call's request never outlives the
    /// call's deadline. The bound covers a dashboard login it needs too.
    pub async fn send_within(
        &self,
        caps: &CapabilitySet,
        req: &GatewayRequest,
        limit: Duration,
    ) -> Result<GatewayResponse, GatewayError> {
        let path = normalize_path(&req.path).map_err(|e| GatewayError::Denied(e.to_string()))?;
        let body = caps
            .check(req.method, &path, req.body.as_deref())
            .map_err(|e| GatewayError::Denied(e.to_string()))?;
        let own = if req.method == Method::Post && path.as_str() == "/v1/chat/completions" {
            self.config.completion_timeout
        } else {
            self.config.request_timeout
        };
        let timeout = own.min(limit);
        if timeout.is_zero() {
            return Err(GatewayError::Timeout(0));
        }
        let checked = GatewayRequest { method: req.method, path: req.path.clone(), query: req.query.clone(), body };
        let send = async {
            match tokio::time::timeout(timeout, self.send_checked(&checked, &path, timeout)).await {
                Ok(result) => result,
                Err(_) => Err(GatewayError::Timeout(timeout.as_secs().max(1) as u32)),
            }
        };
        let status = |r: &Result<GatewayResponse, GatewayError>| r.as_ref().ok().map(|r| r.status);
        crate::telemetry::gateway_request(req.method, path.as_str(), status, send).await
    }

    /// Sends a request whose path and body passed the capability check.
    async fn send_checked(
        &self,
        req: &GatewayRequest,
        path: &crate::capability::NormalizedPath,
        timeout: Duration,
    ) -> Result<GatewayResponse, GatewayError> {

        let mut url = self.config.base_url.clone();
        {
            // The base URL may itself have a path prefix (a reverse proxy); keep it.
            let base_path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base_path}{}", path.as_str()));
        }
        if !req.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }

        let class = route_class(req.method, path.as_str());
        let request_line = format!("{} {}", req.method, path.as_str());
        let started = Instant::now();
        let mut stale_cookie = None;
        let (status, headers, body) = loop {
            let access = if class == RouteClass::Management {
                self.login
                    .access(&self.client, &self.config.base_url, self.config.request_timeout.min(timeout), stale_cookie.as_ref())
                    .await?
            } else {
                Access::Anonymous
            };
            let cookie = match &access {
                Access::Cookie(c) => Some(c.clone()),
                Access::Anonymous => None,
            };
            let (status, headers, body) = self.attempt(req, url.clone(), class, cookie.as_ref(), timeout).await?;
            if class == RouteClass::Management && status == 401 && cookie.is_some() && stale_cookie.is_none() {
                // The held cookie expired or the gateway restarted with a new
                // secret: one fresh login, one retry.
                tracing::info!("gateway refused the dashboard session; logging in again");
                stale_cookie = cookie;
                continue;
            }
            break (status, headers, body);
        };
        if class == RouteClass::Management && matches!(status, 401 | 403) && !self.login.configured() {
            return Err(GatewayError::Auth(format!(
                "OmniRoute API error [{status}]: {} (management routes need a dashboard login: set OMNIROUTE_DASHBOARD_PASSWORD)",
                body_text(&body)
            )));
        }
        tracing::debug!(request = %request_line, status, elapsed_ms = started.elapsed().as_millis() as u64, bytes = body.len(), "gateway");
        Ok(GatewayResponse { status, headers, body })
    }

    /// One HTTP exchange with the host-controlled header set.
    async fn attempt(
        &self,
        req: &GatewayRequest,
        url: Url,
        class: RouteClass,
        cookie: Option<&HeaderValue>,
        timeout: Duration,
    ) -> Result<(u16, Vec<(String, String)>, String), GatewayError> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json"));
        if req.body.is_some() {
            headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        self.config.credentials.apply(class, &mut headers);
        if let Some(cookie) = cookie {
            headers.insert(reqwest::header::COOKIE, cookie.clone());
        }
        // The call's trace continues in the gateway (W3C trace context).
        if let Some(value) = crate::telemetry::traceparent().and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(HeaderName::from_static("traceparent"), value);
        }
        // No reqwest timeout here: `send_within` bounds the whole exchange
        // (body included) with one timer; every timer armed costs a wake-up
        // of the I/O driver.
        let mut builder = self.client.request(method, url).headers(headers);
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let mut resp = builder
            .send()
            .await
            .map_err(|e| GatewayError::from_reqwest(&e, timeout))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter(|(name, _)| !HIDDEN_RESPONSE_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| (name.as_str().to_owned(), header_text(name, value)))
            .collect();
        let cap = self.config.max_response_bytes;
        if resp.content_length().is_some_and(|len| len as usize > cap) {
            return Err(GatewayError::TooLarge);
        }
        let mut body = Vec::with_capacity(resp.content_length().map_or(0, |len| len as usize));
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > cap {
                        return Err(GatewayError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(GatewayError::from_reqwest(&e, timeout)),
            }
        }
        // Valid UTF-8 (every JSON answer) becomes the text without a copy.
        let body = String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok((status, headers, body))
    }
}

fn header_text(_name: &HeaderName, value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}
