//! Opening a SQLite database the way every store here needs it: a private
//! file, WAL mode, `synchronous = NORMAL`, a busy timeout so several
//! processes sharing one data folder wait for each other instead of failing.

use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating, mode 0600 in a 0700 folder) `path` in WAL mode.
///
/// Crash guarantee: with WAL and `synchronous = NORMAL` a committed
/// transaction survives a killed process; only a power loss or OS crash can
/// lose the newest commits (never corrupt the file).
pub fn open(path: &Path) -> Result<Connection, String> {
    super::files::private_db_file(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("could not switch the database to WAL mode (got {mode})"));
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| e.to_string())?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| e.to_string())?;
    Ok(conn)
}

/// How often the background checkpointer looks at the WAL while it stays
/// small, and how often while writes keep it busy (at least
/// [`BUSY_WAL_FRAMES`] frames since the last look, the threshold of
/// SQLite's own automatic checkpoint).
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);
const CHECKPOINT_BUSY: Duration = Duration::from_millis(100);
const BUSY_WAL_FRAMES: i64 = 1000;

/// Moves WAL checkpoints off the committing callers: SQLite's automatic
/// checkpoint runs inside whichever commit crosses 1,000 WAL pages, so one
/// tools/call in a few dozen paid for copying a thousand pages and two
/// fsyncs (milliseconds, the p99). With it, `conn` checkpoints never and a
/// thread of its own, on its own connection, runs a passive checkpoint
/// (which never blocks a writer) every second, or every 100 ms while the
/// WAL grows by 1,000 frames between two, until this is dropped. A
/// checkpoint with nothing new to copy writes and syncs nothing. The last
/// connection to close still checkpoints and removes the WAL, as SQLite
/// always does.
pub struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    /// Disables `conn`'s automatic checkpoints and starts the thread for `path`.
    pub fn start(path: &Path, conn: &Connection) -> Result<Checkpointer, String> {
        let own = open(path)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut wait = CHECKPOINT_IDLE;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    // (busy, frames in the WAL, frames checkpointed)
                    match own.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                        Ok(frames) => wait = if frames >= BUSY_WAL_FRAMES { CHECKPOINT_BUSY } else { CHECKPOINT_IDLE },
                        Err(e) => tracing::debug!(error = %e, "background WAL checkpoint skipped"),
                    }
                }
            })
            .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(|e| e.to_string())?;
        Ok(Checkpointer { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_reach_the_database_file_without_an_automatic_checkpoint() {
        let dir = std::env::temp_dir().join(format!("omr-checkpoint-{}-{}", std::process::id(), super::super::random_hex(6).unwrap()));
        let path = dir.join("db.sqlite");
        let conn = open(&path).unwrap();
        let _checkpointer = Checkpointer::start(&path, &conn).unwrap();
        let auto: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(auto, 0, "the committing connection no longer checkpoints");
        conn.execute("CREATE TABLE t (v BLOB)", []).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for _ in 0..64 {
            conn.execute("INSERT INTO t (v) VALUES (zeroblob(4096))", []).unwrap();
        }
        // 64 × 4 KiB rows live only in the WAL until a checkpoint copies them.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < before + 64 * 4096 {
            assert!(std::time::Instant::now() < deadline, "the background checkpointer never copied the WAL into the file");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(conn);
        let _ = std::fs::remove_dir_all(dir);
    }
}
