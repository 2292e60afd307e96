//! The startup probe: one bounded look at the gateway when the server starts serving, so
//! whoever started it learns from one stderr line whether a gateway answers and, if none does,
//! the two ways to get one. It runs on its own thread and never delays the MCP handshake;
//! the tools behave the same whatever it finds (every call reaches the gateway on its own).

use std::time::Duration;

use url::Url;

/// How long the probe waits for the gateway, connection included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The probe's `User-Agent`: it tells the probe apart from tool traffic (test gateways that
/// count requests leave it out).
pub const USER_AGENT: &str = concat!("omniroute-mcp/", env!("CARGO_PKG_VERSION"), " startup-probe");

/// The health route every OmniRoute gateway answers without credentials.
const HEALTH_PATH: &str = "/api/monitoring/health";

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The health route answered 200 with JSON; `version` is the gateway's, if it gave one.
    Reachable { version: Option<String> },
    /// Something answered, but not as an OmniRoute gateway's health route does.
    NotAGateway { status: u16 },
    /// Nothing answered within [`PROBE_TIMEOUT`]: refused, unresolvable or too slow.
    Unreachable { reason: String },
}

/// Starts the probe on a thread of its own and returns at once; the outcome is logged as one
/// line (`info` when reachable, else `warn` with both fixes). Its own thread and runtime: the
/// server's runtime may be busy compiling components at that moment (on a cold cache, for
/// seconds), which must neither stall the probe into a false timeout nor be slowed by it.
pub fn spawn(base_url: Url) {
    let probe_thread = std::thread::Builder::new().name("gateway-probe".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => return tracing::warn!("the gateway probe could not start: {e}"),
        };
        let outcome = runtime.block_on(probe(&base_url, PROBE_TIMEOUT));
        let line = message(&base_url, &outcome);
        match outcome {
            ProbeOutcome::Reachable { .. } => tracing::info!("{line}"),
            _ => tracing::warn!("{line}"),
        }
    });
    if let Err(e) = probe_thread {
        tracing::warn!("the gateway probe could not start: {e}");
    }
}

/// `GET <base_url>/api/monitoring/health`, bounded by `timeout`.
pub async fn probe(base_url: &Url, timeout: Duration) -> ProbeOutcome {
    let client = match build_client(timeout) {
        Ok(client) => client,
        Err(e) => return ProbeOutcome::Unreachable { reason: format!("no HTTP client: {}", root_cause(&e)) },
    };
    let response = match client.get(health_url(base_url)).send().await {
        Ok(response) => response,
        Err(e) => return ProbeOutcome::Unreachable { reason: failure(&e, timeout) },
    };
    let status = response.status().as_u16();
    if status != 200 {
        return ProbeOutcome::NotAGateway { status };
    }
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return ProbeOutcome::Unreachable { reason: failure(&e, timeout) },
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(health) if health.is_object() => ProbeOutcome::Reachable {
            version: health.get("version").and_then(|v| v.as_str()).map(str::to_owned),
        },
        _ => ProbeOutcome::NotAGateway { status },
    }
}

/// The one log line for an outcome.
pub fn message(base_url: &Url, outcome: &ProbeOutcome) -> String {
    let url = health_url(base_url);
    let gateway = base_url.as_str().trim_end_matches('/');
    match outcome {
        ProbeOutcome::Reachable { version: Some(version) } => {
            format!("OmniRoute gateway at {gateway} is reachable: version {version}")
        }
        ProbeOutcome::Reachable { version: None } => {
            format!("OmniRoute gateway at {gateway} is reachable; its health answer names no version")
        }
        ProbeOutcome::NotAGateway { status } => format!(
            "the gateway URL {gateway} does not answer as an OmniRoute gateway (GET {url}: HTTP {status}); \
             the tools will fail against it. {FIXES}"
        ),
        ProbeOutcome::Unreachable { reason } => format!(
            "no OmniRoute gateway answered at {url} ({reason}); every tool will report the gateway \
             unreachable. {FIXES}"
        ),
    }
}

/// Both ways out, in every line that reports a problem.
const FIXES: &str = "To fix it, set OMNIROUTE_BASE_URL (or --base-url) to your gateway's URL, or start a \
     local demo gateway with `cargo xtask gateway start` in the omniroute-mcp repository and set \
     OMNIROUTE_BASE_URL to the base_url it prints (`cargo xtask run` does both by itself).";

fn health_url(base_url: &Url) -> String {
    // The base URL may carry a path prefix (a reverse proxy); keep it, as the broker does.
    format!("{}{HEALTH_PATH}", base_url.as_str().trim_end_matches('/'))
}

fn build_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(USER_AGENT)
        .build()
}

/// Why a request failed, in a few words ("Connection refused (os error 111)", "no answer
/// within 2 s").
fn failure(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs())
    } else {
        root_cause(e)
    }
}

/// The innermost error message, on one line.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string().replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_port_url() -> Url {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        drop(listener);
        Url::parse(&format!("http://{addr}")).expect("a URL")
    }

    /// A one-route HTTP server on loopback answering `status` with `body`.
    async fn serve(status: u16, body: &'static str) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = axum::Router::new().route(
            HEALTH_PATH,
            axum::routing::get(move || async move {
                (axum::http::StatusCode::from_u16(status).expect("a status"), body)
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Url::parse(&format!("http://{addr}")).expect("a URL")
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_with_the_url_and_both_fixes() {
        let url = closed_port_url();
        let outcome = probe(&url, PROBE_TIMEOUT).await;
        let ProbeOutcome::Unreachable { reason } = &outcome else {
            panic!("expected unreachable, got {outcome:?}");
        };
        assert!(reason.contains("refused"), "{reason}");
        let line = message(&url, &outcome);
        assert!(line.contains(&format!("{}api/monitoring/health", url.as_str())), "{line}");
        assert!(line.contains("OMNIROUTE_BASE_URL") && line.contains("cargo xtask gateway start"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }

    #[tokio::test]
    async fn a_health_answer_gives_the_version() {
        let url = serve(200, r#"{"status":"healthy","version":"3.7.9"}"#).await;
        let outcome = probe(&url, PROBE_TIMEOUT).await;
        assert_eq!(outcome, ProbeOutcome::Reachable { version: Some("3.7.9".into()) });
        let line = message(&url, &outcome);
        assert!(line.ends_with("is reachable: version 3.7.9"), "{line}");
    }

    #[tokio::test]
    async fn another_service_is_not_a_gateway() {
        let url = serve(404, "<html>not here</html>").await;
        assert_eq!(probe(&url, PROBE_TIMEOUT).await, ProbeOutcome::NotAGateway { status: 404 });
        let html = serve(200, "<html>a dashboard</html>").await;
        let outcome = probe(&html, PROBE_TIMEOUT).await;
        assert_eq!(outcome, ProbeOutcome::NotAGateway { status: 200 });
        assert!(message(&html, &outcome).contains("cargo xtask gateway start"));
    }
}
