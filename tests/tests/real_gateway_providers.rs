//! Providers, models and quotas against the REAL OmniRoute 3.7.9 gateway: list_models_catalog,
//! check_quota and get_provider_metrics.
//!
//! The plain gateway `cargo xtask test` starts (no dashboard password, a mock OpenAI-compatible
//! upstream, seeded combos `coding-fast`/`free-tier`, prices keyed by the node id), driven over
//! MCP by the rmcp client. Every assertion is on a real value: what the gateway, its mock
//! upstream, or this server's own session ledger say. The gateway is shared by every test
//! (parallel threads here, other binaries before and after), so tests create their own combos
//! where they change or count something, and assert on deltas. Sections that need the mock
//! upstream quiet hold [`traffic_lock`] exclusively; every test that sends completions holds it
//! shared. Shared helpers: `omniroute_mcp_tests::real::checks`.

use omniroute_mcp_tests::real::checks::{
    assert_close, assert_quota_consistent, mock_breaker_state, num, route_combo, start,
};
use omniroute_mcp_tests::real::traffic_lock;
use omniroute_mcp_tests::tools::{CATALOG, CHECK_QUOTA, PROVIDER_METRICS};
use omniroute_mcp_tests::{RealGateway, assert_same, keys};
use serde_json::{Value, json};

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

/// A connection whose key the upstream refuses. The seeding sent one completion through it,
/// the mock answered 401 (`invalid_api_key`) and the gateway recorded the refusal on the
/// connection; OmniRoute 3.7.9 then reports its `tokenStatus` as `expired` (and refuses further
/// completions through it with "No credentials for provider"). check_quota reports each entry,
/// the status included, exactly as the gateway's own `/api/usage/quota` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_quota_reports_a_refused_key_as_the_gateway_does() {
    let gateway = RealGateway::plain();
    let connection = gateway.revoked_connection_id();
    let node = gateway.revoked_node_id();

    // The precondition: the gateway holds the upstream's refusal on the connection.
    let stored = gateway.api_json("GET", "/api/providers", None).await;
    let record = stored["connections"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == connection.as_str()))
        .unwrap_or_else(|| {
            panic!(
                "the revoked connection {connection} is not on the gateway {}: restart it with \
                 `cargo xtask gateway stop && cargo xtask gateway start` (seeding creates it): {stored}",
                gateway.url
            )
        });
    assert_eq!(
        record["lastErrorType"], "unauthorized",
        "the gateway recorded the upstream's 401 on the connection: {record}"
    );

    let raw = gateway
        .api_json(
            "GET",
            &format!("/api/usage/quota?connectionId={connection}"),
            None,
        )
        .await;
    let raw_entries = raw["providers"].as_array().expect("providers");
    assert_eq!(raw_entries.len(), 1, "one entry for one connection: {raw}");
    let raw_entry = &raw_entries[0];
    assert_eq!(
        raw_entry["tokenStatus"], "expired",
        "OmniRoute 3.7.9 reports a connection whose key the upstream refused with 401 as expired: {raw_entry}"
    );

    let client = start(&gateway).await;
    let by_connection = client
        .call(CHECK_QUOTA, json!({ "connectionId": connection }))
        .await
        .into_ok();
    let ours = by_connection["providers"].as_array().expect("providers");
    assert_eq!(ours.len(), 1, "{by_connection}");
    assert_eq!(
        ours[0]["tokenStatus"], raw_entry["tokenStatus"],
        "the status exactly as the gateway reports it: ours {} vs the gateway's {raw_entry}",
        ours[0]
    );
    assert_same(
        &ours[0],
        raw_entry,
        "the whole entry as the gateway reports it",
    );

    let listed = client.call(CHECK_QUOTA, json!({})).await.into_ok();
    let entry = listed["providers"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|p| p["connectionId"] == connection.as_str())
        })
        .unwrap_or_else(|| panic!("the revoked connection is not listed: {listed}"));
    assert_same(entry, raw_entry, "the same entry in the unfiltered list");

    let by_prefix = client
        .call(CHECK_QUOTA, json!({ "provider": "revoked" }))
        .await
        .into_ok();
    let entries = by_prefix["providers"].as_array().expect("providers");
    assert!(
        !entries.is_empty() && entries.iter().all(|p| p["provider"] == node.as_str()),
        "\"revoked\" is mapped to its node id before it is sent: {by_prefix}"
    );
    assert!(
        entries
            .iter()
            .all(|p| p["tokenStatus"] == raw_entry["tokenStatus"]),
        "{by_prefix}"
    );
    client.shutdown().await;
}
