//! MCP tasks (issue 16; the `io.modelcontextprotocol/tasks` extension of 2026-07-28, SEP-2663)
//! driven with raw JSON-RPC over Streamable HTTP against a fake gateway that holds every
//! completion until the test releases it:
//! * `omniroute_test_combo` called by a client that declares the extension answers a task
//!   handle at once; `tasks/get` shows it working with its progress, then completed with the
//!   tool's result inline; a second task cancelled mid-run (`tasks/cancel`) stops its
//!   completions and ends `cancelled`, audited so; a client without the extension gets the
//!   plain result; another tenant cannot see the task.
//! * MCP 2025-11-25's experimental tasks (`params.task`, `tasks/get|result|list|cancel`), over
//!   stdio and over HTTP, driven by `tests/python/tasks_2025_client.py` with raw JSON-RPC whose
//!   every answer is validated against the Python SDK's 2025-11-25 wire types: a task cancelled
//!   while its first four completions are held sends no fifth; a second one completes.
//! * Two nodes sharing one PostgreSQL (`OMNIROUTE_MCP_TEST_POSTGRES_URL`, a fresh schema): a task
//!   started through node A is polled, cancelled and read through node B, and a task still
//!   running when A gets SIGTERM is drained: recorded `cancelled` within the grace period.

use std::path::Path;
use std::time::Duration;

use omniroute_mcp_tests::http_server::{HttpServer, LegacySession, ModernClient, tenant_entry};
use omniroute_mcp_tests::tools::TEST_COMBO;
use omniroute_mcp_tests::gateway::{SIX_STEPS, held_six_step_gateway};
use omniroute_mcp_tests::{FakeGateway, ServerCommand, TEST_API_KEY, TempDir};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN_A: &str = "tasks-test-token-a";
const TOKEN_B: &str = "tasks-test-token-b";
/// The server's task ttl (host/src/tasks/mod.rs, documented in the README).
const TASK_TTL_MS: u64 = 3_600_000;

fn tenants(dir: &TempDir) -> std::path::PathBuf {
    let scopes = ["execute:completions", "read:combos", "read:health"];
    let file = dir.path().join("tenants.toml");
    std::fs::write(&file, tenant_entry("tasks-a", TOKEN_A, &scopes) + &tenant_entry("tasks-b", TOKEN_B, &scopes))
        .expect("write the tenants file");
    file
}

fn http_command(gateway: &FakeGateway, tenants: &Path) -> ServerCommand {
    ServerCommand::new(&gateway.url())
        .api_key(TEST_API_KEY)
        .arg("serve")
        .arg("--http")
        .arg("127.0.0.1:0")
        .arg("--tenants")
        .arg(tenants.as_os_str())
}

fn call_params() -> Value {
    json!({"name": TEST_COMBO, "arguments": {"comboId": SIX_STEPS, "testPrompt": "Say hello"}})
}

/// Starts test_combo as a task; returns its id after checking the handle.
async fn start_task(client: &ModernClient, id: &str) -> String {
    let answer = client.request(id, "tools/call", call_params()).await;
    let result = &answer["result"];
    assert_eq!(result["resultType"], "task", "{answer}");
    assert_eq!(result["status"], "working", "{answer}");
    assert_eq!(result["ttlMs"], json!(TASK_TTL_MS), "{answer}");
    assert!(result["pollIntervalMs"].as_u64().is_some_and(|ms| ms > 0), "{answer}");
    result["taskId"].as_str().unwrap_or_else(|| panic!("no taskId: {answer}")).to_owned()
}

