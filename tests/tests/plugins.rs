//! Third-party plugins (`--plugins DIR`), against the real binary and the fake gateway:
//! a tampered component is refused while the server keeps serving; the reserved prefix and
//! name collisions are refused; the operator's grants, not the plugin's request, decide what
//! reaches the gateway; a folder change reaches a connected client as `tools/list_changed`;
//! the in-tree example plugins (Rust and Python) load and answer from gateway data; plugins
//! load in the background, so one whose `describe()` never returns delays nothing and is
//! refused with the cause; a plugin holding a write scope is never listed as read-only.

use std::path::Path;
use std::time::Duration;

use omniroute_mcp_tests::{FakeGateway, McpClient, RawServer, ServerCommand, TempDir, combo_named, paths, python, wat_plugins};
use serde_json::{Value, json};

/// The test-only plugin that asks for read:combos and write:combos.
const SWITCHER: &str = "test_plugin_switcher";
const LIST_CHANGED: &str = "notifications/tools/list_changed";
/// The folder is polled every second; leave room for a loaded machine.
const RELOAD_WAIT: Duration = Duration::from_secs(20);

/// Copies `<name>.wasm` and `<name>.toml` from `from` into `to`, the component first so a
/// watching server never sees a manifest without its component.
fn install(from: &Path, name: &str, to: &Path) {
    for ext in ["wasm", "toml"] {
        let file = format!("{name}.{ext}");
        std::fs::copy(from.join(&file), to.join(&file)).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
}

fn grant(dir: &Path, lines: &str) {
    std::fs::write(dir.join("grants.toml"), format!("[tools]\n{lines}\n")).unwrap();
}

fn with_plugins(gateway: &FakeGateway, dir: &Path) -> ServerCommand {
    ServerCommand::new(&gateway.url()).arg("--plugins").arg(dir)
}

/// Plugins load in the background after the built-ins are served: waits (bounded) until the
/// server logged the end of its first load of the folder, as a client would wait for
/// `tools/list_changed`.
async fn plugins_loaded(client: &McpClient) {
    first_load_done(|| client.stderr()).await;
}

async fn first_load_done(stderr: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + RELOAD_WAIT;
    while !stderr().contains("plugins reloaded") {
        assert!(std::time::Instant::now() < deadline, "the plugin folder was not loaded within {RELOAD_WAIT:?}:\n{}", stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tool_names(tools: &[Value]) -> Vec<String> {
    tools.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()
}

/// `plugins list --json` (or `verify DIR --json`) of a command; returns (exit ok, parsed JSON).
async fn plugins_json(command: ServerCommand) -> (bool, Value) {
    let out = command.run_to_end().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), value)
}

fn coding_fast_id(gateway: &FakeGateway) -> String {
    combo_named(&gateway.combos(), "coding-fast")["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_tampered_component_is_refused_and_the_server_keeps_serving() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-tampered");
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\"]");

    // Untampered, the folder verifies.
    let (ok, report) = plugins_json(ServerCommand::new(&gateway.url()).arg("plugins").arg("verify").arg(dir.path()).arg("--json")).await;
    assert!(ok, "{report}");
    assert_eq!(report["loaded"][0]["name"], SWITCHER, "{report}");

    // One flipped byte after the manifest pinned the hash.
    let wasm = dir.path().join(format!("{SWITCHER}.wasm"));
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, bytes).unwrap();

    let client = McpClient::start(with_plugins(&gateway, dir.path())).await;
    plugins_loaded(&client).await;
    let names = tool_names(&client.list_tools().await);
    assert!(!names.contains(&SWITCHER.to_owned()), "{names:?}");
    assert!(names.contains(&"omniroute_get_health".to_owned()), "{names:?}");
    let health = client.call("omniroute_get_health", json!({})).await;
    assert!(!health.is_error, "{}", health.text);
    assert!(client.stderr().contains("sha256"), "{}", client.stderr());
    client.shutdown().await;

    let (ok, report) = plugins_json(ServerCommand::new(&gateway.url()).arg("plugins").arg("verify").arg(dir.path()).arg("--json")).await;
    assert!(!ok, "verify must fail: {report}");
    assert_eq!(report["loaded"], json!([]));
    let reason = report["refused"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("sha256") && reason.contains("manifest pins"), "{reason}");
}

