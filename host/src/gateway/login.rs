//! Dashboard login (docs/architecture.md#gateway-credentials): with `OMNIROUTE_DASHBOARD_PASSWORD` set, the
//! broker logs in lazily on the first management request, holds the
//! `auth_token` cookie in memory, and logs in again once when the gateway
//! answers 401 to a held cookie (expired JWT, restarted gateway). It never
//! retries a wrong password in a loop: that feeds the gateway's lockout.

use super::body_text::body_text;
use super::error::GatewayError;
use reqwest::header::{HeaderValue, RETRY_AFTER, SET_COOKIE};
use std::fmt;
use std::time::{Duration, Instant};
use url::Url;

/// The login state for one gateway.
pub(crate) struct DashboardLogin {
    password: Option<String>,
    state: tokio::sync::Mutex<State>,
}

impl fmt::Debug for DashboardLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardLogin")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

enum State {
    NotLoggedIn,
    Cookie(HeaderValue),
    /// The gateway has no password (403 needsSetup): go on anonymously.
    NoPasswordOnGateway,
    /// Wrong password: every management call fails with this until restart.
    Failed(String),
    /// Locked out (429): fail until then, then try once more.
    RetryAfter(Instant, String),
}

/// What to send on a management request.
pub(crate) enum Access {
    Cookie(HeaderValue),
    Anonymous,
}

impl DashboardLogin {
    pub(crate) fn new(password: Option<String>) -> Self {
        Self {
            password: password.filter(|p| !p.is_empty()),
            state: tokio::sync::Mutex::new(State::NotLoggedIn),
        }
    }

    /// Whether a password is configured at all.
    pub(crate) fn configured(&self) -> bool {
        self.password.is_some()
    }

    /// The credential for a management request, logging in if needed.
    /// `stale` is a cookie the gateway just refused: log in again once.
    pub(crate) async fn access(
        &self,
        client: &reqwest::Client,
        base: &Url,
        timeout: Duration,
        stale: Option<&HeaderValue>,
    ) -> Result<Access, GatewayError> {
        let Some(password) = &self.password else {
            return Ok(Access::Anonymous);
        };
        // Held across the login so concurrent calls wait for one login.
        let mut state = self.state.lock().await;
        match &*state {
            State::Cookie(cookie) if stale != Some(cookie) => return Ok(Access::Cookie(cookie.clone())),
            State::NoPasswordOnGateway => return Ok(Access::Anonymous),
            State::Failed(message) => return Err(GatewayError::Auth(message.clone())),
            State::RetryAfter(until, message) if Instant::now() < *until => {
                return Err(GatewayError::Auth(message.clone()));
            }
            _ => {}
        }
        let (next, result) = login(client, base, timeout, password).await;
        if let Some(next) = next {
            *state = next;
        }
        result
    }
}

async fn login(
    client: &reqwest::Client,
    base: &Url,
    timeout: Duration,
    password: &str,
) -> (Option<State>, Result<Access, GatewayError>) {
    let mut url = base.clone();
    let base_path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base_path}/api/auth/login"));
    let body = serde_json::json!({ "password": password }).to_string();
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(timeout)
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        // Transient: no state change, this call fails, the next one tries again.
        Err(e) => return (None, Err(GatewayError::from_reqwest(&e, timeout))),
    };
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(auth_token_cookie);
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = response.text().await.unwrap_or_default();
    let failed = |status: u16| format!("OmniRoute dashboard login failed [{status}]: {}", body_text(&text));
    match status {
        200 => match cookie {
            Some(cookie) => (Some(State::Cookie(cookie.clone())), Ok(Access::Cookie(cookie))),
            None => {
                let m = format!("{} (no auth_token cookie in the answer)", failed(status));
                (None, Err(GatewayError::Auth(m)))
            }
        },
        403 if needs_setup(&text) => {
            tracing::info!("the gateway has no dashboard password; management routes are used without login");
            (Some(State::NoPasswordOnGateway), Ok(Access::Anonymous))
        }
        401 => {
            let m = format!("{} (check OMNIROUTE_DASHBOARD_PASSWORD and restart the server)", failed(status));
            tracing::error!("{m}");
            (Some(State::Failed(m.clone())), Err(GatewayError::Auth(m)))
        }
        429 => {
            let wait = Duration::from_secs(retry_after.unwrap_or(60));
            let m = format!("{} (locked out; retrying after {} s)", failed(status), wait.as_secs());
            (Some(State::RetryAfter(Instant::now() + wait, m.clone())), Err(GatewayError::Auth(m)))
        }
        _ => (None, Err(GatewayError::Auth(failed(status)))),
    }
}

/// `auth_token=<jwt>` from a Set-Cookie value, as a Cookie header value.
fn auth_token_cookie(set_cookie: &str) -> Option<HeaderValue> {
    let first = set_cookie.split(';').next()?.trim();
    let value = first.strip_prefix("auth_token=")?;
    if value.is_empty() {
        return None;
    }
    let mut header = HeaderValue::from_str(&format!("auth_token={value}")).ok()?;
    header.set_sensitive(true);
    Some(header)
}

fn needs_setup(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("needsSetup").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing() {
        let c = auth_token_cookie("auth_token=abc.def; Path=/; HttpOnly; SameSite=lax").unwrap();
        assert_eq!(c, "auth_token=abc.def");
        assert!(auth_token_cookie("other=1; Path=/").is_none());
        assert!(auth_token_cookie("auth_token=; Path=/").is_none());
    }

    #[test]
    fn needs_setup_detection() {
        assert!(needs_setup(r#"{"error":"No password configured. Complete onboarding first.","needsSetup":true}"#));
        assert!(!needs_setup(r#"{"error":"Invalid password"}"#));
    }
}
