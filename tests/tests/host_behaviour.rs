//! Host behaviour that only the wire shows: dashboard-login renewal,
//! credentials by route class, progress notifications, and the precompiled
//! cache surviving corruption and closed to other users, and compiles in a time-limited child.

use omniroute_mcp_tests::{FakeGateway, McpClient, Override, RawServer, ServerCommand, TEST_API_KEY};
use serde_json::{Value, json};

const PASSWORD: &str = "dashboard-pw-3b9f";

/// With `OMNIROUTE_DASHBOARD_PASSWORD`, the broker logs in once, sends the
/// cookie on management routes, and when the gateway answers 401 to a held
/// cookie it logs in again exactly once and retries exactly once. The
/// password and cookie never reach a tool's output or the log.
#[tokio::test]
async fn dashboard_login_is_lazy_and_renewed_once_on_401() {
    let gateway = FakeGateway::start();
    gateway.set_override(
        "POST",
        "/api/auth/login",
        Override::json(200, json!({"success": true}))
            .with_header("set-cookie", "auth_token=jwt-one; Path=/; HttpOnly; SameSite=lax"),
    );
    let client = McpClient::start(
        ServerCommand::new(&gateway.url())
            .api_key(TEST_API_KEY)
            .env("OMNIROUTE_DASHBOARD_PASSWORD", PASSWORD),
    )
    .await;

    // First management call: one login, the cookie on /api/combos, no Bearer there.
    let ok = client.call("omniroute_list_combos", json!({})).await;
    assert!(!ok.is_error, "{}", ok.text);
    let logins = gateway.requests_to("POST", "/api/auth/login");
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].body_json().unwrap_or_default(), json!({"password": PASSWORD}));
    let combos = gateway.requests_to("GET", "/api/combos");
    assert_eq!(combos[0].header("cookie"), Some("auth_token=jwt-one"));
    assert_eq!(combos[0].header("authorization"), None, "the API key stays on /v1 routes");
    // The public health GET carries nothing.
    assert!(!client.call("omniroute_get_health", json!({})).await.is_error);
    let health = gateway.requests_to("GET", "/api/monitoring/health");
    assert_eq!((health[0].header("cookie"), health[0].header("authorization")), (None, None));
    // A /v1 route carries the Bearer key.
    assert!(!client.call("omniroute_list_models_catalog", json!({})).await.is_error);
    let models = gateway.requests_to("GET", "/v1/models");
    assert_eq!(models[0].header("authorization"), Some(format!("Bearer {TEST_API_KEY}").as_str()));

    // The cookie "expires": the gateway answers 401; one re-login, one retry.
    gateway.set_override(
        "GET",
        "/api/combos",
        Override::json(401, json!({"error": {"code": "AUTH_001", "message": "Authentication required"}})),
    );
    gateway.set_override(
        "POST",
        "/api/auth/login",
        Override::json(200, json!({"success": true}))
            .with_header("set-cookie", "auth_token=jwt-two; Path=/; HttpOnly; SameSite=lax"),
    );
    let failed = client.call("omniroute_list_combos", json!({})).await;
    assert!(failed.is_error);
    assert!(failed.text.starts_with("Error: OmniRoute API error [401]"), "{}", failed.text);
    assert_eq!(gateway.requests_to("POST", "/api/auth/login").len(), 2, "exactly one re-login");
    let combos = gateway.requests_to("GET", "/api/combos");
    assert_eq!(combos.len(), 3, "one retry after the re-login");
    assert_eq!(combos[1].header("cookie"), Some("auth_token=jwt-one"));
    assert_eq!(combos[2].header("cookie"), Some("auth_token=jwt-two"));

    let stderr = client.stderr();
    for secret in [PASSWORD, "jwt-one", "jwt-two", TEST_API_KEY] {
        assert!(!stderr.contains(secret), "{secret} leaked into the log");
        assert!(!ok.text.contains(secret) && !failed.text.contains(secret));
    }
    client.shutdown().await;
}

