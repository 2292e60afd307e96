//! The first run on a machine without a gateway.
//!
//! * The server alone logs one line at start: the gateway's version when one answers, else the
//!   URL it tried and both ways out (`OMNIROUTE_BASE_URL`, `cargo xtask gateway start`).
//! * `cargo xtask run` with no gateway URL set and nothing at the default URL serves against the
//!   project's demo gateway, driven here by the official Python SDK (`tests/python/first_run.py`).
//!
//! The default URL: `cargo xtask run` probes `http://localhost:20128` unless a gateway URL is
//! set, and setting `OMNIROUTE_BASE_URL` means "use this one, start nothing in its place". So
//! the test cannot point `OMNIROUTE_BASE_URL` at a closed port to reach the demo path; it leaves
//! it unset and hands xtask the closed port as the default URL (the hidden `--default-url`),
//! which is what a fresh machine looks like.

use std::time::{Duration, Instant};

use omniroute_mcp_tests::gateway::unreachable_url;
use omniroute_mcp_tests::{FakeGateway, McpClient, ServerCommand, TempDir, paths, python};

/// How long the startup line may take: the probe is bounded at 2 s, the server's start (a
/// cold component cache compiles every tool) comes on top.
const PROBE_LINE_WAIT: Duration = Duration::from_secs(60);

/// The script bounds itself at 240 s; this is the backstop if Python itself hangs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Polls the server's stderr until a line contains `needle`; returns that line.
async fn stderr_line(client: &McpClient, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let stderr = client.stderr();
        if let Some(line) = stderr.lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            started.elapsed() < PROBE_LINE_WAIT,
            "no stderr line with {needle:?} within {PROBE_LINE_WAIT:?}:\n{stderr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_against_a_closed_port_logs_the_url_and_both_ways_out() {
    let closed = unreachable_url();
    let client = McpClient::start(ServerCommand::new(&closed)).await;
    let line = stderr_line(&client, "no OmniRoute gateway answered").await;
    assert!(
        line.contains(&format!("{closed}/api/monitoring/health")),
        "the URL tried: {line}"
    );
    assert!(line.contains("OMNIROUTE_BASE_URL"), "way out 1: {line}");
    assert!(
        line.contains("cargo xtask gateway start"),
        "way out 2: {line}"
    );
    assert!(line.contains("WARN"), "a warning: {line}");
    let health = client
        .call(omniroute_mcp_tests::GET_HEALTH, serde_json::json!({}))
        .await
        .into_ok();
    assert_eq!(
        health["status"], "unreachable",
        "the tools still answer: {health}"
    );
    let stderr = client.stderr();
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("no OmniRoute gateway answered"))
            .count(),
        1,
        "one line: {stderr}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_logs_the_gateways_version_and_its_probe_is_not_tool_traffic() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(ServerCommand::new(&gateway.url())).await;
    let line = stderr_line(&client, "is reachable").await;
    assert!(
        line.contains(&format!(
            "OmniRoute gateway at {} is reachable: version 3.7.9",
            gateway.url()
        )),
        "the fake gateway's health fixture says 3.7.9: {line}"
    );
    let probes = gateway.startup_probes();
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!(
        (probes[0].method.as_str(), probes[0].path.as_str()),
        ("GET", "/api/monitoring/health")
    );
    assert_eq!(
        probes[0].header("authorization"),
        None,
        "the probe carries no credentials"
    );
    assert!(
        gateway.requests().is_empty(),
        "no tool ran: {:?}",
        gateway.requests()
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_xtask_run_without_a_gateway_serves_the_python_sdk_against_the_demo_gateway() {
    let closed = unreachable_url();
    let data = TempDir::new("first-run");
    let mut env = vec![
        (
            "XTASK_BIN".to_owned(),
            paths::xtask_binary().display().to_string(),
        ),
        ("DEFAULT_URL".to_owned(), closed.clone()),
        (
            "OMNIROUTE_MCP_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
    ];
    // Where the gateway is installed, if the run moved the cache (run_script drops OMNIROUTE_*).
    for name in ["OMNIROUTE_MCP_CACHE", "XDG_CACHE_HOME"] {
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_owned(), value));
        }
    }
    let hint = || {
        "the demo gateway must be installed in the cache for this test (`cargo xtask gateway install`; \
         `cargo xtask test` does it), and the xtask binary must have `run --no-build` (any `cargo xtask` \
         command rebuilds it)"
            .to_owned()
    };
    let run = python::run_script("first_run.py", &env, SCRIPT_TIMEOUT, hint).await;
    assert!(run.stdout.contains("all checks passed"), "{}", run.stdout);

    // xtask said which gateway it started, and that it is a demo with a mock upstream.
    let notice = run
        .stderr
        .lines()
        .find(|l| l.contains("against the DEMO gateway at "))
        .unwrap_or_else(|| panic!("no demo notice on stderr:\n{}", run.stderr));
    for words in [
        "mock upstream",
        "not your gateway",
        "`cargo xtask gateway stop`",
        "OMNIROUTE_BASE_URL",
    ] {
        assert!(notice.contains(words), "{words:?} missing: {notice}");
    }
    let demo_url = notice
        .split("against the DEMO gateway at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|url| url.trim_end_matches(':').to_owned())
        .unwrap_or_else(|| panic!("no URL in the notice: {notice}"));
    assert_ne!(demo_url, closed, "{notice}");

    // Both clients got the version the demo gateway itself reports.
    let own = reqwest::get(format!("{demo_url}/api/monitoring/health"))
        .await
        .unwrap_or_else(|e| panic!("the demo gateway {demo_url} does not answer ({e}): {notice}"))
        .json::<serde_json::Value>()
        .await
        .unwrap_or_else(|e| panic!("the demo gateway's health is not JSON: {e}"));
    let version = own["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no version in {own}"));
    for client in ["Client", "ClientSession"] {
        assert!(
            run.stdout
                .contains(&format!("health version ({client}): {version}\n")),
            "{client} must report the gateway's version {version}:\n{}",
            run.stdout
        );
    }
    // And each server said so in its startup line.
    let reachable = format!("OmniRoute gateway at {demo_url} is reachable: version {version}");
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.contains(&reachable))
            .count(),
        2,
        "one startup line per server:\n{}",
        run.stderr
    );
}
