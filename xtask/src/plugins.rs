//! Third-party tool plugins (issue #8), the author's side:
//!
//! * the example plugins under `tool-components/plugins/` (a Rust crate of
//!   the tool-components workspace, a Python app built with componentize-py)
//!   are staged into `target/plugins/` with a pinned manifest each and a
//!   `grants.toml` granting each exactly the scopes it requests;
//! * `cargo xtask build-plugin PATH --out DIR` builds any plugin folder (Rust
//!   crate or Python app) and writes `<name>.wasm` + pinned `<name>.toml`
//!   into a plugin folder;
//! * [`test`]: the Python plugins' unit tests and a freshly generated
//!   `new-tool` crate, tested and built, so the template cannot rot.
//!
//! componentize-py output is not byte-reproducible, so a Python plugin is
//! rebuilt only when its inputs change (a stamp of their hash): its sha256
//! pin stays put between builds.

use crate::component::{self, WASM_TARGET};
use crate::util::{self, RunExt};
use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Pinned: a new componentize-py could change the generated bindings.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// The Python module a Python plugin's folder must hold (componentize-py's app).
const PYTHON_APP: &str = "app";

/// What kind of plugin a folder holds.
enum Kind {
    /// `Cargo.toml` + `tool.toml`: a crate using the Rust SDK.
    Rust,
    /// `app.py` + `tool.toml`: a componentize-py app.
    Python,
}

fn kind_of(dir: &Path) -> Option<Kind> {
    if !dir.join("tool.toml").is_file() {
        return None;
    }
    if dir.join("Cargo.toml").is_file() {
        Some(Kind::Rust)
    } else if dir.join(format!("{PYTHON_APP}.py")).is_file() {
        Some(Kind::Python)
    } else {
        None
    }
}

/// The plugin folders under `tool-components/plugins/`, sorted.
fn example_plugins(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let src = root.join("tool-components/plugins");
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        if kind_of(&path).is_some() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Stages the example plugins into `out` (`target/plugins`; after the components
/// build, which compiled the Rust ones) and writes its `grants.toml`.
pub fn build_and_stage(root: &Path, out: &Path) -> anyhow::Result<()> {
    let mut grants = Vec::new();
    for dir in example_plugins(root)? {
        let wasm = match kind_of(&dir) {
            Some(Kind::Rust) => {
                let path = component::release_wasm(root, &dir)?;
                anyhow::ensure!(
                    path.is_file(),
                    "{} is not built: is it a member of tool-components/Cargo.toml?",
                    path.display()
                );
                path
            }
            _ => build_python(root, &dir)?,
        };
        let name = component::stage(&dir, &wasm, out)?;
        grants.push((name, manifest_scopes(&dir)?));
    }
    component::write_if_changed(&out.join("grants.toml"), grants_toml(&grants).as_bytes())?;
    let names: Vec<&str> = grants.iter().map(|(n, _)| n.as_str()).collect();
    util::step(&format!(
        "staged {} plugin(s) in {} ({}) with grants.toml",
        grants.len(),
        out.display(),
        names.join(", ")
    ));
    Ok(())
}

/// `grants.toml` granting each plugin exactly the scopes it requests.
fn grants_toml(grants: &[(String, Vec<String>)]) -> String {
    let mut text = String::from(
        "# Written by `cargo xtask build`: the operator's grants for the example plugins.\n\
         # A plugin gets the scopes it requests that are also granted here.\n[tools]\n",
    );
    for (name, scopes) in grants {
        let list: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        text.push_str(&format!("{name} = [{}]\n", list.join(", ")));
    }
    text
}

/// The `scopes` of a plugin's `tool.toml`.
fn manifest_scopes(dir: &Path) -> anyhow::Result<Vec<String>> {
    let tool: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("tool.toml"))?)
        .with_context(|| format!("reading {}/tool.toml", dir.display()))?;
    let scopes = tool
        .get("scopes")
        .and_then(|v| v.as_array())
        .with_context(|| format!("{}/tool.toml has no scopes list", dir.display()))?;
    Ok(scopes
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect())
}

/// `target/plugin-venv` with componentize-py, created once (idempotent);
/// returns the `componentize-py` executable.
pub fn ensure_componentize_py() -> anyhow::Result<PathBuf> {
    let python = crate::python::ensure("plugin-venv", COMPONENTIZE_PY, "Python plugin builds")?;
    Ok(python.with_file_name("componentize-py"))
}

/// Builds a Python plugin folder into `target/plugin-build/<name>.wasm`,
/// unless the stamp says its inputs (the plugin's `.py` files other than
/// tests, the WIT, the componentize-py pin) are unchanged.
fn build_python(root: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("plugin folder without a name")?
        .replace('-', "_");
    let build_dir = root.join("target/plugin-build");
    let wasm = build_dir.join(format!("{name}.wasm"));
    let stamp_file = build_dir.join(format!("{name}.stamp"));
    let stamp = python_stamp(root, dir)?;
    if wasm.is_file() && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        util::step(&format!(
            "{name}: Python plugin inputs unchanged, keeping {}",
            wasm.display()
        ));
        return Ok(wasm);
    }
    let tool = ensure_componentize_py()?;
    std::fs::create_dir_all(&build_dir)?;
    util::step(&format!(
        "building the Python plugin {} with {COMPONENTIZE_PY}",
        dir.display()
    ));
    Command::new(&tool)
        .arg("-d")
        .arg(root.join("tools-wit/wit"))
        .args(["-w", "tool", "componentize", PYTHON_APP, "-p", "."])
        .arg("-o")
        .arg(&wasm)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // stdout belongs to the MCP server under `cargo xtask run`.
        .stdout(std::io::stderr())
        .run()?;
    std::fs::write(&stamp_file, stamp)?;
    Ok(wasm)
}

