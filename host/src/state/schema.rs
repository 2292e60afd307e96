//! The state schema, in both dialects (see `crate::db::schema` for how
//! versions and compatibility work across nodes).

use crate::db::schema::{Migration, Schema};

/// Version 1: every table of the store.
const V1_SQLITE: &str = "
CREATE TABLE state_principals (
    principal TEXT PRIMARY KEY,
    handles INTEGER NOT NULL DEFAULT 0,
    ledger_entries INTEGER NOT NULL DEFAULT 0,
    tasks INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE state_buckets (
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    budget_guard TEXT,
    spent REAL NOT NULL DEFAULT 0,
    reserved REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (principal, bucket)
);
CREATE INDEX state_buckets_lru ON state_buckets (principal, kind, last_used_ms);
CREATE INDEX state_buckets_idle ON state_buckets (last_used_ms);
CREATE TABLE state_values (
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    tool TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (principal, bucket, tool, key)
);
CREATE TABLE state_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    request_id TEXT,
    entry TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX state_ledger_bucket ON state_ledger (principal, bucket, id);
CREATE INDEX state_ledger_request ON state_ledger (principal, request_id, id);
CREATE INDEX state_ledger_principal ON state_ledger (principal, id);
CREATE TABLE state_spend (
    principal TEXT NOT NULL,
    period TEXT NOT NULL,
    spent REAL NOT NULL DEFAULT 0,
    reserved REAL NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, period)
);
CREATE TABLE state_reservations (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    amount REAL NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX state_reservations_age ON state_reservations (created_ms);
CREATE TABLE state_rate (
    principal TEXT NOT NULL,
    name TEXT NOT NULL,
    tokens REAL NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, name)
);
CREATE TABLE state_tasks (
    principal TEXT NOT NULL,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL,
    total REAL,
    message TEXT,
    result TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, task_id)
);
CREATE INDEX state_tasks_order ON state_tasks (principal, created_ms);
CREATE INDEX state_tasks_expiry ON state_tasks (expires_ms);
";

const V1_POSTGRES: &str = "
CREATE TABLE state_principals (
    principal TEXT PRIMARY KEY,
    handles BIGINT NOT NULL DEFAULT 0,
    ledger_entries BIGINT NOT NULL DEFAULT 0,
    tasks BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE state_buckets (
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL,
    budget_guard TEXT,
    spent DOUBLE PRECISION NOT NULL DEFAULT 0,
    reserved DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (principal, bucket)
);
CREATE INDEX state_buckets_lru ON state_buckets (principal, kind, last_used_ms);
CREATE INDEX state_buckets_idle ON state_buckets (last_used_ms);
CREATE TABLE state_values (
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    tool TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (principal, bucket, tool, key)
);
CREATE TABLE state_ledger (
    id BIGSERIAL PRIMARY KEY,
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    request_id TEXT,
    entry TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX state_ledger_bucket ON state_ledger (principal, bucket, id);
CREATE INDEX state_ledger_request ON state_ledger (principal, request_id, id);
CREATE INDEX state_ledger_principal ON state_ledger (principal, id);
CREATE TABLE state_spend (
    principal TEXT NOT NULL,
    period TEXT NOT NULL,
    spent DOUBLE PRECISION NOT NULL DEFAULT 0,
    reserved DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (principal, period)
);
CREATE TABLE state_reservations (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    bucket TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX state_reservations_age ON state_reservations (created_ms);
CREATE TABLE state_rate (
    principal TEXT NOT NULL,
    name TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (principal, name)
);
CREATE TABLE state_tasks (
    principal TEXT NOT NULL,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    progress DOUBLE PRECISION,
    total DOUBLE PRECISION,
    message TEXT,
    result TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (principal, task_id)
);
CREATE INDEX state_tasks_order ON state_tasks (principal, created_ms);
CREATE INDEX state_tasks_expiry ON state_tasks (expires_ms);
";

/// Version 2: revoked principals (`omniroute-mcp tenants revoke`), which every
/// node sharing the store refuses. Only a new table: version-1 nodes keep
/// working beside it (they do not see revocations; README "Running several nodes").
const V2_SQLITE: &str = "
CREATE TABLE state_revocations (
    principal TEXT PRIMARY KEY,
    revoked_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
";

const V2_POSTGRES: &str = "
CREATE TABLE state_revocations (
    principal TEXT PRIMARY KEY,
    revoked_ms BIGINT NOT NULL,
    reason TEXT NOT NULL
);
";

/// The state schema.
pub const SCHEMA: Schema = Schema {
    component: "state",
    steps: &[
        Migration { sqlite: V1_SQLITE, postgres: V1_POSTGRES, compatible_from: 1 },
        Migration { sqlite: V2_SQLITE, postgres: V2_POSTGRES, compatible_from: 1 },
    ],
    legacy_user_version: false,
};
