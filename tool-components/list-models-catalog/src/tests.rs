use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures};
use omniroute_tool_sdk::{GatewayError, Method};
use serde_json::{Value, json};

use super::*;

const NODE_ID: &str = "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be";

/// v1-models-populated.json plus built-in entries as a gateway with an
/// OpenAI connection lists them: a chat model under its alias-less id, an
/// embedding model with `type`, and a model the gateway knows details of.
fn catalog() -> String {
    let mut models: Value = serde_json::from_str(fixtures::V1_MODELS_POPULATED).unwrap();
    let data = models["data"].as_array_mut().unwrap();
    data.push(json!({
        "id": "openai/gpt-4o", "object": "model", "created": 1795648370, "owned_by": "openai",
        "permission": [], "root": "gpt-4o", "parent": null,
        "capabilities": { "tool_calling": true, "reasoning": false, "vision": true },
        "max_output_tokens": 16384, "context_length": 128000, "status": "active"
    }));
    data.push(json!({
        "id": "openai/text-embedding-3-small", "object": "model", "created": 1795648370, "owned_by": "openai",
        "permission": [], "root": "text-embedding-3-small", "parent": null, "type": "embedding", "dimensions": 1536,
        "capabilities": { "tool_calling": false, "reasoning": false }
    }));
    data.push(json!({
        "id": "cc/claude-sonnet-4-6", "object": "model", "created": 1795648370, "owned_by": "claude",
        "permission": [], "root": "claude-sonnet-4-6", "parent": null,
        "capabilities": { "tool_calling": true, "reasoning": true, "thinking": true }, "max_output_tokens": "64000"
    }));
    models.to_string()
}

fn host_with(models: Reply, pricing: Reply, nodes: Reply, aliases: Reply) -> FakeHost {
    FakeHost::new(
        FakeGateway::new()
            .on_get(MODELS, models)
            .on_get(PRICING, pricing)
            .on_get(PROVIDER_NODES, nodes)
            .on_get(PRICING_MODELS, aliases),
    )
}

fn host() -> FakeHost {
    host_with(
        Reply::json(200, catalog()),
        Reply::json(200, fixtures::PRICING),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    )
}

fn run(host: &FakeHost, input: Value) -> Result<Value, String> {
    host.call::<ListModelsCatalog>(input)
}

fn ids(out: &Value) -> Vec<&str> {
    out["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

fn model<'a>(out: &'a Value, id: &str) -> &'a Value {
    out["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} listed"))
}

#[test]
fn populated_catalog_contract_example() {
    let h = host_with(
        Reply::json(200, fixtures::V1_MODELS_POPULATED),
        Reply::json(200, fixtures::PRICING),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    );
    let out = run(&h, json!({})).unwrap();
    // 3.7.9 sends no model status: null, and said once in degraded.
    let combo = |id: &str| json!({ "id": id, "provider": "combo", "capabilities": ["chat", "tool_calling", "reasoning"], "status": null, "maxOutputTokens": 8192 });
    let mock = |id: &str| json!({ "id": id, "provider": NODE_ID, "capabilities": ["chat", "tool_calling", "reasoning"], "status": null, "maxOutputTokens": 8192 });
    let expected = json!({
        "models": [combo("coding-fast"), combo("free-tier"), mock("mock/mock-small"), mock("mock/mock-large")],
        "source": "local_catalog",
        "degraded": [{ "source": "GET /v1/models", "error": "the answer has no `status` for 4 of 4 listed models; their status is null" }]
    });
    assert_eq!(
        out.to_string(),
        expected.to_string(),
        "values and key order"
    );
    // One batch of four concurrent reads.
    assert_eq!(h.gateway.batches(), vec![4]);
}

#[test]
fn builtin_models_get_prices_and_details() {
    let out = run(&host(), json!({})).unwrap();
    assert_eq!(
        model(&out, "openai/gpt-4o").to_string(),
        json!({
            "id": "openai/gpt-4o", "provider": "openai",
            "capabilities": ["chat", "tool_calling", "vision"], "status": "active",
            "pricing": { "inputPerMillion": 2.5, "outputPerMillion": 10 },
            "contextLength": 128000, "maxOutputTokens": 16384
        })
        .to_string()
    );
    // Priced through the alias set: owned_by `claude`, price key `cc`.
    assert_eq!(
        model(&out, "cc/claude-sonnet-4-6"),
        &json!({
            "id": "cc/claude-sonnet-4-6", "provider": "claude",
            "capabilities": ["chat", "tool_calling", "reasoning", "thinking"], "status": null,
            "pricing": { "inputPerMillion": 3, "outputPerMillion": 15 }
        }),
        "a non-numeric max_output_tokens is omitted"
    );
    // No default prices for custom nodes or combos.
    assert!(model(&out, "mock/mock-small").get("pricing").is_none());
    assert!(model(&out, "coding-fast").get("pricing").is_none());
    // Known provider, unknown model: no price.
    assert!(
        model(&out, "openai/text-embedding-3-small")
            .get("pricing")
            .is_none()
    );
}

