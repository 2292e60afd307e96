//! A stock client: the official Python MCP SDK drives the server over stdio
//! (`tests/python/stdio_client.py`). The SDK validates every structuredContent against the
//! tool's outputSchema, so this also proves the schemas and the outputs agree.

use std::process::Stdio;
use std::time::Duration;

use omniroute_mcp_tests::{FakeGateway, ServerCommand, paths};

/// The script bounds itself at 60 s; this is the backstop if Python itself hangs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_initializes_lists_and_calls_tools() {
    let gateway = FakeGateway::start();
    let python = paths::python_interpreter();
    let script = paths::python_scripts_dir().join("stdio_client.py");
    let server = ServerCommand::new(&gateway.url());

    let mut command = tokio::process::Command::new(&python);
    command
        .arg(&script)
        .env("OMNIROUTE_MCP_BIN", server.program())
        .env("OMNIROUTE_MCP_TOOLS_DIR", paths::builtin_tools_dir())
        .env("OMNIROUTE_BASE_URL", gateway.url())
        .env("OMNIROUTE_MCP_DATA_DIR", server.data_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = command.output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
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
        "the Python MCP client failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");

    // The calls really went through the fake gateway.
    for path in [
        "/api/monitoring/health",
        "/api/rate-limits",
        "/api/cache",
        "/api/combos",
        "/api/combos/metrics",
    ] {
        assert_eq!(
            gateway.requests_to("GET", path).len(),
            1,
            "{path}: {:?}",
            gateway.requests()
        );
    }
}
