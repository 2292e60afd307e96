use omniroute_tool_sdk::Method;
use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures};
use serde_json::{Value, json};

use super::*;

const CODING_FAST: &str = "c9df3fce-0dd7-4438-a4e7-8f10fde6b078";
const FREE_TIER: &str = "60778c51-9485-4f7a-bedb-513010a8e882";

fn gateway() -> FakeGateway {
    FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED))
        .on_get(HEALTH, Reply::json(200, fixtures::HEALTH_POPULATED))
        .with_provider_maps()
        .on_get(ANALYTICS, Reply::json(200, fixtures::USAGE_ANALYTICS_1D))
        .on_get(COMBO_METRICS, Reply::json(200, fixtures::COMBO_METRICS_ALL))
        .on_get(
            super::COMBO_HEALTH,
            Reply::json(200, fixtures::COMBO_HEALTH_24H),
        )
}

fn run(gw: FakeGateway, input: Value) -> Result<Value, String> {
    FakeHost::new(gw).call::<BestComboForTask>(input)
}

fn combos(list: Value) -> Reply {
    Reply::json(200, json!({ "combos": list }).to_string())
}

#[test]
fn contract_example_coding_without_constraints() {
    let h = FakeHost::new(gateway());
    let out = h
        .call::<BestComboForTask>(json!({ "taskType": "coding" }))
        .unwrap();
    let expected = json!({
        "recommendedCombo": { "id": CODING_FAST, "name": "coding-fast", "reason": "Best match for \"coding\": preferred providers (claude, deepseek, codex)" },
        "alternatives": [{ "id": FREE_TIER, "name": "free-tier", "tradeoff": "free but may have limits" }],
        "freeAlternative": { "id": FREE_TIER, "name": "free-tier" },
        "excluded": [],
        "degraded": []
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
    // Only combos, health and the alias maps were read, in one batch.
    assert_eq!(h.gateway.batches(), vec![4]);
}

#[test]
fn contract_example_latency_constraint_500() {
    let h = FakeHost::new(gateway());
    let out = h
        .call::<BestComboForTask>(json!({ "taskType": "coding", "latencyConstraint": 500 }))
        .unwrap();
    let expected = json!({
        "recommendedCombo": { "id": FREE_TIER, "name": "free-tier", "reason": "Best match for \"coding\": preferred providers (claude, deepseek, codex); latencyConstraint 500 ms: applied to 1 combo(s), not evaluated for 1 (no latency data)" },
        "alternatives": [],
        "freeAlternative": null,
        "excluded": [{ "id": CODING_FAST, "name": "coding-fast", "reason": "avg latency 1341 ms > 500 ms" }],
        "degraded": []
    });
    assert_eq!(out, expected);
    let reqs = h.gateway.requests();
    let health_req = reqs.iter().find(|r| r.path == super::COMBO_HEALTH).unwrap();
    assert_eq!(
        health_req.query,
        vec![("range".to_string(), "24h".to_string())]
    );
}

#[test]
fn latency_falls_back_to_combo_health() {
    // No in-memory metrics (gateway restarted): coding-fast's 24 h targets,
    // (8 × 118 + 2 × 102) / 10 = 114.8 ms.
    let gw = gateway().on_get(COMBO_METRICS, Reply::json(200, r#"{"metrics":{}}"#));
    let out = run(
        gw,
        json!({ "taskType": "coding", "latencyConstraint": 100 }),
    );
    let out = out.unwrap();
    assert_eq!(out["recommendedCombo"]["name"], "free-tier");
    assert_eq!(
        out["excluded"][0]["reason"],
        "avg latency 114.8 ms > 100 ms"
    );
    // Within the limit: applied, kept.
    let gw = gateway().on_get(COMBO_METRICS, Reply::json(200, r#"{"metrics":{}}"#));
    let out = run(
        gw,
        json!({ "taskType": "coding", "latencyConstraint": 200 }),
    )
    .unwrap();
    assert_eq!(out["recommendedCombo"]["name"], "coding-fast");
    assert!(out["recommendedCombo"]["reason"].as_str().unwrap().ends_with(
        "; latencyConstraint 200 ms: applied to 1 combo(s), not evaluated for 1 (no latency data)"
    ));
}

#[test]
fn budget_constraint_uses_analytics_cost_per_request() {
    // The fixture's costs are 0 (custom nodes have no prices): applied to both.
    let out = run(
        gateway(),
        json!({ "taskType": "coding", "budgetConstraint": 0.001 }),
    )
    .unwrap();
    assert_eq!(out["excluded"], json!([]));
    assert!(out["recommendedCombo"]["reason"].as_str().unwrap().ends_with(
        "; budgetConstraint 0.001 USD: applied to 2 combo(s), not evaluated for 0 (no cost data)"
    ));
    // mock-large at 0.03 USD over 3 requests: 0.01 per request.
    let mut analytics: Value = serde_json::from_str(fixtures::USAGE_ANALYTICS_1D).unwrap();
    analytics["byModel"][1]["cost"] = json!(0.03);
    let gw = gateway().on_get(ANALYTICS, Reply::json(200, analytics.to_string()));
    let out = run(
        gw,
        json!({ "taskType": "coding", "budgetConstraint": 0.001 }),
    )
    .unwrap();
    assert_eq!(
        out["excluded"],
        json!([{ "id": FREE_TIER, "name": "free-tier", "reason": "expected cost 0.01 USD > 0.001 USD" }])
    );
    assert_eq!(out["freeAlternative"], Value::Null);
    // No traffic: not evaluated.
    let gw = gateway().on_get(ANALYTICS, Reply::json(200, fixtures::USAGE_ANALYTICS_FRESH));
    let out = run(
        gw,
        json!({ "taskType": "coding", "budgetConstraint": 0.001 }),
    )
    .unwrap();
    assert!(
        out["recommendedCombo"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("applied to 0 combo(s), not evaluated for 2 (no cost data)")
    );
}

#[test]
fn all_breakers_open_skips_every_combo() {
    let gw = gateway().on_get(HEALTH, Reply::json(200, fixtures::HEALTH_OPEN_BREAKERS));
    assert_eq!(
        run(gw, json!({ "taskType": "coding" })),
        Err("No enabled combo satisfies the constraints: coding-fast: all providers' breakers OPEN (mock); free-tier: all providers' breakers OPEN (mock)".into())
    );
}

#[test]
fn open_steps_are_ignored_in_scoring() {
    let list = json!([
        { "id": "a", "name": "claude-first", "models": [
            { "kind": "model", "model": "mock/mock-small", "providerId": "mock" },
            { "kind": "model", "model": "claude/claude-sonnet-4-6", "providerId": "claude" }
        ] },
        { "id": "b", "name": "coding-fast", "models": [{ "kind": "model", "model": "mock/mock-small", "providerId": "mock" }] },
        { "id": "c", "name": "deep", "models": [{ "kind": "model", "model": "deepseek/x", "providerId": "deepseek" }] }
    ]);
    let gw = gateway()
        .on_get(COMBOS, combos(list))
        .on_get(HEALTH, Reply::json(200, fixtures::HEALTH_OPEN_BREAKERS));
    let out = run(gw, json!({ "taskType": "coding" })).unwrap();
    assert_eq!(
        out["recommendedCombo"]["name"], "claude-first",
        "claude: 30"
    );
    assert_eq!(
        out["recommendedCombo"]["reason"],
        "Best match for \"coding\": preferred providers (claude, deepseek, codex); skipped 1 combo(s) with all provider breakers OPEN: coding-fast; OPEN providers ignored in scoring: mock"
    );
    assert_eq!(
        out["alternatives"],
        json!([{ "id": "c", "name": "deep", "tradeoff": "similar quality, different providers" }])
    );
    assert_eq!(
        out["excluded"],
        json!([{ "id": "b", "name": "coding-fast", "reason": "all providers' breakers OPEN (mock)" }])
    );
    // Without the breakers, "claude-first" and "coding-fast" (trait fast).
    let out = run(gateway().on_get(COMBOS, combos(json!([
        { "id": "a", "name": "slow", "models": [{ "model": "gemini/x", "providerId": "gemini" }] },
        { "id": "b", "name": "reviewer", "models": [{ "model": "claude/x", "providerId": "claude" }, { "model": "openai/x", "providerId": "openai" }] },
        { "id": "c", "name": "thorough-free", "models": [{ "model": "free/x", "providerId": "free" }] },
        { "id": "d", "name": "plain", "models": [{ "model": "x/y", "providerId": "x" }] },
        { "id": "e", "name": "off", "isActive": false, "models": [{ "model": "claude/x", "providerId": "claude" }] }
    ]))), json!({ "taskType": "review" })).unwrap();
    // reviewer 30 + 10, slow 20, thorough-free 5 (free), plain 0.
    assert_eq!(out["recommendedCombo"]["name"], "reviewer");
    assert_eq!(
        out["alternatives"],
        json!([
            { "id": "a", "name": "slow", "tradeoff": "similar quality, different providers" },
            { "id": "c", "name": "thorough-free", "tradeoff": "free but may have limits" },
            { "id": "d", "name": "plain", "tradeoff": "cheaper but slower" }
        ])
    );
    assert_eq!(
        out["freeAlternative"],
        json!({ "id": "c", "name": "thorough-free" })
    );
}

#[test]
fn health_unavailable_is_said() {
    let gw = gateway().on_get(HEALTH, Reply::unreachable("refused"));
    let out = run(gw, json!({ "taskType": "coding" })).unwrap();
    assert_eq!(out["recommendedCombo"]["name"], "coding-fast");
    assert!(
        out["recommendedCombo"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("; health unavailable: breakers not checked")
    );
    assert_eq!(out["degraded"][0]["source"], "GET /api/monitoring/health");
    // Failed constraint sources: degraded, and the check is not evaluated.
    let gw = gateway()
        .on_get(COMBO_METRICS, Reply::json(500, "{}"))
        .on_get(super::COMBO_HEALTH, Reply::json(500, "{}"));
    let out = run(gw, json!({ "taskType": "coding", "latencyConstraint": 1 })).unwrap();
    assert_eq!(out["degraded"].as_array().unwrap().len(), 2);
    assert!(
        out["recommendedCombo"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("applied to 0 combo(s), not evaluated for 2 (no latency data)")
    );
}

#[test]
fn no_enabled_combos_and_combo_failures() {
    let gw = gateway().on_get(
        COMBOS,
        combos(json!([{ "id": "x", "name": "x", "isActive": false }])),
    );
    assert_eq!(
        run(gw, json!({ "taskType": "coding" })),
        Err("No enabled combos available".into())
    );
    for (reply, text) in gateway_failures(Method::Get, COMBOS) {
        assert_eq!(
            run(
                gateway().on_get(COMBOS, reply),
                json!({ "taskType": "coding" })
            ),
            Err(text)
        );
    }
}

#[test]
fn scoring_rules() {
    let step = |p: &str| ComboModel {
        provider: Some(p.into()),
        model: Some(format!("{p}/m")),
    };
    let (claude, codex, free) = (step("claude"), step("codex"), step("free-x"));
    assert_eq!(
        fitness_score("coding", Some("Coding-FAST"), &[&claude, &codex]),
        45.0
    );
    assert_eq!(
        fitness_score("analysis", Some("deep-reasoning large-context"), &[]),
        10.0
    );
    assert!(is_free(Some("x"), &[]));
    assert!(is_free(Some("x"), &[&free]));
    assert!(!is_free(Some("x"), &[&free, &claude]));
    assert!(is_free(Some("Free-Tier"), &[&claude]));
    let unknown = ComboModel { provider: None, model: Some("m".into()) };
    assert!(!is_free(None, &[&unknown]), "a step without provider is not known to be free");
    assert_eq!(fitness_score("coding", None, &[&unknown]), 0.0);
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<BestComboForTask>();
    testing::check_manifest::<BestComboForTask>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"taskType":{"type":"string","enum":["coding","review","planning","analysis","debugging","documentation"],"description":"Type of task to find the best combo for"},"budgetConstraint":{"description":"Maximum cost in USD","type":"number"},"latencyConstraint":{"description":"Maximum acceptable latency in ms","type":"number"}},"required":["taskType"]}"#
    );
    assert_eq!(
        desc["description"],
        "Recommends the best combo for a task type based on provider fitness and constraints"
    );
}
