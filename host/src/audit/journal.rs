//! The audit journal (SQLite): a call's row is appended to this process's
//! journal file, one JSON line in one `write`, before the call is answered,
//! and moved into the audit tables in batches by the writer thread: within
//! 100 ms, or as soon as [`DRAIN_BATCH`] rows wait.
//!
//! Why: committing each row straight into `mcp_tool_audit` wrote seven
//! database pages per call (the row, `sqlite_sequence`, two indexes, the
//! gateway request and its index, the header page) and cost about 106 µs
//! of CPU per call, a third of a list_combos call; journaled, about 31 µs:
//! an append is one `write` of about 600 bytes, and a batch shares its pages.
//!
//! Durability is the one SQLite gives in WAL mode with `synchronous =
//! NORMAL`: an answered call's row survives a killed process (the next
//! process to open the database imports it), only a power loss can lose the
//! newest rows. Rows are chained (`audit verify`) when they are imported.
//!
//! Layout: `<database>.pending/` (0700) holds, per process, `<node>.lock`
//! (locked while its log is open) and `<node>-<seq>.jsonl` files (0600),
//! a new one every [`ROTATE_BYTES`]. The database records how many bytes of
//! each file it holds (`mcp_audit_journal`), in the transaction that
//! imports them, so a file is imported once, whoever imports it: this
//! process, a reader (`omniroute-mcp audit ...`), or the next process after
//! a crash. A file is deleted once imported, by its owner or, after the
//! owner died, by anyone.

use super::sink::Row;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Rows appended since the last drain that make the writer drain now.
pub(super) const DRAIN_BATCH: u64 = 256;
/// A journal file is closed and a new one started past this size.
const ROTATE_BYTES: u64 = 1024 * 1024;
/// The journal files' extension.
const EXTENSION: &str = "jsonl";

/// The folder of `database`'s journal files.
pub(super) fn dir_of(database: &Path) -> PathBuf {
    crate::db::files::with_suffix(database, ".pending")
}

/// This process's journal.
pub(super) struct Journal {
    dir: PathBuf,
    node: String,
    /// Held (locked) while the log is open: its files have a live owner.
    lock: File,
    current: Mutex<Current>,
    /// Bytes appended to this node's files, and the part known imported.
    appended: AtomicU64,
    imported: AtomicU64,
    /// Rows appended, and the part known imported (for the queue depth).
    rows_appended: AtomicU64,
    rows_imported: AtomicU64,
    /// Rows appended since the last drain began.
    since_drain: AtomicU64,
}

struct Current {
    file: File,
    /// The same file, for reading this process's rows without the path.
    reader: Arc<File>,
    name: String,
    seq: u64,
    len: u64,
    /// The log stopped: nothing more is appended.
    closed: bool,
}

