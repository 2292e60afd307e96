//! The tenants file as the HTTP transport sees it: reloaded without a
//! restart when the file changes (checked every [`POLL`]) or on SIGHUP, so a
//! removed tenant, token or OAuth mapping is refused within seconds. A file
//! that no longer parses keeps the previous tenants and logs why.
//!
//! Limits' counters start afresh for the reloaded tenants; live sessions stay
//! with their principal id.

use super::tenants::Tenants;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often the file's size and modification time are looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// The current tenants, swapped whole on reload.
#[derive(Debug)]
pub struct LiveTenants {
    current: RwLock<Arc<Tenants>>,
    path: Option<PathBuf>,
}

/// What the watcher compares to notice an edit (including a rename over the file).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

impl LiveTenants {
    /// Tenants that never change (tests, embedding).
    pub fn fixed(tenants: Tenants) -> LiveTenants {
        LiveTenants { current: RwLock::new(Arc::new(tenants)), path: None }
    }

    /// Tenants loaded from `path`, reloaded by [`LiveTenants::watch`].
    pub fn from_file(tenants: Tenants, path: PathBuf) -> LiveTenants {
        LiveTenants { current: RwLock::new(Arc::new(tenants)), path: Some(path) }
    }

    /// The tenants now.
    pub fn current(&self) -> Arc<Tenants> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the file again; on success the new tenants replace the old.
    pub fn reload(&self, why: &str) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        let tenants = Tenants::load(path)?;
        if let Some(oauth) = tenants.oauth() {
            oauth.warm_up();
        }
        tracing::info!(tenants = tenants.len(), oauth = tenants.oauth().is_some(), "reloaded the tenants file ({why})");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tenants);
        Ok(())
    }

    /// Reloads on every change of the file and on SIGHUP, until `stop`.
    pub fn watch(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(path) = self.path.clone() else { return };
        let live = self.clone();
        tokio::spawn(async move {
            let mut last = stamp(&path);
            let mut hangup = crate::hangup::Hangup::listen("the tenants file");
            loop {
                let why = tokio::select! {
                    _ = stop.cancelled() => return,
                    () = hangup.received() => "SIGHUP",
                    _ = tokio::time::sleep(POLL) => {
                        let now = stamp(&path);
                        if now == last || now.is_none() {
                            continue;
                        }
                        "the file changed"
                    }
                };
                last = stamp(&path);
                if let Err(e) = live.reload(why) {
                    tracing::error!("{e}; still serving the previous tenants");
                }
            }
        });
    }
}
