//! The audit schema, in both dialects, versioned with the shared protocol of
//! `crate::db::schema` (databases of schema version 1 kept the version in
//! `PRAGMA user_version`; they are read as such and upgraded).

use crate::db::schema::{Migration, Schema};

/// Version 1: the original's table and indexes, plus caller and session_id,
/// and the per-call gateway request shapes.
const V1_SQLITE: &str = "
CREATE TABLE IF NOT EXISTS mcp_tool_audit (
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
CREATE INDEX IF NOT EXISTS idx_mcp_gateway_requests_audit_id ON mcp_gateway_requests(audit_id);";

const V1_POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS mcp_tool_audit (
    id BIGSERIAL PRIMARY KEY,
    tool_name TEXT NOT NULL,
    input_hash TEXT,
    output_summary TEXT,
    duration_ms BIGINT,
    api_key_id TEXT,
    success BIGINT DEFAULT 1,
    error_code TEXT,
    created_at TEXT DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    caller TEXT,
    session_id TEXT
);
CREATE INDEX IF NOT EXISTS idx_mcp_tool_audit_tool_name ON mcp_tool_audit(tool_name);
CREATE INDEX IF NOT EXISTS idx_mcp_tool_audit_created_at ON mcp_tool_audit(created_at);
CREATE INDEX IF NOT EXISTS idx_mcp_tool_audit_api_key_id ON mcp_tool_audit(api_key_id);
CREATE TABLE IF NOT EXISTS mcp_gateway_requests (
    id BIGSERIAL PRIMARY KEY,
    audit_id BIGINT NOT NULL REFERENCES mcp_tool_audit(id),
    method TEXT NOT NULL,
    path_template TEXT NOT NULL,
    status BIGINT,
    duration_ms BIGINT,
    bytes BIGINT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS idx_mcp_gateway_requests_audit_id ON mcp_gateway_requests(audit_id);";

/// Version 2: the stop cause, aggregated refusals, the hash chain and its
/// pruning anchor. Version 1 code would write unchained rows, so it may no
/// longer write (compatible from 2; it refuses the database on its own,
/// seeing `user_version` 2).
const V2_SQLITE: &str = "
ALTER TABLE mcp_tool_audit ADD COLUMN stop_cause TEXT;
ALTER TABLE mcp_tool_audit ADD COLUMN refusal_count INTEGER;
ALTER TABLE mcp_tool_audit ADD COLUMN prev_hash TEXT;
ALTER TABLE mcp_tool_audit ADD COLUMN row_hash TEXT;
CREATE TABLE mcp_audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through_id INTEGER NOT NULL,
    row_hash TEXT NOT NULL,
    pruned_ms INTEGER NOT NULL
);";

const V2_POSTGRES: &str = "
ALTER TABLE mcp_tool_audit ADD COLUMN stop_cause TEXT;
ALTER TABLE mcp_tool_audit ADD COLUMN refusal_count BIGINT;
ALTER TABLE mcp_tool_audit ADD COLUMN prev_hash TEXT;
ALTER TABLE mcp_tool_audit ADD COLUMN row_hash TEXT;
CREATE TABLE mcp_audit_anchor (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    through_id BIGINT NOT NULL,
    row_hash TEXT NOT NULL,
    pruned_ms BIGINT NOT NULL
);";

/// Version 3: no index on `api_key_id`. Nothing queries by it, and every
/// index is one more page written in each call's commit (about 6 µs of a
/// 50 µs commit). Older code does not need it (compatible from 2).
const V3: &str = "DROP INDEX IF EXISTS idx_mcp_tool_audit_api_key_id;";

/// Version 4: how far each journal file is imported (SQLite's journal,
/// `journal.rs`), written in the transaction that imports its rows. Older
/// code writes rows directly and ignores it (compatible from 2). PostgreSQL
/// has no journal.
const V4_SQLITE: &str = "
CREATE TABLE IF NOT EXISTS mcp_audit_journal (
    file TEXT PRIMARY KEY,
    imported_bytes INTEGER NOT NULL
);";

/// The audit schema.
pub const SCHEMA: Schema = Schema {
    component: "audit",
    steps: &[
        Migration { sqlite: V1_SQLITE, postgres: V1_POSTGRES, compatible_from: 1 },
        Migration { sqlite: V2_SQLITE, postgres: V2_POSTGRES, compatible_from: 2 },
        Migration { sqlite: V3, postgres: V3, compatible_from: 2 },
        Migration { sqlite: V4_SQLITE, postgres: "SELECT 1", compatible_from: 2 },
    ],
    legacy_user_version: true,
};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = SCHEMA.steps.len() as i64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::migrate_sqlite;
    use rusqlite::Connection;

    #[test]
    fn migrates_once_and_refuses_the_future() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_sqlite(&mut conn, &SCHEMA, "n1").unwrap();
        migrate_sqlite(&mut conn, &SCHEMA, "n1").unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mcp_tool_audit' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(indexes, ["idx_mcp_tool_audit_created_at", "idx_mcp_tool_audit_tool_name"], "version 3 drops the api_key_id index");
        conn.execute("UPDATE omniroute_schema SET version = ?1, compatible_from = ?1", [SCHEMA_VERSION + 1]).unwrap();
        assert!(migrate_sqlite(&mut conn, &SCHEMA, "n1").unwrap_err().to_string().contains("newer"));
    }
}