/// One journal file found in the folder.
#[derive(Debug, Clone)]
pub(super) struct PendingFile {
    pub path: PathBuf,
    /// The file name, the key of its import offset.
    pub name: String,
    /// The process that writes it.
    pub node: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Journal {
    /// Creates this process's lock and first file under `<database>.pending/`.
    pub(super) fn open(database: &Path) -> Result<Journal, String> {
        let dir = dir_of(database);
        crate::db::files::private_dir(&dir).map_err(|e| format!("cannot create the audit journal folder {}: {e}", dir.display()))?;
        let node = format!("{}-{}", std::process::id(), crate::db::random_hex(6).map_err(|e| e.to_string())?);
        let lock_path = dir.join(format!("{node}.lock"));
        // Locked under a temporary name, then renamed: no other process ever sees this
        // node's lock unlocked (and takes its files for a dead process's).
        let fresh = dir.join(format!("{node}.lock.new"));
        drop(crate::db::files::create_private_file(&fresh).map_err(|e| format!("cannot create {}: {e}", fresh.display()))?);
        // Read and write access (not append-only): Windows locks need one of them.
        let lock = std::fs::OpenOptions::new().read(true).write(true).open(&fresh).map_err(|e| format!("cannot open {}: {e}", fresh.display()))?;
        lock.try_lock().map_err(|e| format!("cannot lock {}: {e}", fresh.display()))?;
        std::fs::rename(&fresh, &lock_path).map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
        let current = new_file(&dir, &node, 0)?;
        Ok(Journal {
            dir,
            node,
            lock,
            current: Mutex::new(current),
            appended: AtomicU64::new(0),
            imported: AtomicU64::new(0),
            rows_appended: AtomicU64::new(0),
            rows_imported: AtomicU64::new(0),
            since_drain: AtomicU64::new(0),
        })
    }

    /// Appends `row` as one line in one write; returns the rows appended
    /// since the last drain began. A failed write is cut back off the file,
    /// so no partial line stays behind.
    pub(super) fn append(&self, row: &Row) -> Result<u64, String> {
        let mut line = serde_json::to_vec(row).map_err(|e| format!("cannot encode the audit row: {e}"))?;
        line.push(b'\n');
        let mut current = lock(&self.current);
        if current.closed {
            return Err("the audit log is closed".into());
        }
        if let Err(e) = current.file.write_all(&line) {
            let _ = current.file.set_len(current.len);
            return Err(format!("cannot append to the audit journal {}: {e}", self.dir.join(&current.name).display()));
        }
        current.len += line.len() as u64;
        self.appended.fetch_add(line.len() as u64, Ordering::Relaxed);
        self.rows_appended.fetch_add(1, Ordering::Relaxed);
        if current.len >= ROTATE_BYTES {
            match new_file(&self.dir, &self.node, current.seq + 1) {
                Ok(next) => *current = next,
                Err(e) => tracing::warn!(error = %e, "cannot start a new audit journal file; appending to the current one"),
            }
        }
        Ok(self.since_drain.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Whether rows this process appended are not yet known imported.
    pub(super) fn has_pending(&self) -> bool {
        self.appended.load(Ordering::Relaxed) > self.imported.load(Ordering::Relaxed)
    }

    /// Marks the start of a drain (the batch count starts again).
    pub(super) fn drain_started(&self) {
        self.since_drain.store(0, Ordering::Relaxed);
    }

    /// Records `bytes` and `rows` more of this node's files as imported.
    pub(super) fn imported(&self, bytes: u64, rows: u64) {
        let imported = self.imported.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if imported >= self.appended.load(Ordering::Relaxed) {
            // Caught up (rows another process imported included).
            self.rows_imported.store(self.rows_appended.load(Ordering::Relaxed), Ordering::Relaxed);
        } else {
            self.rows_imported.fetch_add(rows, Ordering::Relaxed);
        }
    }

    /// Rows appended and not yet known imported.
    pub(super) fn waiting_rows(&self) -> u64 {
        self.rows_appended.load(Ordering::Relaxed).saturating_sub(self.rows_imported.load(Ordering::Relaxed))
    }

    /// This process's node name (the prefix of its files).
    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// The name of the file appended to now (never deleted while current);
    /// none once closed.
    pub(super) fn current_name(&self) -> Option<String> {
        let current = lock(&self.current);
        (!current.closed).then(|| current.name.clone())
    }

    /// A handle on the current file, if it is `name`: this process reads its
    /// own rows through it, whatever happened to the folder.
    pub(super) fn current_reader(&self, name: &str) -> Option<Arc<File>> {
        let current = lock(&self.current);
        (current.name == name).then(|| current.reader.clone())
    }

    /// Takes no more rows (the log stops) and releases the lock: from now
    /// on any process may import this node's files and delete them.
    pub(super) fn close(&self) {
        lock(&self.current).closed = true;
        let _ = self.lock.unlock();
    }


    /// The folder.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Creates `<node>-<seq>.jsonl`, new and private.
fn new_file(dir: &Path, node: &str, seq: u64) -> Result<Current, String> {
    let name = format!("{node}-{seq:06}.{EXTENSION}");
    let path = dir.join(&name);
    let file = crate::db::files::create_private_file(&path).map_err(|e| format!("cannot create the audit journal {}: {e}", path.display()))?;
    let reader = File::open(&path).map_err(|e| format!("cannot open the audit journal {}: {e}", path.display()))?;
    Ok(Current { file, reader: Arc::new(reader), name, seq, len: 0, closed: false })
}

/// The journal files in `dir`, oldest first per node (none if the folder is missing).
pub(super) fn list(dir: &Path) -> std::io::Result<Vec<PendingFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else { continue };
        let Some((node, _seq)) = stem.rsplit_once('-') else { continue };
        files.push(PendingFile { path: entry.path(), node: node.to_owned(), name });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Whether the process that writes `node`'s files still runs (its lock is
/// held). Unsure (an error other than "locked") counts as alive: its files
/// are then imported but not deleted.
pub(super) fn owner_alive(dir: &Path, node: &str) -> bool {
    let path = dir.join(format!("{node}.lock"));
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    match file.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// Deletes the locks of dead processes that have no journal file left (a
/// process killed after its last file was imported, or between creating
/// its lock and its first file).
pub(super) fn remove_dead_locks(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let files = list(dir).unwrap_or_default();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(node) = name.strip_suffix(".lock") else { continue };
        if files.iter().all(|f| f.node != node) && !owner_alive(dir, node) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Deletes `node`'s lock once none of its files is left (a dead node's, or
/// this process's at a clean stop).
pub(super) fn remove_lock_if_no_files(dir: &Path, node: &str) {
    if list(dir).is_ok_and(|files| files.iter().all(|f| f.node != node)) {
        let _ = std::fs::remove_file(dir.join(format!("{node}.lock")));
    }
}

/// The bytes of `file` in `offset..len`, read at that position (the
/// handle's own position is neither used nor moved).
pub(super) fn read_range(file: &File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len.saturating_sub(offset) as usize];
    let mut done = 0;
    while done < bytes.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut bytes[done..], offset + done as u64)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(file, &mut bytes[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    bytes.truncate(done);
    Ok(bytes)
}

/// The complete lines at the start of `bytes` (each ends with `\n`) and
/// how many bytes they take; a trailing partial line is left for later.
pub(super) fn complete_lines(bytes: &[u8]) -> (impl Iterator<Item = &[u8]>, usize) {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (bytes[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_are_taken() {
        let (lines, used) = complete_lines(b"{\"a\":1}\n{\"b\":2}\n{\"c\"");
        assert_eq!(lines.collect::<Vec<_>>(), vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        assert_eq!(used, 16);
        let (lines, used) = complete_lines(b"{\"c\"");
        assert_eq!((lines.count(), used), (0, 0));
    }
}
