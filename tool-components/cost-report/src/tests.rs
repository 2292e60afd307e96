use omniroute_tool_sdk::Method;
use omniroute_tool_testing::{
    self as testing, FakeGateway, FakeHost, MemorySession, Reply, fixtures, gateway_failures, keys,
};
use serde_json::{Value, json};

use super::*;

const NODE: &str = "openai-compatible-chat-1f2e00b9-0860-4f8f-93e7-2cf565feb2f4";

/// One host ledger entry (docs/architecture.md#ledger), every key present.
fn entry(
    request_id: Option<&str>,
    provider: Option<&str>,
    model: Option<&str>,
    cost: Option<f64>,
    tokens: Option<(u32, u32)>,
    status: u16,
) -> Value {
    let success = (200..300).contains(&status);
    json!({
        "requestId": request_id,
        "sentAt": "2026-11-25T23:14:00.000Z",
        "receivedAt": "2026-11-25T23:14:00.080Z",
        "origin": "route_request",
        "requestedModel": "coding-fast",
        "combo": "coding-fast",
        "role": null,
        "status": status,
        "success": success,
        "provider": provider,
        "model": model,
        "cost": cost,
        "tokensIn": tokens.map(|t| t.0),
        "tokensOut": tokens.map(|t| t.1),
        "latencyMs": if success { json!(78) } else { Value::Null },
        "cache": if success { json!("MISS") } else { Value::Null },
        "fallbacksTriggered": if success { json!(0) } else { Value::Null },
        "degradedFrom": null,
        "error": if success { Value::Null } else { json!("OmniRoute API error [503]: …") },
    })
}

fn ledger() -> Value {
    type Row<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<f64>,
        Option<(u32, u32)>,
        u16,
    );
    let rows: [Row; 7] = [
        (
            Some("r1"),
            Some(NODE),
            Some("mock-small"),
            Some(0.0000285),
            Some((7, 3)),
            200,
        ),
        (
            Some("r2"),
            Some(NODE),
            Some("mock-small"),
            Some(0.0000285),
            Some((7, 3)),
            200,
        ),
        (
            Some("r3"),
            Some("openai"),
            Some("gpt-4o"),
            Some(0.0001),
            Some((10, 5)),
            200,
        ),
        (None, None, None, None, None, 503),
        (
            Some("r5"),
            Some(NODE),
            Some("mock-large"),
            Some(0.0001),
            Some((7, 3)),
            200,
        ),
        (
            Some("r6"),
            Some("openai"),
            Some("gpt-4o"),
            Some(0.0002),
            Some((20, 10)),
            200,
        ),
        (Some("r7"), None, None, None, None, 500),
    ];
    Value::Array(
        rows.into_iter()
            .map(|(id, p, m, c, t, s)| entry(id, p, m, c, t, s))
            .collect(),
    )
}

fn guard(max_cost: f64) -> Value {
    json!({ "sessionId": "budget_1795648440000", "maxCost": max_cost, "action": "block", "createdAt": "2026-11-25T23:14:00.000Z" })
}

fn session(ledger: &Value, guard: Option<Value>) -> MemorySession {
    let s = MemorySession::new().with_ledger(ledger);
    match guard {
        Some(g) => s.with_guard(&g),
        None => s,
    }
}

fn host(analytics: Reply, session: MemorySession) -> FakeHost {
    FakeHost::new(FakeGateway::new().on_get(ANALYTICS, analytics)).with_session(session)
}

fn run(host: &FakeHost, input: Value) -> Result<Value, String> {
    host.call::<CostReport>(input)
}

