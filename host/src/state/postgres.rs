//! The shared store: PostgreSQL for several nodes (`--state-url
//! postgres://…`). Each node keeps a small connection pool; operations that
//! check and change spend or quotas take a per-principal advisory lock for
//! their transaction, so N nodes reserving for one tenant behave as one.

use super::keys::{BucketKey, BucketKind, Handle};
use super::period::period_keys;
use super::{
    BucketState, LedgerId, LedgerRecord, PruneReport, ReservationId, Revocation, Retention, SpendAccount, SpendLimits, StateStore, StoreError,
    StoreFuture, TaskRecord, TaskStatus, TaskUpdate, backend, charged, check_reservation, check_value, invalid_amount, retry_after,
    tasks_all_running, too_many_keys, MAX_KEYS_PER_TOOL,
};
use crate::db::now_ms;
use crate::db::postgres::{error_text, pg_error_text};
use crate::db::schema::{self, HEARTBEAT};
use omniroute_tool_contract::ledger::LedgerEntry;
use deadpool_postgres::{Pool, Transaction};
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The PostgreSQL implementation of [`StateStore`].
pub struct PostgresStore {
    pool: Pool,
    retention: Retention,
    node_id: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    backend(pg_error_text(&e))
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

async fn exec(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.execute(&stmt, params).await.map_err(pg)
}

async fn query_opt(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.query_opt(&stmt, params).await.map_err(pg)
}

async fn query(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.query(&stmt, params).await.map_err(pg)
}

/// Serialises the spend and quota work of one principal across nodes for
/// the rest of the transaction (two-key form: never collides with the
/// schema lock's single key).
async fn lock_principal(tx: &Transaction<'_>, principal: &str) -> Result<(), StoreError> {
    exec(tx, "SELECT pg_advisory_xact_lock(1, hashtext($1))", &[&principal]).await.map(|_| ())
}

async fn ensure_bucket(tx: &Transaction<'_>, principal: &str, bucket: &BucketKey, now: i64) -> Result<(), StoreError> {
    let touched = exec(
        tx,
        "UPDATE state_buckets SET last_used_ms = $3 WHERE principal = $1 AND bucket = $2",
        &[&principal, &bucket.as_str(), &now],
    )
    .await?;
    if touched > 0 {
        return Ok(());
    }
    if bucket.kind() == BucketKind::Handle {
        return Err(StoreError::NotFound);
    }
    exec(
        tx,
        "INSERT INTO state_buckets (principal, bucket, kind, started_ms, last_used_ms) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (principal, bucket) DO UPDATE SET last_used_ms = excluded.last_used_ms",
        &[&principal, &bucket.as_str(), &bucket.kind().as_str(), &now],
    )
    .await?;
    Ok(())
}

async fn ensure_principal(tx: &Transaction<'_>, principal: &str) -> Result<(), StoreError> {
    exec(tx, "INSERT INTO state_principals (principal) VALUES ($1) ON CONFLICT (principal) DO NOTHING", &[&principal]).await?;
    Ok(())
}

async fn delete_bucket(tx: &Transaction<'_>, principal: &str, bucket: &str) -> Result<(), StoreError> {
    exec(tx, "DELETE FROM state_values WHERE principal = $1 AND bucket = $2", &[&principal, &bucket]).await?;
    let entries = exec(tx, "DELETE FROM state_ledger WHERE principal = $1 AND bucket = $2", &[&principal, &bucket]).await? as i64;
    let kind: Option<String> =
        query_opt(tx, "DELETE FROM state_buckets WHERE principal = $1 AND bucket = $2 RETURNING kind", &[&principal, &bucket])
            .await?
            .map(|r| r.get(0));
    let handles = i64::from(kind.as_deref() == Some(BucketKind::Handle.as_str()));
    exec(
        tx,
        "UPDATE state_principals SET ledger_entries = GREATEST(ledger_entries - $2, 0), handles = GREATEST(handles - $3, 0) WHERE principal = $1",
        &[&principal, &entries, &handles],
    )
    .await?;
    Ok(())
}

fn to_record(row: &Row) -> Result<LedgerRecord, StoreError> {
    let json: String = row.get(2);
    Ok(LedgerRecord {
        id: LedgerId(row.get(0)),
        bucket: BucketKey::from_stored(row.get(1)),
        entry: serde_json::from_str(&json).map_err(|e| backend(format!("a stored ledger entry is unreadable: {e}")))?,
    })
}

const TASK_COLUMNS: &str =
    "task_id, status, progress, total, message, result, cancel_requested, created_ms, updated_ms, expires_ms";

fn task_record(r: &Row) -> TaskRecord {
    TaskRecord {
        task_id: r.get(0),
        status: TaskStatus::parse(r.get(1)).unwrap_or(TaskStatus::Failed),
        progress: r.get(2),
        total: r.get(3),
        message: r.get(4),
        result: r.get(5),
        cancel_requested: r.get(6),
        created_ms: r.get(7),
        updated_ms: r.get(8),
        expires_ms: r.get(9),
    }
}

async fn take_reservation(tx: &Transaction<'_>, principal: &str, id: &str) -> Result<Option<(String, f64, String, String)>, StoreError> {
    Ok(query_opt(
        tx,
        "DELETE FROM state_reservations WHERE id = $1 AND principal = $2 RETURNING bucket, amount, day, month",
        &[&id, &principal],
    )
    .await?
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))))
}

