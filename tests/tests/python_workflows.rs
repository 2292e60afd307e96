//! Agent workflows through the official Python MCP SDK over stdio, against the REAL plain
//! OmniRoute gateway (`tests/python/workflows.py`): auto-healing, a budget-aware coding run,
//! a combo benchmark, a post-mortem and model discovery. The SDK validates every
//! structuredContent against the tool's outputSchema, so the workflows also prove the 16
//! schemas and the real outputs agree.

use std::time::Duration;

use omniroute_mcp_tests::real::{MISSING_HINT, PLAIN_PREFIX};
use omniroute_mcp_tests::{RealGateway, paths, python};

/// The script bounds each of its five workflows at 90 s; this is the backstop if Python hangs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(480);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_workflows_run_through_the_official_python_sdk() {
    let gateway = RealGateway::plain();
    let server = gateway.server();
    let state = std::env::var(format!("{PLAIN_PREFIX}_STATE"))
        .unwrap_or_else(|_| panic!("{PLAIN_PREFIX}_STATE is not set: {MISSING_HINT}"));
    let env = vec![
        ("OMNIROUTE_MCP_BIN".to_owned(), server.program().display().to_string()),
        ("OMNIROUTE_MCP_TOOLS_DIR".to_owned(), paths::builtin_tools_dir().display().to_string()),
        ("OMNIROUTE_MCP_CACHE_DIR".to_owned(), paths::target_dir().join("test-cache").display().to_string()),
        (format!("{PLAIN_PREFIX}_URL"), gateway.url.clone()),
        (format!("{PLAIN_PREFIX}_API_KEY"), gateway.api_key.clone()),
        (format!("{PLAIN_PREFIX}_MOCK_URL"), gateway.mock_url.clone()),
        (format!("{PLAIN_PREFIX}_NODE_ID"), gateway.node_id.clone()),
        (format!("{PLAIN_PREFIX}_STATE"), state),
    ];
    let stdout = python::run_script("workflows.py", &env, SCRIPT_TIMEOUT, String::new).await.stdout;
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
