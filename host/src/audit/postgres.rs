//! The audit log on PostgreSQL (`--audit-url postgres://…`), shared by
//! several nodes. Each node's writer keeps its group commit; every batch
//! takes an advisory lock for its transaction, reads the chain's head and
//! appends to it, so the nodes together write one chain.
//!
//! The writer runs on its own thread with a single-threaded tokio runtime
//! and one connection, so the writer loop is the same as SQLite's.

use super::chain::{self, GENESIS};
use super::sqlite::chained;
use super::writer::{Row, Sink};
use crate::db::postgres::pg_error_text;
use crate::db::schema;

/// Serialises chain appends of all nodes ("omniaudi" in ASCII; distinct from
/// the schema lock's key).
const CHAIN_LOCK_KEY: i64 = 0x6f6d_6e69_6175_6469;

pub(super) struct PostgresSink {
    rt: tokio::runtime::Runtime,
    url: String,
    client: tokio_postgres::Client,
    node_id: String,
}

fn text(e: tokio_postgres::Error) -> String {
    pg_error_text(&e)
}

fn connect(rt: &tokio::runtime::Runtime, url: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    let (client, connection) = rt.block_on(config.connect(tokio_postgres::NoTls)).map_err(text)?;
    rt.spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %pg_error_text(&e), "the audit log's PostgreSQL connection ended");
        }
    });
    Ok(client)
}

impl PostgresSink {
    /// Connects from the writer thread (its runtime drives the connection).
    pub(super) fn connect(url: &str, node_id: String) -> Result<PostgresSink, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the audit writer's runtime: {e}"))?;
        let client = connect(&rt, url)?;
        Ok(PostgresSink { rt, url: url.to_owned(), client, node_id })
    }

    /// A fresh connection when the old one broke (the database restarted).
    fn reconnect_if_closed(&mut self) -> Result<(), String> {
        if self.client.is_closed() {
            self.client = connect(&self.rt, &self.url)?;
        }
        Ok(())
    }
}

impl Sink for PostgresSink {
    fn write(&mut self, rows: &[Row]) -> Result<(), String> {
        self.reconnect_if_closed()?;
        let client = &mut self.client;
        self.rt.block_on(async move {
            let tx = client.transaction().await.map_err(text)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK_KEY]).await.map_err(text)?;
            let newest = tx.query_opt("SELECT row_hash FROM mcp_tool_audit ORDER BY id DESC LIMIT 1", &[]).await.map_err(text)?;
            let mut prev: String = match newest.and_then(|r| r.get::<_, Option<String>>(0)) {
                Some(hash) => hash,
                None => tx
                    .query_opt("SELECT row_hash FROM mcp_audit_anchor WHERE id = 1", &[])
                    .await
                    .map_err(text)?
                    .map(|r| r.get(0))
                    .unwrap_or_else(|| GENESIS.to_owned()),
            };
            let audit = tx
                .prepare(
                    "INSERT INTO mcp_tool_audit (tool_name, input_hash, output_summary, duration_ms, api_key_id, success, error_code,
                       created_at, caller, session_id, stop_cause, refusal_count, prev_hash, row_hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                )
                .await
                .map_err(text)?;
            let gateway = tx
                .prepare(
                    "INSERT INTO mcp_gateway_requests (audit_id, method, path_template, status, duration_ms, bytes, error)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await
                .map_err(text)?;
            for row in rows {
                let hash = chain::row_hash(&prev, &chained(row));
                let r = &row.record;
                let id: i64 = tx
                    .query_one(
                        &audit,
                        &[
                            &r.tool_name,
                            &r.input_hash,
                            &r.output_summary,
                            &(r.duration_ms as i64),
                            &r.api_key_id,
                            &i64::from(r.success),
                            &r.error_code,
                            &row.created_at,
                            &r.caller,
                            &r.session_id,
                            &r.stop_cause,
                            &row.refusal_count,
                            &prev,
                            &hash,
                        ],
                    )
                    .await
                    .map_err(text)?
                    .get(0);
                for g in &r.gateway_calls {
                    let status = g.status.map(i64::from);
                    tx.execute(&gateway, &[&id, &g.method, &g.path_template, &status, &(g.duration_ms as i64), &(g.bytes as i64), &g.error])
                        .await
                        .map_err(text)?;
                }
                prev = hash;
            }
            tx.commit().await.map_err(text)
        })
    }

    fn prune(&mut self, cutoff: &str) -> Result<u64, String> {
        self.reconnect_if_closed()?;
        let client = &mut self.client;
        self.rt.block_on(async move {
            let tx = client.transaction().await.map_err(text)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK_KEY]).await.map_err(text)?;
            let through: Option<i64> = tx
                .query_one(
                    "SELECT COALESCE((SELECT MIN(id) FROM mcp_tool_audit WHERE created_at >= $1) - 1, (SELECT MAX(id) FROM mcp_tool_audit))",
                    &[&cutoff],
                )
                .await
                .map_err(text)?
                .get(0);
            let Some(through) = through else { return Ok(0) };
            let last = tx
                .query_opt("SELECT id, row_hash FROM mcp_tool_audit WHERE id <= $1 ORDER BY id DESC LIMIT 1", &[&through])
                .await
                .map_err(text)?;
            let Some((last_id, Some(hash))) = last.map(|r| (r.get::<_, i64>(0), r.get::<_, Option<String>>(1))) else {
                return Ok(0);
            };
            tx.execute(
                "INSERT INTO mcp_audit_anchor (id, through_id, row_hash, pruned_ms) VALUES (1, $1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET through_id = excluded.through_id, row_hash = excluded.row_hash, pruned_ms = excluded.pruned_ms",
                &[&last_id, &hash, &crate::db::now_ms()],
            )
            .await
            .map_err(text)?;
            tx.execute("DELETE FROM mcp_gateway_requests WHERE audit_id <= $1", &[&last_id]).await.map_err(text)?;
            let n = tx.execute("DELETE FROM mcp_tool_audit WHERE id <= $1", &[&last_id]).await.map_err(text)?;
            tx.commit().await.map_err(text)?;
            Ok(n)
        })
    }

    fn heartbeat(&mut self) {
        if let Err(e) = self.rt.block_on(schema::heartbeat_postgres(&self.client, &self.node_id)) {
            tracing::warn!(error = %pg_error_text(&e), "audit heartbeat failed");
        }
    }

    fn leave(&mut self) {
        let _ = self.rt.block_on(schema::leave_postgres(&self.client, &self.node_id));
    }
}

/// Migrates the audit schema on PostgreSQL (or refuses an incompatible one).
pub(super) async fn migrate(url: &str, node_id: &str) -> Result<(), String> {
    let pool = crate::db::postgres::connect(url).await?;
    schema::migrate_postgres(&pool, &super::schema::SCHEMA, node_id).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// A client for reading (`audit recent|stats|verify|export`).
pub async fn reader_client(url: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(text)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}
