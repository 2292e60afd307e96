use omniroute_tool_sdk::GatewayError;
use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures};
use serde_json::{Value, json};

use super::*;

fn host(combos: Reply, metrics: Reply) -> FakeHost {
    FakeHost::new(
        FakeGateway::new()
            .on_get(COMBOS, combos)
            .on_get(COMBO_METRICS, metrics),
    )
}

/// Runs the tool through the export path (which also checks the output schema).
fn run(host: &FakeHost, input: Value) -> Result<Value, String> {
    host.call::<ListCombos>(input)
}

fn populated() -> FakeHost {
    host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::json(200, fixtures::COMBO_METRICS_ALL),
    )
}

fn expected_combos() -> Value {
    json!([
        {
            "id": "c9df3fce-0dd7-4438-a4e7-8f10fde6b078",
            "name": "coding-fast",
            "models": [
                { "provider": "mock", "model": "mock/mock-small", "priority": 1 },
                { "provider": "mock", "model": "mock/mock-large", "priority": 2 }
            ],
            "strategy": "priority",
            "enabled": true
        },
        {
            "id": "60778c51-9485-4f7a-bedb-513010a8e882",
            "name": "free-tier",
            "models": [{ "provider": "mock", "model": "mock/mock-large", "priority": 1 }],
            "strategy": "weighted",
            "enabled": true
        }
    ])
}

#[test]
fn populated_without_metrics() {
    let h = populated();
    let out = run(&h, json!({})).unwrap();
    assert_eq!(out, json!({ "combos": expected_combos() }));
    assert_eq!(
        out.to_string(),
        json!({ "combos": expected_combos() }).to_string(),
        "key order"
    );
    assert!(out.get("degraded").is_none());
    let paths: Vec<String> = h.gateway.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [COMBOS]);
    // includeMetrics:false is the same as absent.
    assert_eq!(run(&h, json!({ "includeMetrics": false })).unwrap(), out);
}

#[test]
fn populated_with_metrics_looks_them_up_by_name() {
    let h = populated();
    let out = run(&h, json!({ "includeMetrics": true })).unwrap();
    let fixture: Value = serde_json::from_str(fixtures::COMBO_METRICS_ALL).unwrap();
    let mut expected = expected_combos();
    expected[0]["metrics"] = fixture["metrics"]["coding-fast"].clone();
    expected[1]["metrics"] = Value::Null; // no traffic since the gateway started
    assert_eq!(out, json!({ "combos": expected, "degraded": [] }));
    assert_eq!(out["combos"][0]["metrics"]["successRate"], 60);
    // Both reads go out together, the metrics one without parameters.
    assert_eq!(h.gateway.batches(), vec![2]);
    assert!(h.gateway.requests().iter().all(|r| r.query.is_empty()));
}

#[test]
fn no_metrics_yet_is_null_not_degraded() {
    let h = host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::json(200, fixtures::COMBO_METRICS_BY_ID_OR_UNKNOWN),
    );
    let out = run(&h, json!({ "includeMetrics": true })).unwrap();
    assert_eq!(out["combos"][0]["metrics"], Value::Null);
    assert_eq!(out["combos"][1]["metrics"], Value::Null);
    assert_eq!(out["degraded"], json!([]));
}

#[test]
fn failed_metrics_degrade() {
    let h = host(
        Reply::json(200, fixtures::COMBOS_POPULATED),
        Reply::error(GatewayError::Timeout(15)),
    );
    let out = run(&h, json!({ "includeMetrics": true })).unwrap();
    assert!(
        out["combos"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["metrics"].is_null())
    );
    assert_eq!(
        out["degraded"],
        json!([{ "source": "GET /api/combos/metrics", "error": "OmniRoute API timeout after 15 s: GET /api/combos/metrics" }])
    );
}

