//! A tools folder opened as a capability (cap-std): every file a manifest
//! names is resolved inside the folder, so `..`, absolute paths and symlinks
//! that lead out are refused by construction, not by string checks alone.
//! Built-in and plugin folders are both read through this one type.

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The largest manifest read; a manifest is a few hundred bytes.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// The largest component read (a Python component is about 20 MB).
pub const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;
/// The operator's grants file may sit in a plugin folder; it is not a manifest.
pub const GRANTS_FILE_NAME: &str = "grants.toml";

/// An open tools folder.
pub struct ToolFolder {
    path: PathBuf,
    dir: Dir,
}

/// One file's identity for change detection: name, size, modification time.
pub type FileStamp = (String, u64, Option<SystemTime>);

impl ToolFolder {
    /// Opens `path`; only this folder and what is below it can be read.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        Ok(Self { path: path.to_path_buf(), dir })
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifests (`*.toml` files other than `grants.toml` and hidden
    /// files), sorted by name so loading order is stable.
    pub fn manifests(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in self.dir.entries()? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with('.') || name == GRANTS_FILE_NAME || !name.ends_with(".toml") {
                continue;
            }
            if entry.file_type()?.is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The manifest's text, at most [`MAX_MANIFEST_BYTES`].
    pub fn read_manifest(&self, name: &str) -> Result<String, String> {
        let bytes = self.read_capped(name, MAX_MANIFEST_BYTES)?;
        String::from_utf8(bytes).map_err(|_| format!("manifest {name} is not UTF-8 text"))
    }

    /// The component's bytes, at most [`MAX_COMPONENT_BYTES`].
    pub fn read_component(&self, name: &str) -> Result<Vec<u8>, String> {
        self.read_capped(name, MAX_COMPONENT_BYTES)
    }

    fn read_capped(&self, name: &str, cap: u64) -> Result<Vec<u8>, String> {
        let file = self.dir.open(name).map_err(|e| {
            format!(
                "cannot open {name} inside {}: {e} (files must be inside the folder; `..`, absolute paths and links out of it are refused)",
                self.path.display()
            )
        })?;
        let len = file.metadata().map_err(|e| format!("cannot read {name}: {e}"))?.len();
        if len > cap {
            return Err(format!("{name} is {len} bytes, over the {cap}-byte limit for this kind of file"));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        if bytes.len() as u64 > cap {
            return Err(format!("{name} grew past the {cap}-byte limit while being read"));
        }
        Ok(bytes)
    }

    /// Name, size and mtime of every entry, sorted: a cheap way to notice
    /// that something in the folder changed.
    pub fn stamps(&self) -> std::io::Result<Vec<FileStamp>> {
        let mut out = Vec::new();
        for entry in self.dir.entries()? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            out.push((name, meta.len(), meta.modified().ok().map(|t| t.into_std())));
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("omniroute-mcp-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lists_manifests_but_not_grants_or_hidden_files() {
        let dir = temp("list");
        for f in ["b.toml", "a.toml", "grants.toml", ".reload", "a.wasm"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        std::fs::create_dir(dir.join("sub.toml")).unwrap();
        let folder = ToolFolder::open(&dir).unwrap();
        assert_eq!(folder.manifests().unwrap(), vec!["a.toml", "b.toml"]);
    }

    #[test]
    fn refuses_paths_that_leave_the_folder() {
        let root = temp("escape");
        let inner = root.join("plugins");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::write(root.join("secret.wasm"), "outside").unwrap();
        std::os::unix::fs::symlink(root.join("secret.wasm"), inner.join("link.wasm")).unwrap();
        std::fs::write(inner.join("ok.wasm"), "inside").unwrap();
        let folder = ToolFolder::open(&inner).unwrap();
        assert_eq!(folder.read_component("ok.wasm").unwrap(), b"inside");
        for name in ["../secret.wasm", "link.wasm", "/etc/passwd", root.join("secret.wasm").to_str().unwrap()] {
            let err = folder.read_component(name).unwrap_err();
            assert!(err.contains("inside the folder"), "{name}: {err}");
        }
    }

    #[test]
    fn caps_file_sizes() {
        let dir = temp("cap");
        std::fs::write(dir.join("big.toml"), vec![b'#'; MAX_MANIFEST_BYTES as usize + 1]).unwrap();
        let folder = ToolFolder::open(&dir).unwrap();
        let err = folder.read_manifest("big.toml").unwrap_err();
        assert!(err.contains("limit"), "{err}");
    }
}