#[test]
fn session_from_the_ledger() {
    let h = host(
        Reply::unreachable("never called"),
        session(&ledger(), Some(guard(0.0005))),
    );
    let out = run(&h, json!({})).unwrap();
    assert!(h.gateway.requests().is_empty(), "no gateway call");
    assert_eq!(keys(&out), OUTPUT_KEYS);
    assert_eq!(out["period"], "session");
    assert_eq!(out["source"], "session_ledger");
    assert_eq!(out["range"], Value::Null);
    // 2 × 0.0000285 + 0.0001 + 0.0001 + 0.0002, without float noise.
    assert_eq!(out["totalCost"].as_f64(), Some(0.000457));
    assert_eq!(out["requestCount"], 7, "failures included");
    assert_eq!(out["tokenCount"], json!({ "prompt": 51, "completion": 24 }));
    assert_eq!(
        out["byProvider"],
        json!([
            { "provider": NODE, "requests": 3, "promptTokens": 21, "completionTokens": 9, "totalTokens": 30, "cost": 0.000157 },
            { "provider": "openai", "requests": 2, "promptTokens": 30, "completionTokens": 15, "totalTokens": 45, "cost": 0.0003 },
            { "provider": null, "requests": 2, "promptTokens": 0, "completionTokens": 0, "totalTokens": 0, "cost": 0 }
        ])
    );
    assert_eq!(
        out["byModel"],
        json!([
            { "model": "mock-small", "provider": NODE, "requests": 2, "promptTokens": 14, "completionTokens": 6, "totalTokens": 20, "cost": 0.000057 },
            { "model": "gpt-4o", "provider": "openai", "requests": 2, "promptTokens": 30, "completionTokens": 15, "totalTokens": 45, "cost": 0.0003 },
            { "model": null, "provider": null, "requests": 2, "promptTokens": 0, "completionTokens": 0, "totalTokens": 0, "cost": 0 },
            { "model": "mock-large", "provider": NODE, "requests": 1, "promptTokens": 7, "completionTokens": 3, "totalTokens": 10, "cost": 0.0001 }
        ])
    );
    assert_eq!(
        keys(&out["byModel"][0]),
        [
            "model",
            "provider",
            "requests",
            "promptTokens",
            "completionTokens",
            "totalTokens",
            "cost"
        ]
    );
    // 0.0005 − 0.000457
    assert_eq!(
        out["budget"],
        json!({ "limit": 0.0005, "remaining": 0.000043 })
    );
    assert_eq!(out["budget"]["remaining"].as_f64(), Some(0.000043));
}

#[test]
fn sorting_is_by_requests_then_first_use() {
    let ledger = json!([
        entry(
            Some("a"),
            Some("p1"),
            Some("m1"),
            Some(0.1),
            Some((1, 1)),
            200
        ),
        entry(
            Some("b"),
            Some("p2"),
            Some("m2"),
            Some(0.2),
            Some((1, 1)),
            200
        ),
        entry(
            Some("c"),
            Some("p2"),
            Some("m2"),
            Some(0.2),
            Some((1, 1)),
            200
        ),
        entry(
            Some("d"),
            Some("p3"),
            Some("m3"),
            Some(0.3),
            Some((1, 1)),
            200
        ),
    ]);
    let h = host(Reply::unreachable("x"), session(&ledger, None));
    let out = run(&h, json!({ "period": "session" })).unwrap();
    let providers: Vec<&str> = out["byProvider"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["p2", "p1", "p3"]);
    assert_eq!(out["byProvider"][0]["cost"].as_f64(), Some(0.4));
    // 0.1 + 0.2 + 0.2 + 0.3 = 0.8000000000000002 in floats; roundCost removes the noise.
    assert_eq!(out["totalCost"].as_f64(), Some(0.8));
    assert_eq!(out["budget"], json!({ "limit": null, "remaining": null }));
}

#[test]
fn budget_remaining_never_goes_negative() {
    let h = host(
        Reply::unreachable("x"),
        session(&ledger(), Some(guard(0.0004))),
    );
    let out = run(&h, json!({})).unwrap();
    assert_eq!(out["budget"], json!({ "limit": 0.0004, "remaining": 0 }));
}

#[test]
fn empty_or_missing_ledger() {
    let expected = json!({
        "period": "session", "source": "session_ledger", "range": null, "totalCost": 0,
        "requestCount": 0, "tokenCount": { "prompt": 0, "completion": 0 },
        "byProvider": [], "byModel": [], "budget": { "limit": null, "remaining": null }
    });
    let h = host(Reply::unreachable("x"), MemorySession::new());
    assert_eq!(
        run(&h, json!({})).unwrap().to_string(),
        expected.to_string()
    );
    let h = host(
        Reply::unreachable("x"),
        MemorySession::new().with_ledger(&json!([])),
    );
    assert_eq!(run(&h, json!({})).unwrap(), expected);
    // A fresh guard, nothing spent.
    let h = host(
        Reply::unreachable("x"),
        MemorySession::new().with_guard(&guard(1.5)),
    );
    assert_eq!(
        run(&h, json!({})).unwrap()["budget"],
        json!({ "limit": 1.5, "remaining": 1.5 })
    );
}

