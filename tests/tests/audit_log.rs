//! The audit log as an operator meets it, against the real binary: private
//! files, `audit recent` printing hostile text safely, `audit verify`
//! finding a tampered row, `audit export` as JSON lines.

use omniroute_mcp_tests::{FakeGateway, GET_HEALTH, McpClient, ServerCommand, TempDir, paths};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Runs a command as the unprivileged user `nobody`.
fn as_nobody(args: &[&str]) -> Output {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    assert!(root, "this test shows what another local user can do through `runuser -u nobody`, which needs root: run it as root (CI does)");
    Command::new("runuser").args(["-u", "nobody", "--"]).args(args).output().expect("runuser")
}

/// `omniroute-mcp audit …` on an audit database.
fn audit_cli(db: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(paths::server_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OMNIROUTE_") {
            cmd.env_remove(&name);
        }
    }
    cmd.arg("--tools-dir").arg(paths::builtin_tools_dir()).arg("--audit-db").arg(db).arg("audit").args(args);
    cmd.output().expect("run omniroute-mcp audit")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn data_folder_audit_and_state_files_are_private_to_their_owner() {
    let gateway = FakeGateway::start();
    let client = McpClient::start(ServerCommand::new(&gateway.url())).await;
    assert!(!client.call(GET_HEALTH, json!({})).await.is_error);
    let data = client.command().data_dir().to_path_buf();
    // While the server runs: the WAL companions exist and are private too.
    assert_eq!(mode(&data), 0o700, "data folder");
    for db in ["audit.sqlite", "state.sqlite"] {
        for suffix in ["", "-wal", "-shm"] {
            let file = with_suffix(&data.join(db), suffix);
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
    // The audit journal: a private folder of private files (this process's lock and rows).
    let journal = data.join("audit.sqlite.pending");
    assert_eq!(mode(&journal), 0o700, "{}", journal.display());
    let files: Vec<PathBuf> = std::fs::read_dir(&journal).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "jsonl")), "{files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    let read = as_nobody(&["cat", data.join("audit.sqlite").to_str().unwrap()]);
    assert!(!read.status.success(), "another user read the audit database");
    assert!(text(&read.stderr).contains("Permission denied"), "{}", text(&read.stderr));
    client.shutdown().await;

    // The precompiled cache in the default place (inside the data folder).
    let tools = TempDir::new("one-tool");
    for ext in ["wasm", "toml"] {
        let name = format!("{GET_HEALTH}.{ext}");
        std::fs::copy(paths::builtin_tools_dir().join(&name), tools.path().join(&name)).unwrap();
    }
    let data = TempDir::new("private-data");
    let out = Command::new(paths::server_binary())
        .arg("--tools-dir")
        .arg(tools.path())
        .arg("--data-dir")
        .arg(data.path())
        .arg("tools")
        .env_remove("OMNIROUTE_MCP_CACHE_DIR")
        .env_remove("OMNIROUTE_MCP_AUDIT_DB")
        .env_remove("OMNIROUTE_MCP_STATE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cache = data.path().join("cache");
    assert!(cache.is_dir(), "the tool was compiled into {}", cache.display());
    let planted = cache.join("planted.cwasm");
    let write = as_nobody(&["touch", planted.to_str().unwrap()]);
    assert!(!write.status.success() && !planted.exists(), "another user could write the cache folder");
}

#[tokio::test]
async fn recent_verify_and_export_on_a_log_with_hostile_text() {
    let gateway = FakeGateway::start();
    // The database in a folder the test owns, so it outlives the server's data folder.
    let keep = TempDir::new("audit-log");
    let copy = keep.path().join("audit.sqlite");
    let command = ServerCommand::new(&gateway.url()).env("OMNIROUTE_MCP_AUDIT_DB", copy.to_str().unwrap());
    let client = McpClient::start(command).await;
    assert!(!client.call(GET_HEALTH, json!({})).await.is_error);
    // A client-chosen tool name that tries to forge a row and colour the terminal.
    let hostile = "nope\n999    2026-01-01 00:00:00  omniroute_get_health  yes  \u{1b}[2J\u{1b}[31mforged";
    let _ = client.try_call(hostile, json!({})).await;
    client.shutdown().await;

    let recent = audit_cli(&copy, &["recent"]);
    assert!(recent.status.success(), "{}", text(&recent.stderr));
    let out = text(&recent.stdout);
    assert!(!out.contains('\u{1b}'), "an escape sequence reached the terminal: {out:?}");
    assert_eq!(out.lines().count(), 3, "header and exactly two rows: {out}");
    assert!(out.contains("nope\\n999"), "the newline is shown escaped: {out}");

    let verify = audit_cli(&copy, &["verify"]);
    assert!(verify.status.success(), "{}{}", text(&verify.stdout), text(&verify.stderr));
    assert!(text(&verify.stdout).contains("Rows checked: 2"), "{}", text(&verify.stdout));

    let export = audit_cli(&copy, &["export", "--format", "jsonl"]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let rows: Vec<Value> = text(&export.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["toolName"], GET_HEALTH);
    assert!(rows[0]["gatewayCalls"].as_array().is_some_and(|c| !c.is_empty()), "{}", rows[0]);
    assert_eq!(rows[1]["prevHash"], rows[0]["rowHash"], "each row carries the previous row's hash");
    assert_eq!(rows[1]["toolName"], hostile, "JSON keeps the text exactly, escaped by JSON itself");

    // Tampering with the first row is found and named.
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute("UPDATE mcp_tool_audit SET output_summary = 'nothing to see' WHERE id = 1", []).unwrap();
    drop(conn);
    let verify = audit_cli(&copy, &["verify"]);
    assert!(!verify.status.success());
    assert!(text(&verify.stderr).contains("broken at row 1"), "{}", text(&verify.stderr));
}
