//! Scope enforcement and the audit log, proved against the real binary
//! (security invariants 4 and 6; issue "Scope enforcement and the audit log").

use std::path::{Path, PathBuf};
use std::time::Duration;

use omniroute_mcp_tests::{FakeGateway, McpClient, RawServer, ServerCommand, TEST_HOSTILE, TempDir};
use rusqlite::Connection;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const EMPTY_HASH: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn enforced(gateway: &FakeGateway, scopes: &str) -> ServerCommand {
    ServerCommand::new(&gateway.url())
        .with_test_tools()
        .env("OMNIROUTE_MCP_ENFORCE_SCOPES", "true")
        .env("OMNIROUTE_MCP_SCOPES", scopes)
        .env("OMNIROUTE_MCP_LOG", "info,omniroute_mcp::runtime=debug")
}

/// Puts the audit database in a folder the test owns, so it outlives the
/// server's data dir (removed when the server command is dropped).
fn with_audit_db(cmd: ServerCommand) -> (ServerCommand, TempDir, PathBuf) {
    let dir = TempDir::new("audit");
    let path = dir.path().join("audit.sqlite");
    (cmd.env("OMNIROUTE_MCP_AUDIT_DB", &path.display().to_string()), dir, path)
}

fn rows(db: &Path) -> Vec<(String, String, String, i64, bool, Option<String>, String)> {
    omniroute_mcp_tests::audit::import_pending(db);
    let conn = Connection::open(db).expect("audit database");
    let mut stmt = conn
        .prepare("SELECT tool_name, input_hash, output_summary, duration_ms, success, error_code, caller FROM mcp_tool_audit ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, i64>(4)? != 0, r.get(5)?, r.get(6)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn missing_scopes_are_denied_in_the_original_wording_and_nothing_runs() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(enforced(&gateway, "read:health")).await;

    let denied = client.call("omniroute_list_combos", json!({})).await;
    assert!(denied.is_error);
    assert_eq!(
        denied.text,
        "Error: Insufficient MCP scopes for omniroute_list_combos. Missing: read:combos. Caller=anonymous, source=env."
    );
    assert!(gateway.requests_to("GET", "/api/combos").is_empty(), "a denied tool reached the gateway");

    let allowed = client.call("omniroute_get_health", json!({})).await;
    assert!(!allowed.is_error, "{}", allowed.text);
    let stderr = client.stderr_until(|s| s.lines().any(|l| l.contains("instance created") && l.contains("omniroute_get_health"))).await;
    assert!(
        !stderr.lines().any(|l| l.contains("instance created") && l.contains("omniroute_list_combos")),
        "the denied tool was instantiated:\n{stderr}"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn wildcards_grant_by_prefix() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(enforced(&gateway, "read:*")).await;
    assert!(!client.call("omniroute_list_combos", json!({})).await.is_error);
    let denied = client.call("omniroute_switch_combo", json!({"comboId": "coding-fast", "active": false})).await;
    assert_eq!(
        denied.text,
        "Error: Insufficient MCP scopes for omniroute_switch_combo. Missing: write:combos. Caller=anonymous, source=env."
    );
    assert!(gateway.requests_to("PUT", "/api/combos/c9df3fce-0dd7-4438-a4e7-8f10fde6b078").is_empty());
    client.shutdown().await;

    let client = McpClient::start(enforced(&gateway, "")).await;
    let none = client.call("omniroute_get_health", json!({})).await;
    assert_eq!(
        none.text,
        "Error: Insufficient MCP scopes for omniroute_get_health. Missing: read:health. Caller=anonymous, source=none."
    );
    client.shutdown().await;
}

/// The original lets `_meta.scopes: ["*"]` replace the operator's grants;
/// here `_meta` can only narrow them.
#[tokio::test]
async fn meta_scopes_narrow_but_never_widen() {
    let gateway = FakeGateway::start();
    let mut raw = RawServer::start(enforced(&gateway, "read:health")).await;
    raw.initialize().await;
    let escalate = raw
        .request(
            "tools/call",
            json!({"name": "omniroute_list_combos", "arguments": {}, "_meta": {"scopes": ["*"]}}),
        )
        .await;
    assert_eq!(escalate["result"]["isError"], true, "{escalate}");
    assert_eq!(
        escalate["result"]["content"][0]["text"],
        "Error: Insufficient MCP scopes for omniroute_list_combos. Missing: read:combos. Caller=anonymous, source=meta."
    );
    let narrowed = raw
        .request(
            "tools/call",
            json!({"name": "omniroute_get_health", "arguments": {}, "_meta": {"omniroute": {"scopes": ["read:combos"]}}}),
        )
        .await;
    assert_eq!(narrowed["result"]["isError"], true, "{narrowed}");
    assert!(gateway.requests_to("GET", "/api/combos").is_empty());
    raw.finish().await;

    // Enforcement off: every tool is allowed, but a narrowed call still gets
    // only what it was narrowed to: the component's capability set is empty.
    let mut raw = RawServer::start(ServerCommand::new(&gateway.url()).with_test_tools()).await;
    raw.initialize().await;
    let narrowed = raw
        .request(
            "tools/call",
            json!({"name": TEST_HOSTILE, "arguments": {"attack": "allowed-path"}, "_meta": {"scopes": ["read:combos"]}}),
        )
        .await;
    let text = narrowed["result"]["content"][0]["text"].as_str().unwrap_or_default().to_owned();
    assert!(
        narrowed["result"]["isError"] == true || text.contains("Not permitted"),
        "a narrowed call reached the gateway: {narrowed}"
    );
    raw.finish().await;
}

#[tokio::test]
async fn every_call_is_audited_with_the_original_columns() {
    let gateway = FakeGateway::start();
    let (cmd, _dir, db) = with_audit_db(enforced(&gateway, "read:health"));
    let client = McpClient::start(cmd).await;
    assert!(!client.call("omniroute_get_health", json!({})).await.is_error);
    assert!(client.call("omniroute_list_combos", json!({})).await.is_error);
    assert!(!client.call("omniroute_get_health", json!({"unexpected": 1})).await.is_error);
    let _ = client.try_call("no_such_tool", json!({})).await;
    let invalid = client.call(TEST_HOSTILE, json!({"attack": "not-an-attack"})).await;
    assert!(invalid.is_error);
    client.shutdown().await;

    let rows = rows(&db);
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let (tool, hash, summary, _ms, success, error, caller) = &rows[0];
    assert_eq!(tool, "omniroute_get_health");
    assert_eq!(hash, EMPTY_HASH, "{{}} must hash to the original's value");
    assert!(summary.starts_with("{\"status\":\"healthy\""), "{summary}");
    assert!(summary.chars().count() <= 201);
    assert!(*success && error.is_none());
    assert_eq!(caller, "anonymous");

    let (tool, _hash, summary, ms, success, error, _) = &rows[1];
    assert_eq!(tool, "omniroute_list_combos");
    assert_eq!((summary.as_str(), *ms, *success), ("(null)", 0, false));
    assert_eq!(error.as_deref(), Some("scope_denied:missing_scopes"));

    // Unknown keys are stripped before hashing, as the original does.
    assert_eq!(rows[2].1, EMPTY_HASH);
    assert_eq!(rows[3].0, "no_such_tool");
    assert_eq!(rows[3].5.as_deref(), Some("unknown_tool"));
    assert_eq!(rows[4].0, TEST_HOSTILE);
    assert!(!rows[4].4);
    assert!(rows[4].5.as_deref().unwrap_or_default().starts_with("Invalid arguments for tool test_hostile"), "{:?}", rows[4]);

    let conn = Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT method, path_template, status FROM mcp_gateway_requests
             WHERE audit_id = (SELECT MIN(id) FROM mcp_tool_audit) ORDER BY path_template",
        )
        .unwrap();
    let shapes: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<(String, String, i64)> = ["/api/cache", "/api/monitoring/health", "/api/rate-limits"]
        .iter()
        .map(|p| ("GET".to_owned(), (*p).to_owned(), 200))
        .collect();
    assert_eq!(shapes, expected, "get_health's three gateway requests, by template");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

/// A prompt is hashed, never stored: not in any audit column, not in the
/// gateway-request shapes, not in the WAL.
#[tokio::test]
async fn prompts_never_reach_the_audit_database() {
    let gateway = FakeGateway::start();
    let (cmd, _dir, db) = with_audit_db(ServerCommand::new(&gateway.url()));
    let client = McpClient::start(cmd).await;
    let prompt = "PROMPT-CANARY-5d1e0b7a-please-never-store-me";
    let routed = client
        .call(
            "omniroute_route_request",
            json!({"model": "coding-fast", "messages": [{"role": "user", "content": prompt}]}),
        )
        .await;
    assert!(!routed.is_error, "{}", routed.text);
    let sent = gateway.requests_to("POST", "/v1/chat/completions");
    assert!(sent[0].body_json().unwrap_or_default().to_string().contains(prompt), "the prompt did reach the gateway");
    client.shutdown().await;

    let mut checked = 0;
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            checked += 1;
            assert!(
                !bytes.windows(prompt.len()).any(|w| w == prompt.as_bytes()),
                "the prompt was found in {}",
                path.display()
            );
        }
    }
    assert!(checked >= 1, "no audit database was written at {}", db.display());
    let rows = rows(&db);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].2.contains("\"requestId\""), "route_request audits its routing only: {}", rows[0].2);
}

