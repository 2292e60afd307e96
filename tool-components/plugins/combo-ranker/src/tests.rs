use omniroute_tool_sdk::Method;
use omniroute_tool_sdk::providers::{PRICING_MODELS, PROVIDER_NODES};
use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures};
use serde_json::{Value, json};

use super::*;

const CODING_FAST: &str = "c9df3fce-0dd7-4438-a4e7-8f10fde6b078";
const FREE_TIER: &str = "60778c51-9485-4f7a-bedb-513010a8e882";

/// The real 3.7.9 answers: two combos on the custom `mock` node, in-memory
/// metrics for coding-fast only, built-in prices only (none for `mock`).
fn gateway() -> FakeGateway {
    FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED))
        .on_get(COMBO_METRICS, Reply::json(200, fixtures::COMBO_METRICS_ALL))
        .on_get(COMBO_HEALTH, Reply::json(200, fixtures::COMBO_HEALTH_24H))
        .on_get(PRICING, Reply::json(200, fixtures::PRICING))
        .with_provider_maps()
}

fn run(gw: FakeGateway, input: Value) -> Result<Value, String> {
    FakeHost::new(gw).call::<RankCombos>(input)
}

fn names(out: &Value) -> Vec<&str> {
    out["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[test]
fn fixtures_rank_by_latency_and_say_prices_are_unknown() {
    let h = FakeHost::new(gateway());
    let out = h.call::<RankCombos>(json!({})).unwrap();
    let no_price = "price unknown: GET /api/pricing has no price for mock/mock-small (custom nodes have none until one is set in the dashboard)";
    let expected = json!({
        "weights": { "latency": 0.5, "price": 0.5 },
        "ranking": [
            { "rank": 1, "id": CODING_FAST, "name": "coding-fast", "strategy": "priority", "enabled": true,
              "score": 1, "scoreBasis": ["latency"], "latencyMs": 1341, "latencySource": "combo-metrics",
              "price": null, "priceBasis": null, "notes": [no_price] },
            { "rank": null, "id": FREE_TIER, "name": "free-tier", "strategy": "weighted", "enabled": true,
              "score": null, "scoreBasis": [], "latencyMs": null, "latencySource": null,
              "price": null, "priceBasis": null, "notes": [
                "latency unknown: no traffic in the in-memory combo metrics (reset when the gateway restarts) nor in the last 24 h of combo health",
                "price unknown: GET /api/pricing has no price for mock/mock-large (custom nodes have none until one is set in the dashboard)",
                "not ranked: no data for any criterion with a positive weight"
              ] }
        ],
        "notes": ["no combo has price data, so price did not affect the ranking"],
        "degraded": []
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
    // One concurrent batch, every request within read:combos, health over 24 h.
    assert_eq!(h.gateway.batches(), vec![6]);
    let reqs = h.gateway.requests();
    let health = reqs.iter().find(|r| r.path == COMBO_HEALTH).unwrap();
    assert_eq!(health.query, vec![("range".to_string(), "24h".to_string())]);
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            COMBOS,
            COMBO_METRICS,
            COMBO_HEALTH,
            PRICING,
            PROVIDER_NODES,
            PRICING_MODELS
        ]
    );
}

#[test]
fn latency_falls_back_to_24h_combo_health_after_a_restart() {
    let gw = gateway().on_get(COMBO_METRICS, Reply::json(200, r#"{"metrics":{}}"#));
    let out = run(gw, json!({ "latencyWeight": 1, "priceWeight": 0 })).unwrap();
    let first = &out["ranking"][0];
    assert_eq!(first["name"], "coding-fast");
    // (8 × 118 + 2 × 102) / 10 requests.
    assert_eq!(first["latencyMs"], json!(114.8));
    assert_eq!(first["latencySource"], "combo-health");
    // Price weight 0: no note about missing prices affecting the ranking.
    assert_eq!(out["notes"], json!([]));
    assert_eq!(out["ranking"][1]["latencyMs"], Value::Null);
}

#[test]
fn user_prices_on_the_custom_node_change_the_order() {
    // Prices set in the dashboard for the mock node (under its node id).
    let mut pricing: Value = serde_json::from_str(fixtures::PRICING).unwrap();
    pricing[fixtures::NODE_9BF] = json!({
        "mock-small": { "input": 3, "output": 15 },
        "mock-large": { "input": 0.5, "output": 1.5 },
    });
    let gw = || gateway().on_get(PRICING, Reply::json(200, pricing.to_string()));
    // Price only: free-tier (weighted, one step at 2 USD) beats coding-fast
    // (priority: its first step, mock-small at 18 USD).
    let out = run(gw(), json!({ "latencyWeight": 0, "priceWeight": 1 })).unwrap();
    assert_eq!(names(&out), ["free-tier", "coding-fast"]);
    let brief = |i: usize| {
        let e = &out["ranking"][i];
        json!([e["rank"], e["score"], e["price"], e["priceBasis"]])
    };
    assert_eq!(
        brief(0),
        json!([1, 1, { "inputPerMillion": 0.5, "outputPerMillion": 1.5 }, "weighted mean of steps"])
    );
    assert_eq!(
        brief(1),
        json!([2, 0, { "inputPerMillion": 3, "outputPerMillion": 15 }, "first step"])
    );
    // Latency only: coding-fast is the only one measured.
    let out = run(gw(), json!({ "latencyWeight": 1, "priceWeight": 0 })).unwrap();
    assert_eq!(names(&out), ["coding-fast", "free-tier"]);
    assert_eq!(out["ranking"][1]["rank"], Value::Null);
    assert_eq!(
        out["ranking"][1]["price"]["outputPerMillion"],
        json!(1.5),
        "still shown"
    );
}

#[test]
fn weighted_scores_over_built_in_prices_and_strategies() {
    let combos = json!({ "combos": [
        { "id": "b", "name": "slow-cheap", "strategy": "priority", "models": ["openai/gpt-4o", "cc/claude-opus-4-7"] },
        { "id": "c", "name": "mid", "strategy": "weighted", "models": [
            { "kind": "model", "model": "cc/claude-sonnet-4-6", "providerId": "cc", "weight": 3 },
            { "kind": "model", "model": "openai/gpt-4o", "providerId": "openai", "weight": 1 }
        ] },
        { "id": "a", "name": "fast-dear", "strategy": "priority", "models": [{ "kind": "model", "model": "cc/claude-opus-4-7", "providerId": "cc" }] },
        { "id": "d", "name": "nested", "strategy": "round-robin", "models": [{ "kind": "combo-ref", "comboName": "mid" }] },
        { "id": "e", "name": "off", "isActive": false, "models": ["openai/gpt-4o"] }
    ] });
    let metric = |ms: f64| json!({ "totalRequests": 4, "avgLatencyMs": ms });
    let metrics = json!({ "metrics": {
        "fast-dear": metric(100.0), "slow-cheap": metric(500.0), "mid": metric(300.0), "off": metric(50.0)
    } });
    let gw = || {
        gateway()
            .on_get(COMBOS, Reply::json(200, combos.to_string()))
            .on_get(COMBO_METRICS, Reply::json(200, metrics.to_string()))
    };
    let out = run(gw(), json!({ "latencyWeight": 3, "priceWeight": 1 })).unwrap();
    // Latency 100..500 ms: fast-dear 1, mid 0.5, slow-cheap 0.
    // Unit price (input + output): fast-dear 30, slow-cheap 12.5 (first step
    // only), mid (3 × 18 + 12.5) / 4 = 16.625 -> (30 − 16.625) / 17.5.
    // Scores: fast-dear 3/4, mid (1.5 + 0.764286)/4, slow-cheap 1/4.
    assert_eq!(names(&out), ["fast-dear", "mid", "slow-cheap", "nested"]);
    let scores: Vec<&Value> = out["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["score"])
        .collect();
    assert_eq!(
        scores,
        [&json!(0.75), &json!(0.5661), &json!(0.25), &Value::Null]
    );
    assert_eq!(
        out["ranking"][1]["price"],
        json!({ "inputPerMillion": 2.875, "outputPerMillion": 13.75 })
    );
    assert_eq!(out["ranking"][2]["price"]["inputPerMillion"], json!(2.5));
    let nested = &out["ranking"][3];
    assert_eq!(nested["rank"], Value::Null);
    assert_eq!(
        nested["notes"][1],
        "price unknown: GET /api/pricing has no price for mid (a combo reference) (custom nodes have none until one is set in the dashboard)"
    );
    // Switched-off combos only on request; "off" is then the fastest.
    let out = run(
        gw(),
        json!({ "latencyWeight": 1, "priceWeight": 0, "includeDisabled": true }),
    )
    .unwrap();
    assert_eq!(out["ranking"][0]["name"], "off");
    assert_eq!(out["ranking"][0]["enabled"], false);
}

#[test]
fn failed_sources_are_degraded_and_never_filled_in() {
    let gw = gateway()
        .on_get(COMBO_METRICS, Reply::json(500, r#"{"error":"boom"}"#))
        .on_get(COMBO_HEALTH, Reply::unreachable("connection refused"))
        .on_get(PRICING, Reply::json(503, "{}"));
    let out = run(gw, json!({})).unwrap();
    assert_eq!(
        testing::degraded_sources(&out),
        [
            "GET /api/combos/metrics",
            "GET /api/usage/combo-health",
            "GET /api/pricing"
        ]
    );
    for entry in out["ranking"].as_array().unwrap() {
        assert_eq!(
            (
                &entry["rank"],
                &entry["score"],
                &entry["latencyMs"],
                &entry["price"]
            ),
            (&Value::Null, &Value::Null, &Value::Null, &Value::Null)
        );
        assert_eq!(
            entry["notes"],
            json!([
                "latency unknown: both latency sources failed (see degraded)",
                "price unknown: GET /api/pricing failed (see degraded)",
                "not ranked: no data for any criterion with a positive weight"
            ])
        );
    }
    assert_eq!(out["notes"].as_array().unwrap().len(), 2);
}

#[test]
fn weights_are_checked_with_a_way_forward() {
    let err = |input: Value| run(gateway(), input).unwrap_err();
    assert_eq!(
        err(json!({ "latencyWeight": -1 })),
        "Invalid input: latencyWeight must be a number >= 0 (0 ignores that criterion), got -1"
    );
    assert_eq!(
        err(json!({ "priceWeight": "high" })),
        "Invalid input: priceWeight must be a number >= 0 (0 ignores that criterion), got \"high\""
    );
    assert!(
        err(json!({ "latencyWeight": 0, "priceWeight": 0 })).starts_with(
            "Invalid input: latencyWeight and priceWeight are both 0; give at least one"
        )
    );
}

#[test]
fn combo_list_failures_and_no_combos() {
    for (reply, text) in gateway_failures(Method::Get, COMBOS) {
        assert_eq!(run(gateway().on_get(COMBOS, reply), json!({})), Err(text));
    }
    let off = Reply::json(
        200,
        r#"{"combos":[{"id":"x","name":"x","isActive":false}]}"#,
    );
    assert_eq!(
        run(gateway().on_get(COMBOS, off), json!({})),
        Err("No enabled combos; call again with {\"includeDisabled\": true} to rank switched-off combos too".into())
    );
    assert_eq!(
        run(
            gateway().on_get(COMBOS, Reply::json(200, r#"{"combos":[]}"#)),
            json!({ "includeDisabled": true })
        ),
        Err("The gateway has no combos; create one in the OmniRoute dashboard first".into())
    );
}

#[test]
fn normalisation() {
    assert_eq!(normalised(100.0, (100.0, 500.0)), 1.0);
    assert_eq!(normalised(500.0, (100.0, 500.0)), 0.0);
    assert_eq!(normalised(300.0, (100.0, 500.0)), 0.5);
    assert_eq!(normalised(7.0, (7.0, 7.0)), 1.0);
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<RankCombos>();
    testing::check_manifest::<RankCombos>(include_str!("../tool.toml"));
    assert_eq!(desc["scopes"], json!(["read:combos"]));
    assert!(
        !desc["name"].as_str().unwrap().starts_with("omniroute_"),
        "reserved prefix"
    );
}
