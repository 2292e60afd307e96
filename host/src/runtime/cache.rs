//! Precompiled components on disk, keyed by the engine's compatibility hash
//! and the component's sha256, so startup maps machine code instead of
//! running Cranelift, and the validated `describe()` answers beside them.
//!
//! A `.cwasm` is native code the server runs and a `.describe.json` is what
//! agents read about a tool, so neither is trusted for its name alone:
//!
//! * the cache folder is private: created `0700`; an existing one must be
//!   owned by the server's user (else the cache is not used at all) and is
//!   made `0700` again if it was opened up;
//! * every entry carries an HMAC-SHA256, under a key kept in the cache
//!   folder (`cache.key`, `0600`), over the entry kind, the engine's
//!   compatibility hash, the component's sha256 and the entry's bytes. An
//!   entry is read whole, checked, then used; one that fails the check, was
//!   made for another component or engine, or is corrupt is rebuilt and the
//!   event is logged.

use hmac::{Hmac, Mac};
use sha2::Sha256;
#[cfg(unix)]
use std::fs::Permissions;
use std::hash::{Hash, Hasher};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
    /// Cached entry unusable (corrupt, tampered with, other engine): rebuilt.
    Rebuilt,
    /// No usable cache directory: compiled in memory only.
    Uncached,
}

/// Starts every `.cwasm`: the format, then the 32-byte MAC, then the code.
const CWASM_MAGIC: &[u8; 8] = b"ORMCPc1\n";
const MAC_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";

type HmacSha256 = Hmac<Sha256>;

/// The cache directory for one engine configuration.
#[derive(Clone)]
pub struct CompiledCache {
    dir: Option<PathBuf>,
    key: [u8; MAC_LEN],
    engine: String,
}

impl std::fmt::Debug for CompiledCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCache").field("dir", &self.dir).field("key", &"<redacted>").finish()
    }
}

/// The `.describe.json` entry: the answer and its MAC.
#[derive(serde::Serialize, serde::Deserialize)]
struct DescribeEntry {
    mac: String,
    describe: String,
}

impl CompiledCache {
    /// `root` is `<data dir>/cache`; entries go under a folder named after the
    /// engine hash, so a wasmtime upgrade or config change starts fresh.
    /// When the folder cannot be made private, compiled code is kept in
    /// memory only, and the reason is logged.
    pub fn new(engine: &Engine, root: Option<&Path>) -> Self {
        let engine_hash = engine_key(engine);
        let opened = root.map(|root| open_private(root, &engine_hash));
        match opened {
            Some(Ok((dir, key))) => Self { dir: Some(dir), key, engine: engine_hash },
            Some(Err(reason)) => {
                tracing::warn!("not using the precompiled cache: {reason}; components are compiled in memory at each start");
                Self { dir: None, key: [0; MAC_LEN], engine: engine_hash }
            }
            None => Self { dir: None, key: [0; MAC_LEN], engine: engine_hash },
        }
    }

    /// The folder entries live in, if the cache is in use.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The MAC state for one entry: key, entry kind, engine, component.
    fn keyed(&self, kind: &str, sha256: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        for part in [b"omniroute-mcp cache v1\0".as_slice(), kind.as_bytes(), b"\0", self.engine.as_bytes(), b"\0", sha256.as_bytes(), b"\0"] {
            mac.update(part);
        }
        mac
    }

