//! All 16 built-in tools against the REAL OmniRoute 3.7.9 gateway (the plain instance that
//! `cargo xtask test` starts: no dashboard password, a mock OpenAI-compatible upstream, seeded
//! combos `coding-fast`/`free-tier` and prices keyed by the node id), driven over MCP by the
//! rmcp client. Every assertion is on a real value: what the gateway, its mock upstream, or this
//! server's own session ledger say.
//!
//! The gateway is shared by every test (parallel threads here, other binaries before and
//! after), so tests create their own combos where they change or count something, and assert
//! on deltas. Sections that need the mock upstream quiet hold [`traffic_lock`] exclusively;
//! every test that sends completions holds it shared.

use std::time::{Duration, Instant};

use omniroute_mcp_tests::real::{is_uuid, round_cost, traffic_lock, unique_name};
use omniroute_mcp_tests::{McpClient, RealGateway, assert_same, combo_named, keys};
use serde_json::{Value, json};

const HEALTH: &str = "omniroute_get_health";
const LIST_COMBOS: &str = "omniroute_list_combos";
const COMBO_METRICS: &str = "omniroute_get_combo_metrics";
const SWITCH_COMBO: &str = "omniroute_switch_combo";
const CHECK_QUOTA: &str = "omniroute_check_quota";
const ROUTE: &str = "omniroute_route_request";
const COST_REPORT: &str = "omniroute_cost_report";
const CATALOG: &str = "omniroute_list_models_catalog";
const SIMULATE: &str = "omniroute_simulate_route";
const BUDGET: &str = "omniroute_set_budget_guard";
const RESILIENCE: &str = "omniroute_set_resilience_profile";
const TEST_COMBO: &str = "omniroute_test_combo";
const PROVIDER_METRICS: &str = "omniroute_get_provider_metrics";
const BEST_COMBO: &str = "omniroute_best_combo_for_task";
const EXPLAIN: &str = "omniroute_explain_route";
const SNAPSHOT: &str = "omniroute_get_session_snapshot";

/// 7 tokens in at 1.5 USD/M plus 3 out at 6 USD/M: one `mock/mock-small` completion.
const SMALL_COST: f64 = 0.0000285;
/// 7 × 3 + 3 × 15 per million: one `mock/mock-large` completion.
const LARGE_COST: f64 = 0.000066;

async fn start(gateway: &RealGateway) -> McpClient {
    McpClient::start(gateway.server()).await
}

/// A user message no other request of the run has.
fn prompt() -> String {
    format!("e2e {}", unique_name("prompt"))
}

fn messages(text: &str) -> Value {
    json!([{ "role": "user", "content": text }])
}

/// route_request that must succeed; returns the structured output.
async fn route(client: &McpClient, args: Value) -> Value {
    client.call(ROUTE, args).await.into_ok()
}

async fn route_combo(client: &McpClient, combo: &str) -> Value {
    route(
        client,
        json!({ "model": combo, "messages": messages(&prompt()) }),
    )
    .await
}

#[track_caller]
fn assert_close(actual: &Value, expected: f64, what: &str) {
    let value = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what} must be a number, got {actual}"));
    assert!(
        (value - expected).abs() < 1e-12,
        "{what}: expected {expected}, got {value}"
    );
}

/// A number equal to `expected`, whether it came as an integer or a float (serde_json's
/// `Value == 1` is false for `1.0`).
macro_rules! assert_num {
    ($actual:expr, $expected:expr $(,)?) => {
        assert_num!($actual, $expected, "{}", stringify!($actual))
    };
    ($actual:expr, $expected:expr, $($message:tt)+) => {{
        let actual: &Value = &$actual;
        let expected = $expected as f64;
        let value = actual.as_f64().unwrap_or_else(|| {
            panic!("expected the number {expected}, got {actual}: {}", format_args!($($message)+))
        });
        assert!(value == expected, "expected {expected}, got {value}: {}", format_args!($($message)+));
    }};
}

fn num(value: &Value, what: &str) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} must be a number, got {value}"))
}

/// The breaker state the gateway reports right now for the mock provider: the worst state of
/// the `providerBreakers` entries named `mock` (the combo step prefix) or the node id (A.4).
async fn mock_breaker_state(gateway: &RealGateway) -> &'static str {
    let health = gateway
        .api_json("GET", "/api/monitoring/health", None)
        .await;
    let states: Vec<&str> = health["providerBreakers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["provider"] == "mock" || b["provider"] == gateway.node_id.as_str())
        .filter_map(|b| b["state"].as_str())
        .collect();
    if states.contains(&"OPEN") {
        "OPEN"
    } else if states.contains(&"HALF_OPEN") {
        "HALF_OPEN"
    } else {
        "CLOSED"
    }
}

/// A quota entry of the mock connection. The gateway reports an unknown limit
/// (`quotaTotal:null`, 100 %) when idle, and its request-queue window (`quotaTotal` = requests
/// per minute) while the connection's queue has recent traffic.
#[track_caller]
fn assert_quota_consistent(used: &Value, total: &Value, percent: Option<&Value>, what: &str) {
    if total.is_null() {
        assert_num!(used, 0, "{what}: unknown limit");
        if let Some(percent) = percent {
            assert_num!(percent, 100, "{what}: unknown limit");
        }
    } else {
        let (used, total) = (num(used, "used"), num(total, "total"));
        assert!(used >= 0.0 && used <= total, "{what}: {used} of {total}");
        if let Some(percent) = percent {
            assert_close(percent, (total - used) / total * 100.0, what);
        }
    }
}

/// Checks the `routing` of a completion served by `mock-small` through `coding-fast`.
#[track_caller]
fn assert_coding_fast_routing(gateway: &RealGateway, routing: &Value) {
    assert_eq!(routing["provider"], gateway.node_id.as_str(), "{routing}");
    assert_eq!(routing["model"], "mock-small", "{routing}");
    assert_eq!(routing["combo"], "coding-fast", "{routing}");
    assert_num!(
        routing["fallbacksTriggered"],
        0,
        "first step served: {routing}"
    );
    assert_close(&routing["cost"], SMALL_COST, "routing.cost");
    assert_num!(routing["tokensIn"], 7, "{routing}");
    assert_num!(routing["tokensOut"], 3, "{routing}");
    let request_id = routing["requestId"].as_str().unwrap_or_default();
    assert!(is_uuid(request_id), "requestId must be a UUID: {routing}");
}

