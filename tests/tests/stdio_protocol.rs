//! The MCP surface over stdio: handshake, tools/list, and how bad calls are refused.

use omniroute_mcp_tests::{
    FakeGateway, GET_HEALTH, LIST_COMBOS, McpClient, RawServer, ServerCommand, TEST_HOSTILE,
    error_message,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_names_the_server_and_offers_tools() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(ServerCommand::new(&gateway.url())).await;
    let info = client.server_info();
    assert_eq!(info["serverInfo"]["name"], "omniroute-mcp", "{info}");
    assert!(
        info["serverInfo"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{info}"
    );
    assert_eq!(
        info["protocolVersion"], "2025-11-25",
        "the version the client asked for: {info}"
    );
    assert!(info["capabilities"]["tools"].is_object(), "{info}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_describes_both_builtin_tools_fully() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(ServerCommand::new(&gateway.url())).await;
    let tools = client.list_tools().await;
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for expected in [GET_HEALTH, LIST_COMBOS] {
        assert!(
            names.contains(&expected),
            "{expected} missing from tools/list: {names:?}"
        );
    }
    assert!(
        !names.contains(&TEST_HOSTILE),
        "a test-only component leaked into the built-ins: {names:?}"
    );

    for tool in tools
        .iter()
        .filter(|t| [GET_HEALTH, LIST_COMBOS].contains(&t["name"].as_str().unwrap_or("")))
    {
        let name = &tool["name"];
        assert!(
            tool["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: title: {tool}"
        );
        assert!(
            tool["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: description: {tool}"
        );
        assert_eq!(
            tool["inputSchema"]["type"], "object",
            "{name}: inputSchema: {tool}"
        );
        assert_eq!(
            tool["outputSchema"]["type"], "object",
            "{name}: outputSchema: {tool}"
        );
        let annotations = &tool["annotations"];
        assert_eq!(
            annotations["readOnlyHint"], true,
            "{name}: annotations: {tool}"
        );
        assert_ne!(
            annotations["destructiveHint"], true,
            "{name}: a read-only tool is not destructive: {tool}"
        );
    }

    let combos = tools.iter().find(|t| t["name"] == LIST_COMBOS).unwrap();
    assert_eq!(
        combos["inputSchema"]["properties"]["includeMetrics"]["type"], "boolean",
        "{combos}"
    );
    let required = combos["inputSchema"]["required"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !required.contains(&json!("includeMetrics")),
        "includeMetrics is optional: {combos}"
    );
    let health = tools.iter().find(|t| t["name"] == GET_HEALTH).unwrap();
    let health_props = health["inputSchema"]["properties"]
        .as_object()
        .map_or(0, |p| p.len());
    assert_eq!(health_props, 0, "get_health takes no input: {health}");
    assert!(
        gateway.requests().is_empty(),
        "listing tools must not touch the gateway"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tool_is_a_clear_error() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(ServerCommand::new(&gateway.url())).await;
    let outcome = client.try_call("omniroute_no_such_tool", json!({})).await;
    let message = error_message(&outcome);
    assert!(
        message.contains("omniroute_no_such_tool"),
        "the error must name the tool: {message}"
    );
    assert!(gateway.requests().is_empty(), "{:?}", gateway.requests());
    // The session survives the bad call.
    client.call(GET_HEALTH, json!({})).await.expect_ok();
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_name_the_field_and_send_nothing() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(ServerCommand::new(&gateway.url())).await;
    let outcome = client
        .try_call(LIST_COMBOS, json!({"includeMetrics": "yes"}))
        .await;
    let message = error_message(&outcome);
    assert!(
        message.contains("includeMetrics"),
        "the error must name the field: {message}"
    );
    assert!(
        gateway.requests().is_empty(),
        "invalid arguments reached the gateway: {:?}",
        gateway.requests()
    );
    client.shutdown().await;
}

/// The same conversation with hand-written lines: every stdout line is a JSON-RPC 2.0 message,
/// `ping` works, and the server exits cleanly when stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_stdio_stream_is_pure_json_rpc_and_ends_with_stdin() {
    let gateway = FakeGateway::start();
    let mut server = RawServer::start(ServerCommand::new(&gateway.url())).await;
    let init = server.initialize().await;
    assert_eq!(init["serverInfo"]["name"], "omniroute-mcp", "{init}");
    assert_eq!(server.request("ping", json!({})).await["result"], json!({}));
    let listed = server.request("tools/list", json!({})).await;
    assert!(
        listed["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.len() >= 2),
        "{listed}"
    );
    let health = server.call_tool(GET_HEALTH, json!({})).await;
    health.expect_ok();
    let unknown_method = server.request("no/such/method", json!({})).await;
    assert_eq!(unknown_method["error"]["code"], -32601, "{unknown_method}");

    let transcript = server.finish().await;
    transcript.assert_json_rpc_only();
    let exit = transcript.exit.unwrap_or_else(|| {
        panic!(
            "the server did not exit after stdin closed\n{}",
            transcript.stderr
        )
    });
    assert!(exit.success(), "exit status {exit}\n{}", transcript.stderr);
}

/// `tools/call` whose `arguments` is not an object is invalid params naming
/// the field and the rule, not "method not found", and the value is not
/// repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_that_are_not_an_object_are_invalid_params_naming_the_field() {
    let gateway = FakeGateway::start();
    let mut server = RawServer::start(ServerCommand::new(&gateway.url())).await;
    server.initialize().await;
    let answer = server
        .request("tools/call", json!({"name": GET_HEALTH, "arguments": "nope-value"}))
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`arguments` must be an object") && message.contains("not a string"),
        "{answer}"
    );
    assert!(!message.contains("nope-value"), "the value came back: {answer}");
    let nameless = server.request("tools/call", json!({"arguments": {}})).await;
    assert_eq!(nameless["error"]["code"], -32602, "{nameless}");
    assert!(nameless["error"]["message"].as_str().unwrap_or_default().contains("`name`"), "{nameless}");
    assert!(gateway.requests().is_empty(), "{:?}", gateway.requests());
    server.call_tool(GET_HEALTH, json!({})).await.expect_ok();
    server.finish().await.assert_json_rpc_only();
}

/// A 5 MB unknown method name is answered "method not found" with a short
/// prefix of the name, and the log repeats no more than that either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_unknown_method_is_neither_echoed_nor_logged_whole() {
    let gateway = FakeGateway::start();
    let mut server = RawServer::start(ServerCommand::new(&gateway.url())).await;
    server.initialize().await;
    let method = format!("no/such/{}", "m".repeat(5 * 1024 * 1024));
    let answer = server.request(&method, json!({})).await;
    assert_eq!(answer["error"]["code"], -32601, "{answer:.300}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.len() < 200, "{} bytes echoed: {message:.300}", message.len());
    assert!(message.starts_with("Method not found: no/such/mmm"), "{message:.300}");
    let line_with_method = answer.to_string().len();
    assert!(line_with_method < 1024, "the answer line is {line_with_method} bytes");
    server.call_tool(GET_HEALTH, json!({})).await.expect_ok();
    let transcript = server.finish().await;
    transcript.assert_json_rpc_only();
    assert!(
        transcript.stderr.len() < 64 * 1024,
        "{} bytes of log for one bad request:\n{:.2000}",
        transcript.stderr.len(),
        transcript.stderr
    );
    assert!(!transcript.stderr.contains(&"m".repeat(10_000)), "the method name was logged whole");
}

/// A client that never reads the server's stderr cannot stall it: with
/// debug logs (far more than a pipe holds) every request is still answered,
/// and the lines that did not fit are counted, not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_stderr_is_never_read_still_answers() {
    let gateway = FakeGateway::start();
    let command = ServerCommand::new(&gateway.url()).env("OMNIROUTE_MCP_LOG", "debug");
    let mut server = RawServer::start_with_stderr_unread(command).await;
    server.initialize().await;
    // Each tools/list is two debug lines, its answer cut to 8 KiB: 600 of
    // them are more than the pipe (64 KiB) and the server's queue (1,024
    // lines) hold, so with a blocking writer the server would stall here.
    for _ in 0..600 {
        let listed = server.request("tools/list", json!({})).await;
        assert!(listed["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()), "{listed:.300}");
    }
    let unknown = server.request(&"x".repeat(1024 * 1024), json!({})).await;
    assert_eq!(unknown["error"]["code"], -32601);
    server.call_tool(GET_HEALTH, json!({})).await.expect_ok();
    // Now read stderr: it moves again and the server says what it dropped.
    server.read_stderr_from_now();
    server.call_tool(GET_HEALTH, json!({})).await.expect_ok();
    let transcript = server.finish().await;
    transcript.assert_json_rpc_only();
    // The total, said last at exit (the tail of stderr the harness keeps).
    assert!(
        transcript.stderr.contains("log line(s) dropped in all because stderr was not being read"),
        "no drop was reported, so stderr never filled up:\n{:.3000}",
        transcript.stderr
    );
    let exit = transcript.exit.expect("the server exits when stdin closes");
    assert!(exit.success(), "exit status {exit}");
}
