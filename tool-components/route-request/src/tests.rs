use omniroute_tool_testing::fixtures::{NODE_1F2, NODE_9BF};
use omniroute_tool_testing::{
    self as testing, FakeGateway, FakeHost, MemorySession, Reply, fixtures, gateway_failures, keys,
};
use omniroute_tool_sdk::providers::Providers;
use omniroute_tool_sdk::{GatewayError, Method, Session};
use serde_json::{Value, json};

use super::*;

/// provider-nodes.json as the gateway that answered the priced capture
/// would return it: the same `mock` node under that gateway's node id.
fn nodes_1f2() -> String {
    fixtures::PROVIDER_NODES.replace(NODE_9BF, NODE_1F2)
}

fn gateway(chat: Reply) -> FakeGateway {
    FakeGateway::new()
        .on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED))
        .with_provider_maps()
        .on(Method::Post, COMPLETIONS, chat)
}

fn run(host: &FakeHost, input: Value) -> Result<Value, String> {
    host.call::<RouteRequest>(input)
}

fn hi(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] })
}

fn paths(host: &FakeHost) -> Vec<String> {
    host.gateway
        .requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn sent_body(host: &FakeHost) -> Value {
    let reqs = host.gateway.requests();
    let post = reqs
        .iter()
        .find(|r| r.method == Method::Post)
        .expect("a completion was sent");
    serde_json::from_str(post.body.as_deref().unwrap()).unwrap()
}

fn annotation(host: &FakeHost) -> Value {
    host.session
        .last_annotation_json()
        .expect("the ledger entry was annotated")
}

#[test]
fn combo_named_as_model() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO)));
    let out = run(&h, hi("coding-fast")).unwrap();
    let expected = json!({
        "response": { "content": "Hello from mock", "model": "mock-small", "tokens": { "prompt": 2007, "completion": 3 } },
        "routing": {
            "provider": NODE_9BF,
            "model": "mock-small",
            "combo": "coding-fast",
            "requestId": "cdd3c4bd-b995-4f89-9cb1-8fca4b2adeb4",
            "fallbacksTriggered": 0,
            "cost": 0,
            "latencyMs": 29,
            "cache": "MISS",
            "tokensIn": 7,
            "tokensOut": 3,
            "routingExplanation": format!("Routed via combo \"coding-fast\" to mock-small on {NODE_9BF}")
        }
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
    assert_eq!(
        sent_body(&h).to_string(),
        r#"{"model":"coding-fast","messages":[{"role":"user","content":"hi"}],"stream":false}"#
    );
    assert_eq!(
        annotation(&h),
        json!({ "requestId": "cdd3c4bd-b995-4f89-9cb1-8fca4b2adeb4", "combo": "coding-fast", "role": null, "fallbacksTriggered": 0, "degradedFrom": null })
    );
    assert_eq!(
        paths(&h),
        [
            "GET /api/combos",
            "POST /v1/chat/completions",
            "GET /api/provider-nodes",
            "GET /api/pricing/models"
        ]
    );
    // The alias sources go out together.
    assert_eq!(h.gateway.batches(), vec![2]);
}

#[test]
fn priced_completion_matches_the_contract_example() {
    let gw = gateway(Reply::capture(fixtures::CHAT_COMPLETION_PRICED))
        .on_get(PROVIDER_NODES, Reply::json(200, nodes_1f2()));
    let h = FakeHost::new(gw);
    let out = run(&h, hi("coding-fast")).unwrap();
    let expected = json!({
        "response": { "content": "Hello from mock", "model": "mock-small", "tokens": { "prompt": 2007, "completion": 3 } },
        "routing": {
            "provider": NODE_1F2,
            "model": "mock-small",
            "combo": "coding-fast",
            "requestId": "0a95b984-132a-4f78-a212-d46c7fff82ad",
            "fallbacksTriggered": 0,
            "cost": 0.0000285,
            "latencyMs": 78,
            "cache": "MISS",
            "tokensIn": 7,
            "tokensOut": 3,
            "routingExplanation": format!("Routed via combo \"coding-fast\" to mock-small on {NODE_1F2}")
        }
    });
    assert_eq!(out, expected);
    // The header's 10-decimal text becomes exactly the JS number 0.0000285.
    assert_eq!(out["routing"]["cost"].as_f64(), Some(0.0000285));
    assert_eq!(
        out["routing"]["cost"].as_f64().unwrap().to_bits(),
        0.0000285f64.to_bits()
    );
}

#[test]
fn second_step_served_means_one_fallback() {
    let reply =
        Reply::capture(fixtures::CHAT_COMPLETION_COMBO).header(headers::MODEL, "mock-large");
    let h = FakeHost::new(gateway(reply));
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(out["routing"]["fallbacksTriggered"], 1);
    assert_eq!(
        out["routing"]["routingExplanation"],
        format!(
            "Routed via combo \"coding-fast\" to mock-large on {NODE_9BF}; fallback steps before it: 1"
        )
    );
    assert_eq!(annotation(&h)["fallbacksTriggered"], 1);
}

#[test]
fn served_step_needs_the_alias_set() {
    let steps: Value = serde_json::from_str::<Value>(fixtures::COMBOS_POPULATED).unwrap()["combos"]
        [0]["models"]
        .clone();
    let steps = steps.as_array().unwrap();
    let providers = Providers::from_json(
        Some(&serde_json::from_str(fixtures::PROVIDER_NODES).unwrap()),
        None,
    );
    assert_eq!(
        served_step(steps, NODE_9BF, "mock-small", &providers),
        Some(0)
    );
    assert_eq!(
        served_step(steps, NODE_9BF, "mock-large", &providers),
        Some(1)
    );
    assert_eq!(
        served_step(steps, "mock", "mock-large", &providers),
        Some(1)
    );
    assert_eq!(served_step(steps, NODE_1F2, "mock-small", &providers), None);
    assert_eq!(served_step(steps, NODE_9BF, "mock-xl", &providers), None);
    // Without the node map the step provider "mock" does not name the node id.
    assert_eq!(
        served_step(steps, NODE_9BF, "mock-small", &Providers::default()),
        None
    );
    // String and combo-ref steps.
    let odd = [
        json!({"kind":"combo-ref","comboName":"x"}),
        json!("cc/claude-sonnet-4-6"),
    ];
    let builtins = Providers::from_json(
        None,
        Some(&serde_json::from_str(fixtures::PRICING_MODELS_EXCERPT).unwrap()),
    );
    assert_eq!(
        served_step(&odd, "claude", "claude-sonnet-4-6", &builtins),
        Some(1)
    );
}

#[test]
fn failed_alias_sources_leave_fallbacks_unknown() {
    let gw = gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO))
        .on_get(PROVIDER_NODES, Reply::unreachable("refused"))
        .on_get(PRICING_MODELS, Reply::json(500, "{}"));
    let h = FakeHost::new(gw);
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(out["routing"]["fallbacksTriggered"], Value::Null);
    assert_eq!(out["routing"]["combo"], "coding-fast");
    assert!(out.get("warnings").is_none());
}