#[test]
fn user_price_for_the_node_appears_after_status() {
    let mut prices: Value = serde_json::from_str(fixtures::PRICING).unwrap();
    prices[NODE_ID] = json!({ "mock-small": { "input": 1.5, "output": 6 } });
    let h = host_with(
        Reply::json(200, fixtures::V1_MODELS_POPULATED),
        Reply::json(200, prices.to_string()),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    );
    let out = run(&h, json!({})).unwrap();
    assert_eq!(
        model(&out, "mock/mock-small").to_string(),
        json!({ "id": "mock/mock-small", "provider": NODE_ID, "capabilities": ["chat", "tool_calling", "reasoning"], "status": null, "pricing": { "inputPerMillion": 1.5, "outputPerMillion": 6 }, "maxOutputTokens": 8192 }).to_string()
    );
    assert!(model(&out, "mock/mock-large").get("pricing").is_none());
}

#[test]
fn provider_filter_by_alias_set() {
    let h = host();
    // The node prefix finds the node's models (owned by the node id).
    assert_eq!(
        ids(&run(&h, json!({ "provider": "mock" })).unwrap()),
        ["mock/mock-small", "mock/mock-large"]
    );
    // So does the node id.
    assert_eq!(
        ids(&run(&h, json!({ "provider": NODE_ID })).unwrap()),
        ["mock/mock-small", "mock/mock-large"]
    );
    // "combo" selects combos.
    assert_eq!(
        ids(&run(&h, json!({ "provider": "combo" })).unwrap()),
        ["coding-fast", "free-tier"]
    );
    // Built-in id and alias.
    assert_eq!(
        ids(&run(&h, json!({ "provider": "cc" })).unwrap()),
        ["cc/claude-sonnet-4-6"]
    );
    assert_eq!(
        ids(&run(&h, json!({ "provider": "claude" })).unwrap()),
        ["cc/claude-sonnet-4-6"]
    );
    assert_eq!(
        ids(&run(&h, json!({ "provider": "openai" })).unwrap()),
        ["openai/gpt-4o", "openai/text-embedding-3-small"]
    );
    assert!(ids(&run(&h, json!({ "provider": "gemini" })).unwrap()).is_empty());
    // Exact, not case-insensitive; an empty filter is no filter.
    assert!(ids(&run(&h, json!({ "provider": "MOCK" })).unwrap()).is_empty());
    assert_eq!(ids(&run(&h, json!({ "provider": "" })).unwrap()).len(), 7);
}