    fn mac(&self, kind: &str, sha256: &str, bytes: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.keyed(kind, sha256);
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    fn verify(&self, kind: &str, sha256: &str, bytes: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.keyed(kind, sha256);
        mac.update(bytes);
        mac.verify_slice(tag).is_ok()
    }

    /// Loads `wasm` (whose sha256 is `sha256`, lowercase hex) as a component.
    pub fn load(&self, engine: &Engine, wasm: &[u8], sha256: &str) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((super::compiler::compile(engine, wasm)?.1, CacheOutcome::Uncached));
        };
        let entry = dir.join(format!("{sha256}.cwasm"));
        let mut outcome = CacheOutcome::Compiled;
        match std::fs::read(&entry) {
            Ok(bytes) => match self.checked_code(&bytes, sha256) {
                // SAFETY: these bytes carry a valid MAC under the cache key
                // for this component and this engine's compatibility hash:
                // this server produced them with `Engine::precompile_component`.
                // wasmtime still checks the header and refuses mismatches.
                Ok(code) => match unsafe { Component::deserialize(engine, code) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => {
                        tracing::warn!(path = %entry.display(), error = %e, "precompiled cache entry unusable; rebuilding it");
                        outcome = CacheOutcome::Rebuilt;
                    }
                },
                Err(why) => {
                    tracing::warn!(path = %entry.display(), reason = why, "precompiled cache entry unusable; rebuilding it");
                    outcome = CacheOutcome::Rebuilt;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %entry.display(), error = %e, "precompiled cache entry unreadable; rebuilding it");
                outcome = CacheOutcome::Rebuilt;
            }
        }
        let (code, component) = super::compiler::compile(engine, wasm)?;
        let mut file = Vec::with_capacity(CWASM_MAGIC.len() + MAC_LEN + code.len());
        file.extend_from_slice(CWASM_MAGIC);
        file.extend_from_slice(&self.mac("cwasm", sha256, &code));
        file.extend_from_slice(&code);
        if let Err(e) = write_atomically(dir, &entry, &file) {
            tracing::warn!(path = %entry.display(), error = %e, "could not write the precompiled cache; continuing without it");
        }
        Ok((component, outcome))
    }

    /// The code part of a `.cwasm` whose MAC checks out.
    fn checked_code<'b>(&self, bytes: &'b [u8], sha256: &str) -> Result<&'b [u8], &'static str> {
        let rest = bytes.strip_prefix(CWASM_MAGIC.as_slice()).ok_or("not in this server's cache format")?;
        if rest.len() < MAC_LEN {
            return Err("truncated");
        }
        let (tag, code) = rest.split_at(MAC_LEN);
        if self.verify("cwasm", sha256, code, tag) {
            Ok(code)
        } else {
            Err("its MAC does not match: it was changed, or made for another component or engine")
        }
    }

    /// The `describe()` output of component `sha256`, cached by [`Self::store_describe`]
    /// after the host validated it against a manifest. With it, a server
    /// starts without instantiating (or even mapping) the component.
    pub fn describe(&self, sha256: &str) -> Option<String> {
        let dir = self.dir.as_ref()?;
        let path = dir.join(format!("{sha256}.describe.json"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cached describe() unreadable; running describe() again");
                return None;
            }
        };
        let checked = serde_json::from_str::<DescribeEntry>(&text).ok().filter(|entry| {
            hex::decode(&entry.mac).is_ok_and(|tag| self.verify("describe", sha256, entry.describe.as_bytes(), &tag))
        });
        if checked.is_none() {
            tracing::warn!(path = %path.display(), "cached describe() refused (changed, or made for another component or engine); running describe() again");
        }
        checked.map(|entry| entry.describe)
    }

    /// Keeps a validated `describe()` output for the next start.
    pub fn store_describe(&self, sha256: &str, json: &str) {
        let Some(dir) = &self.dir else { return };
        let entry = dir.join(format!("{sha256}.describe.json"));
        let record = DescribeEntry { mac: hex::encode(self.mac("describe", sha256, json.as_bytes())), describe: json.to_owned() };
        let text = serde_json::to_string(&record).unwrap_or_default();
        if let Err(e) = write_atomically(dir, &entry, text.as_bytes()) {
            tracing::warn!(path = %entry.display(), error = %e, "could not cache describe(); the next start runs it again");
        }
    }
}

