//! The Streamable HTTP transport with several tenants: bearer tokens, per-tenant tool lists and
//! scope enforcement, session ownership, DNS-rebinding protection, per-tenant rate and
//! concurrency limits, and the official Python SDK's Streamable HTTP client end to end.
//!
//! Each test spawns the real binary with `serve --http 127.0.0.1:0 --tenants FILE` and reads the
//! bound address from the `listening on http://ADDR/mcp` line on stderr.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omniroute_mcp_tests::{FakeGateway, Override, ServerCommand, TempDir, paths, python};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(60);
const HEALTH: &str = "omniroute_get_health";
const COMBOS: &str = "omniroute_list_combos";

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A `[[tenant]]` block.
fn tenant(id: &str, token: &str, scopes: &[&str], extra: &str) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[[tenant]]\nid = \"{id}\"\ntoken_sha256 = \"{}\"\nscopes = [{}]\n{extra}\n",
        sha(token),
        scopes.join(", ")
    )
}

struct HttpServer {
    _child: tokio::process::Child,
    base: String,
    stderr: Arc<Mutex<String>>,
    command: ServerCommand,
    _dir: TempDir,
    client: reqwest::Client,
}

impl HttpServer {
    async fn start(gateway: &FakeGateway, tenants: &str, extra: &[&str]) -> HttpServer {
        let dir = TempDir::new("tenants");
        let file = dir.path().join("tenants.toml");
        std::fs::write(&file, tenants).unwrap();
        let mut command = ServerCommand::new(&gateway.url())
            .arg("serve")
            .arg("--http")
            .arg("127.0.0.1:0")
            .arg("--tenants")
            .arg(file.as_os_str());
        for a in extra {
            command = command.arg(*a);
        }
        let mut child = command.to_command().spawn().expect("spawn the server");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        {
            let log = log.clone();
            tokio::spawn(async move {
                let mut tx = Some(tx);
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.trim_end_matches("/mcp").trim().to_owned();
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                    log.lock().unwrap().push_str(&line);
                    log.lock().unwrap().push('\n');
                }
            });
        }
        let addr = tokio::time::timeout(TIMEOUT, rx)
            .await
            .unwrap_or_else(|_| panic!("no listening line within {TIMEOUT:?}: {}", log.lock().unwrap()))
            .unwrap_or_else(|_| panic!("the server exited before listening: {}", log.lock().unwrap()));
        HttpServer {
            _child: child,
            base: format!("http://{addr}"),
            stderr: log,
            command,
            _dir: dir,
            client: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// Waits (bounded) for `/readyz` to answer 200, as a load balancer would (plugins load in
    /// the background after the built-ins are served).
    async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let ready = self.client.get(format!("{}/readyz", self.base)).send().await.unwrap();
            if ready.status() == 200 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "not ready within {TIMEOUT:?}: {}\n{}", ready.text().await.unwrap_or_default(), self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A POST to /mcp; returns the status, the session id header and the JSON-RPC answer
    /// (from a JSON body or the first SSE `data:` event carrying an `id`).
    async fn post(&self, token: Option<&str>, session: Option<&str>, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut req = self
            .client
            .post(self.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-06-18");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let session_id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let mut text = String::new();
        let mut message = None;
        loop {
            let chunk = tokio::time::timeout(TIMEOUT, response.chunk()).await.expect("body chunk in time");
            let Ok(Some(chunk)) = chunk else { break };
            text.push_str(&String::from_utf8_lossy(&chunk));
            if is_sse {
                message = omniroute_mcp_tests::mcp::sse_answer(&text);
                if message.is_some() {
                    break;
                }
            }
        }
        if !is_sse {
            message = serde_json::from_str(&text).ok();
        }
        Reply { status, session_id, message, text }
    }

    /// DELETE /mcp for a session (ends it); returns the response.
    async fn delete(&self, token: &str, session: &str) -> reqwest::Response {
        self.client
            .delete(self.url())
            .header("authorization", format!("Bearer {token}"))
            .header("mcp-session-id", session)
            .send()
            .await
            .expect("DELETE /mcp")
    }

    /// initialize + notifications/initialized; returns the session id.
    async fn open_session(&self, token: &str) -> String {
        let init = self
            .post(
                Some(token),
                None,
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "http-test", "version": "0"}}}),
                &[],
            )
            .await;
        assert_eq!(init.status, 200, "initialize: {} / {}", init.text, self.log());
        let session = init.session_id.clone().unwrap_or_else(|| panic!("no mcp-session-id: {}", init.text));
        let note = self
            .post(Some(token), Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), &[])
            .await;
        assert!(note.status == 202 || note.status == 200, "initialized: {} {}", note.status, note.text);
        session
    }

    async fn list_tools(&self, token: &str, session: &str) -> Vec<String> {
        let r = self
            .post(Some(token), Some(session), json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let msg = r.message.unwrap_or_else(|| panic!("no tools/list answer: {}", r.text));
        let mut names: Vec<String> = msg["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{msg}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// tools/call; returns (isError, text).
    async fn call(&self, token: &str, session: &str, tool: &str, id: u64) -> (bool, String) {
        let r = self
            .post(
                Some(token),
                Some(session),
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let msg = r.message.unwrap_or_else(|| panic!("no tools/call answer: {}", r.text));
        let result = &msg["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        (result["isError"].as_bool().unwrap_or(false), text)
    }
}

struct Reply {
    status: u16,
    session_id: Option<String>,
    message: Option<Value>,
    text: String,
}

fn two_tenants() -> String {
    tenant("alpha", "token-alpha", &["read:health"], "") + &tenant("beta", "token-beta", &["read:combos"], "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_tools_and_are_denied_by_their_own_scopes() {
    let gateway = FakeGateway::start();
    let server = HttpServer::start(&gateway, &two_tenants(), &[]).await;
    let a = server.open_session("token-alpha").await;
    let b = server.open_session("token-beta").await;
    assert_ne!(a, b);

    let alpha_tools = server.list_tools("token-alpha", &a).await;
    let beta_tools = server.list_tools("token-beta", &b).await;
    assert!(alpha_tools.contains(&HEALTH.to_owned()) && !alpha_tools.contains(&COMBOS.to_owned()), "{alpha_tools:?}");
    assert!(beta_tools.contains(&COMBOS.to_owned()) && !beta_tools.contains(&HEALTH.to_owned()), "{beta_tools:?}");
    assert_ne!(alpha_tools, beta_tools);

    let (err, text) = server.call("token-alpha", &a, HEALTH, 3).await;
    assert!(!err, "{text}");
    let (err, text) = server.call("token-beta", &b, COMBOS, 3).await;
    assert!(!err, "{text}");

    // Scopes come from the tenant and are enforced (OMNIROUTE_MCP_ENFORCE_SCOPES is unset).
    let (err, text) = server.call("token-alpha", &a, COMBOS, 4).await;
    assert!(err);
    assert_eq!(text, "Error: Insufficient MCP scopes for omniroute_list_combos. Missing: read:combos. Caller=alpha, source=tenant.");
    let (err, text) = server.call("token-beta", &b, HEALTH, 4).await;
    assert!(err);
    assert_eq!(text, "Error: Insufficient MCP scopes for omniroute_get_health. Missing: read:health. Caller=beta, source=tenant.");
    assert!(gateway.requests_to("GET", "/api/combos").len() == 1, "the denied call must not reach the gateway");

    // The audit log records the tenant as caller and the MCP session id.
    let audit = server.command.data_dir().join("audit.sqlite");
    omniroute_mcp_tests::audit::import_pending(&audit);
    let db = rusqlite::Connection::open(&audit).unwrap();
    let mut stmt = db.prepare("SELECT tool_name, caller, session_id, success FROM mcp_tool_audit ORDER BY id").unwrap();
    let rows: Vec<(String, String, String, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (tool, caller, session, _) in &rows {
        let expected = if caller == "alpha" { &a } else { &b };
        assert!(caller == "alpha" || caller == "beta", "{rows:?}");
        assert_eq!(session, expected, "{tool} {rows:?}");
    }
    assert!(rows.contains(&(COMBOS.to_owned(), "alpha".to_owned(), a.clone(), false)), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_needs_both_the_operator_grant_and_the_tenants_scope() {
    let gateway = FakeGateway::start();
    // The examples' grants.toml gives rank_combos read:combos and provider_digest read:health.
    let plugins = paths::example_plugins_dir(&["rank_combos", "provider_digest"]);
    let server = HttpServer::start(&gateway, &two_tenants(), &["--plugins", plugins.to_str().unwrap()]).await;
    server.wait_ready().await;
    let a = server.open_session("token-alpha").await;
    let b = server.open_session("token-beta").await;
    let alpha_tools = server.list_tools("token-alpha", &a).await;
    let beta_tools = server.list_tools("token-beta", &b).await;
    assert!(alpha_tools.contains(&"provider_digest".to_owned()) && !alpha_tools.contains(&"rank_combos".to_owned()), "{alpha_tools:?}");
    assert!(beta_tools.contains(&"rank_combos".to_owned()) && !beta_tools.contains(&"provider_digest".to_owned()), "{beta_tools:?}");

    let (err, text) = server.call("token-beta", &b, "rank_combos", 3).await;
    assert!(!err, "{text}");
    let (err, text) = server.call("token-alpha", &a, "rank_combos", 3).await;
    assert!(err && text.contains("Insufficient MCP scopes for rank_combos"), "{text}");
    assert_eq!(gateway.requests_to("GET", "/api/combos").len(), 1, "only beta's call reached the gateway");
}

/// `/readyz` stays not ready until the plugin folder has been loaded once (here three
/// plugins whose `describe()` spins until each is stopped by its CPU budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_plugin_folder() {
    let gateway = FakeGateway::start();
    let plugins = TempDir::new("readyz-plugins");
    for name in ["loop_a", "loop_b", "loop_c"] {
        omniroute_mcp_tests::wat_plugins::install(plugins.path(), name, omniroute_mcp_tests::wat_plugins::LOOPING_DESCRIBE);
    }
    let server = HttpServer::start(&gateway, &two_tenants(), &["--plugins", plugins.path().to_str().unwrap()]).await;
    let early = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(early.status(), 503);
    let body: Value = serde_json::from_str(&early.text().await.unwrap()).unwrap();
    assert_eq!(body["reason"], "the plugin folder is still being loaded", "{body}");
    // Built-in tools are served meanwhile.
    let a = server.open_session("token-alpha").await;
    assert!(server.list_tools("token-alpha", &a).await.contains(&HEALTH.to_owned()));
    server.wait_ready().await;
    assert_eq!(server.log().matches("plugin refused").count(), 3, "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_session_id_is_refused_for_another_tenant() {
    let gateway = FakeGateway::start();
    let server = HttpServer::start(&gateway, &two_tenants(), &[]).await;
    let a = server.open_session("token-alpha").await;

    let stolen = server
        .post(Some("token-beta"), Some(&a), json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}), &[])
        .await;
    assert_eq!(stolen.status, 403, "{}", stolen.text);
    assert!(stolen.text.contains("belongs to another tenant"), "{}", stolen.text);
    let stolen_call = server
        .post(
            Some("token-beta"),
            Some(&a),
            json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": HEALTH, "arguments": {}}}),
            &[],
        )
        .await;
    assert_eq!(stolen_call.status, 403, "{}", stolen_call.text);
    let delete = server.delete("token-beta", &a).await;
    assert_eq!(delete.status().as_u16(), 403);

    // The owner is unaffected, and can end its session with DELETE.
    assert!(server.list_tools("token-alpha", &a).await.contains(&HEALTH.to_owned()));
    let delete = server.delete("token-alpha", &a).await;
    assert!(delete.status().is_success(), "{}", delete.status());
    let after = server
        .post(Some("token-alpha"), Some(&a), json!({"jsonrpc": "2.0", "id": 11, "method": "tools/list"}), &[])
        .await;
    assert_eq!(after.status, 404, "a deleted session is gone: {}", after.text);
    assert!(gateway.requests_to("GET", "/api/monitoring/health").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_invalid_tokens_get_401_and_probes_need_none() {
    let gateway = FakeGateway::start();
    let server = HttpServer::start(&gateway, &two_tenants(), &[]).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let none = server.post(None, None, init.clone(), &[]).await;
    assert_eq!(none.status, 401);
    let body: Value = serde_json::from_str(&none.text).unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("Missing bearer token"), "{body}");
    let wrong = server.post(Some("token-gamma"), None, init.clone(), &[]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("Invalid bearer token"), "{}", wrong.text);
    let basic = server.post(None, None, init, &[("authorization", "Basic dG9rZW4tYWxwaGE=")]).await;
    assert_eq!(basic.status, 401);

    let health = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let ready: Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_host_and_origin_are_refused() {
    let gateway = FakeGateway::start();
    let server = HttpServer::start(&gateway, &two_tenants(), &["--allowed-host", "mcp.example.com"]).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let evil_host = server.post(Some("token-alpha"), None, init.clone(), &[("host", "evil.example:80")]).await;
    assert_eq!(evil_host.status, 403, "{}", evil_host.text);
    assert!(evil_host.text.contains("DNS rebinding"), "{}", evil_host.text);
    let evil_origin = server.post(Some("token-alpha"), None, init.clone(), &[("origin", "http://evil.example")]).await;
    assert_eq!(evil_origin.status, 403, "{}", evil_origin.text);
    assert!(evil_origin.text.contains("Origin"), "{}", evil_origin.text);
    // Refused before authentication: no token needed to get 403, no session created.
    let no_token = server.post(None, None, init.clone(), &[("host", "evil.example")]).await;
    assert_eq!(no_token.status, 403);

    let local_origin = server.post(Some("token-alpha"), None, init.clone(), &[("origin", "http://localhost:3000")]).await;
    assert_eq!(local_origin.status, 200, "{}", local_origin.text);
    let configured = server.post(Some("token-alpha"), None, init, &[("host", "mcp.example.com")]).await;
    assert_eq!(configured.status, 200, "{}", configured.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_concurrency_limits_hold_per_tenant_under_load() {
    let gateway = FakeGateway::start();
    // `initialize` counts under the rate limit too: of 4 per minute, one
    // goes to opening the session and 3 are left for calls.
    let tenants = tenant("limited", "token-limited", &["read:*"], "rate_per_minute = 4\nmax_concurrent = 50")
        + &tenant("narrow", "token-narrow", &["read:*"], "rate_per_minute = 600\nmax_concurrent = 1")
        + &tenant("other", "token-other", &["read:*"], "rate_per_minute = 600\nmax_concurrent = 50");
    let server = Arc::new(HttpServer::start(&gateway, &tenants, &[]).await);
    let limited = server.open_session("token-limited").await;
    let other = server.open_session("token-other").await;

    // Rate: 8 concurrent calls, exactly 3 run; the other tenant's 8 all run.
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        for (token, session) in [("token-limited", limited.clone()), ("token-other", other.clone())] {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let (err, text) = server.call(token, &session, "omniroute_list_combos", 100 + i).await;
                (token, err, text)
            }));
        }
    }
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    let ok = |who: &str| results.iter().filter(|(t, e, _)| *t == who && !*e).count();
    assert_eq!(ok("token-limited"), 3, "{results:?}");
    assert_eq!(ok("token-other"), 8, "{results:?}");
    for (_, err, text) in results.iter().filter(|(t, e, _)| *t == "token-limited" && *e) {
        assert!(*err);
        assert!(
            text.starts_with("Error: Rate limit exceeded for tenant limited: 4 calls per minute; retry in "),
            "{text}"
        );
    }

    // Concurrency: slow gateway, 4 calls at once; one runs, three are refused; others unaffected.
    gateway.set_override("GET", "/api/combos", Override::delay(Duration::from_millis(1500)));
    let narrow = server.open_session("token-narrow").await;
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        for (token, session) in [("token-narrow", narrow.clone()), ("token-other", other.clone())] {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let (err, text) = server.call(token, &session, "omniroute_list_combos", 200 + i).await;
                (token, err, text)
            }));
        }
    }
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    let ok = |who: &str| results.iter().filter(|(t, e, _)| *t == who && !*e).count();
    assert_eq!(ok("token-narrow"), 1, "{results:?}");
    assert_eq!(ok("token-other"), 4, "{results:?}");
    for (_, _, text) in results.iter().filter(|(t, e, _)| *t == "token-narrow" && *e) {
        assert!(text.starts_with("Error: Concurrency limit reached for tenant narrow: at most 1 calls at a time"), "{text}");
    }
    // Once the slot is free the tenant can call again.
    let (err, text) = server.call("token-narrow", &narrow, "omniroute_list_combos", 300).await;
    assert!(!err, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_streamable_http_client_works_with_a_bearer_token() {
    let gateway = FakeGateway::start();
    let server = HttpServer::start(&gateway, &two_tenants(), &[]).await;
    let env = vec![
        ("OMNIROUTE_MCP_URL".to_owned(), server.url()),
        ("OMNIROUTE_MCP_TOKEN".to_owned(), "token-alpha".to_owned()),
        ("EXPECT_TOOLS".to_owned(), HEALTH.to_owned()),
        ("HIDDEN_TOOLS".to_owned(), COMBOS.to_owned()),
    ];
    let run = python::run_script("http_client.py", &env, Duration::from_secs(120), || server.log()).await;
    assert!(run.stdout.contains("all checks passed"), "{}", run.stdout);
    assert_eq!(gateway.requests_to("GET", "/api/monitoring/health").len(), 1);
}

/// Finds `obj[key]` anywhere in a JSON value.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key).or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_default_budget_guard_is_set_on_each_new_session_only_for_that_tenant() {
    let gateway = FakeGateway::start();
    let tenants = tenant(
        "budgeted",
        "token-budgeted",
        &["read:usage"],
        "default_budget = { max_cost = 2.5, action = \"block\" }",
    ) + &tenant("free", "token-free", &["read:usage"], "");
    let server = HttpServer::start(&gateway, &tenants, &[]).await;
    let snapshot = "omniroute_get_session_snapshot";
    for (token, expected) in [("token-budgeted", json!(2.5)), ("token-free", Value::Null), ("token-budgeted", json!(2.5))] {
        let session = server.open_session(token).await;
        let (err, text) = server.call(token, &session, snapshot, 5).await;
        assert!(!err, "{text}");
        let out: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
        let budget = find(&out, "budgetGuard").unwrap_or_else(|| panic!("no budgetGuard in {out}"));
        assert_eq!(budget.get("limit").cloned().unwrap_or(Value::Null), expected, "{token}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_finish_then_exits_cleanly() {
    let gateway = FakeGateway::start();
    gateway.set_override("GET", "/api/combos", Override::delay(Duration::from_millis(1500)));
    let server = HttpServer::start(&gateway, &two_tenants(), &[]).await;
    let session = server.open_session("token-beta").await;
    let pid = server._child.id().expect("the server is running");
    let server = Arc::new(server);
    let call = {
        let server = server.clone();
        let session = session.clone();
        tokio::spawn(async move { server.call("token-beta", &session, COMBOS, 7).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    assert!(status.success());
    let (err, text) = call.await.unwrap();
    assert!(!err, "the call in flight must finish: {text}");
    // The process exits on its own, having flushed the audit log.
    let mut server = Arc::try_unwrap(server).ok().expect("no other references");
    let exit = tokio::time::timeout(Duration::from_secs(20), server._child.wait())
        .await
        .unwrap_or_else(|_| panic!("the server did not exit after SIGTERM: {}", server.log()))
        .unwrap();
    assert!(exit.success(), "{exit:?}: {}", server.log());
    let db = rusqlite::Connection::open(server.command.data_dir().join("audit.sqlite")).unwrap();
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM mcp_tool_audit WHERE caller = 'beta' AND success = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_with_the_reason_when_the_audit_log_is_unusable() {
    let gateway = FakeGateway::start();
    let blocker = TempDir::new("audit-blocker");
    let not_a_dir = blocker.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let audit_db = not_a_dir.join("audit.sqlite");
    let server = HttpServer::start(&gateway, &two_tenants(), &["--audit-db", audit_db.to_str().unwrap()]).await;
    let health = server.client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = server.client.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = serde_json::from_str(&ready.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "not ready", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("audit"), "{body}");
    // Anyone may ask /readyz: it names the problem, never a path.
    let text = body.to_string();
    assert!(!text.contains(blocker.path().to_str().unwrap()) && !text.contains('/'), "a path in /readyz: {text}");
    assert!(server.log().contains(not_a_dir.to_str().unwrap()), "the operator's log has the details: {}", server.log());
}

/// `initialize` is counted under the tenant's rate limit: a tenant cannot
/// open sessions faster than it may call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_counts_under_the_tenants_rate_limit() {
    let gateway = FakeGateway::start();
    let tenants = tenant("slow", "token-slow", &["read:*"], "rate_per_minute = 2") + &tenant("other", "token-other", &["read:*"], "");
    let server = HttpServer::start(&gateway, &tenants, &[]).await;
    server.open_session("token-slow").await;
    server.open_session("token-slow").await;
    let third = server.post(Some("token-slow"), None, initialize_body(), &[]).await;
    assert_eq!(third.status, 429, "{}", third.text);
    assert!(third.session_id.is_none(), "no session was created: {:?}", third.session_id);
    let body: Value = serde_json::from_str(&third.text).unwrap_or_else(|_| panic!("{}", third.text));
    assert!(
        body["message"].as_str().unwrap_or_default().starts_with("Rate limit exceeded for tenant slow: 2 calls per minute; retry in "),
        "{body}"
    );
    // Another tenant's bucket is its own.
    server.open_session("token-other").await;
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "http-test", "version": "0"}}})
}

/// Each tenant holds at most `max_sessions` live sessions. A slot frees up
/// whenever a session ends: by DELETE, and by idle eviction (after
/// `--session-idle-timeout` seconds without a request), which also forgets
/// the session's owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_are_capped_per_tenant_and_freed_when_a_session_ends() {
    let gateway = FakeGateway::start();
    let tenants = tenant("capped", "token-capped", &["read:*"], "max_sessions = 1") + &tenant("other", "token-other", &["read:*"], "");
    let server = HttpServer::start(&gateway, &tenants, &["--session-idle-timeout", "2"]).await;
    let first = server.open_session("token-capped").await;
    let refused = server.post(Some("token-capped"), None, initialize_body(), &[]).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.session_id.is_none());
    assert!(
        refused.text.contains("Session limit reached for tenant capped: at most 1 live MCP sessions")
            && refused.text.contains("after 2 s without a request"),
        "{}",
        refused.text
    );
    // Other tenants are not affected.
    server.open_session("token-other").await;

    // DELETE ends the session and frees the slot.
    let delete = server.delete("token-capped", &first).await;
    assert!(delete.status().is_success(), "{}", delete.status());
    let second = server.open_session("token-capped").await;
    assert!(server.list_tools("token-capped", &second).await.contains(&HEALTH.to_owned()));

    // Idle eviction ends the session, forgets its owner and frees the slot.
    // (Polled: the eviction timer is the server's, not the test's.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let probe = server.post(Some("token-capped"), None, initialize_body(), &[]).await;
        if probe.status == 200 {
            break;
        }
        assert_eq!(probe.status, 429, "{}", probe.text);
        assert!(std::time::Instant::now() < deadline, "the idle session was never evicted: {}", server.log());
    }
    let gone = server
        .post(Some("token-capped"), Some(&second), json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}), &[])
        .await;
    assert_eq!(gone.status, 404, "an evicted session is gone: {}", gone.text);
}

