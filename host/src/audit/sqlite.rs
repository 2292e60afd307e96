//! The audit log in SQLite (the default: `audit.sqlite` in the data folder).
//! Each batch is one `BEGIN IMMEDIATE` transaction that reads the chain's
//! head and appends to it, so several processes sharing one file keep one
//! chain.

use super::chain::{self, ChainedRow, GENESIS};
use super::writer::{Row, Sink};
use crate::db::schema;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;

pub(super) struct SqliteSink {
    conn: Connection,
    node_id: String,
    /// WAL checkpoints off the committing callers (the file's writer only).
    _checkpointer: Option<crate::db::sqlite::Checkpointer>,
}

/// Opens (creating, 0600 in a 0700 folder) and migrates the database, and
/// chains rows written before the chain existed.
pub fn open_connection(path: &Path) -> Result<Connection, String> {
    open_with_node(path, &format!("audit-{}", std::process::id()))
}

fn open_with_node(path: &Path, node_id: &str) -> Result<Connection, String> {
    let mut conn = crate::db::sqlite::open(path)?;
    schema::migrate_sqlite(&mut conn, &super::schema::SCHEMA, node_id).map_err(|e| e.to_string())?;
    seal_unchained(&mut conn).map_err(|e| format!("cannot chain the rows of an older audit database: {e}"))?;
    Ok(conn)
}

impl SqliteSink {
    pub(super) fn open(path: &Path) -> Result<SqliteSink, String> {
        let node_id = format!("audit-sqlite-{}-{}", std::process::id(), crate::db::random_hex(6).map_err(|e| e.to_string())?);
        let conn = open_with_node(path, &node_id)?;
        let checkpointer = crate::db::sqlite::Checkpointer::start(path, &conn)?;
        Ok(SqliteSink { conn, node_id, _checkpointer: Some(checkpointer) })
    }

    /// A sink over a connection the caller prepared (tests: a tiny
    /// `max_page_count` to make the database "full").
    #[cfg(test)]
    pub(super) fn with_connection(conn: Connection) -> SqliteSink {
        SqliteSink { conn, node_id: "test".into(), _checkpointer: None }
    }
}

/// The hash the next row links to: the newest row's, else the anchor's, else genesis.
fn head(tx: &Transaction<'_>) -> rusqlite::Result<String> {
    // Prepared once per connection: parsing it again cost as much as running it.
    let newest: Option<Option<String>> = tx
        .prepare_cached("SELECT row_hash FROM mcp_tool_audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    if let Some(Some(hash)) = newest {
        return Ok(hash);
    }
    let anchor: Option<String> = tx.query_row("SELECT row_hash FROM mcp_audit_anchor WHERE id = 1", [], |r| r.get(0)).optional()?;
    Ok(anchor.unwrap_or_else(|| GENESIS.to_owned()))
}

pub(super) fn chained<'a>(row: &'a Row) -> ChainedRow<'a> {
    let r = &row.record;
    ChainedRow {
        tool_name: &r.tool_name,
        input_hash: Some(&r.input_hash),
        output_summary: Some(&r.output_summary),
        duration_ms: Some(r.duration_ms as i64),
        api_key_id: r.api_key_id.as_deref(),
        success: r.success,
        error_code: r.error_code.as_deref(),
        created_at: &row.created_at,
        caller: Some(&r.caller),
        session_id: r.session_id.as_deref(),
        stop_cause: r.stop_cause.as_deref(),
        refusal_count: row.refusal_count,
        gateway_calls: &r.gateway_calls,
    }
}

