//! The state that outlives one call, one transport session and one process:
//! handles, session buckets (start time, budget guard, tool-private values),
//! the completion ledger and routing index, spend accounts with
//! reservations, rate-limit buckets and task records.
//!
//! Everything is namespaced by a principal id (the stdio operator, an HTTP
//! tenant, an OAuth subject): every method takes the principal, and nothing
//! of one principal is reachable through another's, whatever handle, bucket
//! or id it passes (a foreign id is "not found", never read).
//!
//! One interface, [`StateStore`], two implementations: SQLite
//! (`state.sqlite` in the data folder; the embedded default) and PostgreSQL
//! (`--state-url postgres://…`; several nodes share it and behave as one).
//! Both pass one conformance suite (`host/tests/state_store.rs`).

mod keys;
mod period;
mod policy;
mod postgres;
mod schema;
mod sqlite;

pub use keys::{BucketKey, Handle};
pub use period::{Period, period_keys};
pub use policy::{DEFAULT_MAX_TOKENS, SpendCapConfig, SpendConfigError, SpendPolicy};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use omniroute_tool_contract::ledger::LedgerEntry;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The future every store method returns (boxed so the trait is object-safe;
/// one allocation is noise beside a database round trip).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A shared store.
pub type Store = Arc<dyn StateStore>;

/// Caps on tool-private values, so session state stays small facts.
pub const MAX_KEY_BYTES: usize = 256;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
pub const MAX_KEYS_PER_TOOL: usize = 64;

/// Per-principal quotas and the idle time after which state is pruned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Handles a principal may hold; minting one more evicts its least recently used.
    pub max_handles: u64,
    /// Ledger entries a principal keeps; appending one more drops its oldest.
    pub max_ledger_entries: u64,
    /// Task records a principal keeps; creating one more drops its oldest
    /// finished one, or is refused when all are still running.
    pub max_tasks: u64,
    /// A bucket (handle, transport session or default bucket) unused this long
    /// is deleted with its values and ledger entries.
    pub idle: Duration,
    /// A reservation never settled after this long (its node crashed) is
    /// settled at its full amount.
    pub stale_reservation: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_handles: 1_000,
            max_ledger_entries: 10_000,
            max_tasks: 1_000,
            idle: Duration::from_secs(7 * 24 * 3600),
            stale_reservation: Duration::from_secs(3600),
        }
    }
}

/// A bucket's session state.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketState {
    /// When the bucket was first used (ms since the epoch).
    pub started_ms: i64,
    /// The budget guard JSON (`set_budget_guard`'s shape), if any.
    pub budget_guard: Option<String>,
    /// Settled spend of the bucket (USD).
    pub spent: f64,
    /// Outstanding reservations of the bucket (USD).
    pub reserved: f64,
}

/// A principal's spend account for one period key.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpendAccount {
    pub spent: f64,
    pub reserved: f64,
}

/// A per-principal spend cap over a period (UTC boundaries).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendCap {
    pub amount: f64,
    pub period: Period,
}

/// The limits one reservation is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpendLimits {
    /// The bucket's guard limit (`maxCost` of a blocking guard): refused once
    /// the bucket's settled spend plus its reservations has reached it (the
    /// guard's own rule; the new amount is not added).
    pub bucket_max: Option<f64>,
    /// The principal's cap: refused when settled spend, reservations and the
    /// new amount together would exceed it.
    pub cap: Option<SpendCap>,
}

/// Which limit refused a reservation, with the figures the agent needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The bucket's budget guard.
    Guard { max: f64, spent: f64, reserved: f64 },
    /// The principal's spend cap.
    Cap { cap: SpendCap, period_key: String, spent: f64, reserved: f64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Guard { max, spent, reserved } => write!(
                f,
                "the session budget guard ({max} USD) is reached: {spent} USD spent and {reserved} USD reserved by completions in flight"
            ),
            Refusal::Cap { cap, period_key, spent, reserved } => write!(
                f,
                "the spend cap of {} USD per {} ({period_key}) would be exceeded: {spent} USD spent and {reserved} USD reserved by completions in flight",
                cap.amount,
                cap.period.as_str()
            ),
        }
    }
}

/// An outstanding reservation (opaque, unguessable).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReservationId(pub String);

/// An id of a ledger entry within its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerId(pub i64);

