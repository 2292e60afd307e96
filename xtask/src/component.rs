//! One built tool component and its pinned manifest: the wasm32-wasip2 target, where cargo
//! puts a crate's component, and staging `<name>.wasm` next to `<name>.toml` with the sha256
//! pinned. Shared by the built-in tools ([`crate::build`]) and the plugins ([`crate::plugins`]).

use crate::util::{self, RunExt};
use anyhow::Context;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Adds the wasm32-wasip2 target with rustup when it is missing.
pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output_text()
        .context("rustup is needed to add the wasm32-wasip2 target")?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    util::step("adding the wasm32-wasip2 target with rustup");
    std::process::Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .run()
}

#[derive(Deserialize)]
struct CargoToml {
    package: Package,
}

#[derive(Deserialize)]
struct Package {
    name: String,
}

/// Where the release component of the crate in `crate_dir` lands in `target/components`.
pub fn release_wasm(root: &Path, crate_dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo: CargoToml = toml::from_str(&std::fs::read_to_string(crate_dir.join("Cargo.toml"))?)
        .with_context(|| format!("reading {}/Cargo.toml", crate_dir.display()))?;
    Ok(root
        .join("target/components")
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", cargo.package.name.replace('-', "_"))))
}

/// Copies one component to `dest_dir/<name>.wasm` next to
/// `dest_dir/<name>.toml`: the tool's `tool.toml` with `component` and
/// `sha256` pinned. Returns the tool name.
pub fn stage(tool_dir: &Path, wasm_path: &Path, dest_dir: &Path) -> anyhow::Result<String> {
    let source_manifest = std::fs::read_to_string(tool_dir.join("tool.toml"))
        .with_context(|| format!("reading {}/tool.toml", tool_dir.display()))?;
    let tool: toml::Table = toml::from_str(&source_manifest)
        .with_context(|| format!("reading {}/tool.toml", tool_dir.display()))?;
    let name = tool
        .get("name")
        .and_then(|v| v.as_str())
        .with_context(|| format!("{}/tool.toml has no name", tool_dir.display()))?;
    let wasm = std::fs::read(wasm_path)
        .with_context(|| format!("component {} was not built", wasm_path.display()))?;
    let sha = hex::encode(Sha256::digest(&wasm));
    std::fs::create_dir_all(dest_dir)?;
    let file = format!("{name}.wasm");
    let manifest = insert_pins(&source_manifest, &file, &sha);
    write_if_changed(&dest_dir.join(&file), &wasm)?;
    write_if_changed(&dest_dir.join(format!("{name}.toml")), manifest.as_bytes())?;
    Ok(name.to_string())
}

/// The source manifest with `component` and `sha256` added after `version`.
fn insert_pins(source: &str, file: &str, sha: &str) -> String {
    let mut out = String::new();
    let mut inserted = false;
    for line in source.lines() {
        out.push_str(line);
        out.push('\n');
        if !inserted && line.trim_start().starts_with("version") {
            out.push_str(&format!("component = \"{file}\"\nsha256 = \"{sha}\"\n"));
            inserted = true;
        }
    }
    if !inserted {
        out = format!("component = \"{file}\"\nsha256 = \"{sha}\"\n{out}");
    }
    out
}

/// Writes only when the content differs, so unchanged files keep their mtime.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