#[test]
fn day_from_gateway_analytics() {
    let h = host(
        Reply::json(200, fixtures::USAGE_ANALYTICS_1D),
        MemorySession::new(),
    );
    let out = run(&h, json!({ "period": "day" })).unwrap();
    let fixture: Value = serde_json::from_str(fixtures::USAGE_ANALYTICS_1D).unwrap();
    let expected = json!({
        "period": "day",
        "source": "gateway_analytics",
        "range": "1d",
        "totalCost": 0,
        "requestCount": 15,
        "tokenCount": { "prompt": 77, "completion": 33 },
        "byProvider": fixture["byProvider"],
        "byModel": fixture["byModel"],
        "budget": { "limit": null, "remaining": null }
    });
    assert_eq!(out.to_string(), expected.to_string());
    assert_eq!(out["byProvider"][0]["successRatePct"], "73.33");
    let reqs = h.gateway.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].query, [("range".to_string(), "1d".to_string())]);
}

#[test]
fn gateway_periods_still_report_the_session_budget() {
    let h = host(
        Reply::json(200, fixtures::USAGE_ANALYTICS_1D),
        session(&ledger(), Some(guard(0.0005))),
    );
    let out = run(&h, json!({ "period": "day" })).unwrap();
    assert_eq!(
        out["budget"],
        json!({ "limit": 0.0005, "remaining": 0.000043 })
    );
    assert_eq!(out["requestCount"], 15, "gateway totals, not the ledger's");
}

#[test]
fn week_and_month_ranges() {
    for (period, range) in [("week", "7d"), ("month", "30d")] {
        let h = host(
            Reply::json(200, fixtures::USAGE_ANALYTICS_FRESH),
            MemorySession::new(),
        );
        let out = run(&h, json!({ "period": period })).unwrap();
        assert_eq!(out["range"], range);
        assert_eq!(out["totalCost"], 0);
        assert_eq!(out["requestCount"], 0);
        assert_eq!(out["byProvider"], json!([]));
        assert_eq!(out["byModel"], json!([]));
        assert_eq!(
            h.gateway.requests()[0].query,
            [("range".to_string(), range.to_string())]
        );
    }
}

#[test]
fn analytics_without_summary_is_null_not_zero() {
    let h = host(Reply::json(200, r#"{"range":"7d"}"#), MemorySession::new());
    let out = run(&h, json!({ "period": "week" })).unwrap();
    assert_eq!(out["totalCost"], Value::Null);
    assert_eq!(out["requestCount"], Value::Null);
    assert_eq!(
        out["tokenCount"],
        json!({ "prompt": null, "completion": null })
    );
    assert_eq!(out["byModel"], Value::Null, "no list in the answer: unknown, not empty");
    assert_eq!(out["byProvider"], Value::Null);
}

#[test]
fn analytics_failures_are_tool_errors() {
    for (reply, text) in gateway_failures(Method::Get, ANALYTICS) {
        let h = host(reply, session(&ledger(), None));
        assert_eq!(run(&h, json!({ "period": "month" })), Err(text));
        // The session period never touches the gateway.
        assert_eq!(
            run(&h, json!({ "period": "session" })).unwrap()["requestCount"],
            7
        );
    }
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<CostReport>();
    testing::check_manifest::<CostReport>(include_str!("../tool.toml"));
    assert_eq!(
        testing::input_schema_without_session_id(&desc),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"period":{"default":"session","description":"Time period for the cost report","type":"string","enum":["session","day","week","month"]}}}"#
    );
    assert_eq!(
        desc["description"],
        format!("Generates a cost report for the specified period.{}", schema::SESSION_ID_HINT)
    );
    assert_eq!(desc["annotations"]["readOnlyHint"], true);
    assert_eq!(desc["scopes"], json!(["read:usage"]));
}