async fn book_settlement(
    tx: &Transaction<'_>,
    principal: &str,
    (bucket, amount, day, month): (&str, f64, &str, &str),
    charged: f64,
) -> Result<(), StoreError> {
    exec(
        tx,
        "UPDATE state_buckets SET reserved = GREATEST(reserved - $3, 0), spent = spent + $4 WHERE principal = $1 AND bucket = $2",
        &[&principal, &bucket, &amount, &charged],
    )
    .await?;
    exec(
        tx,
        "UPDATE state_spend SET reserved = GREATEST(reserved - $4, 0), spent = spent + $5, updated_ms = $6
         WHERE principal = $1 AND period IN ($2, $3, 'total')",
        &[&principal, &day, &month, &amount, &charged, &now_ms()],
    )
    .await?;
    Ok(())
}

/// Appends a ledger entry (`request_id`, entry JSON), keeping the
/// principal's ledger at `max` entries (a full ledger drops its oldest).
async fn append_entry(
    tx: &Transaction<'_>,
    principal: &str,
    bucket: &BucketKey,
    (request_id, json): (&Option<String>, &str),
    max: i64,
) -> Result<LedgerId, StoreError> {
    let now = now_ms();
    ensure_bucket(tx, principal, bucket, now).await?;
    ensure_principal(tx, principal).await?;
    let id: i64 = query_opt(
        tx,
        "INSERT INTO state_ledger (principal, bucket, request_id, entry, created_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[&principal, &bucket.as_str(), request_id, &json, &now],
    )
    .await?
    .map_or(0, |r| r.get(0));
    let count: i64 = query_opt(
        tx,
        "UPDATE state_principals SET ledger_entries = ledger_entries + 1 WHERE principal = $1 RETURNING ledger_entries",
        &[&principal],
    )
    .await?
    .map_or(0, |r| r.get(0));
    if count > max {
        exec(
            tx,
            "DELETE FROM state_ledger WHERE id IN (SELECT id FROM state_ledger WHERE principal = $1 ORDER BY id LIMIT $2)",
            &[&principal, &(count - max)],
        )
        .await?;
        exec(tx, "UPDATE state_principals SET ledger_entries = $2 WHERE principal = $1", &[&principal, &max]).await?;
    }
    Ok(LedgerId(id))
}

