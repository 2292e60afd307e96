//! The audit log in SQLite (the default: `audit.sqlite` in the data folder).
//! Each batch is one `BEGIN IMMEDIATE` transaction that reads the chain's
//! head and appends to it, so several processes sharing one file keep one
//! chain.

use super::chain::{self, ChainedRow, GENESIS};
use super::journal::{self, Journal};
use super::writer::{Row, Sink};
use crate::db::schema;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub(super) struct SqliteSink {
    conn: Connection,
    node_id: String,
    /// WAL checkpoints off the committing callers (the file's writer only).
    _checkpointer: Option<crate::db::sqlite::Checkpointer>,
    /// This process's journal, when rows are journaled (`journal.rs`).
    journal: Option<Arc<Journal>>,
    /// How many bytes of each of this process's journal files are known imported.
    imported: HashMap<String, u64>,
}

/// Opens (creating, 0600 in a 0700 folder) and migrates the database,
/// chains rows written before the chain existed, and imports the rows
/// still in journals, so a reader sees every answered call.
pub fn open_connection(path: &Path) -> Result<Connection, String> {
    let mut conn = open_with_node(path, &format!("audit-{}", std::process::id()))?;
    if let Err(e) = import_journals(&mut conn, &journal::dir_of(path), None, &mut HashMap::new(), true) {
        tracing::warn!(error = %e, "cannot import the audit rows still in the journal; they are not shown");
    }
    Ok(conn)
}

fn open_with_node(path: &Path, node_id: &str) -> Result<Connection, String> {
    let mut conn = crate::db::sqlite::open(path)?;
    schema::migrate_sqlite(&mut conn, &super::schema::SCHEMA, node_id).map_err(|e| e.to_string())?;
    seal_unchained(&mut conn).map_err(|e| format!("cannot chain the rows of an older audit database: {e}"))?;
    Ok(conn)
}

impl SqliteSink {
    /// Opens the database and, with `journaled`, this process's journal;
    /// imports what earlier processes left in theirs.
    pub(super) fn open(path: &Path, journaled: bool) -> Result<SqliteSink, String> {
        let node_id = format!("audit-sqlite-{}-{}", std::process::id(), crate::db::random_hex(6).map_err(|e| e.to_string())?);
        let conn = open_with_node(path, &node_id)?;
        let checkpointer = crate::db::sqlite::Checkpointer::start(path, &conn)?;
        let journal = match journaled.then(|| Journal::open(path)) {
            Some(Ok(journal)) => Some(Arc::new(journal)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot set up the audit journal; each row is committed into the database before its answer instead");
                None
            }
            None => None,
        };
        let mut sink = SqliteSink { conn, node_id, _checkpointer: Some(checkpointer), journal, imported: HashMap::new() };
        if let Err(e) = import_journals(&mut sink.conn, &journal::dir_of(path), None, &mut HashMap::new(), true) {
            tracing::warn!(error = %e, "cannot import the audit rows earlier processes left in their journal; retrying later");
        }
        Ok(sink)
    }

    /// This process's journal, if rows are journaled.
    pub(super) fn journal(&self) -> Option<Arc<Journal>> {
        self.journal.clone()
    }

