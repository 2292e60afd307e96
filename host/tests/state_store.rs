//! One conformance suite for both state store backends: SQLite in a temp
//! folder and the real PostgreSQL of `cargo xtask postgres` (its URL in
//! OMNIROUTE_MCP_TEST_POSTGRES_URL; each test gets a schema of its own).
//! "Two instances" means two stores opened on one database: two SQLite
//! connections on one file, or two connection pools (two nodes) on one
//! PostgreSQL.

use omniroute_mcp::session::ledger::LedgerEntry;
use omniroute_mcp::state::{
    BucketKey, Period, Refusal, Retention, SpendCap, SpendLimits, StateLocation, Store, StoreError, TaskStatus, TaskUpdate,
    period_keys,
};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where one test's database is; [`Db::open`] can be called again for a
/// second instance on the same database.
struct Db {
    location: StateLocation,
    dir: Option<PathBuf>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn unique() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{}_{}", std::process::id(), b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

fn postgres_url() -> String {
    std::env::var("OMNIROUTE_MCP_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()).expect(
        "OMNIROUTE_MCP_TEST_POSTGRES_URL is not set: start a test server with `cargo xtask postgres start` and export the URL it prints \
         (cargo xtask test does both)",
    )
}

impl Db {
    async fn new(backend: Backend) -> Db {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("omr-state-{}", unique()));
                Db { location: StateLocation::Sqlite(dir.join("data").join("state.sqlite")), dir: Some(dir) }
            }
            Backend::Postgres => {
                let base = postgres_url();
                let schema = format!("t_{}", unique());
                let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
                tokio::spawn(conn);
                client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                Db { location: StateLocation::Postgres(format!("{base}{sep}options=-c%20search_path%3D{schema}")), dir: None }
            }
        }
    }

    async fn open(&self, retention: Retention) -> Store {
        omniroute_mcp::state::open(&self.location, retention).await.expect("open the store")
    }

    /// Runs SQL directly on the database (schema tests).
    async fn sql(&self, statements: &str) {
        match &self.location {
            StateLocation::Sqlite(path) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                rusqlite::Connection::open(path).unwrap().execute_batch(statements).unwrap()
            }
            StateLocation::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(statements).await.unwrap();
            }
        }
    }
}

fn entry(request_id: &str, cost: f64) -> LedgerEntry {
    LedgerEntry {
        request_id: Some(request_id.to_owned()),
        sent_at: "2026-12-06T10:00:00.000Z".into(),
        received_at: "2026-12-06T10:00:01.000Z".into(),
        origin: "omniroute_route_request".into(),
        requested_model: Some("coding-fast".into()),
        combo: None,
        role: None,
        status: Some(200),
        success: true,
        provider: Some("mock".into()),
        model: Some("mock-small".into()),
        cost: Some(cost),
        tokens_in: Some(7),
        tokens_out: Some(3),
        latency_ms: Some(12.0),
        cache: None,
        fallbacks_triggered: None,
        degraded_from: None,
        error: None,
    }
}

fn cap(amount: f64, period: Period) -> SpendLimits {
    SpendLimits { bucket_max: None, cap: Some(SpendCap { amount, period }) }
}

