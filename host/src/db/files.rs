//! Private files: the data folder is 0700 and every database file in it
//! (with its `-wal` and `-shm` companions) 0600, so no other local user can
//! read who called what, or plant files the server would trust.
//!
//! On Windows there are no modes: the data folder is under the user's
//! profile (`%APPDATA%`), whose ACL already keeps other users out, so
//! the folder and the file are only created.

use std::io;
#[cfg(unix)]
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

#[cfg(unix)]
/// Mode of the data folder and of any folder holding a database.
pub const DIR_MODE: u32 = 0o700;
#[cfg(unix)]
/// Mode of every database file.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) and makes it 0700 when this user owns
/// it. A folder owned by someone else is left alone and reported, since
/// changing it could break that user's setup.
#[cfg(unix)]
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.uid() != current_uid() {
        tracing::warn!(dir = %dir.display(), owner = meta.uid(), "the folder belongs to another user; its permissions are left as they are");
        return Ok(());
    }
    if meta.permissions().mode() & 0o777 != DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Makes sure the database file exists with mode 0600 before SQLite opens it
/// (SQLite gives its `-wal` and `-shm` files the database file's mode), and
/// tightens an existing file and its companions written by an older release.
#[cfg(unix)]
pub fn private_db_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).mode(FILE_MODE).open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = with_suffix(path, suffix);
        match std::fs::metadata(&file) {
            Ok(meta) if meta.uid() == current_uid() && meta.permissions().mode() & 0o777 != FILE_MODE => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(FILE_MODE))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Creates `dir` and missing parents (Windows: no modes to set).
#[cfg(not(unix))]
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates the database file and its folder (Windows: no modes to set).
#[cfg(not(unix))]
pub fn private_db_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path).map(drop)
}

/// Creates a new private file (0600 on Unix) for appending; fails if `path` exists.
pub fn create_private_file(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create_new(true).append(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    options.open(path)
}

/// `path` with `suffix` appended to its file name (`audit.sqlite-wal`).
pub fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// This process's effective user id (the owner of the files it creates).
#[cfg(unix)]
fn current_uid() -> u32 {
    // `/proc/self` belongs to the process's effective user.
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn modes_are_private() {
        let dir = std::env::temp_dir().join(format!("omr-files-{}-{}", std::process::id(), crate::db::now_ms()));
        let nested = dir.join("data");
        let db = nested.join("x.sqlite");
        private_db_file(&db).unwrap();
        assert_eq!(std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777, DIR_MODE);
        assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, FILE_MODE);
        // An older, world-readable file and WAL are tightened.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(with_suffix(&db, "-wal"), b"").unwrap();
        std::fs::set_permissions(with_suffix(&db, "-wal"), std::fs::Permissions::from_mode(0o644)).unwrap();
        private_db_file(&db).unwrap();
        assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, FILE_MODE);
        assert_eq!(std::fs::metadata(with_suffix(&db, "-wal")).unwrap().permissions().mode() & 0o777, FILE_MODE);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
