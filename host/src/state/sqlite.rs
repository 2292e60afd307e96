//! The embedded store: `state.sqlite` in the data folder. Operations run on
//! the caller's own thread, one at a time under a mutex: an operation is a
//! few statements (tens of µs), far less than the two thread wake-ups a hop
//! to a dedicated store thread and back cost on a busy machine, and a
//! completion makes four of them. No transaction stays open across an
//! `.await`. A small thread refreshes the node heartbeat and deregisters the
//! node when the store is dropped.
//! Every operation that checks and changes runs in a `BEGIN IMMEDIATE`
//! transaction, so several processes sharing one data folder (IDE processes
//! over stdio) stay consistent: SQLite serialises their writers (a writer of
//! another process makes an operation wait, up to the busy timeout, on the
//! caller's thread).

use super::keys::{BucketKey, BucketKind, Handle};
use super::period::period_keys;
use super::{
    BucketState, LedgerId, LedgerRecord, PruneReport, ReservationId, Revocation, Retention, SpendAccount, SpendLimits, StateStore,
    StoreError, StoreFuture, TaskRecord, TaskStatus, TaskUpdate, backend, charged, check_reservation, check_value, invalid_amount,
    retry_after, tasks_all_running, too_many_keys, MAX_KEYS_PER_TOOL,
};
use crate::db::now_ms;
use crate::db::schema::{self, HEARTBEAT};
use omniroute_tool_contract::ledger::LedgerEntry;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The SQLite implementation of [`StateStore`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    retention: Retention,
    /// This store's row in `omniroute_nodes`.
    node_id: String,
    /// Dropped with the store: the heartbeat thread then deregisters the node.
    _stop: mpsc::Sender<()>,
    _checkpointer: crate::db::sqlite::Checkpointer,
}

impl SqliteStore {
    /// Opens (creating, 0600 in a 0700 folder) and migrates the database,
    /// then starts its heartbeat thread.
    pub fn open(path: &Path, retention: Retention) -> Result<SqliteStore, StoreError> {
        let mut conn = crate::db::sqlite::open(path).map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        let node_id = format!("sqlite-{}-{}", std::process::id(), crate::db::random_hex(6).map_err(backend)?);
        schema::migrate_sqlite(&mut conn, &super::schema::SCHEMA, &node_id)
            .map_err(|e| backend(format!("{}: {e}", path.display())))?;
        let checkpointer = crate::db::sqlite::Checkpointer::start(path, &conn).map_err(backend)?;
        let conn = Arc::new(Mutex::new(conn));
        let (stop, stopped) = mpsc::channel::<()>();
        let (thread_conn, thread_node) = (conn.clone(), node_id.clone());
        std::thread::Builder::new()
            .name("state-heartbeat".into())
            .spawn(move || heartbeat(&thread_conn, &stopped, &thread_node))
            .map_err(|e| backend(format!("cannot start the state heartbeat thread: {e}")))?;
        Ok(SqliteStore { conn, retention, node_id, _stop: stop, _checkpointer: checkpointer })
    }

    /// See [`touch_interval_ms`].
    fn touch_after(&self) -> i64 {
        touch_interval_ms(self.retention.idle)
    }

    /// Runs `f` now, on this thread (see the module doc); the future is ready.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let out = f(&mut lock(&self.conn));
        Box::pin(std::future::ready(out))
    }

    /// Runs `f` in a write transaction, now.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let out = f(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
    }
}

/// The connection, even after a panic while it was held: rusqlite rolls an
/// unfinished transaction back when it is dropped, so nothing half-done is left.
fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// Refreshes the node heartbeat until the store is dropped, then deregisters the node.
fn heartbeat(conn: &Mutex<Connection>, stopped: &mpsc::Receiver<()>, node_id: &str) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
        if let Err(e) = schema::heartbeat_sqlite(&lock(conn), node_id) {
            tracing::warn!(error = %e, "state store heartbeat failed");
        }
    }
    let _ = schema::leave_sqlite(&lock(conn), node_id);
}

fn owned(s: &str) -> String {
    s.to_owned()
}

/// Makes sure the bucket exists (creating a session or default bucket,
/// refreshing its last use when older than `touch_after` ms: the row and its
/// two last-use indexes are three page writes in the commit otherwise); a
/// missing handle bucket is not found.
fn ensure_bucket(tx: &Transaction<'_>, principal: &str, bucket: &BucketKey, now: i64, touch_after: i64) -> Result<(), StoreError> {
    let last_used: Option<i64> = tx
        .prepare_cached("SELECT last_used_ms FROM state_buckets WHERE principal = ?1 AND bucket = ?2")
        .and_then(|mut s| s.query_row(params![principal, bucket.as_str()], |r| r.get(0)).optional())
        .map_err(backend)?;
    match last_used {
        Some(last) if now - last < touch_after => return Ok(()),
        Some(_) => {
            tx.prepare_cached("UPDATE state_buckets SET last_used_ms = ?3 WHERE principal = ?1 AND bucket = ?2")
                .and_then(|mut s| s.execute(params![principal, bucket.as_str(), now]))
                .map_err(backend)?;
            return Ok(());
        }
        None if bucket.kind() == BucketKind::Handle => return Err(StoreError::NotFound),
        None => {}
    }
    tx.prepare_cached("INSERT INTO state_buckets (principal, bucket, kind, started_ms, last_used_ms) VALUES (?1, ?2, ?3, ?4, ?4)")
        .and_then(|mut s| s.execute(params![principal, bucket.as_str(), bucket.kind().as_str(), now]))
        .map_err(backend)?;
    Ok(())
}