/// A ledger entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRecord {
    pub id: LedgerId,
    pub bucket: BucketKey,
    pub entry: LedgerEntry,
}

/// The lifecycle of a task (MCP tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Working,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Working => "working",
            TaskStatus::InputRequired => "input_required",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        Some(match text {
            "working" => TaskStatus::Working,
            "input_required" => TaskStatus::InputRequired,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the task has ended (its record may then be evicted first).
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

/// One task record.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task_id: String,
    pub status: TaskStatus,
    pub progress: Option<f64>,
    pub total: Option<f64>,
    pub message: Option<String>,
    /// The call's result (JSON), once stored.
    pub result: Option<String>,
    pub cancel_requested: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// After this the record is gone ("not found") and pruned.
    pub expires_ms: i64,
}

impl TaskRecord {
    /// A new record, `working`, expiring after `ttl`.
    fn started(now_ms: i64, ttl: Duration) -> Result<TaskRecord, StoreError> {
        Ok(TaskRecord {
            task_id: format!("task_{}", crate::db::random_hex(16).map_err(backend)?),
            status: TaskStatus::Working,
            progress: None,
            total: None,
            message: None,
            result: None,
            cancel_requested: false,
            created_ms: now_ms,
            updated_ms: now_ms,
            expires_ms: now_ms.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64),
        })
    }
}

/// A change to a running task.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskUpdate {
    pub status: Option<TaskStatus>,
    pub progress: Option<f64>,
    pub total: Option<f64>,
    pub message: Option<String>,
}

/// A revoked principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub principal: String,
    pub revoked_ms: i64,
    pub reason: String,
}

/// What one [`StateStore::prune`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneReport {
    pub buckets: u64,
    pub ledger_entries: u64,
    pub tasks: u64,
    pub stale_reservations: u64,
    pub rate_buckets: u64,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A limit of the spend accounts refused a reservation.
    #[error("{0}")]
    Refused(Refusal),
    /// The rate bucket is empty; a token is back after this long.
    #[error("rate limit: retry in {} s", .0.as_secs_f64().ceil())]
    RateLimited(Duration),
    /// A tool-private value breaks a cap.
    #[error("{0}")]
    Limit(String),
    /// A quota of the principal is used up (e.g. every task record is live).
    #[error("{0}")]
    Quota(String),
    /// The id or handle names nothing of this principal.
    #[error("not found")]
    NotFound,
    /// The database failed; the message says how.
    #[error("state store: {0}")]
    Backend(String),
}