#[tokio::test]
async fn reserved_names_and_collisions_are_refused_with_the_fix() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-collide");
    // A built-in dropped into the plugin folder: reserved prefix.
    install(&paths::builtin_tools_dir(), "omniroute_get_health", dir.path());
    // The same plugin name claimed by two manifests: ambiguous, so neither loads (a manifest
    // that sorts first must not take the grant meant for the other).
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    std::fs::copy(dir.path().join(format!("{SWITCHER}.toml")), dir.path().join("0-first-copy.toml")).unwrap();
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\"]");

    let (ok, report) = plugins_json(with_plugins(&gateway, dir.path()).arg("plugins").arg("list").arg("--json")).await;
    assert!(ok, "list succeeds even with refusals: {report}");
    assert_eq!(report["loaded"], json!([]), "{report}");
    let reasons: Vec<&str> = report["refused"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("`omniroute_`") && r.contains("reserved")), "{reasons:?}");
    let ambiguous: Vec<&&str> = reasons.iter().filter(|r| r.contains("0-first-copy.toml and test_plugin_switcher.toml")).collect();
    assert_eq!(ambiguous.len(), 2, "both claimants are refused, naming each other: {reasons:?}");
    assert!(ambiguous.iter().all(|r| r.contains("ambiguous") && r.contains("rename")), "{reasons:?}");

    // The server serves all 16 built-ins and not the ambiguous plugin.
    let client = McpClient::start(with_plugins(&gateway, dir.path())).await;
    plugins_loaded(&client).await;
    let names = tool_names(&client.list_tools().await);
    assert_eq!(names.iter().filter(|n| n.starts_with("omniroute_")).count(), 16, "{names:?}");
    assert!(!names.contains(&SWITCHER.to_owned()), "{names:?}");
    client.shutdown().await;
}

/// A grant pinned to a component's sha256 goes to that component only.
#[tokio::test]
async fn a_grant_pinned_to_another_component_grants_nothing() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-pinned");
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    let other = "0".repeat(64);
    grant(dir.path(), &format!("test_plugin_switcher = {{ scopes = [\"read:combos\", \"write:combos\"], sha256 = \"{other}\" }}"));
    let (_, report) = plugins_json(with_plugins(&gateway, dir.path()).arg("plugins").arg("list").arg("--json")).await;
    let entry = &report["loaded"][0];
    assert_eq!(entry["granted"], json!([]), "{report}");
    assert!(report["warnings"][0].as_str().unwrap().contains("pinned"), "{report}");

    let pinned = entry["sha256"].as_str().unwrap().to_owned();
    grant(dir.path(), &format!("test_plugin_switcher = {{ scopes = [\"read:combos\"], sha256 = \"{pinned}\" }}"));
    let (_, report) = plugins_json(with_plugins(&gateway, dir.path()).arg("plugins").arg("list").arg("--json")).await;
    assert_eq!(report["loaded"][0]["granted"], json!(["read:combos"]), "{report}");
}

/// Annotations are hints clients may act on (auto-approving read-only tools): a plugin that
/// holds `write:combos` but says `readOnlyHint: true` is listed as not read-only, and the
/// override is logged.
#[tokio::test]
async fn a_plugin_holding_a_write_scope_is_never_listed_as_read_only() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-hints");
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\"]");
    let mut raw = RawServer::start(with_plugins(&gateway, dir.path())).await;
    raw.initialize().await;
    first_load_done(|| raw.stderr()).await;
    let listed = raw.request("tools/list", json!({})).await;
    let switcher = listed["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == SWITCHER).cloned();
    let switcher = switcher.unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(switcher["annotations"]["readOnlyHint"], false, "{switcher}");
    assert!(raw.stderr().contains("declares readOnlyHint: true but holds the scope write:combos"), "{}", raw.stderr());
    raw.finish().await;
}

