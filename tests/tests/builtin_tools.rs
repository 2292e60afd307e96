//! The built-in tools against the fake gateway: real values, degraded sources, gateway down.

use omniroute_mcp_tests::gateway::unreachable_url;
use omniroute_mcp_tests::{
    FakeGateway, GET_HEALTH, LIST_COMBOS, McpClient, Override, ServerCommand, TEST_API_KEY,
    assert_same, keys,
};
use serde_json::{Value, json};

async fn client_for(gateway_url: &str) -> McpClient {
    McpClient::start(ServerCommand::new(gateway_url).api_key(TEST_API_KEY)).await
}

/// A fake gateway with these `GET` overrides, and a server (with an API key) using it.
async fn start(get_overrides: Vec<(&str, Override)>) -> (FakeGateway, McpClient) {
    let gateway = FakeGateway::start();
    for (path, behaviour) in get_overrides {
        gateway.set_override("GET", path, behaviour);
    }
    let client = client_for(&gateway.url()).await;
    (gateway, client)
}

/// The `{source, error}` entries of `degraded`, as (source, error) pairs.
fn degraded(output: &Value) -> Vec<(String, String)> {
    output["degraded"]
        .as_array()
        .unwrap_or_else(|| panic!("degraded must be a list: {output}"))
        .iter()
        .map(|d| {
            (
                d["source"].as_str().unwrap_or_default().to_owned(),
                d["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_health_reports_the_gateway_values() {
    let (gateway, client) = start(vec![]).await;
    let first = client.call(GET_HEALTH, json!({})).await;
    let health = first.expect_ok().clone();

    let text: Value = serde_json::from_str(&first.text).unwrap();
    assert_eq!(
        keys(&text),
        [
            "status",
            "uptime",
            "version",
            "memoryUsage",
            "circuitBreakers",
            "rateLimits",
            "cacheStats",
            "cryptography",
            "degraded"
        ],
        "keys in the contract's order: {}",
        first.text
    );
    assert!(
        first.text.contains("\n  \"status\""),
        "pretty-printed with 2 spaces: {}",
        first.text
    );

    let fixture = FakeGateway::fixture("health-populated.json");
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["version"], "3.7.9");
    let uptime = health["uptime"]
        .as_f64()
        .unwrap_or_else(|| panic!("uptime must be a number: {health}"));
    assert!(uptime >= fixture["uptime"].as_f64().unwrap(), "{uptime}");
    assert_same(
        &health["memoryUsage"],
        &json!({"heapUsed": 116444800, "heapTotal": 121683968}),
        "memoryUsage",
    );

    let breakers: Vec<Value> = fixture["providerBreakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| json!({"provider": b["provider"], "state": b["state"], "failureCount": b["failureCount"], "lastFailure": b["lastFailure"], "retryAfterMs": b["retryAfterMs"]}))
        .collect();
    assert!(!breakers.is_empty());
    assert_same(
        &health["circuitBreakers"],
        &json!(breakers),
        "circuitBreakers come from providerBreakers",
    );
    assert_same(
        &health["rateLimits"],
        &FakeGateway::fixture("rate-limits-populated.json")["connections"],
        "rateLimits come from /api/rate-limits connections",
    );
    let cache = &health["cacheStats"];
    assert_eq!(
        (cache["hits"].as_f64(), cache["misses"].as_f64()),
        (Some(0.0), Some(21.0)),
        "{cache}"
    );
    assert_eq!(
        cache["hitRate"].as_f64(),
        Some(0.0),
        "hitRate \"0.0\" becomes a number: {cache}"
    );
    assert_eq!(
        health["cryptography"],
        json!({"status": "missing_or_invalid", "provider": "aes-256-gcm"})
    );
    assert_eq!(health["degraded"], json!([]));

    let second = client.call(GET_HEALTH, json!({})).await.into_ok();
    let later = second["uptime"].as_f64().unwrap();
    assert!(
        later > uptime,
        "uptime must grow between calls: {uptime} then {later}"
    );

    for path in ["/api/monitoring/health", "/api/rate-limits", "/api/cache"] {
        let requests = gateway.requests_to("GET", path);
        assert_eq!(requests.len(), 2, "one {path} request per call");
        for request in requests {
            assert_eq!(
                request.header("authorization"),
                None,
                "{path} must not carry the API key (docs/architecture.md#gateway-credentials)"
            );
        }
    }
    assert_eq!(gateway.requests().len(), 6, "{:?}", gateway.requests());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_health_names_a_failing_cache_endpoint_in_degraded() {
    let (_gateway, client) = start(vec![(
        "/api/cache",
        Override::json(500, json!({"error": "cache exploded"})),
    )])
    .await;
    let health = client.call(GET_HEALTH, json!({})).await.into_ok();

    assert_eq!(health["status"], "healthy", "{health}");
    assert!(
        health.get("cacheStats").is_none(),
        "cacheStats is omitted when /api/cache failed: {health}"
    );
    assert!(
        health["rateLimits"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{health}"
    );
    let degraded = degraded(&health);
    assert_eq!(degraded.len(), 1, "{health}");
    assert_eq!(degraded[0].0, "GET /api/cache");
    assert_eq!(
        degraded[0].1,
        r#"OmniRoute API error [500]: {"error":"cache exploded"}"#
    );
    client.shutdown().await;
}

/// The error texts of docs/contract.md#error-texts: compact JSON body, the size of a non-JSON body, an unreachable source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_health_degraded_texts_follow_the_contract() {
    let html = format!("<!DOCTYPE html><html>{}</html>", "x".repeat(5000));
    let (_gateway, client) = start(vec![
        ("/api/rate-limits", Override::html(404, html.clone())),
        (
            "/api/cache",
            Override::json(503, json!({"error": {"message": "down", "code": 7}})),
        ),
        ("/api/monitoring/health", Override::close_connection()),
    ])
    .await;
    let health = client.call(GET_HEALTH, json!({})).await.into_ok();

    assert_eq!(health["status"], "unreachable", "{health}");
    let degraded = degraded(&health);
    let error_of = |source: &str| {
        degraded
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("{source} not in degraded: {degraded:?}"))
    };
    assert_eq!(
        error_of("GET /api/rate-limits"),
        format!(
            "OmniRoute API error [404]: <non-JSON body, {} bytes>",
            html.len()
        )
    );
    assert_eq!(
        error_of("GET /api/cache"),
        r#"OmniRoute API error [503]: {"error":{"message":"down","code":7}}"#
    );
    let unreachable = error_of("GET /api/monitoring/health");
    assert!(
        unreachable.starts_with("OmniRoute API unreachable: GET /api/monitoring/health"),
        "{unreachable}"
    );
    assert_eq!(degraded.len(), 3);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_health_with_the_gateway_down_is_a_result_not_a_failure() {
    let down = unreachable_url();
    let client = client_for(&down).await;
    let result = client.call(GET_HEALTH, json!({})).await;
    let health = result.expect_ok();

    assert_eq!(health["status"], "unreachable", "{health}");
    assert_eq!(health["uptime"], Value::Null);
    assert_eq!(health["version"], Value::Null);
    assert_eq!(health["memoryUsage"], Value::Null);
    assert_eq!(health["circuitBreakers"], Value::Null, "could not read, not empty");
    assert_eq!(health["rateLimits"], Value::Null, "could not read, not empty");
    assert!(health.get("cacheStats").is_none(), "{health}");
    let degraded = degraded(health);
    let sources: Vec<&str> = degraded.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(sources.len(), 3, "{health}");
    for path in ["/api/monitoring/health", "/api/rate-limits", "/api/cache"] {
        let source = format!("GET {path}");
        let (_, error) = degraded
            .iter()
            .find(|(s, _)| *s == source)
            .unwrap_or_else(|| panic!("{source} missing: {health}"));
        assert!(
            error.starts_with(&format!("OmniRoute API unreachable: {source}")),
            "{error}"
        );
        assert!(!error.contains(TEST_API_KEY));
    }
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_combos_maps_is_active_false_to_disabled() {
    let mut combos = FakeGateway::fixture("combos-populated.json");
    combos["combos"][1]["isActive"] = json!(false);
    let (gateway, client) = start(vec![("/api/combos", Override::json(200, combos))]).await;
    let output = client.call(LIST_COMBOS, json!({})).await.into_ok();

    let listed = output["combos"]
        .as_array()
        .unwrap_or_else(|| panic!("{output}"));
    assert_eq!(listed.len(), 2);
    let coding = &listed[0];
    assert_eq!(coding["id"], "c9df3fce-0dd7-4438-a4e7-8f10fde6b078");
    assert_eq!(coding["name"], "coding-fast");
    assert_eq!(coding["strategy"], "priority");
    assert_eq!(
        coding["enabled"], true,
        "an absent isActive means active: {coding}"
    );
    assert_same(
        &coding["models"],
        &json!([
            {"provider": "mock", "model": "mock/mock-small", "priority": 1},
            {"provider": "mock", "model": "mock/mock-large", "priority": 2}
        ]),
        "models normalised per docs/contract.md#combo-steps",
    );
    assert_eq!(listed[1]["name"], "free-tier");
    assert_eq!(
        listed[1]["enabled"], false,
        "isActive:false means disabled: {}",
        listed[1]
    );
    assert!(
        coding.get("metrics").is_none(),
        "no metrics without includeMetrics: {coding}"
    );
    assert!(
        output.get("degraded").is_none(),
        "degraded only with includeMetrics: {output}"
    );
    assert!(gateway.requests_to("GET", "/api/combos/metrics").is_empty());
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_combos_looks_metrics_up_by_name() {
    let (gateway, client) = start(vec![]).await;
    let output = client
        .call(LIST_COMBOS, json!({"includeMetrics": true}))
        .await
        .into_ok();

    let all = FakeGateway::fixture("combo-metrics-all.json");
    for combo in output["combos"].as_array().unwrap() {
        let name = combo["name"].as_str().unwrap();
        let expected = all["metrics"].get(name).cloned().unwrap_or(Value::Null);
        assert_same(&combo["metrics"], &expected, &format!("metrics of {name}"));
    }
    assert_eq!(
        output["combos"][0]["metrics"]["totalRequests"].as_f64(),
        Some(5.0)
    );
    assert_eq!(output["degraded"], json!([]));
    let metrics_requests = gateway.requests_to("GET", "/api/combos/metrics");
    assert_eq!(metrics_requests.len(), 1);
    assert_eq!(
        metrics_requests[0].query_param("combo"),
        None,
        "one call for all combos, no ?combo="
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_combos_metrics_failure_is_degraded_not_fatal() {
    let (_gateway, client) = start(vec![(
        "/api/combos/metrics",
        Override::json(500, json!({"error": "no"})),
    )])
    .await;
    let output = client
        .call(LIST_COMBOS, json!({"includeMetrics": true}))
        .await
        .into_ok();
    for combo in output["combos"].as_array().unwrap() {
        assert_eq!(combo["metrics"], Value::Null, "{combo}");
    }
    assert_eq!(
        output["degraded"],
        json!([{"source": "GET /api/combos/metrics", "error": "OmniRoute API error [500]: {\"error\":\"no\"}"}])
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_combos_gateway_error_is_a_tool_error() {
    let (_gateway, client) = start(vec![(
        "/api/combos",
        Override::json(503, json!({"error": "maintenance"})),
    )])
    .await;
    let result = client.call(LIST_COMBOS, json!({})).await;
    assert_eq!(
        result.expect_error(),
        r#"Error: OmniRoute API error [503]: {"error":"maintenance"}"#
    );
    client.shutdown().await;
}
