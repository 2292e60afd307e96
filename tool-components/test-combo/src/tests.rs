use omniroute_tool_sdk::completion::headers;
use omniroute_tool_testing::fixtures::NODE_1F2;
use omniroute_tool_testing::{
    self as testing, FakeGateway, FakeHost, MemorySession, Reply, fixtures, gateway_failures, keys,
    ledger_entry,
};
use omniroute_tool_sdk::{GatewayError, Method};
use serde_json::{Value, json};

use super::*;

fn small() -> Reply {
    Reply::capture(fixtures::CHAT_COMPLETION_PRICED).elapsed(80)
}

fn large() -> Reply {
    Reply::capture(fixtures::CHAT_COMPLETION_COMBO)
        .header(headers::MODEL, "mock-large")
        .elapsed(45)
}

fn gateway(small: Reply, large: Reply) -> FakeGateway {
    FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED))
        .on_body(Method::Post, COMPLETIONS, "model", "mock/mock-small", small)
        .on_body(Method::Post, COMPLETIONS, "model", "mock/mock-large", large)
}

fn run(host: &FakeHost, combo: &str) -> Result<Value, String> {
    host.call::<TestCombo>(json!({ "comboId": combo, "testPrompt": "hi" }))
}

fn posts(host: &FakeHost) -> Vec<Value> {
    host.gateway
        .requests()
        .iter()
        .filter(|r| r.method == Method::Post)
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap())
        .collect()
}

fn guarded(action: &str, max_cost: f64, spent: f64) -> MemorySession {
    MemorySession::new()
        .with_ledger(&json!([ledger_entry(json!({ "requestId": "r0", "cost": spent, "success": true }))]))
        .with_guard(&json!({ "sessionId": "budget_1", "maxCost": max_cost, "action": action, "createdAt": "2026-11-25T23:14:00.000Z" }))
}

#[test]
fn every_step_gets_a_real_completion() {
    let h = FakeHost::new(gateway(small(), large()));
    let out = run(&h, "coding-fast").unwrap();
    let expected = json!({
        "results": [
            { "provider": "mock", "model": "mock/mock-small", "success": true, "latencyMs": 80, "cost": 0.0000285, "tokenCount": 10, "requestId": "0a95b984-132a-4f78-a212-d46c7fff82ad" },
            { "provider": "mock", "model": "mock/mock-large", "success": true, "latencyMs": 45, "cost": 0, "tokenCount": 10, "requestId": "cdd3c4bd-b995-4f89-9cb1-8fca4b2adeb4" }
        ],
        "summary": { "totalProviders": 2, "successful": 2, "fastestProvider": "mock", "cheapestProvider": "mock", "totalCost": 0.0000285 }
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
    assert_eq!(
        h.gateway.labelled_batches(),
        vec![(
            vec![
                "mock mock/mock-small".to_string(),
                "mock mock/mock-large".to_string()
            ],
            4
        )]
    );
    assert_eq!(
        posts(&h)[0].to_string(),
        r#"{"model":"mock/mock-small","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"stream":false}"#
    );
    // Plain steps are not annotated: the host's ledger entry already says it all.
    assert_eq!(h.session.annotations(), vec![]);
}

#[test]
fn fastest_and_cheapest_among_different_providers() {
    let combos = json!({ "combos": [{ "id": "x1", "name": "trio", "models": ["a/m1", "b/m2", "c/m3", "d/m4"] }] });
    let ok = |cost: &str, ms: u32| {
        Reply::capture(fixtures::CHAT_COMPLETION_COMBO)
            .header(headers::COST, cost)
            .elapsed(ms)
    };
    let gw = FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, combos.to_string()))
        .on_body(
            Method::Post,
            COMPLETIONS,
            "model",
            "a/m1",
            ok("0.0000300000", 90),
        )
        .on_body(
            Method::Post,
            COMPLETIONS,
            "model",
            "b/m2",
            ok("0.0000100000", 300),
        )
        .on_body(
            Method::Post,
            COMPLETIONS,
            "model",
            "c/m3",
            ok("0.0000100000", 120),
        )
        .on_body(
            Method::Post,
            COMPLETIONS,
            "model",
            "d/m4",
            Reply::capture(fixtures::CHAT_ERROR_BREAKER_OPEN).elapsed(5),
        );
    let h = FakeHost::new(gw);
    let out = run(&h, "x1").unwrap();
    assert_eq!(
        out["summary"],
        json!({ "totalProviders": 4, "successful": 3, "fastestProvider": "a", "cheapestProvider": "c", "totalCost": 0.00005 })
    );
    assert_eq!(
        out["results"][3]["latencyMs"], 5,
        "the failed step was fast but does not count"
    );
}

