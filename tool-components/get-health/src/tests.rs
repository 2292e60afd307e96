use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures};
use omniroute_tool_sdk::{GatewayError, Method};
use serde_json::{Value, json};

use super::*;

fn host(health: Reply, rate_limits: Reply, cache: Reply) -> FakeHost {
    FakeHost::new(
        FakeGateway::new()
            .on_get(HEALTH, health)
            .on_get(RATE_LIMITS, rate_limits)
            .on_get(CACHE, cache),
    )
}

/// Runs the tool through the export path (which also checks the output schema).
fn run(host: &FakeHost) -> Value {
    host.call::<GetHealth>(json!({}))
        .expect("get_health never fails")
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn populated() -> FakeHost {
    host(
        Reply::json(200, fixtures::HEALTH_POPULATED),
        Reply::json(200, fixtures::RATE_LIMITS_POPULATED),
        Reply::json(200, fixtures::CACHE),
    )
}

#[test]
fn populated_gateway_matches_the_contract_example() {
    let h = populated();
    let out = run(&h);
    let expected = json!({
        "status": "healthy",
        "uptime": 521.097520286,
        "version": "3.7.9",
        "memoryUsage": { "heapUsed": 116444800, "heapTotal": 121683968 },
        "circuitBreakers": [
            { "provider": "openai", "state": "CLOSED", "failureCount": 0, "lastFailure": null, "retryAfterMs": 0 },
            { "provider": "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be", "state": "CLOSED", "failureCount": 0, "lastFailure": null, "retryAfterMs": 0 },
            { "provider": "nope", "state": "CLOSED", "failureCount": 0, "lastFailure": null, "retryAfterMs": 0 },
            { "provider": "mock", "state": "CLOSED", "failureCount": 4, "lastFailure": "2026-11-25T23:04:18.262Z", "retryAfterMs": 0 }
        ],
        "rateLimits": [
            { "connectionId": "f3e6be91-95e0-407d-9154-efd2bd1a20c0", "provider": "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be",
              "name": "mockconn", "rateLimitProtection": false, "enabled": true, "active": true, "queued": 0, "running": 0, "executing": 0, "done": 0 }
        ],
        "cacheStats": { "hits": 0, "misses": 21, "hitRate": 0 },
        "cryptography": { "status": "missing_or_invalid", "provider": "aes-256-gcm" },
        "degraded": []
    });
    assert_eq!(out, expected);
    // Key order is part of the contract, at every level.
    assert_eq!(out.to_string(), expected.to_string());
    // "hitRate": "0.0" becomes the integer 0, not 0.0.
    assert!(out.to_string().contains(r#""hitRate":0}"#));
}

#[test]
fn the_three_requests_go_out_as_one_concurrent_batch() {
    let h = populated();
    run(&h);
    assert_eq!(h.gateway.batches(), vec![3]);
    let sent: Vec<(Method, String)> = h
        .gateway
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        sent,
        [
            (Method::Get, HEALTH.to_string()),
            (Method::Get, RATE_LIMITS.to_string()),
            (Method::Get, CACHE.to_string())
        ]
    );
    assert!(
        h.gateway
            .requests()
            .iter()
            .all(|r| r.query.is_empty() && r.body.is_none())
    );
}

#[test]
fn open_breakers_are_reported_as_is() {
    let h = host(
        Reply::json(200, fixtures::HEALTH_OPEN_BREAKERS),
        Reply::json(200, fixtures::RATE_LIMITS_POPULATED),
        Reply::json(200, fixtures::CACHE),
    );
    let out = run(&h);
    let mock = &out["circuitBreakers"][1];
    assert_eq!(
        mock.to_string(),
        r#"{"provider":"mock","state":"OPEN","failureCount":2,"lastFailure":"2026-11-25T23:14:49.702Z","retryAfterMs":56056}"#
    );
    assert_eq!(out["circuitBreakers"].as_array().unwrap().len(), 2);
}

#[test]
fn fresh_gateway_has_empty_lists() {
    let fresh_limits =
        r#"{"connections":[],"overview":{},"lockouts":[],"cacheStats":{"defaultCount":6}}"#;
    let h = host(
        Reply::json(200, fixtures::HEALTH_FRESH),
        Reply::json(200, fresh_limits),
        Reply::json(200, fixtures::CACHE),
    );
    let out = run(&h);
    assert_eq!(out["uptime"], json!(8.630021438));
    assert_eq!(out["circuitBreakers"], json!([]));
    assert_eq!(out["rateLimits"], json!([]));
    assert_eq!(out["degraded"], json!([]));
}

#[test]
fn gateway_down_is_still_a_result() {
    let down = || Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128");
    let out = run(&host(down(), down(), down()));
    assert_eq!(
        out,
        json!({
            "status": "unreachable",
            "uptime": null,
            "version": null,
            "memoryUsage": null,
            "circuitBreakers": null,
            "rateLimits": null,
            "degraded": [
                { "source": "GET /api/monitoring/health", "error": "OmniRoute API unreachable: GET /api/monitoring/health: connect ECONNREFUSED 127.0.0.1:20128" },
                { "source": "GET /api/rate-limits", "error": "OmniRoute API unreachable: GET /api/rate-limits: connect ECONNREFUSED 127.0.0.1:20128" },
                { "source": "GET /api/cache", "error": "OmniRoute API unreachable: GET /api/cache: connect ECONNREFUSED 127.0.0.1:20128" }
            ]
        })
    );
    assert_eq!(keys(&out), ALWAYS_PRESENT);
}

#[test]
fn cache_timeout_omits_cache_stats() {
    let h = host(
        Reply::json(200, fixtures::HEALTH_POPULATED),
        Reply::json(200, fixtures::RATE_LIMITS_POPULATED),
        Reply::error(GatewayError::Timeout(15)),
    );
    let out = run(&h);
    assert!(out.get("cacheStats").is_none());
    assert_eq!(out["status"], "healthy");
    assert_eq!(
        out["degraded"],
        json!([{ "source": "GET /api/cache", "error": "OmniRoute API timeout after 15 s: GET /api/cache" }])
    );
    // cryptography still sits between rateLimits and degraded.
    assert_eq!(keys(&out)[..6], ALWAYS_PRESENT[..6]);
    assert_eq!(keys(&out)[6..], ["cryptography", "degraded"]);
}

#[test]
fn health_500_with_json_body() {
    let h = host(
        Reply::json(500, r#"{"status":"error","error":"Health check failed"}"#),
        Reply::json(200, fixtures::RATE_LIMITS_POPULATED),
        Reply::json(200, fixtures::CACHE),
    );
    let out = run(&h);
    assert_eq!(out["status"], "unreachable");
    assert_eq!(out["circuitBreakers"], Value::Null, "could not read, not empty");
    assert!(out.get("cryptography").is_none());
    assert_eq!(out["rateLimits"].as_array().unwrap().len(), 1);
    assert_eq!(
        out["degraded"][0]["error"],
        r#"OmniRoute API error [500]: {"status":"error","error":"Health check failed"}"#
    );
}

#[test]
fn rate_limits_404_html_page() {
    let page = format!(
        "<!DOCTYPE html><html><body>{}</body></html>",
        "<div>404</div>".repeat(18_000)
    );
    let h = host(
        Reply::json(200, fixtures::HEALTH_POPULATED),
        Reply::status(404, page.clone()),
        Reply::json(200, fixtures::CACHE),
    );
    let out = run(&h);
    assert_eq!(out["rateLimits"], Value::Null, "could not read, not empty");
    assert_eq!(
        out["degraded"],
        json!([{ "source": "GET /api/rate-limits", "error": format!("OmniRoute API error [404]: <non-JSON body, {} bytes>", page.len()) }])
    );
}

#[test]
fn non_json_2xx_cache() {
    let h = host(
        Reply::json(200, fixtures::HEALTH_POPULATED),
        Reply::json(200, fixtures::RATE_LIMITS_POPULATED),
        Reply::status(200, "OK"),
    );
    let out = run(&h);
    assert!(out.get("cacheStats").is_none());
    assert_eq!(
        out["degraded"][0]["error"],
        "OmniRoute API error [200]: <non-JSON body, 2 bytes>"
    );
}

#[test]
fn denied_and_too_large_are_named() {
    let h = host(
        Reply::json(200, fixtures::HEALTH_POPULATED),
        Reply::error(GatewayError::Denied("granted scopes: read:health".into())),
        Reply::error(GatewayError::TooLarge),
    );
    let out = run(&h);
    let errors: Vec<&str> = out["degraded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "Not permitted: GET /api/rate-limits is outside the scopes granted to this call (granted scopes: read:health)",
            "OmniRoute API response too large: GET /api/cache",
        ]
    );
}

#[test]
fn hit_rate_string_becomes_a_number() {
    let cache = r#"{"semanticCache":{"hits":1,"misses":7,"hitRate":"12.5"}}"#;
    let h = host(
        Reply::json(200, fixtures::HEALTH_POPULATED),
        Reply::json(200, fixtures::RATE_LIMITS_POPULATED),
        Reply::json(200, cache),
    );
    assert_eq!(
        run(&h)["cacheStats"],
        json!({ "hits": 1, "misses": 7, "hitRate": 12.5 })
    );
}

#[test]
fn odd_but_successful_bodies_stay_within_the_schema() {
    // Shapes a future or broken gateway might send: nothing here may break the output schema.
    let h = host(
        Reply::json(
            200,
            r#"{"uptime":"long","version":4,"memoryUsage":[],"providerBreakers":{},"cryptography":"x"}"#,
        ),
        Reply::json(200, r#"{"connections":[1,{"name":"c"}]}"#),
        Reply::json(200, r#"{"semanticCache":{"hitRate":"n/a"}}"#),
    );
    let out = run(&h);
    assert_eq!(out["status"], Value::Null);
    assert_eq!(out["uptime"], Value::Null);
    assert_eq!(out["version"], Value::Null);
    assert_eq!(out["memoryUsage"], Value::Null);
    assert_eq!(out["circuitBreakers"], Value::Null);
    assert_eq!(out["rateLimits"][1]["name"], "c");
    assert_eq!(
        testing::degraded_sources(&out),
        ["GET /api/monitoring/health", "GET /api/monitoring/health"],
        "the missing status and breaker list are named"
    );
    assert_eq!(
        out["cacheStats"],
        json!({ "hits": null, "misses": null, "hitRate": null })
    );
    assert!(out.get("cryptography").is_none());
}

/// A recorded health answer without `status` and `providerBreakers`, and
/// rate limits without `connections`: null and named, never "unknown" or [].
#[test]
fn missing_fields_are_null_and_named() {
    let h = host(
        Reply::json(200, fixtures::derived::HEALTH_WITHOUT_STATUS_AND_BREAKERS),
        Reply::json(200, fixtures::derived::RATE_LIMITS_WITHOUT_CONNECTIONS),
        Reply::json(200, fixtures::CACHE),
    );
    let out = run(&h);
    assert_eq!(out["status"], Value::Null);
    assert_eq!(out["version"], "3.7.9", "what the answer has is still read");
    assert_eq!(out["circuitBreakers"], Value::Null);
    assert_eq!(out["rateLimits"], Value::Null);
    assert_eq!(
        out["degraded"],
        json!([
            { "source": "GET /api/monitoring/health", "error": "the answer has no `status`; status is null" },
            { "source": "GET /api/monitoring/health", "error": "the answer has no `providerBreakers` list; circuitBreakers is null" },
            { "source": "GET /api/rate-limits", "error": "the answer has no `connections` list; rateLimits is null" }
        ])
    );
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<GetHealth>();
    testing::check_manifest::<GetHealth>(include_str!("../tool.toml"));
    assert_eq!(desc["name"], "omniroute_get_health");
    assert_eq!(desc["title"], "Gateway health");
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{},"description":"No parameters required"}"#
    );
    assert_eq!(
        desc["annotations"],
        json!({ "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false })
    );
}
