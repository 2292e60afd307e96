//! Short-lived copies of slow-changing gateway data (the combo list, the
//! provider maps) in a tool's private session keys, so that a burst of calls
//! in one MCP session does not re-read them on every call.
//!
//! An entry is `{"fetchedAtMs": <ms>, "value": <json>}`. An entry from the
//! future (the clock moved back) or older than the TTL is not used; a failed
//! read is never stored, so the next call tries the gateway again.

use crate::{Session, clock};
use serde_json::{Value, json};

/// How long a cached copy is used: long enough for a burst of calls, short
/// enough that a change in the dashboard shows up within half a minute.
pub const TTL_MS: u64 = 30_000;

/// The value under `key` if it was stored less than `ttl_ms` before `now_ms`.
pub fn fresh(session: &dyn Session, key: &str, now_ms: u64, ttl_ms: u64) -> Option<Value> {
    let mut entry = session.get_json(key)?;
    let at = entry["fetchedAtMs"].as_u64()?;
    (at <= now_ms && now_ms - at < ttl_ms).then(|| entry["value"].take())
}

/// Stores `value` under `key` as read at `now_ms`. A refused write (the
/// host's size limit) only costs a re-read next time.
pub fn store(session: &dyn Session, key: &str, now_ms: u64, value: Value) {
    let _ = session.set_json(key, &json!({ "fetchedAtMs": now_ms, "value": value }));
}

/// The value under `key` while fresh (see [`TTL_MS`]), else `read()`'s
/// answer, stored for the next call when it is `Some`.
pub fn get_or_read(session: &dyn Session, key: &str, read: impl FnOnce() -> Option<Value>) -> Option<Value> {
    get_or_read_at(session, key, clock::now_ms(), read)
}

/// [`get_or_read`] at a given time (for tests).
pub fn get_or_read_at(
    session: &dyn Session,
    key: &str,
    now_ms: u64,
    read: impl FnOnce() -> Option<Value>,
) -> Option<Value> {
    if let Some(value) = fresh(session, key, now_ms, TTL_MS) {
        return Some(value);
    }
    let value = read()?;
    store(session, key, now_ms, value.clone());
    Some(value)
}
