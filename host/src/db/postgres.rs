//! Connecting to PostgreSQL (`--state-url`, `--audit-url`): a small pool of
//! tokio-postgres connections, shared by the calls of one node.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

/// Connections one node keeps open at most.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection or a new one.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a URL names PostgreSQL (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The URL with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

/// Builds a pool for `url` and checks that one connection works.
///
/// TLS is not supported yet: connect over loopback, a Unix socket or a
/// private network (a URL asking for `sslmode=require` is refused, never
/// silently sent in the clear).
pub async fn connect(url: &str) -> Result<Pool, String> {
    let config: tokio_postgres::Config =
        url.parse().map_err(|e| format!("invalid PostgreSQL URL {}: {e}", redact(url)))?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(format!(
            "{} asks for TLS (sslmode=require), which this build does not support; connect over loopback, a Unix socket or a private network",
            redact(url)
        ));
    }
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|e| format!("cannot build a connection pool for {}: {e}", redact(url)))?;
    drop(pool.get().await.map_err(|e| format!("cannot connect to {}: {}", redact(url), error_text(&e)))?);
    Ok(pool)
}

/// A pool error with the database's own message when there is one.
pub fn error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => pg_error_text(pg),
        other => other.to_string(),
    }
}

/// A PostgreSQL error with the server's message (tokio-postgres' Display
/// says only "db error").
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("PostgreSQL://h"));
        assert!(!is_postgres_url("/var/lib/state.sqlite"));
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert!(!redact("postgres://u:secret@h/db").contains("secret"));
    }
}