#[test]
fn non_priority_combo_has_no_fallback_count() {
    let h = FakeHost::new(gateway(
        Reply::capture(fixtures::CHAT_COMPLETION_COMBO).header(headers::MODEL, "mock-large"),
    ));
    let out = run(&h, hi("free-tier")).unwrap();
    assert_eq!(out["routing"]["combo"], "free-tier");
    assert_eq!(out["routing"]["fallbacksTriggered"], Value::Null);
    // No alias lookup was needed.
    assert_eq!(paths(&h), ["GET /api/combos", "POST /v1/chat/completions"]);
}

#[test]
fn direct_model_is_not_a_combo() {
    let h = FakeHost::new(gateway(Reply::capture(
        fixtures::CHAT_COMPLETION_PREFIX_PRICED_COST_ZERO,
    )));
    let out = run(&h, hi("mock/mock-large")).unwrap();
    assert_eq!(out["routing"]["combo"], Value::Null);
    assert_eq!(out["routing"]["fallbacksTriggered"], Value::Null);
    assert_eq!(out["routing"]["cost"], 0);
    assert_eq!(out["routing"]["latencyMs"], 114);
    assert_eq!(
        out["routing"]["routingExplanation"],
        format!("Routed to mock-large on {NODE_1F2}")
    );
    assert_eq!(sent_body(&h)["model"], "mock/mock-large");
    assert_eq!(annotation(&h)["combo"], Value::Null);
}

