use omniroute_tool_sdk::Method;
use omniroute_tool_testing::fixtures::NODE_9BF;
use omniroute_tool_testing::{
    self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures, keys,
};
use serde_json::{Value, json};

use super::*;

fn gateway() -> FakeGateway {
    FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED))
        .on_get(HEALTH, Reply::json(200, fixtures::HEALTH_POPULATED))
        .on_get(QUOTA, Reply::json(200, fixtures::USAGE_QUOTA))
        .on_get(PRICING, Reply::json(200, fixtures::PRICING))
        .with_provider_maps()
}

fn run(gw: FakeGateway, input: Value) -> Result<Value, String> {
    FakeHost::new(gw).call::<SimulateRoute>(input)
}

fn input(combo: Option<&str>) -> Value {
    let mut v = json!({ "model": "gpt-4o", "promptTokenEstimate": 2000 });
    if let Some(c) = combo {
        v["combo"] = json!(c);
    }
    v
}

fn combos_with(models: Value) -> Reply {
    Reply::json(
        200,
        json!({ "combos": [{ "id": "c1", "name": "mixed", "models": models }] }).to_string(),
    )
}

#[test]
fn contract_example_coding_fast_2000_tokens() {
    let out = run(gateway(), input(Some("coding-fast"))).unwrap();
    let expected = json!({
        "simulatedPath": [
            { "provider": "mock", "model": "mock/mock-small", "probability": 0.85, "estimatedCost": 0.006, "costBasis": "default_estimate", "healthStatus": "CLOSED", "quotaAvailable": null },
            { "provider": "mock", "model": "mock/mock-large", "probability": 0.15, "estimatedCost": 0.006, "costBasis": "default_estimate", "healthStatus": "CLOSED", "quotaAvailable": null }
        ],
        "fallbackTree": { "primary": "mock", "fallbacks": ["mock"], "worstCaseCost": 0.006, "bestCaseCost": 0.006, "costEstimated": true },
        "assumptions": ASSUMPTIONS,
        "degraded": []
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
}

#[test]
fn the_six_sources_go_out_in_one_batch() {
    let h = FakeHost::new(gateway());
    h.call::<SimulateRoute>(input(None)).unwrap();
    assert_eq!(h.gateway.batches(), vec![6]);
}

#[test]
fn default_is_the_first_enabled_combo() {
    let out = run(gateway(), input(None)).unwrap();
    assert_eq!(out["simulatedPath"].as_array().unwrap().len(), 2);
    // coding-fast switched off: free-tier is the first enabled one.
    let mut combos: Value = serde_json::from_str(fixtures::COMBOS_POPULATED).unwrap();
    combos["combos"][0]["isActive"] = json!(false);
    let gw = gateway().on_get(COMBOS, Reply::json(200, combos.to_string()));
    let out = run(gw, input(None)).unwrap();
    assert_eq!(out["simulatedPath"][0]["model"], "mock/mock-large");
    assert_eq!(out["simulatedPath"][0]["probability"], 0.85);
    assert_eq!(out["fallbackTree"]["fallbacks"], json!([]));
    // All off: nothing to simulate.
    combos["combos"][1]["isActive"] = json!(false);
    let gw = gateway().on_get(COMBOS, Reply::json(200, combos.to_string()));
    assert_eq!(run(gw, input(None)), Err("No enabled combo found".into()));
}

#[test]
fn named_combo_by_id_then_name_regardless_of_state() {
    let mut combos: Value = serde_json::from_str(fixtures::COMBOS_POPULATED).unwrap();
    combos["combos"][1]["isActive"] = json!(false);
    let gw = gateway().on_get(COMBOS, Reply::json(200, combos.to_string()));
    let out = run(gw, input(Some("60778c51-9485-4f7a-bedb-513010a8e882"))).unwrap();
    assert_eq!(out["fallbackTree"]["primary"], "mock");
    assert_eq!(out["simulatedPath"].as_array().unwrap().len(), 1);
    assert_eq!(
        run(gateway(), input(Some("nope"))),
        Err("No matching combo found: \"nope\"".into())
    );
}

#[test]
fn open_breakers_from_the_alias_set() {
    let gw = gateway().on_get(HEALTH, Reply::json(200, fixtures::HEALTH_OPEN_BREAKERS));
    let out = run(gw, input(Some("coding-fast"))).unwrap();
    assert_eq!(out["simulatedPath"][0]["healthStatus"], "OPEN");
    assert_eq!(out["simulatedPath"][1]["healthStatus"], "OPEN");
}

#[test]
fn gateway_prices_win_over_step_prices_and_the_default() {
    let prices = json!({ NODE_9BF: { "mock-small": { "input": 1.5, "output": 6 } } });
    let gw = gateway().on_get(PRICING, Reply::json(200, prices.to_string()));
    let out = run(gw, input(Some("coding-fast"))).unwrap();
    let path = &out["simulatedPath"];
    assert_eq!(path[0]["estimatedCost"], 0.003);
    assert_eq!(path[0]["costBasis"], "gateway_pricing");
    assert_eq!(path[1]["estimatedCost"], 0.006);
    assert_eq!(path[1]["costBasis"], "default_estimate");
    assert_eq!(out["fallbackTree"]["worstCaseCost"], 0.006);
    assert_eq!(out["fallbackTree"]["bestCaseCost"], 0.003);
    assert_eq!(out["fallbackTree"]["costEstimated"], true);

    // A built-in model is priced from pricing.json; a step price is used next.
    let gw = gateway().on_get(
        COMBOS,
        combos_with(json!([
            { "kind": "model", "model": "openai/gpt-4o", "providerId": "openai" },
            { "kind": "model", "model": "mock/x", "providerId": "mock", "inputCostPer1M": "0.5" }
        ])),
    );
    let out = run(
        gw,
        json!({ "model": "m", "promptTokenEstimate": 1000, "combo": "mixed" }),
    )
    .unwrap();
    let path = &out["simulatedPath"];
    assert_eq!(path[0]["estimatedCost"], 0.0025);
    assert_eq!(path[0]["costBasis"], "gateway_pricing");
    assert_eq!(path[1]["estimatedCost"], 0.0005);
    assert_eq!(path[1]["costBasis"], "combo_step");
    assert_eq!(out["fallbackTree"]["costEstimated"], false);
    // Realistic small costs keep their precision (roundCost, not 4 decimals).
    let out = run(
        gateway(),
        json!({ "model": "m", "promptTokenEstimate": 7, "combo": "coding-fast" }),
    )
    .unwrap();
    assert_eq!(out["simulatedPath"][0]["estimatedCost"], 0.000021);
}

#[test]
fn string_and_combo_ref_steps_are_included() {
    let gw = gateway().on_get(
        COMBOS,
        combos_with(json!([
            "mock/mock-small",
            { "kind": "combo-ref", "comboName": "free-tier" },
            {},
            "gpt-4o"
        ])),
    );
    let out = run(gw, input(Some("mixed"))).unwrap();
    let path = out["simulatedPath"].as_array().unwrap();
    assert_eq!(path.len(), 4);
    assert_eq!(path[0]["provider"], "mock");
    assert_eq!(path[0]["quotaAvailable"], Value::Null, "the gateway's 100 % for an unknown limit");
    assert_eq!(path[1]["provider"], "combo");
    assert_eq!(path[1]["model"], "free-tier");
    assert_eq!(path[1]["healthStatus"], Value::Null);
    assert_eq!(path[1]["quotaAvailable"], Value::Null);
    assert_eq!(path[1]["costBasis"], "default_estimate");
    // An entry without any model names nothing: not the requested model.
    assert_eq!(path[2]["provider"], Value::Null);
    assert_eq!(path[2]["model"], Value::Null);
    assert_eq!(path[2]["healthStatus"], Value::Null, "no provider, no breaker known");
    assert_eq!(path[3]["provider"], Value::Null, "a bare model names no provider");
    assert_eq!(path[3]["model"], "gpt-4o");
    assert_eq!(path[3]["quotaAvailable"], Value::Null, "no quota entry");
    assert!((path[1]["probability"].as_f64().unwrap() - 0.15 / 3.0).abs() < 1e-15);
    assert_eq!(
        out["fallbackTree"]["fallbacks"],
        json!(["combo", null, null])
    );
}

/// Quota entries with a known limit, and one whose limit the gateway does
/// not know (it reports 100 % for it): only the known one is available.
#[test]
fn quota_only_from_known_limits() {
    let quota = json!({ "providers": [
        { "provider": NODE_9BF, "quotaUsed": 30, "quotaTotal": 120, "percentRemaining": 75, "tokenStatus": "valid" },
        { "provider": "openai", "quotaUsed": 0, "quotaTotal": null, "percentRemaining": 100, "tokenStatus": "valid" }
    ]});
    let gw = gateway()
        .on_get(QUOTA, Reply::json(200, quota.to_string()))
        .on_get(
            COMBOS,
            combos_with(json!([
                { "kind": "model", "model": "mock/mock-small", "providerId": "mock" },
                { "kind": "model", "model": "openai/gpt-4o", "providerId": "openai" }
            ])),
        );
    let out = run(gw, input(Some("mixed"))).unwrap();
    assert_eq!(out["simulatedPath"][0]["quotaAvailable"], 75);
    assert_eq!(out["simulatedPath"][1]["quotaAvailable"], Value::Null);
    assert_eq!(out["degraded"], json!([]));
}

#[test]
fn combo_without_steps() {
    let gw = gateway().on_get(COMBOS, combos_with(json!([])));
    let out = run(gw, input(Some("mixed"))).unwrap();
    assert_eq!(
        out["fallbackTree"],
        json!({ "primary": null, "fallbacks": [], "worstCaseCost": null, "bestCaseCost": null, "costEstimated": false })
    );
    assert_eq!(out["simulatedPath"], json!([]));
}

#[test]
fn optional_sources_degrade() {
    let gw = gateway()
        .on_get(
            HEALTH,
            Reply::json(500, r#"{"status":"error","error":"Health check failed"}"#),
        )
        .on_get(QUOTA, Reply::unreachable("refused"))
        .on_get(
            PRICING,
            Reply::json(401, r#"{"error":"Authentication required"}"#),
        )
        .on_get(PROVIDER_NODES, Reply::unreachable("refused"))
        .on_get(PRICING_MODELS, Reply::unreachable("refused"));
    let out = run(gw, input(Some("coding-fast"))).unwrap();
    assert_eq!(out["simulatedPath"][0]["healthStatus"], Value::Null);
    assert_eq!(out["simulatedPath"][0]["quotaAvailable"], Value::Null);
    assert_eq!(out["simulatedPath"][0]["costBasis"], "default_estimate");
    let sources = testing::degraded_sources(&out);
    assert_eq!(
        sources,
        [
            "GET /api/monitoring/health",
            "GET /api/usage/quota",
            "GET /api/pricing",
            "GET /api/provider-nodes",
            "GET /api/pricing/models"
        ]
    );
    assert_eq!(
        out["degraded"][0]["error"],
        r#"OmniRoute API error [500]: {"status":"error","error":"Health check failed"}"#
    );
    assert_eq!(
        keys(&out),
        ["simulatedPath", "fallbackTree", "assumptions", "degraded"]
    );
}

#[test]
fn combo_list_failures_are_tool_errors() {
    for (reply, text) in gateway_failures(Method::Get, COMBOS) {
        assert_eq!(run(gateway().on_get(COMBOS, reply), input(None)), Err(text));
    }
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<SimulateRoute>();
    testing::check_manifest::<SimulateRoute>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"model":{"type":"string","description":"Target model for simulation"},"promptTokenEstimate":{"type":"number","description":"Estimated prompt token count"},"combo":{"description":"Specific combo to simulate (default: active combo)","type":"string"}},"required":["model","promptTokenEstimate"]}"#
    );
    assert_eq!(
        desc["description"],
        "Simulates the routing path a request would take without executing it (dry-run)"
    );
    assert_eq!(desc["annotations"]["readOnlyHint"], true);
    assert_eq!(desc["scopes"], json!(["read:health", "read:combos"]));
}