/// Makes `root` and its engine folder private and returns the entry folder
/// and the MAC key, or why the cache cannot be trusted.
fn open_private(root: &Path, engine_hash: &str) -> Result<(PathBuf, [u8; MAC_LEN]), String> {
    private_dir(root)?;
    let dir = root.join(format!("wasmtime-{engine_hash}"));
    private_dir(&dir)?;
    let key = cache_key(&root.join(KEY_FILE))?;
    Ok((dir, key))
}

/// Creates `dir` as `0700`, or checks an existing one: owned by this user
/// (else refused) and not open to others (else closed again, with a warning).
#[cfg(unix)]
fn private_dir(dir: &Path) -> Result<(), String> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder (a link or a file is not accepted)", dir.display()));
    }
    check_owner(dir, &meta)?;
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, Permissions::from_mode(0o700))
            .map_err(|e| format!("{} is open to other users (mode {:o}) and cannot be made private: {e}", dir.display(), meta.mode() & 0o777))?;
        tracing::warn!(path = %dir.display(), mode = format!("{:o}", meta.mode() & 0o777), "the precompiled cache folder was open to other users; made it private (0700). Its entries are checked before use");
    }
    Ok(())
}

/// Creates `dir`; on Windows the data folder lives under the user's own
/// profile (`%APPDATA%`), whose ACL already keeps other users out, and
/// every entry is still checked by its MAC before use. A link or a file in
/// its place is refused as on Unix.
#[cfg(not(unix))]
fn private_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder (a link or a file is not accepted)", dir.display()));
    }
    Ok(())
}

#[cfg(unix)]
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to user id {}, not to this server's user ({me}); use a cache folder of your own (--cache-dir)",
            path.display(),
            meta.uid()
        ));
    }
    Ok(())
}

/// Whether the key file is this user's alone: owned by them, mode 600.
#[cfg(unix)]
fn check_key_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    check_owner(path, meta)?;
    if !meta.is_file() || meta.mode() & 0o077 != 0 {
        return Err(format!("{} must be a file readable only by this user (mode 600)", path.display()));
    }
    Ok(())
}

/// On Windows: a plain file (the folder's ACL is the user's profile's).
#[cfg(not(unix))]
fn check_key_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err(format!("{} must be a file", path.display()));
    }
    Ok(())
}

