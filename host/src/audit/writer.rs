//! The dedicated writer thread: callers hand it a record and wait for the
//! commit; it takes every record that is waiting and commits them in one
//! transaction (group commit), so durability before each response does not
//! cost one fsync per call. The same loop serves SQLite and PostgreSQL
//! through a [`Sink`].
//!
//! Refused calls (rate limit, concurrency, allow-list…) are aggregated: the
//! first refusal of a caller with one code in an interval gets its own row,
//! committed before the response like any call; the ones after it in that
//! interval are counted and written as one row with `refusal_count` when the
//! interval ends (or the server stops). A flood of refusals so costs one row
//! per caller and code per interval; a SIGKILL loses at most one interval's
//! count, never the first refusal.

use super::group::Group;
use super::record::AuditRecord;
pub(super) use super::sink::{Done, Row, Sink};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most records one transaction takes.
const MAX_BATCH: usize = 1024;
/// How often the loop wakes without messages (aggregates, pruning, heartbeat).
const TICK: Duration = Duration::from_secs(1);
/// How often old rows are pruned when a retention is set.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long journaled rows wait at most before they are drained (fewer
/// than [`super::journal::DRAIN_BATCH`] of them), and how often a failing
/// drain is retried.
const DRAIN_AFTER: Duration = Duration::from_millis(100);
const DRAIN_RETRY: Duration = Duration::from_secs(1);

pub(super) enum Message {
    Write(AuditRecord, Done),
    /// A refused call: aggregated per caller and code (see the module doc).
    Refusal(AuditRecord, Done),
    /// A caller-leader handed the group-commit queue over: drain it.
    Flush,
    /// The first row since the last drain was journaled: drain within
    /// [`DRAIN_AFTER`].
    Journaled,
    /// Move the journaled rows into the tables now (a batch is full, or a
    /// caller waits for it with the reply channel).
    Drain(Option<oneshot::Sender<Result<usize, String>>>),
    /// Commit what is queued and stop (graceful shutdown).
    Close(oneshot::Sender<()>),
}

/// How the loop behaves.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriterConfig {
    /// Delete rows older than this (`--audit-retention-days`).
    pub retention: Option<Duration>,
    /// The aggregation interval of refused calls.
    pub refusal_window: Duration,
}

/// `YYYY-MM-DD HH:MM:SS` UTC at `t`.
pub(super) fn timestamp(t: std::time::SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    dt.format(&format).unwrap_or_else(|_| "1970-01-01 00:00:00".to_owned())
}

/// Lowers the calling thread's scheduling priority (Linux: nice 10), so
/// background batches yield the CPU to threads that answer calls.
pub(super) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority on the calling thread (who = 0) only changes its nice value.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    }
}

/// Refusals of one caller with one code in the current interval.
struct Aggregate {
    opened: Instant,
    /// Refusals after the first one, not yet written.
    pending: i64,
    /// The newest of them: its row carries the count.
    last: Option<AuditRecord>,
}

#[derive(Default)]
struct Aggregates(HashMap<(String, String), Aggregate>);

impl Aggregates {
    /// Whether this refusal opens an interval (and so gets its own row).
    fn admit(&mut self, record: &AuditRecord, window: Duration, due: &mut Vec<Row>) -> bool {
        let key = (record.caller.clone(), record.error_code.clone().unwrap_or_default());
        match self.0.get_mut(&key) {
            Some(agg) if agg.opened.elapsed() < window => {
                agg.pending += 1;
                agg.last = Some(record.clone());
                false
            }
            existing => {
                if let Some(agg) = existing {
                    due.extend(agg.flush());
                }
                self.0.insert(key, Aggregate { opened: Instant::now(), pending: 0, last: None });
                true
            }
        }
    }

    /// Rows for the intervals that have ended (all of them when `all`).
    fn due(&mut self, window: Duration, all: bool) -> Vec<Row> {
        let mut rows = Vec::new();
        self.0.retain(|_, agg| {
            if all || agg.opened.elapsed() >= window {
                rows.extend(agg.flush());
                false
            } else {
                true
            }
        });
        rows
    }
}

impl Aggregate {
    fn flush(&mut self) -> Option<Row> {
        let mut record = self.last.take()?;
        let count = std::mem::take(&mut self.pending);
        record.output_summary = format!("(aggregated: {count} refused calls in this interval)");
        record.duration_ms = 0;
        record.gateway_calls.clear();
        Some(Row { record, created_at: timestamp(std::time::SystemTime::now()), refusal_count: Some(count) })
    }
}