#[test]
fn combo_argument_is_sent_as_the_model() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO)));
    let input = json!({
        "model": "gpt-4o",
        "combo": "coding-fast",
        "role": "coding",
        "budget": 1,
        "stream": true,
        "messages": [
            { "role": "system", "content": "be brief", "name": "x" },
            { "role": "user", "content": "hi" }
        ]
    });
    let out = run(&h, input).unwrap();
    // Only model, messages (role + content) and stream:false are sent.
    assert_eq!(
        sent_body(&h).to_string(),
        r#"{"model":"coding-fast","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"stream":false}"#
    );
    assert_eq!(out["routing"]["combo"], "coding-fast");
    assert_eq!(out["routing"]["fallbacksTriggered"], 0);
    assert_eq!(annotation(&h)["role"], "coding");
    assert!(out.get("warnings").is_none(), "cost 0 is within budget 1");
}

#[test]
fn unknown_combo_argument_is_still_the_routed_combo() {
    // The gateway decides; the tool only reports what it asked for.
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO)));
    let out = run(
        &h,
        json!({ "model": "x", "combo": "not-listed", "messages": [] }),
    )
    .unwrap();
    assert_eq!(out["routing"]["combo"], "not-listed");
    assert_eq!(out["routing"]["fallbacksTriggered"], Value::Null);
}

#[test]
fn per_request_budget_warning() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_PRICED)));
    let mut input = hi("mock/mock-small");
    input["budget"] = json!(0.00001);
    let out = run(&h, input).unwrap();
    assert_eq!(
        out["warnings"],
        json!(["Request cost 0.0000285 USD exceeded the per-request budget 0.00001 USD."])
    );
    assert_eq!(keys(&out), ["response", "routing", "warnings"]);
    // Equal is not exceeded.
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_PRICED)));
    let mut input = hi("mock/mock-small");
    input["budget"] = json!(0.0000285);
    assert!(run(&h, input).unwrap().get("warnings").is_none());
    // No cost header: nothing to compare.
    let h = FakeHost::new(gateway(
        Reply::capture(fixtures::CHAT_COMPLETION_PRICED).without_header(headers::COST),
    ));
    let mut input = hi("mock/mock-small");
    input["budget"] = json!(0);
    let out = run(&h, input).unwrap();
    assert_eq!(out["routing"]["cost"], Value::Null);
    assert!(out.get("warnings").is_none());
}

#[test]
fn cache_hit_is_explained() {
    let h = FakeHost::new(gateway(
        Reply::capture(fixtures::CHAT_COMPLETION_COMBO).header(headers::CACHE, "HIT"),
    ));
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(out["routing"]["cache"], "HIT");
    assert_eq!(
        out["routing"]["routingExplanation"],
        format!("Routed via combo \"coding-fast\" to mock-small on {NODE_9BF} (served from cache)")
    );
}

#[test]
fn missing_headers_are_null() {
    let bare = Reply::json(
        200,
        r#"{"choices":[{"message":{"content":[{"type":"text","text":"x"}]}}]}"#,
    );
    let h = FakeHost::new(gateway(bare));
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(
        out,
        json!({
            "response": { "content": null, "model": null, "tokens": { "prompt": null, "completion": null } },
            "routing": {
                "provider": null, "model": null, "combo": "coding-fast", "requestId": null,
                "fallbacksTriggered": null, "cost": null, "latencyMs": null, "cache": null,
                "tokensIn": null, "tokensOut": null,
                "routingExplanation": "Routed via combo \"coding-fast\" (the gateway did not report the serving model or provider)"
            }
        })
    );
    // Body without a model: the served model from the header.
    let no_model = Reply::json(200, r#"{"choices":[]}"#).header(headers::MODEL, "mock-small");
    let h = FakeHost::new(gateway(no_model));
    let out = run(&h, hi("x")).unwrap();
    assert_eq!(out["response"]["model"], "mock-small");
    assert_eq!(
        out["routing"]["routingExplanation"],
        "Routed to mock-small (the gateway did not report the provider)"
    );
}

#[test]
fn breaker_open_503_is_an_error_and_still_annotated() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_ERROR_BREAKER_OPEN)));
    assert_eq!(
        run(&h, hi("coding-fast")),
        Err(format!(
            r#"OmniRoute API error [503]: {{"error":{{"message":"Provider {NODE_1F2} circuit breaker is open"}}}}"#
        ))
    );
    // No x-request-id on that answer.
    assert_eq!(
        annotation(&h),
        json!({ "requestId": null, "combo": "coding-fast", "role": null, "fallbacksTriggered": null, "degradedFrom": null })
    );
}