/// test_combo reports one `notifications/progress` per finished step when the
/// client sent a progress token.
#[tokio::test]
async fn test_combo_reports_progress_per_step() {
    let gateway = FakeGateway::start();
    let mut raw = RawServer::start(ServerCommand::new(&gateway.url())).await;
    raw.initialize().await;
    let result = raw
        .request(
            "tools/call",
            json!({
                "name": "omniroute_test_combo",
                "arguments": {"comboId": "coding-fast", "testPrompt": "hi"},
                "_meta": {"progressToken": "tok-7"}
            }),
        )
        .await;
    assert_ne!(result["result"]["isError"], true, "{result}");
    let transcript = raw.finish().await;
    let progress: Vec<Value> = transcript
        .stdout_lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"].clone())
        .collect();
    assert_eq!(progress.len(), 2, "one notification per step: {progress:#?}");
    for (i, p) in progress.iter().enumerate() {
        assert_eq!(p["progressToken"], "tok-7");
        assert_eq!(p["progress"], json!((i + 1) as f64));
        assert_eq!(p["total"], json!(2.0));
        let message = p["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("mock mock/mock-") && message.contains(": ok in "), "{message}");
    }
}

/// Starts the server of `cmd`, whose cache folder is `cache`, once (tools from a folder are compiled and their `describe()`
/// run at start, so its cache then holds every tool); the number of tools it serves and the
/// `.cwasm` files of its cache, which live in one folder per engine beside the cache's key file.
async fn fill_cache(cmd: ServerCommand, cache: &std::path::Path) -> (usize, Vec<std::path::PathBuf>) {
    let client = McpClient::start(cmd).await;
    let tools = client.list_tools().await.len();
    client.shutdown().await;
    let engine_dirs = std::fs::read_dir(cache).unwrap().map(|d| d.unwrap().path()).filter(|p| p.is_dir());
    let compiled: Vec<_> = engine_dirs
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()))
        .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert!(compiled.len() >= tools, "the cache held {} compiled tools for {tools} tools", compiled.len());
    (tools, compiled)
}

/// A corrupt precompiled cache entry is rebuilt with a warning; the server
/// starts and serves every tool.
#[tokio::test]
async fn a_corrupt_precompiled_cache_is_rebuilt_not_fatal() {
    let gateway = FakeGateway::start();
    let cache = omniroute_mcp_tests::TempDir::new("cache");
    let cmd = || ServerCommand::new(&gateway.url()).arg("--cache-dir").arg(cache.path());
    let (expected, compiled) = fill_cache(cmd(), cache.path()).await;
    for path in &compiled {
        std::fs::write(path, b"not machine code").unwrap();
    }

    let client = McpClient::start(cmd()).await;
    assert_eq!(client.list_tools().await.len(), expected);
    assert!(!client.call("omniroute_get_health", json!({})).await.is_error);
    client.stderr_until(|s| s.contains("precompiled cache entry unusable; rebuilding it")).await;
    client.shutdown().await;
}

/// The precompiled cache holds native code the server runs: another local user can neither
/// list it nor plant an entry in it. Checked as that user (`runuser -u nobody`), since root
/// is not stopped by mode bits; the folder around the cache is open to them, so a refusal is
/// the cache's own doing.
#[tokio::test]
async fn another_user_cannot_read_or_write_the_precompiled_cache() {
    use std::os::unix::fs::PermissionsExt;
    let gateway = FakeGateway::start();
    let outer = omniroute_mcp_tests::TempDir::new("cache-perms");
    std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = outer.path().join("cache");
    let client = McpClient::start(ServerCommand::new(&gateway.url()).arg("--cache-dir").arg(&cache)).await;
    client.shutdown().await;

    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache folder must be private");
    let engine_dir = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    let as_nobody = |script: String| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", "sh", "-c", &script])
            .output()
            .unwrap_or_else(|e| panic!("runuser is needed to act as another user (util-linux; run the tests as root): {e}"))
    };
    let control = as_nobody(format!("ls {}", outer.path().display()));
    assert!(control.status.success(), "nobody must be able to list the folder around the cache: {control:?}");
    let list = as_nobody(format!("ls {}", cache.display()));
    assert!(!list.status.success(), "nobody listed the cache: {}", String::from_utf8_lossy(&list.stdout));
    let plant = as_nobody(format!("echo planted > {}/planted.cwasm", engine_dir.display()));
    assert!(!plant.status.success(), "nobody wrote into the cache");
    assert!(!engine_dir.join("planted.cwasm").exists());
}

