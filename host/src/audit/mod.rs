//! The audit log (security invariant 6): one row per tools/call, denials and
//! invalid arguments included, committed before the response is sent. SQLite
//! in WAL mode (`audit.sqlite`, 0600 in the 0700 data folder) or PostgreSQL
//! shared by several nodes (`--audit-url`), written by one thread per node
//! with group commit. Rows are hash-chained (`audit verify`), bounded in
//! size, and refused calls are aggregated per caller and interval.
//!
//! A server that cannot audit refuses tool calls (with a message saying how
//! to fix it) instead of running unaudited, unless the operator chose
//! `--audit off`, or `--audit-on-failure warn` (answer, with a warning on
//! stderr, while the database cannot be written, e.g. a full disk).

mod chain;
mod display;
mod group;
mod journal;
mod postgres;
mod query;
mod record;
mod schema;
mod sink;
mod sqlite;
mod writer;

pub use chain::GENESIS;
pub use display::terminal_safe;
pub use query::{AuditEntry, AuditReader, AuditStats, RecentFilter, StoredRow, ToolCount, VerifyReport, parse_since, recent, stats};
pub use record::{AuditRecord, GatewayCall, canonical_args, caps, input_hash, output_summary};
pub use schema::SCHEMA_VERSION;
pub use sqlite::open_connection;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::sync::oneshot;

/// Where audit rows go.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

impl AuditTarget {
    /// `--audit-url` (a `postgres://` URL) wins over the SQLite path.
    pub fn from_settings(url: Option<&str>, path: PathBuf) -> AuditTarget {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) if crate::db::postgres::is_postgres_url(u) => AuditTarget::Postgres(u.to_owned()),
            Some(u) => AuditTarget::Sqlite(PathBuf::from(u.strip_prefix("sqlite://").unwrap_or(u))),
            None => AuditTarget::Sqlite(path),
        }
    }

    /// For messages: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            AuditTarget::Sqlite(path) => path.display().to_string(),
            AuditTarget::Postgres(url) => crate::db::postgres::redact(url),
        }
    }
}

/// What happens while rows cannot be written (a full disk, a lost database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Refuse calls: nothing runs unaudited (the default).
    #[default]
    Refuse,
    /// Answer calls, with a warning on stderr for the rows that were lost.
    Warn,
}

/// How the audit log behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditOptions {
    pub on_failure: OnFailure,
    /// Delete rows older than this (`--audit-retention-days`); the chain
    /// stays verifiable from the recorded anchor.
    pub retention: Option<Duration>,
    /// Refused calls of one caller with one code within this interval share one row.
    pub refusal_window: Duration,
    /// SQLite: append rows to the journal and import them in batches
    /// (`journal.rs`), instead of committing each into the tables.
    pub journal: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions { on_failure: OnFailure::Refuse, retention: None, refusal_window: Duration::from_secs(60), journal: true }
    }
}

/// Where audit rows go.
pub struct AuditLog {
    inner: Inner,
    on_failure: OnFailure,
    /// Rows lost under `--audit-on-failure warn` (warned about on stderr).
    lost: AtomicU64,
    /// Rows handed to the writer and not yet answered (the metrics' queue depth).
    queued: AtomicU64,
}

/// Counts one row in [`AuditLog::queue_depth`] while it lives (also when
/// the caller's future is dropped before the writer answers).
struct Queued<'a>(&'a AtomicU64);

impl<'a> Queued<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Inner {
    /// `--audit off`: nothing is recorded, by the operator's choice.
    Off,
    /// Rows go to the writer thread, or (`group`, SQLite) are committed by
    /// the callers themselves when no commit is in progress, or (`journal`,
    /// SQLite, the default) are appended to the journal by the callers and
    /// moved into the tables by the writer thread.
    On { tx: mpsc::Sender<writer::Message>, group: Option<Arc<group::Group>>, path: Option<PathBuf>, journal: Option<Arc<journal::Journal>> },
    /// The database could not be opened: every call is refused with this.
    Broken(String),
}

/// Why a row could not be written; the call is refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the audit log cannot record this call ({0}), so it was not run. Fix the audit database (OMNIROUTE_MCP_AUDIT_DB or --audit-url), \
     or start the server with --audit-on-failure warn (answer with a warning) or --audit off"
)]
pub struct AuditUnavailable(pub String);

impl AuditLog {
    /// Opens (creating if needed) a SQLite database and starts the writer.
    /// Never fails: an unusable database refuses every call, reported on
    /// stderr at start and on every call.
    pub fn open(path: &Path) -> AuditLog {
        AuditLog::open_sqlite(path, AuditOptions::default())
    }

    /// [`AuditLog::open`] with options.
    pub fn open_sqlite(path: &Path, options: AuditOptions) -> AuditLog {
        match sqlite::SqliteSink::open(path, options.journal) {
            // Callers journal their rows, or commit them on their own thread (see `group`).
            Ok(sink) => {
                let journal = sink.journal();
                AuditLog::start_with(sink, true, options, Some(path.to_path_buf()), journal)
            }
            Err(e) => AuditLog::broken(format!("cannot open the audit database {}: {e}", path.display()), options),
        }
    }

