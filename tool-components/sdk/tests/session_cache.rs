//! Session caches: fresh copies are served, stale, future or garbled ones
//! re-read, failed reads never stored.

use std::cell::Cell;

use omniroute_tool_sdk::Session;
use omniroute_tool_sdk::session_cache::get_or_read_at;
use omniroute_tool_testing::MemorySession;
use serde_json::json;

#[test]
fn serves_fresh_copies_and_rereads_stale_future_or_garbled_ones() {
    let session = MemorySession::new();
    let reads = Cell::new(0);
    let read = || {
        reads.set(reads.get() + 1);
        Some(json!({ "n": reads.get() }))
    };
    assert_eq!(
        get_or_read_at(&session, "k", 1_000_000, read),
        Some(json!({"n": 1}))
    );
    assert_eq!(
        get_or_read_at(&session, "k", 1_029_999, read),
        Some(json!({"n": 1}))
    );
    assert_eq!(
        get_or_read_at(&session, "k", 1_030_000, read),
        Some(json!({"n": 2})),
        "30 s old"
    );
    assert_eq!(
        get_or_read_at(&session, "k", 1_000_000, read),
        Some(json!({"n": 3})),
        "from the future"
    );
    session.set("k", "not json").unwrap();
    assert_eq!(
        get_or_read_at(&session, "k", 1_000_001, read),
        Some(json!({"n": 4})),
        "garbled"
    );
}

#[test]
fn a_failed_read_is_not_stored() {
    let session = MemorySession::new();
    assert_eq!(get_or_read_at(&session, "k", 5, || None), None);
    assert_eq!(session.get("k"), None);
}
