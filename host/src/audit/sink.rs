//! What the audit writer and the group commit share: a row as it is
//! written, the database it goes to, and a caller's reply channel.

use super::record::AuditRecord;
use tokio::sync::oneshot;

/// A caller's reply channel: the row is committed (or why not).
pub(super) type Done = oneshot::Sender<Result<(), String>>;

/// One row as it is written (and, as JSON, one line of the journal).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Row {
    pub record: AuditRecord,
    /// `YYYY-MM-DD HH:MM:SS` UTC (SQLite's `datetime('now')` format).
    pub created_at: String,
    /// How many refused calls the row stands for; `None` for one call.
    pub refusal_count: Option<i64>,
}

/// A database the writer commits to.
pub(super) trait Sink: Send + 'static {
    /// Commits the rows in one transaction, each chained to the one before.
    fn write(&mut self, rows: &[Row]) -> Result<(), String>;
    /// Deletes the rows created before `cutoff` (a `created_at` value),
    /// recording the anchor the chain continues from; returns how many.
    fn prune(&mut self, cutoff: &str) -> Result<u64, String>;
    /// Refreshes this node's heartbeat in the schema registry.
    fn heartbeat(&mut self);
    /// Moves journaled rows into the tables (SQLite's journal, `journal.rs`):
    /// this process's, and with `all` also those other processes left
    /// behind. Returns how many rows it moved.
    fn drain(&mut self, _all: bool) -> Result<usize, String> {
        Ok(0)
    }
    /// Whether this process's journal holds rows not yet drained.
    fn has_pending(&self) -> bool {
        false
    }
    /// Deregisters this node (it stops).
    fn leave(&mut self);
}
