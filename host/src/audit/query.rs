//! Reading the audit log back: `omniroute-mcp audit recent|stats`.

use rusqlite::{Connection, params_from_iter, types::Value as Sql};
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

/// Newest rows first.
pub fn recent(conn: &Connection, filter: &RecentFilter) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut sql = String::from(
        "SELECT id, tool_name, input_hash, output_summary, duration_ms, api_key_id, success, error_code, created_at, caller, session_id
         FROM mcp_tool_audit WHERE 1=1",
    );
    let mut args: Vec<Sql> = Vec::new();
    if let Some(tool) = &filter.tool {
        sql.push_str(" AND tool_name = ?");
        args.push(Sql::Text(tool.clone()));
    }
    if filter.failed_only {
        sql.push_str(" AND success = 0");
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(Sql::Integer(i64::from(filter.limit.unwrap_or(50).clamp(1, 500))));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            tool_name: r.get(1)?,
            input_hash: r.get(2)?,
            output_summary: r.get(3)?,
            duration_ms: r.get(4)?,
            api_key_id: r.get(5)?,
            success: r.get::<_, i64>(6)? != 0,
            error_code: r.get(7)?,
            created_at: r.get(8)?,
            caller: r.get(9)?,
            session_id: r.get(10)?,
        })
    })?;
    rows.collect()
}

/// Totals over the last `since` (all rows when `None`); top 10 tools.
pub fn stats(conn: &Connection, since: Option<Duration>) -> rusqlite::Result<AuditStats> {
    let cutoff = since.map(|d| format!("-{} seconds", d.as_secs()));
    let (where_clause, args): (&str, Vec<Sql>) = match &cutoff {
        Some(c) => ("WHERE created_at >= datetime('now', ?)", vec![Sql::Text(c.clone())]),
        None => ("", vec![]),
    };
    let (total, successes, avg): (i64, Option<i64>, Option<f64>) = conn.query_row(
        &format!("SELECT COUNT(*), SUM(success), AVG(duration_ms) FROM mcp_tool_audit {where_clause}"),
        params_from_iter(args.clone()),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT tool_name, COUNT(*) AS n FROM mcp_tool_audit {where_clause} GROUP BY tool_name ORDER BY n DESC, tool_name LIMIT 10"
    ))?;
    let top_tools = stmt
        .query_map(params_from_iter(args), |r| Ok(ToolCount { tool: r.get(0)?, count: r.get(1)? }))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(AuditStats {
        total_calls: total,
        success_rate: (total > 0).then(|| successes.unwrap_or(0) as f64 / total as f64),
        avg_duration_ms: if total > 0 { avg } else { None },
        top_tools,
    })
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
}
