use omniroute_tool_testing::{self as testing, FakeHost, MemorySession, keys, ledger_entry};
use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_795_648_370_000;

fn priced_ledger(costs: &[Value]) -> Value {
    Value::Array(
        costs
            .iter()
            .map(|c| ledger_entry(json!({ "requestId": "r", "cost": c, "success": true })))
            .collect(),
    )
}

#[test]
fn writes_the_guard_and_reports_real_spend() {
    let s = MemorySession::new().with_ledger(&priced_ledger(&[json!(0.0000285), json!(null)]));
    let out = set_budget_guard(&s, 0.01, "block", None, NOW).unwrap();
    assert_eq!(
        out.to_string(),
        r#"{"sessionId":"budget_1795648370000","budgetTotal":0.01,"budgetSpent":0.0000285,"budgetRemaining":0.0099715,"action":"block","status":"active"}"#
    );
    assert_eq!(
        s.guard_json().unwrap().to_string(),
        r#"{"sessionId":"budget_1795648370000","maxCost":0.01,"action":"block","createdAt":"2026-11-25T23:12:50.000Z"}"#
    );
}

#[test]
fn tier_is_kept_only_when_given() {
    let s = MemorySession::new();
    let out = set_budget_guard(&s, 1.5, "degrade", Some("free"), NOW).unwrap();
    assert_eq!(
        keys(&out),
        [
            "sessionId",
            "budgetTotal",
            "budgetSpent",
            "budgetRemaining",
            "action",
            "degradeToTier",
            "status"
        ]
    );
    assert_eq!(out["degradeToTier"], "free");
    assert_eq!(out["budgetTotal"].to_string(), "1.5");
    assert_eq!(s.guard_json().unwrap()["degradeToTier"], "free");
    // The observed original answer, without a tier.
    let out = set_budget_guard(&s, 1.5, "degrade", None, NOW).unwrap();
    assert_eq!(
        out.to_string(),
        r#"{"sessionId":"budget_1795648370000","budgetTotal":1.5,"budgetSpent":0,"budgetRemaining":1.5,"action":"degrade","status":"active"}"#
    );
    assert!(
        s.guard_json()
            .unwrap()
            .get("degradeToTier")
            .is_none()
    );
}

#[test]
fn status_rule() {
    let s = MemorySession::new().with_ledger(&priced_ledger(&[json!(0.85)]));
    assert_eq!(
        set_budget_guard(&s, 1.0, "alert", None, NOW).unwrap()["status"],
        "warning"
    );
    assert_eq!(
        set_budget_guard(&s, 2.0, "alert", None, NOW).unwrap()["status"],
        "active"
    );
    let out = set_budget_guard(&s, 0.5, "alert", None, NOW).unwrap();
    assert_eq!(out["status"], "exceeded");
    assert_eq!(out["budgetRemaining"], 0);
    assert_eq!(out["budgetSpent"], 0.85);
    assert_eq!(
        set_budget_guard(&s, 0.85, "alert", None, NOW).unwrap()["status"],
        "exceeded"
    );
    let fresh = MemorySession::new();
    assert_eq!(
        set_budget_guard(&fresh, 0.0, "block", None, NOW).unwrap()["status"],
        "exceeded"
    );
    // Integral limits print as integers.
    assert_eq!(
        set_budget_guard(&fresh, 2.0, "block", None, NOW).unwrap()["budgetTotal"].to_string(),
        "2"
    );
}

#[test]
fn refused_write_is_an_error() {
    let s = MemorySession::new().refusing_guard();
    assert_eq!(
        set_budget_guard(&s, 1.0, "block", None, NOW)
            .unwrap_err()
            .message(),
        "The host did not accept the budget guard: setting the budget guard needs the write:budget scope"
    );
}

#[test]
fn the_host_handle_is_the_session_id() {
    let handle = "sh_0123456789abcdef0123456789abcdef01234567";
    let h = FakeHost::default().with_session(MemorySession::new().with_handle(handle));
    let out = h.call::<SetBudgetGuard>(json!({ "maxCost": 0.01, "action": "block" })).unwrap();
    assert_eq!(out["sessionId"], handle);
    assert_eq!(h.session.guard_json().unwrap()["sessionId"], handle);
}

#[test]
fn through_the_export_path() {
    let h = FakeHost::default();
    let out = h
        .call::<SetBudgetGuard>(json!({ "maxCost": 0.01, "action": "alert" }))
        .unwrap();
    assert!(out["sessionId"].as_str().unwrap().starts_with("budget_"));
    assert_eq!(out["status"], "active");
    let guard = h.session.guard_json().unwrap();
    assert_eq!(guard["sessionId"], out["sessionId"]);
    assert!(guard["createdAt"].as_str().unwrap().ends_with('Z'));
    for bad in [
        json!({ "maxCost": -1, "action": "block" }),
        json!({ "maxCost": 1, "action": "stop" }),
        json!({ "maxCost": 1, "action": "degrade", "degradeToTier": "premium" }),
    ] {
        assert!(
            h.call::<SetBudgetGuard>(bad)
                .unwrap_err()
                .starts_with("Invalid input: ")
        );
    }
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<SetBudgetGuard>();
    testing::check_manifest::<SetBudgetGuard>(include_str!("../tool.toml"));
    assert_eq!(
        testing::input_schema_without_session_id(&desc),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"maxCost":{"type":"number","description":"Maximum cost in USD for this session"},"action":{"type":"string","enum":["degrade","block","alert"],"description":"Action when budget is exceeded"},"degradeToTier":{"description":"If action=degrade, which tier to fall back to","type":"string","enum":["cheap","free"]}},"required":["maxCost","action"]}"#
    );
    assert_eq!(
        desc["annotations"],
        json!({"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":false})
    );
    assert_eq!(
        desc["description"],
        "Sets a session budget limit with configurable action when exceeded (degrade/block/alert). Returns sessionId, a \
         handle: pass it to route_request, test_combo, cost_report, get_session_snapshot and explain_route so they use \
         this guard and ledger (needed by stateless clients; works from any connection or server node), and back here \
         to change this guard"
    );
}
