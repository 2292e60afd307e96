//! Session state that survives the stateless protocol, restarts and other tenants (issue 13),
//! through the official Python SDK (`tests/python/state_client.py`) against the REAL plain
//! OmniRoute gateway: the 2026-07-28 `Client` keeps its budget guard and ledger through the
//! handle set_budget_guard returns, a legacy `ClientSession` and a stdio process keep theirs
//! without one, another tenant cannot use the handle, and a restart of the SQLite-backed server
//! keeps the guard, the ledger and the spend.
//!
//! The HTTP server is the real binary (`serve --http 127.0.0.1:0 --tenants FILE`), its bound
//! address read from the `listening on http://ADDR/mcp` line on stderr. The tests hold
//! [`traffic_lock`] for writing: they count the mock upstream's chat requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omniroute_mcp_tests::real::traffic_lock;
use omniroute_mcp_tests::{RealGateway, ServerCommand, TempDir, paths, python};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

const STARTUP: Duration = Duration::from_secs(60);
/// The script bounds itself at 120 s; this is the backstop if Python hangs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
const TOKEN_A: &str = "state-test-token-a";
const TOKEN_B: &str = "state-test-token-b";

/// Tenants A and B with the scopes the session tools need.
fn tenants_file() -> String {
    let scopes = r#"["execute:completions", "read:usage", "write:budget", "read:health", "read:combos"]"#;
    [("state-a", TOKEN_A), ("state-b", TOKEN_B)]
        .iter()
        .map(|(id, token)| {
            format!(
                "[[tenant]]\nid = \"{id}\"\ntoken_sha256 = \"{}\"\nscopes = {scopes}\nrate_per_minute = 600\n\n",
                hex::encode(Sha256::digest(token.as_bytes()))
            )
        })
        .collect()
}

/// One `serve --http` process; killed on drop.
struct HttpServer {
    child: tokio::process::Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl HttpServer {
    async fn start(command: &ServerCommand) -> HttpServer {
        let mut child = command.to_command().spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", command.describe()));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().trim_end_matches("/mcp").to_owned());
                    }
                }
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let text = |log: &Arc<Mutex<String>>| log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let addr = tokio::time::timeout(STARTUP, rx)
            .await
            .unwrap_or_else(|_| panic!("no listening line within {STARTUP:?}: {}", text(&log)))
            .unwrap_or_else(|_| panic!("the server exited before listening: {}", text(&log)));
        HttpServer { child, url: format!("http://{addr}"), log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGKILL: nothing is flushed on the way out, so what survives was committed.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill the server");
    }
}

/// The server command against the plain gateway, serving HTTP for tenants A and B.
fn http_command(gateway: &RealGateway, tenants: &TempDir) -> ServerCommand {
    let file = tenants.path().join("tenants.toml");
    std::fs::write(&file, tenants_file()).expect("write the tenants file");
    gateway.server().arg("serve").arg("--http").arg("127.0.0.1:0").arg("--tenants").arg(file.as_os_str())
}

fn script_env(gateway: &RealGateway, mode: &str) -> Vec<(String, String)> {
    vec![
        ("MODE".to_owned(), mode.to_owned()),
        ("OMNIROUTE_TEST_GATEWAY_URL".to_owned(), gateway.url.clone()),
        ("OMNIROUTE_TEST_GATEWAY_API_KEY".to_owned(), gateway.api_key.clone()),
        ("OMNIROUTE_TEST_GATEWAY_MOCK_URL".to_owned(), gateway.mock_url.clone()),
        ("OMNIROUTE_MCP_TOKEN".to_owned(), TOKEN_A.to_owned()),
        ("OMNIROUTE_MCP_TOKEN_B".to_owned(), TOKEN_B.to_owned()),
    ]
}

async fn run(env: Vec<(String, String)>, server: &HttpServer) -> String {
    let run = python::run_script("state_client.py", &env, SCRIPT_TIMEOUT, || server.log()).await;
    assert!(run.stdout.contains("all checks passed"), "{}\n{}", run.stdout, run.stderr);
    run.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_keeps_its_guard_and_ledger_through_the_handle_across_a_restart() {
    let _quiet = traffic_lock().write().await;
    let gateway = RealGateway::plain();
    let tenants = TempDir::new("state-tenants");
    let command = http_command(&gateway, &tenants);

    let server = HttpServer::start(&command).await;
    let mut env = script_env(&gateway, "http-modern");
    env.push(("OMNIROUTE_MCP_URL".to_owned(), format!("{}/mcp", server.url)));
    let stdout = run(env, &server).await;
    for marker in ["ok: stateless client: 2 completions", "ok: tenant B passing A's handle: not found"] {
        assert!(stdout.contains(marker), "{marker:?} missing:\n{stdout}");
    }
    let handle = stdout
        .lines()
        .find_map(|l| l.strip_prefix("handle: "))
        .unwrap_or_else(|| panic!("the script printed no handle:\n{stdout}"))
        .trim()
        .to_owned();
    server.kill().await;

    // The same data folder (state.sqlite): the handle, its guard and its spend are still there.
    let restarted = HttpServer::start(&command).await;
    let mut env = script_env(&gateway, "http-after-restart");
    env.push(("OMNIROUTE_MCP_URL".to_owned(), format!("{}/mcp", restarted.url)));
    env.push(("HANDLE".to_owned(), handle));
    let stdout = run(env, &restarted).await;
    assert!(stdout.contains("ok: after a restart the handle keeps its guard"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_http_session_keeps_its_state_without_a_handle() {
    let _quiet = traffic_lock().write().await;
    let gateway = RealGateway::plain();
    let tenants = TempDir::new("state-tenants");
    let server = HttpServer::start(&http_command(&gateway, &tenants)).await;
    let mut env = script_env(&gateway, "http-legacy");
    env.push(("OMNIROUTE_MCP_URL".to_owned(), format!("{}/mcp", server.url)));
    let stdout = run(env, &server).await;
    for marker in ["ok: legacy ClientSession: 2 completions", "ok: the legacy session's handle names the same state"] {
        assert!(stdout.contains(marker), "{marker:?} missing:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_process_is_one_session_for_the_default_client() {
    let _quiet = traffic_lock().write().await;
    let gateway = RealGateway::plain();
    let data = TempDir::new("state-stdio");
    let mut env = script_env(&gateway, "stdio");
    env.push(("OMNIROUTE_MCP_BIN".to_owned(), paths::server_binary().display().to_string()));
    env.push(("OMNIROUTE_MCP_TOOLS_DIR".to_owned(), paths::builtin_tools_dir().display().to_string()));
    env.push(("OMNIROUTE_MCP_DATA_DIR".to_owned(), data.path().display().to_string()));
    env.push(("OMNIROUTE_MCP_CACHE_DIR".to_owned(), paths::target_dir().join("test-cache").display().to_string()));
    let stdout = python::run_script("state_client.py", &env, SCRIPT_TIMEOUT, String::new).await.stdout;
    assert!(stdout.contains("all checks passed") && stdout.contains("2 completions, then blocked"), "{stdout}");
}