/// How stale a bucket's last use may get before opening it writes a new
/// one: idle pruning needs minutes, not milliseconds, and a write is a
/// commit on every call. A quarter of the idle time at most, so a bucket in
/// use is never pruned.
fn touch_interval_ms(idle: Duration) -> i64 {
    (idle / 4).min(Duration::from_secs(60)).as_millis() as i64
}

fn ensure_principal(tx: &Transaction<'_>, principal: &str) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO state_principals (principal) VALUES (?1) ON CONFLICT (principal) DO NOTHING")
        .and_then(|mut s| s.execute([principal]))
        .map_err(backend)?;
    Ok(())
}

/// Deletes a bucket with its values and ledger entries.
fn delete_bucket(tx: &Transaction<'_>, principal: &str, bucket: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM state_values WHERE principal = ?1 AND bucket = ?2", params![principal, bucket]).map_err(backend)?;
    let entries = tx
        .execute("DELETE FROM state_ledger WHERE principal = ?1 AND bucket = ?2", params![principal, bucket])
        .map_err(backend)?;
    let kind: Option<String> = tx
        .query_row("DELETE FROM state_buckets WHERE principal = ?1 AND bucket = ?2 RETURNING kind", params![principal, bucket], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    let handles = i64::from(kind.as_deref() == Some(BucketKind::Handle.as_str()));
    tx.execute(
        "UPDATE state_principals SET ledger_entries = MAX(ledger_entries - ?2, 0), handles = MAX(handles - ?3, 0) WHERE principal = ?1",
        params![principal, entries as i64, handles],
    )
    .map_err(backend)?;
    Ok(())
}

fn parse_entry(json: &str) -> Result<LedgerEntry, StoreError> {
    serde_json::from_str(json).map_err(|e| backend(format!("a stored ledger entry is unreadable: {e}")))
}

fn entry_json(entry: &LedgerEntry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(backend)
}

fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn to_record((id, bucket, json): (i64, String, String)) -> Result<LedgerRecord, StoreError> {
    Ok(LedgerRecord { id: LedgerId(id), bucket: BucketKey::from_stored(bucket), entry: parse_entry(&json)? })
}

const TASK_COLUMNS: &str =
    "task_id, status, progress, total, message, result, cancel_requested, created_ms, updated_ms, expires_ms";

fn task_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRecord> {
    let status: String = r.get(1)?;
    Ok(TaskRecord {
        task_id: r.get(0)?,
        status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
        progress: r.get(2)?,
        total: r.get(3)?,
        message: r.get(4)?,
        result: r.get(5)?,
        cancel_requested: r.get::<_, i64>(6)? != 0,
        created_ms: r.get(7)?,
        updated_ms: r.get(8)?,
        expires_ms: r.get(9)?,
    })
}

/// Books a settlement on the bucket and the three period accounts.
fn book_settlement(
    tx: &Transaction<'_>,
    principal: &str,
    (bucket, amount, day, month): (&str, f64, &str, &str),
    charged: f64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE state_buckets SET reserved = MAX(reserved - ?3, 0), spent = spent + ?4 WHERE principal = ?1 AND bucket = ?2",
    )
    .and_then(|mut s| s.execute(params![principal, bucket, amount, charged]))
    .map_err(backend)?;
    tx.prepare_cached(
        "UPDATE state_spend SET reserved = MAX(reserved - ?4, 0), spent = spent + ?5, updated_ms = ?6
         WHERE principal = ?1 AND period IN (?2, ?3, 'total')",
    )
    .and_then(|mut s| s.execute(params![principal, day, month, amount, charged, now_ms()]))
    .map_err(backend)?;
    Ok(())
}

