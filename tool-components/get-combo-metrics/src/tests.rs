use omniroute_tool_sdk::Method;
use omniroute_tool_testing::{
    self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures, keys,
};
use serde_json::{Value, json};

use super::*;

const CODING_FAST_ID: &str = "c9df3fce-0dd7-4438-a4e7-8f10fde6b078";
const FREE_TIER_ID: &str = "60778c51-9485-4f7a-bedb-513010a8e882";

fn host(combos: Reply, metrics: Reply) -> FakeHost {
    FakeHost::new(
        FakeGateway::new()
            .on_get(COMBOS, combos)
            .on_get(COMBO_METRICS, metrics),
    )
}

fn run(host: &FakeHost, combo_id: &str) -> Result<Value, String> {
    host.call::<GetComboMetrics>(json!({ "comboId": combo_id }))
}

fn metrics_query(host: &FakeHost) -> Vec<(String, String)> {
    let reqs = host.gateway.requests();
    let metrics = reqs
        .iter()
        .find(|r| r.path == COMBO_METRICS)
        .expect("metrics read");
    metrics.query.clone()
}

#[test]
fn by_id_asks_the_gateway_by_name() {
    let h = host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::json(200, fixtures::COMBO_METRICS_CODING_FAST),
    );
    let out = run(&h, CODING_FAST_ID).unwrap();
    let fixture: Value = serde_json::from_str(fixtures::COMBO_METRICS_CODING_FAST).unwrap();
    assert_eq!(
        out,
        json!({ "id": CODING_FAST_ID, "name": "coding-fast", "metrics": fixture["metrics"] })
    );
    assert_eq!(keys(&out), ["id", "name", "metrics"]);
    assert_eq!(out["metrics"]["successRate"], 60);
    assert_eq!(out["metrics"]["totalLatencyMs"], 6705);
    assert_eq!(
        metrics_query(&h),
        [("combo".to_string(), "coding-fast".to_string())]
    );
    let paths: Vec<String> = h.gateway.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [COMBOS, COMBO_METRICS]);
}

#[test]
fn by_name_gives_the_same_answer() {
    let h = host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::json(200, fixtures::COMBO_METRICS_CODING_FAST),
    );
    assert_eq!(
        run(&h, "coding-fast").unwrap(),
        run(&h, CODING_FAST_ID).unwrap()
    );
}

#[test]
fn no_traffic_keeps_the_gateway_message() {
    let h = host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::json(200, fixtures::COMBO_METRICS_BY_ID_OR_UNKNOWN),
    );
    let out = run(&h, FREE_TIER_ID).unwrap();
    assert_eq!(
        out.to_string(),
        json!({ "id": FREE_TIER_ID, "name": "free-tier", "metrics": null, "message": "No metrics for this combo yet" })
            .to_string()
    );
    assert_eq!(
        metrics_query(&h),
        [("combo".to_string(), "free-tier".to_string())]
    );
}

#[test]
fn names_with_spaces_go_to_the_query_unencoded() {
    // The host percent-encodes query values; the tool passes the raw name.
    let combos = json!({ "combos": [{ "id": "x1", "name": "my combo/α", "models": [] }] });
    let h = host(
        Reply::json(200, combos.to_string()),
        Reply::json(200, r#"{"metrics":{"totalRequests":0}}"#),
    );
    let out = run(&h, "my combo/α").unwrap();
    assert_eq!(out["metrics"], json!({ "totalRequests": 0 }));
    assert!(out.get("message").is_none());
    assert_eq!(
        metrics_query(&h),
        [("combo".to_string(), "my combo/α".to_string())]
    );
}

#[test]
fn unknown_combo_is_an_error_before_any_metrics_read() {
    for combos in [fixtures::COMBOS_POPULATED, r#"{"combos":[]}"#, "[]"] {
        let h = host(
            Reply::json(200, combos),
            Reply::json(200, fixtures::COMBO_METRICS_BY_ID_OR_UNKNOWN),
        );
        assert_eq!(
            run(&h, "nope"),
            Err(r#"Combo not found: "nope""#.to_string())
        );
        assert!(h.gateway.requests().iter().all(|r| r.path == COMBOS));
    }
    // Names are exact.
    let h = host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::json(200, fixtures::COMBO_METRICS_BY_ID_OR_UNKNOWN),
    );
    assert_eq!(
        run(&h, "Coding-Fast"),
        Err(r#"Combo not found: "Coding-Fast""#.to_string())
    );
    // A health-style body without a combo list is an empty list too.
    let h = host(
        Reply::json(200, fixtures::HEALTH_FRESH),
        Reply::json(200, fixtures::COMBO_METRICS_BY_ID_OR_UNKNOWN),
    );
    assert_eq!(run(&h, "x"), Err(r#"Combo not found: "x""#.to_string()));
}

#[test]
fn gateway_failures_are_tool_errors() {
    for (reply, text) in gateway_failures(Method::Get, COMBOS) {
        let h = host(reply, Reply::json(200, fixtures::COMBO_METRICS_CODING_FAST));
        assert_eq!(run(&h, "coding-fast"), Err(text));
    }
    for (reply, text) in gateway_failures(Method::Get, COMBO_METRICS) {
        let h = host(Reply::json(200, fixtures::COMBOS_POPULATED), reply);
        assert_eq!(run(&h, "coding-fast"), Err(text));
    }
}

#[test]
fn odd_metrics_bodies_become_null() {
    let h = host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::json(200, r#"{"metrics":[1],"message":42}"#),
    );
    let out = run(&h, "coding-fast").unwrap();
    assert_eq!(out["metrics"], Value::Null);
    assert!(out.get("message").is_none());
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<GetComboMetrics>();
    testing::check_manifest::<GetComboMetrics>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"comboId":{"type":"string","description":"ID of the combo to get metrics for"}},"required":["comboId"]}"#
    );
    assert_eq!(
        desc["description"],
        "Returns detailed performance metrics for a specific combo"
    );
    assert_eq!(desc["annotations"]["readOnlyHint"], true);
    assert_eq!(desc["scopes"], json!(["read:combos"]));
}
