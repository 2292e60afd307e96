//! The npm packages, the way Rust tools ship on npm: a small launcher package
//! (`omniroute-mcp`, with the `omniroute-mcp` bin) that lists one package per
//! platform as optional dependencies; npm installs only the one whose `os`
//! and `cpu` match, and nothing is downloaded at install time. Both are
//! packed with `npm pack`.

use super::{Meta, platform::Platform};
use crate::util::RunExt;
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The launcher package's name (and the command it installs).
pub const LAUNCHER: &str = "omniroute-mcp";

/// The package holding the binary of `platform`.
pub fn platform_package(platform: &Platform) -> String {
    format!("{LAUNCHER}-{}", platform.npm_name())
}

/// Writes and packs the launcher for `platforms` (those built); returns the tarball.
pub fn launcher(meta: &Meta, platforms: &[Platform], work: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let dir = fresh(&work.join(LAUNCHER))?;
    std::fs::create_dir_all(dir.join("bin"))?;
    let optional: serde_json::Map<_, _> = platforms
        .iter()
        .map(|p| (platform_package(p), json!(meta.version)))
        .collect();
    let package = json!({
        "name": LAUNCHER,
        "version": meta.version,
        "description": meta.description,
        "license": meta.license,
        "repository": meta.repository,
        "bin": { LAUNCHER: "bin/omniroute-mcp.js" },
        "files": ["bin/", "README.md", "LICENSE"],
        "engines": { "node": ">=18" },
        "optionalDependencies": optional,
        "keywords": ["mcp", "model-context-protocol", "omniroute"],
    });
    write_json(&dir.join("package.json"), &package)?;
    let table: serde_json::Map<_, _> = platforms
        .iter()
        .map(|p| (p.npm_name(), json!({ "package": platform_package(p), "exe": format!("omniroute-mcp{}", p.exe_suffix) })))
        .collect();
    let script = LAUNCHER_JS
        .replace("__PLATFORMS__", &serde_json::to_string_pretty(&table)?)
        .replace("__REPOSITORY__", &meta.repository);
    std::fs::write(dir.join("bin/omniroute-mcp.js"), script)?;
    set_mode(&dir.join("bin/omniroute-mcp.js"), 0o755)?;
    copy_docs(meta, &dir)?;
    pack(&dir, out)
}

/// Writes and packs the package holding `binary` for `platform`; returns the tarball.
pub fn platform(meta: &Meta, platform: &Platform, binary: &Path, work: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let name = platform_package(platform);
    let dir = fresh(&work.join(&name))?;
    std::fs::create_dir_all(dir.join("bin"))?;
    let mut package = json!({
        "name": name,
        "version": meta.version,
        "description": format!("The omniroute-mcp binary for {}; installed by the omniroute-mcp package", platform.npm_name()),
        "license": meta.license,
        "repository": meta.repository,
        "os": [platform.npm_os],
        "cpu": [platform.npm_cpu],
        "files": ["bin/", "README.md", "LICENSE"],
        "preferUnplugged": true,
    });
    if !platform.is_windows() {
        // The binary links glibc dynamically; npm skips it on musl systems.
        package["libc"] = json!(["glibc"]);
    }
    write_json(&dir.join("package.json"), &package)?;
    let exe = dir.join("bin").join(format!("omniroute-mcp{}", platform.exe_suffix));
    std::fs::copy(binary, &exe).with_context(|| format!("copying {}", binary.display()))?;
    set_mode(&exe, 0o755)?;
    copy_docs(meta, &dir)?;
    pack(&dir, out)
}

fn fresh(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

fn copy_docs(meta: &Meta, dir: &Path) -> anyhow::Result<()> {
    std::fs::copy(&meta.readme, dir.join("README.md"))?;
    if let Some(license) = &meta.license_file {
        std::fs::copy(license, dir.join("LICENSE"))?;
    }
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("writing {}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    let _ = (path, mode);
    Ok(())
}

/// `npm pack` of `dir` into `out`; returns the tarball's path.
fn pack(dir: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let listing = std::process::Command::new("npm")
        .args(["pack", "--json", "--pack-destination"])
        .arg(out)
        .current_dir(dir)
        .output_text()
        .context("npm is needed to pack the npm packages")?;
    let packed: serde_json::Value = serde_json::from_str(&listing).context("reading `npm pack --json`")?;
    let file = packed[0]["filename"].as_str().context("`npm pack --json` names no file")?;
    Ok(out.join(file))
}

/// The launcher: finds the platform package npm installed and runs its
/// binary with the same arguments and stdio; an unsupported platform gets
/// the list of supported ones.
const LAUNCHER_JS: &str = r#"#!/usr/bin/env node
// omniroute-mcp launcher: runs the binary from the platform package that npm
// installed beside this one (an optional dependency chosen by os/cpu; nothing
// is downloaded at install time). stdin/stdout/stderr are the binary's own.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const os = require("node:os");

const PLATFORMS = __PLATFORMS__;

const key = `${process.platform}-${process.arch}`;
const entry = PLATFORMS[key];
if (!entry) {
  console.error(
    `omniroute-mcp: there is no build for ${key}. Builds exist for: ${Object.keys(PLATFORMS).join(", ")}. ` +
      `Build it from source instead: __REPOSITORY__ (cargo xtask build --release).`
  );
  process.exit(1);
}

let binary;
try {
  binary = path.join(path.dirname(require.resolve(`${entry.package}/package.json`)), "bin", entry.exe);
} catch (e) {
  console.error(
    `omniroute-mcp: the package ${entry.package}, which holds the binary for ${key}, is not installed. ` +
      `Reinstall omniroute-mcp with optional dependencies enabled (not --omit=optional or --no-optional).`
  );
  process.exit(1);
}

const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", windowsHide: true });
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("error", (e) => {
  console.error(`omniroute-mcp: cannot start ${binary}: ${e.message}`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  process.exit(signal ? 128 + (os.constants.signals[signal] || 1) : code);
});
"#;
