//! Group commit on the callers' own threads (SQLite): the first caller that
//! finds no commit in progress becomes the leader and writes its row, plus
//! every row queued meanwhile, in one transaction on its own thread; callers
//! that arrive while a commit runs queue their row and wait for the leader's
//! answer. A lone call so commits without a hand-off to another thread and
//! back (two thread wake-ups, ~100-200 µs on a loaded 2-core machine), and
//! concurrent calls still share transactions.
//!
//! A leader writes at most [`LEADER_ROUNDS`] batches, then hands the queue
//! to the writer thread (which also owns refusals, pruning and heartbeats)
//! so no caller's answer waits on an endless stream of other callers' rows.
//! PostgreSQL is written only by the writer thread (its commits are network
//! round trips, which must not block a runtime worker).

use super::sink::{Done, Row, Sink};
use std::sync::{Mutex, MutexGuard};

/// Batches a leader writes before it hands the rest to the writer thread.
pub(super) const LEADER_ROUNDS: usize = 4;

/// The sink, shared by the writer thread and (when inline) the callers.
pub(super) struct Group {
    sink: Mutex<Box<dyn Sink>>,
    pending: Mutex<Pending>,
    /// Why the last drain of the journal failed, while it keeps failing.
    drain_error: Mutex<Option<String>>,
}

#[derive(Default)]
struct Pending {
    rows: Vec<(Row, Done)>,
    /// A leader (a caller or the writer thread) is draining `rows`.
    writing: bool,
    /// The log has been closed: no more rows are taken.
    closed: bool,
}

/// What [`Group::submit`] decided for one row.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Submit {
    /// Nobody is writing: the caller leads (calls [`Group::lead`]).
    Lead,
    /// A leader will write the row and answer it.
    Follow,
    /// The log is closed; the row was not taken.
    Closed,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding either lock leaves no half-done update behind
    // (the queue is taken whole; the sink's transaction rolls back).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Group {
    pub(super) fn new(sink: impl Sink) -> Self {
        Self { sink: Mutex::new(Box::new(sink)), pending: Mutex::new(Pending::default()), drain_error: Mutex::new(None) }
    }

    /// Moves journaled rows into the tables (see `journal.rs`), and
    /// remembers whether that works: while it fails, calls are refused
    /// ([`Group::drain_error`]); the rows wait in the journal.
    pub(super) fn drain(&self, all: bool) -> Result<usize, String> {
        let result = self.with_sink(|sink| sink.drain(all));
        let mut error = lock(&self.drain_error);
        match &result {
            Ok(moved) => {
                tracing::debug!(moved, all, "journaled audit rows moved into the tables");
                if error.take().is_some() {
                    tracing::info!("journaled audit rows reach the database again");
                }
            }
            Err(e) => {
                if error.is_none() {
                    tracing::error!(error = %e, "cannot move journaled audit rows into the database; they wait in the journal, and calls are refused until it works (unless --audit-on-failure warn)");
                }
                *error = Some(e.clone());
            }
        }
        result
    }

    /// Why journaled rows cannot reach the database, while they cannot.
    pub(super) fn drain_error(&self) -> Option<String> {
        lock(&self.drain_error).clone()
    }

    /// Whether this process's journal holds rows not yet in the tables.
    pub(super) fn has_pending(&self) -> bool {
        self.with_sink(|sink| sink.has_pending())
    }

    /// Runs `f` on the sink (the writer thread's batches, pruning, heartbeats).
    pub(super) fn with_sink<T>(&self, f: impl FnOnce(&mut dyn Sink) -> T) -> T {
        let mut sink = lock(&self.sink);
        f(sink.as_mut())
    }

    /// Queues `row`; `done` gets the commit's result.
    pub(super) fn submit(&self, row: Row, done: Done) -> Submit {
        let mut pending = lock(&self.pending);
        if pending.closed {
            return Submit::Closed;
        }
        pending.rows.push((row, done));
        if pending.writing {
            Submit::Follow
        } else {
            pending.writing = true;
            Submit::Lead
        }
    }

    /// Writes queued batches, at most `rounds` of them; `true` when the
    /// queue is empty (leadership released), `false` when rows remain and
    /// the caller must hand leadership on (it is still held).
    pub(super) fn lead(&self, rounds: usize) -> bool {
        for round in 0.. {
            let batch = {
                let mut pending = lock(&self.pending);
                if pending.rows.is_empty() {
                    pending.writing = false;
                    return true;
                }
                if round >= rounds {
                    return false;
                }
                std::mem::take(&mut pending.rows)
            };
            let (rows, dones): (Vec<Row>, Vec<Done>) = batch.into_iter().unzip();
            let result = self.with_sink(|sink| sink.write(&rows));
            if let Err(e) = &result {
                tracing::error!(error = %e, rows = rows.len(), "audit write failed");
            }
            for done in dones {
                let _ = done.send(result.clone());
            }
        }
        unreachable!("the loop returns")
    }

    /// Takes no more rows; commits those queued unless a leader is at it.
    pub(super) fn close(&self) {
        let lead = {
            let mut pending = lock(&self.pending);
            pending.closed = true;
            !std::mem::replace(&mut pending.writing, true)
        };
        if lead {
            self.lead(usize::MAX);
        }
    }
}