/// Components are mapped on first use (describe() comes from the cache of validated
/// answers), and that first use checks the pinned sha256 again: a component swapped
/// after the server loaded it is refused with the fix, and the other tools keep working.
#[tokio::test]
async fn a_component_changed_after_loading_is_refused_at_its_first_call() {
    let gateway = FakeGateway::start();
    let tools = omniroute_mcp_tests::TempDir::new("tools-copy");
    for entry in std::fs::read_dir(omniroute_mcp_tests::paths::builtin_tools_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tools.path().join(path.file_name().unwrap())).unwrap();
    }
    // A first server fills the shared describe() cache; the second starts from it.
    let warm = McpClient::start(ServerCommand::new(&gateway.url())).await;
    warm.shutdown().await;
    let client = McpClient::start(ServerCommand::new(&gateway.url()).tools_dir(tools.path())).await;
    assert!(!client.call("omniroute_get_health", json!({})).await.is_error);

    let wasm = tools.path().join("omniroute_list_combos.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, bytes).unwrap();
    let refused = client.call("omniroute_list_combos", json!({})).await;
    let text = refused.expect_error();
    assert!(text.contains("changed after the server loaded it") && text.contains("restore the file"), "{text}");
    assert!(gateway.requests_to("GET", "/api/combos").is_empty(), "the swapped component ran");
    assert!(!client.call("omniroute_get_health", json!({})).await.is_error);
    client.shutdown().await;
}

/// Cranelift runs in a child process of the server's binary: the server maps the code the
/// child made, stores it in the cache, and the next start maps it without compiling.
#[tokio::test]
async fn components_are_compiled_in_a_child_process_then_mapped_from_the_cache() {
    let gateway = FakeGateway::start();
    let cache = omniroute_mcp_tests::TempDir::new("cache");
    let cmd = || {
        ServerCommand::new(&gateway.url())
            .arg("--cache-dir")
            .arg(cache.path())
            .arg("--log")
            .arg("warn,omniroute_mcp::runtime=debug,omniroute_mcp::registry=debug")
    };
    let client = McpClient::start(cmd()).await;
    assert!(!client.call("omniroute_get_health", json!({})).await.is_error);
    let stderr = client.stderr_until(|s| s.contains("compiled in a child process")).await;
    assert!(!stderr.contains("compiling in process"), "the child was not used: {stderr}");
    client.shutdown().await;

    let client = McpClient::start(cmd()).await;
    assert!(!client.call("omniroute_get_health", json!({})).await.is_error);
    let stderr = client.stderr_until(|s| s.contains("cache=Hit")).await;
    assert!(!stderr.contains("compiled in a child process"), "a cached component was compiled again: {stderr}");
    client.shutdown().await;
}

/// A compile that outlasts `OMNIROUTE_MCP_COMPILE_TIME_LIMIT_S` is stopped (its child killed)
/// and the tool refused with the reason; the server goes on serving.
#[tokio::test]
async fn a_compile_over_the_time_limit_is_stopped_and_the_server_keeps_serving() {
    let gateway = FakeGateway::start();
    let cache = omniroute_mcp_tests::TempDir::new("cache");
    let cmd = || ServerCommand::new(&gateway.url()).arg("--cache-dir").arg(cache.path());
    // Without the code but with the cached describe() answers, the next start serves
    // tools/list at once and compiles a tool on its first call.
    let (expected, compiled) = fill_cache(cmd(), cache.path()).await;
    for path in &compiled {
        std::fs::remove_file(path).unwrap();
    }

    let client = McpClient::start(cmd().env("OMNIROUTE_MCP_COMPILE_TIME_LIMIT_S", "0.001")).await;
    assert_eq!(client.list_tools().await.len(), expected);
    let refused = client.call("omniroute_get_health", json!({})).await;
    assert!(refused.is_error, "{refused:?}");
    assert!(refused.text.contains("compiling took longer than"), "{}", refused.text);
    assert!(refused.text.contains("OMNIROUTE_MCP_COMPILE_TIME_LIMIT_S"), "the error names the setting: {}", refused.text);
    assert_eq!(client.list_tools().await.len(), expected, "the server still serves");
    client.shutdown().await;
}
