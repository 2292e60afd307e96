//! Reading the audit log back (`omniroute-mcp audit recent|stats|verify|export`)
//! from SQLite or PostgreSQL. The SQL is written once with `?N` placeholders
//! and runs on both; rows come back as [`Cell`]s so the logic is shared.

use super::chain::{ChainedRow, Verifier};
use super::record::GatewayCall;
use serde::Serialize;
use std::time::Duration;

/// One row, as `audit recent --json` prints it (the gateway's camelCase names).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub tool_name: String,
    pub input_hash: Option<String>,
    pub output_summary: Option<String>,
    pub duration_ms: Option<i64>,
    pub api_key_id: Option<String>,
    pub success: bool,
    pub error_code: Option<String>,
    pub created_at: String,
    pub caller: Option<String>,
    pub session_id: Option<String>,
    /// Why the sandbox stopped the call, when it did.
    pub stop_cause: Option<String>,
    /// How many refused calls an aggregated row stands for; null for one call.
    pub refusal_count: Option<i64>,
}

/// Filters for `audit recent`.
#[derive(Debug, Clone, Default)]
pub struct RecentFilter {
    /// 1..=500, default 50 (as the original).
    pub limit: Option<u32>,
    pub tool: Option<String>,
    pub failed_only: bool,
}

/// `audit stats`: the original's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditStats {
    pub total_calls: i64,
    /// A fraction 0..1; null without calls.
    pub success_rate: Option<f64>,
    pub avg_duration_ms: Option<f64>,
    pub top_tools: Vec<ToolCount>,
}

/// A tool and how often it was called.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCount {
    pub tool: String,
    pub count: i64,
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Rows checked (up to and including the first broken one).
    pub rows: u64,
    /// The row the chain continues from after pruning, if any was pruned.
    pub anchor_through_id: Option<i64>,
    /// The hash of the newest verified row (keep it elsewhere to detect a rewrite of the whole chain).
    pub head_hash: String,
    /// The first row that does not verify.
    pub first_broken_id: Option<i64>,
    pub reason: Option<String>,
}

/// A row with everything the chain covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRow {
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: Option<String>,
    pub row_hash: Option<String>,
    pub gateway_calls: Vec<GatewayCallOut>,
}

/// A gateway request as exported.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayCallOut {
    pub method: String,
    pub path_template: String,
    pub status: Option<i64>,
    pub duration_ms: Option<i64>,
    pub bytes: Option<i64>,
    pub error: Option<String>,
}

impl StoredRow {
    /// The calls as the writer hashed them.
    fn calls(&self) -> Vec<GatewayCall> {
        self.gateway_calls
            .iter()
            .map(|g| GatewayCall {
                method: g.method.clone(),
                path_template: g.path_template.clone(),
                status: g.status.and_then(|s| u16::try_from(s).ok()),
                duration_ms: g.duration_ms.unwrap_or(0).max(0) as u64,
                bytes: g.bytes.unwrap_or(0).max(0) as u64,
                error: g.error.clone(),
            })
            .collect()
    }

    /// Runs `f` on the fields the chain covers.
    fn with_chained<R>(&self, f: impl FnOnce(&ChainedRow<'_>) -> R) -> R {
        let calls = self.calls();
        let e = &self.entry;
        f(&ChainedRow {
            tool_name: &e.tool_name,
            input_hash: e.input_hash.as_deref(),
            output_summary: e.output_summary.as_deref(),
            duration_ms: e.duration_ms,
            api_key_id: e.api_key_id.as_deref(),
            success: e.success,
            error_code: e.error_code.as_deref(),
            created_at: &e.created_at,
            caller: e.caller.as_deref(),
            session_id: e.session_id.as_deref(),
            stop_cause: e.stop_cause.as_deref(),
            refusal_count: e.refusal_count,
            gateway_calls: &calls,
        })
    }

    /// Checks this row with `verifier`.
    fn verify(&self, verifier: &mut Verifier) {
        self.with_chained(|row| verifier.check(self.entry.id, self.prev_hash.as_deref(), self.row_hash.as_deref(), row));
    }

    /// The hash this row gets when chained after `prev` (sealing rows of schema version 1).
    pub(super) fn hash_after(&self, prev: &str) -> String {
        self.with_chained(|row| super::chain::row_hash(prev, row))
    }
}

/// One value read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Cell {
    fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            Cell::Real(f) => Some(*f as i64),
            _ => None,
        }
    }
    fn real(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Real(f) => Some(*f),
            _ => None,
        }
    }
    fn text(&self) -> Option<String> {
        match self {
            Cell::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
}

/// A parameter of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Text(String),
}

