//! Several nodes as one (issue 13): two real `serve --http` processes sharing one real
//! PostgreSQL (`OMNIROUTE_MCP_TEST_POSTGRES_URL`, which `cargo xtask test` starts; a fresh schema
//! per test) as state store and audit log, against the in-process fake gateway whose
//! completions cost a fixed C each (`x-omniroute-response-cost`) and whose `/api/pricing` knows
//! no price, so a tenant's `unpriced_completion_usd = C` makes every reservation exactly C.
//!
//! * a 2026-07-28 client (the official Python SDK `Client`) alternating between the nodes keeps
//!   one guard and one ledger through its handle;
//! * with a cap of 10.5 C, 20 concurrent completions over both nodes: at least 8 succeed, the
//!   rest are refused naming the cap, and the store's spend stays within the cap;
//! * a rate bucket that cannot refill during the test accepts exactly its size across both nodes;
//! * SIGKILL of one node during a burst loses no audit row of an answered call;
//! * a restarted SQLite-backed server keeps the tenant's spend: the cap still holds.

use std::time::Duration;

use omniroute_mcp_tests::http_server::HttpServer;
use omniroute_mcp_tests::{FakeGateway, Override, ServerCommand, TempDir, python};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const STARTUP: Duration = Duration::from_secs(90);
const TIMEOUT: Duration = Duration::from_secs(60);
/// What every completion of the fake gateway costs (USD).
const C: f64 = 0.001;
const SCOPES: &str = r#"["execute:completions", "read:usage", "write:budget", "read:health", "read:combos"]"#;

fn token(tenant: &str) -> String {
    format!("nodes-test-token-{tenant}")
}

/// One `[[tenant]]` with the session tools' scopes and `extra` settings.
fn tenant(id: &str, extra: &str) -> String {
    format!(
        "[[tenant]]\nid = \"{id}\"\ntoken_sha256 = \"{}\"\nscopes = {SCOPES}\n{extra}\n",
        hex::encode(Sha256::digest(token(id).as_bytes()))
    )
}

/// The fake gateway: completions cost C and take `delay` (so a burst overlaps); no price known.
fn gateway(delay: Duration) -> FakeGateway {
    let gateway = FakeGateway::start();
    let body = FakeGateway::fixture("chat-completion-combo.json")["body"].clone();
    gateway.set_override(
        "POST",
        "/v1/chat/completions",
        Override::json(200, body).with_header("x-omniroute-response-cost", &format!("{C}")).with_delay(delay),
    );
    gateway.set_override("GET", "/api/pricing", Override::json(200, json!({})));
    gateway
}

/// A fresh schema in the test PostgreSQL, and its URL for `--state-url` / `--audit-url`.
struct Schema {
    url: String,
    name: String,
    client: tokio_postgres::Client,
}

impl Schema {
    async fn new() -> Schema {
        let base = std::env::var("OMNIROUTE_MCP_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()).expect(
            "OMNIROUTE_MCP_TEST_POSTGRES_URL is not set: run `cargo xtask test`, or start a server with `cargo xtask postgres start` and export the URL it prints",
        );
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("nodes_{}_{}_{n}", std::process::id(), nanos % 1_000_000_000_000);
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE SCHEMA {name}")).await.expect("create a schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        Schema { url: format!("{base}{sep}options=-c%20search_path%3D{name}"), name, client }
    }

    /// The tenant's settled spend and outstanding reservations, all time.
    async fn spend(&self, tenant: &str) -> (f64, f64) {
        let sql = format!("SELECT spent, reserved FROM {}.state_spend WHERE principal = $1 AND period = 'total'", self.name);
        let principal = format!("tenant:{tenant}");
        match self.client.query_opt(&sql, &[&principal]).await.expect("read state_spend") {
            Some(row) => (row.get(0), row.get(1)),
            None => (0.0, 0.0),
        }
    }

    /// Audit rows of a tool.
    async fn audit_rows(&self, tool: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {}.mcp_tool_audit WHERE tool_name = $1", self.name);
        self.client.query_one(&sql, &[&tool]).await.expect("read mcp_tool_audit").get(0)
    }
}

