//! Small helpers: locating the workspace, running commands loudly.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
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
    // A CI run starts from a clean clone and never rebuilds: incremental state would only
    // take disk (2.5 GB of target/debug/incremental) and time.
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
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

/// Says how much `target/` holds and how much its disk has left, so that a run that dies of a
/// full disk (CI machines vary) shows it in its log. Best effort: prints nothing it cannot read.
pub fn report_disk(target: &Path, when: &str) {
    let used = dir_size(target);
    let free = free_kib(target).map(|k| format!(", {:.1} GB free on its disk", k as f64 * 1024.0 / 1e9)).unwrap_or_default();
    step(&format!("disk {when}: target/ holds {:.1} GB{free}", used as f64 / 1e9));
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Free KiB on the file system holding `path`, from POSIX `df -Pk` (absent on Windows).
fn free_kib(path: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}
