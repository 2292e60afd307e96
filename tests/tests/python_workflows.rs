//! Agent workflows through the official Python MCP SDK over stdio, against the REAL plain
//! OmniRoute gateway (`tests/python/workflows.py`): auto-healing, a budget-aware coding run,
//! a combo benchmark, a post-mortem and model discovery. The SDK validates every
//! structuredContent against the tool's outputSchema, so the workflows also prove the 16
//! schemas and the real outputs agree.

use std::process::Stdio;
use std::time::{Duration, Instant};

use omniroute_mcp_tests::real::{MISSING_HINT, PLAIN_PREFIX};
use omniroute_mcp_tests::{RealGateway, paths};

/// The script bounds each of its five workflows at 90 s; this is the backstop if Python hangs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(480);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_workflows_run_through_the_official_python_sdk() {
    let gateway = RealGateway::plain();
    let python = paths::python_interpreter();
    let script = paths::python_scripts_dir().join("workflows.py");
    let server = gateway.server();

    let mut command = tokio::process::Command::new(&python);
    command.arg(&script);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OMNIROUTE_") {
            command.env_remove(&name);
        }
    }
    let state = std::env::var(format!("{PLAIN_PREFIX}_STATE"))
        .unwrap_or_else(|_| panic!("{PLAIN_PREFIX}_STATE is not set: {MISSING_HINT}"));
    command
        .env("OMNIROUTE_MCP_BIN", server.program())
        .env("OMNIROUTE_MCP_TOOLS_DIR", paths::builtin_tools_dir())
        .env(
            "OMNIROUTE_MCP_CACHE_DIR",
            paths::target_dir().join("test-cache"),
        )
        .env(format!("{PLAIN_PREFIX}_URL"), &gateway.url)
        .env(format!("{PLAIN_PREFIX}_API_KEY"), &gateway.api_key)
        .env(format!("{PLAIN_PREFIX}_MOCK_URL"), &gateway.mock_url)
        .env(format!("{PLAIN_PREFIX}_NODE_ID"), &gateway.node_id)
        .env(format!("{PLAIN_PREFIX}_STATE"), state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);

    let started = Instant::now();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not finish within {SCRIPT_TIMEOUT:?}",
                script.display()
            )
        })
        .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", python.display(), script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python workflows failed ({}, after {:.1} s)\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status,
        started.elapsed().as_secs_f64()
    );
    for marker in [
        "ok: (a) auto-healing",
        "ok: (b) budget run",
        "ok: (c) benchmark",
        "ok: (d) post-mortem",
        "ok: (e) discovery",
        "all workflows passed",
    ] {
        assert!(stdout.contains(marker), "{marker:?} missing:\n{stdout}");
    }
}