#[test]
fn failed_steps_report_the_error() {
    let h = FakeHost::new(gateway(
        Reply::capture(fixtures::CHAT_ERROR_BREAKER_OPEN).elapsed(12),
        Reply::error(GatewayError::Timeout(120)),
    ));
    let out = run(&h, "coding-fast").unwrap();
    assert_eq!(
        out["results"][0],
        json!({
            "provider": "mock", "model": "mock/mock-small", "success": false, "latencyMs": 12, "cost": 0, "tokenCount": 0, "requestId": null,
            "error": format!(r#"OmniRoute API error [503]: {{"error":{{"message":"Provider {NODE_1F2} circuit breaker is open"}}}}"#)
        })
    );
    assert_eq!(out["results"][1]["latencyMs"], Value::Null);
    assert_eq!(
        out["results"][1]["error"],
        "OmniRoute API timeout after 120 s: POST /v1/chat/completions"
    );
    assert_eq!(
        out["summary"],
        json!({ "totalProviders": 2, "successful": 0, "fastestProvider": "none", "cheapestProvider": "none", "totalCost": 0 })
    );
    assert_eq!(keys(&out["results"][0]).last(), Some(&"error"));
}

#[test]
fn exceeded_guard_with_block_or_degrade_refuses_before_sending() {
    for action in ["block", "degrade"] {
        let h =
            FakeHost::new(gateway(small(), large())).with_session(guarded(action, 0.01, 0.0100285));
        assert_eq!(
            run(&h, "coding-fast"),
            Err(format!(
                "Budget guard blocked the request: session spend 0.0100285 USD reached the limit 0.01 USD (action={action})."
            ))
        );
        assert!(posts(&h).is_empty(), "nothing sent with {action}");
    }
    // Exactly at the limit is exceeded.
    let h = FakeHost::new(gateway(small(), large())).with_session(guarded("block", 0.5, 0.5));
    assert!(
        run(&h, "coding-fast")
            .unwrap_err()
            .starts_with("Budget guard blocked")
    );
}

#[test]
fn guard_not_exceeded_or_alert_sends_and_collects_host_warnings() {
    let h = FakeHost::new(gateway(small(), large())).with_session(guarded("block", 1.0, 0.5));
    assert!(run(&h, "coding-fast").unwrap().get("warnings").is_none());
    assert_eq!(posts(&h).len(), 2);

    let alert = "Budget guard alert: session spend 0.0100285 USD exceeds the limit 0.01 USD.";
    let h = FakeHost::new(gateway(
        small().header(headers::MCP_WARNING, alert),
        large().header(headers::MCP_WARNING, alert),
    ))
    .with_session(guarded("alert", 0.01, 0.0100285));
    let out = run(&h, "coding-fast").unwrap();
    assert_eq!(out["warnings"], json!([alert]), "de-duplicated");
    assert_eq!(keys(&out), ["results", "summary", "warnings"]);
}

#[test]
fn host_refusal_of_one_step_is_that_step_s_error() {
    let text = "Budget guard blocked the request: session spend 0.02 USD reached the limit 0.01 USD (action=block).";
    let h = FakeHost::new(gateway(
        small(),
        Reply::error(GatewayError::Refused(text.into())),
    ));
    let out = run(&h, "coding-fast").unwrap();
    assert_eq!(out["results"][1]["error"], text);
    assert_eq!(out["summary"]["successful"], 1);
}

#[test]
fn string_and_combo_ref_steps() {
    let combos = json!({ "combos": [
        { "id": "m1", "name": "mixed", "models": ["mock/mock-small", { "kind": "combo-ref", "comboName": "free-tier" }] }
    ] });
    let gw = FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, combos.to_string()))
        .on_body(
            Method::Post,
            COMPLETIONS,
            "model",
            "mock/mock-small",
            small(),
        )
        .on_body(Method::Post, COMPLETIONS, "model", "free-tier", large());
    let h = FakeHost::new(gw);
    let out = run(&h, "mixed").unwrap();
    assert_eq!(out["results"][1]["provider"], "combo");
    assert_eq!(out["results"][1]["model"], "free-tier");
    assert_eq!(posts(&h)[1]["model"], "free-tier");
    assert_eq!(h.gateway.labelled_batches()[0].0[1], "combo free-tier");
    assert_eq!(
        h.session.last_annotation_json().unwrap(),
        json!({ "requestId": "cdd3c4bd-b995-4f89-9cb1-8fca4b2adeb4", "combo": "free-tier", "role": null, "fallbacksTriggered": null, "degradedFrom": null })
    );
}

