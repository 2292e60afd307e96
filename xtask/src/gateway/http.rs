//! HTTP to a gateway and its mock on loopback: one blocking reqwest client (no proxy, no
//! redirects, bounded), and the few helpers seeding and polling need.

use anyhow::{Context, bail};
use reqwest::blocking::{Client, RequestBuilder, Response};
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bound of one request unless the caller sets a shorter one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The process's one client (connections are kept alive between seeding requests).
pub fn client() -> anyhow::Result<&'static Client> {
    static CLIENT: OnceLock<Result<Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(REQUEST_TIMEOUT)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("omniroute-mcp-xtask")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))
}

/// Adds `Cookie` when a cookie is given.
pub fn with_cookie(request: RequestBuilder, cookie: Option<&str>) -> RequestBuilder {
    match cookie {
        Some(cookie) => request.header(reqwest::header::COOKIE, cookie),
        None => request,
    }
}

/// Sends, naming the request in the error.
pub fn send(request: RequestBuilder) -> anyhow::Result<Response> {
    let described = match request.try_clone().and_then(|r| r.build().ok()) {
        Some(r) => format!("{} {}", r.method(), r.url()),
        None => "request".to_string(),
    };
    request.send().with_context(|| described)
}

/// The body as JSON when the status is `status`; otherwise an error with the body.
pub fn expect_json(response: Response, status: u16, what: &str) -> anyhow::Result<serde_json::Value> {
    let actual = response.status().as_u16();
    let text = response.text().with_context(|| format!("{what}: reading the body"))?;
    if actual != status {
        bail!("{what}: expected {status}, got {actual}: {}", snippet(&text));
    }
    serde_json::from_str(&text)
        .with_context(|| format!("{what}: the answer is not JSON: {}", snippet(&text)))
}

/// At most 500 characters of a body, for error messages.
pub fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(500).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_bounded() {
        assert_eq!(snippet("short"), "short");
        let long = "x".repeat(600);
        assert_eq!(snippet(&long).chars().count(), 501);
        assert!(snippet(&long).ends_with('…'));
    }
}
