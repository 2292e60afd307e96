//! A stock client: the official Python MCP SDK drives the server over stdio
//! (`tests/python/stdio_client.py`). The SDK validates every structuredContent against the
//! tool's outputSchema, so this also proves the schemas and the outputs agree.

use std::time::Duration;

use omniroute_mcp_tests::{FakeGateway, ServerCommand, paths, python};

/// The script bounds itself at 60 s; this is the backstop if Python itself hangs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_initializes_lists_and_calls_tools() {
    let gateway = FakeGateway::start();
    let server = ServerCommand::new(&gateway.url());
    let env = vec![
        ("OMNIROUTE_MCP_BIN".to_owned(), server.program().display().to_string()),
        ("OMNIROUTE_MCP_TOOLS_DIR".to_owned(), paths::builtin_tools_dir().display().to_string()),
        ("OMNIROUTE_BASE_URL".to_owned(), gateway.url()),
        ("OMNIROUTE_MCP_DATA_DIR".to_owned(), server.data_dir().display().to_string()),
    ];
    let stdout = python::run_script("stdio_client.py", &env, SCRIPT_TIMEOUT, String::new).await.stdout;
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
