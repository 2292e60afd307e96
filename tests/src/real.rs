//! The REAL OmniRoute 3.7.9 gateways that `cargo xtask test` starts on loopback (plain, and with
//! a dashboard password plus `REQUIRE_API_KEY=true`), as seen by the e2e tests.
//!
//! `cargo xtask test` passes each gateway as environment variables with a prefix
//! ([`PLAIN_PREFIX`] or [`AUTH_PREFIX`]): `<prefix>_URL`, `_API_KEY`, `_MOCK_URL`, `_NODE_ID`,
//! `_STATE` (the instance's JSON state file: combos by name, connection id, …) and, for the auth
//! gateway, `_PASSWORD`. A missing variable panics with [`MISSING_HINT`].
//!
//! [`RealGateway`] also talks to the gateway's REST API directly (to create throwaway combos,
//! read settings back, look at call logs) and to the mock upstream's `/__stats` counters, with
//! its own reqwest client: every request is bounded (5 s connect, 15 s in all).
//!
//! Both gateways are shared by every test of the run, so tests assert on deltas and on values
//! they caused themselves. [`traffic_lock`] serialises, within one test binary, the few
//! sections that must see the mock upstream quiet.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::ServerCommand;
use crate::lock;

pub mod checks;

/// Env prefix of the plain gateway (no dashboard password, anonymous `/v1` allowed).
pub const PLAIN_PREFIX: &str = "OMNIROUTE_TEST_GATEWAY";
/// Env prefix of the gateway with a dashboard password and `REQUIRE_API_KEY=true`.
pub const AUTH_PREFIX: &str = "OMNIROUTE_TEST_GATEWAY_AUTH";
/// What a test without the gateway environment tells the user.
pub const MISSING_HINT: &str = "run `cargo xtask test`, which starts the real gateways";

/// One real gateway instance plus its mock upstream.
#[derive(Debug)]
pub struct RealGateway {
    /// `http://127.0.0.1:<port>`, the value for `OMNIROUTE_BASE_URL`.
    pub url: String,
    /// A real gateway API key (Bearer on `/v1/*`).
    pub api_key: String,
    /// The mock upstream's root URL (`/__stats`, `/__reset`).
    pub mock_url: String,
    /// The custom provider node id, `openai-compatible-chat-<uuid>` (what `x-omniroute-provider` says).
    pub node_id: String,
    /// The dashboard password, for the auth gateway.
    pub password: Option<String>,
    /// The instance's state file, parsed.
    pub state: Value,
    http: reqwest::Client,
    cookie: Mutex<Option<String>>,
}

