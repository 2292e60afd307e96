//! Prometheus metrics (`serve --metrics ADDR`): after a scripted mix of calls over Streamable HTTP
//! (ok, denied, invalid, unknown tool, rate-limited, two sandbox stops), `/metrics` is parsed by
//! the Prometheus client's strict OpenMetrics parser (Python, `tests/python/parse_metrics.py`)
//! and every counter has moved by exactly the expected amount; gateway request counts match what
//! the fake gateway received. Also: a non-loopback metrics address needs a token, and the token
//! is enforced (with the stdio transport, so metrics work there too).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omniroute_mcp_tests::{FakeGateway, ServerCommand, TEST_HOSTILE, TempDir, paths, python};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(60);
const HEALTH: &str = "omniroute_get_health";
const COMBOS: &str = "omniroute_list_combos";

fn tenant(id: &str, token: &str, extra: &str) -> String {
    tenant_with_scopes(id, token, r#""read:health""#, extra)
}

fn tenant_with_scopes(id: &str, token: &str, scopes: &str, extra: &str) -> String {
    format!(
        "[[tenant]]\nid = \"{id}\"\ntoken_sha256 = \"{}\"\nscopes = [{scopes}]\n{extra}\n",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// A running server and the addresses it printed on stderr.
struct Server {
    _child: tokio::process::Child,
    mcp: Option<String>,
    metrics: String,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
    client: reqwest::Client,
}

/// Spawns `command` and waits for the `metrics on http://ADDR/metrics` line (and, when
/// `http` is set, the `listening on http://ADDR/mcp` line).
async fn spawn(command: ServerCommand, dir: TempDir, http: bool) -> Server {
    let mut child = command.to_command().spawn().expect("spawn the server");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, String)>();
    {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send((true, rest.trim_end_matches("/mcp").trim().to_owned()));
                }
                if let Some(rest) = line.split("metrics on http://").nth(1) {
                    let _ = tx.send((false, rest.trim_end_matches("/metrics").trim().to_owned()));
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let (mut mcp, mut metrics) = (None, None);
    while metrics.is_none() || (http && mcp.is_none()) {
        match tokio::time::timeout(TIMEOUT, rx.recv()).await {
            Ok(Some((true, addr))) => mcp = Some(format!("http://{addr}")),
            Ok(Some((false, addr))) => metrics = Some(format!("http://{addr}/metrics")),
            _ => panic!("no listening lines within {TIMEOUT:?}: {}", log.lock().unwrap()),
        }
    }
    Server {
        _child: child,
        mcp,
        metrics: metrics.unwrap(),
        log,
        _dir: dir,
        client: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap(),
    }
}

impl Server {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// One JSON-RPC request to /mcp; returns the answer (JSON body or first SSE event with an id).
    async fn rpc(&self, token: &str, session: Option<&str>, body: Value) -> (Option<String>, Value) {
        let mut req = self
            .client
            .post(format!("{}/mcp", self.mcp.as_ref().unwrap()))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string());
        if let Some(s) = session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-06-18");
        }
        let response = req.send().await.expect("POST /mcp");
        let status = response.status().as_u16();
        let session = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let message = omniroute_mcp_tests::mcp::http_answer(&text);
        assert_eq!(status, 200, "{body}: {text}\n{}", self.log());
        (session, message.unwrap_or(Value::Null))
    }

    async fn open_session(&self, token: &str) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "metrics-test", "version": "0"}}});
        let (session, answer) = self.rpc(token, None, init).await;
        let session = session.unwrap_or_else(|| panic!("no session id: {answer}"));
        let note = self
            .client
            .post(format!("{}/mcp", self.mcp.as_ref().unwrap()))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {token}"))
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .body(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .send()
            .await
            .unwrap();
        assert!(note.status().is_success(), "{}", note.status());
        session
    }

    /// Ends a session (DELETE /mcp), as a client that closes does.
    async fn close_session(&self, token: &str, session: &str) {
        let response = self
            .client
            .delete(format!("{}/mcp", self.mcp.as_ref().unwrap()))
            .header("authorization", format!("Bearer {token}"))
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .expect("DELETE /mcp");
        assert!(response.status().is_success(), "DELETE /mcp: {}\n{}", response.status(), self.log());
    }

    /// tools/call; returns the JSON-RPC answer.
    async fn call(&self, token: &str, session: &str, tool: &str, args: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args}});
        self.rpc(token, Some(session), body).await.1
    }

    /// `/metrics` parsed by the Prometheus client's OpenMetrics parser.
    async fn scrape(&self) -> Samples {
        let response = self.client.get(&self.metrics).send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200, "{}", self.log());
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        parse(&response.text().await.unwrap(), &|| self.log()).await
    }
}