/// The interface of both backends. Every method is atomic on its own; the
/// ones that check and change (reserve, take_token, set_value's key count)
/// are atomic across nodes too.
pub trait StateStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    // Handles and buckets.

    /// Mints a new handle bound to `principal`, with an empty bucket.
    fn mint_handle<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, Handle>;
    /// The bucket of `handle` if `principal` minted it and it still exists; refreshes its last use.
    fn resolve<'a>(&'a self, principal: &'a str, handle: &'a str) -> StoreFuture<'a, Option<BucketKey>>;
    /// The bucket's state, created (started now) if it does not exist yet.
    fn open_bucket<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey) -> StoreFuture<'a, BucketState>;
    /// Sets (or clears) the bucket's budget guard.
    fn set_guard<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, guard: Option<&'a str>) -> StoreFuture<'a, ()>;
    /// A tool-private value.
    fn get_value<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, tool: &'a str, key: &'a str) -> StoreFuture<'a, Option<String>>;
    /// Stores a tool-private value within the caps ([`MAX_KEY_BYTES`], [`MAX_VALUE_BYTES`], [`MAX_KEYS_PER_TOOL`]).
    fn set_value<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, tool: &'a str, key: &'a str, value: &'a str) -> StoreFuture<'a, ()>;

    // The ledger and the routing index.

    /// Appends a completion to the bucket's ledger.
    fn append_ledger<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, entry: &'a LedgerEntry) -> StoreFuture<'a, LedgerId>;
    /// Replaces an entry (annotation, settlement); false if it is not the principal's.
    fn update_ledger<'a>(&'a self, principal: &'a str, id: LedgerId, entry: &'a LedgerEntry) -> StoreFuture<'a, bool>;
    /// The bucket's ledger, oldest first.
    fn ledger<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey) -> StoreFuture<'a, Vec<LedgerRecord>>;
    /// The newest entry with this `x-request-id` in any of the principal's buckets.
    fn find_request<'a>(&'a self, principal: &'a str, request_id: &'a str) -> StoreFuture<'a, Option<LedgerRecord>>;

    // Spend.

    /// Reserves `amount` for a completion about to be sent, if the bucket's
    /// guard and the principal's cap both still allow it counting settled
    /// spend and every outstanding reservation (see [`SpendLimits`]); else
    /// [`StoreError::Refused`].
    fn reserve<'a>(&'a self, principal: &'a str, bucket: &'a BucketKey, amount: f64, limits: SpendLimits) -> StoreFuture<'a, ReservationId>;
    /// Settles a reservation at the real cost; `None` (never answered)
    /// settles at the full reserved amount. Returns what was charged.
    fn settle<'a>(&'a self, principal: &'a str, reservation: &'a ReservationId, actual: Option<f64>) -> StoreFuture<'a, f64>;
    /// Ends a completion in one transaction: appends `entry` (a completion
    /// that left the host; `None` when nothing was sent) to the bucket's
    /// ledger and books its cost, settling `reservation` at `actual` (`None`:
    /// the full reserved amount) or, with nothing reserved (no guard, no cap
    /// to check), adding `actual` (`None`: nothing) to the bucket's and the
    /// principal's spend. One commit instead of an append and a settlement:
    /// each is a transaction of its own on the completion's path. Returns
    /// the entry's id and what was charged.
    fn finish_completion<'a>(
        &'a self,
        principal: &'a str,
        bucket: &'a BucketKey,
        entry: Option<&'a LedgerEntry>,
        reservation: Option<&'a ReservationId>,
        actual: Option<f64>,
    ) -> StoreFuture<'a, (Option<LedgerId>, f64)>;
    /// The principal's account for one period key (`day:2026-12-06`, `month:2026-12`, `total`).
    fn spend<'a>(&'a self, principal: &'a str, period_key: &'a str) -> StoreFuture<'a, SpendAccount>;

    // Rate limits.

    /// Takes one token from the bucket `name` (capacity, refill per second),
    /// or says when one is back.
    fn take_token<'a>(&'a self, principal: &'a str, name: &'a str, capacity: u32, refill_per_sec: f64) -> StoreFuture<'a, ()> {
        self.take_tokens(principal, name, capacity, refill_per_sec, 1)
    }

    /// Takes `count` tokens at once (all or none) from the bucket `name`,
    /// or says when one is back: a node leases a few tokens of a high rate
    /// per store round trip.
    fn take_tokens<'a>(&'a self, principal: &'a str, name: &'a str, capacity: u32, refill_per_sec: f64, count: u32) -> StoreFuture<'a, ()>;

    // Tasks.

    /// Creates a task record (status `working`) that expires after `ttl`.
    fn create_task<'a>(&'a self, principal: &'a str, ttl: Duration) -> StoreFuture<'a, TaskRecord>;
    /// Updates status, progress or message; false if not found.
    fn update_task<'a>(&'a self, principal: &'a str, task_id: &'a str, update: TaskUpdate) -> StoreFuture<'a, bool>;
    /// Stores the result with a final status; false if not found.
    fn finish_task<'a>(&'a self, principal: &'a str, task_id: &'a str, status: TaskStatus, result: &'a str) -> StoreFuture<'a, bool>;
    fn get_task<'a>(&'a self, principal: &'a str, task_id: &'a str) -> StoreFuture<'a, Option<TaskRecord>>;
    /// The principal's tasks, newest first.
    fn list_tasks<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, Vec<TaskRecord>>;
    /// Asks a task to stop; false if not found.
    fn cancel_task<'a>(&'a self, principal: &'a str, task_id: &'a str) -> StoreFuture<'a, bool>;

    // Retention.

    /// Deletes what has been idle or expired as of `now_ms` and settles
    /// stale reservations (see [`Retention`]).
    fn prune(&self, now_ms: i64) -> StoreFuture<'_, PruneReport>;

    /// How many handles each principal holds now (principals holding none
    /// are left out): the `handles` gauge of the metrics endpoint.
    fn handle_counts(&self) -> StoreFuture<'_, Vec<(String, u64)>>;

    // Revocations.

    /// Records that `principal` is revoked: every node sharing the store
    /// refuses its credentials (static token or OAuth) from its next refresh on.
    fn revoke<'a>(&'a self, principal: &'a str, reason: &'a str) -> StoreFuture<'a, ()>;
    /// Lifts a revocation; false if the principal was not revoked.
    fn restore<'a>(&'a self, principal: &'a str) -> StoreFuture<'a, bool>;
    /// Every revoked principal (a short list: operators revoke by hand).
    fn revocations(&self) -> StoreFuture<'_, Vec<Revocation>>;

    /// Stops background work and deregisters the node.
    fn close(&self) -> StoreFuture<'_, ()>;
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq)]
pub enum StateLocation {
    /// `state.sqlite` (or another file) on this machine.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl StateLocation {
    /// `--state-url` (a `postgres://` URL or a SQLite path), else `state.sqlite` in the data folder.
    pub fn from_setting(url: Option<&str>, data_dir: &std::path::Path) -> StateLocation {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) if crate::db::postgres::is_postgres_url(u) => StateLocation::Postgres(u.to_owned()),
            Some(u) => StateLocation::Sqlite(PathBuf::from(u.strip_prefix("sqlite://").unwrap_or(u))),
            None => StateLocation::Sqlite(data_dir.join("state.sqlite")),
        }
    }
}

