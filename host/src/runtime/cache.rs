//! Precompiled components on disk, keyed by the engine's compatibility hash
//! and the component's sha256, so startup maps machine code instead of
//! running Cranelift. A corrupt or stale entry is rebuilt with a warning.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled code came from, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Not cached yet: compiled and stored.
    Compiled,
    /// Cached entry unusable (corrupt, truncated, other engine): rebuilt.
    Rebuilt,
    /// No cache directory configured: compiled in memory only.
    Uncached,
}

/// The cache directory for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: Option<PathBuf>,
}

impl CompiledCache {
    /// `root` is `<data dir>/cache`; entries go under a folder named after the
    /// engine hash, so a wasmtime upgrade or config change starts fresh.
    pub fn new(engine: &Engine, root: Option<&Path>) -> Self {
        let dir = root.map(|root| root.join(format!("wasmtime-{}", engine_key(engine))));
        Self { dir }
    }

    /// The folder entries live in, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Loads `wasm` (whose sha256 is `sha256`, lowercase hex) as a component.
    pub fn load(&self, engine: &Engine, wasm: &[u8], sha256: &str) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Uncached));
        };
        let entry = dir.join(format!("{sha256}.cwasm"));
        let mut outcome = CacheOutcome::Compiled;
        if entry.exists() {
            // SAFETY: the file was written by `Engine::precompile_component`
            // of an engine with the same compatibility hash (the folder name),
            // in a directory only this server writes. wasmtime still checks
            // the header and refuses mismatches, which we treat as stale.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %entry.display(), error = %e, "precompiled cache entry unusable; rebuilding it");
                    outcome = CacheOutcome::Rebuilt;
                }
            }
        }
        let bytes = engine.precompile_component(wasm)?;
        if let Err(e) = write_atomically(dir, &entry, &bytes) {
            tracing::warn!(path = %entry.display(), error = %e, "could not write the precompiled cache; continuing without it");
        }
        // SAFETY: `bytes` was produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &bytes)? };
        Ok((component, outcome))
    }
}

impl CompiledCache {
    /// The `describe()` output of component `sha256`, cached by [`Self::store_describe`]
    /// after the host validated it against a manifest. With it, a server
    /// starts without instantiating (or even mapping) the component.
    pub fn describe(&self, sha256: &str) -> Option<String> {
        let dir = self.dir.as_ref()?;
        std::fs::read_to_string(dir.join(format!("{sha256}.describe.json"))).ok()
    }

    /// Keeps a validated `describe()` output for the next start.
    pub fn store_describe(&self, sha256: &str, json: &str) {
        let Some(dir) = &self.dir else { return };
        let entry = dir.join(format!("{sha256}.describe.json"));
        if let Err(e) = write_atomically(dir, &entry, json.as_bytes()) {
            tracing::warn!(path = %entry.display(), error = %e, "could not cache describe(); the next start runs it again");
        }
    }
}

fn write_atomically(dir: &Path, entry: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        entry.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, entry)
}

/// A stable hex key for the engine's compatibility hash.
fn engine_key(engine: &Engine) -> String {
    // DefaultHasher::new() uses fixed keys; the value only has to be stable
    // for one build of this binary, and the hash covers the wasmtime version.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
