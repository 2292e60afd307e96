//! `omniroute_check_quota` (docs/tools/check_quota.md).
//!
//! `GET /api/usage/quota` keys providers by the node id or built-in provider
//! id, while agents say `mock` or `cc`. A `provider` argument is therefore
//! first mapped through its alias set (docs/gateway.md#provider-identity) to the id the gateway uses.
//! The answer keeps the original server's shape (3.7.9 already answers in
//! it); what the gateway did not say is `null`, never a default: an unknown
//! limit is not 100 % left, a missing use is not 0, an unrecognised token
//! status is reported as it is.

use omniroute_tool_sdk::coerce;
use omniroute_tool_sdk::providers;
use omniroute_tool_sdk::quota;
use omniroute_tool_sdk::{Ctx, Degraded, Gateway, Tool, ToolDescription, ToolError, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct CheckQuota;

omniroute_tool_sdk::export_tool!(CheckQuota);

pub use omniroute_tool_sdk::providers::{PRICING_MODELS, PROVIDER_NODES};
pub use omniroute_tool_sdk::quota::{QUOTA, TOKEN_STATUSES};

/// The keys of each `providers` entry, in order; all always present.
pub const ENTRY_KEYS: &[&str] = &[
    "name",
    "provider",
    "connectionId",
    "quotaUsed",
    "quotaTotal",
    "percentRemaining",
    "resetAt",
    "tokenStatus",
];

impl Tool for CheckQuota {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_check_quota",
            "Check provider quota",
            "Checks remaining API quota for one or all providers",
            &["read:quota"],
        )
        .input_schema(schema::input(
            json!({
                "provider": {
                    "description": "Filter by provider name (e.g., 'claude', 'gemini'). If omitted, returns all providers.",
                    "type": "string",
                },
                "connectionId": { "description": "Filter by specific connection ID", "type": "string" },
            }),
            &[],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        check_quota(
            cx.gateway,
            given(&input["provider"]),
            given(&input["connectionId"]),
        )
    }
}

/// An argument counts as given when it is a non-empty string (the original's
/// truthiness test).
fn given(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// Reads the quota, filtered by `connectionId` when given, else by the
/// gateway id of `provider` when given (never both), and normalises it.
pub fn check_quota(
    gw: &dyn Gateway,
    provider: Option<&str>,
    connection_id: Option<&str>,
) -> Result<Value, ToolError> {
    let raw = match (connection_id, provider) {
        (Some(connection_id), _) => gw.get_json(QUOTA, &[("connectionId", connection_id)])?,
        (None, Some(provider)) => {
            // The mapping sources are optional: when they fail, the provider
            // is sent as given (and nothing in the output changes shape).
            let providers = providers::fetch(gw, &mut Degraded::new());
            gw.get_json(QUOTA, &[("provider", providers.gateway_id(provider))])?
        }
        (None, None) => gw.get_json(QUOTA, &[])?,
    };
    Ok(normalise(&raw, provider, connection_id))
}

/// `{providers:[…], meta:{…}}` in the original's shape, each entry by
/// [`quota::entry`].
pub fn normalise(raw: &Value, provider: Option<&str>, connection_id: Option<&str>) -> Value {
    let providers: Vec<Value> = quota::raw_entries(raw).iter().map(quota::entry).collect();
    let meta = &raw["meta"];
    let filter = |arg: Option<&str>, key: &str| match arg {
        Some(value) => json!(value),
        None => meta["filters"][key].clone(),
    };
    json!({
        "providers": providers,
        "meta": {
            "generatedAt": coerce::string_or_null(&meta["generatedAt"]),
            "filters": {
                "provider": filter(provider, "provider"),
                "connectionId": filter(connection_id, "connectionId"),
            },
            "totalProviders": providers.len(),
        },
    })
}

fn output_schema() -> Value {
    let entry = schema::object(
        json!({
            "name": schema::nullable("string", "Connection name; null when the gateway sent none"),
            "provider": schema::nullable("string", "The gateway's provider id (node id or built-in provider id); null when the gateway sent none"),
            "connectionId": schema::nullable("string", "Connection id; null when the gateway sent none"),
            "quotaUsed": schema::nullable("number", "Quota used, clamped to [0, quotaTotal] when the limit is known; null when the gateway did not say"),
            "quotaTotal": schema::nullable("number", "Quota limit; null when the gateway does not know it"),
            "percentRemaining": schema::nullable("number", "Remaining quota in percent (0-100): the gateway's own value (3.7.9 reports 100 when it does not know the limit), else computed from quotaTotal and quotaUsed; null when neither is possible"),
            "resetAt": schema::nullable("string", "When the quota resets (ISO), if known"),
            "tokenStatus": schema::nullable(
                "string",
                "Credential state exactly as the gateway reports it (3.7.9: valid, expiring, expired or refreshing; any other value is passed on unchanged); null when the gateway sent none",
            ),
        }),
        ENTRY_KEYS,
    );
    let filter = |d: &str| json!({ "description": d });
    schema::object(
        json!({
            "providers": { "type": "array", "description": "One entry per provider connection", "items": entry },
            "meta": schema::object(
                json!({
                    "generatedAt": schema::nullable("string", "When the gateway computed the quota (ISO); null when it did not say"),
                    "filters": schema::object(
                        json!({
                            "provider": filter("The provider argument as given (not the mapped id), else the gateway's filter, else null"),
                            "connectionId": filter("The connectionId argument, else the gateway's filter, else null"),
                        }),
                        &["provider", "connectionId"],
                    ),
                    "totalProviders": schema::typed("number", "Number of entries in providers"),
                }),
                &["generatedAt", "filters", "totalProviders"],
            ),
        }),
        &["providers", "meta"],
    )
}

#[cfg(test)]
mod tests;
