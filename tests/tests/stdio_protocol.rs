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
