//! The Python venv with the official MCP SDK, for client-compatibility tests.

use crate::util::{self, RunExt};
use anyhow::Context;
use std::path::PathBuf;
use std::process::Command;

/// Pinned so a new SDK release cannot change what the tests prove overnight.
pub const MCP_REQUIREMENT: &str = "mcp==2.3.0";

/// Creates `target/venv` with the SDK once; later runs reuse it.
pub fn ensure_venv() -> anyhow::Result<PathBuf> {
    let venv = util::workspace_root().join("target").join("venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".omniroute-requirements");
    if python.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == MCP_REQUIREMENT) {
        return Ok(python);
    }
    if !python.is_file() {
        util::step("creating the Python venv for client tests (target/venv)");
        let python3 = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        Command::new(&python3)
            .args(["-m", "venv"])
            .arg(&venv)
            .run()
            .context("Python 3 with the venv module is needed for the client tests")?;
    }
    util::step(&format!("installing {MCP_REQUIREMENT} into the venv"));
    Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", MCP_REQUIREMENT])
        .run()?;
    std::fs::write(&marker, MCP_REQUIREMENT)?;
    Ok(python)
}