impl Sink for SqliteSink {
    fn write(&mut self, rows: &[Row]) -> Result<(), String> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| e.to_string())?;
        let mut prev = head(&tx).map_err(|e| e.to_string())?;
        {
            let mut audit = tx
                .prepare_cached(
                    "INSERT INTO mcp_tool_audit (tool_name, input_hash, output_summary, duration_ms, api_key_id, success, error_code,
                       created_at, caller, session_id, stop_cause, refusal_count, prev_hash, row_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(|e| e.to_string())?;
            let mut gateway = tx
                .prepare_cached(
                    "INSERT INTO mcp_gateway_requests (audit_id, method, path_template, status, duration_ms, bytes, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(|e| e.to_string())?;
            for row in rows {
                let hash = chain::row_hash(&prev, &chained(row));
                let r = &row.record;
                audit
                    .execute(params![
                        r.tool_name,
                        r.input_hash,
                        r.output_summary,
                        r.duration_ms as i64,
                        r.api_key_id,
                        r.success as i64,
                        r.error_code,
                        row.created_at,
                        r.caller,
                        r.session_id,
                        r.stop_cause,
                        row.refusal_count,
                        prev,
                        hash,
                    ])
                    .map_err(|e| e.to_string())?;
                let id = tx.last_insert_rowid();
                for g in &r.gateway_calls {
                    gateway
                        .execute(params![id, g.method, g.path_template, g.status.map(i64::from), g.duration_ms as i64, g.bytes as i64, g.error])
                        .map_err(|e| e.to_string())?;
                }
                prev = hash;
            }
        }
        tx.commit().map_err(|e| e.to_string())
    }

    fn prune(&mut self, cutoff: &str) -> Result<u64, String> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| e.to_string())?;
        let pruned = prune_in(&tx, cutoff).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(pruned)
    }

    fn heartbeat(&mut self) {
        if let Err(e) = schema::heartbeat_sqlite(&self.conn, &self.node_id) {
            tracing::warn!(error = %e, "audit heartbeat failed");
        }
    }

    fn leave(&mut self) {
        let _ = schema::leave_sqlite(&self.conn, &self.node_id);
    }
}

/// Deletes the oldest rows, up to the first one created at or after
/// `cutoff`, and records the last deleted row's hash as the anchor.
fn prune_in(tx: &Transaction<'_>, cutoff: &str) -> rusqlite::Result<u64> {
    let through: Option<i64> = tx.query_row(
        "SELECT COALESCE((SELECT MIN(id) FROM mcp_tool_audit WHERE created_at >= ?1) - 1, (SELECT MAX(id) FROM mcp_tool_audit))",
        [cutoff],
        |r| r.get(0),
    )?;
    let Some(through) = through else { return Ok(0) };
    let last: Option<(i64, Option<String>)> = tx
        .query_row("SELECT id, row_hash FROM mcp_tool_audit WHERE id <= ?1 ORDER BY id DESC LIMIT 1", [through], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((last_id, Some(hash))) = last else { return Ok(0) };
    tx.execute(
        "INSERT INTO mcp_audit_anchor (id, through_id, row_hash, pruned_ms) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET through_id = excluded.through_id, row_hash = excluded.row_hash, pruned_ms = excluded.pruned_ms",
        params![last_id, hash, crate::db::now_ms()],
    )?;
    tx.execute("DELETE FROM mcp_gateway_requests WHERE audit_id <= ?1", [last_id])?;
    Ok(tx.execute("DELETE FROM mcp_tool_audit WHERE id <= ?1", [last_id])? as u64)
}

/// Chains rows without a hash (written by schema version 1), in id order,
/// continuing from the row before them. Runs once after the upgrade.
fn seal_unchained(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let first: Option<i64> = tx.query_row("SELECT MIN(id) FROM mcp_tool_audit WHERE row_hash IS NULL", [], |r| r.get(0))?;
    let Some(first) = first else { return tx.commit() };
    let mut prev: String = tx
        .query_row("SELECT row_hash FROM mcp_tool_audit WHERE id < ?1 ORDER BY id DESC LIMIT 1", [first], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten()
        .unwrap_or_else(|| GENESIS.to_owned());
    let rows = super::query::read_rows(&tx, first, usize::MAX)?;
    let mut update = tx.prepare("UPDATE mcp_tool_audit SET prev_hash = ?2, row_hash = ?3 WHERE id = ?1")?;
    let mut sealed = 0;
    for stored in &rows {
        let hash = stored.hash_after(&prev);
        update.execute(params![stored.entry.id, prev, hash])?;
        prev = hash;
        sealed += 1;
    }
    drop(update);
    tx.commit()?;
    tracing::info!(rows = sealed, "chained the audit rows written before the hash chain existed");
    Ok(())
}