    /// Opens the audit log wherever `target` says.
    pub async fn open_target(target: &AuditTarget, options: AuditOptions) -> AuditLog {
        match target {
            AuditTarget::Sqlite(path) => AuditLog::open_sqlite(path, options),
            AuditTarget::Postgres(url) => match AuditLog::open_postgres(url, options).await {
                Ok(log) => log,
                Err(e) => AuditLog::broken(format!("cannot open the audit log at {}: {e}", target.describe()), options),
            },
        }
    }

    async fn open_postgres(url: &str, options: AuditOptions) -> Result<AuditLog, String> {
        let node_id = format!("audit-pg-{}-{}", std::process::id(), crate::db::random_hex(6).map_err(|e| e.to_string())?);
        postgres::migrate(url, &node_id).await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel();
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || match postgres::PostgresSink::connect(&url, node_id) {
                Ok(sink) => {
                    let _ = ready_tx.send(Ok(()));
                    writer::run(Arc::new(group::Group::new(sink)), rx, writer_config(options));
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        ready_rx.await.map_err(|_| "the audit writer stopped".to_owned())??;
        Ok(AuditLog { inner: Inner::On { tx, group: None, path: None, journal: None }, on_failure: options.on_failure, lost: AtomicU64::new(0), queued: AtomicU64::new(0) })
    }

    /// A log whose rows all go through the writer thread.
    #[cfg(test)]
    fn start(sink: impl writer::Sink, options: AuditOptions, path: Option<PathBuf>) -> AuditLog {
        AuditLog::start_with(sink, false, options, path, None)
    }

    /// A log over a prepared SQLite sink, as [`AuditLog::open_sqlite`] starts it.
    #[cfg(test)]
    fn start_sqlite(sink: sqlite::SqliteSink, options: AuditOptions, path: Option<PathBuf>) -> AuditLog {
        let journal = sink.journal();
        AuditLog::start_with(sink, true, options, path, journal)
    }

    /// Starts the writer thread on `sink`; with `inline`, callers append
    /// their rows to `journal` (when given), or else commit them on their
    /// own thread when no commit is in progress.
    fn start_with(sink: impl writer::Sink, inline: bool, options: AuditOptions, path: Option<PathBuf>, journal: Option<Arc<journal::Journal>>) -> AuditLog {
        let (tx, rx) = mpsc::channel();
        let group = Arc::new(group::Group::new(sink));
        let thread_group = group.clone();
        let background = journal.is_some();
        let spawned = std::thread::Builder::new().name("audit-writer".into()).spawn(move || {
            if background {
                // Its main work, draining the journal, waits for no caller: on a busy machine
                // the threads answering calls go first.
                writer::lower_priority();
            }
            writer::run(thread_group, rx, writer_config(options))
        });
        let group = inline.then_some(group);
        match spawned {
            Ok(_) => AuditLog { inner: Inner::On { tx, group, path, journal }, on_failure: options.on_failure, lost: AtomicU64::new(0), queued: AtomicU64::new(0) },
            Err(e) => AuditLog::broken(format!("cannot start the audit writer: {e}"), options),
        }
    }

    fn broken(message: String, options: AuditOptions) -> AuditLog {
        match options.on_failure {
            OnFailure::Refuse => tracing::error!("{message}; tool calls will be refused (use --audit off to run without auditing)"),
            OnFailure::Warn => tracing::warn!("{message}; calls run UNAUDITED (--audit-on-failure warn)"),
        }
        AuditLog { inner: Inner::Broken(message), on_failure: options.on_failure, lost: AtomicU64::new(0), queued: AtomicU64::new(0) }
    }

    /// `--audit off`: the operator chose to run without auditing.
    pub fn off() -> AuditLog {
        AuditLog { inner: Inner::Off, on_failure: OnFailure::Refuse, lost: AtomicU64::new(0), queued: AtomicU64::new(0) }
    }

    /// The SQLite database rows go to, if that is where they go.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::On { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// Rows waiting for the writer's commit right now (journaled rows not yet
    /// in the tables included): a depth that stays up means the database is
    /// slower than the calls (alert on it).
    pub fn queue_depth(&self) -> u64 {
        let journaled = match &self.inner {
            Inner::On { journal: Some(journal), .. } => journal.waiting_rows(),
            _ => 0,
        };
        self.queued.load(Ordering::Relaxed) + journaled
    }

    /// Whether a call may run: an unusable audit log refuses all calls
    /// (unless the operator chose to run with a warning).
    pub fn check(&self) -> Result<(), AuditUnavailable> {
        if self.on_failure == OnFailure::Warn {
            return Ok(());
        }
        match &self.inner {
            Inner::Broken(reason) => Err(AuditUnavailable(reason.clone())),
            // Journaled rows cannot reach the database (a full disk, a locked file).
            Inner::On { journal: Some(_), group: Some(group), .. } => match group.drain_error() {
                Some(reason) => Err(AuditUnavailable(reason)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Moves the journaled rows into the tables now and waits for it (a
    /// reader in this process that must see every answered call); returns
    /// how many rows moved. Without a journal, rows are already there.
    pub async fn flush(&self) -> Result<usize, AuditUnavailable> {
        let Inner::On { tx, journal: Some(_), .. } = &self.inner else { return Ok(0) };
        let (reply, done) = oneshot::channel();
        tx.send(writer::Message::Drain(Some(reply))).map_err(|_| AuditUnavailable("the audit writer stopped".into()))?;
        match done.await {
            Ok(result) => result.map_err(AuditUnavailable),
            Err(_) => Err(AuditUnavailable("the audit writer stopped".into())),
        }
    }

    /// Writes one row and waits until it is committed.
    pub async fn commit(&self, record: AuditRecord) -> Result<(), AuditUnavailable> {
        self.send(record, writer::Message::Write, true).await
    }

    /// Records a call refused before it ran (rate limit, concurrency,
    /// allow-list…): the first refusal of a caller with one code per
    /// interval is committed as its own row before this returns; later ones
    /// in the interval are counted into one aggregated row.
    pub async fn refused(&self, record: AuditRecord) -> Result<(), AuditUnavailable> {
        self.send(record, writer::Message::Refusal, false).await
    }

    /// Hands `record` to the writer as `message`, or (`inline`, when the
    /// log commits on callers' threads) commits it through the group.
    async fn send(
        &self,
        record: AuditRecord,
        message: fn(AuditRecord, writer::Done) -> writer::Message,
        inline: bool,
    ) -> Result<(), AuditUnavailable> {
        let result = match &self.inner {
            Inner::Off => return Ok(()),
            Inner::Broken(reason) => Err(AuditUnavailable(reason.clone())),
            Inner::On { tx, journal: Some(journal), .. } if inline => {
                // One write to this process's journal; the writer moves the rows in batches.
                let row = writer::Row { record: record.bounded(), created_at: writer::timestamp(std::time::SystemTime::now()), refusal_count: None };
                match journal.append(&row) {
                    Ok(waiting) => {
                        if waiting == 1 {
                            let _ = tx.send(writer::Message::Journaled);
                        } else if waiting == journal::DRAIN_BATCH {
                            let _ = tx.send(writer::Message::Drain(None));
                        }
                        Ok(())
                    }
                    Err(e) => Err(AuditUnavailable(e)),
                }
            }
            Inner::On { tx, group: Some(group), .. } if inline => {
                let _queued = Queued::enter(&self.queued);
                let (done_tx, done_rx) = oneshot::channel();
                let row = writer::Row { record: record.bounded(), created_at: writer::timestamp(std::time::SystemTime::now()), refusal_count: None };
                let sent = match group.submit(row, done_tx) {
                    group::Submit::Closed => false,
                    group::Submit::Follow => true,
                    group::Submit::Lead => {
                        // Rows still queued after a few batches go to the writer thread
                        // (or, when it has stopped, this caller writes them too).
                        if !group.lead(group::LEADER_ROUNDS) && tx.send(writer::Message::Flush).is_err() {
                            group.lead(usize::MAX);
                        }
                        true
                    }
                };
                match sent {
                    false => Err(AuditUnavailable("the audit writer stopped".into())),
                    true => match done_rx.await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(AuditUnavailable(e)),
                        Err(_) => Err(AuditUnavailable("the audit writer stopped".into())),
                    },
                }
            }
            Inner::On { tx, .. } => {
                let _queued = Queued::enter(&self.queued);
                let (done_tx, done_rx) = oneshot::channel();
                match tx.send(message(record.bounded(), done_tx)) {
                    Err(_) => Err(AuditUnavailable("the audit writer stopped".into())),
                    Ok(()) => match done_rx.await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(AuditUnavailable(e)),
                        Err(_) => Err(AuditUnavailable("the audit writer stopped".into())),
                    },
                }
            }
        };
        match (result, self.on_failure) {
            (Err(e), OnFailure::Warn) => {
                let lost = self.lost.fetch_add(1, Ordering::Relaxed) + 1;
                // The first loss and then every 100th: stderr must not flood either.
                if lost == 1 || lost % 100 == 0 {
                    tracing::warn!(lost, reason = %e.0, "an audit row could not be written; the call was answered anyway (--audit-on-failure warn)");
                }
                Ok(())
            }
            (result, _) => result,
        }
    }

    /// Commits what is queued (aggregated refusals included) and stops the writer (graceful shutdown).
    pub async fn close(&self) {
        if let Inner::On { tx, .. } = &self.inner {
            let (done_tx, done_rx) = oneshot::channel();
            if tx.send(writer::Message::Close(done_tx)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(10), done_rx).await;
            }
        }
    }
}

fn writer_config(options: AuditOptions) -> writer::WriterConfig {
    writer::WriterConfig { retention: options.retention, refusal_window: options.refusal_window }
}

/// A reader on a PostgreSQL audit log (the `audit` subcommands; SQLite
/// readers borrow a connection from [`open_connection`]).
pub async fn postgres_reader(url: &str) -> Result<AuditReader<'static>, String> {
    Ok(AuditReader::Postgres(postgres::reader_client(url).await?))
}

#[cfg(test)]
mod tests;
