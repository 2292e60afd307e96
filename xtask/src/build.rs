//! Building: the wasm32-wasip2 target, the tool components (in their own
//! target dir so host builds never rebuild them), their manifests, the host.

use crate::component::{self, WASM_TARGET};
use crate::util::{self, RunExt};
use anyhow::bail;
use std::path::{Path, PathBuf};

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

impl Built {
    /// Where a build puts things (nothing is checked).
    fn layout(release: bool) -> Built {
        let root = util::workspace_root();
        let host_target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let profile = if release { "release" } else { "debug" };
        Built {
            binary: host_target.join(profile).join("omniroute-mcp"),
            tools_dir: root.join("target").join("tools"),
            test_tools_dir: root.join("target").join("test-tools"),
            plugins_dir: root.join("target").join("plugins"),
        }
    }
}

/// The last build, without building: fails unless the host binary and the staged tools exist.
pub fn existing(release: bool) -> anyhow::Result<Built> {
    let built = Built::layout(release);
    let release_flag = if release { " --release" } else { "" };
    anyhow::ensure!(
        built.binary.is_file() && built.tools_dir.join("omniroute_get_health.toml").is_file(),
        "no build at {} and {}: run `cargo xtask build{release_flag}` first",
        built.binary.display(),
        built.tools_dir.display()
    );
    Ok(built)
}

/// Builds components and host; returns the paths.
pub fn build_all(release: bool) -> anyhow::Result<Built> {
    let root = util::workspace_root();
    let built = Built::layout(release);
    component::ensure_wasm_target()?;

    util::step("building tool components (wasm32-wasip2, release)");
    components_cargo(&["build", "--release", "--target", WASM_TARGET])
        .current_dir(&root)
        .run()?;

    let staged = stage_components(&root, &built.tools_dir, &built.test_tools_dir)?;
    util::step(&format!(
        "staged {} tool component(s) in {}",
        staged,
        built.tools_dir.display()
    ));
    crate::plugins::build_and_stage(&root, &built.plugins_dir)?;

    let profile = if release { "release" } else { "debug" };
    util::step(&format!("building the host ({profile})"));
    // The whole workspace, so features unify exactly as in `cargo test --workspace`
    // and the tests reuse this build instead of compiling the host a second time.
    let mut args = vec!["build", "--workspace"];
    if release {
        args.push("--release");
    }
    util::cargo(&args).current_dir(&root).run()?;
    if embed_describe(&built)? {
        util::step("embedding the built-in tools' describe() output (relinks the host)");
        util::cargo(&args).current_dir(&root).run()?;
    }
    Ok(built)
}

/// Runs the host just built on the staged tools (compiling each once, in a
/// cache under target/) and writes each tool's validated describe() output
/// beside it, where `host/build.rs` embeds it: the binary then answers
/// `tools/list` without compiling anything. Returns whether any output changed
/// (the host must then be built again to embed it).
fn embed_describe(built: &Built) -> anyhow::Result<bool> {
    let root = util::workspace_root();
    let before = describe_files(&built.tools_dir)?;
    let data = root.join("target").join("xtask-describe");
    std::fs::create_dir_all(&data)?;
    let mut command = std::process::Command::new(&built.binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OMNIROUTE_") {
            command.env_remove(&name);
        }
    }
    command
        .arg("tools")
        .arg("--tools-dir")
        .arg(&built.tools_dir)
        .arg("--export-describe")
        .arg(&built.tools_dir)
        .arg("--data-dir")
        .arg(&data)
        .arg("--cache-dir")
        .arg(data.join("cache"))
        .args(["--audit", "off", "--log", "warn"])
        .run()?;
    Ok(describe_files(&built.tools_dir)? != before)
}

/// The `<tool>.describe.json` files of `dir` and their contents.
fn describe_files(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".describe.json") {
            files.push((name, std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

/// `cargo <args>` on the tool-components workspace, in its own target dir so
/// host builds never rebuild components (and the reverse).
pub fn components_cargo(args: &[&str]) -> std::process::Command {
    let mut all = args.to_vec();
    all.extend(["--manifest-path", "tool-components/Cargo.toml", "--target-dir", "target/components", "--workspace"]);
    util::cargo(&all)
}

/// Copies each tool crate's component next to a manifest that pins its
/// sha256. Crates under `tool-components/test-components/` go to the test folder.
fn stage_components(root: &Path, tools_dir: &Path, test_tools_dir: &Path) -> anyhow::Result<usize> {
    let components = root.join("tool-components");
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
        let wasm_path = component::release_wasm(root, &dir)?;
        let dest_dir = if dir.starts_with(components.join("test-components")) {
            test_tools_dir
        } else {
            tools_dir
        };
        component::stage(&dir, &wasm_path, dest_dir)?;
        count += 1;
    }
    Ok(count)
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
