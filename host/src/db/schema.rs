//! Versioned schemas that several server versions can share.
//!
//! Each component (`state`, `audit`) has a list of migrations; the database
//! records the version it is at and the oldest version whose code still works
//! with it (`compatible_from`). Nodes register themselves with the version
//! they speak and refresh a heartbeat. So with two versions on one database:
//! - an older node starts against a newer schema that is still compatible
//!   with it: it works, without migrating;
//! - an older node starts against a schema that is no longer compatible: it
//!   refuses to start, naming the version it needs;
//! - a newer node whose migration would make the schema incompatible with a
//!   node that is still running refuses to start, naming that node, instead
//!   of breaking it.

use super::now_ms;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// One step of a schema, in both dialects.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub sqlite: &'static str,
    pub postgres: &'static str,
    /// The oldest schema version whose code still works once this step ran
    /// (a step that only adds nullable columns or tables keeps the previous
    /// value; one that changes a meaning raises it to its own version).
    pub compatible_from: i64,
}

/// A component's migrations; step `i` brings the schema to version `i + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// `state` or `audit`: the key in `omniroute_schema`.
    pub component: &'static str,
    pub steps: &'static [Migration],
    /// SQLite databases of releases that kept the version in `PRAGMA user_version`
    /// (the audit database of schema version 1).
    pub legacy_user_version: bool,
}

impl Schema {
    /// The version this build writes.
    pub fn version(&self) -> i64 {
        self.steps.len() as i64
    }

    /// The oldest version whose code works with this build's schema.
    pub fn compatible_from(&self) -> i64 {
        self.steps.last().map_or(0, |m| m.compatible_from)
    }
}

/// What the database says about a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub version: i64,
    pub compatible_from: i64,
}

/// Another node that used the database recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNode {
    pub node_id: String,
    pub schema_version: i64,
    pub last_seen_ms: i64,
}

/// A node counts as running while its heartbeat is younger than this.
pub const NODE_LIVE_MS: i64 = 120_000;
/// How often a running node refreshes its heartbeat.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// What to do at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    UpToDate,
    /// Run the steps after `from`.
    Migrate { from: i64 },
    /// The database is newer but still compatible: use it as it is.
    UseNewer { recorded: i64 },
}

/// Why this node cannot use the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the {component} schema in the database is version {recorded}, which needs omniroute-mcp with schema version {compatible_from} or newer; this server has version {ours}. Upgrade this server (or point it at another database)"
    )]
    TooOld { component: &'static str, recorded: i64, compatible_from: i64, ours: i64 },
    #[error(
        "upgrading the {component} schema from version {recorded} to {ours} would break node {node} (schema version {node_version}, seen {age_s} s ago), which is still running; stop or upgrade the older nodes first, then start this one"
    )]
    WouldBreak { component: &'static str, recorded: i64, ours: i64, node: String, node_version: i64, age_s: i64 },
    #[error("{0}")]
    Database(String),
}

/// Decides what to do given what the database records and who else runs.
pub fn plan(schema: &Schema, recorded: Option<Recorded>, others: &[LiveNode], now_ms: i64) -> Result<Plan, SchemaError> {
    let ours = schema.version();
    let Some(recorded) = recorded else { return Ok(Plan::Migrate { from: 0 }) };
    if recorded.version == ours {
        return Ok(Plan::UpToDate);
    }
    if recorded.version > ours {
        return if recorded.compatible_from <= ours {
            Ok(Plan::UseNewer { recorded: recorded.version })
        } else {
            Err(SchemaError::TooOld {
                component: schema.component,
                recorded: recorded.version,
                compatible_from: recorded.compatible_from,
                ours,
            })
        };
    }
    let after = schema.compatible_from();
    if let Some(node) = others.iter().find(|n| n.schema_version < after) {
        return Err(SchemaError::WouldBreak {
            component: schema.component,
            recorded: recorded.version,
            ours,
            node: node.node_id.clone(),
            node_version: node.schema_version,
            age_s: (now_ms - node.last_seen_ms).max(0) / 1000,
        });
    }
    Ok(Plan::Migrate { from: recorded.version })
}