/// Runs until every sender is gone or a `Close` arrives.
pub(super) fn run(group: std::sync::Arc<Group>, rx: mpsc::Receiver<Message>, config: WriterConfig) {
    let mut aggregates = Aggregates::default();
    let mut last_prune: Option<Instant> = None;
    let mut last_heartbeat = Instant::now();
    // Since when journaled rows wait for a drain (or a failed drain's retry).
    let mut waiting_since: Option<Instant> = None;
    // The last drain moved nothing although rows wait (a row still being written): retry slowly.
    let mut stalled = false;
    let mut batch: Vec<(Row, Option<Done>)> = Vec::new();
    loop {
        let mut closing = None;
        let mut disconnected = false;
        let mut drain_now = false;
        let mut replies = Vec::new();
        // Journaled rows are drained [`DRAIN_AFTER`] after the first of them came,
        // or (a failing database, a drain that found nothing) retried every second.
        let drain_wait = if stalled || group.drain_error().is_some() { DRAIN_RETRY } else { DRAIN_AFTER };
        let wait = match waiting_since {
            Some(since) => drain_wait.saturating_sub(since.elapsed()),
            None => TICK,
        };
        let mut take = |m: Message, batch: &mut Vec<(Row, Option<Done>)>, closing: &mut Option<oneshot::Sender<()>>| match m {
            Message::Write(record, done) => {
                batch.push((Row { record, created_at: timestamp(std::time::SystemTime::now()), refusal_count: None }, Some(done)))
            }
            Message::Refusal(record, done) => {
                let mut due = Vec::new();
                if aggregates.admit(&record, config.refusal_window, &mut due) {
                    batch.push((Row { record, created_at: timestamp(std::time::SystemTime::now()), refusal_count: None }, Some(done)));
                } else {
                    // Counted: answered now, written when the interval ends.
                    let _ = done.send(Ok(()));
                }
                batch.extend(due.into_iter().map(|r| (r, None)));
            }
            Message::Flush => {
                group.lead(usize::MAX);
            }
            Message::Journaled => {
                waiting_since.get_or_insert_with(Instant::now);
            }
            Message::Drain(reply) => {
                drain_now = true;
                replies.extend(reply);
            }
            Message::Close(done) => *closing = Some(done),
        };
        match rx.recv_timeout(wait) {
            Ok(m) => take(m, &mut batch, &mut closing),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => disconnected = true,
        }
        while closing.is_none() && !disconnected && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => take(m, &mut batch, &mut closing),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => disconnected = true,
            }
        }
        let stopping = closing.is_some() || disconnected;
        if waiting_since.is_none() && group.has_pending() {
            waiting_since = Some(Instant::now());
        }
        if drain_now || waiting_since.is_some_and(|since| since.elapsed() >= drain_wait) {
            let result = group.drain(false);
            // Rows journaled meanwhile wait from now (they send no message).
            waiting_since = group.has_pending().then(Instant::now);
            stalled = waiting_since.is_some() && matches!(result, Ok(0));
            for reply in replies.drain(..) {
                let _ = reply.send(result.clone());
            }
        }
        batch.extend(aggregates.due(config.refusal_window, stopping).into_iter().map(|r| (r, None)));
        if !batch.is_empty() {
            let rows: Vec<Row> = batch.iter().map(|(r, _)| r.clone()).collect();
            let result = group.with_sink(|sink| sink.write(&rows));
            if let Err(e) = &result {
                tracing::error!(error = %e, rows = rows.len(), "audit write failed");
            }
            for (_, done) in batch.drain(..) {
                if let Some(done) = done {
                    let _ = done.send(result.clone());
                }
            }
        }
        if let Some(retention) = config.retention {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(Instant::now());
                let cutoff = timestamp(std::time::SystemTime::now() - retention);
                match group.with_sink(|sink| sink.prune(&cutoff)) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, before = %cutoff, "pruned old audit rows (the chain continues from the recorded anchor)"),
                    Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
                }
            }
        }
        if last_heartbeat.elapsed() >= crate::db::schema::HEARTBEAT {
            last_heartbeat = Instant::now();
            group.with_sink(|sink| sink.heartbeat());
            // Rows a crashed process left in its journal (failures are kept for `check`).
            let _ = group.drain(true);
        }
        if stopping {
            group.close();
            group.with_sink(|sink| sink.leave());
            if let Some(done) = closing {
                let _ = done.send(());
            }
            return;
        }
    }
}
