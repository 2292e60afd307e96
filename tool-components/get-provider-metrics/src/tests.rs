use omniroute_tool_testing::fixtures::NODE_9BF;
use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures, keys};
use serde_json::{Value, json};

use super::*;

fn gateway() -> FakeGateway {
    FakeGateway::new()
        .with_provider_maps()
        .on_get(
            PROVIDER_METRICS,
            Reply::json(200, fixtures::PROVIDER_METRICS),
        )
        .on_get(HEALTH, Reply::json(200, fixtures::HEALTH_POPULATED))
        .on_get(QUOTA, Reply::json(200, fixtures::USAGE_QUOTA))
        .on_get(CALL_LOGS, Reply::json(200, fixtures::CALL_LOGS))
}

fn run(gw: FakeGateway, provider: &str) -> (Value, FakeHost) {
    let h = FakeHost::new(gw);
    let out = h
        .call::<GetProviderMetrics>(json!({ "provider": provider }))
        .unwrap();
    (out, h)
}

fn row(status: u64, duration: u64, at: &str, error: Option<&str>) -> Value {
    json!({ "id": format!("log-{at}"), "timestamp": at, "status": status, "model": "mock-small",
            "provider": NODE_9BF, "duration": duration, "error": error })
}

#[test]
fn fixtures_for_the_mock_prefix() {
    let (out, h) = run(gateway(), "mock");
    let expected = json!({
        "provider": "mock",
        "resolvedAs": ["mock", NODE_9BF],
        "successRate": 0.7333,
        "requestCount": 15,
        "avgLatencyMs": 148,
        "p50LatencyMs": 73,
        "p95LatencyMs": 123,
        "p99LatencyMs": 123,
        "errorRate": 0.2667,
        "lastError": null,
        "lastErrorAt": null,
        "circuitBreakerState": "CLOSED",
        "quotaInfo": { "used": 0, "total": null, "resetAt": null },
        "sampleSize": 3,
        "degraded": []
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
    // Call logs are read under the gateway's key, not the prefix.
    let logs = h.gateway.requests_to(CALL_LOGS);
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].query,
        vec![
            ("provider".to_string(), NODE_9BF.to_string()),
            ("limit".to_string(), "500".to_string())
        ]
    );
    assert_eq!(h.gateway.batches(), vec![5, 1]);
}

#[test]
fn contract_example_shape_with_errors() {
    // 21 calls, 17 successful (numbers observed on a reference gateway).
    let metrics = json!({ "metrics": { NODE_9BF: { "totalRequests": 21, "totalSuccesses": 17, "successRate": 81, "avgLatencyMs": 131 } } });
    let mut rows = vec![
        row(
            502,
            40,
            "2026-11-25T23:04:18.261Z",
            Some("Stream ended before producing useful content"),
        ),
        row(500, 10, "2026-11-25T22:50:00.000Z", None),
        // A substring match of the provider filter that is another provider.
        json!({ "timestamp": "2026-11-25T23:59:00.000Z", "status": 500, "provider": format!("{NODE_9BF}-2"), "duration": 1 }),
    ];
    for (i, d) in [123, 557, 90, 100, 150].iter().enumerate() {
        rows.push(row(200, *d, &format!("2026-11-25T22:0{i}:00.000Z"), None));
    }
    let gw = gateway()
        .on_get(PROVIDER_METRICS, Reply::json(200, metrics.to_string()))
        .on_get(CALL_LOGS, Reply::json(200, Value::Array(rows).to_string()));
    let (out, _) = run(gw, "mock");
    assert_eq!(out["successRate"], 0.8095);
    assert_eq!(out["errorRate"], 0.1905);
    assert_eq!(out["requestCount"], 21);
    assert_eq!(out["avgLatencyMs"], 131);
    assert_eq!(
        out["lastError"],
        "502: Stream ended before producing useful content"
    );
    assert_eq!(out["lastErrorAt"], "2026-11-25T23:04:18.261Z");
    assert_eq!(out["sampleSize"], 5);
    assert_eq!(out["p50LatencyMs"], 123);
    assert_eq!(out["p95LatencyMs"], 557);
    assert_eq!(out["p99LatencyMs"], 557);
    // Without error text only the status.
    let gw = gateway().on_get(
        CALL_LOGS,
        Reply::json(
            200,
            json!([row(503, 5, "2026-11-25T23:00:00.000Z", Some(" "))]).to_string(),
        ),
    );
    let (out, _) = run(gw, "mock");
    assert_eq!(out["lastError"], "503");
    assert_eq!(out["sampleSize"], 0);
    assert_eq!(out["p50LatencyMs"], Value::Null);
}