/// Every sample: (name, sorted labels) -> value.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

async fn parse(text: &str, context: &dyn Fn() -> String) -> Samples {
    let dir = TempDir::new("metrics");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let env = [("METRICS_FILE".to_owned(), file.display().to_string())];
    let run = python::run_script("parse_metrics.py", &env, TIMEOUT, || format!("{text}\n{}", context())).await;
    let list: Vec<Value> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    list.into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            labels.sort();
            ((s["name"].as_str().unwrap().to_owned(), labels), s["value"].as_f64().unwrap())
        })
        .collect()
}

fn key(name: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    labels.sort();
    (name.to_owned(), labels)
}

/// How much each sample named `prefix*` moved between two scrapes (zeros left out).
fn moved(before: &Samples, after: &Samples, prefix: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    after
        .iter()
        .filter(|((name, _), _)| name.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_counter_moves_by_exactly_the_calls_made() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("metrics-tenants");
    let file = dir.path().join("tenants.toml");
    // `tiny` may make two requests a minute: its initialize and one call.
    std::fs::write(&file, tenant("acme", "token-acme", "") + &tenant("tiny", "token-tiny", "rate_per_minute = 2")).unwrap();
    let command = ServerCommand::new(&gateway.url())
        .with_test_tools()
        .arg("serve")
        .arg("--http")
        .arg("127.0.0.1:0")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .arg("--tenants")
        .arg(file.as_os_str());
    let server = spawn(command, dir, true).await;

    let acme = server.open_session("token-acme").await;
    let tiny = server.open_session("token-tiny").await;
    let before = server.scrape().await;
    gateway.clear_requests();

    for _ in 0..2 {
        let ok = server.call("token-acme", &acme, HEALTH, json!({})).await;
        assert_eq!(ok["result"]["isError"], json!(false), "{ok}");
    }
    let denied = server.call("token-acme", &acme, COMBOS, json!({})).await;
    assert!(denied["result"]["content"][0]["text"].as_str().unwrap().contains("Insufficient MCP scopes"), "{denied}");
    let invalid = server.call("token-acme", &acme, TEST_HOSTILE, json!({"attack": 5})).await;
    assert!(invalid["result"]["content"][0]["text"].as_str().unwrap().contains("Invalid arguments"), "{invalid}");
    let unknown = server.call("token-acme", &acme, "no such tool\"{}", json!({})).await;
    assert!(unknown.get("error").is_some(), "{unknown}");
    for attack in ["memory", "panic"] {
        let stopped = server.call("token-acme", &acme, TEST_HOSTILE, json!({"attack": attack})).await;
        assert_eq!(stopped["result"]["isError"], json!(true), "{stopped}");
    }
    let ok = server.call("token-tiny", &tiny, HEALTH, json!({})).await;
    assert_eq!(ok["result"]["isError"], json!(false), "{ok}");
    let limited = server.call("token-tiny", &tiny, HEALTH, json!({})).await;
    assert!(limited["result"]["content"][0]["text"].as_str().unwrap().starts_with("Error: Rate limit exceeded for tenant tiny"), "{limited}");

    let after = server.scrape().await;
    let calls = "omniroute_mcp_tool_calls_total";
    let expected_calls: BTreeMap<_, f64> = [
        (key(calls, &[("tool", HEALTH), ("tenant", "acme"), ("outcome", "ok")]), 2.0),
        (key(calls, &[("tool", COMBOS), ("tenant", "acme"), ("outcome", "denied")]), 1.0),
        (key(calls, &[("tool", TEST_HOSTILE), ("tenant", "acme"), ("outcome", "invalid")]), 1.0),
        (key(calls, &[("tool", "unknown"), ("tenant", "acme"), ("outcome", "invalid")]), 1.0),
        (key(calls, &[("tool", TEST_HOSTILE), ("tenant", "acme"), ("outcome", "stopped")]), 2.0),
        (key(calls, &[("tool", HEALTH), ("tenant", "tiny"), ("outcome", "ok")]), 1.0),
        (key(calls, &[("tool", HEALTH), ("tenant", "tiny"), ("outcome", "limited")]), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(moved(&before, &after, calls), expected_calls, "{}", server.log());

    let stops = "omniroute_mcp_sandbox_stops_total";
    let expected_stops: BTreeMap<_, f64> = [
        (key(stops, &[("tool", TEST_HOSTILE), ("cause", "memory")]), 1.0),
        (key(stops, &[("tool", TEST_HOSTILE), ("cause", "crash")]), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(moved(&before, &after, stops), expected_stops);

    let durations = "omniroute_mcp_tool_call_duration_seconds_count";
    let expected_durations: BTreeMap<_, f64> = [
        (key(durations, &[("tool", HEALTH)]), 4.0),
        (key(durations, &[("tool", COMBOS)]), 1.0),
        (key(durations, &[("tool", TEST_HOSTILE)]), 3.0),
        (key(durations, &[("tool", "unknown")]), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(moved(&before, &after, durations), expected_durations);
    // Every call's audit row (the refusal's included) was committed and timed; none failed.
    let audited = key("omniroute_mcp_audit_commit_duration_seconds_count", &[]);
    assert_eq!(after[&audited] - before.get(&audited).copied().unwrap_or(0.0), 9.0);
    assert_eq!(after[&key("omniroute_mcp_audit_write_failures_total", &[])], 0.0);
    assert_eq!(after[&key("omniroute_mcp_calls_in_flight", &[])], 0.0);
    // Every row was committed before its answer (journaled); the journal drains within 100 ms,
    // so the queue depth falls to 0 (it counted the journaled rows until then).
    let depth = key("omniroute_mcp_audit_queue_depth", &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut now = after.clone();
    while now[&depth] != 0.0 {
        assert!(now[&depth] <= 9.0, "the depth counts at most the 9 rows: {}", now[&depth]);
        assert!(std::time::Instant::now() < deadline, "journaled rows still wait after 5 s: {}\n{}", now[&depth], server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = server.scrape().await;
    }
    // One live session per tenant, until one is closed.
    let sessions = |samples: &Samples, tenant: &str| samples.get(&key("omniroute_mcp_http_sessions", &[("tenant", tenant)])).copied();
    assert_eq!((sessions(&after, "acme"), sessions(&after, "tiny")), (Some(1.0), Some(1.0)), "{}", server.log());

    // Gateway requests: exactly what the fake gateway received, by method and route.
    let mut received: BTreeMap<_, f64> = BTreeMap::new();
    for r in gateway.requests() {
        *received
            .entry(key("omniroute_mcp_gateway_requests_total", &[("method", &r.method), ("route", &r.path), ("status", "2xx")]))
            .or_default() += 1.0;
    }
    assert!(!received.is_empty());
    assert_eq!(moved(&before, &after, "omniroute_mcp_gateway_requests_total"), received, "{}", server.log());
    let latencies = moved(&before, &after, "omniroute_mcp_gateway_request_duration_seconds_count");
    assert_eq!(latencies.values().sum::<f64>(), received.values().sum::<f64>(), "{latencies:?}");

    // The loaded and refused tools, as the folders hold them.
    let loaded = components_in(&paths::builtin_tools_dir()) + components_in(&paths::test_tools_dir());
    assert_eq!(after[&key("omniroute_mcp_tools_loaded", &[])], loaded as f64);
    assert_eq!(after[&key("omniroute_mcp_tools_refused", &[])], 0.0);

    server.close_session("token-acme", &acme).await;
    let closed = server.scrape().await;
    assert_eq!((sessions(&closed, "acme"), sessions(&closed, "tiny")), (Some(0.0), Some(1.0)), "{}", server.log());
}

/// The session budget guard's blocks and degrades, counted by tenant: with a priced completion
/// (0.0000285 USD) and a 0.00001 USD guard, `block` lets the first completion through and
/// refuses the second; `degrade` to tier `free` sends the next one to the `free-tier` combo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_blocks_and_degrades_are_counted_by_tenant() {
    use omniroute_mcp_tests::Override;
    use omniroute_mcp_tests::tools::{BUDGET, ROUTE};
    let gateway = FakeGateway::start();
    let priced = FakeGateway::fixture("chat-completion-priced.json");
    let mut answer = Override::json(200, priced["body"].clone());
    for (name, value) in priced["headers"].as_object().unwrap() {
        answer = answer.with_header(name, value.as_str().unwrap());
    }
    gateway.set_override("POST", "/v1/chat/completions", answer);
    let dir = TempDir::new("metrics-budget");
    let file = dir.path().join("tenants.toml");
    let scopes = r#""execute:completions", "write:budget", "read:combos", "read:models""#;
    std::fs::write(&file, tenant_with_scopes("spender", "token-spender", scopes, "")).unwrap();
    let command = ServerCommand::new(&gateway.url())
        .arg("serve")
        .arg("--http")
        .arg("127.0.0.1:0")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .arg("--tenants")
        .arg(file.as_os_str());
    let server = spawn(command, dir, true).await;
    let session = server.open_session("token-spender").await;
    let route = || json!({"model": "coding-fast", "messages": [{"role": "user", "content": "Say hi"}]});
    let before = server.scrape().await;

    let guard = server.call("token-spender", &session, BUDGET, json!({"maxCost": 0.00001, "action": "block"})).await;
    assert_eq!(guard["result"]["isError"], json!(false), "{guard}");
    let sent = server.call("token-spender", &session, ROUTE, route()).await;
    assert_eq!(sent["result"]["isError"], json!(false), "{sent}");
    let blocked = server.call("token-spender", &session, ROUTE, route()).await;
    let text = blocked["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("Budget guard blocked the request"), "{blocked}");
    let after_block = server.scrape().await;
    let blocks = key("omniroute_mcp_budget_blocks_total", &[("tenant", "spender")]);
    let degrades = key("omniroute_mcp_budget_degrades_total", &[("tenant", "spender")]);
    let delta = |after: &Samples, k: &(String, Vec<(String, String)>)| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    assert_eq!((delta(&after_block, &blocks), delta(&after_block, &degrades)), (1.0, 0.0), "{}", server.log());

    let guard = server
        .call("token-spender", &session, BUDGET, json!({"maxCost": 0.00001, "action": "degrade", "degradeToTier": "free"}))
        .await;
    assert_eq!(guard["result"]["isError"], json!(false), "{guard}");
    let degraded = server.call("token-spender", &session, ROUTE, route()).await;
    assert_eq!(degraded["result"]["structuredContent"]["routing"]["degradedFrom"], json!("coding-fast"), "{degraded}");
    let after = server.scrape().await;
    assert_eq!((delta(&after, &blocks), delta(&after, &degrades)), (1.0, 1.0), "{}", server.log());
    // The legacy session's state got one handle in the store (minted on its first call and
    // reused), read from the store at each scrape.
    let handles = key("omniroute_mcp_session_handles", &[("tenant", "spender")]);
    assert_eq!((after_block.get(&handles).copied(), after.get(&handles).copied()), (Some(1.0), Some(1.0)), "{}", server.log());
    // Only the tenant's own labels moved.
    assert_eq!(moved(&before, &after, "omniroute_mcp_budget_").len(), 2, "{:?}", moved(&before, &after, "omniroute_mcp_budget_"));
}

/// Metrics name tenants: off loopback they need a token, and then every scrape must carry it.
/// Runs the stdio transport, so `--metrics` works there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_loopback_need_a_token_and_enforce_it() {
    let gateway = FakeGateway::start();
    let refused = ServerCommand::new(&gateway.url()).arg("serve").arg("--metrics").arg("0.0.0.0:0").run_to_end().await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("OMNIROUTE_MCP_METRICS_TOKEN"), "{stderr}");

    let token = "scrape-secret-123";
    let command = ServerCommand::new(&gateway.url())
        .env("OMNIROUTE_MCP_METRICS_TOKEN", token)
        .arg("serve")
        .arg("--metrics")
        .arg("0.0.0.0:0");
    let server = spawn(command, TempDir::new("metrics-token"), false).await;
    let url = server.metrics.replace("0.0.0.0", "127.0.0.1");
    let anonymous = server.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = server.client.get(&url).bearer_auth("scrape-secret-124").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = server.client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status(), 200, "{}", server.log());
    let samples = parse(&right.text().await.unwrap(), &|| server.log()).await;
    assert_eq!(samples[&key("omniroute_mcp_tools_loaded", &[])], components_in(&paths::builtin_tools_dir()) as f64);
}

fn components_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wasm")).count()
}