// ------------------------------------------------------------------------------------------
// Phase 1
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_health_reads_the_live_gateway_and_uptime_grows() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;

    let first = client.call(HEALTH, json!({})).await.into_ok();
    assert_eq!(first["status"], "healthy", "{first}");
    assert_eq!(first["version"], "3.7.9", "{first}");
    let uptime = num(&first["uptime"], "uptime");
    assert!(uptime > 0.0, "{first}");
    assert!(
        num(&first["memoryUsage"]["heapUsed"], "heapUsed") > 0.0
            && num(&first["memoryUsage"]["heapTotal"], "heapTotal") > 0.0,
        "{first}"
    );
    assert!(first["circuitBreakers"].is_array(), "{first}");
    for breaker in first["circuitBreakers"].as_array().unwrap() {
        assert_eq!(
            keys(breaker),
            [
                "provider",
                "state",
                "failureCount",
                "lastFailure",
                "retryAfterMs"
            ],
            "{breaker}"
        );
    }
    let connection = first["rateLimits"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|c| c["connectionId"] == gateway.connection_id().as_str())
        })
        .unwrap_or_else(|| panic!("the seeded connection is not in rateLimits: {first}"));
    assert_eq!(
        connection["provider"],
        gateway.node_id.as_str(),
        "{connection}"
    );
    let hit_rate = &first["cacheStats"]["hitRate"];
    assert!(hit_rate.is_number(), "hitRate is a number: {first}");
    assert!(first["cacheStats"]["misses"].is_number(), "{first}");
    assert_eq!(first["cryptography"]["provider"], "aes-256-gcm", "{first}");
    assert_eq!(first["degraded"], json!([]), "{first}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = client.call(HEALTH, json!({})).await.into_ok();
    let later = num(&second["uptime"], "uptime");
    assert!(
        later >= uptime + 1.0,
        "uptime (seconds) must grow by the 1.1 s slept: {uptime} then {later}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_combo_by_name_disables_a_combo_and_list_combos_reads_it() {
    let gateway = RealGateway::plain();
    let name = unique_name("e2e-switch");
    let id = gateway.create_combo(&name, &["mock/mock-small"]).await;
    let client = start(&gateway).await;

    let listed = client.call(LIST_COMBOS, json!({})).await.into_ok();
    let before = combo_named(&listed, &name);
    assert_eq!(before["id"], id.as_str(), "{before}");
    assert_eq!(
        before["enabled"], true,
        "a fresh combo has no isActive: {before}"
    );
    assert_same(
        &before["models"],
        &json!([{ "provider": "mock", "model": "mock/mock-small", "priority": 1 }]),
        "models normalised",
    );
    assert_eq!(before["strategy"], "priority");
    assert!(
        listed.get("degraded").is_none(),
        "no degraded without includeMetrics: {listed}"
    );

    let off = client
        .call(SWITCH_COMBO, json!({ "comboId": name, "active": false }))
        .await
        .into_ok();
    assert_eq!(off["id"], id.as_str(), "resolved by name: {off}");
    assert_eq!(off["name"], name.as_str());
    assert_eq!(off["enabled"], false, "{off}");
    assert_eq!(off["isActive"], false, "the gateway's record: {off}");
    assert_eq!(&keys(&off)[..3], ["id", "name", "enabled"], "{off}");

    let listed = client.call(LIST_COMBOS, json!({})).await.into_ok();
    assert_eq!(combo_named(&listed, &name)["enabled"], false, "{listed}");
    let stored = gateway.combos().await;
    let stored = stored
        .iter()
        .find(|c| c["id"] == id.as_str())
        .expect("combo stored");
    assert_eq!(stored["isActive"], false, "the gateway stored it: {stored}");

    let on = client
        .call(SWITCH_COMBO, json!({ "comboId": id, "active": true }))
        .await
        .into_ok();
    assert_eq!(on["enabled"], true, "switched back by id: {on}");
    let listed = client.call(LIST_COMBOS, json!({})).await.into_ok();
    assert_eq!(combo_named(&listed, &name)["enabled"], true, "{listed}");

    client.shutdown().await;
    gateway.delete_combo(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_combo_metrics_counts_the_completions_just_sent() {
    const N: u64 = 3;
    let _traffic = traffic_lock().read().await;
    let gateway = RealGateway::plain();
    let name = unique_name("e2e-metrics");
    let id = gateway.create_combo(&name, &["mock/mock-small"]).await;
    let client = start(&gateway).await;

    let fresh = client
        .call(COMBO_METRICS, json!({ "comboId": name }))
        .await
        .into_ok();
    assert_eq!(fresh["id"], id.as_str(), "{fresh}");
    assert_eq!(fresh["metrics"], Value::Null, "no traffic yet: {fresh}");
    assert_eq!(fresh["message"], "No metrics for this combo yet", "{fresh}");

    for _ in 0..N {
        let out = route(
            &client,
            json!({ "model": "mock/mock-small", "combo": name, "messages": messages(&prompt()) }),
        )
        .await;
        let routing = &out["routing"];
        assert_eq!(routing["combo"], name.as_str(), "{routing}");
        assert_num!(routing["fallbacksTriggered"], 0, "{routing}");
        assert_eq!(routing["provider"], gateway.node_id.as_str(), "{routing}");
    }

    for key in [name.as_str(), id.as_str()] {
        let out = client
            .call(COMBO_METRICS, json!({ "comboId": key }))
            .await
            .into_ok();
        assert_eq!(keys(&out), ["id", "name", "metrics"], "{out}");
        assert_eq!(out["name"], name.as_str(), "{out}");
        let metrics = &out["metrics"];
        assert_num!(metrics["totalRequests"], N, "looked up by {key}: {out}");
        assert_num!(metrics["totalSuccesses"], N, "{out}");
        assert_num!(metrics["totalFailures"], 0, "{out}");
        assert_num!(
            metrics["byModel"]["mock/mock-small"]["requests"],
            N,
            "{out}"
        );
        assert_eq!(metrics["strategy"], "priority", "{out}");
    }

    let listed = client
        .call(LIST_COMBOS, json!({ "includeMetrics": true }))
        .await
        .into_ok();
    assert_eq!(
        combo_named(&listed, &name)["metrics"]["totalRequests"],
        N,
        "list_combos finds the metrics by name: {listed}"
    );
    assert_eq!(listed["degraded"], json!([]), "{listed}");

    client.shutdown().await;
    gateway.delete_combo(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_combos_are_reported_as_not_found() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let missing = unique_name("no-such-combo");
    let metrics = client
        .call(COMBO_METRICS, json!({ "comboId": missing }))
        .await;
    assert_eq!(
        metrics.expect_error(),
        format!("Error: Combo not found: \"{missing}\"")
    );
    let switch = client
        .call(SWITCH_COMBO, json!({ "comboId": missing, "active": false }))
        .await;
    assert_eq!(
        switch.expect_error(),
        format!("Error: Combo not found: \"{missing}\"")
    );
    client.shutdown().await;
}

/// One completion through `coding-fast`, with the mock upstream otherwise quiet: the routing
/// facts are the gateway's headers, and exactly this one request reached the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_request_reports_the_gateways_routing_facts() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let text = prompt();

    let (before, out, after) = {
        let _quiet = traffic_lock().write().await;
        let before = gateway.mock_stats().await;
        let out = route(
            &client,
            json!({ "model": "coding-fast", "messages": messages(&text) }),
        )
        .await;
        let after = gateway.mock_stats().await;
        (before, out, after)
    };

    assert_eq!(
        keys(&out),
        ["response", "routing"],
        "no warnings without a guard: {out}"
    );
    assert_eq!(out["response"]["content"], "Hello from mock", "{out}");
    assert_eq!(out["response"]["model"], "mock-small", "{out}");
    assert!(out["response"]["tokens"]["prompt"].is_number(), "{out}");
    assert_num!(out["response"]["tokens"]["completion"], 3, "{out}");

    let routing = &out["routing"];
    assert_eq!(
        keys(routing),
        [
            "provider",
            "model",
            "combo",
            "requestId",
            "fallbacksTriggered",
            "cost",
            "latencyMs",
            "cache",
            "tokensIn",
            "tokensOut",
            "routingExplanation"
        ],
        "{routing}"
    );
    assert_coding_fast_routing(&gateway, routing);
    assert!(num(&routing["latencyMs"], "latencyMs") >= 0.0, "{routing}");
    assert_eq!(routing["cache"], "MISS", "a unique prompt: {routing}");
    assert_eq!(
        routing["routingExplanation"],
        format!(
            "Routed via combo \"coding-fast\" to mock-small on {}",
            gateway.node_id
        ),
    );

    assert_eq!(
        after.chat_requests(),
        before.chat_requests() + 1,
        "exactly one upstream call: {} then {}",
        before.0,
        after.0
    );
    assert_eq!(
        after.by_model("mock-small"),
        before.by_model("mock-small") + 1
    );
    let upstream = after.last_chat_body();
    assert_eq!(upstream["model"], "mock-small", "{upstream}");
    assert_eq!(
        upstream["messages"][0]["content"],
        text.as_str(),
        "the upstream got this request: {upstream}"
    );
    for field in ["x-combo", "x-provider", "role", "budget"] {
        assert!(
            upstream.get(field).is_none(),
            "{field} must not be forwarded: {upstream}"
        );
    }
    assert_eq!(
        after.last_chat_authorization(),
        Some("Bearer sk-mock"),
        "the gateway's upstream key, not ours"
    );

    // A direct model: no combo, no fallback count, mock-large's price. `stream: true` is
    // accepted, but the call stays non-streaming (one result).
    let (direct, streams_before, streams_after) = {
        let _traffic = traffic_lock().read().await;
        let before = gateway.mock_stats().await;
        let out = route(
            &client,
            json!({ "model": "mock/mock-large", "messages": messages(&prompt()), "stream": true }),
        )
        .await;
        let after = gateway.mock_stats().await;
        (
            out,
            before.0["streamRequests"].clone(),
            after.0["streamRequests"].clone(),
        )
    };
    assert_eq!(
        streams_after, streams_before,
        "no streaming request reached the upstream"
    );
    assert_eq!(direct["response"]["content"], "Hello from mock", "{direct}");
    let routing2 = &direct["routing"];
    assert_eq!(routing2["provider"], gateway.node_id.as_str(), "{routing2}");
    assert_eq!(routing2["model"], "mock-large", "{routing2}");
    assert_eq!(routing2["combo"], Value::Null, "{routing2}");
    assert_eq!(routing2["fallbacksTriggered"], Value::Null, "{routing2}");
    assert_close(&routing2["cost"], LARGE_COST, "mock-large cost");
    assert_ne!(
        routing2["requestId"], routing["requestId"],
        "fresh id per request"
    );
    assert_eq!(
        routing2["routingExplanation"],
        format!("Routed to mock-large on {}", gateway.node_id),
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_report_session_is_the_ledger_and_day_is_gateway_analytics() {
    let _traffic = traffic_lock().read().await;
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;

    let empty = client.call(COST_REPORT, json!({})).await.into_ok();
    assert_same(
        &empty,
        &json!({
            "period": "session", "source": "session_ledger", "range": null, "totalCost": 0,
            "requestCount": 0, "tokenCount": { "prompt": 0, "completion": 0 },
            "byProvider": [], "byModel": [], "budget": { "limit": null, "remaining": null }
        }),
        "a fresh session",
    );
    let day_before = client
        .call(COST_REPORT, json!({ "period": "day" }))
        .await
        .into_ok();
    let requests_before = num(&day_before["requestCount"], "day requestCount");

    let outputs = [
        route_combo(&client, "coding-fast").await,
        route(
            &client,
            json!({ "model": "mock/mock-large", "messages": messages(&prompt()) }),
        )
        .await,
        route_combo(&client, "coding-fast").await,
    ];
    let costs: Vec<f64> = outputs
        .iter()
        .map(|o| num(&o["routing"]["cost"], "routing.cost"))
        .collect();
    let sum = round_cost(costs.iter().sum());
    assert_close(
        &json!(sum),
        2.0 * SMALL_COST + LARGE_COST,
        "the three costs",
    );

    let session = client
        .call(COST_REPORT, json!({ "period": "session" }))
        .await
        .into_ok();
    assert_eq!(
        keys(&session),
        [
            "period",
            "source",
            "range",
            "totalCost",
            "requestCount",
            "tokenCount",
            "byProvider",
            "byModel",
            "budget"
        ]
    );
    assert_eq!(session["source"], "session_ledger");
    assert_num!(
        session["requestCount"],
        3,
        "exactly this session's completions: {session}"
    );
    assert_close(&session["totalCost"], sum, "totalCost = Σ routing.cost");
    assert_same(
        &session["tokenCount"],
        &json!({ "prompt": 21, "completion": 9 }),
        "tokens",
    );
    let node = gateway.node_id.as_str();
    assert_same(
        &session["byProvider"],
        &json!([{ "provider": node, "requests": 3, "promptTokens": 21, "completionTokens": 9,
                  "totalTokens": 30, "cost": sum }]),
        "byProvider",
    );
    let by_model = session["byModel"].as_array().expect("byModel");
    assert_eq!(by_model.len(), 2, "{session}");
    assert_eq!(
        by_model[0]["model"], "mock-small",
        "most requests first: {session}"
    );
    assert_num!(by_model[0]["requests"], 2);
    assert_close(&by_model[0]["cost"], 2.0 * SMALL_COST, "mock-small cost");
    assert_eq!(by_model[1]["model"], "mock-large");
    assert_eq!(by_model[1]["provider"], node);
    assert_close(&by_model[1]["cost"], LARGE_COST, "mock-large cost");

    // The gateway-wide day: analytics, shared with every other client, so >= and deltas.
    let deadline = Instant::now() + Duration::from_secs(15);
    let day = loop {
        let day = client
            .call(COST_REPORT, json!({ "period": "day" }))
            .await
            .into_ok();
        if num(&day["requestCount"], "requestCount") >= requests_before + 3.0
            || Instant::now() > deadline
        {
            break day;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(day["source"], "gateway_analytics", "{day}");
    assert_eq!(day["range"], "1d", "{day}");
    assert!(
        num(&day["requestCount"], "requestCount") >= requests_before + 3.0,
        "the 3 completions show up in analytics: {requests_before} then {}",
        day["requestCount"]
    );
    assert!(
        num(&day["totalCost"], "totalCost") + 1e-12 >= sum,
        "the day costs at least this session: {day}"
    );
    assert!(
        num(&day["tokenCount"]["prompt"], "prompt") >= 21.0,
        "{}",
        day["tokenCount"]
    );
    let provider = day["byProvider"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["provider"] == node))
        .unwrap_or_else(|| panic!("the node is in analytics byProvider: {day}"));
    assert!(num(&provider["requests"], "requests") >= 3.0, "{provider}");
    assert_same(
        &day["budget"],
        &json!({ "limit": null, "remaining": null }),
        "no guard",
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_models_catalog_filters_and_prices_in_our_server() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let node = gateway.node_id.as_str();

    let all = client.call(CATALOG, json!({})).await.into_ok();
    assert_eq!(keys(&all), ["models", "source", "degraded"], "{all}");
    assert_eq!(all["source"], "local_catalog");
    let models = all["models"].as_array().expect("models");
    // 3.7.9 lists no model status: null for each, and said once in degraded.
    assert_eq!(
        all["degraded"],
        json!([{
            "source": "GET /v1/models",
            "error": format!("the answer has no `status` for {n} of {n} listed models; their status is null", n = models.len()),
        }]),
        "{all}"
    );
    let entry = |id: &str| {
        models
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {all}"))
            .clone()
    };
    let small = entry("mock/mock-small");
    assert_eq!(small["provider"], node, "owned_by is the node id: {small}");
    assert_eq!(small["capabilities"][0], "chat", "{small}");
    assert_eq!(small["status"], Value::Null, "the gateway sends no status: {small}");
    assert_same(
        &small["pricing"],
        &json!({ "inputPerMillion": 1.5, "outputPerMillion": 6 }),
        "mock-small pricing (stored under the node id)",
    );
    assert_eq!(
        &keys(&small)[..5],
        ["id", "provider", "capabilities", "status", "pricing"]
    );
    let large = entry("mock/mock-large");
    assert_same(
        &large["pricing"],
        &json!({ "inputPerMillion": 3, "outputPerMillion": 15 }),
        "mock-large pricing",
    );
    let coding = entry("coding-fast");
    assert_eq!(coding["provider"], "combo", "{coding}");
    assert!(
        coding.get("pricing").is_none(),
        "combos have no price: {coding}"
    );

    let mock = client
        .call(CATALOG, json!({ "provider": "mock" }))
        .await
        .into_ok();
    let ids: Vec<&str> = mock["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["mock/mock-small", "mock/mock-large"],
        "provider mock (the prefix): {mock}"
    );
    let by_node = client
        .call(CATALOG, json!({ "provider": node }))
        .await
        .into_ok();
    assert_eq!(
        by_node["models"], mock["models"],
        "the node id is the same provider"
    );

    let embedding = client
        .call(CATALOG, json!({ "capability": "embedding" }))
        .await
        .into_ok();
    assert_eq!(
        embedding["models"],
        json!([]),
        "no embedding model: {embedding}"
    );
    let chat = client
        .call(CATALOG, json!({ "provider": "mock", "capability": "chat" }))
        .await
        .into_ok();
    assert_eq!(chat["models"], mock["models"], "both mock models chat");

    let combos = client
        .call(CATALOG, json!({ "provider": "combo" }))
        .await
        .into_ok();
    let combos = combos["models"].as_array().expect("models");
    assert!(
        combos.iter().all(|m| m["provider"] == "combo"),
        "only combos: {combos:?}"
    );
    for name in ["coding-fast", "free-tier"] {
        assert!(
            combos.iter().any(|m| m["id"] == name),
            "{name} missing: {combos:?}"
        );
    }
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_quota_lists_the_mock_connection_under_its_node_id() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let node = gateway.node_id.as_str();
    let connection = gateway.connection_id();

    let all = client.call(CHECK_QUOTA, json!({})).await.into_ok();
    let providers = all["providers"].as_array().expect("providers");
    let entry = providers
        .iter()
        .find(|p| p["provider"] == node)
        .unwrap_or_else(|| panic!("the node id is not among the providers: {all}"));
    assert_eq!(
        keys(entry),
        [
            "name",
            "provider",
            "connectionId",
            "quotaUsed",
            "quotaTotal",
            "percentRemaining",
            "resetAt",
            "tokenStatus"
        ],
        "{entry}"
    );
    assert_eq!(entry["name"], "mockconn", "{entry}");
    assert_eq!(entry["connectionId"], connection.as_str(), "{entry}");
    assert_eq!(entry["resetAt"], Value::Null, "{entry}");
    assert_eq!(entry["tokenStatus"], "valid", "{entry}");
    assert_quota_consistent(
        &entry["quotaUsed"],
        &entry["quotaTotal"],
        Some(&entry["percentRemaining"]),
        "the seeded API-key connection",
    );
    assert_eq!(all["meta"]["totalProviders"], providers.len(), "{all}");
    assert_same(
        &all["meta"]["filters"],
        &json!({ "provider": null, "connectionId": null }),
        "no filters",
    );

    let by_prefix = client
        .call(CHECK_QUOTA, json!({ "provider": "mock" }))
        .await
        .into_ok();
    let providers = by_prefix["providers"].as_array().expect("providers");
    assert!(
        !providers.is_empty() && providers.iter().all(|p| p["provider"] == node),
        "\"mock\" is mapped to the node id before it is sent: {by_prefix}"
    );
    assert_eq!(
        by_prefix["meta"]["filters"]["provider"], "mock",
        "echoes the input"
    );

    let by_connection = client
        .call(CHECK_QUOTA, json!({ "connectionId": connection }))
        .await
        .into_ok();
    assert_eq!(
        by_connection["providers"].as_array().map(Vec::len),
        Some(1),
        "{by_connection}"
    );
    assert_eq!(
        by_connection["providers"][0]["connectionId"],
        connection.as_str()
    );
    client.shutdown().await;
}

// ------------------------------------------------------------------------------------------
// Phase 2
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_route_prices_coding_fast_from_gateway_pricing() {
    const TOKENS: f64 = 12345.0;
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let breaker = mock_breaker_state(&gateway).await;
    let out = client
        .call(
            SIMULATE,
            json!({ "model": "mock/mock-small", "promptTokenEstimate": TOKENS, "combo": "coding-fast" }),
        )
        .await
        .into_ok();
    assert_eq!(
        keys(&out),
        ["simulatedPath", "fallbackTree", "assumptions", "degraded"],
        "{out}"
    );
    let path = out["simulatedPath"].as_array().expect("simulatedPath");
    assert_eq!(path.len(), 2, "{out}");
    let small = round_cost(TOKENS * 1.5 / 1e6);
    let large = round_cost(TOKENS * 3.0 / 1e6);
    for (step, (model, probability, cost)) in path.iter().zip([
        ("mock/mock-small", 0.85, small),
        ("mock/mock-large", 0.15, large),
    ]) {
        assert_eq!(
            keys(step),
            [
                "provider",
                "model",
                "probability",
                "estimatedCost",
                "costBasis",
                "healthStatus",
                "quotaAvailable"
            ],
            "{step}"
        );
        assert_eq!(step["provider"], "mock", "{step}");
        assert_eq!(step["model"], model, "{step}");
        assert_close(&step["probability"], probability, "probability");
        assert_close(
            &step["estimatedCost"],
            cost,
            "estimatedCost = tokens × input price / 1e6",
        );
        assert_eq!(step["costBasis"], "gateway_pricing", "{step}");
        assert_eq!(
            step["healthStatus"], breaker,
            "the gateway's breaker state for mock: {step}"
        );
        // The idle mock connection has no known limit (the gateway says 100 % for it):
        // null; while its queue has recent traffic the gateway knows a window.
        let quota = &step["quotaAvailable"];
        assert!(
            quota.is_null() || quota.as_f64().is_some_and(|q| (0.0..=100.0).contains(&q)),
            "null for an unknown limit, else a percentage: {step}"
        );
    }
    let tree = &out["fallbackTree"];
    assert_eq!(tree["primary"], "mock", "{tree}");
    assert_eq!(tree["fallbacks"], json!(["mock"]), "{tree}");
    assert_close(&tree["worstCaseCost"], large, "worstCaseCost");
    assert_close(&tree["bestCaseCost"], small, "bestCaseCost (the min, > 0)");
    assert_eq!(tree["costEstimated"], false, "{tree}");
    let assumptions = out["assumptions"].to_string();
    assert!(
        assumptions.contains("probability is a fixed heuristic"),
        "{assumptions}"
    );
    assert!(
        assumptions.contains("estimatedCost prices the prompt tokens only"),
        "{assumptions}"
    );
    assert_eq!(out["degraded"], json!([]), "{out}");
    client.shutdown().await;
}

/// block with a tiny limit: the first completion goes through and exhausts the budget, the
/// second is refused before anything is sent (the mock upstream sees nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_guard_block_refuses_before_sending() {
    const LIMIT: f64 = 0.00001;
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;

    let guard = client
        .call(BUDGET, json!({ "maxCost": LIMIT, "action": "block" }))
        .await
        .into_ok();
    assert_eq!(
        keys(&guard),
        [
            "sessionId",
            "budgetTotal",
            "budgetSpent",
            "budgetRemaining",
            "action",
            "status"
        ],
        "{guard}"
    );
    let session_id = guard["sessionId"].as_str().unwrap_or_default();
    assert!(
        session_id
            .strip_prefix("budget_")
            .is_some_and(|ms| !ms.is_empty() && ms.chars().all(|c| c.is_ascii_digit())),
        "{guard}"
    );
    assert_close(&guard["budgetTotal"], LIMIT, "budgetTotal");
    assert_close(&guard["budgetSpent"], 0.0, "budgetSpent");
    assert_close(&guard["budgetRemaining"], LIMIT, "budgetRemaining");
    assert_eq!(guard["action"], "block");
    assert_eq!(guard["status"], "active");

    let _quiet = traffic_lock().write().await;
    let start_stats = gateway.mock_stats().await;
    let first = route_combo(&client, "coding-fast").await;
    assert_coding_fast_routing(&gateway, &first["routing"]);
    assert_eq!(
        first["warnings"],
        json!(["Budget limit reached: session spend 0.0000285 USD of 0.00001 USD."]),
        "{first}"
    );
    let sent = gateway.mock_stats().await;
    assert_eq!(
        sent.chat_requests(),
        start_stats.chat_requests() + 1,
        "the first one was sent"
    );

    let second = client
        .call(
            ROUTE,
            json!({ "model": "coding-fast", "messages": messages(&prompt()) }),
        )
        .await;
    assert_eq!(
        second.expect_error(),
        "Error: Budget guard blocked the request: session spend 0.0000285 USD reached the limit 0.00001 USD (action=block)."
    );
    let refused_test = client
        .call(
            TEST_COMBO,
            json!({ "comboId": "coding-fast", "testPrompt": "hi" }),
        )
        .await;
    assert_eq!(
        refused_test.expect_error(),
        "Error: Budget guard blocked the request: session spend 0.0000285 USD reached the limit 0.00001 USD (action=block).",
        "test_combo is refused under block too (C.12)"
    );
    let end_stats = gateway.mock_stats().await;
    assert_eq!(
        end_stats.chat_requests(),
        sent.chat_requests(),
        "nothing reached the upstream after the limit: {} then {}",
        sent.0,
        end_stats.0
    );
    assert_eq!(
        end_stats.0["requests"], sent.0["requests"],
        "no upstream request at all"
    );
    drop(_quiet);

    let snapshot = client.call(SNAPSHOT, json!({})).await.into_ok();
    assert_num!(
        snapshot["requestCount"],
        1,
        "refused requests are not sent: {snapshot}"
    );
    assert_same(
        &snapshot["budgetGuard"],
        &json!({ "active": true, "remaining": 0, "action": "block", "limit": LIMIT, "spent": SMALL_COST }),
        "budgetGuard",
    );
    let again = client
        .call(BUDGET, json!({ "maxCost": LIMIT, "action": "block" }))
        .await
        .into_ok();
    assert_eq!(again["status"], "exceeded", "{again}");
    assert_close(
        &again["budgetSpent"],
        SMALL_COST,
        "budgetSpent is the real spend",
    );
    assert_close(&again["budgetRemaining"], 0.0, "budgetRemaining");
    assert_ne!(
        again["sessionId"], guard["sessionId"],
        "a new guard replaces the old"
    );
    client.shutdown().await;
}

/// degrade (tier free, then the default cheap), alert, and the per-request `budget` warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_guard_degrade_and_alert_follow_the_contract() {
    const LIMIT: f64 = 0.00001;
    let _traffic = traffic_lock().read().await;
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;

    // The per-request budget never blocks; it warns after the fact.
    let first = route(
        &client,
        json!({ "model": "coding-fast", "budget": LIMIT, "messages": messages(&prompt()) }),
    )
    .await;
    assert_eq!(
        first["warnings"],
        json!(["Request cost 0.0000285 USD exceeded the per-request budget 0.00001 USD."]),
        "{first}"
    );

    let guard = client
        .call(
            BUDGET,
            json!({ "maxCost": LIMIT, "action": "degrade", "degradeToTier": "free" }),
        )
        .await
        .into_ok();
    assert_eq!(
        keys(&guard),
        [
            "sessionId",
            "budgetTotal",
            "budgetSpent",
            "budgetRemaining",
            "action",
            "degradeToTier",
            "status"
        ],
        "{guard}"
    );
    assert_eq!(
        guard["status"], "exceeded",
        "the session already spent more: {guard}"
    );
    let free = route_combo(&client, "coding-fast").await;
    let routing = &free["routing"];
    assert_eq!(
        routing["combo"], "free-tier",
        "tier free: the combo named free: {free}"
    );
    assert_eq!(routing["degradedFrom"], "coding-fast", "{free}");
    assert_eq!(routing["model"], "mock-small", "{free}");
    assert_eq!(
        free["warnings"],
        json!([
            "Budget guard degraded the request from \"coding-fast\" to \"free-tier\" (tier free)."
        ]),
        "{free}"
    );

    client
        .call(BUDGET, json!({ "maxCost": LIMIT, "action": "degrade" }))
        .await
        .into_ok();
    let cheap = route(
        &client,
        json!({ "model": "mock/mock-large", "messages": messages(&prompt()) }),
    )
    .await;
    let routing = &cheap["routing"];
    let target = routing["combo"].as_str().unwrap_or_default().to_owned();
    let combos = gateway.combos().await;
    let target_combo = combos
        .iter()
        .find(|c| c["name"] == target.as_str())
        .unwrap_or_else(|| panic!("tier cheap must pick a combo: {cheap}"));
    assert_eq!(
        target_combo["models"][0]["model"], "mock/mock-small",
        "the combo whose first step is cheapest (mock-small, 7.5 USD/M): {cheap}"
    );
    assert_eq!(routing["degradedFrom"], "mock/mock-large", "{cheap}");
    assert_eq!(routing["model"], "mock-small", "{cheap}");
    assert_close(
        &routing["cost"],
        SMALL_COST,
        "the degraded request's real cost",
    );
    assert_eq!(
        cheap["warnings"],
        json!([format!(
            "Budget guard degraded the request from \"mock/mock-large\" to \"{target}\" (tier cheap)."
        )]),
        "{cheap}"
    );

    client
        .call(BUDGET, json!({ "maxCost": LIMIT, "action": "alert" }))
        .await
        .into_ok();
    let alerted = route_combo(&client, "coding-fast").await;
    assert_eq!(
        alerted["routing"]["combo"], "coding-fast",
        "alert sends unchanged: {alerted}"
    );
    assert_eq!(
        alerted["warnings"],
        json!(["Budget guard alert: session spend 0.0000855 USD exceeds the limit 0.00001 USD."]),
        "{alerted}"
    );
    let snapshot = client.call(SNAPSHOT, json!({})).await.into_ok();
    assert_num!(snapshot["requestCount"], 4, "{snapshot}");
    assert_close(&snapshot["costTotal"], 4.0 * SMALL_COST, "costTotal");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_combo_runs_every_step_of_coding_fast_for_real() {
    let _traffic = traffic_lock().read().await;
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let before = gateway.mock_stats().await;
    let out = client
        .call(
            TEST_COMBO,
            json!({ "comboId": gateway.combo_id("coding-fast"), "testPrompt": prompt() }),
        )
        .await
        .into_ok();
    let after = gateway.mock_stats().await;

    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{out}");
    let mut ids = Vec::new();
    for (item, (model, cost)) in results.iter().zip([
        ("mock/mock-small", SMALL_COST),
        ("mock/mock-large", LARGE_COST),
    ]) {
        assert_eq!(
            keys(item),
            [
                "provider",
                "model",
                "success",
                "latencyMs",
                "cost",
                "tokenCount",
                "requestId"
            ],
            "{item}"
        );
        assert_eq!(item["provider"], "mock", "{item}");
        assert_eq!(item["model"], model, "in combo order: {item}");
        assert_eq!(item["success"], true, "{item}");
        assert!(
            num(&item["latencyMs"], "latencyMs") > 0.0,
            "measured: {item}"
        );
        assert_close(&item["cost"], cost, "real cost");
        assert_num!(item["tokenCount"], 10, "7 in + 3 out: {item}");
        let id = item["requestId"].as_str().unwrap_or_default();
        assert!(is_uuid(id), "{item}");
        ids.push(id.to_owned());
    }
    assert_ne!(ids[0], ids[1]);
    let summary = &out["summary"];
    assert_num!(summary["totalProviders"], 2, "{summary}");
    assert_num!(summary["successful"], 2, "{summary}");
    assert_eq!(summary["fastestProvider"], "mock", "{summary}");
    assert_eq!(summary["cheapestProvider"], "mock", "{summary}");
    assert_close(
        &summary["totalCost"],
        SMALL_COST + LARGE_COST,
        "summary.totalCost",
    );
    assert!(out.get("warnings").is_none(), "{out}");
    assert!(
        after.by_model("mock-small") > before.by_model("mock-small")
            && after.by_model("mock-large") > before.by_model("mock-large"),
        "both steps reached the upstream: {} then {}",
        before.0,
        after.0
    );

    let snapshot = client.call(SNAPSHOT, json!({})).await.into_ok();
    assert_num!(
        snapshot["requestCount"],
        2,
        "test_combo steps are in the ledger: {snapshot}"
    );
    assert_close(&snapshot["costTotal"], SMALL_COST + LARGE_COST, "costTotal");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_provider_metrics_resolves_the_prefix_to_the_node() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    {
        let _traffic = traffic_lock().read().await;
        route_combo(&client, "coding-fast").await;
    }
    let node = gateway.node_id.as_str();
    let breaker = mock_breaker_state(&gateway).await;
    let out = client
        .call(PROVIDER_METRICS, json!({ "provider": "mock" }))
        .await
        .into_ok();
    assert_eq!(
        keys(&out),
        [
            "provider",
            "resolvedAs",
            "successRate",
            "requestCount",
            "avgLatencyMs",
            "p50LatencyMs",
            "p95LatencyMs",
            "p99LatencyMs",
            "errorRate",
            "lastError",
            "lastErrorAt",
            "circuitBreakerState",
            "quotaInfo",
            "sampleSize",
            "degraded"
        ],
        "{out}"
    );
    assert_eq!(out["provider"], "mock");
    assert_eq!(
        out["resolvedAs"],
        json!(["mock", node]),
        "sorted alias set: {out}"
    );
    let requests = num(&out["requestCount"], "requestCount");
    assert!(requests >= 1.0, "{out}");
    let success = num(&out["successRate"], "successRate");
    assert!(success > 0.0 && success <= 1.0, "a fraction: {out}");
    assert_close(
        &out["errorRate"],
        ((1.0 - success) * 1e4).round() / 1e4,
        "errorRate = 1 − successRate",
    );
    assert!(num(&out["avgLatencyMs"], "avgLatencyMs") >= 0.0, "{out}");
    let (p50, p95, p99) = (
        num(&out["p50LatencyMs"], "p50"),
        num(&out["p95LatencyMs"], "p95"),
        num(&out["p99LatencyMs"], "p99"),
    );
    assert!(p50 <= p95 && p95 <= p99, "{out}");
    assert!(num(&out["sampleSize"], "sampleSize") >= 1.0, "{out}");
    assert_eq!(
        out["circuitBreakerState"], breaker,
        "the worst of the mock and node-id breakers: {out}"
    );
    let quota = &out["quotaInfo"];
    assert_eq!(keys(quota), ["used", "total", "resetAt"], "{out}");
    assert_quota_consistent(
        &quota["used"],
        &quota["total"],
        None,
        "quotaInfo of the connection",
    );
    assert_eq!(out["degraded"], json!([]), "{out}");

    let by_node = client
        .call(PROVIDER_METRICS, json!({ "provider": node }))
        .await
        .into_ok();
    assert_eq!(by_node["resolvedAs"], json!(["mock", node]), "{by_node}");
    assert!(
        num(&by_node["requestCount"], "requestCount") >= requests,
        "{by_node}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_combo_for_task_coding_picks_coding_fast() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    {
        // Traffic on mock-small, so analytics knows its per-request cost.
        let _traffic = traffic_lock().read().await;
        route_combo(&client, "coding-fast").await;
    }
    let coding_fast = gateway.combo_id("coding-fast");
    let free_tier = gateway.combo_id("free-tier");

    if mock_breaker_state(&gateway).await == "OPEN" {
        // Something tripped the shared gateway's mock breaker: every seeded combo is skipped.
        let text = client
            .call(BEST_COMBO, json!({ "taskType": "coding" }))
            .await
            .expect_error()
            .to_owned();
        assert!(
            text.contains("coding-fast: all providers' breakers OPEN (mock)"),
            "{text}"
        );
        client.shutdown().await;
        return;
    }
    let out = client
        .call(BEST_COMBO, json!({ "taskType": "coding" }))
        .await
        .into_ok();
    assert_eq!(
        keys(&out),
        [
            "recommendedCombo",
            "alternatives",
            "freeAlternative",
            "excluded",
            "degraded"
        ],
        "{out}"
    );
    assert_same(
        &out["recommendedCombo"],
        &json!({ "id": coding_fast, "name": "coding-fast",
                 "reason": "Best match for \"coding\": preferred providers (claude, deepseek, codex)" }),
        "coding-fast scores 5 (trait fast)",
    );
    assert_same(
        &out["freeAlternative"],
        &json!({ "id": free_tier, "name": "free-tier" }),
        "free-tier is free by name",
    );
    let alternatives = out["alternatives"].as_array().expect("alternatives");
    assert!(alternatives.len() <= 3, "{out}");
    if let Some(free) = alternatives.iter().find(|a| a["name"] == "free-tier") {
        assert_eq!(free["tradeoff"], "free but may have limits", "{free}");
    }
    assert_eq!(out["degraded"], json!([]), "{out}");

    // A generous budget is applied to coding-fast (its first step has analytics costs).
    let generous = client
        .call(
            BEST_COMBO,
            json!({ "taskType": "coding", "budgetConstraint": 1 }),
        )
        .await
        .into_ok();
    assert_eq!(
        generous["recommendedCombo"]["name"], "coding-fast",
        "{generous}"
    );
    let reason = generous["recommendedCombo"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("; budgetConstraint 1 USD: applied to "),
        "{reason}"
    );
    assert_eq!(generous["degraded"], json!([]), "{generous}");

    // Below mock-small's real per-request cost: every candidate starting with it is excluded.
    let tight = client
        .call(
            BEST_COMBO,
            json!({ "taskType": "coding", "budgetConstraint": 0.00001 }),
        )
        .await;
    let text = tight.expect_error();
    assert!(
        text.starts_with("Error: No enabled combo satisfies the constraints: "),
        "{text}"
    );
    assert!(text.contains("coding-fast: expected cost "), "{text}");
    assert!(text.contains("free-tier: expected cost "), "{text}");
    assert!(text.contains(" USD > 0.00001 USD"), "{text}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_route_explains_a_request_this_server_sent() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let out = {
        let _traffic = traffic_lock().read().await;
        route(
            &client,
            json!({ "model": "coding-fast", "messages": messages(&prompt()), "role": "coding" }),
        )
        .await
    };
    let routing = &out["routing"];
    assert_coding_fast_routing(&gateway, routing);
    let request_id = routing["requestId"].as_str().unwrap().to_owned();

    let breaker = mock_breaker_state(&gateway).await;
    let explained = client
        .call(EXPLAIN, json!({ "requestId": request_id }))
        .await
        .into_ok();
    assert_eq!(
        keys(&explained),
        ["requestId", "source", "decision", "scoreBasis", "degraded"],
        "{explained}"
    );
    assert_eq!(explained["requestId"], request_id.as_str());
    let source = explained["source"].as_str().unwrap_or_default();
    assert!(
        source == "host_ledger+call_logs" || source == "host_ledger",
        "{explained}"
    );
    let decision = &explained["decision"];
    assert_eq!(
        keys(decision),
        [
            "comboUsed",
            "providerSelected",
            "modelUsed",
            "score",
            "factors",
            "fallbacksTriggered",
            "costActual",
            "latencyActual"
        ],
        "{decision}"
    );
    assert_eq!(decision["comboUsed"], "coding-fast", "{decision}");
    assert_eq!(
        decision["providerSelected"],
        gateway.node_id.as_str(),
        "{decision}"
    );
    assert_eq!(decision["modelUsed"], "mock-small", "{decision}");
    assert_eq!(
        decision["fallbacksTriggered"],
        json!([]),
        "step 1 served it: {decision}"
    );
    assert_close(
        &decision["costActual"],
        SMALL_COST,
        "costActual is the ledger cost",
    );
    assert_same(
        &decision["latencyActual"],
        &routing["latencyMs"],
        "latencyActual",
    );

    let factors = decision["factors"].as_array().expect("factors");
    let names: Vec<&str> = factors.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(
        names,
        ["health", "quota", "cost", "latency", "task_fit"],
        "{decision}"
    );
    let weights: Vec<f64> = factors
        .iter()
        .map(|f| num(&f["weight"], "weight"))
        .collect();
    assert_eq!(weights, [0.3, 0.25, 0.2, 0.15, 0.1]);
    let factor = |name: &str| factors.iter().find(|f| f["name"] == name).unwrap();
    let health = match breaker {
        "OPEN" => 0.0,
        "HALF_OPEN" => 0.5,
        _ => 1.0,
    };
    assert_num!(
        factor("health")["value"],
        health,
        "the node's breaker is {breaker}: {decision}"
    );
    let quota = &factor("quota")["value"];
    assert!(
        quota.is_null() || quota.as_f64().is_some_and(|q| (0.0..=1.0).contains(&q)),
        "null for an unknown limit, else percentRemaining/100: {decision}"
    );
    assert_num!(
        factor("cost")["value"],
        1,
        "mock-small is the cheapest step: {decision}"
    );
    assert_num!(
        factor("task_fit")["value"],
        0,
        "mock is not a preferred coder: {decision}"
    );
    let (mut contributions, mut weight_sum) = (0.0, 0.0);
    for f in factors {
        assert_eq!(
            keys(f),
            ["name", "value", "weight", "contribution", "source"],
            "{f}"
        );
        if let Some(value) = f["value"].as_f64() {
            let weight = num(&f["weight"], "weight");
            let contribution = ((value * weight) * 1e4).round() / 1e4;
            assert_close(
                &f["contribution"],
                contribution,
                "contribution = value × weight",
            );
            contributions += contribution;
            weight_sum += weight;
        } else {
            assert_eq!(f["contribution"], Value::Null, "{f}");
        }
    }
    assert_close(
        &decision["score"],
        (contributions / weight_sum * 1e4).round() / 1e4,
        "score = Σ contributions / Σ weights of the non-null factors",
    );
    assert_eq!(
        explained["scoreBasis"],
        "post-hoc assessment by this server; the gateway does not expose its routing score"
    );

    let unknown = client
        .call(
            EXPLAIN,
            json!({ "requestId": "00000000-0000-4000-8000-000000000000" }),
        )
        .await
        .into_ok();
    assert_eq!(unknown["source"], Value::Null, "{unknown}");
    assert_eq!(
        unknown["decision"]["providerSelected"],
        Value::Null,
        "nothing found, nothing invented: {unknown}"
    );
    assert!(
        unknown["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("Request id not found.")),
        "{unknown}"
    );
    client.shutdown().await;
}

/// An id this server never sent, but that is a gateway call-log id (C.15 step 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_route_explains_a_gateway_call_log_id() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    {
        let _traffic = traffic_lock().read().await;
        route(
            &client,
            json!({ "model": "mock/mock-large", "messages": messages(&prompt()) }),
        )
        .await;
    }
    let rows = gateway
        .api_json(
            "GET",
            "/api/usage/call-logs?model=mock-large&status=ok&limit=20",
            None,
        )
        .await;
    let row = rows
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["model"] == "mock-large" && r["status"] == 200)
        })
        .unwrap_or_else(|| panic!("no successful mock-large call log: {rows}"))
        .clone();
    let log_id = row["id"].as_str().expect("call-log id").to_owned();

    // A fresh session: the id is certainly not in this server's routing index.
    let fresh = start(&gateway).await;
    let explained = fresh
        .call(EXPLAIN, json!({ "requestId": log_id }))
        .await
        .into_ok();
    assert_eq!(explained["source"], "call_log", "{explained}");
    assert_eq!(explained["requestId"], log_id.as_str());
    let decision = &explained["decision"];
    assert_eq!(
        decision["providerSelected"], row["provider"],
        "{decision} vs {row}"
    );
    assert_eq!(
        decision["providerSelected"],
        gateway.node_id.as_str(),
        "{decision}"
    );
    assert_eq!(decision["modelUsed"], "mock-large", "{decision}");
    assert_eq!(
        decision["comboUsed"], row["comboName"],
        "{decision} vs {row}"
    );
    assert_same(
        &decision["latencyActual"],
        &row["duration"],
        "latencyActual is the row's duration",
    );
    let (tokens_in, tokens_out) = (
        num(&row["tokens"]["in"], "in"),
        num(&row["tokens"]["out"], "out"),
    );
    assert_close(
        &decision["costActual"],
        round_cost((tokens_in * 3.0 + tokens_out * 15.0) / 1e6),
        "cost from the price lookup (mock-large: 3 / 15 USD per 1M)",
    );
    assert_eq!(
        explained["scoreBasis"],
        "post-hoc assessment by this server; the gateway does not expose its routing score"
    );
    fresh.shutdown().await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_session_snapshot_is_this_sessions_ledger() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let fresh = client.call(SNAPSHOT, json!({})).await.into_ok();
    assert_eq!(
        keys(&fresh),
        [
            "sessionStart",
            "duration",
            "durationSeconds",
            "requestCount",
            "costTotal",
            "tokenCount",
            "topModels",
            "topProviders",
            "errors",
            "fallbacks",
            "budgetGuard"
        ],
        "{fresh}"
    );
    assert_num!(fresh["requestCount"], 0, "{fresh}");
    assert_close(&fresh["costTotal"], 0.0, "costTotal");
    assert_eq!(fresh["topModels"], json!([]), "{fresh}");
    assert_eq!(fresh["budgetGuard"], Value::Null, "{fresh}");
    let start_iso = fresh["sessionStart"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        start_iso.ends_with('Z') && start_iso.contains('T'),
        "ISO: {fresh}"
    );

    let outputs = {
        let _traffic = traffic_lock().read().await;
        vec![
            route_combo(&client, "coding-fast").await,
            route_combo(&client, "coding-fast").await,
            route(
                &client,
                json!({ "model": "mock/mock-large", "messages": messages(&prompt()) }),
            )
            .await,
        ]
    };
    let spent = round_cost(
        outputs
            .iter()
            .map(|o| num(&o["routing"]["cost"], "cost"))
            .sum(),
    );
    client
        .call(BUDGET, json!({ "maxCost": 1, "action": "alert" }))
        .await
        .into_ok();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let node = gateway.node_id.as_str();
    let snapshot = client.call(SNAPSHOT, json!({})).await.into_ok();
    assert_eq!(
        snapshot["sessionStart"],
        start_iso.as_str(),
        "same session: {snapshot}"
    );
    assert!(
        num(&snapshot["durationSeconds"], "durationSeconds") >= 1.0,
        "{snapshot}"
    );
    assert!(
        snapshot["duration"]
            .as_str()
            .is_some_and(|d| d.starts_with("PT")),
        "{snapshot}"
    );
    assert_num!(snapshot["requestCount"], 3, "{snapshot}");
    assert_close(&snapshot["costTotal"], spent, "costTotal = Σ ledger costs");
    assert_same(
        &snapshot["tokenCount"],
        &json!({ "prompt": 21, "completion": 9 }),
        "tokens",
    );
    assert_same(
        &snapshot["topModels"],
        &json!([{ "model": "mock-small", "count": 2 }, { "model": "mock-large", "count": 1 }]),
        "topModels by count",
    );
    assert_same(
        &snapshot["topProviders"],
        &json!([{ "provider": node, "count": 3 }]),
        "topProviders",
    );
    assert_num!(snapshot["errors"], 0, "{snapshot}");
    assert_num!(snapshot["fallbacks"], 0, "{snapshot}");
    assert_same(
        &snapshot["budgetGuard"],
        &json!({ "active": true, "remaining": round_cost(1.0 - spent), "action": "alert",
                 "limit": 1, "spent": spent }),
        "budgetGuard",
    );
    let report = client.call(COST_REPORT, json!({})).await.into_ok();
    assert_same(
        &report["totalCost"],
        &snapshot["costTotal"],
        "cost_report agrees",
    );
    assert_same(
        &report["budget"],
        &json!({ "limit": 1, "remaining": round_cost(1.0 - spent) }),
        "cost_report budget",
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_resilience_profile_balanced_is_applied_on_the_gateway() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    let out = client
        .call(RESILIENCE, json!({ "profile": "balanced" }))
        .await
        .into_ok();
    let settings = json!({
        "requestQueue": { "requestsPerMinute": 100, "minTimeBetweenRequestsMs": 200, "concurrentRequests": 10 },
        "connectionCooldown": {
            "oauth": { "baseCooldownMs": 60000, "useUpstreamRetryHints": false, "maxBackoffSteps": 8 },
            "apikey": { "baseCooldownMs": 3000, "useUpstreamRetryHints": true, "maxBackoffSteps": 5 }
        },
        "providerBreaker": {
            "oauth": { "failureThreshold": 3, "resetTimeoutMs": 60000 },
            "apikey": { "failureThreshold": 5, "resetTimeoutMs": 30000 }
        }
    });
    assert_same(
        &out,
        &json!({ "applied": true, "profile": "balanced", "settings": settings }),
        "the balanced profile",
    );
    assert_eq!(
        serde_json::to_string(&out["settings"]).unwrap(),
        serde_json::to_string(&settings).unwrap(),
        "key order inside settings"
    );

    let stored = gateway.api_json("GET", "/api/resilience", None).await;
    for (section, fields) in [
        ("requestQueue", &settings["requestQueue"]),
        ("connectionCooldown", &settings["connectionCooldown"]),
        ("providerBreaker", &settings["providerBreaker"]),
    ] {
        for (key, value) in fields.as_object().unwrap() {
            if let Some(inner) = value.as_object() {
                for (field, expected) in inner {
                    assert_eq!(
                        &stored[section][key][field], expected,
                        "GET /api/resilience {section}.{key}.{field}: {stored}"
                    );
                }
            } else {
                assert_eq!(&stored[section][key], value, "{section}.{key}: {stored}");
            }
        }
    }
    client.shutdown().await;
}