/// `tasks/get` until `done(result)`; returns that result.
async fn poll_until(client: &ModernClient, task: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let answer = client.request(&format!("get-{n}"), "tasks/get", json!({"taskId": task})).await;
        let result = answer.get("result").cloned().unwrap_or_else(|| panic!("tasks/get failed: {answer}"));
        if done(&result) {
            return result;
        }
        assert!(std::time::Instant::now() < deadline, "task {task} never got {what}: {result}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn progress(result: &Value) -> Option<f64> {
    result["_meta"]["io.github.omniroute/progress"]["progress"].as_f64()
}

async fn audited_stop_causes(db: &Path, n: usize) -> Vec<Option<String>> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<Option<String>> = rusqlite::Connection::open(db)
            .and_then(|c| {
                let mut stmt = c.prepare("SELECT stop_cause FROM mcp_tool_audit WHERE tool_name = ?1 ORDER BY id")?;
                let rows = stmt.query_map([TEST_COMBO], |r| r.get(0))?.collect::<Result<Vec<_>, _>>();
                rows
            })
            .unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "{n} audit rows did not appear in {WAIT:?}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_drives_test_combo_as_a_task_and_cancels_another() {
    let (gateway, hold) = held_six_step_gateway();
    let dir = TempDir::new("tasks-http");
    let command = http_command(&gateway, &tenants(&dir));
    let audit = command.data_dir().join("audit.sqlite");
    let server = HttpServer::start(&command).await;
    let client = ModernClient::new(&server, TOKEN_A, true);

    // The server advertises the extension.
    let discover = client.request("discover", "server/discover", json!({})).await;
    assert!(
        discover.to_string().contains("io.modelcontextprotocol/tasks"),
        "server/discover does not advertise the tasks extension: {discover}"
    );

    // Create: the handle comes back while every completion is still held.
    let task = start_task(&client, "combo-task").await;
    hold.wait_for_arrived(4, WAIT).await;
    let working = poll_until(&client, &task, "working", |r| r["status"] == "working").await;
    assert!(working.get("result").is_none(), "{working}");

    // Progress: two steps answered.
    hold.release(2);
    let two = poll_until(&client, &task, "progress 2", |r| progress(r) == Some(2.0)).await;
    assert_eq!(two["_meta"]["io.github.omniroute/progress"]["total"], json!(6.0), "{two}");
    assert!(two["statusMessage"].as_str().is_some_and(|m| m.starts_with("2/6")), "{two}");

    // Another tenant cannot see it; an unknown id is an invalid-params error.
    let other = ModernClient::new(&server, TOKEN_B, true);
    let foreign = other.request("foreign", "tasks/get", json!({"taskId": task})).await;
    assert_eq!(foreign["error"]["code"], -32602, "{foreign}");
    let unknown = client.request("unknown", "tasks/get", json!({"taskId": "task_nope"})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");

    // Result: completed, with the tool's result inline.
    hold.release_all();
    let done = poll_until(&client, &task, "completed", |r| r["status"] == "completed").await;
    let summary = &done["result"]["structuredContent"]["summary"];
    assert_eq!(done["result"]["isError"], json!(false), "{done}");
    assert_eq!(summary["totalProviders"], json!(6), "{done}");
    assert_eq!(summary["successful"], json!(6), "{done}");
    assert_eq!(hold.answered(), 6);
    // Cancelling a task that has ended is an error.
    let late = client.request("late-cancel", "tasks/cancel", json!({"taskId": task})).await;
    assert_eq!(late["error"]["code"], -32602, "{late}");

    // A second task, cancelled while four completions are held.
    let hold = gateway.hold_completions();
    let second = start_task(&client, "combo-task-2").await;
    hold.wait_for_arrived(4, WAIT).await;
    let ack = client.request("cancel", "tasks/cancel", json!({"taskId": second})).await;
    assert!(ack.get("result").is_some(), "{ack}");
    let cancelled = poll_until(&client, &second, "cancelled", |r| r["status"] == "cancelled").await;
    assert!(cancelled.get("result").is_none(), "{cancelled}");
    hold.wait_for_abandoned(4, WAIT).await;
    hold.release_all();
    assert_eq!(audited_stop_causes(&audit, 2).await, [None, Some("cancelled".to_owned())]);

    // A client without the extension (legacy session) gets the plain result.
    let legacy = LegacySession::start(&server, TOKEN_A, false).await;
    let plain = legacy.request("plain", "tools/call", call_params()).await;
    assert!(plain["result"].get("resultType").is_none_or(|t| t == "complete"), "{plain}");
    assert_eq!(plain["result"]["structuredContent"]["summary"]["successful"], json!(6), "{plain}");
    assert_eq!(hold.arrived(), 10, "the cancelled task sent a completion after its cancel");
}

/// Runs `tasks_2025_client.py` over one transport against a fresh hold: releases the
/// completions when the script says so, then checks what the gateway saw.
async fn drive_2025_tasks(gateway: &FakeGateway, transport: &str, env: Vec<(String, String)>, log: impl Fn() -> String) {
    let hold = gateway.hold_completions();
    let dir = TempDir::new("tasks-2025-release");
    let release = dir.path().join("release");
    let arrived = dir.path().join("arrived");
    let watcher = {
        let (hold, release, arrived) = (hold.clone(), release.clone(), arrived.clone());
        tokio::spawn(async move {
            // Tells the script once the first task's four completions are held.
            hold.wait_for_arrived(4, WAIT).await;
            std::fs::write(&arrived, b"4").expect("write the arrived file");
            while !release.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            hold.release_all();
        })
    };
    let mut env = env;
    env.extend([
        ("TRANSPORT".to_owned(), transport.to_owned()),
        ("RELEASE_FILE".to_owned(), release.display().to_string()),
        ("ARRIVED_FILE".to_owned(), arrived.display().to_string()),
        ("COMBO".to_owned(), SIX_STEPS.to_owned()),
    ]);
    let run = omniroute_mcp_tests::python::run_script("tasks_2025_client.py", &env, Duration::from_secs(150), log).await;
    watcher.abort();
    hold.release_all();
    assert!(run.stdout.contains("all checks passed"), "{transport}: {}\n{}", run.stdout, run.stderr);
    // The cancelled task's four held completions were given up; none came after them; the
    // second task sent its six.
    assert_eq!(hold.abandoned(), 4, "{transport}: abandoned completions");
    assert_eq!(hold.arrived(), 10, "{transport}: completions that reached the gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_11_25_client_runs_test_combo_as_a_task_over_stdio_and_http() {
    let (gateway, hold) = held_six_step_gateway();
    hold.release_all();
    let stdio = ServerCommand::new(&gateway.url());
    let env = vec![
        ("OMNIROUTE_MCP_BIN".to_owned(), stdio.program().display().to_string()),
        ("OMNIROUTE_MCP_DATA_DIR".to_owned(), stdio.data_dir().display().to_string()),
        ("OMNIROUTE_BASE_URL".to_owned(), gateway.url()),
        ("OMNIROUTE_API_KEY".to_owned(), TEST_API_KEY.to_owned()),
    ];
    drive_2025_tasks(&gateway, "stdio", env, String::new).await;

    let dir = TempDir::new("tasks-2025-http");
    let server = HttpServer::start(&http_command(&gateway, &tenants(&dir))).await;
    let env = vec![("MCP_URL".to_owned(), format!("{}/mcp", server.url)), ("OMNIROUTE_MCP_TOKEN".to_owned(), TOKEN_A.to_owned())];
    drive_2025_tasks(&gateway, "http", env, || server.log()).await;
}

/// A fresh schema on the test PostgreSQL; the `--state-url` that uses it.
async fn fresh_schema() -> String {
    let base = std::env::var("OMNIROUTE_MCP_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()).expect(
        "OMNIROUTE_MCP_TEST_POSTGRES_URL is not set: run `cargo xtask test` (it starts PostgreSQL), or \
         `cargo xtask postgres start` and export the URL it prints",
    );
    let schema = format!(
        "tasks_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create a schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_started_on_one_node_is_polled_and_cancelled_through_another() {
    let state_url = fresh_schema().await;
    let (gateway, hold) = held_six_step_gateway();
    let dir = TempDir::new("tasks-nodes");
    let file = tenants(&dir);
    let node = |gateway: &FakeGateway| http_command(gateway, &file).arg("--state-url").arg(&state_url);
    let a = HttpServer::start(&node(&gateway)).await;
    let b = HttpServer::start(&node(&gateway)).await;
    let on_a = ModernClient::new(&a, TOKEN_A, true);
    let on_b = ModernClient::new(&b, TOKEN_A, true);

    // Started on A, polled on B: progress, then cancelled through B.
    let task = start_task(&on_a, "nodes-1").await;
    hold.wait_for_arrived(4, WAIT).await;
    poll_until(&on_b, &task, "working on B", |r| r["status"] == "working").await;
    hold.release(2);
    poll_until(&on_b, &task, "progress 2 on B", |r| progress(r) == Some(2.0)).await;
    let ack = on_b.request("cancel", "tasks/cancel", json!({"taskId": task})).await;
    assert!(ack.get("result").is_some(), "{ack}");
    poll_until(&on_b, &task, "cancelled on B", |r| r["status"] == "cancelled").await;
    // The call has ended: whatever it had sent and not got answered was dropped, and nothing
    // more is sent (which steps follow the two answered ones depends on their order).
    let sent = hold.arrived();
    assert!((4..=6).contains(&sent), "{sent} completions sent");
    hold.wait_for_abandoned(sent - 2, WAIT).await;
    hold.release_all();
    let again = on_b.request("after-cancel", "tasks/get", json!({"taskId": task})).await;
    assert_eq!(again["result"]["status"], "cancelled", "{again}");
    assert_eq!(hold.arrived(), sent, "node A sent a completion after the task was cancelled");

    // Started on A, its result read on B.
    let done = start_task(&on_a, "nodes-2").await;
    let result = poll_until(&on_b, &done, "completed on B", |r| r["status"] == "completed").await;
    assert_eq!(result["result"]["structuredContent"]["summary"]["successful"], json!(6), "{result}");

    // Running on A at SIGTERM: drained within the grace period, recorded cancelled, readable on B.
    let hold = gateway.hold_completions();
    let drained = start_task(&on_a, "nodes-3").await;
    hold.wait_for_arrived(4, WAIT).await;
    let (clean, log) = a.terminate(WAIT).await;
    assert!(clean, "node A did not stop cleanly:\n{log}");
    assert!(log.contains("cancelling them"), "{log}");
    let cancelled = poll_until(&on_b, &drained, "cancelled after SIGTERM", |r| r["status"] == "cancelled").await;
    assert!(cancelled.get("result").is_none(), "{cancelled}");
    hold.release_all();
    assert_eq!(hold.arrived(), 4, "node A sent a completion after it cancelled the task");
    drop(b);
}
