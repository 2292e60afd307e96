use omniroute_tool_sdk::Method;
use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures};
use serde_json::{Value, json};

use super::*;

const NODE_ID: &str = "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be";

fn host(quota: Reply, nodes: Reply, models: Reply) -> FakeHost {
    FakeHost::new(
        FakeGateway::new()
            .on_get(QUOTA, quota)
            .on_get(PROVIDER_NODES, nodes)
            .on_get(PRICING_MODELS, models),
    )
}

fn populated() -> FakeHost {
    host(
        Reply::json(200, fixtures::USAGE_QUOTA),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    )
}

fn run(host: &FakeHost, input: Value) -> Result<Value, String> {
    host.call::<CheckQuota>(input)
}

/// The query of the quota request.
fn quota_query(host: &FakeHost) -> Vec<(String, String)> {
    let reqs = host.gateway.requests();
    reqs.iter()
        .find(|r| r.path == QUOTA)
        .expect("quota read")
        .query
        .clone()
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn all_providers_pass_through_the_3_7_9_shape() {
    let h = populated();
    let out = run(&h, json!({})).unwrap();
    let fixture: Value = serde_json::from_str(fixtures::USAGE_QUOTA).unwrap();
    assert_eq!(
        out.to_string(),
        fixture.to_string(),
        "same shape, same key order"
    );
    assert!(quota_query(&h).is_empty());
    // Without a provider there is nothing to map.
    let paths: Vec<String> = h.gateway.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [QUOTA]);
}

#[test]
fn provider_prefix_is_sent_as_the_node_id() {
    let h = populated();
    let out = run(&h, json!({ "provider": "mock" })).unwrap();
    assert_eq!(quota_query(&h), [pair("provider", NODE_ID)]);
    // The mapping sources go out together, before the quota read.
    assert_eq!(h.gateway.batches(), vec![2]);
    // The filter echoes the caller's input, not the mapped id.
    assert_eq!(
        out["meta"]["filters"],
        json!({ "provider": "mock", "connectionId": null })
    );
    assert_eq!(out["providers"][0]["provider"], NODE_ID);
}

#[test]
fn builtin_alias_is_sent_as_the_provider_id() {
    let h = populated();
    run(&h, json!({ "provider": "cc" })).unwrap();
    assert_eq!(quota_query(&h), [pair("provider", "claude")]);
    let h = populated();
    run(&h, json!({ "provider": "claude" })).unwrap();
    assert_eq!(quota_query(&h), [pair("provider", "claude")]);
    let h = populated();
    run(&h, json!({ "provider": "gemini" })).unwrap();
    assert_eq!(quota_query(&h), [pair("provider", "gemini")]);
}

#[test]
fn failed_mapping_sources_send_the_provider_as_given() {
    let h = host(
        Reply::json(200, fixtures::USAGE_QUOTA),
        Reply::unreachable("refused"),
        Reply::json(500, r#"{"error":"x"}"#),
    );
    let out = run(&h, json!({ "provider": "mock" })).unwrap();
    assert_eq!(quota_query(&h), [pair("provider", "mock")]);
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["providers", "meta"],
        "no degraded key"
    );
}

#[test]
fn connection_id_wins_and_skips_the_mapping() {
    let h = populated();
    let out = run(
        &h,
        json!({ "provider": "mock", "connectionId": "f3e6be91-95e0-407d-9154-efd2bd1a20c0" }),
    )
    .unwrap();
    assert_eq!(
        quota_query(&h),
        [pair("connectionId", "f3e6be91-95e0-407d-9154-efd2bd1a20c0")]
    );
    assert_eq!(h.gateway.requests().len(), 1);
    assert_eq!(
        out["meta"]["filters"],
        json!({ "provider": "mock", "connectionId": "f3e6be91-95e0-407d-9154-efd2bd1a20c0" })
    );
    // Empty strings count as not given.
    let h = populated();
    run(&h, json!({ "provider": "", "connectionId": "" })).unwrap();
    assert!(quota_query(&h).is_empty());
}

#[test]
fn gateway_filters_fill_in_when_no_argument() {
    let raw = json!({ "providers": [], "meta": { "generatedAt": "t", "filters": { "provider": "p", "connectionId": "c" } } });
    let out = normalise(&raw, None, None);
    assert_eq!(
        out["meta"]["filters"],
        json!({ "provider": "p", "connectionId": "c" })
    );
    let out = normalise(&json!({}), None, None);
    assert_eq!(
        out,
        json!({ "providers": [], "meta": { "generatedAt": null, "filters": { "provider": null, "connectionId": null }, "totalProviders": 0 } })
    );
}