/// One `serve --http` process (killed on drop), and a client for it.
struct Node {
    server: HttpServer,
    http: reqwest::Client,
}

impl Node {
    async fn start(command: &ServerCommand) -> Node {
        let server = HttpServer::start(command).await;
        let node = Node { server, http: reqwest::Client::new() };
        node.wait_ready().await;
        node
    }

    fn log(&self) -> String {
        self.server.log()
    }

    async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + STARTUP;
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.server.url)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "not ready within {STARTUP:?}: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: nothing is flushed on the way out, so what survives was committed.
    async fn kill(self) {
        self.server.kill().await;
    }

    /// SIGKILL while others still hold the node (its requests then fail).
    fn sigkill(&self) {
        self.server.sigkill();
    }

    /// A POST to /mcp; the status, the session id header and the JSON-RPC answer.
    async fn post(&self, tenant: &str, session: Option<&str>, body: Value) -> Result<(u16, Option<String>, Option<Value>), String> {
        let mut req = self
            .http
            .post(format!("{}/mcp", self.server.url))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {}", token(tenant)))
            .body(body.to_string());
        if let Some(s) = session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-06-18");
        }
        let mut response = req.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let session_id = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut text = String::new();
        loop {
            let chunk = tokio::time::timeout(TIMEOUT, response.chunk()).await.map_err(|_| "no body in time".to_owned())?;
            let Ok(Some(chunk)) = chunk else { break };
            text.push_str(&String::from_utf8_lossy(&chunk));
            if omniroute_mcp_tests::mcp::sse_answer(&text).is_some() {
                break;
            }
        }
        Ok((status, session_id, omniroute_mcp_tests::mcp::http_answer(&text)))
    }

    /// initialize + notifications/initialized (a legacy session); `None` if refused.
    async fn open_session(&self, tenant: &str) -> Option<String> {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "nodes-test", "version": "0"}}});
        let (status, session, _) = self.post(tenant, None, init).await.expect("initialize");
        if status != 200 {
            return None;
        }
        let session = session.expect("a session id");
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post(tenant, Some(&session), note).await.expect("initialized");
        Some(session)
    }

    /// tools/call in a legacy session: `Ok((isError, text))`, `Err` if the node did not answer.
    async fn call(&self, tenant: &str, session: &str, tool: &str, args: Value, id: u64) -> Result<(bool, String), String> {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}});
        let (status, _, message) = self.post(tenant, Some(session), body).await?;
        let message = message.ok_or_else(|| format!("HTTP {status} without a JSON-RPC answer"))?;
        let result = &message["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        Ok((result["isError"].as_bool().unwrap_or(false), text))
    }
}

fn tenants_file(dir: &TempDir, text: &str) -> std::path::PathBuf {
    let file = dir.path().join("tenants.toml");
    std::fs::write(&file, text).expect("write the tenants file");
    file
}

fn node_command(gateway: &FakeGateway, tenants: &std::path::Path, schema: Option<&Schema>) -> ServerCommand {
    let mut command = ServerCommand::new(&gateway.url()).arg("serve").arg("--http").arg("127.0.0.1:0").arg("--tenants").arg(tenants.as_os_str());
    if let Some(schema) = schema {
        command = command.arg("--state-url").arg(&schema.url).arg("--audit-url").arg(&schema.url);
    }
    command
}

