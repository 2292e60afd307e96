//! Monitoring and control against the REAL OmniRoute 3.7.9 gateway: get_health, list_combos,
//! get_combo_metrics, switch_combo and set_resilience_profile.
//!
//! The plain gateway `cargo xtask test` starts (no dashboard password, a mock OpenAI-compatible
//! upstream, seeded combos `coding-fast`/`free-tier`, prices keyed by the node id), driven over
//! MCP by the rmcp client. Every assertion is on a real value: what the gateway, its mock
//! upstream, or this server's own session ledger say. The gateway is shared by every test
//! (parallel threads here, other binaries before and after), so tests create their own combos
//! where they change or count something, and assert on deltas. Sections that need the mock
//! upstream quiet hold [`traffic_lock`] exclusively; every test that sends completions holds it
//! shared. Shared helpers: `omniroute_mcp_tests::real::checks`.

use std::time::Duration;

use omniroute_mcp_tests::assert_num;
use omniroute_mcp_tests::real::checks::{messages, num, prompt, route, start};
use omniroute_mcp_tests::real::{traffic_lock, unique_name};
use omniroute_mcp_tests::tools::{COMBO_METRICS, HEALTH, LIST_COMBOS, RESILIENCE, SWITCH_COMBO};
use omniroute_mcp_tests::{RealGateway, assert_same, combo_named, keys};
use serde_json::{Value, json};

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
    let stored = gateway.stored_combo(&id).await;
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
