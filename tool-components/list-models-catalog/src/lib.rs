//! `omniroute_list_models_catalog` (docs/tools/list_models_catalog.md).
//!
//! `GET /v1/models` lists what the gateway serves (connected providers'
//! models and active combos) but ignores every filter, reports capabilities
//! as an object of booleans and carries no prices. The tool reads prices and
//! the provider alias maps alongside it, concurrently, and filters itself:
//! `provider` by alias set (so `mock` finds `mock/*` owned by the node id,
//! and `combo` finds combos), `capability` over the derived list.

use omniroute_tool_sdk::coerce::{self, arr, rec};
use omniroute_tool_sdk::providers::{AliasSet, Providers};
use omniroute_tool_sdk::{
    Ctx, Degraded, Gateway, Request, Tool, ToolDescription, ToolError, schema,
};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct ListModelsCatalog;

omniroute_tool_sdk::export_tool!(ListModelsCatalog);

pub const MODELS: &str = "/v1/models";
pub use omniroute_tool_sdk::providers::{PRICING, PRICING_MODELS, PROVIDER_NODES};

/// The published `capability` values.
pub const CAPABILITIES: &[&str] = &[
    "chat",
    "embedding",
    "image",
    "audio",
    "video",
    "rerank",
    "moderation",
];

impl Tool for ListModelsCatalog {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_list_models_catalog",
            "Models catalog",
            "Lists all available AI models across providers with capabilities and pricing",
            &["read:models"],
        )
        .input_schema(schema::input(
            json!({
                "provider": { "description": "Filter by provider name", "type": "string" },
                "capability": {
                    "description": "Filter by model capability",
                    "type": "string",
                    "enum": CAPABILITIES,
                },
            }),
            &[],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let given = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        list_models_catalog(
            cx.gateway,
            given(&input["provider"]).as_deref(),
            given(&input["capability"]).as_deref(),
        )
    }
}

/// Reads the four sources concurrently and lists the matching models in
/// gateway order. `/v1/models` is required; the others only degrade.
pub fn list_models_catalog(
    gw: &dyn Gateway,
    provider: Option<&str>,
    capability: Option<&str>,
) -> Result<Value, ToolError> {
    let requests = [
        Request::get(MODELS),
        Request::get(PRICING),
        Request::get(PROVIDER_NODES),
        Request::get(PRICING_MODELS),
    ];
    let [models, pricing, nodes, aliases] = <[_; 4]>::try_from(gw.send_all_json(&requests))
        .expect("send_all_json answers every request");
    let models = models?;
    let mut degraded = Degraded::new();
    let pricing = degraded.take(pricing);
    let providers = Providers::from_json(
        degraded.take(nodes).as_ref(),
        degraded.take(aliases).as_ref(),
    );
    let wanted = provider.map(|p| providers.alias_set(p));

    let list = match &models {
        Value::Array(items) => items.as_slice(),
        other => arr(&other["data"]),
    };
    let entries: Vec<Value> = list
        .iter()
        .filter_map(|m| {
            let model = Model::of(m);
            let provider_matches = wanted.as_ref().is_none_or(|set| model.named_by(set));
            let capabilities = capabilities(m);
            let capability_matches = capability.is_none_or(|c| capabilities.iter().any(|x| x == c));
            (provider_matches && capability_matches)
                .then(|| model.entry(m, capabilities, &providers, pricing.as_ref()))
        })
        .collect();

    let without_status = entries.iter().filter(|e| e["status"].is_null()).count();
    if without_status > 0 {
        degraded.missing(
            &Request::get(MODELS).source(),
            &format!("`status` for {without_status} of {} listed models", entries.len()),
            "their status",
        );
    }
    Ok(json!({
        "models": entries,
        "source": "local_catalog",
        "degraded": degraded.to_value(),
    }))
}

/// The names a `/v1/models` entry goes by.
struct Model<'a> {
    id: Option<&'a str>,
    owned_by: Option<&'a str>,
    /// The id's text before the first `/` (node prefix or provider alias).
    prefix: Option<&'a str>,
}

