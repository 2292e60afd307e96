//! The audit database schema, versioned with `PRAGMA user_version`. Each
//! migration runs once, in a transaction; a database from a newer server is
//! refused rather than written wrongly.

use rusqlite::Connection;

/// Migrations in order; index + 1 is the version they bring the schema to.
const MIGRATIONS: &[&str] = &[
    // 1: the original's table and indexes, plus caller and session_id, and
    //    the per-call gateway request shapes.
    "CREATE TABLE IF NOT EXISTS mcp_tool_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tool_name TEXT NOT NULL,
        input_hash TEXT,
        output_summary TEXT,
        duration_ms INTEGER,
        api_key_id TEXT,
        success INTEGER DEFAULT 1,
        error_code TEXT,
        created_at TEXT DEFAULT (datetime('now')),
        caller TEXT,
        session_id TEXT
    );
    CREATE INDEX IF NOT EXISTS idx_mcp_tool_audit_tool_name ON mcp_tool_audit(tool_name);
    CREATE INDEX IF NOT EXISTS idx_mcp_tool_audit_created_at ON mcp_tool_audit(created_at);
    CREATE INDEX IF NOT EXISTS idx_mcp_tool_audit_api_key_id ON mcp_tool_audit(api_key_id);
    CREATE TABLE IF NOT EXISTS mcp_gateway_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        audit_id INTEGER NOT NULL REFERENCES mcp_tool_audit(id),
        method TEXT NOT NULL,
        path_template TEXT NOT NULL,
        status INTEGER,
        duration_ms INTEGER,
        bytes INTEGER,
        error TEXT
    );
    CREATE INDEX IF NOT EXISTS idx_mcp_gateway_requests_audit_id ON mcp_gateway_requests(audit_id);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings `conn` to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if current > SCHEMA_VERSION {
        return Err(format!(
            "the audit database has schema version {current}, newer than this server's {SCHEMA_VERSION}; use a newer omniroute-mcp or another OMNIROUTE_MCP_AUDIT_DB"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql).map_err(|e| format!("migration {}: {e}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_the_future() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(migrate(&mut conn).unwrap_err().contains("newer"));
    }
}
