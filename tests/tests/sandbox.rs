//! The security invariants (docs/architecture.md#security-invariants), each proved against the real binary with the
//! `test_hostile` component: what a component cannot reach, and that every call is bounded.

use std::time::{Duration, Instant};

use omniroute_mcp_tests::{
    FakeGateway, McpClient, RawServer, ServerCommand, TEST_API_KEY, TEST_HOSTILE, ToolResult,
};
use serde_json::{Value, json};

/// Another secret-looking variable in the server's environment; no component may see it.
const CANARY_VAR: &str = "OMNIROUTE_TEST_CANARY";
const CANARY_VALUE: &str = "canary-7f3a9c-do-not-leak";

/// The hostile component's manifest deadline is 2 s; allow generous slack for a loaded machine.
const STOPPED_WITHIN: Duration = Duration::from_secs(10);

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
    client.call(TEST_HOSTILE, json!({"attack": name})).await
}

/// Runs an attack that must be cut off, then proves the next call in the same server works.
async fn assert_stopped_then_recovers(name: &str) {
    let (_gateway, client) = start_hostile().await;
    let started = Instant::now();
    let result = client
        .try_call_within(
            TEST_HOSTILE,
            json!({"attack": name}),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "attack {name}: the call must end with a result, got {e}\n{}",
                client.stderr()
            )
        });
    let took = started.elapsed();
    assert!(
        took < STOPPED_WITHIN,
        "attack {name} was stopped only after {took:?}"
    );
    let message = result.expect_error();
    assert!(message.starts_with("Error: "), "attack {name}: {message}");
    assert!(!message.contains(TEST_API_KEY), "{message}");

    let next = attack(&client, "ok").await;
    assert_eq!(
        next.expect_ok(),
        &json!({"ok": true}),
        "the call after attack {name} must work"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_loop_is_stopped_at_the_deadline() {
    assert_stopped_then_recovers("loop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_is_stopped_at_the_memory_cap() {
    assert_stopped_then_recovers("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_inside_a_host_call_is_stopped_at_the_deadline() {
    assert_stopped_then_recovers("sleep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_fails_only_that_call() {
    assert_stopped_then_recovers("panic").await;
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
    let output = attack(&client, "many-requests").await.into_ok();
    let succeeded = output["succeeded"]
        .as_u64()
        .unwrap_or_else(|| panic!("{output}"));
    assert_eq!(output["attempted"].as_u64(), Some(1000), "{output}");
    assert!(
        succeeded > 0 && succeeded < 1000,
        "1,000 requests must hit the cap: {output}"
    );
    assert!(
        output["firstError"].as_str().is_some_and(|e| !e.is_empty()),
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