/// Hex sha256 over the componentize-py pin, the WIT files and the plugin's
/// non-test `.py` files (names and contents, in name order).
fn python_stamp(root: &Path, dir: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    for d in [root.join("tools-wit/wit"), dir.to_path_buf()] {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let input =
                (file.ends_with(".py") && !file.starts_with("test_")) || file.ends_with(".wit");
            if path.is_file() && input {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hash = Sha256::new();
    hash.update(COMPONENTIZE_PY.as_bytes());
    for path in files {
        hash.update(
            path.strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update([0]);
        hash.update(std::fs::read(&path)?);
        hash.update([0]);
    }
    Ok(hex::encode(hash.finalize()))
}

/// `cargo xtask build-plugin PATH --out DIR`: builds the plugin at PATH (a
/// Rust crate or a Python app folder, with its `tool.toml`) and writes
/// `DIR/<name>.wasm` + `DIR/<name>.toml` with the sha256 pinned.
pub fn build_plugin(path: &Path, out: &Path) -> anyhow::Result<()> {
    let root = util::workspace_root();
    let path = std::path::absolute(path)?;
    let out = std::path::absolute(out)?;
    let wasm = match kind_of(&path) {
        Some(Kind::Rust) => build_rust(&root, &path)?,
        Some(Kind::Python) => build_python(&root, &path)?,
        None => bail!(
            "{} is not a plugin folder: it needs a tool.toml next to a Cargo.toml (Rust) or an app.py (Python); `cargo xtask new-tool NAME` makes one",
            path.display()
        ),
    };
    let name = component::stage(&path, &wasm, &out)?;
    let scopes = manifest_scopes(&path)?;
    let list: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
    let size = std::fs::metadata(&wasm)?.len();
    util::step(&format!(
        "wrote {}/{name}.wasm ({} KiB) and {name}.toml (sha256 pinned)",
        out.display(),
        size / 1024
    ));
    println!(
        "Next: grant the plugin its scopes in {grants} (the operator decides; without a grant it loads with none):\n\
         \n  [tools]\n  {name} = [{list}]\n\
         \nthen check and serve the folder:\n\
         \n  omniroute-mcp plugins verify {dir}\n  omniroute-mcp --plugins {dir}\n  omniroute-mcp plugins list --plugins {dir}",
        grants = out.join("grants.toml").display(),
        list = list.join(", "),
        dir = out.display(),
    );
    Ok(())
}

/// Builds a Rust plugin crate (in or outside the repo) for wasm32-wasip2,
/// sharing `target/components` so the SDK and its dependencies compile once.
fn build_rust(root: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    component::ensure_wasm_target()?;
    let target_dir = root.join("target/components");
    let manifest = dir.join("Cargo.toml");
    util::step(&format!(
        "building {} (wasm32-wasip2, release)",
        dir.display()
    ));
    util::cargo(&["build", "--release", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .run()?;
    component::release_wasm(root, dir)
}

/// Part of `cargo xtask test`: the Python plugins' unit tests (plain
/// python3), then a tool freshly generated by `new-tool`, tested natively,
/// built for wasm32-wasip2 and staged with a pinned manifest.
pub fn test(root: &Path) -> anyhow::Result<()> {
    let python3 = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    for dir in example_plugins(root)? {
        if let Some(Kind::Python) = kind_of(&dir) {
            util::step(&format!("Python plugin unit tests ({})", dir.display()));
            Command::new(&python3)
                .args(["-m", "unittest", "-v"])
                .current_dir(&dir)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .run()?;
        }
    }
    util::step("new-tool template: generate, test, build, stage");
    let check = root.join("target/new-tool-check");
    let crate_dir = check.join("template_check");
    if crate_dir.exists() {
        std::fs::remove_dir_all(&crate_dir)?;
    }
    crate::new_tool::generate(root, "template_check", &crate_dir)?;
    util::cargo(&["test", "--target-dir"])
        .arg(root.join("target/components"))
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .run()?;
    build_plugin(&crate_dir, &check.join("plugins"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_list_every_plugin_with_its_scopes() {
        let text = grants_toml(&[
            ("rank_combos".into(), vec!["read:combos".into()]),
            (
                "two".into(),
                vec!["read:health".into(), "read:usage".into()],
            ),
        ]);
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            parsed["tools"]["two"].as_array().unwrap().len(),
            2,
            "{text}"
        );
        assert!(text.contains("rank_combos = [\"read:combos\"]\n"));
    }
}
