//! Cancellation that stops spending (issue 16): `omniroute_test_combo` on a combo of six steps
//! (four in flight at once) against a fake gateway that HOLDS every completion until the test
//! releases it. While the first four are held the client cancels — over stdio with
//! `notifications/cancelled`, over HTTP by dropping the connection (a legacy session and a
//! 2026-07-28 request) — and then:
//! * the audit row of the call says `stop_cause = cancelled`;
//! * the four held requests are abandoned by the server (their connections to the gateway
//!   close: the request futures were dropped), and once everything is released the gateway has
//!   still seen exactly those four and no fifth;
//! * the server answers the next call, and sends nothing further for the cancelled one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use omniroute_mcp_tests::http_server::{HttpServer, LegacySession, ModernClient, tenant_entry};
use omniroute_mcp_tests::tools::{HEALTH, TEST_COMBO};
use omniroute_mcp_tests::gateway::{SIX_STEPS, held_six_step_gateway};
use omniroute_mcp_tests::{CompletionHold, FakeGateway, RawServer, ServerCommand, TEST_API_KEY, TempDir};
use serde_json::{Value, json};

/// Bound on every wait; a hung server fails the test long before.
const WAIT: Duration = Duration::from_secs(60);
/// The combo every test runs: six steps, so `test_combo` (four in flight) holds four and has
/// two more to send.
const TOKEN: &str = "cancel-test-token";

fn combo_args() -> Value {
    json!({"comboId": SIX_STEPS, "testPrompt": "Say hello"})
}

/// The stop causes of the audit rows of `tool`, in order (waits until there are `n`).
async fn audited_stop_causes(db: &Path, tool: &str, n: usize) -> Vec<Option<String>> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<Option<String>> = rusqlite::Connection::open(db)
            .and_then(|c| {
                let mut stmt = c.prepare("SELECT stop_cause FROM mcp_tool_audit WHERE tool_name = ?1 ORDER BY id")?;
                let rows = stmt.query_map([tool], |r| r.get(0))?.collect::<Result<Vec<_>, _>>();
                rows
            })
            .unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "{n} audit rows of {tool} did not appear in {WAIT:?}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a cancel: the held four are abandoned, nothing more is sent once released.
async fn assert_stopped_at(hold: &CompletionHold, sent: usize) {
    hold.wait_for_abandoned(sent, WAIT).await;
    hold.release_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_test_combo_over_stdio_stops_its_completions() {
    let (gateway, hold) = held_six_step_gateway();
    let command = ServerCommand::new(&gateway.url()).api_key(TEST_API_KEY);
    let audit = command.data_dir().join("audit.sqlite");
    let mut server = RawServer::start(command).await;
    server.initialize().await;

    let call = json!({"jsonrpc": "2.0", "id": "combo-1", "method": "tools/call", "params": {
        "name": TEST_COMBO, "arguments": combo_args(), "_meta": {"progressToken": "combo-progress"}}});
    server.send_line(&call.to_string()).await;
    hold.wait_for_arrived(4, WAIT).await;
    let before_cancel = server.stdout_lines().len();
    server.notify("notifications/cancelled", json!({"requestId": "combo-1", "reason": "the user gave up"})).await;

    assert_eq!(audited_stop_causes(&audit, TEST_COMBO, 1).await, [Some("cancelled".to_owned())]);
    assert_stopped_at(&hold, 4).await;
    let health = server.call_tool(HEALTH, json!({})).await;
    assert!(!health.is_error, "{}", health.raw);
    assert_eq!(hold.arrived(), 4, "the gateway saw a completion after the cancel");
    assert_eq!(hold.answered(), 0, "a held completion was answered after its request was dropped");

    let after: Vec<String> = server.stdout_lines().split_off(before_cancel);
    for line in &after {
        assert!(!line.contains("combo-1") && !line.contains("combo-progress"), "sent after the cancel: {line}");
    }
    server.finish().await.assert_json_rpc_only();
}

/// `serve --http` against `gateway` for one tenant allowed to test combos and read health.
fn http_command(gateway: &FakeGateway, dir: &TempDir) -> ServerCommand {
    let file: PathBuf = dir.path().join("tenants.toml");
    std::fs::write(&file, tenant_entry("canceller", TOKEN, &["execute:completions", "read:combos", "read:health"]))
        .expect("write the tenants file");
    ServerCommand::new(&gateway.url())
        .api_key(TEST_API_KEY)
        .arg("serve")
        .arg("--http")
        .arg("127.0.0.1:0")
        .arg("--tenants")
        .arg(file.as_os_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_http_connection_cancels_test_combo() {
    let (gateway, hold) = held_six_step_gateway();
    let dir = TempDir::new("cancel-http");
    let command = http_command(&gateway, &dir);
    let audit = command.data_dir().join("audit.sqlite");
    let server = HttpServer::start(&command).await;

    // A legacy session (initialize, Mcp-Session-Id): rmcp would keep the call running for a
    // resumption; the dropped connection must stop it.
    let session = LegacySession::start(&server, TOKEN, false).await;
    let request = session.post("combo-legacy", "tools/call", json!({"name": TEST_COMBO, "arguments": combo_args()}));
    let pending = tokio::spawn(async move { request.send().await?.text().await });
    hold.wait_for_arrived(4, WAIT).await;
    pending.abort();
    assert_eq!(audited_stop_causes(&audit, TEST_COMBO, 1).await, [Some("cancelled".to_owned())], "{}", server.log());
    hold.wait_for_abandoned(4, WAIT).await;
    let health = session.request("health-1", "tools/call", json!({"name": HEALTH, "arguments": {}})).await;
    assert_eq!(health["result"]["isError"], json!(false), "{health}");
    assert_eq!(hold.arrived(), 4, "the gateway saw a completion after the disconnect");

    // A 2026-07-28 request (no session): the same.
    let client = ModernClient::new(&server, TOKEN, false);
    let request = client.post("combo-modern", "tools/call", json!({"name": TEST_COMBO, "arguments": combo_args()}));
    let pending = tokio::spawn(async move { request.send().await?.text().await });
    hold.wait_for_arrived(8, WAIT).await;
    pending.abort();
    let causes = audited_stop_causes(&audit, TEST_COMBO, 2).await;
    assert_eq!(causes[1].as_deref(), Some("cancelled"), "{causes:?}\n{}", server.log());
    assert_stopped_at(&hold, 8).await;
    let health = client.request("health-2", "tools/call", json!({"name": HEALTH, "arguments": {}})).await;
    assert_eq!(health["result"]["isError"], json!(false), "{health}");
    assert_eq!(hold.arrived(), 8, "the gateway saw a completion after the disconnect");
    assert_eq!(hold.answered(), 0);
}
