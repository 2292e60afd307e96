//! What the state store costs per tools/call, on each backend: the
//! operations one completion call makes (rate token, resolve the handle,
//! open the bucket, reserve when a guard or cap applies, record the ledger
//! entry with its settlement, annotate), with and without a limit, and the
//! two a plain call makes (rate token, open the bucket). Sequential, one
//! caller: latency, not throughput.
//!
//! ```sh
//! cargo xtask postgres start   # prints the URL
//! OMNIROUTE_MCP_TEST_POSTGRES_URL=postgres://… cargo run --release -p omniroute-mcp --example store_cost -- 2000 [--json FILE]
//! ```
//! A measurement: it prints medians and 90th percentiles in microseconds, and with `--json` also
//! writes them to FILE (`cargo xtask bench` does, and puts them into `results.{json,md}`).

use omniroute_mcp::session::ledger::LedgerEntry;
use omniroute_mcp::state::{BucketKey, Retention, SpendLimits, StateLocation, Store};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

fn entry(i: usize) -> LedgerEntry {
    LedgerEntry {
        request_id: Some(format!("req-{i}")),
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
        cost: Some(0.0000285),
        tokens_in: Some(7),
        tokens_out: Some(3),
        latency_ms: Some(12.0),
        cache: None,
        fallbacks_triggered: None,
        degraded_from: None,
        error: None,
    }
}

/// The operations timed one by one (`finish_completion` twice: settling a
/// reservation, and booking a completion nothing was reserved for).
const OPERATIONS: [&str; 7] =
    ["take_token", "resolve", "open_bucket", "reserve", "finish_completion", "update_ledger", "finish_completion (unreserved)"];

/// Prints one line and returns `{median_us, p90_us}`.
fn summary(name: &str, mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let (median, p90) = (at(0.5), at(0.9));
    println!("  {name:<34} median {median:>8.1} µs   p90 {p90:>8.1} µs");
    json!({ "median_us": (median * 10.0).round() / 10.0, "p90_us": (p90 * 10.0).round() / 10.0 })
}

/// Runs `n` iterations against `store` and returns the summaries as JSON.
async fn measure(label: &str, store: Store, n: usize) -> Value {
    println!("{label}:");
    let principal = "bench-tenant";
    let handle = store.mint_handle(principal).await.unwrap();
    let limits = SpendLimits { bucket_max: Some(1e9), cap: None };
    let (mut plain, mut limited, mut unlimited) = (Vec::new(), Vec::new(), Vec::new());
    let mut ops = vec![Vec::new(); OPERATIONS.len()];
    for i in 0..n {
        let t = Instant::now();
        store.take_token(principal, "calls", 1_000_000, 1e6).await.unwrap();
        store.open_bucket(principal, &BucketKey::session("stdio-1")).await.unwrap();
        plain.push(t.elapsed());

        // A completion under a guard or cap: reserved first.
        let t = Instant::now();
        let mut step = Instant::now();
        let mut lap = |k: usize, ops: &mut Vec<Vec<Duration>>| {
            ops[k].push(step.elapsed());
            step = Instant::now();
        };
        store.take_token(principal, "calls", 1_000_000, 1e6).await.unwrap();
        lap(0, &mut ops);
        let bucket = store.resolve(principal, handle.as_str()).await.unwrap().unwrap();
        lap(1, &mut ops);
        store.open_bucket(principal, &bucket).await.unwrap();
        lap(2, &mut ops);
        let reservation = store.reserve(principal, &bucket, 0.001, limits).await.unwrap();
        lap(3, &mut ops);
        let (id, _) = store.finish_completion(principal, &bucket, Some(&entry(i)), Some(&reservation), Some(0.0000285)).await.unwrap();
        lap(4, &mut ops);
        let mut annotated = entry(i);
        annotated.combo = Some("coding-fast".into());
        store.update_ledger(principal, id.unwrap(), &annotated).await.unwrap();
        lap(5, &mut ops);
        limited.push(t.elapsed());

        // A completion nothing limits: no reservation.
        let t = Instant::now();
        store.take_token(principal, "calls", 1_000_000, 1e6).await.unwrap();
        let bucket = store.resolve(principal, handle.as_str()).await.unwrap().unwrap();
        store.open_bucket(principal, &bucket).await.unwrap();
        let step = Instant::now();
        let (id, _) = store.finish_completion(principal, &bucket, Some(&entry(i)), None, Some(0.0000285)).await.unwrap();
        ops[6].push(step.elapsed());
        store.update_ledger(principal, id.unwrap(), &annotated).await.unwrap();
        unlimited.push(t.elapsed());
    }
    let plain = summary("plain call (token + bucket)", plain);
    let limited = summary("completion call, guard or cap", limited);
    let unlimited = summary("completion call, no limit", unlimited);
    let mut each = Map::new();
    for (name, samples) in OPERATIONS.iter().zip(ops) {
        each.insert((*name).to_owned(), summary(&format!("  {name}"), samples));
    }
    store.close().await.unwrap();
    json!({
        "label": label,
        "iterations": n,
        "plain_call": plain,
        "completion_call": limited,
        "completion_call_unlimited": unlimited,
        "operations": each,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let json_out = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
    let mut report = Map::new();
    let dir = std::env::temp_dir().join(format!("omniroute-store-cost-{}", std::process::id()));
    let sqlite = omniroute_mcp::state::open(&StateLocation::Sqlite(dir.join("state.sqlite")), Retention::default()).await.unwrap();
    report.insert("sqlite".into(), measure(&format!("SQLite ({n} iterations, WAL, synchronous=NORMAL)"), sqlite, n).await);
    let _ = std::fs::remove_dir_all(&dir);
    match std::env::var("OMNIROUTE_MCP_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            let pg = omniroute_mcp::state::open(&StateLocation::Postgres(url), Retention::default()).await.unwrap();
            report.insert("postgres".into(), measure(&format!("PostgreSQL ({n} iterations, loopback)"), pg, n).await);
        }
        None => println!("PostgreSQL: set OMNIROUTE_MCP_TEST_POSTGRES_URL (cargo xtask postgres start) to measure it too"),
    }
    if let Some(path) = json_out {
        let text = serde_json::to_string_pretty(&Value::Object(report)).unwrap() + "\n";
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("store_cost: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
