use omniroute_tool_testing::fixtures::NODE_1F2;
use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, MemorySession, keys, ledger_entry};
use serde_json::{Value, json};

use super::*;

const START: &str = "2026-11-25T23:14:00.000Z";
/// 2026-11-25T23:16:03.000Z: 123 s after START.
const NOW: u64 = 1_795_648_563_000;

fn entry(model: Option<&str>, provider: Option<&str>, cost: Value, success: bool) -> Value {
    ledger_entry(json!({
        "requestId": "r", "origin": "route_request", "requestedModel": "coding-fast",
        "status": if success { 200 } else { 503 }, "success": success,
        "provider": provider, "model": model, "cost": cost,
        "tokensIn": if success { json!(7) } else { Value::Null },
        "tokensOut": if success { json!(3) } else { Value::Null },
        "fallbacksTriggered": if success { json!(0) } else { Value::Null },
    }))
}

#[test]
fn contract_example_one_priced_completion_with_a_guard() {
    let ledger = json!([entry(
        Some("mock-small"),
        Some(NODE_1F2),
        json!(0.0000285),
        true
    )]);
    let guard = json!({"sessionId":"budget_1","maxCost":0.01,"action":"block","createdAt":"2026-11-25T23:15:00.000Z"});
    let s = MemorySession::new()
        .with_start(START)
        .with_ledger(&ledger)
        .with_guard(&guard);
    let out = snapshot(&s, NOW);
    let expected = json!({
        "sessionStart": "2026-11-25T23:14:00.000Z", "duration": "PT2M3S", "durationSeconds": 123,
        "requestCount": 1, "costTotal": 0.0000285, "tokenCount": { "prompt": 7, "completion": 3 },
        "topModels": [{ "model": "mock-small", "count": 1 }],
        "topProviders": [{ "provider": NODE_1F2, "count": 1 }],
        "errors": 0, "fallbacks": 0,
        "budgetGuard": { "active": true, "remaining": 0.0099715, "action": "block", "limit": 0.01, "spent": 0.0000285 }
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
}

#[test]
fn empty_session() {
    let s = MemorySession::new().with_start(START);
    let out = snapshot(&s, NOW + 3_600_000);
    assert_eq!(out["duration"], "PT1H2M3S");
    assert_eq!(out["requestCount"], 0);
    assert_eq!(out["costTotal"], 0);
    assert_eq!(out["topModels"], json!([]));
    assert_eq!(out["budgetGuard"], Value::Null);
    assert_eq!(keys(&out), OUTPUT_KEYS);
}

#[test]
fn ranking_errors_and_fallbacks() {
    let mut ledger = vec![
        entry(Some("a"), Some("p1"), json!(0.1), true),
        entry(Some("b"), Some("p2"), json!(0.2), true),
        entry(Some("b"), Some("p2"), json!(0.0), true),
        entry(None, None, Value::Null, false),
        entry(Some("c"), Some("p1"), json!(0.3), true),
    ];
    ledger[2]["fallbacksTriggered"] = json!(2);
    for m in ["d", "e", "f"] {
        ledger.push(entry(Some(m), Some("p3"), json!(0), true));
    }
    let s = MemorySession::new()
        .with_start(START)
        .with_ledger(&Value::Array(ledger));
    let out = snapshot(&s, NOW);
    assert_eq!(out["requestCount"], 8);
    assert_eq!(out["errors"], 1);
    assert_eq!(out["fallbacks"], 2);
    assert_eq!(out["costTotal"], 0.6);
    assert_eq!(out["tokenCount"], json!({ "prompt": 49, "completion": 21 }));
    let models: Vec<&str> = out["topModels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["b", "a", "c", "d", "e"],
        "count desc, ties by first use, at most 5"
    );
    assert_eq!(
        out["topProviders"],
        json!([{ "provider": "p3", "count": 3 }, { "provider": "p1", "count": 2 }, { "provider": "p2", "count": 2 }])
    );
}

#[test]
fn exceeded_guard_shows_zero_remaining() {
    let s = MemorySession::new()
        .with_start(START)
        .with_ledger(&json!([entry(Some("m"), Some("p"), json!(0.5), true)]))
        .with_guard(&json!({"sessionId":"budget_1","maxCost":0.1,"action":"alert","createdAt":"x"}));
    let g = &snapshot(&s, NOW)["budgetGuard"];
    assert_eq!(g["remaining"], 0);
    assert_eq!(g["spent"], 0.5);
    assert_eq!(g["action"], "alert");
}

#[test]
fn missing_session_start_is_null_not_now() {
    let out = snapshot(&MemorySession::new(), NOW);
    assert_eq!(out["sessionStart"], Value::Null);
    assert_eq!(out["duration"], Value::Null);
    assert_eq!(out["durationSeconds"], Value::Null);
    // A start in the future (clock skew) is zero, not negative.
    let s = MemorySession::new().with_start("2030-01-01T00:00:00.000Z");
    assert_eq!(snapshot(&s, NOW)["duration"], "PT0S");
}

#[test]
fn no_gateway_call_through_the_export_path() {
    let h = FakeHost::new(FakeGateway::new())
        .with_session(MemorySession::new().with_start(START));
    let out = h.call::<GetSessionSnapshot>(json!({})).unwrap();
    assert_eq!(out["sessionStart"], "2026-11-25T23:14:00.000Z");
    assert!(out["durationSeconds"].as_u64().unwrap() > 0);
    assert!(h.gateway.requests().is_empty());
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<GetSessionSnapshot>();
    testing::check_manifest::<GetSessionSnapshot>(include_str!("../tool.toml"));
    assert_eq!(
        testing::input_schema_without_session_id(&desc),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{}}"#
    );
    assert_eq!(
        desc["description"],
        format!("Returns a full snapshot of the current working session: cost, tokens, top models, errors, budget status.{}", schema::SESSION_ID_HINT)
    );
}