/// Appends a ledger entry (`request_id`, entry JSON), keeping the
/// principal's ledger at `max` entries (a full ledger drops its oldest).
fn append_entry(
    tx: &Transaction<'_>,
    principal: &str,
    bucket: &BucketKey,
    (request_id, json): (Option<&str>, &str),
    (max, touch_after): (i64, i64),
) -> Result<LedgerId, StoreError> {
    let now = now_ms();
    ensure_bucket(tx, principal, bucket, now, touch_after)?;
    ensure_principal(tx, principal)?;
    tx.prepare_cached("INSERT INTO state_ledger (principal, bucket, request_id, entry, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")
        .and_then(|mut s| s.execute(params![principal, bucket.as_str(), request_id, json, now]))
        .map_err(backend)?;
    let id = tx.last_insert_rowid();
    let count: i64 = tx
        .prepare_cached("UPDATE state_principals SET ledger_entries = ledger_entries + 1 WHERE principal = ?1 RETURNING ledger_entries")
        .and_then(|mut s| s.query_row([principal], |r| r.get(0)))
        .map_err(backend)?;
    if count > max {
        // A full ledger drops its oldest entry on every append: prepared once.
        tx.prepare_cached("DELETE FROM state_ledger WHERE id IN (SELECT id FROM state_ledger WHERE principal = ?1 ORDER BY id LIMIT ?2)")
            .and_then(|mut s| s.execute(params![principal, count - max]))
            .map_err(backend)?;
        tx.prepare_cached("UPDATE state_principals SET ledger_entries = ?2 WHERE principal = ?1")
            .and_then(|mut s| s.execute(params![principal, max]))
            .map_err(backend)?;
    }
    Ok(LedgerId(id))
}

/// Settles reservation `id` at `actual` (else its full amount); returns what was charged.
fn settle_reserved(tx: &Transaction<'_>, principal: &str, id: &str, actual: Option<f64>) -> Result<f64, StoreError> {
    let Some((bucket, amount, day, month)) = take_reservation(tx, principal, id)? else {
        return Err(StoreError::NotFound);
    };
    let charged = charged(actual, amount);
    book_settlement(tx, principal, (&bucket, amount, &day, &month), charged)?;
    Ok(charged)
}

/// Adds the cost of a completion nothing was reserved for to the bucket
/// (created if it is missing; the entry's append has made sure of it already
/// in the common case) and the principal's three period accounts.
fn book_unreserved(tx: &Transaction<'_>, principal: &str, bucket: &BucketKey, charged: f64, touch_after: i64) -> Result<f64, StoreError> {
    if charged <= 0.0 {
        return Ok(0.0);
    }
    let now = now_ms();
    let [day, month, total] = period_keys(now);
    let add = || {
        tx.prepare_cached("UPDATE state_buckets SET spent = spent + ?3 WHERE principal = ?1 AND bucket = ?2")
            .and_then(|mut s| s.execute(params![principal, bucket.as_str(), charged]))
            .map_err(backend)
    };
    if add()? == 0 {
        ensure_bucket(tx, principal, bucket, now, touch_after)?;
        add()?;
    }
    tx.prepare_cached(
        "INSERT INTO state_spend (principal, period, spent, reserved, updated_ms) VALUES (?1, ?2, ?5, 0, ?6), (?1, ?3, ?5, 0, ?6), (?1, ?4, ?5, 0, ?6)
         ON CONFLICT (principal, period) DO UPDATE SET spent = spent + excluded.spent, updated_ms = excluded.updated_ms",
    )
    .and_then(|mut s| s.execute(params![principal, day, month, total, charged, now]))
    .map_err(backend)?;
    Ok(charged)
}

type ReservationRow = (String, f64, String, String);

