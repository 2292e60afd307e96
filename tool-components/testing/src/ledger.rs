//! Ledger entries as the host writes them, for tests of tools that read
//! the session's `ledger` or `request:<id>` keys.

use omniroute_tool_sdk::ledger::LedgerEntry;
use serde_json::Value;

/// A ledger entry in the host's shape (every key, in the host's order),
/// with the keys of `overrides` (a JSON object) replacing the base values.
/// The base is a failed completion without a response: `sentAt` and
/// `receivedAt` at 2026-11-25T23:14:00Z, origin `omniroute_route_request`,
/// everything else `null` or `false`.
///
/// ```
/// use omniroute_tool_testing::ledger_entry;
/// use serde_json::json;
/// let e = ledger_entry(json!({ "requestId": "r1", "cost": 0.0000285, "success": true }));
/// assert_eq!(e["cost"], 0.0000285);
/// assert_eq!(e["tokensIn"], serde_json::Value::Null);
/// ```
pub fn ledger_entry(overrides: Value) -> Value {
    let base = LedgerEntry {
        request_id: None,
        sent_at: "2026-11-25T23:14:00.000Z".into(),
        received_at: "2026-11-25T23:14:00.080Z".into(),
        origin: "omniroute_route_request".into(),
        requested_model: None,
        combo: None,
        role: None,
        status: None,
        success: false,
        provider: None,
        model: None,
        cost: None,
        tokens_in: None,
        tokens_out: None,
        latency_ms: None,
        cache: None,
        fallbacks_triggered: None,
        degraded_from: None,
        error: None,
    };
    let mut entry = serde_json::to_value(base).expect("a ledger entry serialises");
    if let (Some(entry), Value::Object(overrides)) = (entry.as_object_mut(), overrides) {
        for (key, value) in overrides {
            assert!(
                entry.contains_key(&key),
                "ledger entries have no key {key:?}"
            );
            entry.insert(key, value);
        }
    }
    entry
}
