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