    /// A sink over a connection the caller prepared (tests: a tiny
    /// `max_page_count` to make the database "full"), journaling into
    /// `journal` when given.
    #[cfg(test)]
    pub(super) fn with_connection(conn: Connection, journal: Option<Arc<Journal>>) -> SqliteSink {
        SqliteSink { conn, node_id: "test".into(), _checkpointer: None, journal, imported: HashMap::new() }
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

/// Appends `rows` to the chain, in order, inside `tx`.
fn insert_rows(tx: &Transaction<'_>, rows: &[Row]) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut prev = head(tx)?;
    let mut audit = tx.prepare_cached(
        "INSERT INTO mcp_tool_audit (tool_name, input_hash, output_summary, duration_ms, api_key_id, success, error_code,
           created_at, caller, session_id, stop_cause, refusal_count, prev_hash, row_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut gateway = tx.prepare_cached(
        "INSERT INTO mcp_gateway_requests (audit_id, method, path_template, status, duration_ms, bytes, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for row in rows {
        let hash = chain::row_hash(&prev, &chained(row));
        let r = &row.record;
        audit.execute(params![
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
        ])?;
        let id = tx.last_insert_rowid();
        for g in &r.gateway_calls {
            gateway.execute(params![id, g.method, g.path_template, g.status.map(i64::from), g.duration_ms as i64, g.bytes as i64, g.error])?;
        }
        prev = hash;
    }
    Ok(())
}

/// Moves the rows of the journal files in `dir` into the tables: those of
/// `me` (this process's journal), and with `all` every other process's too.
/// Each file's new rows go in one transaction that also records how far the
/// file is imported, so no row is imported twice. A file nobody appends to
/// any more (rotated, or its process gone) is deleted once imported.
/// `imported` remembers, per file of `me`, the bytes known imported.
/// Returns how many rows moved.
fn import_journals(conn: &mut Connection, dir: &Path, me: Option<&Journal>, imported: &mut HashMap<String, u64>, all: bool) -> Result<usize, String> {
    let mut files = journal::list(dir).map_err(|e| format!("cannot list the audit journal folder {}: {e}", dir.display()))?;
    // A closed journal has no current file: nothing is appended any more.
    let current = me.and_then(Journal::current_name);
    // This process's current file is read through its own handle, so its rows go in even
    // if someone deleted the folder under the running server.
    if let (Some(me), Some(name)) = (me, &current) {
        if !files.iter().any(|f| &f.name == name) {
            files.push(journal::PendingFile { path: dir.join(name), name: name.clone(), node: me.node().to_owned() });
        }
    }
    let mut moved = 0;
    for file in files {
        let own = me.is_some_and(|j| j.node() == file.node);
        if !own && !all {
            continue;
        }
        let is_current = own && current.as_deref() == Some(file.name.as_str());
        let reader = match me.filter(|_| is_current) {
            Some(me) => me.current_reader(&file.name),
            None => None,
        };
        let len = match reader.as_ref().map_or_else(|| std::fs::metadata(&file.path), |r| r.metadata()) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", file.path.display())),
        };
        if is_current && imported.get(&file.name).copied().unwrap_or(0) == len {
            continue;
        }
        // Decided before reading: a file whose writer is gone grows no more.
        let finished = !is_current && (own || !journal::owner_alive(dir, &file.node));
        let (rows, offset) = import_file(conn, &file, reader.as_deref(), len).map_err(|e| format!("cannot import {}: {e}", file.path.display()))?;
        moved += rows;
        if let Some(me) = me.filter(|_| own) {
            let before = imported.insert(file.name.clone(), offset).unwrap_or(0);
            me.imported(offset.saturating_sub(before), rows as u64);
        }
        if finished {
            remove_imported(conn, &file, offset, len);
            imported.remove(&file.name);
            if !own {
                journal::remove_lock_if_no_files(dir, &file.node);
            }
        }
    }
    if all {
        journal::remove_dead_locks(dir);
    }
    Ok(moved)
}

/// Imports `file`'s complete lines past its recorded offset (up to `len`),
/// read through `reader` when given (this process's current file), else by
/// path; returns the rows moved and the new offset.
fn import_file(conn: &mut Connection, file: &journal::PendingFile, reader: Option<&std::fs::File>, len: u64) -> rusqlite::Result<(usize, u64)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let offset = tx
        .prepare_cached("SELECT imported_bytes FROM mcp_audit_journal WHERE file = ?1")?
        .query_row([&file.name], |r| r.get::<_, i64>(0))
        .optional()?
        .map_or(0, |n| n.max(0) as u64);
    if offset >= len {
        return Ok((0, offset));
    }
    let opened;
    let reader = match reader {
        Some(reader) => reader,
        None => {
            opened = std::fs::File::open(&file.path).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            &opened
        }
    };
    let bytes = journal::read_range(reader, offset, len).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let bytes = bytes.as_slice();
    let (lines, used) = journal::complete_lines(bytes);
    let mut rows = Vec::new();
    for line in lines {
        match serde_json::from_slice::<Row>(line) {
            Ok(row) => rows.push(row),
            Err(e) => tracing::error!(file = %file.name, error = %e, "a line of the audit journal is not a row; skipped"),
        }
    }
    insert_rows(&tx, &rows)?;
    let offset = offset + used as u64;
    tx.prepare_cached(
        "INSERT INTO mcp_audit_journal (file, imported_bytes) VALUES (?1, ?2)
         ON CONFLICT (file) DO UPDATE SET imported_bytes = excluded.imported_bytes",
    )?
    .execute(params![file.name, offset as i64])?;
    tx.commit()?;
    Ok((rows.len(), offset))
}

/// Deletes an imported journal file nobody appends to, then its offset
/// (in that order: a crash between leaves an offset without a file, which
/// is harmless, never a file without its offset, which would import twice).
fn remove_imported(conn: &Connection, file: &journal::PendingFile, offset: u64, len: u64) {
    if offset < len {
        // Only a writer killed inside its own write leaves this; its call was never answered.
        tracing::warn!(file = %file.name, bytes = len - offset, "an audit journal ends in an incomplete row (its call was never answered); dropped");
    }
    match std::fs::remove_file(&file.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %file.path.display(), error = %e, "cannot delete an imported audit journal file");
            return;
        }
    }
    if let Err(e) = conn.execute("DELETE FROM mcp_audit_journal WHERE file = ?1", [&file.name]) {
        tracing::debug!(file = %file.name, error = %e, "the offset of a deleted audit journal file stays");
    }
}

impl Sink for SqliteSink {
    fn write(&mut self, rows: &[Row]) -> Result<(), String> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| e.to_string())?;
        insert_rows(&tx, rows).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())
    }

    fn drain(&mut self, all: bool) -> Result<usize, String> {
        let Some(journal) = self.journal.clone() else { return Ok(0) };
        journal.drain_started();
        let moved = import_journals(&mut self.conn, journal.dir(), Some(&journal), &mut self.imported, all)?;
        Ok(moved)
    }

    fn has_pending(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.has_pending())
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
        if let Some(journal) = self.journal.clone() {
            // No more appends; the last rows go in and this process's files go away.
            journal.close();
            if let Err(e) = import_journals(&mut self.conn, journal.dir(), Some(&journal), &mut self.imported, false) {
                tracing::error!(error = %e, dir = %journal.dir().display(), "the last audit rows stay in the journal; the next start imports them");
            }
            journal::remove_lock_if_no_files(journal.dir(), journal.node());
        }
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
