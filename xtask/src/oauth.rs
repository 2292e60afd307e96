//! The real OAuth 2 / OpenID Connect authorization server of the OAuth tests: npm
//! `oauth2-mock-server`, installed once into the cache beside the gateway (same Node 22), and
//! started per test by `tests/oauth/authorization-server.mjs`, which adds the hooks the cases
//! need (audience from `resource`, per-case subjects, expiry, kid; introspection answers).
//!
//! Layout under the cache root:
//!   oauth2-mock-server-<version>/node_modules/oauth2-mock-server   the package
//!   oauth2-mock-server-<version>/.complete                         written last

use crate::gateway::{Installed, Lock, cache_root, run_logged};
use crate::util::step;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Pinned so a new release cannot change what the tests prove overnight.
pub const VERSION: &str = "9.3.0";

/// The environment the OAuth tests read: Node 22 and the package folder.
pub const NODE_VAR: &str = "OMNIROUTE_MCP_NODE";
pub const PACKAGE_VAR: &str = "OAUTH2_MOCK_SERVER_DIR";

/// Installs `oauth2-mock-server@VERSION` if needed; returns its package folder.
pub fn ensure_installed(gateway: &Installed) -> anyhow::Result<PathBuf> {
    let cache = cache_root()?;
    let dir = cache.join(format!("oauth2-mock-server-{VERSION}"));
    let package = dir.join("node_modules").join("oauth2-mock-server");
    let stamp = format!("oauth2-mock-server@{VERSION}");
    let complete = || std::fs::read_to_string(dir.join(".complete")).is_ok_and(|m| m == stamp);
    if complete() {
        return Ok(package);
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create the cache {}", cache.display()))?;
    let _lock = Lock::acquire(&cache.join("oauth-install.lock"), "oauth2-mock-server install", Duration::from_secs(10 * 60))?;
    if complete() {
        return Ok(package);
    }
    step(&format!("installing oauth2-mock-server@{VERSION} (the OAuth tests' authorization server) into {}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("package.json"), "{\n  \"name\": \"omniroute-mcp-oauth-tests\",\n  \"private\": true\n}\n")?;
    let logs = cache.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join("oauth2-mock-server.log");
    let _ = std::fs::remove_file(&log);
    // npm runs under Node 22 (the package's engines field asks for it).
    let node_bin = gateway.node.parent().context("the Node 22 binary has no folder")?.to_path_buf();
    let path = match std::env::var_os("PATH") {
        Some(p) => std::env::join_paths(std::iter::once(node_bin).chain(std::env::split_paths(&p)))?,
        None => node_bin.into_os_string(),
    };
    run_logged(
        Command::new(std::env::var("NPM").unwrap_or_else(|_| "npm".into()))
            .args(["install", &format!("oauth2-mock-server@{VERSION}"), "--no-audit", "--no-fund", "--engine-strict"])
            .env("PATH", &path)
            .env("npm_config_update_notifier", "false")
            .current_dir(&dir),
        &log,
        "npm install oauth2-mock-server",
    )?;
    if !package.join("dist").join("index.mjs").is_file() {
        bail!("npm install produced no {}; see {}", package.join("dist/index.mjs").display(), log.display());
    }
    let tmp = dir.join(".complete.tmp");
    std::fs::write(&tmp, &stamp)?;
    std::fs::rename(&tmp, dir.join(".complete"))?;
    Ok(package)
}
