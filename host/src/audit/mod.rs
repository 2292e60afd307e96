//! The audit log (security invariant 6): one row per tools/call, denials and
//! invalid arguments included, committed before the response is sent. SQLite
//! in WAL mode, written by one thread with group commit.
//!
//! A server that cannot audit refuses tool calls (with a message saying how
//! to fix it) instead of running unaudited, unless the operator chose
//! `--audit off`.

mod query;
mod record;
mod schema;
mod writer;

pub use query::{AuditEntry, AuditStats, RecentFilter, ToolCount, parse_since, recent, stats};
pub use record::{AuditRecord, GatewayCall, canonical_args, input_hash, output_summary};
pub use schema::SCHEMA_VERSION;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where audit rows go.
pub struct AuditLog(Inner);

enum Inner {
    /// `--audit off`: nothing is recorded, by the operator's choice.
    Off,
    /// Rows go to the writer thread.
    On { tx: mpsc::UnboundedSender<writer::Message>, path: PathBuf },
    /// The database could not be opened: every call is refused with this.
    Broken(String),
}

/// Why a row could not be written; the call is refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot record this call ({0}), so it was not run. Fix the audit database (OMNIROUTE_MCP_AUDIT_DB) or start the server with --audit off")]
pub struct AuditUnavailable(pub String);

impl AuditLog {
    /// Opens (creating if needed) the database and starts the writer. Never
    /// fails: an unusable database refuses every call, reported on
    /// stderr at start and on every call.
    pub fn open(path: &Path) -> AuditLog {
        match open_connection(path) {
            Ok(conn) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let spawned = std::thread::Builder::new()
                    .name("audit-writer".into())
                    .spawn(move || writer::run(conn, rx));
                match spawned {
                    Ok(_) => AuditLog(Inner::On { tx, path: path.to_path_buf() }),
                    Err(e) => AuditLog(Inner::Broken(format!("cannot start the audit writer: {e}"))),
                }
            }
            Err(e) => {
                let message = format!("cannot open the audit database {}: {e}", path.display());
                tracing::error!("{message}; tool calls will be refused (use --audit off to run without auditing)");
                AuditLog(Inner::Broken(message))
            }
        }
    }

    /// `--audit off`: the operator chose to run without auditing.
    pub fn off() -> AuditLog {
        AuditLog(Inner::Off)
    }

    /// Where rows go, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        match &self.0 {
            Inner::On { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Whether a call may run: an unusable audit log refuses all calls.
    pub fn check(&self) -> Result<(), AuditUnavailable> {
        match &self.0 {
            Inner::Broken(reason) => Err(AuditUnavailable(reason.clone())),
            _ => Ok(()),
        }
    }

    /// Writes one row and waits until it is committed.
    pub async fn commit(&self, record: AuditRecord) -> Result<(), AuditUnavailable> {
        match &self.0 {
            Inner::Off => Ok(()),
            Inner::Broken(reason) => Err(AuditUnavailable(reason.clone())),
            Inner::On { tx, .. } => {
                let (done_tx, done_rx) = oneshot::channel();
                tx.send(writer::Message::Write(record, done_tx))
                    .map_err(|_| AuditUnavailable("the audit writer stopped".into()))?;
                match done_rx.await {
                    Ok(Ok(_id)) => Ok(()),
                    Ok(Err(e)) => Err(AuditUnavailable(e)),
                    Err(_) => Err(AuditUnavailable("the audit writer stopped".into())),
                }
            }
        }
    }

    /// Commits what is queued and stops the writer (graceful shutdown).
    pub async fn close(&self) {
        if let Inner::On { tx, .. } = &self.0 {
            let (done_tx, done_rx) = oneshot::channel();
            if tx.send(writer::Message::Close(done_tx)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(10), done_rx).await;
            }
        }
    }
}

/// Opens the database in WAL mode with the current schema.
pub fn open_connection(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let mut conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("could not switch the database to WAL mode (got {mode})"));
    }
    // A committed transaction survives a killed process with NORMAL in WAL
    // mode; only a power loss could lose the newest commits.
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| e.to_string())?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tool: &str, success: bool) -> AuditRecord {
        AuditRecord {
            tool_name: tool.into(),
            input_hash: input_hash(&serde_json::json!({})),
            output_summary: "(null)".into(),
            duration_ms: 3,
            api_key_id: None,
            success,
            error_code: (!success).then(|| "boom".to_owned()),
            caller: "anonymous".into(),
            session_id: None,
            gateway_calls: vec![GatewayCall {
                method: "GET".into(),
                path_template: "/api/combos".into(),
                status: Some(200),
                duration_ms: 1,
                bytes: 10,
                error: None,
            }],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_lose_nothing() {
        let dir = tempdir();
        let path = dir.join("audit.sqlite");
        let log = std::sync::Arc::new(AuditLog::open(&path));
        let mut tasks = Vec::new();
        for i in 0..500 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { log.commit(record(&format!("t{}", i % 7), i % 3 != 0)).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let conn = open_connection(&path).unwrap();
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM mcp_tool_audit", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 500);
        let calls: i64 = conn.query_row("SELECT COUNT(*) FROM mcp_gateway_requests", [], |r| r.get(0)).unwrap();
        assert_eq!(calls, 500);
        let s = stats(&conn, Some(Duration::from_secs(3600))).unwrap();
        assert_eq!(s.total_calls, 500);
        assert!((s.success_rate.unwrap() - 333.0 / 500.0).abs() < 1e-9);
        assert_eq!(s.top_tools.len(), 7);
        log.close().await;
    }

    #[test]
    fn unusable_path_refuses_calls() {
        let dir = tempdir();
        let file = dir.join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let log = AuditLog::open(&file.join("audit.sqlite"));
        let err = log.check().unwrap_err();
        assert!(err.to_string().contains("--audit off"), "{err}");
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("omniroute-audit-test-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    }
}
