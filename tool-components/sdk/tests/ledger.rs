//! Reading the host-owned session state through a `Session` (the typed WIT
//! `state` interface in a component, a `MemorySession` here).

use omniroute_tool_sdk::ledger::{self, BudgetGuard};
use omniroute_tool_testing::MemorySession;
use serde_json::json;

fn entry(id: &str) -> serde_json::Value {
    json!({
        "requestId": id, "sentAt": "2026-11-25T23:12:50.000Z", "receivedAt": "2026-11-25T23:12:50.078Z",
        "origin": "omniroute_route_request", "requestedModel": "coding-fast", "combo": null, "role": null,
        "status": 200, "success": true, "provider": "p", "model": "m", "cost": 0.0000285, "tokensIn": 7,
        "tokensOut": 3, "latencyMs": 78, "cache": "MISS", "fallbacksTriggered": null, "degradedFrom": null,
        "error": null
    })
}

#[test]
fn entries_of_a_session() {
    let s = MemorySession::new().with_ledger(&json!([entry("a")]));
    let entries = ledger::entries(&s);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].tokens_in, Some(7));
    assert_eq!(entries[0].latency_ms, Some(78.0));
    assert!(ledger::entries(&MemorySession::new()).is_empty());
    assert_eq!(ledger::spent(&entries), 0.0000285);
}

#[test]
fn routing_index_entries() {
    let s = MemorySession::new().with_request(&entry("a"));
    assert_eq!(
        ledger::request_entry(&s, "a")
            .unwrap()
            .request_id
            .as_deref(),
        Some("a")
    );
    assert_eq!(ledger::request_entry(&s, "b"), None);
}

#[test]
fn the_guard_a_tool_reads_is_the_one_the_host_enforces() {
    let g = BudgetGuard::new(
        0.01,
        omniroute_tool_sdk::budget::GuardAction::Block,
        None,
        1_795_648_370_000,
    );
    let s = MemorySession::new().with_guard(&g.to_value());
    assert_eq!(ledger::budget_guard(&s), Some(g));
    assert_eq!(ledger::budget_guard(&MemorySession::new()), None);
}