#[test]
fn empty_gateway_and_bare_array() {
    let h = host(
        Reply::json(
            200,
            r#"{"providers":[],"meta":{"filters":{"provider":null,"connectionId":null},"totalProviders":0}}"#,
        ),
        Reply::json(200, r#"{"nodes":[]}"#),
        Reply::json(200, "{}"),
    );
    let out = run(&h, json!({})).unwrap();
    assert_eq!(out["providers"], json!([]));
    assert_eq!(out["meta"]["totalProviders"], 0);
    // No generatedAt from the gateway: null, not the time of this call.
    assert_eq!(out["meta"]["generatedAt"], Value::Null);

    let bare =
        json!([{ "provider": "claude", "connectionId": "c1", "quotaUsed": 5, "quotaTotal": 10 }]);
    let h = host(
        Reply::json(200, bare.to_string()),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    );
    let out = run(&h, json!({})).unwrap();
    assert_eq!(out["providers"][0]["percentRemaining"], 50);
    assert_eq!(out["meta"]["totalProviders"], 1);
}

#[test]
fn normalisation_rules() {
    let raw = json!({ "providers": [
        { "name": "  ", "provider": 7, "connectionId": "", "quotaUsed": 150, "quotaTotal": "100", "resetAt": 5, "tokenStatus": "weird" },
        { "name": "a", "provider": "p", "connectionId": "c", "quotaUsed": -3, "quotaTotal": -1, "percentRemaining": 140, "tokenStatus": "expiring" },
        { "name": "b", "provider": "p", "connectionId": "c", "quotaUsed": 1, "quotaTotal": 3, "resetAt": "2026-12-01T00:00:00Z", "tokenStatus": "refreshing" },
        { "quotaUsed": "5", "quotaTotal": 0, "percentRemaining": -2 },
        "junk"
    ], "meta": { "generatedAt": "g" } });
    let out = normalise(&raw, None, None);
    let p = &out["providers"];
    assert_eq!(
        p[0],
        json!({ "name": null, "provider": null, "connectionId": null, "quotaUsed": 100, "quotaTotal": 100, "percentRemaining": 0, "resetAt": null, "tokenStatus": "weird" })
    );
    assert_eq!(
        p[1],
        json!({ "name": "a", "provider": "p", "connectionId": "c", "quotaUsed": 0, "quotaTotal": null, "percentRemaining": 100, "resetAt": null, "tokenStatus": "expiring" }),
        "the gateway's own percentRemaining, clamped"
    );
    assert_eq!(
        p[2]["percentRemaining"].as_f64().unwrap(),
        66.66666666666666,
        "(3-1)/3*100 in JS"
    );
    assert_eq!(p[2]["resetAt"], "2026-12-01T00:00:00Z");
    assert_eq!(p[2]["tokenStatus"], "refreshing");
    // A numeric string is not a used count: unknown, not 0.
    assert_eq!(p[3]["quotaUsed"], Value::Null);
    assert_eq!(p[3]["quotaTotal"], 0);
    assert_eq!(p[3]["percentRemaining"], 0, "given by the gateway, clamped");
    assert_eq!(p[3]["tokenStatus"], Value::Null);
    assert_eq!(p[4]["provider"], Value::Null);
    assert_eq!(out["meta"]["totalProviders"], 5);
    assert_eq!(out["meta"]["generatedAt"], "g");
    assert_eq!(testing::keys(&p[0]), ENTRY_KEYS);
}

/// Unknown statuses, missing limits and missing fields (a recorded answer
/// with its entries edited): each is reported as the gateway gave it, or
/// null, never as a default.
#[test]
fn odd_entries_say_only_what_the_gateway_says() {
    let h = host(
        Reply::json(200, fixtures::derived::USAGE_QUOTA_ODD_ENTRIES),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    );
    let out = run(&h, json!({})).unwrap();
    let p = &out["providers"];
    assert_eq!(p[0]["tokenStatus"], "revoked", "never read as valid");
    assert_eq!(p[0]["percentRemaining"], 100, "the gateway's own value for an unknown limit");
    assert_eq!(
        p[1],
        json!({ "name": "second", "provider": NODE_ID, "connectionId": null, "quotaUsed": null, "quotaTotal": null,
                "percentRemaining": null, "resetAt": null, "tokenStatus": "valid" }),
        "no use, no limit, no percentage: nothing to report"
    );
    assert_eq!(p[2]["name"], Value::Null);
    assert_eq!(p[2]["provider"], Value::Null);
    assert_eq!(p[2]["percentRemaining"], 80, "(200 - 40) / 200 from a known limit");
    assert_eq!(out["meta"]["generatedAt"], Value::Null);
    assert_eq!(out["meta"]["totalProviders"], 3);
}

#[test]
fn quota_failures_are_tool_errors() {
    for (reply, text) in gateway_failures(Method::Get, QUOTA) {
        for input in [
            json!({}),
            json!({ "provider": "mock" }),
            json!({ "connectionId": "c" }),
        ] {
            let h = host(
                reply.clone(),
                Reply::json(200, fixtures::PROVIDER_NODES),
                Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
            );
            assert_eq!(run(&h, input), Err(text.clone()));
        }
    }
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<CheckQuota>();
    testing::check_manifest::<CheckQuota>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"provider":{"description":"Filter by provider name (e.g., 'claude', 'gemini'). If omitted, returns all providers.","type":"string"},"connectionId":{"description":"Filter by specific connection ID","type":"string"}}}"#
    );
    assert_eq!(
        desc["description"],
        "Checks remaining API quota for one or all providers"
    );
    assert_eq!(desc["annotations"]["readOnlyHint"], true);
    assert_eq!(desc["scopes"], json!(["read:quota"]));
}
