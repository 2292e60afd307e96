use super::*;
use rusqlite::Connection;
use std::sync::Arc;

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
        stop_cause: None,
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

fn refusal(caller: &str, code: &str, tool: &str) -> AuditRecord {
    AuditRecord {
        caller: caller.into(),
        error_code: Some(code.into()),
        gateway_calls: vec![],
        duration_ms: 0,
        ..record(tool, false)
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("omniroute-audit-test-{}-{}", std::process::id(), crate::db::random_hex(6).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rows in `mcp_tool_audit`.
fn audit_rows(conn: &Connection) -> i64 {
    conn.query_row("SELECT COUNT(*) FROM mcp_tool_audit", [], |r| r.get(0)).unwrap()
}

fn verify(conn: &Connection) -> VerifyReport {
    let reader = AuditReader::Sqlite(conn);
    query_ready(reader.verify())
}

fn query_ready<T>(fut: impl std::future::Future<Output = Result<T, String>>) -> T {
    let fut = std::pin::pin!(fut);
    match fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(out) => out.unwrap(),
        std::task::Poll::Pending => panic!("a SQLite query waited"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_lose_nothing() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let log = Arc::new(AuditLog::open(&path));
    let mut tasks = Vec::new();
    for i in 0..500 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { log.commit(record(&format!("t{}", i % 7), i % 3 != 0)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let conn = open_connection(&path).unwrap();
    let rows = audit_rows(&conn);
    assert_eq!(rows, 500);
    let calls: i64 = conn.query_row("SELECT COUNT(*) FROM mcp_gateway_requests", [], |r| r.get(0)).unwrap();
    assert_eq!(calls, 500);
    let s = stats(&conn, Some(Duration::from_secs(3600))).unwrap();
    assert_eq!(s.total_calls, 500);
    assert!((s.success_rate.unwrap() - 333.0 / 500.0).abs() < 1e-9);
    assert_eq!(s.top_tools.len(), 7);
    // Group commit chains every row, across batches.
    let report = verify(&conn);
    assert_eq!((report.rows, report.first_broken_id), (500, None));
    log.close().await;
}

#[test]
fn unusable_path_refuses_calls() {
    let dir = TempDir::new();
    let file = dir.0.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let log = AuditLog::open(&file.join("audit.sqlite"));
    let err = log.check().unwrap_err();
    assert!(err.to_string().contains("--audit off"), "{err}");
}

#[tokio::test]
async fn verify_names_the_first_changed_or_deleted_row() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let log = AuditLog::open(&path);
    for i in 0..5 {
        log.commit(record(&format!("tool{i}"), true)).await.unwrap();
    }
    log.close().await;
    let conn = open_connection(&path).unwrap();
    let clean = verify(&conn);
    assert_eq!((clean.rows, clean.first_broken_id), (5, None));
    assert_ne!(clean.head_hash, GENESIS);

    // An edited field: that row is named.
    conn.execute("UPDATE mcp_tool_audit SET success = 0 WHERE id = 3", []).unwrap();
    let report = verify(&conn);
    assert_eq!(report.first_broken_id, Some(3), "{report:?}");
    assert!(report.reason.unwrap().contains("changed"));
    conn.execute("UPDATE mcp_tool_audit SET success = 1 WHERE id = 3", []).unwrap();
    // An edited gateway request counts as a change of its row.
    conn.execute("UPDATE mcp_gateway_requests SET status = 500 WHERE audit_id = 2", []).unwrap();
    assert_eq!(verify(&conn).first_broken_id, Some(2));
    conn.execute("UPDATE mcp_gateway_requests SET status = 200 WHERE audit_id = 2", []).unwrap();
    assert_eq!(verify(&conn).first_broken_id, None);
    // A deleted row: the next one no longer links.
    conn.execute("DELETE FROM mcp_gateway_requests WHERE audit_id = 4", []).unwrap();
    conn.execute("DELETE FROM mcp_tool_audit WHERE id = 4", []).unwrap();
    let report = verify(&conn);
    assert_eq!(report.first_broken_id, Some(5), "{report:?}");
    assert!(report.reason.unwrap().contains("deleted"));
}

#[tokio::test]
async fn pruning_keeps_the_chain_verifiable_from_its_anchor() {
    use writer::{Row, Sink};
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let mut sink = sqlite::SqliteSink::open(&path, false).unwrap();
    let row = |tool: &str, at: &str| Row { record: record(tool, true), created_at: at.into(), refusal_count: None };
    sink.write(&[row("old1", "2020-01-01 00:00:00"), row("old2", "2020-01-02 00:00:00")]).unwrap();
    sink.write(&[row("new1", "2026-12-01 00:00:00"), row("new2", "2026-12-02 00:00:00")]).unwrap();
    assert_eq!(sink.prune("2026-01-01 00:00:00").unwrap(), 2);
    assert_eq!(sink.prune("2026-01-01 00:00:00").unwrap(), 0, "idempotent");
    let conn = open_connection(&path).unwrap();
    let report = verify(&conn);
    assert_eq!((report.rows, report.anchor_through_id, report.first_broken_id), (2, Some(2), None), "{report:?}");
    let left: i64 = conn.query_row("SELECT COUNT(*) FROM mcp_gateway_requests", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 2, "the pruned rows' gateway requests went with them");
    // New rows continue the chain; deleting the first kept row is still detected.
    sink.write(&[row("new3", "2026-12-03 00:00:00")]).unwrap();
    assert_eq!(verify(&conn).first_broken_id, None);
    conn.execute("DELETE FROM mcp_gateway_requests WHERE audit_id = 3", []).unwrap();
    conn.execute("DELETE FROM mcp_tool_audit WHERE id = 3", []).unwrap();
    assert_eq!(verify(&conn).first_broken_id, Some(4));
}

#[tokio::test]
async fn repeated_refusals_are_aggregated_per_caller_and_code() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let log = AuditLog::open(&path);
    for i in 0..50 {
        // A flood with ever-changing, over-long tool names.
        log.refused(refusal("tenant-a", "tenant_limit", &format!("{i}{}", "x".repeat(10_000)))).await.unwrap();
    }
    log.refused(refusal("tenant-b", "tenant_limit", "omniroute_get_health")).await.unwrap();
    log.refused(refusal("tenant-a", "tool_not_allowed", "omniroute_get_health")).await.unwrap();
    log.close().await;
    let conn = open_connection(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT caller, error_code, refusal_count, length(tool_name) FROM mcp_tool_audit ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String, Option<i64>, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r.3 as usize <= caps::TOOL_NAME), "tool names are capped: {rows:?}");
    let count = |caller: &str, code: &str| -> i64 {
        rows.iter().filter(|r| r.0 == caller && r.1 == code).map(|r| r.2.unwrap_or(1)).sum()
    };
    assert_eq!(count("tenant-a", "tenant_limit"), 50);
    assert_eq!(count("tenant-b", "tenant_limit"), 1);
    assert_eq!(count("tenant-a", "tool_not_allowed"), 1);
    assert!(rows.iter().any(|r| r.2 == Some(49)), "one aggregated row: {rows:?}");
    assert_eq!(stats(&conn, None).unwrap().total_calls, 52, "stats count every refused call");
    assert_eq!(verify(&conn).first_broken_id, None);
}

/// A database "full" as a full disk would make it: SQLite's page limit.
/// `journaled`: rows go through the journal, as `open_sqlite` sets it up;
/// else each is committed into the tables.
fn full_log(dir: &Path, on_failure: OnFailure, journaled: bool) -> AuditLog {
    let path = dir.join("audit.sqlite");
    let conn = open_connection(&path).unwrap();
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {}", pages + 1), [], |r| r.get(0)).unwrap();
    let options = AuditOptions { on_failure, journal: journaled, ..AuditOptions::default() };
    if journaled {
        let journal = Arc::new(journal::Journal::open(&path).unwrap());
        AuditLog::start_sqlite(sqlite::SqliteSink::with_connection(conn, Some(journal)), options, Some(path))
    } else {
        AuditLog::start(sqlite::SqliteSink::with_connection(conn, None), options, Some(path))
    }
}

/// The journal files and locks left in `dir`'s audit journal folder.
fn journal_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(journal::dir_of(&dir.join("audit.sqlite"))) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

fn big(tool: &str) -> AuditRecord {
    AuditRecord { error_code: Some("e".repeat(caps::ERROR_CODE)), ..record(tool, false) }
}

#[tokio::test]
async fn a_full_database_refuses_calls_by_default() {
    let dir = TempDir::new();
    let log = full_log(&dir.0, OnFailure::Refuse, false);
    let mut refused = None;
    for i in 0..200 {
        if let Err(e) = log.commit(big(&format!("t{i}"))).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("a database at its page limit refuses rows");
    assert!(err.0.contains("full"), "{err}");
    assert!(err.to_string().contains("--audit-on-failure warn"), "the message names the way out: {err}");
    log.close().await;
}

#[tokio::test]
async fn a_full_database_answers_with_a_warning_when_the_operator_chose_so() {
    let dir = TempDir::new();
    let log = full_log(&dir.0, OnFailure::Warn, false);
    for i in 0..200 {
        log.commit(big(&format!("t{i}"))).await.expect("warn mode answers");
    }
    assert!(log.lost.load(Ordering::Relaxed) > 0, "rows were lost and counted");
    log.close().await;
    // A database that cannot be opened at all: calls run, with a warning.
    let file = dir.0.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let log = AuditLog::open_sqlite(&file.join("audit.sqlite"), AuditOptions { on_failure: OnFailure::Warn, ..AuditOptions::default() });
    log.check().unwrap();
    log.commit(record("t", true)).await.unwrap();
}

#[tokio::test]
async fn a_schema_1_database_is_upgraded_and_chained() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit-v1.sqlite");
    std::fs::copy(&fixture, &path).unwrap();
    let before: Vec<(i64, String, Option<String>)> = {
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 1, "the fixture is a schema version 1 database");
        let mut stmt = conn.prepare("SELECT id, tool_name, error_code FROM mcp_tool_audit ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(before.len(), 5);
    let log = AuditLog::open(&path);
    log.check().unwrap();
    log.commit(record("after-upgrade", true)).await.unwrap();
    log.close().await;
    let conn = open_connection(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let rows = recent(&conn, &RecentFilter { limit: Some(500), ..Default::default() }).unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].tool_name, "after-upgrade");
    let kept: Vec<(i64, String, Option<String>)> = rows[1..].iter().rev().map(|r| (r.id, r.tool_name.clone(), r.error_code.clone())).collect();
    assert_eq!(kept, before, "the old rows are kept as they were");
    let report = verify(&conn);
    assert_eq!((report.rows, report.first_broken_id), (6, None), "{report:?}");
    let gateway: i64 = conn.query_row("SELECT COUNT(*) FROM mcp_gateway_requests", [], |r| r.get(0)).unwrap();
    assert_eq!(gateway, 5, "the fixture's 4 gateway requests and the new row's one");
}

/// A sink whose commits wait until the test lets them through.
struct GatedSink(std::sync::mpsc::Receiver<()>);

impl writer::Sink for GatedSink {
    fn write(&mut self, _rows: &[writer::Row]) -> Result<(), String> {
        self.0.recv().map_err(|_| "the gate closed".to_owned())
    }
    fn prune(&mut self, _cutoff: &str) -> Result<u64, String> {
        Ok(0)
    }
    fn heartbeat(&mut self) {}
    fn leave(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_counts_the_rows_waiting_for_their_commit() {
    let (gate, rx) = std::sync::mpsc::channel();
    let log = Arc::new(AuditLog::start(GatedSink(rx), AuditOptions::default(), None));
    assert_eq!(log.queue_depth(), 0);
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.commit(record(&format!("t{i}"), true)).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.queue_depth() < 3 {
        assert!(std::time::Instant::now() < deadline, "depth {} never reached 3", log.queue_depth());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The writer holds the first batch at the gate: nothing is answered yet.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(log.queue_depth(), 3);
    for _ in 0..3 {
        let _ = gate.send(());
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(log.queue_depth(), 0);

    // A caller that gives up (its future dropped) leaves the queue too.
    let (closed_gate, rx) = std::sync::mpsc::channel::<()>();
    let log = Arc::new(AuditLog::start(GatedSink(rx), AuditOptions::default(), None));
    let waiting = {
        let log = log.clone();
        tokio::spawn(async move { log.commit(record("dropped", true)).await })
    };
    while log.queue_depth() < 1 {
        assert!(std::time::Instant::now() < deadline, "the row never queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    waiting.abort();
    let _ = waiting.await;
    assert_eq!(log.queue_depth(), 0);
    drop(closed_gate);
}

#[tokio::test]
async fn a_full_database_behind_the_journal_refuses_the_next_calls_and_keeps_the_rows() {
    let dir = TempDir::new();
    let log = full_log(&dir.0, OnFailure::Refuse, true);
    log.check().unwrap();
    for i in 0..20 {
        // Journaled: the answered call is recorded even though the database is full.
        log.commit(big(&format!("t{i}"))).await.unwrap();
    }
    let err = log.flush().await.expect_err("the rows do not fit into the database");
    assert!(err.0.contains("full"), "{err}");
    let err = log.check().expect_err("calls are refused while journaled rows cannot reach the database");
    assert!(err.0.contains("full"), "{err}");
    assert!(err.to_string().contains("--audit-on-failure warn"), "the message names the way out: {err}");
    log.close().await;
    drop(log);
    // Nothing was lost: the journal kept every row, and a process with room imports them once.
    assert!(journal_files(&dir.0).iter().any(|f| f.ends_with(".jsonl")), "{:?}", journal_files(&dir.0));
    let path = dir.0.join("audit.sqlite");
    let conn = open_connection(&path).unwrap();
    let rows = audit_rows(&conn);
    assert_eq!(rows, 20);
    assert_eq!(verify(&conn).first_broken_id, None);
    drop(conn);
    assert_eq!(journal_files(&dir.0), Vec::<String>::new(), "imported files of a stopped process are deleted");

    // Warn: the calls go on; the rows still wait in the journal, none is counted lost.
    let dir = TempDir::new();
    let log = full_log(&dir.0, OnFailure::Warn, true);
    for i in 0..20 {
        log.commit(big(&format!("t{i}"))).await.unwrap();
    }
    assert!(log.flush().await.is_err());
    log.check().unwrap();
    assert_eq!(log.lost.load(Ordering::Relaxed), 0);
    log.close().await;
}

#[tokio::test]
async fn journaled_rows_are_visible_to_readers_at_once_and_imported_once() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let log = AuditLog::open(&path);
    for i in 0..3 {
        log.commit(record(&format!("tool{i}"), true)).await.unwrap();
    }
    // A reader (another process's `audit` command) imports what the live log journaled.
    let reader = open_connection(&path).unwrap();
    assert_eq!(audit_rows(&reader), 3);
    // The log's own drain, and another reader, find nothing new: no row twice.
    log.flush().await.unwrap();
    assert_eq!(audit_rows(&open_connection(&path).unwrap()), 3);
    log.commit(record("tool3", true)).await.unwrap();
    assert_eq!(log.flush().await.unwrap(), 1);
    assert_eq!(audit_rows(&reader), 4);
    assert_eq!(verify(&reader).first_broken_id, None);
    // A live process's files are kept; a clean stop deletes them and its lock.
    assert_eq!(journal_files(&dir.0).len(), 2, "{:?}", journal_files(&dir.0));
    log.close().await;
    assert_eq!(journal_files(&dir.0), Vec::<String>::new());
}

#[tokio::test]
async fn rows_a_killed_process_journaled_are_imported_by_the_next_one() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    drop(open_connection(&path).unwrap());
    // What a process killed mid-write leaves: its (unlocked) lock, two whole rows, and
    // the start of a third whose call was never answered.
    let pending = journal::dir_of(&path);
    std::fs::create_dir_all(&pending).unwrap();
    std::fs::write(pending.join("4242-abcdef.lock"), b"").unwrap();
    // And a process killed before it wrote any row: only its lock.
    std::fs::write(pending.join("4343-abcdef.lock"), b"").unwrap();
    let row = |tool: &str| writer::Row { record: record(tool, true), created_at: "2026-12-07 10:00:00".into(), refusal_count: None };
    let mut bytes = Vec::new();
    for tool in ["crashed1", "crashed2"] {
        bytes.extend(serde_json::to_vec(&row(tool)).unwrap());
        bytes.push(b'\n');
    }
    bytes.extend(b"{\"record\":{\"tool_name\":\"cut");
    std::fs::write(pending.join("4242-abcdef-000000.jsonl"), &bytes).unwrap();

    let log = AuditLog::open(&path);
    log.commit(record("next", true)).await.unwrap();
    log.close().await;
    let conn = open_connection(&path).unwrap();
    let rows = recent(&conn, &RecentFilter { limit: Some(10), ..Default::default() }).unwrap();
    let tools: Vec<&str> = rows.iter().rev().map(|r| r.tool_name.as_str()).collect();
    assert_eq!(tools, ["crashed1", "crashed2", "next"]);
    assert_eq!(verify(&conn).first_broken_id, None);
    assert_eq!(journal_files(&dir.0), Vec::<String>::new(), "the dead process's files and lock are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_rows_are_drained_within_the_batch_interval() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let log = AuditLog::open(&path);
    for i in 0..8 {
        log.commit(record(&format!("tool{i}"), true)).await.unwrap();
    }
    assert!(log.queue_depth() > 0, "the rows wait for their batch");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.queue_depth() > 0 {
        assert!(std::time::Instant::now() < deadline, "journaled rows were not drained: {}", log.queue_depth());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let conn = Connection::open(&path).unwrap();
    let rows = audit_rows(&conn);
    assert_eq!(rows, 8, "a plain reader sees them once drained");
    log.close().await;
}

#[tokio::test]
async fn rows_reach_the_database_even_when_the_journal_folder_is_deleted_under_the_log() {
    let dir = TempDir::new();
    let path = dir.0.join("audit.sqlite");
    let log = AuditLog::open(&path);
    log.commit(record("before", true)).await.unwrap();
    std::fs::remove_dir_all(journal::dir_of(&path)).unwrap();
    log.commit(record("after", true)).await.unwrap();
    assert_eq!(log.flush().await.unwrap(), 2, "this process reads its rows through its own handle");
    assert_eq!(log.queue_depth(), 0);
    let conn = Connection::open(&path).unwrap();
    let rows = audit_rows(&conn);
    assert_eq!(rows, 2);
    log.close().await;
}