#[test]
fn prefix_match_still_works_without_the_node_map() {
    let h = host_with(
        Reply::json(200, catalog()),
        Reply::json(200, fixtures::PRICING),
        Reply::unreachable("refused"),
        Reply::json(403, r#"{"error":"forbidden"}"#),
    );
    let out = run(&h, json!({ "provider": "mock" })).unwrap();
    assert_eq!(ids(&out), ["mock/mock-small", "mock/mock-large"]);
    // Without the alias map `claude` is only its own name: the cc/ entry is
    // found through owned_by, and priced through its id prefix `cc`.
    let out = run(&h, json!({ "provider": "claude" })).unwrap();
    assert_eq!(ids(&out), ["cc/claude-sonnet-4-6"]);
    assert!(out["models"][0].get("pricing").is_some());
    assert_eq!(
        out["degraded"],
        json!([
            { "source": "GET /api/provider-nodes", "error": "OmniRoute API unreachable: GET /api/provider-nodes: refused" },
            { "source": "GET /api/pricing/models", "error": r#"OmniRoute API error [403]: {"error":"forbidden"}"# },
            { "source": "GET /v1/models", "error": "the answer has no `status` for 1 of 1 listed models; their status is null" }
        ])
    );
}

#[test]
fn capability_filter_over_the_derived_list() {
    let h = host();
    assert_eq!(
        ids(&run(&h, json!({ "capability": "embedding" })).unwrap()),
        ["openai/text-embedding-3-small"]
    );
    let embedding = run(&h, json!({ "capability": "embedding" })).unwrap();
    assert_eq!(embedding["models"][0]["capabilities"], json!(["embedding"]));
    assert_eq!(
        ids(&run(&h, json!({ "capability": "chat" })).unwrap()).len(),
        6
    );
    assert!(ids(&run(&h, json!({ "capability": "image" })).unwrap()).is_empty());
    // Both filters together.
    assert_eq!(
        ids(&run(&h, json!({ "provider": "openai", "capability": "chat" })).unwrap()),
        ["openai/gpt-4o"]
    );
    assert!(
        ids(&run(&h, json!({ "provider": "mock", "capability": "embedding" })).unwrap()).is_empty()
    );
}

#[test]
fn capabilities_derivation() {
    assert_eq!(capabilities(&json!({})), ["chat"]);
    assert_eq!(
        capabilities(&json!({ "capabilities": ["vision"] })),
        ["chat"]
    );
    assert_eq!(
        capabilities(
            &json!({ "type": "audio", "subtype": "speech", "capabilities": { "b": true, "a": true, "c": false, "d": "true" } })
        ),
        ["audio", "b", "a"]
    );
}

#[test]
fn failed_pricing_omits_prices_and_degrades() {
    let h = host_with(
        Reply::json(200, catalog()),
        Reply::error(GatewayError::Timeout(15)),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    );
    let out = run(&h, json!({})).unwrap();
    assert!(
        out["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("pricing").is_none())
    );
    assert_eq!(
        out["degraded"],
        json!([
            { "source": "GET /api/pricing", "error": "OmniRoute API timeout after 15 s: GET /api/pricing" },
            { "source": "GET /v1/models", "error": "the answer has no `status` for 6 of 7 listed models; their status is null" }
        ])
    );
    assert_eq!(ids(&out).len(), 7);
}

#[test]
fn empty_catalog() {
    let h = host_with(
        Reply::json(200, r#"{"object":"list","data":[]}"#),
        Reply::json(200, "{}"),
        Reply::json(200, r#"{"nodes":[],"ccCompatibleProviderEnabled":false}"#),
        Reply::json(200, "{}"),
    );
    assert_eq!(
        run(&h, json!({ "provider": "mock" })).unwrap(),
        json!({ "models": [], "source": "local_catalog", "degraded": [] })
    );
}

#[test]
fn models_failures_are_tool_errors() {
    for (reply, text) in gateway_failures(Method::Get, MODELS) {
        let h = host_with(
            reply,
            Reply::json(200, fixtures::PRICING),
            Reply::json(200, fixtures::PROVIDER_NODES),
            Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
        );
        assert_eq!(run(&h, json!({})), Err(text));
    }
    // Gateway down: every source fails, the catalog one decides.
    let down = Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128");
    let h = host_with(down.clone(), down.clone(), down.clone(), down);
    assert_eq!(
        run(&h, json!({ "capability": "chat" })),
        Err(
            "OmniRoute API unreachable: GET /v1/models: connect ECONNREFUSED 127.0.0.1:20128"
                .to_string()
        )
    );
}

#[test]
fn odd_entries_and_bare_array() {
    let models = json!([{ "object": "model" }, { "id": "x/y", "owned_by": 7, "status": "deprecated", "context_length": 4096 }]);
    let h = host_with(
        Reply::json(200, models.to_string()),
        Reply::json(200, fixtures::PRICING),
        Reply::json(200, fixtures::PROVIDER_NODES),
        Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
    );
    let out = run(&h, json!({})).unwrap();
    assert_eq!(
        out["models"],
        json!([
            { "id": null, "provider": null, "capabilities": ["chat"], "status": null },
            { "id": "x/y", "provider": null, "capabilities": ["chat"], "status": "deprecated", "contextLength": 4096 }
        ])
    );
    assert_eq!(
        out["degraded"],
        json!([{ "source": "GET /v1/models", "error": "the answer has no `status` for 1 of 2 listed models; their status is null" }])
    );
    // The prefix still matches when owned_by is unusable.
    assert_eq!(ids(&run(&h, json!({ "provider": "x" })).unwrap()), ["x/y"]);
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<ListModelsCatalog>();
    testing::check_manifest::<ListModelsCatalog>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"provider":{"description":"Filter by provider name","type":"string"},"capability":{"description":"Filter by model capability","type":"string","enum":["chat","embedding","image","audio","video","rerank","moderation"]}}}"#
    );
    assert_eq!(
        desc["description"],
        "Lists all available AI models across providers with capabilities and pricing"
    );
    assert_eq!(desc["annotations"]["readOnlyHint"], true);
    assert_eq!(desc["scopes"], json!(["read:models"]));
}