/// A step without a model is not sent as `""`: it fails on its own, and a
/// bare model (no provider) is sent with its provider left null.
#[test]
fn steps_without_model_or_provider() {
    let combos = json!({ "combos": [
        { "id": "m1", "name": "odd", "models": [{}, "mock/mock-small", "gpt-4o"] }
    ] });
    let gw = FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, combos.to_string()))
        .on_body(Method::Post, COMPLETIONS, "model", "mock/mock-small", small())
        .on_body(Method::Post, COMPLETIONS, "model", "gpt-4o", large());
    let h = FakeHost::new(gw);
    let out = run(&h, "odd").unwrap();
    assert_eq!(
        out["results"][0],
        json!({ "provider": null, "model": null, "success": false, "latencyMs": null, "cost": 0, "tokenCount": 0,
                "requestId": null, "error": "the step names no model to send" })
    );
    assert_eq!(out["results"][1]["success"], true);
    assert_eq!(out["results"][2]["provider"], Value::Null);
    assert_eq!(out["results"][2]["model"], "gpt-4o");
    assert_eq!(posts(&h).len(), 2, "nothing sent for the step without a model");
    assert_eq!(h.gateway.labelled_batches()[0].0, ["mock mock/mock-small", "gpt-4o"]);
    assert_eq!(out["summary"]["totalProviders"], 3);
}

#[test]
fn prompt_rule() {
    assert_eq!(prompt_of(""), "Say hello");
    assert_eq!(prompt_of(&"é".repeat(500)).chars().count(), 200);
    let h = FakeHost::new(gateway(small(), large()));
    h.call::<TestCombo>(json!({ "comboId": "coding-fast", "testPrompt": "" }))
        .unwrap();
    assert_eq!(posts(&h)[0]["messages"][0]["content"], "Say hello");
}

#[test]
fn unknown_combo_and_combo_list_failures() {
    let h = FakeHost::new(gateway(small(), large()));
    assert_eq!(run(&h, "nope"), Err("Combo not found: \"nope\"".into()));
    assert!(posts(&h).is_empty());
    for (reply, text) in gateway_failures(Method::Get, COMBOS) {
        let h = FakeHost::new(gateway(small(), large()).on_get(COMBOS, reply));
        assert_eq!(run(&h, "coding-fast"), Err(text));
    }
    // By id works too.
    let h = FakeHost::new(gateway(small(), large()));
    let out = run(&h, "60778c51-9485-4f7a-bedb-513010a8e882").unwrap();
    assert_eq!(out["results"].as_array().unwrap().len(), 1);
}

#[test]
fn combo_without_steps_sends_nothing() {
    let combos = json!({ "combos": [{ "id": "e", "name": "empty", "models": [] }] });
    let h = FakeHost::new(FakeGateway::new().on_get(COMBOS, Reply::json(200, combos.to_string())));
    let out = run(&h, "empty").unwrap();
    assert_eq!(out["results"], json!([]));
    assert_eq!(out["summary"]["fastestProvider"], "none");
    assert!(h.gateway.labelled_batches().is_empty());
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<TestCombo>();
    testing::check_manifest::<TestCombo>(include_str!("../tool.toml"));
    assert_eq!(
        testing::input_schema_without_session_id(&desc),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"comboId":{"type":"string","description":"ID of the combo to test"},"testPrompt":{"type":"string","maxLength":500,"description":"Short test prompt (max 500 chars)"}},"required":["comboId","testPrompt"]}"#
    );
    assert_eq!(
        desc["description"],
        format!("Tests each provider in a combo with a real prompt, reporting latency, cost, and success per provider.{}", schema::SESSION_ID_HINT)
    );
    assert_eq!(desc["annotations"]["openWorldHint"], true);
}
