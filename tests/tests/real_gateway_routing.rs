//! Routing against the REAL OmniRoute 3.7.9 gateway: route_request, test_combo, simulate_route,
//! best_combo_for_task and explain_route.
//!
//! The plain gateway `cargo xtask test` starts (no dashboard password, a mock OpenAI-compatible
//! upstream, seeded combos `coding-fast`/`free-tier`, prices keyed by the node id), driven over
//! MCP by the rmcp client. Every assertion is on a real value: what the gateway, its mock
//! upstream, or this server's own session ledger say. The gateway is shared by every test
//! (parallel threads here, other binaries before and after), so tests create their own combos
//! where they change or count something, and assert on deltas. Sections that need the mock
//! upstream quiet hold [`traffic_lock`] exclusively; every test that sends completions holds it
//! shared. Shared helpers: `omniroute_mcp_tests::real::checks`.

use omniroute_mcp_tests::assert_num;
use omniroute_mcp_tests::real::checks::{
    LARGE_COST, SMALL_COST, assert_close, assert_coding_fast_routing, ensure_mock_breaker_not_open,
    messages, mock_breaker_state, num, prompt, route, route_combo, start,
};
use omniroute_mcp_tests::real::{is_uuid, round_cost, traffic_lock};
use omniroute_mcp_tests::tools::{BEST_COMBO, EXPLAIN, SIMULATE, SNAPSHOT, TEST_COMBO};
use omniroute_mcp_tests::{RealGateway, assert_same, keys};
use serde_json::{Value, json};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_combo_for_task_coding_picks_coding_fast() {
    let gateway = RealGateway::plain();
    let client = start(&gateway).await;
    {
        // Traffic on mock-small, so analytics knows its per-request cost; and the precondition
        // of the assertions below: the mock provider's breaker is not OPEN (an OPEN breaker
        // makes every seeded combo unusable).
        let _traffic = traffic_lock().read().await;
        ensure_mock_breaker_not_open(&gateway, &client).await;
        route_combo(&client, "coding-fast").await;
    }
    let coding_fast = gateway.combo_id("coding-fast");
    let free_tier = gateway.combo_id("free-tier");
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

/// An id this server never sent, but that is a gateway call-log id (explain_route's call-log
/// lookup, `docs/tools/explain_route.md`).
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
