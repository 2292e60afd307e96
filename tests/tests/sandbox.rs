//! The security invariants (docs/architecture.md#security-invariants), each proved against the real binary with the
//! `test_hostile` component: what a component cannot reach, and that every call is bounded,
//! each bound asserted by the cause the host reports (never by how long it took).

use std::time::Duration;

use omniroute_mcp_tests::{
    FakeGateway, McpClient, Override, RawServer, ServerCommand, TEST_API_KEY, TEST_HOSTILE, ToolResult,
};
use serde_json::{Value, json};

/// Another secret-looking variable in the server's environment; no component may see it.
const CANARY_VAR: &str = "OMNIROUTE_TEST_CANARY";
const CANARY_VALUE: &str = "canary-7f3a9c-do-not-leak";

/// Where a result says what stopped its call (or which limit it reached).
const STOP_CAUSE: &str = "omniroute-mcp/stopCause";
/// Progress notifications one call may send, and their longest message (the host's caps).
const MAX_PROGRESS: usize = 256;
const MAX_PROGRESS_MESSAGE: usize = 256;
/// The hostile component's wall deadline (its manifest), and the gateway timeout the test that
/// needs it sets above that.
const HOSTILE_DEADLINE_S: u32 = 20;
const LONG_GATEWAY_TIMEOUT_S: u32 = 30;
/// The hostile component's calls can take its 20 s deadline; a hung server is caught long before this.
const HUNG: Duration = Duration::from_secs(90);

fn hostile_server(gateway: &FakeGateway) -> ServerCommand {
    ServerCommand::new(&gateway.url())
        .with_test_tools()
        .api_key(TEST_API_KEY)
        .env(CANARY_VAR, CANARY_VALUE)
}

async fn start_hostile() -> (FakeGateway, McpClient) {
    let gateway = FakeGateway::start();
    let client = McpClient::start(hostile_server(&gateway)).await;
    (gateway, client)
}

async fn attack(client: &McpClient, name: &str) -> ToolResult {
    client
        .try_call_within(TEST_HOSTILE, json!({"attack": name}), HUNG)
        .await
        .unwrap_or_else(|e| panic!("attack {name}: the call must end with a result, got {e}\n{}", client.stderr()))
}

/// The stop cause a result carries, if any.
fn stop_cause(result: &ToolResult) -> Option<&str> {
    result.raw["_meta"][STOP_CAUSE].as_str()
}

/// Runs an attack that must be stopped for `cause`, then proves the next call in the same
/// server works.
async fn assert_stopped_then_recovers(name: &str, cause: &str) {
    let (_gateway, client) = start_hostile().await;
    let result = attack(&client, name).await;
    let message = result.expect_error();
    assert!(message.starts_with("Error: "), "attack {name}: {message}");
    assert_eq!(stop_cause(&result), Some(cause), "attack {name}: {}", result.raw);
    assert!(message.contains(&format!("(stop cause: {cause})")), "attack {name}: {message}");
    assert!(!message.contains(TEST_API_KEY), "{message}");

    let next = attack(&client, "ok").await;
    assert_eq!(next.expect_ok(), &json!({"ok": true}), "the call after attack {name} must work");
    assert_eq!(stop_cause(&next), None, "{}", next.raw);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loop_is_stopped_by_the_cpu_budget() {
    assert_stopped_then_recovers("loop", "cpu").await;
}

/// A guest that computes a little between many host calls: the CPU it uses is summed across
/// the calls (a meter reset at each host call would let it run into the wall deadline instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_used_across_many_host_calls_trips_the_budget() {
    assert_stopped_then_recovers("compute-between-calls", "cpu").await;
}