#[test]
fn upstream_failure_keeps_the_request_id() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_ERROR_UPSTREAM_500)));
    let mut input = hi("mock/mock-fail");
    input["role"] = json!("review");
    assert_eq!(
        run(&h, input),
        Err(format!(
            r#"OmniRoute API error [500]: {{"error":{{"message":"[{NODE_1F2}/mock-fail] [500]: upstream failure (reset after 3s)"}}}}"#
        ))
    );
    assert_eq!(
        annotation(&h),
        json!({ "requestId": "a029ef41-f5b4-4997-bbe7-20ef308e1ac5", "combo": null, "role": "review", "fallbacksTriggered": null, "degradedFrom": null })
    );
    let h = FakeHost::new(gateway(Reply::capture(
        fixtures::CHAT_ERROR_ALL_ACCOUNTS_INACTIVE,
    )));
    assert_eq!(
        run(&h, hi("broken")),
        Err(r#"OmniRoute API error [503]: {"error":{"message":"Service temporarily unavailable: all upstream accounts are inactive","type":"service_unavailable","code":"ALL_ACCOUNTS_INACTIVE"}}"#.to_string())
    );
}

#[test]
fn gateway_down() {
    let h = FakeHost::new(
        FakeGateway::new()
            .on_get(
                COMBOS,
                Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128"),
            )
            .on(
                Method::Post,
                COMPLETIONS,
                Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128"),
            ),
    );
    assert_eq!(
        run(&h, hi("coding-fast")),
        Err("OmniRoute API unreachable: POST /v1/chat/completions: connect ECONNREFUSED 127.0.0.1:20128".to_string())
    );
    // The combo list could not be read, so the model is not known to be a combo.
    assert_eq!(
        annotation(&h),
        json!({ "requestId": null, "combo": null, "role": null, "fallbacksTriggered": null, "degradedFrom": null })
    );
    let h = FakeHost::new(gateway(Reply::error(GatewayError::Timeout(120))));
    assert_eq!(
        run(&h, hi("coding-fast")),
        Err("OmniRoute API timeout after 120 s: POST /v1/chat/completions".to_string())
    );
}

#[test]
fn completion_failures_are_tool_errors() {
    for (reply, text) in gateway_failures(Method::Post, COMPLETIONS) {
        let h = FakeHost::new(gateway(reply));
        assert_eq!(run(&h, hi("coding-fast")), Err(text));
        assert_eq!(annotation(&h)["requestId"], Value::Null);
        assert_eq!(annotation(&h)["combo"], "coding-fast");
    }
    // A failed answer that carries a request id keeps it in the annotation.
    let html = "<!DOCTYPE html><html></html>";
    let h = FakeHost::new(gateway(
        Reply::status(404, html).header(headers::REQUEST_ID, "r-404"),
    ));
    assert_eq!(
        run(&h, hi("coding-fast")),
        Err("OmniRoute API error [404]: <non-JSON body, 28 bytes>".to_string())
    );
    assert_eq!(annotation(&h)["requestId"], "r-404");
    let h = FakeHost::new(gateway(
        Reply::status(200, "data: {}\n\n").header(headers::REQUEST_ID, "r-sse"),
    ));
    assert_eq!(
        run(&h, hi("coding-fast")),
        Err("OmniRoute API error [200]: <non-JSON body, 10 bytes>".to_string())
    );
    assert_eq!(annotation(&h)["requestId"], "r-sse");
}

