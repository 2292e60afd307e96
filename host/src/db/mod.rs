//! What the state store and the audit log share about databases: private
//! files and folders, opening SQLite and PostgreSQL, and versioned schemas
//! that two server versions on one database can agree on.

pub mod files;
pub mod postgres;
pub mod schema;
pub mod sqlite;

/// Milliseconds since the Unix epoch (UTC), the time unit of every stored stamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Lowercase hex of `bytes` random bytes from the OS RNG.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(hex::encode(buf))
}
