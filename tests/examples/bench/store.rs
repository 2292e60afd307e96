//! What the state store costs per tools/call (issue #13), in two views:
//!
//! - **End to end**: two stdio servers against one fake gateway, one with the default SQLite
//!   store in its data folder, one with `--state-url postgres://…` (a fresh schema of the
//!   PostgreSQL that `cargo xtask bench` started), calls alternated between them so both see the
//!   same machine load. Their medians differ by what the backend costs a call.
//! - **Per operation**: the report of `host/examples/store_cost` (release), which times each store
//!   operation a plain and a completion call makes, on both backends.
//!
//! Beside them, the per-call medians of the previous release, whose state lived in the process's
//! memory, from its last full bench run (quoted; that binary is not rebuilt here).

use std::path::Path;
use std::time::Instant;

use omniroute_mcp_tests::{FakeGateway, TempDir};
use serde_json::{Value, json};

use crate::stats::Summary;
use crate::stdio::{self, StdioServer};
use crate::{TOOLS, args_for, progress};

/// Stdio medians (µs, fake gateway) of the release before the state store, in-memory state: the
/// README's full run of commit 0629e25 (get_health, list_combos, route_request).
const IN_MEMORY_RELEASE_MEDIANS_US: [(&str, f64); 3] = [("get_health", 731.0), ("list_combos", 578.0), ("route_request", 697.0)];

/// One tool measured on both backends, alternating.
pub struct Backends {
    pub tool: &'static str,
    pub sqlite: Summary,
    pub postgres: Summary,
}

/// The state-store part of a run.
pub struct StoreReport {
    pub end_to_end: Result<Vec<Backends>, String>,
    /// `store_cost.json` as written by the example, or why it is missing.
    pub per_operation: Result<Value, String>,
}

/// Measures both views. `postgres_url` is the server's base URL; a schema is made and dropped.
pub async fn measure(bin: &Path, postgres_url: &str, store_cost: Option<&Path>, calls: usize, warmup: usize) -> StoreReport {
    let per_operation = match store_cost {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))),
        None => Err("no --store-cost report given (`cargo xtask bench` runs host/examples/store_cost)".into()),
    };
    let end_to_end = end_to_end(bin, postgres_url, calls, warmup).await;
    StoreReport { end_to_end, per_operation }
}