/// An idle session is parked (rmcp's worker for it closed, its memory freed) and its next
/// request restores it transparently: same `Mcp-Session-Id`, same state bucket (the budget
/// guard set before parking), same tenant slot. DELETE of a parked session frees the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_parked_and_its_next_request_restores_it_with_its_state() {
    let gateway = FakeGateway::start();
    let tenants = tenant("parked", "token-parked", &["read:*", "write:budget"], "max_sessions = 1");
    let log = "info,rmcp=warn,omniroute_mcp::transport::http::sessions=debug";
    let server = HttpServer::start(&gateway, &tenants, &["--session-park-after", "1", "--log", log]).await;
    let session = server.open_session("token-parked").await;
    let set = server
        .post(
            Some("token-parked"),
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "omniroute_set_budget_guard", "arguments": {"maxCost": 7.25, "action": "block"}}}),
            &[],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.message.as_ref().and_then(|m| m["result"]["isError"].as_bool()), Some(false), "{}", set.text);

    // Parked: the sweeper (every 250 ms with a 1 s park) closes the session's worker.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !server.log().contains("parked_now=1") {
        assert!(std::time::Instant::now() < deadline, "the idle session was never parked: {}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still holding the tenant's only slot while parked.
    let refused = server.post(Some("token-parked"), None, initialize_body(), &[]).await;
    assert_eq!(refused.status, 429, "a parked session keeps its slot: {}", refused.text);

    // The next request restores it, with its state.
    let (err, text) = server.call("token-parked", &session, "omniroute_get_session_snapshot", 3).await;
    assert!(!err, "{text}");
    let out: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    let budget = find(&out, "budgetGuard").unwrap_or_else(|| panic!("no budgetGuard in {out}"));
    assert_eq!(budget.get("limit"), Some(&json!(7.25)), "the restored session kept its state bucket: {out}");
    assert!(server.list_tools("token-parked", &session).await.contains(&HEALTH.to_owned()));

    // Parked again, then ended by DELETE: the slot is free.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while server.log().matches("parked_now=1").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the restored session was never parked again: {}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delete = server.delete("token-parked", &session).await;
    assert!(delete.status().is_success(), "{}", delete.status());
    let gone = server.post(Some("token-parked"), Some(&session), json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}), &[]).await;
    assert_eq!(gone.status, 404, "a deleted parked session is gone: {}", gone.text);
    server.open_session("token-parked").await;
}