/// Invalid arguments are refused naming the field and the rule, never the
/// value: a prompt that is too long, or content of the wrong type, reaches
/// neither the agent's error text nor the audit database.
#[tokio::test]
async fn validation_errors_name_the_field_and_rule_never_the_value() {
    let gateway = FakeGateway::start();
    let (cmd, _dir, db) = with_audit_db(ServerCommand::new(&gateway.url()));
    let client = McpClient::start(cmd).await;
    let long_prompt = "LONG-PROMPT-CANARY-".repeat(40);
    assert!(long_prompt.len() > 500);
    let too_long = client
        .call("omniroute_test_combo", json!({"comboId": "coding-fast", "testPrompt": long_prompt}))
        .await;
    assert!(too_long.is_error, "{}", too_long.text);
    assert!(
        too_long.text.contains("`testPrompt`") && too_long.text.contains("longer than 500 characters"),
        "{}",
        too_long.text
    );
    let array_content = client
        .call(
            "omniroute_route_request",
            json!({"model": "coding-fast", "messages": [{"role": "user", "content": ["ARRAY-CONTENT-CANARY"]}]}),
        )
        .await;
    assert!(array_content.is_error, "{}", array_content.text);
    assert!(
        array_content.text.contains("`messages.0.content`") && array_content.text.contains("is not of type \"string\""),
        "{}",
        array_content.text
    );
    client.shutdown().await;
    assert!(gateway.requests().is_empty(), "invalid calls reached the gateway: {:?}", gateway.requests());
    for text in [&too_long.text, &array_content.text] {
        assert!(!text.contains("CANARY"), "the value came back to the agent: {text}");
    }

    let rows = rows(&db);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for row in &rows {
        let error = row.5.as_deref().unwrap_or_default();
        assert!(error.starts_with("Invalid arguments for tool"), "{row:?}");
        assert!(!error.contains("CANARY"), "the value reached the audit row: {row:?}");
    }
    for suffix in ["", "-wal"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(!bytes.windows(6).any(|w| w == b"CANARY"), "a value was stored in {}", path.display());
        }
    }
}