async fn handles_are_bound_to_their_principal(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open(Retention::default()).await;
    let handle = store.mint_handle("tenant-a").await.unwrap();
    let bucket = store.resolve("tenant-a", handle.as_str()).await.unwrap().expect("A resolves its own handle");
    assert_eq!(bucket, BucketKey::handle(&handle));
    store.set_guard("tenant-a", &bucket, Some(r#"{"maxCost":0.5,"action":"block"}"#)).await.unwrap();
    store.set_value("tenant-a", &bucket, "tool", "k", "secret-of-a").await.unwrap();
    let id = store.append_ledger("tenant-a", &bucket, &entry("req-a", 0.25)).await.unwrap();
    let reservation = store.reserve("tenant-a", &bucket, 0.1, SpendLimits::default()).await.unwrap();
    let task = store.create_task("tenant-a", Duration::from_secs(600)).await.unwrap();

    // B's own state, to show it is unchanged by everything below.
    let b_default = BucketKey::default_bucket();
    store.set_value("tenant-b", &b_default, "tool", "k", "b's own").await.unwrap();
    let b_before = store.open_bucket("tenant-b", &b_default).await.unwrap();

    // A's handle, presented by B, names nothing.
    assert_eq!(store.resolve("tenant-b", handle.as_str()).await.unwrap(), None);
    assert_eq!(store.open_bucket("tenant-b", &bucket).await, Err(StoreError::NotFound));
    assert_eq!(store.set_guard("tenant-b", &bucket, Some("{}")).await, Err(StoreError::NotFound));
    assert_eq!(store.set_value("tenant-b", &bucket, "tool", "k", "overwrite").await, Err(StoreError::NotFound));
    assert_eq!(store.get_value("tenant-b", &bucket, "tool", "k").await.unwrap(), None);
    assert!(store.ledger("tenant-b", &bucket).await.unwrap().is_empty());
    assert_eq!(store.find_request("tenant-b", "req-a").await.unwrap(), None);
    assert!(!store.update_ledger("tenant-b", id, &entry("req-b", 0.0)).await.unwrap());
    assert_eq!(store.settle("tenant-b", &reservation, Some(0.0)).await, Err(StoreError::NotFound));
    assert_eq!(store.get_task("tenant-b", &task.task_id).await.unwrap(), None);
    assert!(!store.cancel_task("tenant-b", &task.task_id).await.unwrap());
    assert!(!store.finish_task("tenant-b", &task.task_id, TaskStatus::Completed, "{}").await.unwrap());
    // Something shaped unlike a handle is not even looked up.
    assert_eq!(store.resolve("tenant-a", "sh_not-a-handle").await.unwrap(), None);

    // A's state is intact; B's is exactly as before.
    assert_eq!(store.get_value("tenant-a", &bucket, "tool", "k").await.unwrap().as_deref(), Some("secret-of-a"));
    assert_eq!(store.ledger("tenant-a", &bucket).await.unwrap()[0].entry.request_id.as_deref(), Some("req-a"));
    assert_eq!(store.open_bucket("tenant-a", &bucket).await.unwrap().reserved, 0.1);
    assert!(!store.get_task("tenant-a", &task.task_id).await.unwrap().unwrap().cancel_requested);
    let b_after = store.open_bucket("tenant-b", &b_default).await.unwrap();
    assert_eq!((b_after.budget_guard, b_after.spent, b_after.reserved), (b_before.budget_guard, b_before.spent, b_before.reserved));
    assert_eq!(store.get_value("tenant-b", &b_default, "tool", "k").await.unwrap().as_deref(), Some("b's own"));
    assert_eq!(store.spend("tenant-b", "total").await.unwrap().reserved, 0.0);
    store.close().await.unwrap();
}

async fn buckets_keep_guard_and_capped_private_values(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open(Retention::default()).await;
    let session = BucketKey::session("mcp-session-1");
    let first = store.open_bucket("p", &session).await.unwrap();
    assert_eq!(first.budget_guard, None);
    assert!(first.started_ms > 0);
    store.set_guard("p", &session, Some(r#"{"maxCost":1}"#)).await.unwrap();
    let again = store.open_bucket("p", &session).await.unwrap();
    assert_eq!(again.started_ms, first.started_ms, "the start is kept");
    assert_eq!(again.budget_guard.as_deref(), Some(r#"{"maxCost":1}"#));
    store.set_guard("p", &session, None).await.unwrap();
    assert_eq!(store.open_bucket("p", &session).await.unwrap().budget_guard, None);

    // Values are private per tool and per bucket.
    store.set_value("p", &session, "a", "k", "1").await.unwrap();
    assert_eq!(store.get_value("p", &session, "a", "k").await.unwrap().as_deref(), Some("1"));
    assert_eq!(store.get_value("p", &session, "b", "k").await.unwrap(), None);
    assert_eq!(store.get_value("p", &BucketKey::default_bucket(), "a", "k").await.unwrap(), None);

    // Caps: key length, value length, keys per tool.
    let limit = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Limit(_)));
    assert!(limit(store.set_value("p", &session, "a", &"k".repeat(257), "v").await));
    assert!(limit(store.set_value("p", &session, "a", "", "v").await));
    assert!(limit(store.set_value("p", &session, "a", "big", &"v".repeat(64 * 1024 + 1)).await));
    store.set_value("p", &session, "a", "big", &"v".repeat(64 * 1024)).await.unwrap();
    for i in 2..64 {
        store.set_value("p", &session, "a", &format!("k{i}"), "v").await.unwrap();
    }
    let err = store.set_value("p", &session, "a", "one-too-many", "v").await.unwrap_err();
    assert!(err.to_string().contains("at most 64 session keys"), "{err}");
    store.set_value("p", &session, "a", "k", "overwrite is fine").await.unwrap();
    store.set_value("p", &session, "other-tool", "k", "own quota").await.unwrap();
    store.close().await.unwrap();
}

async fn ledger_is_ordered_updatable_and_indexed(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open(Retention::default()).await;
    let one = BucketKey::session("s1");
    let two = BucketKey::default_bucket();
    let a = store.append_ledger("p", &one, &entry("r1", 0.1)).await.unwrap();
    store.append_ledger("p", &two, &entry("r2", 0.2)).await.unwrap();
    store.append_ledger("p", &one, &entry("r3", 0.3)).await.unwrap();
    let ids: Vec<_> = store.ledger("p", &one).await.unwrap().into_iter().map(|r| r.entry.request_id.unwrap()).collect();
    assert_eq!(ids, ["r1", "r3"]);
    let mut annotated = entry("r1", 0.1);
    annotated.combo = Some("coding-fast".into());
    assert!(store.update_ledger("p", a, &annotated).await.unwrap());
    assert_eq!(store.ledger("p", &one).await.unwrap()[0].entry, annotated);
    // The routing index spans the principal's buckets.
    let found = store.find_request("p", "r2").await.unwrap().unwrap();
    assert_eq!((found.bucket, found.entry.cost), (two, Some(0.2)));
    assert_eq!(store.find_request("p", "r1").await.unwrap().unwrap().entry.combo.as_deref(), Some("coding-fast"));
    assert_eq!(store.find_request("p", "nope").await.unwrap(), None);
    store.close().await.unwrap();
}

async fn reservations_count_outstanding_and_settle(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open(Retention::default()).await;
    let bucket = BucketKey::default_bucket();
    let limits = cap(1.0, Period::Day);
    let first = store.reserve("p", &bucket, 0.6, limits).await.unwrap();
    // Outstanding reservations count: 0.6 + 0.6 > 1.0.
    match store.reserve("p", &bucket, 0.6, limits).await {
        Err(StoreError::Refused(Refusal::Cap { cap, period_key, spent, reserved })) => {
            assert_eq!(cap.period, Period::Day);
            assert!(period_key.starts_with("day:"), "{period_key}");
            assert_eq!((spent, reserved), (0.0, 0.6));
        }
        other => panic!("expected a cap refusal, got {other:?}"),
    }
    assert_eq!(store.settle("p", &first, Some(0.1)).await.unwrap(), 0.1);
    assert_eq!(store.settle("p", &first, Some(0.1)).await, Err(StoreError::NotFound), "settles once");
    // Never answered: charged the full reservation.
    let second = store.reserve("p", &bucket, 0.6, limits).await.unwrap();
    assert_eq!(store.settle("p", &second, None).await.unwrap(), 0.6);
    let [day, month, total] = period_keys(omniroute_mcp::db::now_ms());
    for key in [&day, &month, &total] {
        let account = store.spend("p", key).await.unwrap();
        assert!((account.spent - 0.7).abs() < 1e-9 && account.reserved.abs() < 1e-9, "{key}: {account:?}");
    }
    let state = store.open_bucket("p", &bucket).await.unwrap();
    assert!((state.spent - 0.7).abs() < 1e-9 && state.reserved.abs() < 1e-9, "{state:?}");

    // The bucket's guard refuses on its own figures; the message names it.
    let guarded = BucketKey::session("guarded");
    let guard = SpendLimits { bucket_max: Some(0.5), cap: None };
    // The guard's rule: sent while spent + reserved is under maxCost (the
    // completion that crosses it goes), refused once it has reached it.
    store.reserve("p", &guarded, 0.4, guard).await.unwrap();
    store.reserve("p", &guarded, 0.2, guard).await.unwrap();
    let err = store.reserve("p", &guarded, 0.01, guard).await.unwrap_err();
    assert!(matches!(err, StoreError::Refused(Refusal::Guard { .. })), "{err:?}");
    assert!(err.to_string().contains("session budget guard (0.5 USD) is reached"), "{err}");
    assert!(matches!(store.reserve("p", &guarded, f64::NAN, guard).await, Err(StoreError::Limit(_))));
    store.close().await.unwrap();
}

/// A completion's end in one transaction: the entry and its booking land
/// together, with or without a reservation, and a reservation settles once.
async fn a_completion_is_recorded_and_booked_in_one_step(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open(Retention::default()).await;
    let bucket = BucketKey::session("finish");
    let [day, month, total] = period_keys(omniroute_mcp::db::now_ms());
    let spent = |key: &str| {
        let (store, key) = (store.clone(), key.to_owned());
        async move { store.spend("p", &key).await.unwrap() }
    };

    // Reserved (a cap): settled at the entry's real cost.
    let reservation = store.reserve("p", &bucket, 0.6, cap(1.0, Period::Day)).await.unwrap();
    let (id, charged) = store.finish_completion("p", &bucket, Some(&entry("f1", 0.2)), Some(&reservation), Some(0.2)).await.unwrap();
    assert_eq!(charged, 0.2);
    let id = id.expect("an entry was given, so it has an id");
    assert_eq!(store.find_request("p", "f1").await.unwrap().map(|r| r.id), Some(id));
    assert_eq!(
        store.finish_completion("p", &bucket, None, Some(&reservation), Some(0.2)).await,
        Err(StoreError::NotFound),
        "a reservation settles once"
    );
    assert!(store.find_request("p", "f1").await.unwrap().is_some(), "a failed finish leaves earlier entries alone");

    // Unreserved (no guard, no cap): the real cost is added directly.
    let (id, charged) = store.finish_completion("p", &bucket, Some(&entry("f2", 0.05)), None, Some(0.05)).await.unwrap();
    assert!(id.is_some());
    assert_eq!(charged, 0.05);
    // Unreserved and never answered: nothing was held, nothing is charged.
    assert_eq!(store.finish_completion("p", &bucket, Some(&entry("f3", 0.0)), None, None).await.unwrap().1, 0.0);
    // Nothing sent (no entry), a reservation never answered: charged in full.
    let unanswered = store.reserve("p", &bucket, 0.3, cap(1.0, Period::Day)).await.unwrap();
    assert_eq!(store.finish_completion("p", &bucket, None, Some(&unanswered), None).await.unwrap(), (None, 0.3));

    for key in [&day, &month, &total] {
        let account = spent(key).await;
        assert!((account.spent - 0.55).abs() < 1e-9 && account.reserved.abs() < 1e-9, "{key}: {account:?}");
    }
    let state = store.open_bucket("p", &bucket).await.unwrap();
    assert!((state.spent - 0.55).abs() < 1e-9 && state.reserved.abs() < 1e-9, "{state:?}");
    let ledger = store.ledger("p", &bucket).await.unwrap();
    let ids: Vec<_> = ledger.iter().filter_map(|r| r.entry.request_id.as_deref()).collect();
    assert_eq!(ids, ["f1", "f2", "f3"]);
    store.close().await.unwrap();
}

async fn concurrent_reservations_on_two_instances_never_exceed_the_cap(backend: Backend) {
    let db = Db::new(backend).await;
    let nodes = [db.open(Retention::default()).await, db.open(Retention::default()).await];
    // A price of c = 1 per completion and a cap of 10.5 c: exactly 10 fit.
    let limits = cap(10.5, Period::Total);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node = nodes[i % 2].clone();
        let bucket = BucketKey::session(&format!("s{}", i % 3));
        tasks.push(tokio::spawn(async move { node.reserve("tenant", &bucket, 1.0, limits).await }));
    }
    let mut granted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(id) => granted.push(id),
            Err(StoreError::Refused(Refusal::Cap { .. })) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((granted.len(), refused), (10, 10));
    for (i, id) in granted.iter().enumerate() {
        nodes[i % 2].settle("tenant", id, Some(1.0)).await.unwrap();
    }
    let total = nodes[0].spend("tenant", "total").await.unwrap();
    assert!(total.spent <= 10.5 && total.reserved.abs() < 1e-9, "{total:?}");
    assert_eq!(total.spent, 10.0);
    for node in &nodes {
        node.close().await.unwrap();
    }
}

async fn a_rate_bucket_without_refill_accepts_exactly_its_capacity_across_instances(backend: Backend) {
    let db = Db::new(backend).await;
    let nodes = [db.open(Retention::default()).await, db.open(Retention::default()).await];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move { node.take_token("tenant", "calls", 7, 0.0).await }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(StoreError::RateLimited(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 7);
    // Buckets are per principal and per name.
    nodes[0].take_token("other-tenant", "calls", 7, 0.0).await.unwrap();
    nodes[1].take_token("tenant", "initialize", 7, 0.0).await.unwrap();
    // Several tokens at once: all or none, never more than the bucket holds.
    nodes[0].take_tokens("lease", "calls", 10, 0.0, 4).await.unwrap();
    nodes[1].take_tokens("lease", "calls", 10, 0.0, 4).await.unwrap();
    assert!(matches!(nodes[0].take_tokens("lease", "calls", 10, 0.0, 4).await, Err(StoreError::RateLimited(_))), "2 left, 4 asked");
    nodes[1].take_token("lease", "calls", 10, 0.0).await.unwrap();
    nodes[0].take_token("lease", "calls", 10, 0.0).await.unwrap();
    assert!(matches!(nodes[1].take_token("lease", "calls", 10, 0.0).await, Err(StoreError::RateLimited(_))), "all 10 taken");
    // With a refill rate the refusal says when to retry.
    nodes[0].take_token("t", "slow", 1, 0.5).await.unwrap();
    match nodes[1].take_token("t", "slow", 1, 0.5).await {
        Err(StoreError::RateLimited(after)) => assert!(after > Duration::ZERO && after <= Duration::from_secs(2), "{after:?}"),
        other => panic!("expected a rate limit, got {other:?}"),
    }
    for node in &nodes {
        node.close().await.unwrap();
    }
}

async fn task_records_live_expire_and_have_a_quota(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open(Retention { max_tasks: 2, ..Retention::default() }).await;
    let first = store.create_task("p", Duration::from_secs(600)).await.unwrap();
    assert_eq!(first.status, TaskStatus::Working);
    assert!(first.expires_ms >= first.created_ms + 600_000);
    let update = TaskUpdate { progress: Some(1.0), total: Some(4.0), message: Some("step 1".into()), ..Default::default() };
    assert!(store.update_task("p", &first.task_id, update).await.unwrap());
    assert!(store.cancel_task("p", &first.task_id).await.unwrap());
    let got = store.get_task("p", &first.task_id).await.unwrap().unwrap();
    assert_eq!((got.progress, got.total, got.message.as_deref(), got.cancel_requested), (Some(1.0), Some(4.0), Some("step 1"), true));
    let second = store.create_task("p", Duration::from_secs(600)).await.unwrap();
    // Both running: a third is refused, not silently dropped.
    assert!(matches!(store.create_task("p", Duration::from_secs(600)).await, Err(StoreError::Quota(_))));
    assert!(store.finish_task("p", &first.task_id, TaskStatus::Cancelled, r#"{"cancelled":true}"#).await.unwrap());
    let third = store.create_task("p", Duration::from_secs(600)).await.unwrap();
    let listed: Vec<_> = store.list_tasks("p").await.unwrap().into_iter().map(|t| t.task_id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&second.task_id) && listed.contains(&third.task_id), "the finished one made room: {listed:?}");
    assert_eq!(store.get_task("p", &first.task_id).await.unwrap(), None);
    // Expired records are gone.
    let fleeting = store.create_task("q", Duration::ZERO).await.unwrap();
    assert_eq!(store.get_task("q", &fleeting.task_id).await.unwrap(), None);
    assert!(!store.update_task("q", &fleeting.task_id, TaskUpdate::default()).await.unwrap());
    assert!(store.finish_task("p", &third.task_id, TaskStatus::Completed, r#"{"ok":1}"#).await.unwrap());
    let done = store.get_task("p", &third.task_id).await.unwrap().unwrap();
    assert_eq!((done.status, done.result.as_deref()), (TaskStatus::Completed, Some(r#"{"ok":1}"#)));
    store.close().await.unwrap();
}

async fn retention_applies_quotas_and_prunes_idle_state(backend: Backend) {
    let db = Db::new(backend).await;
    let retention = Retention {
        max_handles: 2,
        max_ledger_entries: 3,
        max_tasks: 10,
        idle: Duration::from_secs(3600),
        stale_reservation: Duration::from_secs(600),
    };
    let store = db.open(retention).await;
    // Handles: the least recently used goes when a third is minted.
    let h1 = store.mint_handle("p").await.unwrap();
    let h2 = store.mint_handle("p").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.resolve("p", h1.as_str()).await.unwrap().unwrap();
    let h3 = store.mint_handle("p").await.unwrap();
    assert!(store.resolve("p", h1.as_str()).await.unwrap().is_some());
    assert_eq!(store.resolve("p", h2.as_str()).await.unwrap(), None, "the least recently used handle was evicted");
    assert!(store.resolve("p", h3.as_str()).await.unwrap().is_some());
    // Another principal's quota is its own.
    store.mint_handle("q").await.unwrap();
    assert!(store.resolve("p", h1.as_str()).await.unwrap().is_some());

    // Ledger: the principal keeps its newest 3 entries.
    let bucket = BucketKey::session("s");
    for i in 0..5 {
        store.append_ledger("p", &bucket, &entry(&format!("r{i}"), 0.01)).await.unwrap();
    }
    let kept: Vec<_> = store.ledger("p", &bucket).await.unwrap().into_iter().map(|r| r.entry.request_id.unwrap()).collect();
    assert_eq!(kept, ["r2", "r3", "r4"]);

    // A reservation whose node never settled it, and an expiring task.
    let orphan = store.reserve("p", &bucket, 0.25, SpendLimits::default()).await.unwrap();
    store.create_task("p", Duration::from_secs(60)).await.unwrap();

    // Nothing is idle yet.
    let now = omniroute_mcp::db::now_ms();
    assert_eq!(store.prune(now).await.unwrap().buckets, 0);
    assert!(store.resolve("p", h1.as_str()).await.unwrap().is_some());

    // Two hours later: idle buckets go with their ledgers; the orphan is
    // charged in full; the task has expired.
    let report = store.prune(now + 2 * 3600 * 1000).await.unwrap();
    assert_eq!(report.stale_reservations, 1);
    assert_eq!(report.tasks, 1);
    assert!(report.buckets >= 3 && report.ledger_entries == 3, "{report:?}");
    assert_eq!(store.resolve("p", h1.as_str()).await.unwrap(), None);
    assert!(store.ledger("p", &bucket).await.unwrap().is_empty());
    assert_eq!(store.settle("p", &orphan, Some(0.0)).await, Err(StoreError::NotFound));
    let total = store.spend("p", "total").await.unwrap();
    assert_eq!((total.spent, total.reserved), (0.25, 0.0));
    // Counters were recounted: a full quota is available again.
    let fresh = [store.mint_handle("p").await.unwrap(), store.mint_handle("p").await.unwrap()];
    for h in &fresh {
        assert!(store.resolve("p", h.as_str()).await.unwrap().is_some());
    }
    store.close().await.unwrap();
}

async fn an_incompatible_schema_is_refused_with_the_fix(backend: Backend) {
    let db = Db::new(backend).await;
    db.open(Retention::default()).await.close().await.unwrap();
    // A newer server migrated the schema but kept it compatible: still works.
    db.sql("UPDATE omniroute_schema SET version = 7, compatible_from = 1 WHERE component = 'state'").await;
    let store = db.open(Retention::default()).await;
    store.open_bucket("p", &BucketKey::default_bucket()).await.unwrap();
    store.close().await.unwrap();
    // A newer schema this build cannot use: refused, naming the versions.
    db.sql("UPDATE omniroute_schema SET version = 9, compatible_from = 8 WHERE component = 'state'").await;
    let err = omniroute_mcp::state::open(&db.location, Retention::default()).await.err().expect("refused");
    assert!(err.to_string().contains("schema in the database is version 9, which needs omniroute-mcp with schema version 8 or newer"), "{err}");
}

async fn a_newer_node_refuses_to_break_a_running_older_one(backend: Backend) {
    let db = Db::new(backend).await;
    // An older node (schema version 0 of `state`) registered and alive; our
    // schema 1 is not compatible with version 0.
    let now = omniroute_mcp::db::now_ms();
    db.sql(&format!(
        "CREATE TABLE omniroute_schema (component TEXT PRIMARY KEY, version BIGINT NOT NULL, compatible_from BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
         CREATE TABLE omniroute_nodes (node_id TEXT PRIMARY KEY, component TEXT NOT NULL, schema_version BIGINT NOT NULL, started_ms BIGINT NOT NULL, last_seen_ms BIGINT NOT NULL);
         INSERT INTO omniroute_schema VALUES ('state', 0, 0, {now});
         INSERT INTO omniroute_nodes VALUES ('old-node-7', 'state', 0, {now}, {now});"
    ))
    .await;
    let err = omniroute_mcp::state::open(&db.location, Retention::default()).await.err().expect("refused");
    assert!(err.to_string().contains("would break node old-node-7 (schema version 0"), "{err}");
    // Once the old node has stopped (no heartbeat for long), the upgrade goes ahead.
    db.sql(&format!("UPDATE omniroute_nodes SET last_seen_ms = {} WHERE node_id = 'old-node-7'", now - 600_000)).await;
    db.open(Retention::default()).await.close().await.unwrap();
}

/// The per-principal handle counts behind the `session_handles` gauge.
async fn handle_counts_are_per_principal(backend: Backend) {
    let db = Db::new(backend).await;
    let store = db.open(Retention::default()).await;
    assert_eq!(store.handle_counts().await.unwrap(), vec![]);
    store.mint_handle("tenant-a").await.unwrap();
    store.mint_handle("tenant-a").await.unwrap();
    store.mint_handle("tenant-b").await.unwrap();
    store.open_bucket("tenant-c", &BucketKey::default_bucket()).await.unwrap();
    assert_eq!(
        store.handle_counts().await.unwrap(),
        vec![("tenant-a".to_owned(), 2), ("tenant-b".to_owned(), 1)],
        "a principal with only its default bucket holds no handle"
    );
}

/// Revocations: recorded once per principal (a second revoke updates the reason), seen
/// by another instance on the same database, lifted by restore.
async fn revocations_are_shared_listed_and_lifted(backend: Backend) {
    let db = Db::new(backend).await;
    let (one, two) = (db.open(Retention::default()).await, db.open(Retention::default()).await);
    assert!(one.revocations().await.unwrap().is_empty());
    one.revoke("tenant:b", "first").await.unwrap();
    one.revoke("tenant:a", "left").await.unwrap();
    one.revoke("tenant:b", "second").await.unwrap();
    let seen: Vec<(String, String)> = two.revocations().await.unwrap().into_iter().map(|r| (r.principal, r.reason)).collect();
    assert_eq!(seen, vec![("tenant:a".to_owned(), "left".to_owned()), ("tenant:b".to_owned(), "second".to_owned())]);
    assert!(two.restore("tenant:a").await.unwrap());
    assert!(!two.restore("tenant:a").await.unwrap(), "nothing left to lift");
    let left: Vec<String> = one.revocations().await.unwrap().into_iter().map(|r| r.principal).collect();
    assert_eq!(left, vec!["tenant:b".to_owned()]);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

conformance!(
    handles_are_bound_to_their_principal,
    buckets_keep_guard_and_capped_private_values,
    ledger_is_ordered_updatable_and_indexed,
    reservations_count_outstanding_and_settle,
    a_completion_is_recorded_and_booked_in_one_step,
    concurrent_reservations_on_two_instances_never_exceed_the_cap,
    a_rate_bucket_without_refill_accepts_exactly_its_capacity_across_instances,
    task_records_live_expire_and_have_a_quota,
    retention_applies_quotas_and_prunes_idle_state,
    an_incompatible_schema_is_refused_with_the_fix,
    a_newer_node_refuses_to_break_a_running_older_one,
    handle_counts_are_per_principal,
    revocations_are_shared_listed_and_lifted,
);

/// SQLite only: the embedded store survives a restart (a tenant cannot reset
/// its spend by making the server restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_state_survives_a_restart() {
    let db = Db::new(Backend::Sqlite).await;
    let (handle, reservation) = {
        let store = db.open(Retention::default()).await;
        let handle = store.mint_handle("p").await.unwrap();
        let bucket = store.resolve("p", handle.as_str()).await.unwrap().unwrap();
        store.set_guard("p", &bucket, Some(r#"{"maxCost":2}"#)).await.unwrap();
        store.append_ledger("p", &bucket, &entry("r1", 0.5)).await.unwrap();
        let settled = store.reserve("p", &bucket, 0.5, SpendLimits::default()).await.unwrap();
        store.settle("p", &settled, Some(0.5)).await.unwrap();
        let open = store.reserve("p", &bucket, 0.3, SpendLimits::default()).await.unwrap();
        store.close().await.unwrap();
        drop(store);
        (handle, open)
    };
    let store: Store = db.open(Retention::default()).await;
    let bucket = store.resolve("p", handle.as_str()).await.unwrap().expect("the handle survives");
    let state = store.open_bucket("p", &bucket).await.unwrap();
    assert_eq!((state.budget_guard.as_deref(), state.spent, state.reserved), (Some(r#"{"maxCost":2}"#), 0.5, 0.3));
    assert_eq!(store.ledger("p", &bucket).await.unwrap().len(), 1);
    assert_eq!(store.spend("p", "total").await.unwrap().spent, 0.5);
    assert_eq!(store.settle("p", &reservation, None).await.unwrap(), 0.3, "an open reservation survives too");
    store.close().await.unwrap();
}

/// SQLite only: the state files are private (0600 in a 0700 folder).
#[tokio::test]
async fn sqlite_state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = Db::new(Backend::Sqlite).await;
    let store = db.open(Retention::default()).await;
    store.open_bucket("p", &BucketKey::default_bucket()).await.unwrap();
    let StateLocation::Sqlite(path) = &db.location else { unreachable!() };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777;
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await.unwrap();
}
