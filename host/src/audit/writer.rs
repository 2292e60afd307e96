//! The dedicated writer thread: callers hand it a record and wait for the
//! commit; it takes every record that is waiting and commits them in one
//! transaction (group commit), so durability before each response does not
//! cost one fsync per call.

use super::record::AuditRecord;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

/// Most records one transaction takes.
const MAX_BATCH: usize = 1024;

pub(super) enum Message {
    Write(AuditRecord, oneshot::Sender<Result<i64, String>>),
    /// Commit what is queued and stop (graceful shutdown).
    Close(oneshot::Sender<()>),
}

/// Runs until every sender is gone or a `Close` arrives.
pub(super) fn run(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch: Vec<(AuditRecord, oneshot::Sender<Result<i64, String>>)> = Vec::new();
    let mut closing = None;
    while let Some(first) = rx.blocking_recv() {
        match first {
            Message::Write(r, tx) => batch.push((r, tx)),
            Message::Close(done) => closing = Some(done),
        }
        while closing.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Message::Write(r, tx)) => batch.push((r, tx)),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            match write_batch(&mut conn, &batch) {
                Ok(ids) => {
                    for ((_, tx), id) in batch.drain(..).zip(ids) {
                        let _ = tx.send(Ok(id));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit write failed");
                    for (_, tx) in batch.drain(..) {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        }
        if let Some(done) = closing.take() {
            let _ = done.send(());
            return;
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[(AuditRecord, oneshot::Sender<Result<i64, String>>)]) -> Result<Vec<i64>, String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(batch.len());
    {
        let mut audit = tx
            .prepare_cached(
                "INSERT INTO mcp_tool_audit (tool_name, input_hash, output_summary, duration_ms, api_key_id, success, error_code, caller, session_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(|e| e.to_string())?;
        let mut gateway = tx
            .prepare_cached(
                "INSERT INTO mcp_gateway_requests (audit_id, method, path_template, status, duration_ms, bytes, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(|e| e.to_string())?;
        for (r, _) in batch {
            audit
                .execute(params![
                    r.tool_name,
                    r.input_hash,
                    r.output_summary,
                    r.duration_ms as i64,
                    r.api_key_id,
                    r.success as i64,
                    r.error_code,
                    r.caller,
                    r.session_id,
                ])
                .map_err(|e| e.to_string())?;
            let id = tx.last_insert_rowid();
            for g in &r.gateway_calls {
                gateway
                    .execute(params![id, g.method, g.path_template, g.status.map(i64::from), g.duration_ms as i64, g.bytes as i64, g.error])
                    .map_err(|e| e.to_string())?;
            }
            ids.push(id);
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(ids)
}