fn completion_args(i: usize) -> Value {
    json!({"model": "coding-fast", "messages": [{"role": "user", "content": format!("nodes test {i}")}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_alternating_between_two_nodes_keeps_one_guard_and_one_ledger() {
    let schema = Schema::new().await;
    let gateway = gateway(Duration::ZERO);
    let dir = TempDir::new("nodes-alternate");
    let tenants = tenants_file(&dir, &tenant("alt", "rate_per_minute = 600"));
    let commands = [node_command(&gateway, &tenants, Some(&schema)), node_command(&gateway, &tenants, Some(&schema))];
    let (a, b) = tokio::join!(Node::start(&commands[0]), Node::start(&commands[1]));
    let env = vec![
        ("URL_A".to_owned(), format!("{}/mcp", a.server.url)),
        ("URL_B".to_owned(), format!("{}/mcp", b.server.url)),
        ("OMNIROUTE_MCP_TOKEN".to_owned(), token("alt")),
        ("COST".to_owned(), format!("{C}")),
    ];
    let run = python::run_script("nodes_client.py", &env, Duration::from_secs(240), || format!("{}\n---\n{}", a.log(), b.log())).await;
    assert!(run.stdout.contains("all checks passed"), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ok: alternating nodes: 3 completions"), "{}", run.stdout);
    assert_eq!(gateway.requests_to("POST", "/v1/chat/completions").len(), 3, "the blocked completion never left either node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_completions_over_two_nodes_stay_within_the_tenant_cap() {
    let schema = Schema::new().await;
    let gateway = gateway(Duration::from_millis(300));
    let dir = TempDir::new("nodes-cap");
    let settings = format!(
        "rate_per_minute = 600\nmax_concurrent = 16\nunpriced_completion_usd = {C}\nspend_cap = {{ amount = {}, period = \"day\" }}",
        10.5 * C
    );
    let tenants = tenants_file(&dir, &tenant("capped", &settings));
    let commands = [node_command(&gateway, &tenants, Some(&schema)), node_command(&gateway, &tenants, Some(&schema))];
    let (a, b) = tokio::join!(Node::start(&commands[0]), Node::start(&commands[1]));
    let (sa, sb) = (a.open_session("capped").await.expect("session on A"), b.open_session("capped").await.expect("session on B"));
    let calls = (0..20).map(|i| {
        let (node, session) = if i % 2 == 0 { (&a, &sa) } else { (&b, &sb) };
        node.call("capped", session, "omniroute_route_request", completion_args(i), 10 + i as u64)
    });
    let results = futures::future::join_all(calls).await;
    let (mut ok, mut capped, mut other) = (0, 0, Vec::new());
    for r in results {
        match r.expect("both nodes answer") {
            (false, _) => ok += 1,
            (true, text) if text.contains("Spend cap reached") && text.contains("per day") => capped += 1,
            (true, text) => other.push(text),
        }
    }
    assert!(other.is_empty(), "refusals other than the cap: {other:?}\n{}", a.log());
    assert!(ok >= 8, "only {ok} of 20 succeeded ({capped} refused by the cap)");
    assert_eq!(ok + capped, 20);
    let (spent, reserved) = schema.spend("capped").await;
    assert!(spent <= 10.5 * C + 1e-12, "spend {spent} over the cap {}", 10.5 * C);
    assert!((spent - ok as f64 * C).abs() < 1e-9 && reserved.abs() < 1e-12, "spent {spent}, reserved {reserved}, {ok} succeeded");
    assert_eq!(gateway.requests_to("POST", "/v1/chat/completions").len(), ok, "a refused completion never left its node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_bucket_is_shared_by_both_nodes() {
    let schema = Schema::new().await;
    let gateway = gateway(Duration::ZERO);
    let dir = TempDir::new("nodes-rate");
    // 4 per minute: one token back every 15 s, far longer than these few requests take.
    let tenants = tenants_file(&dir, &tenant("rated", "rate_per_minute = 4"));
    let commands = [node_command(&gateway, &tenants, Some(&schema)), node_command(&gateway, &tenants, Some(&schema))];
    let (a, b) = tokio::join!(Node::start(&commands[0]), Node::start(&commands[1]));
    // Session starts count under the rate too: one per node.
    let (sa, sb) = (a.open_session("rated").await.expect("session on A"), b.open_session("rated").await.expect("session on B"));
    let mut accepted = 2;
    let mut limited = 0;
    for i in 0..8 {
        let (node, session) = if i % 2 == 0 { (&a, &sa) } else { (&b, &sb) };
        match node.call("rated", session, "omniroute_get_health", json!({}), 10 + i).await.expect("an answer") {
            (false, _) => accepted += 1,
            (true, text) if text.contains("Rate limit exceeded for tenant rated: 4 calls per minute") => limited += 1,
            (true, text) => panic!("unexpected refusal: {text}"),
        }
    }
    assert_eq!(accepted, 4, "the bucket of 4 accepted {accepted} across both nodes ({limited} limited)");
    assert_eq!(limited, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_node_during_a_burst_loses_no_audit_row_of_an_answered_call() {
    let schema = Schema::new().await;
    let gateway = gateway(Duration::ZERO);
    gateway.set_override("GET", "/api/monitoring/health", Override::delay(Duration::from_millis(20)));
    let dir = TempDir::new("nodes-kill");
    let tenants = tenants_file(&dir, &tenant("burst", "rate_per_minute = 6000\nmax_concurrent = 16"));
    let commands = [node_command(&gateway, &tenants, Some(&schema)), node_command(&gateway, &tenants, Some(&schema))];
    let (a, b) = tokio::join!(Node::start(&commands[0]), Node::start(&commands[1]));
    let (sa, sb) = (a.open_session("burst").await.expect("session on A"), b.open_session("burst").await.expect("session on B"));
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let worker = |node: &'static str| {
        let (n, s) = if node == "a" { (&a, &sa) } else { (&b, &sb) };
        let answered = &answered;
        async move {
            for i in 0..40u64 {
                match n.call("burst", s, "omniroute_get_health", json!({}), 100 + i).await {
                    Ok((false, _)) => {
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok((true, text)) => panic!("node {node}: {text}"),
                    Err(_) => return, // the killed node stops answering
                }
            }
        }
    };
    let killer = async {
        // Kill B once the burst is under way (at least 10 rows committed): by count, not time.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while schema.audit_rows("omniroute_get_health").await < 10 {
            assert!(std::time::Instant::now() < deadline, "the burst never started: {}", b.log());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b.sigkill();
    };
    tokio::join!(worker("a"), worker("b"), killer);
    let rows = schema.audit_rows("omniroute_get_health").await;
    let answered = answered.load(std::sync::atomic::Ordering::SeqCst) as i64;
    assert!(answered >= 40, "node A answered all its calls: {answered}");
    assert!(rows >= answered, "{answered} calls were answered but only {rows} audit rows exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sqlite_server_keeps_the_tenant_spend_and_its_cap() {
    let gateway = gateway(Duration::ZERO);
    let dir = TempDir::new("nodes-restart");
    let settings = format!("unpriced_completion_usd = {C}\nspend_cap = {{ amount = {}, period = \"total\" }}", 2.5 * C);
    let tenants = tenants_file(&dir, &tenant("solo", &settings));
    let command = node_command(&gateway, &tenants, None);
    let node = Node::start(&command).await;
    let session = node.open_session("solo").await.expect("a session");
    let mut sent = 0;
    for i in 0..4 {
        match node.call("solo", &session, "omniroute_route_request", completion_args(i), 10 + i as u64).await.expect("an answer") {
            (false, _) => sent += 1,
            (true, text) => {
                assert!(text.contains("Spend cap reached") && text.contains("per total"), "{text}");
                break;
            }
        }
    }
    assert_eq!(sent, 2, "C + C fit a cap of 2.5 C, a third does not");
    node.kill().await;

    let restarted = Node::start(&command).await;
    let session = restarted.open_session("solo").await.expect("a session");
    let (refused, text) = restarted.call("solo", &session, "omniroute_route_request", completion_args(9), 20).await.expect("an answer");
    assert!(refused && text.contains("Spend cap reached"), "the cap must still hold after a restart: {text}");
    assert_eq!(gateway.requests_to("POST", "/v1/chat/completions").len(), 2);
}

/// `omniroute-mcp tenants ARGS --state-url URL`, as an operator runs it; its stdout, or the
/// failure with stderr.
fn tenants_cli(schema: &Schema, args: &[&str]) -> Result<String, String> {
    let mut command = std::process::Command::new(omniroute_mcp_tests::paths::server_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OMNIROUTE_") {
            command.env_remove(&name);
        }
    }
    let output = command.arg("tenants").args(args).arg("--state-url").arg(&schema.url).output().map_err(|e| e.to_string())?;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned());
    if output.status.success() { Ok(stdout) } else { Err(format!("{}: {stderr}", output.status)) }
}

/// Polls until `tenant`'s initialize on `node` answers `status`; how long that took, or `None`.
async fn until_status(node: &Node, tenant: &str, status: u16, within: Duration) -> Option<(Duration, Value)> {
    let started = std::time::Instant::now();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "nodes-test", "version": "0"}}});
    while started.elapsed() < within {
        let mut req = node
            .http
            .post(format!("{}/mcp", node.server.url))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {}", token(tenant)));
        req = req.body(init.to_string());
        let response = req.send().await.expect("the node answers");
        if response.status().as_u16() == status {
            let body = response.text().await.unwrap_or_default();
            return Some((started.elapsed(), serde_json::from_str(&body).unwrap_or(json!({ "text": body }))));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Issue 18: a principal revoked in the shared store is refused by every node within seconds,
/// though each node has its own tenants file that still lists it; others are untouched; a
/// restore lets it back in on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_revoked_in_the_shared_store_is_refused_on_every_node_within_seconds() {
    let schema = Schema::new().await;
    let gateway = gateway(Duration::ZERO);
    // One tenants file per node, as on two machines: the revocation must travel through the store.
    let (dir_a, dir_b) = (TempDir::new("nodes-revoke-a"), TempDir::new("nodes-revoke-b"));
    let text = format!("{}{}", tenant("leaver", "rate_per_minute = 600"), tenant("stayer", "rate_per_minute = 600"));
    let (file_a, file_b) = (tenants_file(&dir_a, &text), tenants_file(&dir_b, &text));
    let commands = [node_command(&gateway, &file_a, Some(&schema)), node_command(&gateway, &file_b, Some(&schema))];
    let (a, b) = tokio::join!(Node::start(&commands[0]), Node::start(&commands[1]));
    let sa = a.open_session("leaver").await.expect("leaver's session on A");
    let sb = b.open_session("leaver").await.expect("leaver's session on B");
    assert!(!a.call("leaver", &sa, "omniroute_get_health", json!({}), 2).await.expect("an answer").0);

    tenants_cli(&schema, &["revoke", "leaver", "--reason", "left the project"]).expect("tenants revoke");
    let listed = tenants_cli(&schema, &["revoked"]).expect("tenants revoked");
    assert!(listed.starts_with("tenant:leaver\t") && listed.contains("left the project"), "{listed}");
    let within = Duration::from_secs(10);
    for (name, node) in [("A", &a), ("B", &b)] {
        let (took, body) = until_status(node, "leaver", 401, within).await.unwrap_or_else(|| panic!("node {name} still admits leaver after {within:?}: {}", node.log()));
        assert!(body.to_string().contains("left the project"), "node {name}: {body}");
        eprintln!("node {name} refused the revoked tenant {took:?} after the revocation");
    }
    // Its live sessions are refused too, on both nodes; the other tenant is untouched.
    let (status, _, _) = a.post("leaver", Some(&sa), json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})).await.expect("A answers");
    assert_eq!(status, 401, "a live session of a revoked tenant on A");
    let (status, _, _) = b.post("leaver", Some(&sb), json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})).await.expect("B answers");
    assert_eq!(status, 401, "a live session of a revoked tenant on B");
    for node in [&a, &b] {
        let session = node.open_session("stayer").await.expect("the other tenant still starts sessions");
        assert!(!node.call("stayer", &session, "omniroute_get_health", json!({}), 4).await.expect("an answer").0);
    }

    tenants_cli(&schema, &["restore", "leaver"]).expect("tenants restore");
    for (name, node) in [("A", &a), ("B", &b)] {
        until_status(node, "leaver", 200, within).await.unwrap_or_else(|| panic!("node {name} still refuses leaver after the restore: {}", node.log()));
    }
    let again = tenants_cli(&schema, &["restore", "leaver"]).expect_err("a second restore has nothing to lift");
    assert!(again.contains("is not revoked"), "{again}");
    let bad = tenants_cli(&schema, &["revoke", "no such tenant"]).expect_err("an invalid name is refused");
    assert!(bad.contains("tenant id") && bad.contains("full id (tenant:acme"), "{bad}");
}