async fn end_to_end(bin: &Path, postgres_url: &str, calls: usize, warmup: usize) -> Result<Vec<Backends>, String> {
    let schema = format!("bench_store_{}", std::process::id());
    let admin = connect(postgres_url).await?;
    admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")).await.map_err(|e| format!("creating schema {schema}: {e}"))?;
    let sep = if postgres_url.contains('?') { '&' } else { '?' };
    let state_url = format!("{postgres_url}{sep}options=-c%20search_path%3D{schema}");
    let measured = alternate(bin, &state_url, calls, warmup).await;
    if let Err(e) = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await {
        progress(&format!("warning: could not drop schema {schema}: {e}"));
    }
    measured
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn alternate(bin: &Path, state_url: &str, calls: usize, warmup: usize) -> Result<Vec<Backends>, String> {
    let fake = FakeGateway::start();
    let (sqlite_data, sqlite_cache) = (TempDir::new("bench-store-sqlite-data"), TempDir::new("bench-store-sqlite-cache"));
    let (pg_data, pg_cache) = (TempDir::new("bench-store-pg-data"), TempDir::new("bench-store-pg-cache"));
    let mut sqlite = StdioServer::spawn(stdio::ours(bin, None, sqlite_data.path(), sqlite_cache.path(), &fake.url(), None, &[]))?;
    let mut postgres = StdioServer::spawn(stdio::ours(bin, None, pg_data.path(), pg_cache.path(), &fake.url(), None, &["--state-url", state_url]))?;
    sqlite.handshake().await?;
    postgres.handshake().await.map_err(|e| format!("server with --state-url postgres: {e}"))?;
    let mut measured = Vec::new();
    for tool in TOOLS {
        let (name, args) = (format!("omniroute_{tool}"), args_for(tool));
        progress(&format!("state store: {tool} x{calls} on SQLite and on PostgreSQL, alternating"));
        let (mut on_sqlite, mut on_postgres) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for i in 0..warmup + calls {
            for (server, samples) in [(&mut sqlite, &mut on_sqlite), (&mut postgres, &mut on_postgres)] {
                let started = Instant::now();
                if server.call(&name, &args).await? {
                    return Err(format!("{tool} answered isError during the state-store measurement"));
                }
                if i >= warmup {
                    samples.push(started.elapsed());
                }
            }
        }
        let summary = |samples: &[std::time::Duration]| Summary::of(samples).ok_or_else(|| format!("{tool}: no samples"));
        measured.push(Backends { tool, sqlite: summary(&on_sqlite)?, postgres: summary(&on_postgres)? });
    }
    sqlite.finish().await;
    postgres.finish().await;
    Ok(measured)
}

fn us(x: f64) -> String {
    format!("{x:.0} µs")
}

fn median(value: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(value, |v, key| v.get(key))?.get("median_us")?.as_f64()
}

impl StoreReport {
    /// The `state_store` section of `results.md`.
    pub fn markdown(&self) -> String {
        let mut md = String::from("\n### State store per tools/call (SQLite default, PostgreSQL for several nodes)\n\n");
        match &self.end_to_end {
            Ok(tools) => {
                md.push_str("Stdio, fake gateway, sequential calls alternated between two servers; the previous release kept its state in memory (its medians are quoted from its last full run, another day: compare the differences, not the absolute values).\n\n");
                md.push_str("| tool | SQLite (default) median / p99 | PostgreSQL median / p99 | PostgreSQL − SQLite | previous release, in-memory state (quoted) |\n| --- | --- | --- | --- | --- |\n");
                for t in tools {
                    let previous = IN_MEMORY_RELEASE_MEDIANS_US.iter().find(|(name, _)| *name == t.tool).map(|(_, v)| us(*v)).unwrap_or_default();
                    md.push_str(&format!(
                        "| {} | {} / {} | {} / {} | {:+.0} µs | {previous} |\n",
                        t.tool,
                        us(t.sqlite.median_us),
                        us(t.sqlite.p99_us),
                        us(t.postgres.median_us),
                        us(t.postgres.p99_us),
                        t.postgres.median_us - t.sqlite.median_us
                    ));
                }
            }
            Err(e) => md.push_str(&format!("End-to-end not measured: {e}\n")),
        }
        match &self.per_operation {
            Ok(report) => {
                md.push_str("\nEach store operation alone (`host/examples/store_cost`, release, one caller, median µs):\n\n| operation | SQLite | PostgreSQL |\n| --- | ---: | ---: |\n");
                let mut rows: Vec<(String, Vec<&str>)> = vec![
                    ("plain call: rate token + open bucket".into(), vec!["plain_call"]),
                    ("completion call under a guard or cap: the six below".into(), vec!["completion_call"]),
                    ("completion call nothing limits: the same without reserve".into(), vec!["completion_call_unlimited"]),
                ];
                let ops = ["take_token", "resolve", "open_bucket", "reserve", "finish_completion", "update_ledger", "finish_completion (unreserved)"];
                rows.extend(ops.iter().map(|op| (format!("  {op}"), vec!["operations", op])));
                for (label, path) in rows {
                    let cell = |backend: &str| {
                        let mut full = vec![backend];
                        full.extend(&path);
                        report.get(backend).map_or("not measured".to_owned(), |_| median(report, &full).map_or("–".into(), |m| format!("{m:.1}")))
                    };
                    md.push_str(&format!("| {label} | {} | {} |\n", cell("sqlite"), cell("postgres")));
                }
            }
            Err(e) => md.push_str(&format!("\nPer-operation store costs not measured: {e}\n")),
        }
        md
    }

    /// The `state_store` member of `results.json`.
    pub fn json(&self) -> Value {
        let end_to_end = match &self.end_to_end {
            Ok(tools) => json!(tools
                .iter()
                .map(|t| json!({ "tool": t.tool, "sqlite": t.sqlite.json(), "postgres": t.postgres.json() }))
                .collect::<Vec<_>>()),
            Err(e) => json!({ "not_measured": e }),
        };
        let previous: serde_json::Map<String, Value> = IN_MEMORY_RELEASE_MEDIANS_US.iter().map(|(tool, us)| ((*tool).to_owned(), json!(us))).collect();
        json!({
            "end_to_end_stdio_fake": end_to_end,
            "per_operation": match &self.per_operation { Ok(v) => v.clone(), Err(e) => json!({ "not_measured": e }) },
            "previous_release_in_memory_median_us_quoted": previous,
        })
    }
}
