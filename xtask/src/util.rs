//! Small helpers: locating the workspace, running commands loudly.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;

/// The repository root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}

/// Prints a progress line on stderr.
pub fn step(message: &str) {
    eprintln!("xtask: {message}");
}

/// A `cargo` command using the same toolchain that runs xtask.
pub fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args);
    cmd
}

/// Runs a command, failing with the command line when it fails.
pub trait RunExt {
    fn run(&mut self) -> anyhow::Result<()>;
    fn output_text(&mut self) -> anyhow::Result<String>;
}

impl RunExt for Command {
    fn run(&mut self) -> anyhow::Result<()> {
        let line = format!("{self:?}");
        let status = self.status().with_context(|| format!("cannot start {line}"))?;
        if !status.success() {
            bail!("command failed ({status}): {line}");
        }
        Ok(())
    }

    fn output_text(&mut self) -> anyhow::Result<String> {
        let line = format!("{self:?}");
        let out = self.output().with_context(|| format!("cannot start {line}"))?;
        if !out.status.success() {
            bail!(
                "command failed ({}): {line}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
