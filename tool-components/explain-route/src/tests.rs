use omniroute_tool_testing::fixtures::NODE_9BF;
use omniroute_tool_testing::{
    self as testing, FakeGateway, FakeHost, MemorySession, Reply, fixtures, keys,
};
use omniroute_tool_sdk::{GatewayError, Session};
use serde_json::{Value, json};

use super::*;

/// x-request-id of chat-completion-combo.json.
const REQ_ID: &str = "cdd3c4bd-b995-4f89-9cb1-8fca4b2adeb4";
/// Call-log id of call-log-detail.json.
const LOG_ID: &str = "8e9546dd-8ce4-45ff-bf43-10cc78859746";

fn html_404() -> Reply {
    Reply::status(
        404,
        format!("<!DOCTYPE html><html>{}</html>", "x".repeat(5000)),
    )
}

fn gateway() -> FakeGateway {
    FakeGateway::new()
        .on_get(HEALTH, Reply::json(200, fixtures::HEALTH_POPULATED))
        .on_get(QUOTA, Reply::json(200, fixtures::USAGE_QUOTA))
        .with_provider_maps()
        .on_get(&format!("{DECISIONS}/{REQ_ID}"), html_404())
        .on_get(&format!("{DECISIONS}/{LOG_ID}"), html_404())
        .on_get(
            &format!("{CALL_LOGS}/{REQ_ID}"),
            Reply::json(404, fixtures::CALL_LOG_BY_REQUEST_ID_404),
        )
        .on_get(
            &format!("{CALL_LOGS}/{LOG_ID}"),
            Reply::json(200, fixtures::CALL_LOG_DETAIL),
        )
        .on_get(CALL_LOGS, Reply::json(200, fixtures::CALL_LOGS))
        .on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED))
        .on_get(PRICING, Reply::json(200, fixtures::PRICING))
        .on_get(
            COMBO_METRICS,
            Reply::json(200, fixtures::COMBO_METRICS_CODING_FAST),
        )
}

/// The ledger entry the host recorded for chat-completion-combo.json, sent
/// with role "coding".
fn ledger_entry() -> Value {
    json!({
        "requestId": REQ_ID, "sentAt": "2026-11-25T23:11:06.950Z", "receivedAt": "2026-11-25T23:11:06.992Z",
        "origin": "route_request", "requestedModel": "coding-fast", "combo": "coding-fast", "role": "coding",
        "status": 200, "success": true, "provider": NODE_9BF, "model": "mock-small", "cost": 0,
        "tokensIn": 7, "tokensOut": 3, "latencyMs": 29, "cache": "MISS", "fallbacksTriggered": 0,
        "degradedFrom": null, "error": null
    })
}

fn host_with(gw: FakeGateway, entry: Option<Value>) -> FakeHost {
    let mut session = MemorySession::new();
    if let Some(e) = entry {
        session = session.with_request(&e);
    }
    FakeHost::new(gw).with_session(session)
}

fn run(h: &FakeHost, id: &str) -> Value {
    h.call::<ExplainRoute>(json!({ "requestId": id })).unwrap()
}

fn paths(h: &FakeHost) -> Vec<String> {
    h.gateway
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect()
}

/// A failed earlier attempt of the same combo request.
fn failed_row(at: &str) -> Value {
    json!({ "id": "f1", "timestamp": at, "status": 502, "model": "mock-large", "requestedModel": "mock/mock-large",
            "provider": NODE_9BF, "duration": 40, "comboName": "coding-fast", "error": "Stream ended before producing useful content" })
}

fn logs_with(extra: Vec<Value>) -> Reply {
    let mut rows: Vec<Value> = serde_json::from_str(fixtures::CALL_LOGS).unwrap();
    rows.extend(extra);
    Reply::json(200, Value::Array(rows).to_string())
}