/// Plugins load after the built-ins are served: `initialize` and a built-in call are answered
/// while three plugins' `describe()` spin (each is stopped by its CPU budget and refused with
/// that cause), and a good plugin in the same folder then arrives with `tools/list_changed`.
#[tokio::test]
async fn a_plugin_whose_describe_never_returns_delays_nothing() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-spinning-describe");
    let spinners = ["loop_a", "loop_b", "loop_c"];
    for name in spinners {
        wat_plugins::install(dir.path(), name, wat_plugins::LOOPING_DESCRIBE);
    }
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\"]");

    let mut raw = RawServer::start(with_plugins(&gateway, dir.path())).await;
    raw.initialize().await;
    let health = raw.call_tool("omniroute_get_health", json!({})).await;
    assert!(!health.is_error, "{}", health.text);
    let refused_by_then = raw.stderr().matches("plugin refused").count();
    assert!(
        refused_by_then < spinners.len(),
        "initialize and a built-in call must be answered while describe() still runs, but all spinning plugins were already refused:\n{}",
        raw.stderr()
    );

    raw.wait_for_notifications(LIST_CHANGED, 1, RELOAD_WAIT).await;
    let names = tool_names(raw.request("tools/list", json!({})).await["result"]["tools"].as_array().unwrap());
    assert!(names.contains(&SWITCHER.to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("loop_")), "{names:?}");
    let stderr = raw.stderr();
    for name in spinners {
        let line = stderr.lines().find(|l| l.contains("plugin refused") && l.contains(&format!("{name}.toml")));
        let line = line.unwrap_or_else(|| panic!("{name} not refused:\n{stderr}"));
        assert!(line.contains("describe() failed") && line.contains("(stop cause: cpu)"), "{line}");
    }
    raw.finish().await.assert_json_rpc_only();
}

/// MCP 2026-07-28 clients have no session for `tools/list_changed`: the official Python SDK's
/// default client learns through `subscriptions/listen` that a plugin arrived after start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_arriving_after_start_reaches_a_2026_client_through_subscriptions_listen() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-listen");
    for name in ["loop_a", "loop_b", "loop_c"] {
        wat_plugins::install(dir.path(), name, wat_plugins::LOOPING_DESCRIBE);
    }
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\"]");
    let server = ServerCommand::new(&gateway.url());
    let env = vec![
        ("OMNIROUTE_MCP_BIN".to_owned(), server.program().display().to_string()),
        ("OMNIROUTE_MCP_TOOLS_DIR".to_owned(), paths::builtin_tools_dir().display().to_string()),
        ("OMNIROUTE_BASE_URL".to_owned(), gateway.url()),
        ("OMNIROUTE_MCP_DATA_DIR".to_owned(), server.data_dir().display().to_string()),
        ("OMNIROUTE_MCP_PLUGINS".to_owned(), dir.path().display().to_string()),
        ("EXPECT_PLUGIN".to_owned(), SWITCHER.to_owned()),
        ("OMNIROUTE_MCP_CACHE_DIR".to_owned(), paths::target_dir().join("test-cache").display().to_string()),
    ];
    let run = python::run_script("listen_client.py", &env, Duration::from_secs(120), String::new).await;
    assert!(run.stdout.contains("all checks passed"), "{}", run.stdout);
}

/// `plugins verify` runs `describe()` with the same bounds: it ends, naming the cause.
#[tokio::test]
async fn verifying_a_plugin_whose_describe_never_returns_ends_with_the_reason() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-verify-spinning");
    wat_plugins::install(dir.path(), "loop_a", wat_plugins::LOOPING_DESCRIBE);
    let (ok, report) = plugins_json(ServerCommand::new(&gateway.url()).arg("plugins").arg("verify").arg(dir.path()).arg("--json")).await;
    assert!(!ok, "verify must fail: {report}");
    let reason = report["refused"][0]["reason"].as_str().unwrap_or_else(|| panic!("{report}"));
    assert!(reason.contains("describe() failed") && reason.contains("CPU budget") && reason.contains("(stop cause: cpu)"), "{reason}");
}

