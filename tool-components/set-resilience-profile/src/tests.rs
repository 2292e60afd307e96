use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures};
use serde_json::{Value, json};

use super::*;

/// What the gateway does with a PATCH: a deep merge into its settings.
fn merged(base: &Value, patch: &Value) -> Value {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            let mut out = b.clone();
            for (k, v) in p {
                out.insert(
                    k.clone(),
                    merged(&b.get(k).cloned().unwrap_or(Value::Null), v),
                );
            }
            Value::Object(out)
        }
        (_, p) => p.clone(),
    }
}

fn gateway_after(profile: &str) -> FakeGateway {
    let defaults: Value = serde_json::from_str(fixtures::RESILIENCE_DEFAULTS).unwrap();
    let after = merged(&defaults, &settings(profile));
    let mut patch_answer = json!({ "ok": true });
    patch_answer
        .as_object_mut()
        .unwrap()
        .extend(after.as_object().unwrap().clone());
    FakeGateway::new()
        .on(
            Method::Patch,
            RESILIENCE,
            Reply::json(200, patch_answer.to_string()),
        )
        .on_get(RESILIENCE, Reply::json(200, after.to_string()))
}

#[test]
fn applies_and_confirms_each_profile() {
    for profile in PROFILES {
        let h = FakeHost::new(gateway_after(profile));
        let out = h
            .call::<SetResilienceProfile>(json!({ "profile": profile }))
            .unwrap();
        assert_eq!(
            out,
            json!({ "applied": true, "profile": profile, "settings": settings(profile) })
        );
        let reqs = h.gateway.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].method, Method::Patch);
        assert_eq!(
            reqs[0].body.as_deref(),
            Some(settings(profile).to_string().as_str())
        );
        assert_eq!(reqs[1].source(), "GET /api/resilience");
    }
}

#[test]
fn profile_table_and_key_order() {
    assert_eq!(
        settings("aggressive").to_string(),
        r#"{"requestQueue":{"requestsPerMinute":180,"minTimeBetweenRequestsMs":100,"concurrentRequests":16},"connectionCooldown":{"oauth":{"baseCooldownMs":30000,"useUpstreamRetryHints":false,"maxBackoffSteps":4},"apikey":{"baseCooldownMs":2000,"useUpstreamRetryHints":true,"maxBackoffSteps":3}},"providerBreaker":{"oauth":{"failureThreshold":2,"resetTimeoutMs":30000},"apikey":{"failureThreshold":3,"resetTimeoutMs":15000}}}"#
    );
    assert_eq!(
        settings("balanced").to_string(),
        r#"{"requestQueue":{"requestsPerMinute":100,"minTimeBetweenRequestsMs":200,"concurrentRequests":10},"connectionCooldown":{"oauth":{"baseCooldownMs":60000,"useUpstreamRetryHints":false,"maxBackoffSteps":8},"apikey":{"baseCooldownMs":3000,"useUpstreamRetryHints":true,"maxBackoffSteps":5}},"providerBreaker":{"oauth":{"failureThreshold":3,"resetTimeoutMs":60000},"apikey":{"failureThreshold":5,"resetTimeoutMs":30000}}}"#
    );
    assert_eq!(
        settings("conservative").to_string(),
        r#"{"requestQueue":{"requestsPerMinute":60,"minTimeBetweenRequestsMs":350,"concurrentRequests":6},"connectionCooldown":{"oauth":{"baseCooldownMs":120000,"useUpstreamRetryHints":false,"maxBackoffSteps":10},"apikey":{"baseCooldownMs":30000,"useUpstreamRetryHints":false,"maxBackoffSteps":8}},"providerBreaker":{"oauth":{"failureThreshold":8,"resetTimeoutMs":120000},"apikey":{"failureThreshold":8,"resetTimeoutMs":60000}}}"#
    );
}

#[test]
fn read_back_that_differs_is_an_error() {
    // The gateway still holds its defaults after the PATCH.
    let gw = gateway_after("balanced")
        .on_get(RESILIENCE, Reply::json(200, fixtures::RESILIENCE_DEFAULTS));
    let err = FakeHost::new(gw)
        .call::<SetResilienceProfile>(json!({ "profile": "balanced" }))
        .unwrap_err();
    assert_eq!(
        err,
        "Resilience profile \"balanced\" was not confirmed: PATCH /api/resilience succeeded but GET /api/resilience reads back connectionCooldown.oauth.baseCooldownMs = 5000 (sent 60000), providerBreaker.oauth.failureThreshold = 8 (sent 3), providerBreaker.apikey.failureThreshold = 12 (sent 5). Another client may have changed the settings; call the tool again or check the gateway's resilience settings."
    );
    // Missing values and other types are differences too; 100.0 equals 100.
    let mut after: Value = serde_json::from_str(fixtures::RESILIENCE_DEFAULTS).unwrap();
    after = merged(&after, &settings("balanced"));
    after["requestQueue"]["requestsPerMinute"] = json!(100.0);
    after["providerBreaker"]["apikey"]
        .as_object_mut()
        .unwrap()
        .remove("resetTimeoutMs");
    after["connectionCooldown"]["apikey"]["useUpstreamRetryHints"] = json!("true");
    let gw = gateway_after("balanced").on_get(RESILIENCE, Reply::json(200, after.to_string()));
    let err = apply(&gw, "balanced").unwrap_err();
    assert!(err.message().contains(
        "reads back connectionCooldown.apikey.useUpstreamRetryHints = \"true\" (sent true), providerBreaker.apikey.resetTimeoutMs = missing (sent 30000)."
    ), "{err}");
}

#[test]
fn failed_read_back_says_the_patch_went_through() {
    let gw = gateway_after("aggressive").on_get(RESILIENCE, Reply::unreachable("connection reset"));
    assert_eq!(
        apply(&gw, "aggressive").unwrap_err().message(),
        "Resilience profile \"aggressive\" was sent (PATCH /api/resilience succeeded) but could not be confirmed: OmniRoute API unreachable: GET /api/resilience: connection reset"
    );
}

#[test]
fn patch_failures_are_tool_errors_and_nothing_is_read() {
    for (reply, text) in gateway_failures(Method::Patch, RESILIENCE) {
        let gw = gateway_after("balanced").on(Method::Patch, RESILIENCE, reply);
        let h = FakeHost::new(gw);
        assert_eq!(
            h.call::<SetResilienceProfile>(json!({ "profile": "balanced" })),
            Err(text)
        );
        assert_eq!(h.gateway.requests().len(), 1);
    }
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<SetResilienceProfile>();
    testing::check_manifest::<SetResilienceProfile>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"profile":{"type":"string","enum":["aggressive","balanced","conservative"],"description":"Resilience profile to apply"}},"required":["profile"]}"#
    );
    assert_eq!(
        desc["description"],
        "Applies a resilience profile controlling circuit breakers, retries, timeouts, and fallback depth"
    );
    assert_eq!(desc["annotations"]["readOnlyHint"], false);
}
