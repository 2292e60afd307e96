//! The server binary serving Streamable HTTP (`serve --http 127.0.0.1:0`), its bound address read
//! from the `listening on http://ADDR/mcp` line on stderr, and two hand-written JSON-RPC clients
//! for it: [`ModernClient`] (MCP 2026-07-28: no session, every request self-contained) and
//! [`LegacySession`] (`initialize` and an `Mcp-Session-Id`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::mcp::http_answer;
use crate::{ServerCommand, STARTUP_TIMEOUT, lock};

/// The 2026-07-28 protocol revision.
pub const MODERN: &str = "2026-07-28";
/// A legacy revision (the initialize handshake).
pub const LEGACY: &str = "2025-11-25";
/// The tasks extension's identifier.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// A tenants file line for `id` with bearer `token` and `scopes`.
pub fn tenant_entry(id: &str, token: &str, scopes: &[&str]) -> String {
    use sha2::Digest;
    format!(
        "[[tenant]]\nid = \"{id}\"\ntoken_sha256 = \"{}\"\nscopes = {}\nrate_per_minute = 6000\n\n",
        hex::encode(sha2::Sha256::digest(token.as_bytes())),
        json!(scopes)
    )
}

/// One `serve --http` process; killed on drop.
pub struct HttpServer {
    child: tokio::process::Child,
    /// `http://ADDR`
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl HttpServer {
    /// Starts `command` (which must include `serve --http 127.0.0.1:0 ...`) and waits for its
    /// listening line.
    pub async fn start(command: &ServerCommand) -> HttpServer {
        let mut child = command
            .to_command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", command.describe()));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.trim().trim_end_matches("/mcp").to_owned());
                }
                let mut log = lock(&sink);
                log.push_str(&line);
                log.push('\n');
            }
        });
        let text = |log: &Arc<Mutex<String>>| lock(log).clone();
        let addr = tokio::time::timeout(STARTUP_TIMEOUT, rx)
            .await
            .unwrap_or_else(|_| panic!("no listening line within {STARTUP_TIMEOUT:?}: {}", text(&log)))
            .unwrap_or_else(|_| panic!("the server exited before listening: {}", text(&log)));
        HttpServer { child, url: format!("http://{addr}"), log }
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// `http://ADDR/mcp`
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.url)
    }

    /// SIGKILL: nothing is flushed on the way out, so what survives was committed.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill the server");
    }

    /// SIGKILL while others still hold the server (their requests then fail).
    pub fn sigkill(&self) {
        let pid = self.child.id().expect("the server is running");
        let status = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().expect("run kill");
        assert!(status.success(), "kill -KILL {pid} failed");
    }

    /// SIGTERM, then waits (bounded by `limit`) for the exit; returns whether it exited cleanly.
    pub async fn terminate(mut self, limit: Duration) -> (bool, String) {
        let pid = self.child.id().expect("the server is running");
        let sent = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(limit, self.child.wait()).await;
        let clean = matches!(status, Ok(Ok(s)) if s.success());
        // Let the stderr reader take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (clean, self.log())
    }
}

/// `_meta` of a 2026-07-28 request: protocol version, client info and capabilities (the tasks
/// extension when `tasks`).
pub fn modern_meta(tasks: bool) -> Value {
    let capabilities = if tasks { json!({"extensions": {TASKS_EXTENSION: {}}}) } else { json!({}) };
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "omniroute-mcp-tests-http", "version": env!("CARGO_PKG_VERSION")},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    })
}

/// The `Mcp-Name` of a request: the tool of a call, the task of a `tasks/*` request.
fn mcp_name(method: &str, params: &Value) -> Option<String> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "tasks/get" | "tasks/update" | "tasks/cancel" => "taskId",
        _ => return None,
    };
    params.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A 2026-07-28 client: every request stands alone (no `initialize`, no session id).
#[derive(Clone)]
pub struct ModernClient {
    http: reqwest::Client,
    url: String,
    token: String,
    /// Whether requests declare the tasks extension.
    pub tasks: bool,
}

impl ModernClient {
    pub fn new(server: &HttpServer, token: &str, tasks: bool) -> Self {
        Self { http: reqwest::Client::new(), url: server.mcp_url(), token: token.to_owned(), tasks }
    }

    /// The POST for one request, not yet sent.
    pub fn post(&self, id: &str, method: &str, mut params: Value) -> reqwest::RequestBuilder {
        params["_meta"] = modern_meta(self.tasks);
        let mut builder = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", method);
        if let Some(name) = mcp_name(method, &params) {
            builder = builder.header("Mcp-Name", name);
        }
        builder.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    /// Sends a request and returns its JSON-RPC answer (`result` or `error`).
    pub async fn request(&self, id: &str, method: &str, params: Value) -> Value {
        let response = self.post(id, method, params).send().await.expect("POST /mcp");
        let body = response.text().await.expect("read the body");
        http_answer(&body).unwrap_or_else(|| panic!("no JSON-RPC answer to {method} in: {body}"))
    }
}

/// A legacy session: `initialize`, then requests with its `Mcp-Session-Id`.
pub struct LegacySession {
    http: reqwest::Client,
    url: String,
    token: String,
    /// The server's `Mcp-Session-Id`.
    pub session_id: String,
}

impl LegacySession {
    /// Initializes a session (declaring the tasks extension when `tasks`).
    pub async fn start(server: &HttpServer, token: &str, tasks: bool) -> Self {
        let http = reqwest::Client::new();
        let capabilities = if tasks { json!({"extensions": {TASKS_EXTENSION: {}}}) } else { json!({}) };
        let response = http
            .post(server.mcp_url())
            .bearer_auth(token)
            .header("Accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": LEGACY,
                "capabilities": capabilities,
                "clientInfo": {"name": "omniroute-mcp-tests-legacy", "version": env!("CARGO_PKG_VERSION")},
            }}))
            .send()
            .await
            .expect("POST initialize");
        let session_id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("initialize gave no Mcp-Session-Id: {:?}", response.headers()));
        let body = response.text().await.expect("read the initialize body");
        assert!(http_answer(&body).is_some_and(|a| a.get("result").is_some()), "initialize failed: {body}");
        let session = Self { http, url: server.mcp_url(), token: token.to_owned(), session_id };
        let ack = session
            .builder()
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .expect("POST notifications/initialized");
        assert!(ack.status().is_success(), "notifications/initialized: {}", ack.status());
        session
    }

    fn builder(&self) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", LEGACY)
            .header("Mcp-Session-Id", &self.session_id)
    }

    /// The POST for one request, not yet sent.
    pub fn post(&self, id: &str, method: &str, params: Value) -> reqwest::RequestBuilder {
        self.builder().json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Value) {
        let response = self
            .builder()
            .json(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .send()
            .await
            .expect("POST a notification");
        assert!(response.status().is_success(), "{method}: {}", response.status());
    }

    /// Sends a request and returns its JSON-RPC answer.
    pub async fn request(&self, id: &str, method: &str, params: Value) -> Value {
        let response = self.post(id, method, params).send().await.expect("POST /mcp");
        let body = response.text().await.expect("read the body");
        http_answer(&body).unwrap_or_else(|| panic!("no JSON-RPC answer to {method} in: {body}"))
    }
}