#[tokio::test]
async fn without_the_operator_grant_a_plugin_cannot_switch_a_combo() {
    let gateway = FakeGateway::start();
    let id = coding_fast_id(&gateway);
    let dir = TempDir::new("plugins-grant");
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\"]");

    // The listing shows what was asked, granted and withheld.
    let (_, report) = plugins_json(with_plugins(&gateway, dir.path()).arg("plugins").arg("list").arg("--json")).await;
    let entry = &report["loaded"][0];
    assert_eq!(entry["requested"], json!(["read:combos", "write:combos"]), "{report}");
    assert_eq!(entry["granted"], json!(["read:combos"]), "{report}");
    assert_eq!(entry["withheld"], json!(["write:combos"]), "{report}");
    assert!(report["warnings"][0].as_str().unwrap().contains("write:combos"), "{report}");

    // Even with scope enforcement off (the stdio default), the broker refuses the PUT.
    let client = McpClient::start(with_plugins(&gateway, dir.path())).await;
    plugins_loaded(&client).await;
    let out = client.call(SWITCHER, json!({"comboId": id, "active": false})).await.into_ok();
    assert_eq!(out["read"], "sent: HTTP 200", "{out}");
    assert!(out["switch"].as_str().unwrap().starts_with("Not permitted: PUT"), "{out}");
    assert!(gateway.requests_to("PUT", &format!("/api/combos/{id}")).is_empty(), "the PUT reached the gateway");
    assert_eq!(gateway.requests_to("GET", "/api/combos").len(), 1);
    // The call went through the same audit path as a built-in (the row is journaled before
    // the answer, so a reader that imports the journal sees it while the server still runs).
    let audit = client.command().data_dir().join("audit.sqlite");
    omniroute_mcp_tests::audit::import_pending(&audit);
    let db = rusqlite::Connection::open(&audit).unwrap();
    let rows: i64 = db
        .query_row("SELECT COUNT(*) FROM mcp_tool_audit WHERE tool_name = ?1 AND success = 1", [SWITCHER], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
    drop(db);
    client.shutdown().await;

    // With the grant, the same call reaches the gateway.
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\", \"write:combos\"]");
    let client = McpClient::start(with_plugins(&gateway, dir.path())).await;
    plugins_loaded(&client).await;
    let out = client.call(SWITCHER, json!({"comboId": id, "active": false})).await.into_ok();
    assert_eq!(out["switch"], "sent: HTTP 200", "{out}");
    assert_eq!(gateway.requests_to("PUT", &format!("/api/combos/{id}")).len(), 1);
    client.shutdown().await;
}

#[tokio::test]
async fn with_enforced_scopes_a_plugin_needs_the_callers_scopes_too() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-enforce");
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    grant(dir.path(), "test_plugin_switcher = [\"*\"]");
    let client = McpClient::start(
        with_plugins(&gateway, dir.path())
            .env("OMNIROUTE_MCP_ENFORCE_SCOPES", "true")
            .env("OMNIROUTE_MCP_SCOPES", "read:health"),
    )
    .await;
    plugins_loaded(&client).await;
    let denied = client.call(SWITCHER, json!({"comboId": "x", "active": true})).await;
    let text = denied.expect_error();
    assert!(text.contains("Insufficient MCP scopes for test_plugin_switcher"), "{text}");
    assert!(gateway.requests().is_empty(), "a denied plugin reached the gateway");
    client.shutdown().await;
}

#[tokio::test]
async fn folder_changes_reach_a_connected_client_as_list_changed() {
    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-watch");
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\"]");
    let mut raw = RawServer::start(with_plugins(&gateway, dir.path())).await;
    let init = raw.initialize().await;
    assert_eq!(init["capabilities"]["tools"]["listChanged"], true, "{init}");
    let listed = |response: &Value| tool_names(response["result"]["tools"].as_array().unwrap());
    assert!(!listed(&raw.request("tools/list", json!({})).await).contains(&SWITCHER.to_owned()));

    // Added while serving: announced, listed, callable.
    install(&paths::test_tools_dir(), SWITCHER, dir.path());
    raw.wait_for_notifications(LIST_CHANGED, 1, RELOAD_WAIT).await;
    assert!(listed(&raw.request("tools/list", json!({})).await).contains(&SWITCHER.to_owned()));
    let out = raw.call_tool(SWITCHER, json!({"comboId": "x", "active": true})).await.into_ok();
    assert_eq!(out["read"], "sent: HTTP 200", "{out}");

    // A grant change alters the plugin's effective scopes: announced too, via `plugins reload`
    // or the poll, whichever comes first.
    grant(dir.path(), "test_plugin_switcher = [\"read:combos\", \"write:combos\"]");
    let reload = with_plugins(&gateway, dir.path()).arg("plugins").arg("reload").run_to_end().await;
    assert!(reload.status.success(), "{}", String::from_utf8_lossy(&reload.stderr));
    raw.wait_for_notifications(LIST_CHANGED, 2, RELOAD_WAIT).await;

    // Removed: announced and gone.
    for ext in ["toml", "wasm"] {
        std::fs::remove_file(dir.path().join(format!("{SWITCHER}.{ext}"))).unwrap();
    }
    raw.wait_for_notifications(LIST_CHANGED, 3, RELOAD_WAIT).await;
    assert!(!listed(&raw.request("tools/list", json!({})).await).contains(&SWITCHER.to_owned()));
    let transcript = raw.finish().await;
    transcript.assert_json_rpc_only();
}

