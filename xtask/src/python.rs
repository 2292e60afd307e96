//! Python venvs under `target/`: the official MCP SDK for client-compatibility
//! tests, and componentize-py for Python plugins (crate::plugins).

use crate::util::{self, RunExt};
use anyhow::Context;
use std::path::PathBuf;
use std::process::Command;

/// Pinned so a new SDK release cannot change what the tests prove overnight.
pub const MCP_REQUIREMENT: &str = "mcp==2.3.0";

/// The Prometheus client library, whose OpenMetrics parser reads `/metrics` in the metrics tests.
pub const PROMETHEUS_REQUIREMENT: &str = "prometheus-client==0.26.0";

/// Creates `target/venv` with the SDK (and the metrics parser) once; later runs reuse it.
pub fn ensure_venv() -> anyhow::Result<PathBuf> {
    ensure("venv", &format!("{MCP_REQUIREMENT} {PROMETHEUS_REQUIREMENT}"), "client tests")
}

/// `target/<name>` with `requirement` (space-separated requirements) installed, created once: later runs
/// only check a marker. Returns the venv's `python`.
pub fn ensure(name: &str, requirement: &str, purpose: &str) -> anyhow::Result<PathBuf> {
    let venv = util::workspace_root().join("target").join(name);
    let python = venv.join("bin").join("python");
    let marker = venv.join(".omniroute-requirements");
    if python.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m == requirement) {
        return Ok(python);
    }
    if !python.is_file() {
        util::step(&format!(
            "creating the Python venv for {purpose} (target/{name})"
        ));
        let python3 = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        Command::new(&python3)
            .args(["-m", "venv"])
            .arg(&venv)
            .stdout(std::io::stderr())
            .run()
            .with_context(|| format!("Python 3 with the venv module is needed for {purpose}"))?;
    }
    util::step(&format!("installing {requirement} into target/{name}"));
    Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(requirement.split_whitespace())
        // stdout belongs to the MCP server under `cargo xtask run`.
        .stdout(std::io::stderr())
        .run()?;
    std::fs::write(&marker, requirement)?;
    Ok(python)
}
