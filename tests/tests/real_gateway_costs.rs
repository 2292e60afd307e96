//! Costs and budgets against the REAL OmniRoute 3.7.9 gateway: cost_report, set_budget_guard
//! (block, degrade, alert) and get_session_snapshot.
//!
//! The plain gateway `cargo xtask test` starts (no dashboard password, a mock OpenAI-compatible
//! upstream, seeded combos `coding-fast`/`free-tier`, prices keyed by the node id), driven over
//! MCP by the rmcp client. Every assertion is on a real value: what the gateway, its mock
//! upstream, or this server's own session ledger say. The gateway is shared by every test
//! (parallel threads here, other binaries before and after), so tests create their own combos
//! where they change or count something, and assert on deltas. Sections that need the mock
//! upstream quiet hold [`traffic_lock`] exclusively; every test that sends completions holds it
//! shared. Shared helpers: `omniroute_mcp_tests::real::checks`.

use std::time::{Duration, Instant};

use omniroute_mcp_tests::assert_num;
use omniroute_mcp_tests::real::checks::{
    LARGE_COST, SMALL_COST, assert_close, assert_coding_fast_routing, messages, num, prompt, route,
    route_combo, start,
};
use omniroute_mcp_tests::real::{round_cost, traffic_lock};
use omniroute_mcp_tests::tools::{BUDGET, COST_REPORT, ROUTE, SNAPSHOT, TEST_COMBO};
use omniroute_mcp_tests::{RealGateway, assert_same, keys};
use serde_json::{Value, json};

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
    // The session's handle: `sh_` and 160 random bits in lowercase hex.
    assert!(
        session_id
            .strip_prefix("sh_")
            .is_some_and(|hex| hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
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
        "test_combo is refused under block too"
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
    assert_eq!(
        again["sessionId"], guard["sessionId"],
        "a new guard replaces the old one in the same session, named by the same handle"
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