/// One scope-pattern parser for every operator input: a pattern in
/// `OMNIROUTE_MCP_SCOPES` that matches no scope stops the server at start,
/// naming the known scopes, instead of silently granting nothing.
#[tokio::test]
async fn a_scope_pattern_that_matches_nothing_is_refused_at_start() {
    let gateway = FakeGateway::start();
    for pattern in ["read:health,bogus*", "read:everything"] {
        let output = enforced(&gateway, pattern).arg("tools").run_to_end().await;
        assert!(!output.status.success(), "{pattern} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("OMNIROUTE_MCP_SCOPES") && stderr.contains("matches no scope"), "{stderr}");
        assert!(stderr.contains("read:health, read:combos, write:combos"), "the known scopes are listed: {stderr}");
    }
    let accepted = enforced(&gateway, "read:*, write:combos").arg("tools").run_to_end().await;
    assert!(accepted.status.success(), "{}", String::from_utf8_lossy(&accepted.stderr));
}

/// The stdio principal's id comes from `OMNIROUTE_MCP_PRINCIPAL`; a name
/// that could not namespace stored state is refused at start.
#[tokio::test]
async fn an_unusable_principal_name_is_refused_at_start() {
    let gateway = FakeGateway::start();
    let output = ServerCommand::new(&gateway.url())
        .env("OMNIROUTE_MCP_PRINCIPAL", "two words")
        .arg("tools")
        .run_to_end()
        .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OMNIROUTE_MCP_PRINCIPAL \"two words\" must be 1-64 characters"), "{stderr}");
    let named = ServerCommand::new(&gateway.url()).env("OMNIROUTE_MCP_PRINCIPAL", "ide-team.1").arg("tools").run_to_end().await;
    assert!(named.status.success(), "{}", String::from_utf8_lossy(&named.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_calls_lose_no_row() {
    let gateway = FakeGateway::start();
    let (cmd, _dir, db) = with_audit_db(ServerCommand::new(&gateway.url()));
    let client = McpClient::start(cmd).await;
    let calls = (0..1000).map(|i| {
        let client = &client;
        async move { client.call("omniroute_get_combo_metrics", json!({"comboId": format!("missing-{i}")})).await }
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_error && r.text.contains("Combo not found")));
    client.shutdown().await;
    let rows = rows(&db);
    assert_eq!(rows.len(), 1000);
    let mut hashes: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 1000, "every call has its own row");
    assert_eq!(rows[0].1.len(), 64);
    assert!(rows.iter().any(|r| r.1 == sha256_hex("{\"comboId\":\"missing-0\"}")));
}

/// A row is committed before its response is sent: kill the server with
/// SIGKILL in the middle of a burst, and every response the client did
/// receive has its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_keeps_a_row_for_every_answered_call() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let gateway = FakeGateway::start();
    let (cmd, _dir, db) = with_audit_db(ServerCommand::new(&gateway.url()));
    let mut child = cmd.to_command().spawn().expect("spawn server");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"kill-test","version":"0"}}});
    stdin.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(90), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.contains("\"id\":0"), "{first}");
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();

    let total = 600;
    let writer = tokio::spawn(async move {
        for i in 1..=total {
            let call = json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"omniroute_get_combo_metrics","arguments":{"comboId": format!("kill-{i}")}}});
            if stdin.write_all(format!("{call}\n").as_bytes()).await.is_err() {
                break;
            }
            // A steady stream, so the kill lands while calls are in flight.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stdin
    });
    let mut answered: Vec<i64> = Vec::new();
    while answered.len() < 150 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("answers keep coming")
            .unwrap()
            .expect("server alive");
        let msg: Value = serde_json::from_str(&line).unwrap();
        if let Some(id) = msg["id"].as_i64().filter(|_| msg.get("result").is_some()) {
            answered.push(id);
        }
    }
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let _ = writer.await;

    let rows = rows(&db);
    let stored: std::collections::HashSet<String> = rows.iter().map(|r| r.1.clone()).collect();
    for id in &answered {
        let hash = sha256_hex(&format!("{{\"comboId\":\"kill-{id}\"}}"));
        assert!(stored.contains(&hash), "call {id} was answered but has no audit row ({} rows)", rows.len());
    }
    assert!(rows.len() < total as usize, "the kill landed after everything finished; the test proved nothing");
}