#[test]
fn nothing_found_on_3_7_9() {
    let h = host_with(gateway(), None);
    let out = run(&h, "0a95b984-132a-4f78-a212-d46c7fff82ad");
    let expected = json!({
        "requestId": "0a95b984-132a-4f78-a212-d46c7fff82ad",
        "source": null,
        "decision": { "comboUsed": null, "providerSelected": null, "modelUsed": null, "score": null, "factors": [], "fallbacksTriggered": null, "costActual": null, "latencyActual": null },
        "degraded": [
            { "source": "GET /api/routing/decisions/0a95b984-132a-4f78-a212-d46c7fff82ad", "error": "Invalid gateway request: FakeGateway has no reply for GET /api/routing/decisions/0a95b984-132a-4f78-a212-d46c7fff82ad" },
            { "source": "GET /api/usage/call-logs/0a95b984-132a-4f78-a212-d46c7fff82ad", "error": "Invalid gateway request: FakeGateway has no reply for GET /api/usage/call-logs/0a95b984-132a-4f78-a212-d46c7fff82ad" }
        ],
        "note": NOT_FOUND_NOTE
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );

    // With the gateway's real answers (404 HTML, 404 Log not found): no degraded.
    let h = host_with(gateway(), None);
    let out = run(&h, REQ_ID);
    assert_eq!(out["source"], Value::Null);
    assert_eq!(out["degraded"], json!([]));
    assert_eq!(
        keys(&out),
        ["requestId", "source", "decision", "degraded", "note"]
    );
}

#[test]
fn decision_route_is_remembered_missing_per_gateway_version() {
    let h = host_with(gateway(), None);
    run(&h, REQ_ID);
    assert_eq!(
        h.session.get_json(DECISIONS_MISSING_KEY),
        Some(json!({ "version": "3.7.9" }))
    );
    run(&h, REQ_ID);
    let decision_reads = paths(&h)
        .iter()
        .filter(|p| p.starts_with(DECISIONS))
        .count();
    assert_eq!(decision_reads, 1, "not asked again for 3.7.9");
    // Another version: asked again.
    let mut health: Value = serde_json::from_str(fixtures::HEALTH_POPULATED).unwrap();
    health["version"] = json!("3.8.0");
    let h2 = FakeHost::new(gateway().on_get(HEALTH, Reply::json(200, health.to_string())))
        .with_session(MemorySession::new().with(DECISIONS_MISSING_KEY, r#"{"version":"3.7.9"}"#));
    run(&h2, REQ_ID);
    assert_eq!(
        paths(&h2)
            .iter()
            .filter(|p| p.starts_with(DECISIONS))
            .count(),
        1
    );
    // A non-JSON 200 and a too-large answer also mean missing.
    for reply in [
        Reply::status(200, "<html></html>"),
        Reply::error(GatewayError::TooLarge),
    ] {
        let h = host_with(
            gateway().on_get(&format!("{DECISIONS}/{REQ_ID}"), reply),
            None,
        );
        assert_eq!(run(&h, REQ_ID)["degraded"], json!([]));
        assert!(h.session.get(DECISIONS_MISSING_KEY).is_some());
    }
}

#[test]
fn gateway_decisions_are_mapped_without_invented_defaults() {
    let d = json!({ "comboUsed": "coding-fast", "providerSelected": "mock", "score": 0.9, "factors": [{ "name": "health" }] });
    let gw = gateway().on_get(
        &format!("{DECISIONS}/{REQ_ID}"),
        Reply::json(200, d.to_string()),
    );
    let h = host_with(gw, Some(ledger_entry()));
    let out = run(&h, REQ_ID);
    assert_eq!(
        out,
        json!({
            "requestId": REQ_ID, "source": "gateway_decisions",
            "decision": { "comboUsed": "coding-fast", "providerSelected": "mock", "modelUsed": null, "score": 0.9,
                          "factors": [{ "name": "health" }], "fallbacksTriggered": null, "costActual": null, "latencyActual": null },
            "degraded": [
                { "source": format!("GET {DECISIONS}/{REQ_ID}"), "error": "the answer has no `modelUsed`; decision.modelUsed is null" },
                { "source": format!("GET {DECISIONS}/{REQ_ID}"), "error": "the answer has no `fallbacksTriggered` list; decision.fallbacksTriggered is null" }
            ]
        })
    );
    let mut degraded = Degraded::new();
    assert_eq!(
        map_gateway_decision(&json!({ "factors": "x" }), "GET /d", &mut degraded)["factors"],
        Value::Null,
        "a list the gateway did not send is unknown, not empty"
    );
    assert_eq!(degraded.len(), 4, "provider, model and both lists named");
}

#[test]
fn ledger_hit_enriched_from_call_logs() {
    let gw = gateway().on_get(CALL_LOGS, logs_with(vec![
        failed_row("2026-11-25T23:11:06.960Z"),
        // Outside the window, and another combo whose name contains this one.
        failed_row("2026-11-25T23:10:00.000Z"),
        json!({ "timestamp": "2026-11-25T23:11:06.970Z", "status": 500, "comboName": "coding-fast-2", "provider": "x", "model": "y" }),
    ]));
    let h = host_with(gw, Some(ledger_entry()));
    let out = run(&h, REQ_ID);
    assert_eq!(out["source"], "host_ledger+call_logs");
    assert_eq!(out["scoreBasis"], SCORE_BASIS);
    let d = &out["decision"];
    assert_eq!(d["comboUsed"], "coding-fast");
    assert_eq!(d["providerSelected"], NODE_9BF);
    assert_eq!(d["modelUsed"], "mock-small");
    assert_eq!(
        d["fallbacksTriggered"],
        json!([{ "provider": NODE_9BF, "model": "mock-large", "reason": "Stream ended before producing useful content", "status": 502, "at": "2026-11-25T23:11:06.960Z" }])
    );
    assert_eq!(d["costActual"], 0);
    assert_eq!(d["latencyActual"], 29);
    // health CLOSED 1; quota unknown limit: null; cost: no prices for the
    // mock node: null; latency: served step is the fastest: 1; task_fit for
    // coding: mock is not preferred: 0.
    let values: Vec<Value> = d["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["value"].clone())
        .collect();
    assert_eq!(
        values,
        [json!(1), Value::Null, Value::Null, json!(1), json!(0)]
    );
    let contributions: Vec<Value> = d["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["contribution"].clone())
        .collect();
    assert_eq!(
        contributions,
        [json!(0.3), Value::Null, Value::Null, json!(0.15), json!(0)]
    );
    assert_eq!(d["score"], 0.8182, "(0.3 + 0.15 + 0) / (0.3 + 0.15 + 0.1)");
    assert_eq!(
        keys(&d["factors"][0]),
        ["name", "value", "weight", "contribution", "source"]
    );
    assert_eq!(
        keys(&out),
        ["requestId", "source", "decision", "scoreBasis", "degraded"]
    );
    // The queries: combo logs by exact name, metrics by name.
    let reqs = h.gateway.requests();
    let logs = reqs.iter().find(|r| r.path == CALL_LOGS).unwrap();
    assert_eq!(
        logs.query,
        [("combo", "1"), ("search", "coding-fast"), ("limit", "200")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    let metrics = reqs.iter().find(|r| r.path == COMBO_METRICS).unwrap();
    assert_eq!(
        metrics.query,
        [("combo".to_string(), "coding-fast".to_string())]
    );
    // The ledger is checked before the call-log id route.
    assert!(!paths(&h).contains(&format!("{CALL_LOGS}/{REQ_ID}")));
}

#[test]
fn cost_factor_with_prices_and_open_breaker() {
    let prices = json!({ NODE_9BF: { "mock-small": { "input": 4, "output": 6 }, "mock-large": { "input": 1, "output": 4 } } });
    let gw = gateway()
        .on_get(PRICING, Reply::json(200, prices.to_string()))
        .on_get(HEALTH, Reply::json(200, fixtures::HEALTH_OPEN_BREAKERS));
    let mut entry = ledger_entry();
    entry["role"] = Value::Null;
    let h = host_with(gw, Some(entry));
    let f = run(&h, REQ_ID)["decision"]["factors"].clone();
    assert_eq!(f[0]["value"], 0, "OPEN");
    assert_eq!(f[2]["value"], 0.5, "cheapest step 5 / served step 10");
    assert_eq!(f[2]["contribution"], 0.1);
    assert_eq!(f[4]["value"], Value::Null, "no role");
}

#[test]
fn ledger_hit_without_combo_or_logs() {
    let mut entry = ledger_entry();
    entry["combo"] = Value::Null;
    entry["requestedModel"] = json!("mock/mock-small");
    entry["latencyMs"] = Value::Null;
    let h = host_with(gateway(), Some(entry.clone()));
    let out = run(&h, REQ_ID);
    // The fixture row at 23:11:06.988Z is the served row.
    assert_eq!(out["source"], "host_ledger+call_logs");
    assert_eq!(
        out["decision"]["latencyActual"], 28,
        "the served row's duration"
    );
    assert_eq!(out["decision"]["comboUsed"], Value::Null);
    let logs = h
        .gateway
        .requests()
        .into_iter()
        .find(|r| r.path == CALL_LOGS)
        .unwrap();
    assert_eq!(
        logs.query[0],
        ("model".to_string(), "mock-small".to_string())
    );
    assert!(
        !paths(&h).contains(&COMBOS.to_string()),
        "no combo data needed"
    );
    // Call logs failing: named, and nothing enriched.
    let h = host_with(
        gateway().on_get(CALL_LOGS, Reply::json(500, "{}")),
        Some(entry),
    );
    let out = run(&h, REQ_ID);
    assert_eq!(out["source"], "host_ledger");
    assert_eq!(out["decision"]["fallbacksTriggered"], Value::Null, "could not read, not none");
    assert_eq!(out["decision"]["latencyActual"], Value::Null);
    assert_eq!(out["degraded"][0]["source"], "GET /api/usage/call-logs");
}

#[test]
fn failed_ledger_entry_lists_its_failed_attempts() {
    let mut entry = ledger_entry();
    for k in [
        "provider",
        "model",
        "cost",
        "tokensIn",
        "tokensOut",
        "latencyMs",
    ] {
        entry[k] = Value::Null;
    }
    entry["success"] = json!(false);
    entry["status"] = json!(502);
    let gw = gateway().on_get(
        CALL_LOGS,
        logs_with(vec![failed_row("2026-11-25T23:11:06.960Z")]),
    );
    let h = host_with(gw, Some(entry));
    let out = run(&h, REQ_ID);
    let d = &out["decision"];
    assert_eq!(d["providerSelected"], Value::Null);
    assert_eq!(d["modelUsed"], Value::Null);
    assert_eq!(
        testing::degraded_sources(&out),
        ["POST /v1/chat/completions", "POST /v1/chat/completions"],
        "the failed completion carried no routing headers: named"
    );
    assert_eq!(d["fallbacksTriggered"].as_array().unwrap().len(), 1);
    assert_eq!(
        d["score"],
        Value::Null,
        "nothing to assess without a provider"
    );
    assert_eq!(out["source"], "host_ledger+call_logs");
}

#[test]
fn call_log_id_is_explained() {
    let h = host_with(gateway(), None);
    let out = run(&h, LOG_ID);
    assert_eq!(out["source"], "call_log");
    let d = &out["decision"];
    assert_eq!(d["comboUsed"], "coding-fast");
    assert_eq!(d["providerSelected"], NODE_9BF);
    assert_eq!(d["modelUsed"], "mock-small");
    assert_eq!(d["costActual"], Value::Null, "no price for the node");
    assert_eq!(d["latencyActual"], 28);
    assert_eq!(d["status"], 200);
    assert_eq!(d["step"], "coding-fast-model-1-mock-mock-small");
    assert_eq!(d["tokens"], json!({ "in": 7, "out": 3 }));
    assert_eq!(d["factors"][4]["value"], Value::Null);
    assert_eq!(
        keys(d),
        [
            "comboUsed",
            "providerSelected",
            "modelUsed",
            "score",
            "factors",
            "fallbacksTriggered",
            "costActual",
            "latencyActual",
            "status",
            "step",
            "tokens"
        ]
    );
    // With a user price under the node id: 7 x 1.5 + 3 x 6 per 1M tokens.
    let prices = json!({ NODE_9BF: { "mock-small": { "input": 1.5, "output": 6 } } });
    let h = host_with(
        gateway().on_get(PRICING, Reply::json(200, prices.to_string())),
        None,
    );
    assert_eq!(run(&h, LOG_ID)["decision"]["costActual"], 0.0000285);
}

#[test]
fn gateway_down() {
    let down = || Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128");
    let gw = FakeGateway::new()
        .on_get(HEALTH, down())
        .on_get(QUOTA, down())
        .on_get(PROVIDER_NODES, down())
        .on_get(PRICING_MODELS, down())
        .on_get(&format!("{DECISIONS}/{REQ_ID}"), down())
        .on_get(&format!("{CALL_LOGS}/{REQ_ID}"), down());
    let h = host_with(gw, None);
    let out = run(&h, REQ_ID);
    assert_eq!(out["source"], Value::Null);
    let sources = testing::degraded_sources(&out);
    assert_eq!(
        sources,
        [
            "GET /api/monitoring/health",
            "GET /api/usage/quota",
            "GET /api/provider-nodes",
            "GET /api/pricing/models",
            &format!("GET /api/routing/decisions/{REQ_ID}"),
            &format!("GET /api/usage/call-logs/{REQ_ID}"),
        ]
    );
    assert!(
        h.session.get(DECISIONS_MISSING_KEY).is_none(),
        "unreachable is not missing"
    );
    // The host's index still answers without the gateway.
    let gw = FakeGateway::new().on_get(&format!("{DECISIONS}/{REQ_ID}"), down());
    let h = host_with(gw, Some(ledger_entry()));
    let out = run(&h, REQ_ID);
    assert_eq!(out["source"], "host_ledger");
    // Only task_fit (role coding, mock not preferred) needs no gateway data.
    assert_eq!(out["decision"]["score"], 0);
    assert_eq!(out["decision"]["factors"].as_array().unwrap().len(), 5);
}

#[test]
fn unsafe_ids_are_only_looked_up_in_the_host_index() {
    assert!(path_safe(REQ_ID));
    for bad in ["", ".", "..", "a/b", "a%2Fb", "a?b", "a b"] {
        assert!(!path_safe(bad), "{bad}");
    }
    let h = host_with(gateway(), None);
    let out = run(&h, "../combos");
    assert_eq!(out["source"], Value::Null);
    assert_eq!(paths(&h), [HEALTH, QUOTA, PROVIDER_NODES, PRICING_MODELS]);
}

/// The factor items the tool itself builds match their schema.
#[test]
fn factor_and_fallback_items_match_their_schemas() {
    let gw = gateway().on_get(
        CALL_LOGS,
        logs_with(vec![failed_row("2026-11-25T23:11:06.960Z")]),
    );
    let out = run(&host_with(gw, Some(ledger_entry())), REQ_ID);
    let (factor, fallback) = item_schemas();
    for f in out["decision"]["factors"].as_array().unwrap() {
        testing::validate(&factor, f).unwrap();
    }
    for f in out["decision"]["fallbacksTriggered"].as_array().unwrap() {
        testing::validate(&fallback, f).unwrap();
    }
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<ExplainRoute>();
    testing::check_manifest::<ExplainRoute>(include_str!("../tool.toml"));
    assert_eq!(
        testing::input_schema_without_session_id(&desc),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"requestId":{"type":"string","description":"Request ID from the X-Request-Id header"}},"required":["requestId"]}"#
    );
    assert_eq!(
        desc["description"],
        format!("Explains why a request was routed to a specific provider, showing scoring factors and fallbacks.{}", schema::SESSION_ID_HINT)
    );
}