#[tokio::test]
async fn the_example_plugins_in_rust_and_python_load_and_answer_from_gateway_data() {
    let gateway = FakeGateway::start();
    let dir = paths::example_plugins_dir(&["rank_combos", "provider_digest"]);
    let client = McpClient::start(with_plugins(&gateway, &dir)).await;
    plugins_loaded(&client).await;
    let names = tool_names(&client.list_tools().await);
    assert!(names.contains(&"rank_combos".to_owned()) && names.contains(&"provider_digest".to_owned()), "{names:?}");

    // Rust: every combo of the gateway ranked, with the latency source named.
    let ranked = client.call("rank_combos", json!({})).await.into_ok();
    assert_eq!(ranked["degraded"], json!([]), "{ranked}");
    let mut listed: Vec<&str> = ranked["ranking"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    listed.sort();
    let combos = gateway.combos();
    let mut expected: Vec<&str> = combos["combos"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    expected.sort();
    assert_eq!(listed, expected, "{ranked}");
    assert_eq!(gateway.requests_to("GET", "/api/combos/metrics").len(), 1);

    // Python: the same broker; providers from health and provider metrics, worst first.
    let digest = client.call("provider_digest", json!({})).await.into_ok();
    assert_eq!(digest["degraded"], json!([]), "{digest}");
    let providers = digest["providers"].as_array().unwrap();
    assert!(!providers.is_empty(), "{digest}");
    assert_eq!(digest["summary"]["providers"], json!(providers.len()), "{digest}");
    let trouble: Vec<f64> = providers.iter().map(|p| p["trouble"].as_f64().unwrap()).collect();
    assert!(trouble.windows(2).all(|w| w[0] >= w[1]), "not worst first: {trouble:?}");
    assert_eq!(gateway.requests_to("GET", "/api/provider-metrics").len(), 1);
    assert_eq!(gateway.requests_to("GET", "/api/monitoring/health").len(), 1);

    // Outside its scope the Python plugin is denied like any tool (its manifest asks only read:health).
    assert!(gateway.requests_to("GET", "/api/usage/quota").is_empty());
    client.shutdown().await;
}

/// A plugin built against `omniroute:tool@0.1.0` (before the typed `state` import) and kept
/// byte for byte: the host defines 0.1.1 and resolves the old imports to it by semver, so the
/// component loads, is listed and answers from gateway data like a current one.
#[tokio::test]
async fn a_plugin_built_against_wit_0_1_0_keeps_loading_and_working() {
    let fixture = paths::tests_crate_dir().join("fixtures").join("plugins-0.1.0");
    let wasm = std::fs::read(fixture.join("rank_combos.wasm")).unwrap();
    let imports = |name: &str| wasm.windows(name.len()).any(|w| w == name.as_bytes());
    assert!(
        imports("omniroute:tool/session@0.1.0") && imports("omniroute:tool/gateway@0.1.0"),
        "the fixture must be a 0.1.0 component"
    );
    assert!(!imports("omniroute:tool/state"), "the fixture must predate the state import");

    let gateway = FakeGateway::start();
    let dir = TempDir::new("plugins-0.1.0");
    install(&fixture, "rank_combos", dir.path());
    grant(dir.path(), r#"rank_combos = ["read:combos"]"#);
    let client = McpClient::start(with_plugins(&gateway, dir.path())).await;
    plugins_loaded(&client).await;
    assert!(tool_names(&client.list_tools().await).contains(&"rank_combos".to_owned()), "{}", client.stderr());

    let ranked = client.call("rank_combos", json!({})).await.into_ok();
    assert_eq!(ranked["degraded"], json!([]), "{ranked}");
    let mut listed: Vec<&str> = ranked["ranking"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    listed.sort();
    let combos = gateway.combos();
    let mut expected: Vec<&str> = combos["combos"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    expected.sort();
    assert_eq!(listed, expected, "{ranked}");
    client.shutdown().await;
}