/// One answer of the gateway or its mock, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON; panics with the body text if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("response body is not JSON ({e}): {}", self.text())
        })
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RealGateway {
    /// The plain gateway (`OMNIROUTE_TEST_GATEWAY_*`).
    pub fn plain() -> Self {
        Self::from_env(PLAIN_PREFIX)
    }

    /// The gateway with a dashboard password (`OMNIROUTE_TEST_GATEWAY_AUTH_*`); the password is
    /// required.
    pub fn auth() -> Self {
        let gateway = Self::from_env(AUTH_PREFIX);
        if gateway.password.is_none() {
            panic!("{AUTH_PREFIX}_PASSWORD is not set: {MISSING_HINT}");
        }
        gateway
    }

    /// Reads `<prefix>_URL`, `_API_KEY`, `_MOCK_URL`, `_NODE_ID`, `_STATE` and `_PASSWORD` (optional).
    pub fn from_env(prefix: &str) -> Self {
        let url = required_env(&format!("{prefix}_URL"));
        let mock_url = required_env(&format!("{prefix}_MOCK_URL"));
        let state_path = required_env(&format!("{prefix}_STATE"));
        let state_text = std::fs::read_to_string(&state_path).unwrap_or_else(|e| {
            panic!("cannot read {prefix}_STATE={state_path} ({e}): {MISSING_HINT}")
        });
        let state: Value = serde_json::from_str(&state_text)
            .unwrap_or_else(|e| panic!("{state_path} is not JSON ({e})"));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"));
        Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            api_key: required_env(&format!("{prefix}_API_KEY")),
            mock_url: mock_url.trim_end_matches('/').to_owned(),
            node_id: required_env(&format!("{prefix}_NODE_ID")),
            password: std::env::var(format!("{prefix}_PASSWORD"))
                .ok()
                .filter(|p| !p.is_empty()),
            state,
            cookie: Mutex::new(None),
        }
    }

    /// The id of a seeded combo (`coding-fast`, `free-tier`) from the state file.
    pub fn combo_id(&self, name: &str) -> String {
        self.state["combos"][name]
            .as_str()
            .unwrap_or_else(|| panic!("combo {name:?} is not in the state file: {}", self.state))
            .to_owned()
    }

    /// The seeded connection id from the state file.
    pub fn connection_id(&self) -> String {
        self.state_text("connection_id")
    }

    /// The seeded connection whose key the mock refuses with 401 (the seeding sent one
    /// completion through it), from the state file.
    pub fn revoked_connection_id(&self) -> String {
        self.state_text("revoked_connection_id")
    }

    /// The provider node of [`Self::revoked_connection_id`] (prefix `revoked`).
    pub fn revoked_node_id(&self) -> String {
        self.state_text("revoked_node_id")
    }

    /// A non-empty string of the state file; panics saying how to get a fresh one.
    fn state_text(&self, key: &str) -> String {
        self.state[key]
            .as_str()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "no {key} in the state file (a gateway seeded by an older xtask?): restart it \
                     with `cargo xtask gateway stop && cargo xtask gateway start`: {}",
                    self.state
                )
            })
            .to_owned()
    }

    /// The server under test pointed at this gateway, with its API key (no dashboard password).
    pub fn server(&self) -> ServerCommand {
        ServerCommand::new(&self.url).api_key(&self.api_key)
    }

    /// A request to the gateway's own REST API. Management paths get the login cookie when the
    /// gateway has a password; `/v1` paths get the Bearer key. Panics if the gateway is unreachable.
    pub async fn api(&self, method: &str, target: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|e| panic!("{method:?} is not an HTTP method: {e}"));
        let mut request = self.http.request(method.clone(), format!("{}{target}", self.url));
        if target.starts_with("/v1/") {
            request = request.bearer_auth(&self.api_key);
        } else if self.password.is_some() && !target.starts_with("/api/auth/") {
            request = request.header(reqwest::header::COOKIE, self.login_cookie().await);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await.unwrap_or_else(|e| {
            panic!(
                "{method} {}{target} failed ({e}): is the gateway up? {MISSING_HINT}",
                self.url
            )
        })
    }

    /// `api` that must answer 2xx with JSON; returns the JSON.
    pub async fn api_json(&self, method: &str, target: &str, body: Option<Value>) -> Value {
        let response = self.api(method, target, body).await;
        assert!(
            (200..300).contains(&response.status),
            "{method} {target} answered {}: {}",
            response.status,
            response.text()
        );
        response.json()
    }

    /// `Cookie` header value after a (cached) dashboard login; panics without a password.
    pub async fn login_cookie(&self) -> String {
        if let Some(cookie) = lock(&self.cookie).clone() {
            return cookie;
        }
        let password = self
            .password
            .clone()
            .unwrap_or_else(|| panic!("{} has no dashboard password", self.url));
        let login = self
            .http
            .post(format!("{}/api/auth/login", self.url))
            .json(&json!({ "password": password }));
        let response = send(login)
            .await
            .unwrap_or_else(|e| panic!("login to {} failed: {e}", self.url));
        assert_eq!(response.status, 200, "dashboard login: {}", response.text());
        let cookie = response
            .headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|c| c.trim_start().starts_with("auth_token="))
            .unwrap_or_else(|| panic!("login set no auth_token cookie: {:?}", response.headers))
            .trim()
            .to_owned();
        *lock(&self.cookie) = Some(cookie.clone());
        cookie
    }

    /// Creates a priority combo with these model steps through `POST /api/combos`; returns its id.
    pub async fn create_combo(&self, name: &str, models: &[&str]) -> String {
        let created = self
            .api_json(
                "POST",
                "/api/combos",
                Some(json!({ "name": name, "models": models, "strategy": "priority" })),
            )
            .await;
        let combo = created.get("combo").unwrap_or(&created);
        combo["id"]
            .as_str()
            .unwrap_or_else(|| panic!("POST /api/combos returned no id: {created}"))
            .to_owned()
    }

    /// `DELETE /api/combos/<id>`, ignoring the outcome (cleanup).
    pub async fn delete_combo(&self, id: &str) {
        let _ = self.api("DELETE", &format!("/api/combos/{id}"), None).await;
    }

    /// The combos as the gateway lists them (`GET /api/combos`).
    pub async fn combos(&self) -> Vec<Value> {
        let body = self.api_json("GET", "/api/combos", None).await;
        body["combos"].as_array().cloned().unwrap_or_default()
    }

    /// The combo with this id as the gateway stores it; panics if there is none.
    pub async fn stored_combo(&self, id: &str) -> Value {
        let combos = self.combos().await;
        combos
            .into_iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("combo {id} is not stored on {}", self.url))
    }

    /// The mock upstream's counters (`GET <mock>/__stats`).
    pub async fn mock_stats(&self) -> MockStats {
        let response = send(self.http.get(format!("{}/__stats", self.mock_url)))
            .await
            .unwrap_or_else(|e| panic!("GET {}/__stats failed: {e}", self.mock_url));
        assert_eq!(response.status, 200, "mock /__stats");
        MockStats(response.json())
    }
}