/// Opens the store, migrating its schema; a schema this build cannot use is
/// an error that names the fix.
pub async fn open(location: &StateLocation, retention: Retention) -> Result<Store, StoreError> {
    let store: Store = match location {
        StateLocation::Sqlite(path) => Arc::new(SqliteStore::open(path, retention)?),
        StateLocation::Postgres(url) => Arc::new(PostgresStore::connect(url, retention).await?),
    };
    Ok(store)
}

/// The database error of a store, as a [`StoreError`].
fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Checks a tool-private key and value against the caps.
fn check_value(key: &str, value: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StoreError::Limit(format!("session keys must be 1-{MAX_KEY_BYTES} bytes")));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::Limit(format!("session values are limited to {MAX_VALUE_BYTES} bytes")));
    }
    Ok(())
}

fn tasks_all_running(max: i64) -> StoreError {
    StoreError::Quota(format!("at most {max} tasks may be kept and all of them are still running; wait for one to finish or cancel one"))
}

fn too_many_keys() -> StoreError {
    StoreError::Limit(format!("a tool may keep at most {MAX_KEYS_PER_TOOL} session keys"))
}

/// What a settlement charges: the real cost when known, else the full
/// reserved amount (a completion never answered is charged, never free).
fn charged(actual: Option<f64>, reserved: f64) -> f64 {
    actual.filter(|a| a.is_finite() && *a >= 0.0).unwrap_or(reserved)
}

/// A small tolerance for sums of binary floating-point costs.
const COST_EPSILON: f64 = 1e-12;

/// The decision of a reservation given the bucket and the cap's account.
fn check_reservation(
    bucket: (f64, f64),
    account: (f64, f64),
    amount: f64,
    limits: &SpendLimits,
    period_key: &str,
) -> Result<(), Refusal> {
    if let Some(max) = limits.bucket_max {
        // The guard's published rule (`exceeded = maxCost − spent ≤ 0`, the
        // completion that crosses the limit is still sent), with every
        // completion in flight counted as spent: the guard is the session's
        // soft limit, the cap below the principal's hard one.
        let (spent, reserved) = bucket;
        if max - (spent + reserved) <= 0.0 {
            return Err(Refusal::Guard { max, spent, reserved });
        }
    }
    if let Some(cap) = limits.cap {
        let (spent, reserved) = account;
        if spent + reserved + amount > cap.amount + COST_EPSILON {
            return Err(Refusal::Cap { cap, period_key: period_key.to_owned(), spent, reserved });
        }
    }
    Ok(())
}

fn invalid_amount(amount: f64) -> Option<StoreError> {
    (!(amount.is_finite() && amount >= 0.0)).then(|| StoreError::Limit(format!("a reservation must be a non-negative amount, got {amount}")))
}

/// The wait until a bucket holding `tokens` has one again.
fn retry_after(tokens: f64, refill_per_sec: f64) -> Duration {
    if refill_per_sec <= 0.0 {
        return Duration::MAX;
    }
    Duration::from_secs_f64(((1.0 - tokens).max(0.0) / refill_per_sec).max(0.001))
}