/// Waiting for the gateway is not CPU: a guest blocked 3 s in a gateway request (more than its
/// 2 s CPU budget), then computing briefly, succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_gateway_does_not_spend_the_cpu_budget() {
    let (gateway, client) = start_hostile().await;
    gateway.set_override("GET", "/api/monitoring/health", Override::delay(Duration::from_secs(3)));
    let result = attack(&client, "slow-then-compute").await;
    assert_eq!(result.expect_ok(), &json!({"ok": true, "status": 200}), "{}", result.raw);
    assert_eq!(stop_cause(&result), None, "{}", result.raw);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_is_stopped_at_the_memory_cap() {
    assert_stopped_then_recovers("memory", "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_inside_a_host_call_is_stopped_at_the_wall_deadline() {
    assert_stopped_then_recovers("sleep", "wall").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_fails_only_that_call() {
    assert_stopped_then_recovers("panic", "crash").await;
}

/// A call the client cancels (`notifications/cancelled`) stops its guest, with
/// that cause, long before its CPU budget would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_stops_its_guest() {
    let gateway = FakeGateway::start();
    let mut server = RawServer::start(hostile_server(&gateway)).await;
    server.initialize().await;
    let call = json!({"jsonrpc": "2.0", "id": "spin-1", "method": "tools/call", "params": {"name": TEST_HOSTILE, "arguments": {"attack": "loop"}}});
    server.send_line(&call.to_string()).await;
    server.notify("notifications/cancelled", json!({"requestId": "spin-1", "reason": "the user gave up"})).await;
    let deadline = std::time::Instant::now() + HUNG;
    while !server.stderr().contains("call stopped by the sandbox") {
        assert!(std::time::Instant::now() < deadline, "the cancelled call was not stopped:\n{}", server.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stderr = server.stderr();
    assert!(stderr.contains("stop_cause=cancelled"), "{stderr}");
    assert_eq!(server.call_tool(TEST_HOSTILE, json!({"attack": "ok"})).await.expect_ok(), &json!({"ok": true}));
    server.finish().await.assert_json_rpc_only();
}

/// A gateway request gets the smaller of its own timeout (30 s here) and what is left of the
/// call (20 s deadline): the guest sees a timeout sized to the call and can still report it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_request_gets_no_more_time_than_the_call_has_left() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(hostile_server(&gateway).arg("--gateway-timeout").arg(LONG_GATEWAY_TIMEOUT_S.to_string())).await;
    gateway.set_override("GET", "/api/monitoring/health", Override::delay(Duration::from_secs(60)));
    let result = attack(&client, "timed-request").await;
    let output = result.expect_ok().clone();
    assert_eq!(stop_cause(&result), None, "the guest reported the timeout itself: {}", result.raw);
    let text = output["result"].as_str().unwrap_or_else(|| panic!("{output}"));
    let seconds: u32 = text
        .strip_prefix("OmniRoute API timeout after ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a timeout: {text}"));
    assert!(
        seconds < HOSTILE_DEADLINE_S,
        "the request may not outlive the call's {HOSTILE_DEADLINE_S} s deadline (its own timeout is {LONG_GATEWAY_TIMEOUT_S} s), got {seconds} s: {text}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_path_is_refused_without_reaching_the_gateway() {
    let (gateway, client) = start_hostile().await;
    let output = attack(&client, "denied-path").await.into_ok();
    let text = output["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{output}"));
    assert!(text.starts_with("Not permitted"), "{text}");
    assert!(
        text.contains("/api/combos"),
        "the refusal names the request: {text}"
    );
    assert!(
        gateway.requests_to("GET", "/api/combos").is_empty(),
        "a denied request reached the gateway"
    );
    assert!(gateway.requests().is_empty(), "{:?}", gateway.requests());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sees_no_environment_arguments_or_files() {
    let (gateway, client) = start_hostile().await;

    let env = attack(&client, "env").await;
    let seen = env.expect_ok().clone();
    assert_eq!(
        seen["vars"],
        json!({}),
        "a component must see no environment variables"
    );
    assert_eq!(seen["args"], json!([]), "a component must see no arguments");

    let files = attack(&client, "files").await;
    let probes = files.expect_ok().clone();
    for probe in ["readDirRoot", "readEtcPasswd", "readDirCwd"] {
        assert_eq!(probes[probe]["ok"], false, "{probe} must fail: {probes}");
    }

    for (what, text) in [
        ("env output", &env.text),
        ("files output", &files.text),
        ("server log", &client.stderr()),
    ] {
        assert!(!text.contains(TEST_API_KEY), "{what} leaks the API key");
        assert!(
            !text.contains(CANARY_VALUE),
            "{what} leaks an environment variable"
        );
    }
    assert!(
        !files.text.contains("root:x:"),
        "files output contains /etc/passwd"
    );
    assert!(gateway.requests().is_empty(), "{:?}", gateway.requests());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_path_reaches_the_gateway_without_credentials() {
    let (gateway, client) = start_hostile().await;
    let output = attack(&client, "allowed-path").await.into_ok();
    assert_eq!(output["status"].as_f64(), Some(200.0), "{output}");

    let requests = gateway.requests_to("GET", "/api/monitoring/health");
    assert_eq!(requests.len(), 1, "{:?}", gateway.requests());
    let request = &requests[0];
    assert_eq!(
        request.header("authorization"),
        None,
        "the public health GET carries no credentials"
    );
    assert_eq!(
        request.header("cookie"),
        None,
        "the public health GET carries no credentials"
    );
    for (name, value) in &request.headers {
        assert!(
            !value.contains(TEST_API_KEY),
            "header {name} carries the API key"
        );
    }
    assert_eq!(gateway.requests().len(), 1, "{:?}", gateway.requests());
    client.shutdown().await;
}

/// Invariant 5: the number of gateway requests per call is capped, and requests past the cap
/// are refused by the host without being sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_requests_per_call_are_capped() {
    let (gateway, client) = start_hostile().await;
    let result = attack(&client, "many-requests").await;
    assert_eq!(stop_cause(&result), Some("requests"), "{}", result.raw);
    let output = result.into_ok();
    let succeeded = output["succeeded"]
        .as_u64()
        .unwrap_or_else(|| panic!("{output}"));
    assert_eq!(output["attempted"].as_u64(), Some(1000), "{output}");
    assert!(
        succeeded > 0 && succeeded < 1000,
        "1,000 requests must hit the cap: {output}"
    );
    assert!(
        output["firstError"].as_str().is_some_and(|e| e.contains("(limit: requests)")),
        "{output}"
    );
    let sent = gateway.requests_to("GET", "/api/monitoring/health").len() as u64;
    assert_eq!(sent, succeeded, "requests past the cap must not be sent");
    client.shutdown().await;
}

/// Invariant 1: a component's stdout never reaches the MCP stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_stdout_stays_off_the_mcp_stream() {
    let gateway = FakeGateway::start();
    let mut server = RawServer::start(hostile_server(&gateway)).await;
    server.initialize().await;
    let answer = server
        .call_tool(TEST_HOSTILE, json!({"attack": "stdout"}))
        .await;
    if !answer.is_error {
        assert_eq!(answer.expect_ok(), &json!({"ok": true}));
    }
    let next = server
        .call_tool(TEST_HOSTILE, json!({"attack": "ok"}))
        .await;
    assert_eq!(next.expect_ok(), &json!({"ok": true}));

    let transcript = server.finish().await;
    transcript.assert_json_rpc_only();
    let leaked: Vec<&String> = transcript
        .stdout_lines
        .iter()
        .filter(|l| l.contains("test_hostile std"))
        .collect();
    assert!(
        leaked.is_empty(),
        "component output on the MCP stream: {:?}",
        &leaked[..leaked.len().min(3)]
    );
    let responses = transcript
        .stdout_lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m.get("id").is_some())
        .count();
    assert_eq!(responses, 3, "initialize + two tools/call answers");
}