/// Reads the cache key, creating it (random, `0600`) the first time. Two
/// servers starting at once agree on one key: it is linked into place only
/// if no key exists yet.
fn cache_key(path: &Path) -> Result<[u8; MAC_LEN], String> {
    for _ in 0..2 {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                check_key_file(path, &meta)?;
                let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                return <[u8; MAC_LEN]>::try_from(bytes.as_slice())
                    .map_err(|_| format!("{} is not a cache key ({} bytes); delete it to start a new cache", path.display(), bytes.len()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(path)?,
            Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
        }
    }
    Err(format!("cannot create {}", path.display()))
}

fn create_key(path: &Path) -> Result<(), String> {
    let mut key = [0u8; MAC_LEN];
    getrandom::fill(&mut key).map_err(|e| format!("cannot read random bytes for the cache key: {e}"))?;
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", tmp.display()));
    }
    // Fails if another server linked its key first; then that key is read.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

fn write_atomically(dir: &Path, entry: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        entry.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(&tmp).and_then(|mut f| f.write_all(bytes))?;
    std::fs::rename(&tmp, entry)
}

/// A stable hex key for the engine's compatibility hash.
pub(super) fn engine_key(engine: &Engine) -> String {
    // DefaultHasher::new() uses fixed keys; the value only has to be stable
    // for one build of this binary, and the hash covers the wasmtime version.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

// The tests check Unix modes and owners.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A minimal component (no imports, no exports) and its sha256.
    fn component() -> (Vec<u8>, String) {
        let wasm = wat::parse_str("(component (core module))").unwrap();
        let sha = hex::encode(<Sha256 as sha2::Digest>::digest(&wasm));
        (wasm, sha)
    }

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("omniroute-mcp-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn entries_are_private_and_a_tampered_cwasm_is_rebuilt() {
        let (engine, (wasm, sha)) = (engine(), component());
        let root = temp("tamper");
        let cache = CompiledCache::new(&engine, Some(&root));
        let dir = cache.dir().unwrap().to_path_buf();
        assert_eq!((mode(&root), mode(&dir), mode(&root.join(KEY_FILE))), (0o700, 0o700, 0o600));
        assert_eq!(cache.load(&engine, &wasm, &sha).unwrap().1, CacheOutcome::Compiled);
        let entry = dir.join(format!("{sha}.cwasm"));
        assert_eq!(mode(&entry), 0o600);
        assert_eq!(cache.load(&engine, &wasm, &sha).unwrap().1, CacheOutcome::Hit);

        // One flipped byte of code, then a valid entry of another component under this name.
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&entry, &bytes).unwrap();
        assert_eq!(cache.load(&engine, &wasm, &sha).unwrap().1, CacheOutcome::Rebuilt);
        assert_eq!(cache.load(&engine, &wasm, &sha).unwrap().1, CacheOutcome::Hit);
        let other = "0".repeat(64);
        cache.load(&engine, &wasm, &other).unwrap();
        std::fs::copy(dir.join(format!("{other}.cwasm")), &entry).unwrap();
        assert_eq!(cache.load(&engine, &wasm, &sha).unwrap().1, CacheOutcome::Rebuilt, "an entry is bound to its component");
        // A raw precompiled file (what the cache held before it was authenticated).
        std::fs::write(&entry, engine.precompile_component(&wasm).unwrap()).unwrap();
        assert_eq!(cache.load(&engine, &wasm, &sha).unwrap().1, CacheOutcome::Rebuilt);
    }

    #[test]
    fn a_tampered_describe_is_not_served() {
        let engine = engine();
        let root = temp("describe");
        let cache = CompiledCache::new(&engine, Some(&root));
        let sha = "a".repeat(64);
        cache.store_describe(&sha, r#"{"name":"t"}"#);
        assert_eq!(cache.describe(&sha).as_deref(), Some(r#"{"name":"t"}"#));
        let path = cache.dir().unwrap().join(format!("{sha}.describe.json"));
        let forged = std::fs::read_to_string(&path).unwrap().replace(r#"\"t\""#, r#"\"evil\""#);
        std::fs::write(&path, forged).unwrap();
        assert_eq!(cache.describe(&sha), None);
        std::fs::write(&path, r#"{"name":"t"}"#).unwrap();
        assert_eq!(cache.describe(&sha), None, "a plain describe answer without a MAC is refused");
        // Another key (another cache) does not accept this one's entries.
        cache.store_describe(&sha, r#"{"name":"t"}"#);
        std::fs::remove_file(root.join(KEY_FILE)).unwrap();
        let fresh = CompiledCache::new(&engine, Some(&root));
        assert_eq!(fresh.describe(&sha), None);
    }

    #[test]
    fn an_open_folder_is_made_private_and_a_foreign_one_is_not_used() {
        let engine = engine();
        let root = temp("open");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o777)).unwrap();
        let cache = CompiledCache::new(&engine, Some(&root));
        assert!(cache.dir().is_some());
        assert_eq!(mode(&root), 0o700);

        let foreign = temp("foreign");
        std::fs::create_dir_all(&foreign).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            panic!("this test gives the folder to another user and needs root; run the host tests as root (CI does)");
        }
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        let cache = CompiledCache::new(&engine, Some(&foreign));
        assert!(cache.dir().is_none(), "a cache folder owned by another user must not be used");
        let (wasm, sha) = component();
        assert_eq!(cache.load(&engine, &wasm, &sha).unwrap().1, CacheOutcome::Uncached);
        assert!(std::fs::read_dir(&foreign).unwrap().next().is_none(), "nothing was written into it");
    }
}