impl<'a> Model<'a> {
    fn of(m: &'a Value) -> Self {
        let id = m["id"].as_str();
        Model {
            id,
            owned_by: m["owned_by"].as_str(),
            prefix: id
                .and_then(|id| id.split_once('/'))
                .map(|(p, _)| p)
                .filter(|p| !p.is_empty()),
        }
    }

    /// `owned_by` then the prefix: the provider names of the entry.
    fn names(&self) -> Vec<&'a str> {
        self.owned_by.into_iter().chain(self.prefix).collect()
    }

    /// True when the filter's alias set holds `owned_by` or the prefix.
    fn named_by(&self, set: &AliasSet) -> bool {
        set.contains_any(self.names())
    }

    /// `{id, provider, capabilities, status, pricing?, contextLength?, maxOutputTokens?}`.
    fn entry(
        &self,
        m: &Value,
        capabilities: Vec<String>,
        providers: &Providers,
        pricing: Option<&Value>,
    ) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("provider".into(), json!(self.owned_by));
        out.insert("capabilities".into(), json!(capabilities));
        out.insert("status".into(), coerce::string_or_null(&m["status"]));
        let priced_model = m["root"].as_str().filter(|r| !r.is_empty()).or(self.id);
        let price = pricing
            .zip(priced_model)
            .and_then(|(p, model)| providers.price(p, &self.names(), model));
        if let Some(price) = price {
            out.insert("pricing".into(), price.to_value());
        }
        if m["context_length"].is_number() {
            out.insert("contextLength".into(), m["context_length"].clone());
        }
        if m["max_output_tokens"].is_number() {
            out.insert("maxOutputTokens".into(), m["max_output_tokens"].clone());
        }
        Value::Object(out)
    }
}

/// The entry's `type` (or `"chat"`), then every `capabilities` key whose
/// value is `true`, in gateway order.
pub fn capabilities(m: &Value) -> Vec<String> {
    let kind = m["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("chat");
    std::iter::once(kind.to_string())
        .chain(
            rec(&m["capabilities"])
                .iter()
                .filter(|(_, v)| **v == Value::Bool(true))
                .map(|(k, _)| k.clone()),
        )
        .collect()
}

fn output_schema() -> Value {
    let mut pricing = schema::object(
        json!({
            "inputPerMillion": schema::typed("number", "USD per 1M input tokens"),
            "outputPerMillion": schema::typed("number", "USD per 1M output tokens"),
        }),
        &["inputPerMillion", "outputPerMillion"],
    );
    pricing["description"] = json!(
        "Gateway price; omitted when none is known (combos, custom nodes without user prices) or pricing could not be read"
    );
    let model = schema::object(
        json!({
            "id": schema::nullable("string", "Model id as clients send it: <prefix>/<model>, or a combo name; null when the gateway sent none"),
            "provider": schema::nullable("string", "owned_by: the node id or provider id, or \"combo\""),
            "capabilities": {
                "type": "array",
                "description": "The model type (chat, embedding, image, audio, video, rerank, moderation, …) first, then its true capability flags (tool_calling, reasoning, vision, …)",
                "items": { "type": "string" },
            },
            "status": schema::nullable("string", "The gateway's model status; null (named in degraded) when it sends none, as 3.7.9 does"),
            "pricing": pricing,
            "contextLength": schema::typed("number", "Context window in tokens, when the gateway knows it"),
            "maxOutputTokens": schema::typed("number", "Output token limit, when the gateway knows it"),
        }),
        &["id", "provider", "capabilities", "status"],
    );
    schema::object(
        json!({
            "models": { "type": "array", "description": "Matching models in gateway order", "items": model },
            "source": { "type": "string", "description": "Always \"local_catalog\"", "enum": ["local_catalog"] },
            "degraded": schema::degraded(),
        }),
        &["models", "source", "degraded"],
    )
}

#[cfg(test)]
mod tests;