/// Runs a query on SQLite.
pub fn sqlite_rows(conn: &rusqlite::Connection, sql: &str, params: &[Param]) -> rusqlite::Result<Vec<Vec<Cell>>> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = stmt.column_count();
    let values: Vec<rusqlite::types::Value> = params
        .iter()
        .map(|p| match p {
            Param::Int(i) => rusqlite::types::Value::Integer(*i),
            Param::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(columns);
        for i in 0..columns {
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
            });
        }
        out.push(cells);
    }
    Ok(out)
}

/// `?N` placeholders as PostgreSQL's `$N`.
pub fn postgres_sql(sql: &str) -> String {
    sql.replace('?', "$")
}

/// Runs a query on PostgreSQL.
pub async fn postgres_rows(client: &tokio_postgres::Client, sql: &str, params: &[Param]) -> Result<Vec<Vec<Cell>>, String> {
    use tokio_postgres::types::{ToSql, Type};
    let boxed: Vec<Box<dyn ToSql + Sync + Send>> = params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Int(i) => Box::new(*i),
                Param::Text(t) => Box::new(t.clone()),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&postgres_sql(sql), &refs).await.map_err(|e| crate::db::postgres::pg_error_text(&e))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cells = Vec::with_capacity(row.len());
        for (i, column) in row.columns().iter().enumerate() {
            let t = column.type_();
            let cell = if *t == Type::INT8 {
                row.try_get::<_, Option<i64>>(i).ok().flatten().map_or(Cell::Null, Cell::Int)
            } else if *t == Type::INT4 {
                row.try_get::<_, Option<i32>>(i).ok().flatten().map_or(Cell::Null, |v| Cell::Int(v.into()))
            } else if *t == Type::FLOAT8 {
                row.try_get::<_, Option<f64>>(i).ok().flatten().map_or(Cell::Null, Cell::Real)
            } else {
                row.try_get::<_, Option<String>>(i).ok().flatten().map_or(Cell::Null, Cell::Text)
            };
            cells.push(cell);
        }
        out.push(cells);
    }
    Ok(out)
}

const ENTRY_COLUMNS: &str = "id, tool_name, input_hash, output_summary, duration_ms, api_key_id, success, error_code, created_at, caller, session_id, stop_cause, refusal_count";

fn entry(cells: &[Cell]) -> AuditEntry {
    let text = |i: usize| cells.get(i).and_then(Cell::text);
    let int = |i: usize| cells.get(i).and_then(Cell::int);
    AuditEntry {
        id: int(0).unwrap_or_default(),
        tool_name: text(1).unwrap_or_default(),
        input_hash: text(2),
        output_summary: text(3),
        duration_ms: int(4),
        api_key_id: text(5),
        success: int(6).unwrap_or(0) != 0,
        error_code: text(7),
        created_at: text(8).unwrap_or_default(),
        caller: text(9),
        session_id: text(10),
        stop_cause: text(11),
        refusal_count: int(12),
    }
}