#[test]
fn empty_combo_list() {
    let gw = gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO))
        .on_get(COMBOS, Reply::json(200, r#"{"combos":[]}"#));
    let h = FakeHost::new(gw);
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(out["routing"]["combo"], Value::Null);
    assert_eq!(
        out["routing"]["routingExplanation"],
        format!("Routed to mock-small on {NODE_9BF}")
    );
}

#[test]
fn refused_session_writes_are_ignored() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO))).with_session(
        MemorySession::new()
            .refusing_annotations()
            .refusing(combos_cache::CACHE_KEY),
    );
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(out["routing"]["fallbacksTriggered"], 0);
    assert_eq!(h.session.annotations(), vec![], "the refused annotation was not kept");
    // Without a cache every call reads the combo list.
    run(&h, hi("coding-fast")).unwrap();
    let combo_reads = paths(&h).iter().filter(|p| *p == "GET /api/combos").count();
    assert_eq!(combo_reads, 2);
}

#[test]
fn combo_list_is_cached_for_30_seconds() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO)));
    let cx = h.ctx();
    let reads = || {
        h.gateway
            .requests()
            .iter()
            .filter(|r| r.path == COMBOS)
            .count()
    };
    let first = combos_cache::combos_at(&cx, 1_000_000).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["name"], "coding-fast");
    assert_eq!(first[0]["strategy"], "priority");
    assert_eq!(reads(), 1);
    assert_eq!(combos_cache::combos_at(&cx, 1_029_999).unwrap(), first);
    assert_eq!(reads(), 1, "fresh: served from the session");
    combos_cache::combos_at(&cx, 1_030_000).unwrap();
    assert_eq!(reads(), 2, "30 s old: read again");
    // A cache from the future (clock moved back) is not trusted.
    combos_cache::combos_at(&cx, 1_000_000).unwrap();
    assert_eq!(reads(), 3);
    // Garbage in the key is ignored.
    h.session.set(combos_cache::CACHE_KEY, "not json").unwrap();
    combos_cache::combos_at(&cx, 1_000_001).unwrap();
    assert_eq!(reads(), 4);
    // Through the tool: two calls, one combo read.
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO)));
    run(&h, hi("coding-fast")).unwrap();
    run(&h, hi("coding-fast")).unwrap();
    assert_eq!(
        paths(&h).iter().filter(|p| *p == "GET /api/combos").count(),
        1
    );
}

#[test]
fn provider_maps_are_read_once_per_burst() {
    let h = FakeHost::new(gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO)));
    let first = run(&h, hi("coding-fast")).unwrap();
    let second = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(first["routing"]["fallbacksTriggered"], 0);
    assert_eq!(second["routing"], first["routing"], "the cached maps give the same answer");
    for source in ["GET /api/provider-nodes", "GET /api/pricing/models"] {
        assert_eq!(paths(&h).iter().filter(|p| *p == source).count(), 1, "{source}");
    }
}

#[test]
fn failed_combo_read_is_not_cached() {
    let gw = gateway(Reply::capture(fixtures::CHAT_COMPLETION_COMBO))
        .on_get(COMBOS, Reply::json(500, "{}"));
    let h = FakeHost::new(gw);
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(out["routing"]["combo"], Value::Null);
    assert_eq!(h.session.get(combos_cache::CACHE_KEY), None);
}

#[test]
fn host_refusal_is_the_error_verbatim_and_not_annotated() {
    let text = "Budget guard blocked the request: session spend 0.02 USD reached the limit 0.01 USD (action=block).";
    let h = FakeHost::new(gateway(Reply::error(GatewayError::Refused(text.into()))));
    assert_eq!(run(&h, hi("coding-fast")), Err(text.to_string()));
    assert_eq!(h.session.annotations(), vec![], "nothing was sent");
    let text =
        "Budget guard could not degrade to tier \"cheap\": no matching combo; request not sent.";
    let h = FakeHost::new(gateway(Reply::error(GatewayError::Refused(text.into()))));
    assert_eq!(run(&h, hi("mock/mock-small")), Err(text.to_string()));
}

