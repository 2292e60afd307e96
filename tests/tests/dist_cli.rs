//! First-run help for users who installed a package: `--version`, `config <client>` (the
//! snippet with this binary's absolute path, never a secret) and `doctor` (gateway, dashboard
//! login, API key on a /v1 route, data folder, audit database; what to fix; exit 1 on a
//! problem), against the real auth gateway (dashboard password + required API key).

use omniroute_mcp_tests::gateway::unreachable_url;
use omniroute_mcp_tests::{RealGateway, ServerCommand, TempDir, paths};
use serde_json::Value;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(command: ServerCommand) -> Run {
    let out = command.run_to_end().await;
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The check's line of a doctor report, e.g. `ok    gateway      OmniRoute 3.7.9 ...`.
fn line<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.get(8..).is_some_and(|rest| rest.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} line in:\n{report}"))
}

#[tokio::test]
async fn version_prints_the_cargo_version() {
    let out = run(ServerCommand::new(&unreachable_url()).arg("--version")).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, format!("omniroute-mcp {}\n", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn config_prints_each_clients_snippet_with_this_binarys_path_and_no_secret() {
    let binary = paths::server_binary().canonicalize().expect("the server binary");
    let url = "http://gateway.internal:20128";
    for client in ["claude-desktop", "cursor", "vscode"] {
        let out = run(ServerCommand::new(url).env("OMNIROUTE_API_KEY", "sk-secret-1234").arg("config").arg(client)).await;
        assert!(out.ok, "{client}: {}", out.stderr);
        assert!(!out.stdout.contains("sk-secret-1234"), "{client} leaked the key: {}", out.stdout);
        let snippet: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{client}: not JSON ({e}): {}", out.stdout));
        let server = if client == "vscode" {
            assert_eq!(snippet["servers"]["omniroute"]["type"], "stdio");
            &snippet["servers"]["omniroute"]
        } else {
            &snippet["mcpServers"]["omniroute"]
        };
        assert_eq!(server["command"], binary.display().to_string().as_str(), "{client}");
        assert_eq!(server["env"]["OMNIROUTE_BASE_URL"], url, "{client}");
        assert_eq!(server["env"]["OMNIROUTE_API_KEY"], "<your OmniRoute API key>", "{client}");
        assert!(server["env"].get("OMNIROUTE_DASHBOARD_PASSWORD").is_none(), "{client}: no password in use");
        assert!(out.stderr.contains("placeholders"), "{client}: says to fill the placeholder: {}", out.stderr);
    }
    let out = run(ServerCommand::new(url).arg("config").arg("claude-code")).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim_end(),
        format!("claude mcp add omniroute --scope user --env OMNIROUTE_BASE_URL={url} -- {}", binary.display())
    );
    let out = run(ServerCommand::new(url).arg("config").arg("emacs")).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("claude-desktop") && out.stderr.contains("claude-code"), "{}", out.stderr);
}

#[tokio::test]
async fn doctor_passes_with_the_right_credentials() {
    let gateway = RealGateway::auth();
    let command = ServerCommand::new(&gateway.url)
        .api_key(&gateway.api_key)
        .env("OMNIROUTE_DASHBOARD_PASSWORD", gateway.password.as_deref().expect("the auth gateway's password"))
        .arg("doctor");
    let out = run(command).await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    for name in ["gateway", "dashboard", "api key", "data folder", "audit"] {
        assert!(line(&out.stdout, name).starts_with("  ok"), "{name}:\n{}", out.stdout);
    }
    assert!(line(&out.stdout, "gateway").contains("OmniRoute 3.7.9"), "{}", out.stdout);
    // The harness passes --tools-dir; the binary still says what it embeds.
    assert!(line(&out.stdout, "tools").contains("this binary embeds 16"), "{}", out.stdout);
    assert!(out.stdout.contains("No problems found."), "{}", out.stdout);
}

#[tokio::test]
async fn doctor_names_missing_credentials_and_how_to_fix_them() {
    let gateway = RealGateway::auth();
    let out = run(ServerCommand::new(&gateway.url).arg("doctor")).await;
    assert!(!out.ok, "missing credentials are problems:\n{}", out.stdout);
    assert!(line(&out.stdout, "gateway").starts_with("  ok"), "{}", out.stdout);
    let dashboard = line(&out.stdout, "dashboard");
    assert!(dashboard.starts_with("  FAIL") && dashboard.contains("401"), "{}", out.stdout);
    assert!(out.stdout.contains("fix: set OMNIROUTE_DASHBOARD_PASSWORD"), "{}", out.stdout);
    let api_key = line(&out.stdout, "api key");
    assert!(api_key.starts_with("  FAIL") && api_key.contains("/v1/models"), "{}", out.stdout);
    assert!(out.stdout.contains("set OMNIROUTE_API_KEY"), "{}", out.stdout);
    assert!(out.stderr.contains("doctor found 2 problem(s)"), "{}", out.stderr);
}

#[tokio::test]
async fn doctor_reports_an_unreachable_gateway_and_an_unusable_data_folder() {
    let closed = unreachable_url();
    let blocker = TempDir::new("doctor-file");
    let not_a_folder = blocker.path().join("a-file");
    std::fs::write(&not_a_folder, "x").expect("write a file");
    // --data-dir and --audit-db come after the harness's own --data-dir, so they win.
    let command = ServerCommand::new(&closed)
        .arg("--data-dir")
        .arg(not_a_folder.join("data"))
        .arg("--audit-db")
        .arg(not_a_folder.join("audit.sqlite"))
        .arg("doctor");
    let out = run(command).await;
    assert!(!out.ok, "{}", out.stdout);
    let gateway = line(&out.stdout, "gateway");
    assert!(gateway.starts_with("  FAIL") && gateway.contains(&closed), "{}", out.stdout);
    assert!(out.stdout.contains("fix: set OMNIROUTE_BASE_URL"), "{}", out.stdout);
    for name in ["dashboard", "api key"] {
        assert!(line(&out.stdout, name).starts_with("  skip"), "{name}: {}", out.stdout);
    }
    assert!(line(&out.stdout, "data folder").starts_with("  FAIL"), "{}", out.stdout);
    assert!(out.stdout.contains("fix: set OMNIROUTE_MCP_DATA_DIR"), "{}", out.stdout);
    assert!(line(&out.stdout, "audit").starts_with("  FAIL"), "{}", out.stdout);
}