/// Where the audit log is read from.
pub enum AuditReader<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl AuditReader<'_> {
    async fn rows(&self, sql: &str, params: &[Param]) -> Result<Vec<Vec<Cell>>, String> {
        match self {
            AuditReader::Sqlite(conn) => sqlite_rows(conn, sql, params).map_err(|e| e.to_string()),
            AuditReader::Postgres(client) => postgres_rows(client, sql, params).await,
        }
    }

    /// Newest rows first.
    pub async fn recent(&self, filter: &RecentFilter) -> Result<Vec<AuditEntry>, String> {
        let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM mcp_tool_audit WHERE 1=1");
        let mut params = Vec::new();
        if let Some(tool) = &filter.tool {
            params.push(Param::Text(tool.clone()));
            sql.push_str(&format!(" AND tool_name = ?{}", params.len()));
        }
        if filter.failed_only {
            sql.push_str(" AND success = 0");
        }
        params.push(Param::Int(i64::from(filter.limit.unwrap_or(50).clamp(1, 500))));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", params.len()));
        Ok(self.rows(&sql, &params).await?.iter().map(|c| entry(c)).collect())
    }

    /// Totals over the last `since` (all rows when `None`); top 10 tools. An
    /// aggregated row counts as the calls it stands for.
    pub async fn stats(&self, since: Option<Duration>) -> Result<AuditStats, String> {
        let (filter, params) = match since {
            Some(d) => ("WHERE created_at >= ?1", vec![Param::Text(cutoff(d))]),
            None => ("", vec![]),
        };
        let totals = self
            .rows(
                &format!(
                    "SELECT CAST(SUM(COALESCE(refusal_count, 1)) AS BIGINT), CAST(SUM(success) AS BIGINT),
                       AVG(CAST(duration_ms AS DOUBLE PRECISION)) FROM mcp_tool_audit {filter}"
                ),
                &params,
            )
            .await?;
        let first = totals.first().cloned().unwrap_or_default();
        let total = first.first().and_then(Cell::int).unwrap_or(0);
        let successes = first.get(1).and_then(Cell::int).unwrap_or(0);
        let avg = first.get(2).and_then(Cell::real);
        let top = self
            .rows(
                &format!(
                    "SELECT tool_name, CAST(SUM(COALESCE(refusal_count, 1)) AS BIGINT) AS n FROM mcp_tool_audit {filter}
                     GROUP BY tool_name ORDER BY n DESC, tool_name LIMIT 10"
                ),
                &params,
            )
            .await?;
        Ok(AuditStats {
            total_calls: total,
            success_rate: (total > 0).then(|| successes as f64 / total as f64),
            avg_duration_ms: if total > 0 { avg } else { None },
            top_tools: top
                .iter()
                .map(|c| ToolCount { tool: c.first().and_then(Cell::text).unwrap_or_default(), count: c.get(1).and_then(Cell::int).unwrap_or(0) })
                .collect(),
        })
    }

    /// Rows with id in `from..=to`, oldest first, at most `limit`, with their gateway requests.
    async fn stored(&self, from: i64, since: Option<&str>, limit: usize) -> Result<Vec<StoredRow>, String> {
        let (sql, params) = stored_query(from, since, limit);
        let rows = self.rows(&sql, &params).await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return Ok(vec![]) };
        let range = [Param::Int(first[0].int().unwrap_or(0)), Param::Int(last[0].int().unwrap_or(0))];
        let calls = self.rows(CALLS_SQL, &range).await?;
        Ok(assemble(rows, calls))
    }

    /// Walks the whole chain and names the first broken row.
    pub async fn verify(&self) -> Result<VerifyReport, String> {
        let anchor = self.rows("SELECT through_id, row_hash FROM mcp_audit_anchor WHERE id = 1", &[]).await?;
        let anchor = anchor.first().map(|c| (c[0].int().unwrap_or(0), c[1].text().unwrap_or_default()));
        let mut verifier = Verifier::new(anchor.as_ref().map(|(_, h)| h.as_str()));
        let mut from = i64::MIN;
        loop {
            let rows = self.stored(from, None, 1000).await?;
            let Some(last) = rows.last() else { break };
            from = last.entry.id + 1;
            for row in &rows {
                row.verify(&mut verifier);
            }
            if verifier.broken.is_some() {
                break;
            }
        }
        Ok(VerifyReport {
            rows: verifier.rows,
            anchor_through_id: anchor.map(|(id, _)| id),
            head_hash: verifier.head.clone(),
            first_broken_id: verifier.broken.as_ref().map(|b| b.id),
            reason: verifier.broken.map(|b| b.reason),
        })
    }

    /// Calls `each` with every row created within `since` (all when `None`), oldest first.
    pub async fn export(&self, since: Option<Duration>, mut each: impl FnMut(&StoredRow) -> Result<(), String>) -> Result<u64, String> {
        let since = since.map(cutoff);
        let mut from = i64::MIN;
        let mut count = 0;
        loop {
            let rows = self.stored(from, since.as_deref(), 1000).await?;
            let Some(last) = rows.last() else { break };
            from = last.entry.id + 1;
            for row in &rows {
                each(row)?;
                count += 1;
            }
        }
        Ok(count)
    }
}

