//! Reading an audit database a server writes: its rows reach `mcp_tool_audit`
//! through the journal (`host/src/audit/journal.rs`) within 100 ms, and a reader
//! that must see every answered call imports what is pending first, as the
//! `omniroute-mcp audit` commands do.

use std::path::Path;
use std::process::Command;

/// Imports the rows still in `db`'s journal (the binary's `audit stats`, which
/// imports before it reads), so a direct read of the tables sees every answered call.
pub fn import_pending(db: &Path) {
    let mut cmd = Command::new(crate::paths::server_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OMNIROUTE_") {
            cmd.env_remove(&name);
        }
    }
    let out = cmd
        .arg("--tools-dir")
        .arg(crate::paths::builtin_tools_dir())
        .arg("--audit-db")
        .arg(db)
        .args(["audit", "stats", "--json"])
        .output()
        .expect("run omniroute-mcp audit stats");
    assert!(out.status.success(), "omniroute-mcp audit stats on {}: {}", db.display(), String::from_utf8_lossy(&out.stderr));
}