fn take_reservation(tx: &Transaction<'_>, principal: &str, id: &str) -> Result<Option<ReservationRow>, StoreError> {
    tx.prepare_cached("DELETE FROM state_reservations WHERE id = ?1 AND principal = ?2 RETURNING bucket, amount, day, month")
        .and_then(|mut s| s.query_row(params![id, principal], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
        .map_err(backend)
}

impl StateStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn mint_handle<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, Handle> {
        let principal = owned(principal);
        let max = self.retention.max_handles.max(1) as i64;
        self.write(move |tx| {
            let handle = Handle::mint().map_err(backend)?;
            let key = BucketKey::handle(&handle);
            let now = now_ms();
            ensure_principal(tx, &principal)?;
            tx.execute(
                "INSERT INTO state_buckets (principal, bucket, kind, started_ms, last_used_ms) VALUES (?1, ?2, 'handle', ?3, ?3)",
                params![principal, key.as_str(), now],
            )
            .map_err(backend)?;
            let count: i64 = tx
                .query_row("UPDATE state_principals SET handles = handles + 1 WHERE principal = ?1 RETURNING handles", [&principal], |r| r.get(0))
                .map_err(backend)?;
            if count > max {
                let victims: Vec<String> = tx
                    .prepare("SELECT bucket FROM state_buckets WHERE principal = ?1 AND kind = 'handle' AND bucket <> ?2 ORDER BY last_used_ms, bucket LIMIT ?3")
                    .and_then(|mut s| s.query_map(params![principal, key.as_str(), count - max], |r| r.get(0))?.collect())
                    .map_err(backend)?;
                for victim in victims {
                    delete_bucket(tx, &principal, &victim)?;
                }
            }
            Ok(handle)
        })
    }

    fn resolve<'a>(&'a self, principal: &'a str, handle: &'a str) -> StoreFuture<'a, Option<BucketKey>> {
        let Some(handle) = Handle::parse(handle) else { return Box::pin(async { Ok(None) }) };
        let principal = owned(principal);
        self.run(move |conn| {
            let key = BucketKey::handle(&handle);
            let found = conn
                .prepare_cached("UPDATE state_buckets SET last_used_ms = ?3 WHERE principal = ?1 AND bucket = ?2")
                .and_then(|mut s| s.execute(params![principal, key.as_str(), now_ms()]))
                .map_err(backend)?;
            Ok((found > 0).then_some(key))
        })
    }

    fn open_bucket<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey) -> StoreFuture<'a, BucketState> {
        let (principal, bucket) = (owned(principal), bucket.clone());
        // One statement: create-or-touch (a missing handle bucket is not created).
        let sql = if bucket.kind() == BucketKind::Handle {
            "UPDATE state_buckets SET last_used_ms = ?4 WHERE principal = ?1 AND bucket = ?2 AND kind = ?3
             RETURNING started_ms, budget_guard, spent, reserved"
        } else {
            "INSERT INTO state_buckets (principal, bucket, kind, started_ms, last_used_ms) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (principal, bucket) DO UPDATE SET last_used_ms = excluded.last_used_ms
             RETURNING started_ms, budget_guard, spent, reserved"
        };
        let touch_after = self.touch_after();
        self.run(move |conn| {
            let now = now_ms();
            // Most calls find their bucket used moments ago: a read, no commit.
            let recent = conn
                .prepare_cached(
                    "SELECT started_ms, budget_guard, spent, reserved FROM state_buckets
                     WHERE principal = ?1 AND bucket = ?2 AND kind = ?3 AND last_used_ms > ?4",
                )
                .and_then(|mut s| {
                    s.query_row(params![principal, bucket.as_str(), bucket.kind().as_str(), now - touch_after], |r| {
                        Ok(BucketState { started_ms: r.get(0)?, budget_guard: r.get(1)?, spent: r.get(2)?, reserved: r.get(3)? })
                    })
                    .optional()
                })
                .map_err(backend)?;
            if let Some(state) = recent {
                return Ok(state);
            }
            conn.prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_row(params![principal, bucket.as_str(), bucket.kind().as_str(), now], |r| {
                        Ok(BucketState { started_ms: r.get(0)?, budget_guard: r.get(1)?, spent: r.get(2)?, reserved: r.get(3)? })
                    })
                    .optional()
                })
                .map_err(backend)?
                .ok_or(StoreError::NotFound)
        })
    }

    fn set_guard<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, guard: Option<&'a str>) -> StoreFuture<'a, ()> {
        let (principal, bucket, guard) = (owned(principal), bucket.clone(), guard.map(owned));
        let touch = self.touch_after();
        self.write(move |tx| {
            ensure_bucket(tx, &principal, &bucket, now_ms(), touch)?;
            tx.execute(
                "UPDATE state_buckets SET budget_guard = ?3 WHERE principal = ?1 AND bucket = ?2",
                params![principal, bucket.as_str(), guard],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn get_value<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, tool: &'a str, key: &'a str) -> StoreFuture<'a, Option<String>> {
        let (principal, bucket, tool, key) = (owned(principal), bucket.clone(), owned(tool), owned(key));
        self.run(move |conn| {
            conn.prepare_cached("SELECT value FROM state_values WHERE principal = ?1 AND bucket = ?2 AND tool = ?3 AND key = ?4")
                .and_then(|mut s| s.query_row(params![principal, bucket.as_str(), tool, key], |r| r.get(0)).optional())
                .map_err(backend)
        })
    }

    fn set_value<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, tool: &'a str, key: &'a str, value: &'a str) -> StoreFuture<'a, ()> {
        if let Err(e) = check_value(key, value) {
            return Box::pin(async move { Err(e) });
        }
        let (principal, bucket, tool, key, value) = (owned(principal), bucket.clone(), owned(tool), owned(key), owned(value));
        let touch = self.touch_after();
        self.write(move |tx| {
            ensure_bucket(tx, &principal, &bucket, now_ms(), touch)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM state_values WHERE principal = ?1 AND bucket = ?2 AND tool = ?3 AND key = ?4")
                .and_then(|mut s| s.exists(params![principal, bucket.as_str(), tool, key]))
                .map_err(backend)?;
            if !exists {
                let count: i64 = tx
                    .prepare_cached("SELECT COUNT(*) FROM state_values WHERE principal = ?1 AND bucket = ?2 AND tool = ?3")
                    .and_then(|mut s| s.query_row(params![principal, bucket.as_str(), tool], |r| r.get(0)))
                    .map_err(backend)?;
                if count >= MAX_KEYS_PER_TOOL as i64 {
                    return Err(too_many_keys());
                }
            }
            tx.prepare_cached(
                "INSERT INTO state_values (principal, bucket, tool, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (principal, bucket, tool, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![principal, bucket.as_str(), tool, key, value]))
            .map_err(backend)?;
            Ok(())
        })
    }

    fn append_ledger<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, entry: &'a LedgerEntry) -> StoreFuture<'a, LedgerId> {
        let json = match entry_json(entry) {
            Ok(j) => j,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let (principal, bucket, request_id) = (owned(principal), bucket.clone(), entry.request_id.clone());
        let max = self.retention.max_ledger_entries.max(1) as i64;
        let touch = self.touch_after();
        self.write(move |tx| append_entry(tx, &principal, &bucket, (request_id.as_deref(), &json), (max, touch)))
    }

    fn update_ledger<'a>(&'a self, principal: &'a str, id: LedgerId, entry: &'a LedgerEntry) -> StoreFuture<'a, bool> {
        let json = match entry_json(entry) {
            Ok(j) => j,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let (principal, request_id) = (owned(principal), entry.request_id.clone());
        self.run(move |conn| {
            conn.prepare_cached("UPDATE state_ledger SET entry = ?3, request_id = ?4 WHERE id = ?1 AND principal = ?2")
                .and_then(|mut s| s.execute(params![id.0, principal, json, request_id]))
                .map(|n| n > 0)
                .map_err(backend)
        })
    }

    fn ledger<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey) -> StoreFuture<'a, Vec<LedgerRecord>> {
        let (principal, bucket) = (owned(principal), bucket.clone());
        self.run(move |conn| {
            let rows: Vec<_> = conn
                .prepare_cached("SELECT id, bucket, entry FROM state_ledger WHERE principal = ?1 AND bucket = ?2 ORDER BY id")
                .and_then(|mut s| s.query_map(params![principal, bucket.as_str()], ledger_row)?.collect::<Result<_, _>>())
                .map_err(backend)?;
            rows.into_iter().map(to_record).collect()
        })
    }

    fn find_request<'a>(&'a self, principal: &'a str, request_id: &'a str) -> StoreFuture<'a, Option<LedgerRecord>> {
        let (principal, request_id) = (owned(principal), owned(request_id));
        self.run(move |conn| {
            let row = conn
                .prepare_cached("SELECT id, bucket, entry FROM state_ledger WHERE principal = ?1 AND request_id = ?2 ORDER BY id DESC LIMIT 1")
                .and_then(|mut s| s.query_row(params![principal, request_id], ledger_row).optional())
                .map_err(backend)?;
            row.map(to_record).transpose()
        })
    }

    fn reserve<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, amount: f64, limits: SpendLimits) -> StoreFuture<'a, ReservationId> {
        if let Some(e) = invalid_amount(amount) {
            return Box::pin(async move { Err(e) });
        }
        let (principal, bucket) = (owned(principal), bucket.clone());
        let touch = self.touch_after();
        self.write(move |tx| {
            let now = now_ms();
            let [day, month, total] = period_keys(now);
            let cap_key = limits.cap.map(|c| c.period.key(now)).unwrap_or_else(|| total.clone());
            ensure_bucket(tx, &principal, &bucket, now, touch)?;
            let in_bucket: (f64, f64) = tx
                .prepare_cached("SELECT spent, reserved FROM state_buckets WHERE principal = ?1 AND bucket = ?2")
                .and_then(|mut s| s.query_row(params![principal, bucket.as_str()], |r| Ok((r.get(0)?, r.get(1)?))))
                .map_err(backend)?;
            let account: (f64, f64) = tx
                .prepare_cached("SELECT spent, reserved FROM state_spend WHERE principal = ?1 AND period = ?2")
                .and_then(|mut s| s.query_row(params![principal, cap_key], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(backend)?
                .unwrap_or((0.0, 0.0));
            check_reservation(in_bucket, account, amount, &limits, &cap_key).map_err(StoreError::Refused)?;
            let id = format!("rsv_{}", crate::db::random_hex(16).map_err(backend)?);
            tx.prepare_cached(
                "INSERT INTO state_reservations (id, principal, bucket, amount, day, month, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| s.execute(params![id, principal, bucket.as_str(), amount, day, month, now]))
            .map_err(backend)?;
            tx.prepare_cached("UPDATE state_buckets SET reserved = reserved + ?3 WHERE principal = ?1 AND bucket = ?2")
                .and_then(|mut s| s.execute(params![principal, bucket.as_str(), amount]))
                .map_err(backend)?;
            tx.prepare_cached(
                "INSERT INTO state_spend (principal, period, spent, reserved, updated_ms) VALUES (?1, ?2, 0, ?5, ?6), (?1, ?3, 0, ?5, ?6), (?1, ?4, 0, ?5, ?6)
                 ON CONFLICT (principal, period) DO UPDATE SET reserved = reserved + excluded.reserved, updated_ms = excluded.updated_ms",
            )
            .and_then(|mut s| s.execute(params![principal, day, month, total, amount, now]))
            .map_err(backend)?;
            Ok(ReservationId(id))
        })
    }

    fn settle<'a>(&'a self, principal: &'a str, reservation: &'a ReservationId, actual: Option<f64>) -> StoreFuture<'a, f64> {
        let (principal, id) = (owned(principal), reservation.0.clone());
        self.write(move |tx| settle_reserved(tx, &principal, &id, actual))
    }

    fn finish_completion<'a>(
        &'a self,
        principal: &'a str,
        bucket: &'a BucketKey,
        entry: Option<&'a LedgerEntry>,
        reservation: Option<&'a ReservationId>,
        actual: Option<f64>,
    ) -> StoreFuture<'a, (Option<LedgerId>, f64)> {
        let entry = match entry.map(|e| entry_json(e).map(|json| (e.request_id.clone(), json))).transpose() {
            Ok(entry) => entry,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let (principal, bucket, reservation) = (owned(principal), bucket.clone(), reservation.map(|r| r.0.clone()));
        let max = self.retention.max_ledger_entries.max(1) as i64;
        let touch = self.touch_after();
        self.write(move |tx| {
            let id = match &entry {
                Some((request_id, json)) => Some(append_entry(tx, &principal, &bucket, (request_id.as_deref(), json), (max, touch))?),
                None => None,
            };
            let charged = match &reservation {
                Some(reservation) => settle_reserved(tx, &principal, reservation, actual)?,
                None => book_unreserved(tx, &principal, &bucket, charged(actual, 0.0), touch)?,
            };
            Ok((id, charged))
        })
    }

    fn spend<'a>(&'a self, principal: &'a str, period_key: &'a str) -> StoreFuture<'a, SpendAccount> {
        let (principal, key) = (owned(principal), owned(period_key));
        self.run(move |conn| {
            conn.prepare_cached("SELECT spent, reserved FROM state_spend WHERE principal = ?1 AND period = ?2")
                .and_then(|mut s| s.query_row(params![principal, key], |r| Ok(SpendAccount { spent: r.get(0)?, reserved: r.get(1)? })).optional())
                .map(Option::unwrap_or_default)
                .map_err(backend)
        })
    }

    fn take_tokens<'a>(&'a self, principal: &'a str, name: &'a str, capacity: u32, refill_per_sec: f64, count: u32) -> StoreFuture<'a, ()> {
        let (principal, name) = (owned(principal), owned(name));
        let capacity = f64::from(capacity.max(1));
        let count = f64::from(count.max(1)).min(capacity);
        let rate = if refill_per_sec.is_finite() { refill_per_sec.max(0.0) } else { 0.0 };
        self.run(move |conn| {
            let now = now_ms();
            let taken = conn
                .prepare_cached(
                    "INSERT INTO state_rate (principal, name, tokens, updated_ms) VALUES (?1, ?2, ?3 - ?6, ?5)
                     ON CONFLICT (principal, name) DO UPDATE
                       SET tokens = MIN(?3, tokens + MAX(?5 - updated_ms, 0) * ?4 / 1000.0) - ?6, updated_ms = ?5
                       WHERE MIN(?3, tokens + MAX(?5 - updated_ms, 0) * ?4 / 1000.0) >= ?6
                     RETURNING tokens",
                )
                .and_then(|mut s| s.query_row(params![principal, name, capacity, rate, now, count], |r| r.get::<_, f64>(0)).optional())
                .map_err(backend)?;
            if taken.is_some() {
                return Ok(());
            }
            let available: f64 = conn
                .prepare_cached("SELECT MIN(?3, tokens + MAX(?5 - updated_ms, 0) * ?4 / 1000.0) FROM state_rate WHERE principal = ?1 AND name = ?2")
                .and_then(|mut s| s.query_row(params![principal, name, capacity, rate, now], |r| r.get(0)))
                .map_err(backend)?;
            Err(StoreError::RateLimited(retry_after(available, rate)))
        })
    }

    fn create_task<'a>(&'a self, principal: &'a str, ttl: Duration) -> StoreFuture<'a, TaskRecord> {
        let principal = owned(principal);
        let max = self.retention.max_tasks.max(1) as i64;
        self.write(move |tx| {
            let now = now_ms();
            ensure_principal(tx, &principal)?;
            let expired = tx
                .execute("DELETE FROM state_tasks WHERE principal = ?1 AND expires_ms <= ?2", params![principal, now])
                .map_err(backend)?;
            let count: i64 = tx
                .query_row(
                    "UPDATE state_principals SET tasks = MAX(tasks - ?2, 0) + 1 WHERE principal = ?1 RETURNING tasks",
                    params![principal, expired as i64],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if count > max {
                let evicted = tx
                    .execute(
                        "DELETE FROM state_tasks WHERE rowid IN (SELECT rowid FROM state_tasks WHERE principal = ?1
                           AND status IN ('completed', 'failed', 'cancelled') ORDER BY created_ms LIMIT 1)",
                        [&principal],
                    )
                    .map_err(backend)?;
                if evicted == 0 {
                    return Err(tasks_all_running(max));
                }
                tx.execute("UPDATE state_principals SET tasks = tasks - 1 WHERE principal = ?1", [&principal]).map_err(backend)?;
            }
            let record = TaskRecord::started(now, ttl)?;
            tx.execute(
                "INSERT INTO state_tasks (principal, task_id, status, created_ms, updated_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![principal, record.task_id, record.status.as_str(), now, record.expires_ms],
            )
            .map_err(backend)?;
            Ok(record)
        })
    }

    fn update_task<'a>(&'a self, principal: &'a str, task_id: &'a str, update: TaskUpdate) -> StoreFuture<'a, bool> {
        let (principal, task_id) = (owned(principal), owned(task_id));
        self.run(move |conn| {
            let now = now_ms();
            conn.execute(
                "UPDATE state_tasks SET status = COALESCE(?3, status), progress = COALESCE(?4, progress), total = COALESCE(?5, total),
                   message = COALESCE(?6, message), updated_ms = ?7
                 WHERE principal = ?1 AND task_id = ?2 AND expires_ms > ?7",
                params![principal, task_id, update.status.map(TaskStatus::as_str), update.progress, update.total, update.message, now],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
    }

    fn finish_task<'a>(&'a self, principal: &'a str, task_id: &'a str, status: TaskStatus, result: &'a str) -> StoreFuture<'a, bool> {
        let (principal, task_id, result) = (owned(principal), owned(task_id), owned(result));
        self.run(move |conn| {
            conn.execute(
                "UPDATE state_tasks SET status = ?3, result = ?4, updated_ms = ?5 WHERE principal = ?1 AND task_id = ?2 AND expires_ms > ?5",
                params![principal, task_id, status.as_str(), result, now_ms()],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
    }

    fn get_task<'a>(&'a self, principal: &'a str, task_id: &'a str) -> StoreFuture<'a, Option<TaskRecord>> {
        let (principal, task_id) = (owned(principal), owned(task_id));
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {TASK_COLUMNS} FROM state_tasks WHERE principal = ?1 AND task_id = ?2 AND expires_ms > ?3"),
                params![principal, task_id, now_ms()],
                task_row,
            )
            .optional()
            .map_err(backend)
        })
    }

    fn list_tasks<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, Vec<TaskRecord>> {
        let principal = owned(principal);
        self.run(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {TASK_COLUMNS} FROM state_tasks WHERE principal = ?1 AND expires_ms > ?2 ORDER BY created_ms DESC, task_id DESC"
                ))
                .map_err(backend)?;
            stmt.query_map(params![principal, now_ms()], task_row).and_then(|rows| rows.collect()).map_err(backend)
        })
    }

    fn cancel_task<'a>(&'a self, principal: &'a str, task_id: &'a str) -> StoreFuture<'a, bool> {
        let (principal, task_id) = (owned(principal), owned(task_id));
        self.run(move |conn| {
            conn.execute(
                "UPDATE state_tasks SET cancel_requested = 1, updated_ms = ?3 WHERE principal = ?1 AND task_id = ?2 AND expires_ms > ?3",
                params![principal, task_id, now_ms()],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
    }

    fn prune(&self, now: i64) -> StoreFuture<'_, PruneReport> {
        let retention = self.retention;
        self.write(move |tx| {
            let idle_before = now - retention.idle.as_millis().min(i64::MAX as u128) as i64;
            let stale_before = now - retention.stale_reservation.as_millis().min(i64::MAX as u128) as i64;
            let mut report = PruneReport::default();
            // Reservations of crashed nodes: charged in full, never forgotten.
            let stale: Vec<(String, String)> = tx
                .prepare("SELECT principal, id FROM state_reservations WHERE created_ms < ?1")
                .and_then(|mut s| s.query_map([stale_before], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(backend)?;
            for (principal, id) in stale {
                if let Some((bucket, amount, day, month)) = take_reservation(tx, &principal, &id)? {
                    book_settlement(tx, &principal, (&bucket, amount, &day, &month), amount)?;
                    report.stale_reservations += 1;
                }
            }
            let idle = "SELECT principal, bucket FROM state_buckets WHERE last_used_ms < ?1";
            tx.execute(&format!("DELETE FROM state_values WHERE (principal, bucket) IN ({idle})"), [idle_before]).map_err(backend)?;
            report.ledger_entries =
                tx.execute(&format!("DELETE FROM state_ledger WHERE (principal, bucket) IN ({idle})"), [idle_before]).map_err(backend)? as u64;
            report.buckets = tx.execute("DELETE FROM state_buckets WHERE last_used_ms < ?1", [idle_before]).map_err(backend)? as u64;
            report.tasks = tx.execute("DELETE FROM state_tasks WHERE expires_ms <= ?1", [now]).map_err(backend)? as u64;
            report.rate_buckets = tx.execute("DELETE FROM state_rate WHERE updated_ms < ?1", [idle_before]).map_err(backend)? as u64;
            tx.execute_batch(
                "UPDATE state_principals SET
                   handles = (SELECT COUNT(*) FROM state_buckets b WHERE b.principal = state_principals.principal AND b.kind = 'handle'),
                   ledger_entries = (SELECT COUNT(*) FROM state_ledger l WHERE l.principal = state_principals.principal),
                   tasks = (SELECT COUNT(*) FROM state_tasks t WHERE t.principal = state_principals.principal);
                 DELETE FROM state_principals WHERE handles = 0 AND ledger_entries = 0 AND tasks = 0;",
            )
            .map_err(backend)?;
            Ok(report)
        })
    }

    fn handle_counts(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare("SELECT principal, handles FROM state_principals WHERE handles > 0 ORDER BY principal")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(backend)?;
            rows.map(|r| r.map(|(p, n)| (p, u64::try_from(n).unwrap_or(0))).map_err(backend)).collect()
        })
    }

    fn revoke<'a>(&'a self, principal: &'a str, reason: &'a str) -> StoreFuture<'a, ()> {
        let (principal, reason) = (principal.to_owned(), reason.to_owned());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO state_revocations (principal, revoked_ms, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (principal) DO UPDATE SET revoked_ms = excluded.revoked_ms, reason = excluded.reason",
                params![principal, now_ms(), reason],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn restore<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, bool> {
        let principal = principal.to_owned();
        self.run(move |conn| {
            let removed = conn.execute("DELETE FROM state_revocations WHERE principal = ?1", params![principal]).map_err(backend)?;
            Ok(removed > 0)
        })
    }

    fn revocations(&self) -> StoreFuture<'_, Vec<Revocation>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT principal, revoked_ms, reason FROM state_revocations ORDER BY principal").map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok(Revocation { principal: r.get(0)?, revoked_ms: r.get(1)?, reason: r.get(2)? }))
                .map_err(backend)?;
            rows.map(|r| r.map_err(backend)).collect()
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        let node_id = self.node_id.clone();
        self.run(move |conn| schema::leave_sqlite(conn, &node_id).map_err(backend))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_used(store: &SqliteStore, bucket: &BucketKey) -> i64 {
        lock(&store.conn)
            .query_row("SELECT last_used_ms FROM state_buckets WHERE principal = 'p' AND bucket = ?1", [bucket.as_str()], |r| r.get(0))
            .unwrap()
    }

    fn set_last_used(store: &SqliteStore, bucket: &BucketKey, ms: i64) {
        lock(&store.conn).execute("UPDATE state_buckets SET last_used_ms = ?2 WHERE principal = 'p' AND bucket = ?1", params![bucket.as_str(), ms]).unwrap();
    }

    /// A bucket used moments ago is read, not written; one older than the
    /// touch interval gets its last use refreshed by any operation.
    #[tokio::test]
    async fn a_bucket_last_use_is_written_only_once_it_is_older_than_the_touch_interval() {
        let dir = std::env::temp_dir().join(format!("omr-touch-{}-{}", std::process::id(), crate::db::random_hex(6).unwrap()));
        let retention = Retention { idle: Duration::from_secs(3600), ..Retention::default() };
        let store = SqliteStore::open(&dir.join("state.sqlite"), retention).unwrap();
        assert_eq!(store.touch_after(), 60_000, "a minute at most");
        let bucket = BucketKey::session("touch");
        store.open_bucket("p", &bucket).await.unwrap();

        let recent = now_ms() - 10_000;
        set_last_used(&store, &bucket, recent);
        store.open_bucket("p", &bucket).await.unwrap();
        store.set_value("p", &bucket, "tool", "k", "v").await.unwrap();
        assert_eq!(last_used(&store, &bucket), recent, "used 10 s ago: nothing written");

        let stale = now_ms() - 120_000;
        set_last_used(&store, &bucket, stale);
        store.open_bucket("p", &bucket).await.unwrap();
        assert!(last_used(&store, &bucket) > now_ms() - 5_000, "opening a bucket unused for 2 min refreshes it");
        set_last_used(&store, &bucket, stale);
        store.set_value("p", &bucket, "tool", "k", "w").await.unwrap();
        assert!(last_used(&store, &bucket) > now_ms() - 5_000, "so does a write");

        // A short idle time shortens the interval: a bucket in use is never pruned.
        let short = SqliteStore::open(&dir.join("short.sqlite"), Retention { idle: Duration::from_secs(8), ..Retention::default() }).unwrap();
        assert_eq!(short.touch_after(), 2_000);
        drop((store, short));
        let _ = std::fs::remove_dir_all(dir);
    }
}