#[test]
fn host_degrade_and_warnings() {
    let degraded =
        "Budget guard degraded the request from \"mock/mock-small\" to \"free-tier\" (tier free).";
    let reached = "Budget limit reached: session spend 0.0100285 USD of 0.01 USD.";
    let reply = Reply::capture(fixtures::CHAT_COMPLETION_PRICED)
        .header(headers::MODEL, "mock-large")
        .header(headers::MCP_DEGRADED_FROM, "mock/mock-small")
        .header(headers::MCP_WARNING, degraded);
    let reply = match reply {
        Reply::Response(mut r) => {
            r.headers
                .push((headers::MCP_WARNING.into(), reached.into()));
            Reply::Response(r)
        }
        other => other,
    };
    let h = FakeHost::new(gateway(reply).on_get(PROVIDER_NODES, Reply::json(200, nodes_1f2())));
    let mut input = hi("mock/mock-small");
    input["budget"] = json!(0.00001);
    input["role"] = json!("coding");
    let out = run(&h, input).unwrap();
    assert_eq!(
        out["warnings"],
        json!([
            degraded,
            reached,
            "Request cost 0.0000285 USD exceeded the per-request budget 0.00001 USD."
        ])
    );
    let routing = &out["routing"];
    assert_eq!(
        routing["combo"], "free-tier",
        "the degrade target is a combo"
    );
    assert_eq!(routing["degradedFrom"], "mock/mock-small");
    assert_eq!(keys(routing).last(), Some(&"degradedFrom"));
    // free-tier is a weighted combo: no fallback count.
    assert_eq!(routing["fallbacksTriggered"], Value::Null);
    assert_eq!(
        annotation(&h),
        json!({ "requestId": "0a95b984-132a-4f78-a212-d46c7fff82ad", "combo": "free-tier", "role": "coding", "fallbacksTriggered": null, "degradedFrom": "mock/mock-small" })
    );
    // The tool sent what it was asked; the host retargeted.
    assert_eq!(sent_body(&h)["model"], "mock/mock-small");
}

#[test]
fn host_degrade_on_a_failed_answer_is_annotated() {
    let reply = Reply::capture(fixtures::CHAT_ERROR_UPSTREAM_500)
        .header(headers::MCP_DEGRADED_FROM, "coding-fast")
        .header(headers::MCP_DEGRADED_TO, "free-tier");
    let h = FakeHost::new(gateway(reply));
    assert!(
        run(&h, hi("coding-fast"))
            .unwrap_err()
            .starts_with("OmniRoute API error [500]")
    );
    assert_eq!(annotation(&h)["combo"], "free-tier");
    assert_eq!(annotation(&h)["degradedFrom"], "coding-fast");
}

#[test]
fn alert_warning_without_degrade() {
    let alert = "Budget guard alert: session spend 0.5 USD exceeds the limit 0.1 USD.";
    let h = FakeHost::new(gateway(
        Reply::capture(fixtures::CHAT_COMPLETION_COMBO).header(headers::MCP_WARNING, alert),
    ));
    let out = run(&h, hi("coding-fast")).unwrap();
    assert_eq!(out["warnings"], json!([alert]));
    assert!(out["routing"].get("degradedFrom").is_none());
    assert_eq!(out["routing"]["combo"], "coding-fast");
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<RouteRequest>();
    testing::check_manifest::<RouteRequest>(include_str!("../tool.toml"));
    assert_eq!(
        testing::input_schema_without_session_id(&desc),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"model":{"type":"string","description":"Model identifier (e.g., 'claude-sonnet-4', 'gpt-4o')"},"messages":{"type":"array","items":{"type":"object","properties":{"role":{"type":"string"},"content":{"type":"string"}},"required":["role","content"]},"description":"Chat messages in OpenAI format"},"combo":{"description":"Specific combo to route through","type":"string"},"budget":{"description":"Maximum cost in USD for this request","type":"number"},"role":{"description":"Task role hint for intelligent routing","type":"string","enum":["coding","review","planning","analysis"]},"stream":{"default":false,"description":"Whether to stream the response","type":"boolean"}},"required":["model","messages"]}"#
    );
    assert_eq!(
        desc["description"],
        format!("Sends a chat completion request through OmniRoute intelligent routing.{}", schema::SESSION_ID_HINT)
    );
    assert_eq!(
        desc["annotations"],
        json!({"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":true})
    );
    assert_eq!(desc["scopes"], json!(["execute:completions"]));
}