#[test]
fn open_breaker_and_builtin_alias() {
    let (out, _) = run(
        gateway().on_get(HEALTH, Reply::json(200, fixtures::HEALTH_OPEN_BREAKERS)),
        "mock",
    );
    assert_eq!(out["circuitBreakerState"], "OPEN");

    let metrics = json!({ "metrics": {
        "claude": { "totalRequests": 3, "totalSuccesses": 3, "successRate": 100, "avgLatencyMs": 100 },
        "cc": { "totalRequests": 1, "totalSuccesses": 0, "successRate": 0, "avgLatencyMs": 500 },
        NODE_9BF: { "totalRequests": 15, "totalSuccesses": 11, "successRate": 73, "avgLatencyMs": 148 }
    } });
    let gw = gateway()
        .on_get(PROVIDER_METRICS, Reply::json(200, metrics.to_string()))
        .on_get(CALL_LOGS, Reply::json(200, "[]"));
    let (out, h) = run(gw, "cc");
    assert_eq!(out["resolvedAs"], json!(["cc", "claude"]));
    assert_eq!(out["requestCount"], 4);
    assert_eq!(out["successRate"], 0.75);
    assert_eq!(out["avgLatencyMs"], 200);
    assert_eq!(
        out["quotaInfo"],
        json!({ "used": null, "total": null, "resetAt": null })
    );
    assert_eq!(out["sampleSize"], 0);
    let logs = h.gateway.requests_to(CALL_LOGS);
    assert_eq!(logs[0].query[0].1, "claude");
}

#[test]
fn unknown_provider_has_no_requests() {
    let gw = gateway().on_get(CALL_LOGS, Reply::json(200, "[]"));
    let (out, h) = run(gw, "nope");
    assert_eq!(out["resolvedAs"], json!(["nope"]));
    assert_eq!(out["requestCount"], 0);
    assert_eq!(out["successRate"], Value::Null);
    assert_eq!(out["errorRate"], Value::Null);
    assert_eq!(out["avgLatencyMs"], Value::Null);
    assert_eq!(out["circuitBreakerState"], "CLOSED");
    // Not a known gateway key: the logs are asked for the name as given.
    let logs = h.gateway.requests_to(CALL_LOGS);
    assert_eq!(logs[0].query[0].1, "nope");
}

#[test]
fn gateway_down_degrades_everything() {
    let down = || Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128");
    let gw = FakeGateway::new()
        .on_get(PROVIDER_NODES, down())
        .on_get(PRICING_MODELS, down())
        .on_get(PROVIDER_METRICS, down())
        .on_get(HEALTH, down())
        .on_get(QUOTA, down())
        .on_get(CALL_LOGS, down());
    let (out, _) = run(gw, "mock");
    for key in [
        "successRate",
        "requestCount",
        "avgLatencyMs",
        "p50LatencyMs",
        "errorRate",
        "lastError",
        "circuitBreakerState",
        "sampleSize",
    ] {
        assert_eq!(out[key], Value::Null, "{key}");
    }
    let sources = testing::degraded_sources(&out);
    assert_eq!(
        sources,
        [
            "GET /api/provider-nodes",
            "GET /api/pricing/models",
            "GET /api/provider-metrics",
            "GET /api/monitoring/health",
            "GET /api/usage/quota",
            "GET /api/usage/call-logs"
        ]
    );
    assert_eq!(out["resolvedAs"], json!(["mock"]));
    assert_eq!(keys(&out), OUTPUT_KEYS);
}

#[test]
fn percentiles_by_nearest_rank() {
    let d: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(nearest_rank(&d, 50.0), Some(10.0));
    assert_eq!(nearest_rank(&d, 95.0), Some(19.0));
    assert_eq!(nearest_rank(&d, 99.0), Some(20.0));
    assert_eq!(nearest_rank(&[7.0], 50.0), Some(7.0));
    assert_eq!(nearest_rank(&[], 50.0), None);
    assert_eq!(nearest_rank(&d, 0.0), Some(1.0));
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<GetProviderMetrics>();
    testing::check_manifest::<GetProviderMetrics>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"provider":{"type":"string","description":"Provider name (e.g., 'claude', 'gemini-cli', 'codex')"}},"required":["provider"]}"#
    );
    assert_eq!(
        desc["description"],
        "Returns detailed metrics for a specific provider including latency percentiles and circuit breaker state"
    );
}