/// A completion that never answers ends at the completion timeout (3 s here), reported by the
/// tool, not at some later sandbox deadline: the completion tool's deadline (the completion
/// timeout plus a margin) leaves the request its own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_that_never_answers_ends_at_the_completion_timeout() {
    let gateway = FakeGateway::start();
    gateway.set_override("POST", "/v1/chat/completions", Override::delay(Duration::from_secs(120)));
    let client = McpClient::start(ServerCommand::new(&gateway.url()).api_key(TEST_API_KEY).arg("--completion-timeout").arg("3")).await;
    let result = client
        .try_call_within(
            "omniroute_route_request",
            json!({"model": "coding-fast", "messages": [{"role": "user", "content": "hi"}]}),
            HUNG,
        )
        .await
        .unwrap_or_else(|e| panic!("route_request must end with a result, got {e}\n{}", client.stderr()));
    let text = result.expect_error();
    assert!(text.contains("timeout after 3 s") && text.contains("POST /v1/chat/completions"), "{text}");
    assert_eq!(stop_cause(&result), None, "the tool reported the timeout itself: {}", result.raw);
    client.shutdown().await;
}

/// A call's progress is coalesced and capped: 50,000 reports with 2,000-character messages
/// reach the client as at most 256 notifications of at most 256 characters, all before the
/// call's answer, and none after it (the forwarder ends with the call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_coalesced_capped_and_ends_with_the_call() {
    for (attack, token) in [("progress-flood", "flood"), ("labelled-flood", "labels")] {
        let gateway = FakeGateway::start();
        let mut server = RawServer::start(hostile_server(&gateway)).await;
        server.initialize().await;
        let response = server
            .request_within(
                "tools/call",
                json!({"name": TEST_HOSTILE, "arguments": {"attack": attack}, "_meta": {"progressToken": token}}),
                HUNG,
            )
            .await;
        let result = ToolResult::from_json(response["result"].clone());
        assert_eq!(stop_cause(&result), None, "{attack}: {}", result.raw);
        result.expect_ok();
        // Another call, so anything the first call's forwarder still sent would show up before its answer.
        server.call_tool(TEST_HOSTILE, json!({"attack": "ok"})).await.expect_ok();
        let transcript = server.finish().await;
        transcript.assert_json_rpc_only();
        let messages: Vec<Value> = transcript.stdout_lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let answer_at = messages.iter().position(|m| m.get("id").is_some() && m["result"]["structuredContent"].is_object()).unwrap();
        let progress: Vec<(usize, &Value)> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m["method"] == "notifications/progress" && m["params"]["progressToken"] == token)
            .collect();
        assert!(!progress.is_empty(), "{attack}: some progress must reach the client");
        assert!(progress.len() <= MAX_PROGRESS, "{attack}: {} notifications", progress.len());
        for (at, note) in &progress {
            assert!(*at < answer_at, "{attack}: a progress notification came after the call's answer");
            let message = note["params"]["message"].as_str().unwrap_or("");
            assert!(message.chars().count() <= MAX_PROGRESS_MESSAGE, "{attack}: a {}-character message", message.chars().count());
        }
    }
}

