//! Building: the wasm32-wasip2 target, the tool components (in their own
//! target dir so host builds never rebuild them), their manifests, the host.

use crate::util::{self, RunExt};
use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Where the build put things.
pub struct Built {
    pub binary: PathBuf,
    /// Built-in tools: `<tool>.wasm` + `<tool>.toml`.
    pub tools_dir: PathBuf,
    /// Test-only components (hostile tools for the sandbox tests).
    pub test_tools_dir: PathBuf,
    /// The example plugins (`<name>.wasm` + `<name>.toml`) and their `grants.toml`.
    pub plugins_dir: PathBuf,
}

/// Builds components and host; returns the paths.
pub fn build_all(release: bool) -> anyhow::Result<Built> {
    let root = util::workspace_root();
    ensure_wasm_target()?;

    util::step("building tool components (wasm32-wasip2, release)");
    components_cargo(&["build", "--release", "--target", WASM_TARGET])
        .current_dir(&root)
        .run()?;

    let tools_dir = root.join("target").join("tools");
    let test_tools_dir = root.join("target").join("test-tools");
    let staged = stage_components(&root, &tools_dir, &test_tools_dir)?;
    util::step(&format!(
        "staged {} tool component(s) in {}",
        staged,
        tools_dir.display()
    ));
    let plugins_dir = crate::plugins::build_and_stage(&root)?;

    let profile = if release { "release" } else { "debug" };
    util::step(&format!("building the host ({profile})"));
    // The whole workspace, so features unify exactly as in `cargo test --workspace`
    // and the tests reuse this build instead of compiling the host a second time.
    let mut args = vec!["build", "--workspace"];
    if release {
        args.push("--release");
    }
    util::cargo(&args).current_dir(&root).run()?;
    let host_target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let binary = host_target.join(profile).join("omniroute-mcp");
    Ok(Built {
        binary,
        tools_dir,
        test_tools_dir,
        plugins_dir,
    })
}

/// `cargo <args>` on the tool-components workspace, in its own target dir so
/// host builds never rebuild components (and the reverse).
pub fn components_cargo(args: &[&str]) -> std::process::Command {
    let mut all = args.to_vec();
    all.extend(["--manifest-path", "tool-components/Cargo.toml", "--target-dir", "target/components", "--workspace"]);
    util::cargo(&all)
}

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
pub struct CargoToml {
    pub package: Package,
}

#[derive(Deserialize)]
pub struct Package {
    pub name: String,
}

/// Copies each tool crate's component next to a manifest that pins its
/// sha256. Crates under `tool-components/test-components/` go to the test folder.
fn stage_components(root: &Path, tools_dir: &Path, test_tools_dir: &Path) -> anyhow::Result<usize> {
    let components = root.join("tool-components");
    let out = root.join("target/components").join(WASM_TARGET).join("release");
    let mut crates = Vec::new();
    find_tool_crates(&components, &mut crates)?;
    if crates.is_empty() {
        bail!("no tool crates (with a tool.toml) under {}", components.display());
    }
    let mut count = 0;
    for dir in crates {
        // Plugins are staged apart, into target/plugins (crate::plugins).
        if dir.starts_with(components.join("plugins")) {
            continue;
        }
        let cargo: CargoToml = toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml"))?)
            .with_context(|| format!("reading {}/Cargo.toml", dir.display()))?;
        let wasm_path = out.join(format!("{}.wasm", cargo.package.name.replace('-', "_")));
        let dest_dir = if dir.starts_with(components.join("test-components")) {
            test_tools_dir
        } else {
            tools_dir
        };
        stage_component(&dir, &wasm_path, dest_dir)?;
        count += 1;
    }
    Ok(count)
}

/// Copies one component to `dest_dir/<name>.wasm` next to
/// `dest_dir/<name>.toml`: the tool's `tool.toml` with `component` and
/// `sha256` pinned. Returns the tool name.
pub fn stage_component(tool_dir: &Path, wasm_path: &Path, dest_dir: &Path) -> anyhow::Result<String> {
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

fn find_tool_crates(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if dir.join("tool.toml").is_file() && dir.join("Cargo.toml").is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target" && n != "src") {
            find_tool_crates(&path, out)?;
        }
    }
    out.sort();
    Ok(())
}

pub fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