/// The mock upstream's `/__stats` body.
#[derive(Clone, Debug)]
pub struct MockStats(pub Value);

impl MockStats {
    /// Chat completions received (successful or not).
    pub fn chat_requests(&self) -> u64 {
        self.0["chatRequests"].as_u64().unwrap_or(0)
    }

    /// Chat completions received for this upstream model (`mock-small`, without the prefix).
    pub fn by_model(&self, model: &str) -> u64 {
        self.0["byModel"][model].as_u64().unwrap_or(0)
    }

    /// The parsed body of the last chat completion.
    pub fn last_chat_body(&self) -> &Value {
        &self.0["lastChatBody"]
    }

    /// The `Authorization` header of the last chat completion.
    pub fn last_chat_authorization(&self) -> Option<&str> {
        self.0["lastChatAuthorization"].as_str()
    }
}

/// Within one test binary: tests that send completions hold `read()`, a section that needs
/// the mock upstream quiet (exact before/after counts) holds `write()`.
pub fn traffic_lock() -> &'static tokio::sync::RwLock<()> {
    static LOCK: OnceLock<tokio::sync::RwLock<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::RwLock::new(()))
}

/// A name no other test (or earlier run) uses: `<prefix>-<epoch ms>-<pid>-<counter>`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{prefix}-{millis}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `8-4-4-4-12` hexadecimal, as the gateway's `x-request-id`.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The tools' cost rounding (`docs/contract.md`): `round(x·1e10)/1e10`.
pub fn round_cost(x: f64) -> f64 {
    (x * 1e10).round() / 1e10
}

fn required_env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: {MISSING_HINT}"))
}

/// Sends and reads the whole answer.
async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<Answer> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_costs() {
        assert!(is_uuid("0a95b984-132a-4f78-a212-d46c7fff82ad"));
        assert!(!is_uuid("0a95b984-132a-4f78-a212"));
        assert!(!is_uuid("0a95b984-132a-4f78-a212-d46c7fff82aZ"));
        assert_eq!(round_cost(0.0000285 + 0.0000285 + 0.0000285), 0.0000855);
    }
}