/// The routing index and the ledger belong to the host: a component that stores a forged
/// entry under the key `request:forged` (host-owned in the 0.1.0 key-value form) only stores
/// a value private to itself; the typed `state` import still finds no such request and no
/// ledger entry. (The 0.1.0 `session` import refuses the key outright:
/// `runtime::factors::session` `host_owned_keys_are_guarded_and_private_keys_are_per_tool`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_forge_the_routing_index_or_the_ledger() {
    let (_gateway, client) = start_hostile().await;
    let output = attack(&client, "set-request-key").await.into_ok();
    assert_eq!(output["result"], "stored", "{output}");
    assert_eq!(output["readBack"], r#"{"requestId":"forged"}"#, "a private value reads back: {output}");
    assert_eq!(output["routingIndex"], Value::Null, "{output}");
    assert_eq!(output["ledgerEntries"], 0, "{output}");
    client.shutdown().await;
}

/// `x-omniroute-mcp-*` headers come only from the host: the gateway's are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_host_headers_from_the_gateway_never_reach_a_component() {
    let (gateway, client) = start_hostile().await;
    gateway.set_override(
        "GET",
        "/api/monitoring/health",
        Override::json(200, json!({"status": "healthy"}))
            .with_header("x-omniroute-mcp-warning", "forged")
            .with_header("X-OmniRoute-MCP-Degraded-From", "forged")
            .with_header("x-omniroute-model", "kept"),
    );
    let output = attack(&client, "headers").await.into_ok();
    let names: Vec<&str> = output["headers"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(names.contains(&"x-omniroute-model"), "the gateway's own headers pass: {names:?}");
    assert!(!names.iter().any(|n| n.starts_with("x-omniroute-mcp-")), "forged host headers passed: {names:?}");
    client.shutdown().await;
}