/// Settles reservation `id` at `actual` (else its full amount); returns
/// what was charged. The caller holds the principal's lock.
async fn settle_reserved(tx: &Transaction<'_>, principal: &str, id: &str, actual: Option<f64>) -> Result<f64, StoreError> {
    let Some((bucket, amount, day, month)) = take_reservation(tx, principal, id).await? else {
        return Err(StoreError::NotFound);
    };
    let charged = charged(actual, amount);
    book_settlement(tx, principal, (&bucket, amount, &day, &month), charged).await?;
    Ok(charged)
}

/// Adds the cost of a completion nothing was reserved for to the bucket
/// (created if it is missing; the entry's append has made sure of it already
/// in the common case) and the principal's three period accounts. The caller
/// holds the principal's lock.
async fn book_unreserved(tx: &Transaction<'_>, principal: &str, bucket: &BucketKey, charged: f64) -> Result<f64, StoreError> {
    if charged <= 0.0 {
        return Ok(0.0);
    }
    let now = now_ms();
    let [day, month, total] = period_keys(now);
    let add = "UPDATE state_buckets SET spent = spent + $3 WHERE principal = $1 AND bucket = $2";
    if exec(tx, add, &[&principal, &bucket.as_str(), &charged]).await? == 0 {
        ensure_bucket(tx, principal, bucket, now).await?;
        exec(tx, add, &[&principal, &bucket.as_str(), &charged]).await?;
    }
    exec(
        tx,
        "INSERT INTO state_spend (principal, period, spent, reserved, updated_ms) VALUES ($1, $2, $5, 0, $6), ($1, $3, $5, 0, $6), ($1, $4, $5, 0, $6)
         ON CONFLICT (principal, period) DO UPDATE SET spent = state_spend.spent + excluded.spent, updated_ms = excluded.updated_ms",
        &[&principal, &day, &month, &total, &charged, &now],
    )
    .await?;
    Ok(charged)
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl PostgresStore {
    /// Connects, migrates the schema (or refuses an incompatible one) and
    /// starts the node heartbeat.
    pub async fn connect(url: &str, retention: Retention) -> Result<PostgresStore, StoreError> {
        let pool = crate::db::postgres::connect(url).await.map_err(backend)?;
        let node_id = format!("pg-{}-{}", std::process::id(), crate::db::random_hex(6).map_err(backend)?);
        schema::migrate_postgres(&pool, &super::schema::SCHEMA, &node_id).await.map_err(backend)?;
        let heartbeat = {
            let (pool, node_id) = (pool.clone(), node_id.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match pool.get().await {
                        Ok(client) => {
                            if let Err(e) = schema::heartbeat_postgres(&client, &node_id).await {
                                tracing::warn!(error = %pg_error_text(&e), "state store heartbeat failed");
                            }
                        }
                        Err(e) => tracing::warn!(error = %error_text(&e), "state store heartbeat: no connection"),
                    }
                }
            })
        };
        Ok(PostgresStore { pool, retention, node_id, heartbeat })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| backend(error_text(&e)))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl StateStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn mint_handle<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, Handle> {
        Box::pin(async move {
            let handle = Handle::mint().map_err(backend)?;
            let key = BucketKey::handle(&handle);
            let max = self.retention.max_handles.max(1) as i64;
            let now = now_ms();
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            ensure_principal(&tx, principal).await?;
            exec(
                &tx,
                "INSERT INTO state_buckets (principal, bucket, kind, started_ms, last_used_ms) VALUES ($1, $2, 'handle', $3, $3)",
                &[&principal, &key.as_str(), &now],
            )
            .await?;
            let count: i64 = query_opt(&tx, "UPDATE state_principals SET handles = handles + 1 WHERE principal = $1 RETURNING handles", &[&principal])
                .await?
                .map_or(0, |r| r.get(0));
            if count > max {
                let victims = query(
                    &tx,
                    "SELECT bucket FROM state_buckets WHERE principal = $1 AND kind = 'handle' AND bucket <> $2 ORDER BY last_used_ms, bucket LIMIT $3",
                    &[&principal, &key.as_str(), &(count - max)],
                )
                .await?;
                for victim in victims {
                    delete_bucket(&tx, principal, victim.get(0)).await?;
                }
            }
            tx.commit().await.map_err(pg)?;
            Ok(handle)
        })
    }

    fn resolve<'a>(&'a self, principal: &'a str, handle: &'a str) -> StoreFuture<'a, Option<BucketKey>> {
        Box::pin(async move {
            let Some(handle) = Handle::parse(handle) else { return Ok(None) };
            let key = BucketKey::handle(&handle);
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("UPDATE state_buckets SET last_used_ms = $3 WHERE principal = $1 AND bucket = $2")
                .await
                .map_err(pg)?;
            let found = client.execute(&stmt, &[&principal, &key.as_str(), &now_ms()]).await.map_err(pg)?;
            Ok((found > 0).then_some(key))
        })
    }

    fn open_bucket<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey) -> StoreFuture<'a, BucketState> {
        Box::pin(async move {
            // One round trip: create-or-touch (a missing handle bucket is not created).
            let sql = if bucket.kind() == BucketKind::Handle {
                "UPDATE state_buckets SET last_used_ms = $4 WHERE principal = $1 AND bucket = $2 AND kind = $3
                 RETURNING started_ms, budget_guard, spent, reserved"
            } else {
                "INSERT INTO state_buckets (principal, bucket, kind, started_ms, last_used_ms) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (principal, bucket) DO UPDATE SET last_used_ms = excluded.last_used_ms
                 RETURNING started_ms, budget_guard, spent, reserved"
            };
            let client = self.client().await?;
            let stmt = client.prepare_cached(sql).await.map_err(pg)?;
            let row = client
                .query_opt(&stmt, &[&principal, &bucket.as_str(), &bucket.kind().as_str(), &now_ms()])
                .await
                .map_err(pg)?
                .ok_or(StoreError::NotFound)?;
            Ok(BucketState { started_ms: row.get(0), budget_guard: row.get(1), spent: row.get(2), reserved: row.get(3) })
        })
    }

    fn set_guard<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, guard: Option<&'a str>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            ensure_bucket(&tx, principal, bucket, now_ms()).await?;
            exec(&tx, "UPDATE state_buckets SET budget_guard = $3 WHERE principal = $1 AND bucket = $2", &[&principal, &bucket.as_str(), &guard])
                .await?;
            tx.commit().await.map_err(pg)
        })
    }

    fn get_value<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, tool: &'a str, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT value FROM state_values WHERE principal = $1 AND bucket = $2 AND tool = $3 AND key = $4")
                .await
                .map_err(pg)?;
            Ok(client.query_opt(&stmt, &[&principal, &bucket.as_str(), &tool, &key]).await.map_err(pg)?.map(|r| r.get(0)))
        })
    }

    fn set_value<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, tool: &'a str, key: &'a str, value: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_value(key, value)?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            lock_principal(&tx, principal).await?;
            ensure_bucket(&tx, principal, bucket, now_ms()).await?;
            let exists = query_opt(
                &tx,
                "SELECT 1 FROM state_values WHERE principal = $1 AND bucket = $2 AND tool = $3 AND key = $4",
                &[&principal, &bucket.as_str(), &tool, &key],
            )
            .await?
            .is_some();
            if !exists {
                let count: i64 = query_opt(
                    &tx,
                    "SELECT COUNT(*) FROM state_values WHERE principal = $1 AND bucket = $2 AND tool = $3",
                    &[&principal, &bucket.as_str(), &tool],
                )
                .await?
                .map_or(0, |r| r.get(0));
                if count >= MAX_KEYS_PER_TOOL as i64 {
                    return Err(too_many_keys());
                }
            }
            exec(
                &tx,
                "INSERT INTO state_values (principal, bucket, tool, key, value) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (principal, bucket, tool, key) DO UPDATE SET value = excluded.value",
                &[&principal, &bucket.as_str(), &tool, &key, &value],
            )
            .await?;
            tx.commit().await.map_err(pg)
        })
    }

    fn append_ledger<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, entry: &'a LedgerEntry) -> StoreFuture<'a, LedgerId> {
        Box::pin(async move {
            let json = serde_json::to_string(entry).map_err(backend)?;
            let max = self.retention.max_ledger_entries.max(1) as i64;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            let id = append_entry(&tx, principal, bucket, (&entry.request_id, &json), max).await?;
            tx.commit().await.map_err(pg)?;
            Ok(id)
        })
    }

    fn update_ledger<'a>(&'a self, principal: &'a str, id: LedgerId, entry: &'a LedgerEntry) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let json = serde_json::to_string(entry).map_err(backend)?;
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("UPDATE state_ledger SET entry = $3, request_id = $4 WHERE id = $1 AND principal = $2")
                .await
                .map_err(pg)?;
            Ok(client.execute(&stmt, &[&id.0, &principal, &json, &entry.request_id]).await.map_err(pg)? > 0)
        })
    }

    fn ledger<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey) -> StoreFuture<'a, Vec<LedgerRecord>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT id, bucket, entry FROM state_ledger WHERE principal = $1 AND bucket = $2 ORDER BY id")
                .await
                .map_err(pg)?;
            client.query(&stmt, &[&principal, &bucket.as_str()]).await.map_err(pg)?.iter().map(to_record).collect()
        })
    }

    fn find_request<'a>(&'a self, principal: &'a str, request_id: &'a str) -> StoreFuture<'a, Option<LedgerRecord>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT id, bucket, entry FROM state_ledger WHERE principal = $1 AND request_id = $2 ORDER BY id DESC LIMIT 1")
                .await
                .map_err(pg)?;
            client.query_opt(&stmt, &[&principal, &request_id]).await.map_err(pg)?.as_ref().map(to_record).transpose()
        })
    }

    fn reserve<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, amount: f64, limits: SpendLimits) -> StoreFuture<'a, ReservationId> {
        Box::pin(async move {
            if let Some(e) = invalid_amount(amount) {
                return Err(e);
            }
            let now = now_ms();
            let [day, month, total] = period_keys(now);
            let cap_key = limits.cap.map(|c| c.period.key(now)).unwrap_or_else(|| total.clone());
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            lock_principal(&tx, principal).await?;
            ensure_bucket(&tx, principal, bucket, now).await?;
            let in_bucket = query_opt(&tx, "SELECT spent, reserved FROM state_buckets WHERE principal = $1 AND bucket = $2", &[&principal, &bucket.as_str()])
                .await?
                .map_or((0.0, 0.0), |r| (r.get(0), r.get(1)));
            let account = query_opt(&tx, "SELECT spent, reserved FROM state_spend WHERE principal = $1 AND period = $2", &[&principal, &cap_key])
                .await?
                .map_or((0.0, 0.0), |r| (r.get(0), r.get(1)));
            check_reservation(in_bucket, account, amount, &limits, &cap_key).map_err(StoreError::Refused)?;
            let id = format!("rsv_{}", crate::db::random_hex(16).map_err(backend)?);
            exec(
                &tx,
                "INSERT INTO state_reservations (id, principal, bucket, amount, day, month, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&id, &principal, &bucket.as_str(), &amount, &day, &month, &now],
            )
            .await?;
            exec(&tx, "UPDATE state_buckets SET reserved = reserved + $3 WHERE principal = $1 AND bucket = $2", &[&principal, &bucket.as_str(), &amount])
                .await?;
            exec(
                &tx,
                "INSERT INTO state_spend (principal, period, spent, reserved, updated_ms) VALUES ($1, $2, 0, $5, $6), ($1, $3, 0, $5, $6), ($1, $4, 0, $5, $6)
                 ON CONFLICT (principal, period) DO UPDATE SET reserved = state_spend.reserved + excluded.reserved, updated_ms = excluded.updated_ms",
                &[&principal, &day, &month, &total, &amount, &now],
            )
            .await?;
            tx.commit().await.map_err(pg)?;
            Ok(ReservationId(id))
        })
    }

    fn settle<'a>(&'a self, principal: &'a str, reservation: &'a ReservationId, actual: Option<f64>) -> StoreFuture<'a, f64> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            lock_principal(&tx, principal).await?;
            let charged = settle_reserved(&tx, principal, &reservation.0, actual).await?;
            tx.commit().await.map_err(pg)?;
            Ok(charged)
        })
    }

    fn finish_completion<'a>(
        &'a self,
        principal: &'a str,
        bucket: &'a BucketKey,
        entry: Option<&'a LedgerEntry>,
        reservation: Option<&'a ReservationId>,
        actual: Option<f64>,
    ) -> StoreFuture<'a, (Option<LedgerId>, f64)> {
        Box::pin(async move {
            let json = entry.map(|e| serde_json::to_string(e).map_err(backend)).transpose()?;
            let max = self.retention.max_ledger_entries.max(1) as i64;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            // The principal's lock before any row: `reserve` takes it first too.
            lock_principal(&tx, principal).await?;
            let id = match (entry, &json) {
                (Some(entry), Some(json)) => Some(append_entry(&tx, principal, bucket, (&entry.request_id, json), max).await?),
                _ => None,
            };
            let charged = match reservation {
                Some(reservation) => settle_reserved(&tx, principal, &reservation.0, actual).await?,
                None => book_unreserved(&tx, principal, bucket, charged(actual, 0.0)).await?,
            };
            tx.commit().await.map_err(pg)?;
            Ok((id, charged))
        })
    }

    fn spend<'a>(&'a self, principal: &'a str, period_key: &'a str) -> StoreFuture<'a, SpendAccount> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT spent, reserved FROM state_spend WHERE principal = $1 AND period = $2")
                .await
                .map_err(pg)?;
            Ok(client
                .query_opt(&stmt, &[&principal, &period_key])
                .await
                .map_err(pg)?
                .map(|r| SpendAccount { spent: r.get(0), reserved: r.get(1) })
                .unwrap_or_default())
        })
    }

    fn take_tokens<'a>(&'a self, principal: &'a str, name: &'a str, capacity: u32, refill_per_sec: f64, count: u32) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let capacity = f64::from(capacity.max(1));
            let count = f64::from(count.max(1)).min(capacity);
            let rate = if refill_per_sec.is_finite() { refill_per_sec.max(0.0) } else { 0.0 };
            let now = now_ms();
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO state_rate (principal, name, tokens, updated_ms) VALUES ($1, $2, $3::float8 - $6::float8, $5::bigint)
                     ON CONFLICT (principal, name) DO UPDATE
                       SET tokens = LEAST($3::float8, state_rate.tokens + GREATEST($5::bigint - state_rate.updated_ms, 0) * $4::float8 / 1000.0) - $6::float8,
                           updated_ms = $5::bigint
                       WHERE LEAST($3::float8, state_rate.tokens + GREATEST($5::bigint - state_rate.updated_ms, 0) * $4::float8 / 1000.0) >= $6::float8
                     RETURNING tokens",
                )
                .await
                .map_err(pg)?;
            if client.query_opt(&stmt, &[&principal, &name, &capacity, &rate, &now, &count]).await.map_err(pg)?.is_some() {
                return Ok(());
            }
            let stmt = client
                .prepare_cached(
                    "SELECT LEAST($3::float8, tokens + GREATEST($5::bigint - updated_ms, 0) * $4::float8 / 1000.0) FROM state_rate WHERE principal = $1 AND name = $2",
                )
                .await
                .map_err(pg)?;
            let available: f64 =
                client.query_opt(&stmt, &[&principal, &name, &capacity, &rate, &now]).await.map_err(pg)?.map_or(0.0, |r| r.get(0));
            Err(StoreError::RateLimited(retry_after(available, rate)))
        })
    }

    fn create_task<'a>(&'a self, principal: &'a str, ttl: Duration) -> StoreFuture<'a, TaskRecord> {
        Box::pin(async move {
            let max = self.retention.max_tasks.max(1) as i64;
            let now = now_ms();
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            lock_principal(&tx, principal).await?;
            ensure_principal(&tx, principal).await?;
            let expired = exec(&tx, "DELETE FROM state_tasks WHERE principal = $1 AND expires_ms <= $2", &[&principal, &now]).await? as i64;
            let count: i64 = query_opt(
                &tx,
                "UPDATE state_principals SET tasks = GREATEST(tasks - $2, 0) + 1 WHERE principal = $1 RETURNING tasks",
                &[&principal, &expired],
            )
            .await?
            .map_or(0, |r| r.get(0));
            if count > max {
                let evicted = exec(
                    &tx,
                    "DELETE FROM state_tasks WHERE (principal, task_id) IN (SELECT principal, task_id FROM state_tasks WHERE principal = $1
                       AND status IN ('completed', 'failed', 'cancelled') ORDER BY created_ms LIMIT 1)",
                    &[&principal],
                )
                .await?;
                if evicted == 0 {
                    return Err(tasks_all_running(max));
                }
                exec(&tx, "UPDATE state_principals SET tasks = tasks - 1 WHERE principal = $1", &[&principal]).await?;
            }
            let record = TaskRecord::started(now, ttl)?;
            exec(
                &tx,
                "INSERT INTO state_tasks (principal, task_id, status, created_ms, updated_ms, expires_ms) VALUES ($1, $2, $3, $4, $4, $5)",
                &[&principal, &record.task_id, &record.status.as_str(), &now, &record.expires_ms],
            )
            .await?;
            tx.commit().await.map_err(pg)?;
            Ok(record)
        })
    }

    fn update_task<'a>(&'a self, principal: &'a str, task_id: &'a str, update: TaskUpdate) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE state_tasks SET status = COALESCE($3, status), progress = COALESCE($4, progress), total = COALESCE($5, total),
                       message = COALESCE($6, message), updated_ms = $7
                     WHERE principal = $1 AND task_id = $2 AND expires_ms > $7",
                )
                .await
                .map_err(pg)?;
            let status = update.status.map(TaskStatus::as_str);
            let n = client
                .execute(&stmt, &[&principal, &task_id, &status, &update.progress, &update.total, &update.message, &now_ms()])
                .await
                .map_err(pg)?;
            Ok(n > 0)
        })
    }

    fn finish_task<'a>(&'a self, principal: &'a str, task_id: &'a str, status: TaskStatus, result: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE state_tasks SET status = $3, result = $4, updated_ms = $5 WHERE principal = $1 AND task_id = $2 AND expires_ms > $5",
                )
                .await
                .map_err(pg)?;
            Ok(client.execute(&stmt, &[&principal, &task_id, &status.as_str(), &result, &now_ms()]).await.map_err(pg)? > 0)
        })
    }

    fn get_task<'a>(&'a self, principal: &'a str, task_id: &'a str) -> StoreFuture<'a, Option<TaskRecord>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM state_tasks WHERE principal = $1 AND task_id = $2 AND expires_ms > $3"
                ))
                .await
                .map_err(pg)?;
            Ok(client.query_opt(&stmt, &[&principal, &task_id, &now_ms()]).await.map_err(pg)?.as_ref().map(task_record))
        })
    }

    fn list_tasks<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, Vec<TaskRecord>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM state_tasks WHERE principal = $1 AND expires_ms > $2 ORDER BY created_ms DESC, task_id DESC"
                ))
                .await
                .map_err(pg)?;
            Ok(client.query(&stmt, &[&principal, &now_ms()]).await.map_err(pg)?.iter().map(task_record).collect())
        })
    }

    fn cancel_task<'a>(&'a self, principal: &'a str, task_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE state_tasks SET cancel_requested = TRUE, updated_ms = $3 WHERE principal = $1 AND task_id = $2 AND expires_ms > $3",
                )
                .await
                .map_err(pg)?;
            Ok(client.execute(&stmt, &[&principal, &task_id, &now_ms()]).await.map_err(pg)? > 0)
        })
    }

    fn prune(&self, now: i64) -> StoreFuture<'_, PruneReport> {
        Box::pin(async move {
            let idle_before = now - millis(self.retention.idle);
            let stale_before = now - millis(self.retention.stale_reservation);
            let mut report = PruneReport::default();
            let mut client = self.client().await?;
            let stale: Vec<(String, String)> = {
                let stmt = client.prepare_cached("SELECT principal, id FROM state_reservations WHERE created_ms < $1").await.map_err(pg)?;
                client.query(&stmt, &[&stale_before]).await.map_err(pg)?.iter().map(|r| (r.get(0), r.get(1))).collect()
            };
            for (principal, id) in stale {
                let tx = client.transaction().await.map_err(pg)?;
                lock_principal(&tx, &principal).await?;
                if let Some((bucket, amount, day, month)) = take_reservation(&tx, &principal, &id).await? {
                    book_settlement(&tx, &principal, (&bucket, amount, &day, &month), amount).await?;
                    report.stale_reservations += 1;
                }
                tx.commit().await.map_err(pg)?;
            }
            let tx = client.transaction().await.map_err(pg)?;
            let idle = "SELECT principal, bucket FROM state_buckets WHERE last_used_ms < $1";
            exec(&tx, &format!("DELETE FROM state_values WHERE (principal, bucket) IN ({idle})"), &[&idle_before]).await?;
            report.ledger_entries = exec(&tx, &format!("DELETE FROM state_ledger WHERE (principal, bucket) IN ({idle})"), &[&idle_before]).await?;
            report.buckets = exec(&tx, "DELETE FROM state_buckets WHERE last_used_ms < $1", &[&idle_before]).await?;
            report.tasks = exec(&tx, "DELETE FROM state_tasks WHERE expires_ms <= $1", &[&now]).await?;
            report.rate_buckets = exec(&tx, "DELETE FROM state_rate WHERE updated_ms < $1", &[&idle_before]).await?;
            tx.batch_execute(
                "UPDATE state_principals p SET
                   handles = (SELECT COUNT(*) FROM state_buckets b WHERE b.principal = p.principal AND b.kind = 'handle'),
                   ledger_entries = (SELECT COUNT(*) FROM state_ledger l WHERE l.principal = p.principal),
                   tasks = (SELECT COUNT(*) FROM state_tasks t WHERE t.principal = p.principal);
                 DELETE FROM state_principals WHERE handles = 0 AND ledger_entries = 0 AND tasks = 0;",
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(report)
        })
    }

    fn handle_counts(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query("SELECT principal, handles FROM state_principals WHERE handles > 0 ORDER BY principal", &[])
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| (r.get::<_, String>(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0))).collect())
        })
    }

    fn revoke<'a>(&'a self, principal: &'a str, reason: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO state_revocations (principal, revoked_ms, reason) VALUES ($1, $2, $3)
                     ON CONFLICT (principal) DO UPDATE SET revoked_ms = excluded.revoked_ms, reason = excluded.reason",
                    &[&principal, &now_ms(), &reason],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn restore<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let removed = client.execute("DELETE FROM state_revocations WHERE principal = $1", &[&principal]).await.map_err(pg)?;
            Ok(removed > 0)
        })
    }

    fn revocations(&self) -> StoreFuture<'_, Vec<Revocation>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query("SELECT principal, revoked_ms, reason FROM state_revocations ORDER BY principal", &[])
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| Revocation { principal: r.get(0), revoked_ms: r.get(1), reason: r.get(2) }).collect())
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.heartbeat.abort();
            let client = self.client().await?;
            schema::leave_postgres(&client, &self.node_id).await.map_err(pg)
        })
    }
}