#[test]
fn combo_list_failures_are_tool_errors() {
    let cases = [
        (
            Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128"),
            "OmniRoute API unreachable: GET /api/combos: connect ECONNREFUSED 127.0.0.1:20128".to_string(),
        ),
        (Reply::error(GatewayError::Timeout(15)), "OmniRoute API timeout after 15 s: GET /api/combos".to_string()),
        (
            Reply::json(500, "{\n  \"error\": \"Internal Server Error\"\n}"),
            r#"OmniRoute API error [500]: {"error":"Internal Server Error"}"#.to_string(),
        ),
        (
            Reply::status(404, "<html>".repeat(50_000)),
            "OmniRoute API error [404]: <non-JSON body, 300000 bytes>".to_string(),
        ),
        (Reply::status(200, "not json"), "OmniRoute API error [200]: <non-JSON body, 8 bytes>".to_string()),
        (
            Reply::error(GatewayError::Denied("granted: read:health".into())),
            "Not permitted: GET /api/combos is outside the scopes granted to this call (granted: read:health)"
                .to_string(),
        ),
    ];
    for (reply, text) in cases {
        for include_metrics in [false, true] {
            let h = host(reply.clone(), Reply::json(200, fixtures::COMBO_METRICS_ALL));
            assert_eq!(
                run(&h, json!({ "includeMetrics": include_metrics })),
                Err(text.clone())
            );
        }
    }
}

#[test]
fn empty_list() {
    let h = host(
        Reply::json(200, r#"{"combos":[]}"#),
        Reply::json(200, fixtures::COMBO_METRICS_BY_ID_OR_UNKNOWN),
    );
    assert_eq!(run(&h, json!({})).unwrap(), json!({ "combos": [] }));
    assert_eq!(
        run(&h, json!({ "includeMetrics": true })).unwrap(),
        json!({ "combos": [], "degraded": [] })
    );
}

#[test]
fn bare_array_response_is_accepted() {
    let fixture: Value = serde_json::from_str(fixtures::COMBOS_POPULATED).unwrap();
    let h = host(
        Reply::json(200, fixture["combos"].to_string()),
        Reply::json(200, fixtures::COMBO_METRICS_ALL),
    );
    assert_eq!(
        run(&h, json!({})).unwrap(),
        json!({ "combos": expected_combos() })
    );
}

#[test]
fn string_steps_combo_refs_and_switched_off_combos() {
    let combos = json!({ "combos": [{
        "id": "x1",
        "name": "mixed",
        "models": [
            "cc/claude-sonnet",
            "gpt-4o",
            { "kind": "combo-ref", "comboName": "free-tier" },
            { "kind": "model", "model": "small", "providerId": "mock", "priority": 9 }
        ],
        "strategy": "round-robin",
        "isActive": false
    }, {
        "id": "x2",
        "data": { "models": ["a/b"], "strategy": "weighted" }
    }]});
    let h = host(
        Reply::json(200, combos.to_string()),
        Reply::json(200, fixtures::COMBO_METRICS_ALL),
    );
    let out = run(&h, json!({})).unwrap();
    assert_eq!(
        out,
        json!({ "combos": [
            {
                "id": "x1",
                "name": "mixed",
                "models": [
                    { "provider": "cc", "model": "cc/claude-sonnet", "priority": 1 },
                    { "provider": null, "model": "gpt-4o", "priority": 2 },
                    { "provider": "combo", "model": "free-tier", "priority": 3 },
                    { "provider": "mock", "model": "mock/small", "priority": 9 }
                ],
                "strategy": "round-robin",
                "enabled": false
            },
            {
                "id": "x2",
                "name": null,
                "models": [{ "provider": "a", "model": "a/b", "priority": 1 }],
                "strategy": "weighted",
                "enabled": true
            }
        ]})
    );
}

#[test]
fn unnamed_combo_gets_null_metrics() {
    let h = host(
        Reply::json(200, r#"[{"id":"","models":[]}]"#),
        Reply::json(200, fixtures::COMBO_METRICS_ALL),
    );
    let out = run(&h, json!({ "includeMetrics": true })).unwrap();
    assert_eq!(out["combos"][0]["name"], Value::Null, "no name, not \"unnamed\"");
    assert_eq!(out["combos"][0]["id"], "");
    assert_eq!(out["combos"][0]["metrics"], Value::Null);
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<ListCombos>();
    testing::check_manifest::<ListCombos>(include_str!("../tool.toml"));
    assert_eq!(desc["title"], "List combos");
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"includeMetrics":{"description":"Include request count, success rate, latency, and cost metrics per combo","type":"boolean"}}}"#
    );
    assert_eq!(desc["scopes"], json!(["read:combos"]));
    assert_eq!(desc["annotations"]["readOnlyHint"], true);
    assert_eq!(desc["annotations"]["openWorldHint"], false);
}