const CALLS_SQL: &str = "SELECT audit_id, method, path_template, status, duration_ms, bytes, error FROM mcp_gateway_requests
     WHERE audit_id >= ?1 AND audit_id <= ?2 ORDER BY id";

fn stored_query(from: i64, since: Option<&str>, limit: usize) -> (String, Vec<Param>) {
    let mut params = vec![Param::Int(from)];
    let mut sql = format!("SELECT {ENTRY_COLUMNS}, prev_hash, row_hash FROM mcp_tool_audit WHERE id >= ?1");
    if let Some(since) = since {
        params.push(Param::Text(since.to_owned()));
        sql.push_str(" AND created_at >= ?2");
    }
    params.push(Param::Int(limit.min(i64::MAX as usize) as i64));
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", params.len()));
    (sql, params)
}

fn assemble(rows: Vec<Vec<Cell>>, calls: Vec<Vec<Cell>>) -> Vec<StoredRow> {
    let mut out: Vec<StoredRow> = rows
        .iter()
        .map(|c| StoredRow { entry: entry(c), prev_hash: c.get(13).and_then(Cell::text), row_hash: c.get(14).and_then(Cell::text), gateway_calls: vec![] })
        .collect();
    let index: std::collections::HashMap<i64, usize> = out.iter().enumerate().map(|(i, r)| (r.entry.id, i)).collect();
    for c in calls {
        let Some(&i) = c.first().and_then(Cell::int).and_then(|id| index.get(&id)) else { continue };
        out[i].gateway_calls.push(GatewayCallOut {
            method: c[1].text().unwrap_or_default(),
            path_template: c[2].text().unwrap_or_default(),
            status: c[3].int(),
            duration_ms: c[4].int(),
            bytes: c[5].int(),
            error: c[6].text(),
        });
    }
    out
}

/// Rows of a SQLite database from `from` on (synchronous; sealing old rows).
pub(super) fn read_rows(conn: &rusqlite::Connection, from: i64, limit: usize) -> rusqlite::Result<Vec<StoredRow>> {
    let (sql, params) = stored_query(from, None, limit);
    let rows = sqlite_rows(conn, &sql, &params)?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return Ok(vec![]) };
    let range = [Param::Int(first[0].int().unwrap_or(0)), Param::Int(last[0].int().unwrap_or(0))];
    let calls = sqlite_rows(conn, CALLS_SQL, &range)?;
    Ok(assemble(rows, calls))
}

/// The `created_at` value `d` ago.
fn cutoff(d: Duration) -> String {
    super::writer::timestamp(std::time::SystemTime::now().checked_sub(d).unwrap_or(std::time::UNIX_EPOCH))
}

/// Newest rows first (SQLite).
pub fn recent(conn: &rusqlite::Connection, filter: &RecentFilter) -> Result<Vec<AuditEntry>, String> {
    let reader = AuditReader::Sqlite(conn);
    ready(reader.recent(filter))
}

/// Totals (SQLite).
pub fn stats(conn: &rusqlite::Connection, since: Option<Duration>) -> Result<AuditStats, String> {
    let reader = AuditReader::Sqlite(conn);
    ready(reader.stats(since))
}

/// The result of a reader future on SQLite, which never waits (its queries
/// are synchronous), so one poll completes it.
fn ready<T>(fut: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    let fut = std::pin::pin!(fut);
    match fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err("a SQLite query unexpectedly waited".into()),
    }
}

/// Parses `24h`, `30m`, `7d`, `90s`.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("--since wants a number and a unit such as 24h, 30m or 7d, got {text:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("--since unit must be s, m, h or d, got {unit:?}")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parsing() {
        assert_eq!(parse_since("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_since("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_since("soon").is_err());
        assert!(parse_since("5w").is_err());
    }

    #[test]
    fn placeholders() {
        assert_eq!(postgres_sql("a = ?1 AND b = ?2"), "a = $1 AND b = $2");
    }
}