const SQLITE_META: &str = "
CREATE TABLE IF NOT EXISTS omniroute_schema (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    compatible_from INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS omniroute_nodes (
    node_id TEXT PRIMARY KEY,
    component TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);";

const POSTGRES_META: &str = "
CREATE TABLE IF NOT EXISTS omniroute_schema (
    component TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    compatible_from BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS omniroute_nodes (
    node_id TEXT PRIMARY KEY,
    component TEXT NOT NULL,
    schema_version BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);";

/// Serialises schema work of all nodes on one PostgreSQL database
/// (`pg_advisory_xact_lock` key: "omnirout" in ASCII).
const POSTGRES_LOCK_KEY: i64 = 0x6f6d_6e69_726f_7574;

/// Brings a SQLite database to this build's schema (or accepts a compatible
/// newer one) and registers `node_id`; returns the plan that was carried out.
pub fn migrate_sqlite(conn: &mut Connection, schema: &Schema, node_id: &str) -> Result<Plan, SchemaError> {
    let db = |e: rusqlite::Error| SchemaError::Database(e.to_string());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    tx.execute_batch(SQLITE_META).map_err(db)?;
    let mut recorded = tx
        .query_row(
            "SELECT version, compatible_from FROM omniroute_schema WHERE component = ?1",
            [schema.component],
            |r| Ok(Recorded { version: r.get(0)?, compatible_from: r.get(1)? }),
        )
        .optional()
        .map_err(db)?;
    if recorded.is_none() && schema.legacy_user_version {
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
        recorded = (version > 0).then_some(Recorded { version, compatible_from: 1 });
    }
    let now = now_ms();
    let others = {
        let mut stmt = tx
            .prepare("SELECT node_id, schema_version, last_seen_ms FROM omniroute_nodes WHERE component = ?1 AND node_id <> ?2 AND last_seen_ms > ?3")
            .map_err(db)?;
        stmt.query_map(params![schema.component, node_id, now - NODE_LIVE_MS], |r| {
            Ok(LiveNode { node_id: r.get(0)?, schema_version: r.get(1)?, last_seen_ms: r.get(2)? })
        })
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?
    };
    let plan = plan(schema, recorded, &others, now)?;
    if let Plan::Migrate { from } = plan {
        for (i, step) in schema.steps.iter().enumerate().skip(from as usize) {
            tx.execute_batch(step.sqlite).map_err(|e| SchemaError::Database(format!("{} migration {}: {e}", schema.component, i + 1)))?;
        }
        tx.execute(
            "INSERT INTO omniroute_schema (component, version, compatible_from, updated_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version, compatible_from = excluded.compatible_from, updated_ms = excluded.updated_ms",
            params![schema.component, schema.version(), schema.compatible_from(), now],
        )
        .map_err(db)?;
        if schema.legacy_user_version {
            tx.pragma_update(None, "user_version", schema.version()).map_err(db)?;
        }
    }
    tx.execute(
        "INSERT OR REPLACE INTO omniroute_nodes (node_id, component, schema_version, started_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![node_id, schema.component, schema.version(), now],
    )
    .map_err(db)?;
    // Forget nodes that stopped long ago.
    tx.execute("DELETE FROM omniroute_nodes WHERE last_seen_ms < ?1", [now - 100 * NODE_LIVE_MS]).map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(plan)
}

/// Refreshes a SQLite node's heartbeat.
pub fn heartbeat_sqlite(conn: &Connection, node_id: &str) -> rusqlite::Result<()> {
    conn.execute("UPDATE omniroute_nodes SET last_seen_ms = ?1 WHERE node_id = ?2", params![now_ms(), node_id])?;
    Ok(())
}

/// Removes a node that stops (it no longer holds back upgrades).
pub fn leave_sqlite(conn: &Connection, node_id: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM omniroute_nodes WHERE node_id = ?1", [node_id])?;
    Ok(())
}

/// [`migrate_sqlite`] for PostgreSQL, serialised across nodes by an advisory lock.
pub async fn migrate_postgres(pool: &deadpool_postgres::Pool, schema: &Schema, node_id: &str) -> Result<Plan, SchemaError> {
    use super::postgres::{error_text, pg_error_text};
    let db = |e: tokio_postgres::Error| SchemaError::Database(pg_error_text(&e));
    let mut client = pool.get().await.map_err(|e| SchemaError::Database(error_text(&e)))?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&POSTGRES_LOCK_KEY]).await.map_err(db)?;
    tx.batch_execute(POSTGRES_META).await.map_err(db)?;
    let recorded = tx
        .query_opt("SELECT version, compatible_from FROM omniroute_schema WHERE component = $1", &[&schema.component])
        .await
        .map_err(db)?
        .map(|r| Recorded { version: r.get(0), compatible_from: r.get(1) });
    let now = now_ms();
    let others: Vec<LiveNode> = tx
        .query(
            "SELECT node_id, schema_version, last_seen_ms FROM omniroute_nodes WHERE component = $1 AND node_id <> $2 AND last_seen_ms > $3",
            &[&schema.component, &node_id, &(now - NODE_LIVE_MS)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| LiveNode { node_id: r.get(0), schema_version: r.get(1), last_seen_ms: r.get(2) })
        .collect();
    let plan = plan(schema, recorded, &others, now)?;
    if let Plan::Migrate { from } = plan {
        for (i, step) in schema.steps.iter().enumerate().skip(from as usize) {
            tx.batch_execute(step.postgres)
                .await
                .map_err(|e| SchemaError::Database(format!("{} migration {}: {}", schema.component, i + 1, pg_error_text(&e))))?;
        }
        tx.execute(
            "INSERT INTO omniroute_schema (component, version, compatible_from, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version, compatible_from = excluded.compatible_from, updated_ms = excluded.updated_ms",
            &[&schema.component, &schema.version(), &schema.compatible_from(), &now],
        )
        .await
        .map_err(db)?;
    }
    tx.execute(
        "INSERT INTO omniroute_nodes (node_id, component, schema_version, started_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (node_id) DO UPDATE SET schema_version = excluded.schema_version, last_seen_ms = excluded.last_seen_ms",
        &[&node_id, &schema.component, &schema.version(), &now],
    )
    .await
    .map_err(db)?;
    tx.execute("DELETE FROM omniroute_nodes WHERE last_seen_ms < $1", &[&(now - 100 * NODE_LIVE_MS)]).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(plan)
}

/// Refreshes a PostgreSQL node's heartbeat.
pub async fn heartbeat_postgres(client: &tokio_postgres::Client, node_id: &str) -> Result<(), tokio_postgres::Error> {
    client.execute("UPDATE omniroute_nodes SET last_seen_ms = $1 WHERE node_id = $2", &[&now_ms(), &node_id]).await?;
    Ok(())
}

/// Removes a PostgreSQL node that stops.
pub async fn leave_postgres(client: &tokio_postgres::Client, node_id: &str) -> Result<(), tokio_postgres::Error> {
    client.execute("DELETE FROM omniroute_nodes WHERE node_id = $1", &[&node_id]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Migration = Migration { sqlite: "", postgres: "", compatible_from: 1 };
    const BREAKING: Migration = Migration { sqlite: "", postgres: "", compatible_from: 3 };
    const V3_COMPATIBLE: Schema = Schema { component: "t", steps: &[STEP, STEP, STEP], legacy_user_version: false };
    const V3_BREAKING: Schema = Schema { component: "t", steps: &[STEP, STEP, BREAKING], legacy_user_version: false };

    fn node(version: i64) -> LiveNode {
        LiveNode { node_id: "old-node".into(), schema_version: version, last_seen_ms: 1_000 }
    }

    #[test]
    fn plans() {
        let at = |version, compatible_from| Some(Recorded { version, compatible_from });
        assert_eq!(plan(&V3_COMPATIBLE, None, &[], 0), Ok(Plan::Migrate { from: 0 }));
        assert_eq!(plan(&V3_COMPATIBLE, at(3, 1), &[], 0), Ok(Plan::UpToDate));
        assert_eq!(plan(&V3_COMPATIBLE, at(2, 1), &[node(2)], 0), Ok(Plan::Migrate { from: 2 }));
        // A newer, still compatible database is used as it is.
        assert_eq!(plan(&V3_COMPATIBLE, at(5, 2), &[], 0), Ok(Plan::UseNewer { recorded: 5 }));
        // A newer database that no longer supports us: refuse, naming the version.
        let err = plan(&V3_COMPATIBLE, at(5, 4), &[], 0).unwrap_err();
        assert!(err.to_string().contains("version 5, which needs omniroute-mcp with schema version 4 or newer; this server has version 3"), "{err}");
        // A breaking upgrade while a node of version 2 runs: the newer one refuses.
        let err = plan(&V3_BREAKING, at(2, 1), &[node(2)], 11_000).unwrap_err();
        assert!(err.to_string().contains("would break node old-node (schema version 2, seen 10 s ago)"), "{err}");
        assert_eq!(plan(&V3_BREAKING, at(2, 1), &[], 0), Ok(Plan::Migrate { from: 2 }));
    }
}
