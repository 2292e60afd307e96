//! `omniroute_get_health` (docs/tools/get_health.md).
//!
//! Three gateway reads run concurrently: health (breakers, memory, uptime),
//! rate limits (per-connection queues) and the response cache. Any of them
//! may fail; the tool still answers, with `null` in place of what it could
//! not read (a list it could not read is `null`, not empty) and each
//! failure, or each value an answer left out, named in `degraded`.

use omniroute_tool_sdk::coerce::{self, number_or_null, pick, string_or_null};
use omniroute_tool_sdk::{
    Ctx, Degraded, Gateway, Request, Tool, ToolDescription, ToolError, schema,
};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct GetHealth;

omniroute_tool_sdk::export_tool!(GetHealth);

pub const HEALTH: &str = "/api/monitoring/health";
pub const RATE_LIMITS: &str = "/api/rate-limits";
pub const CACHE: &str = "/api/cache";

/// The output keys present in every result, in order (`cacheStats` and
/// `cryptography`, when present, come between `rateLimits` and `degraded`).
pub const ALWAYS_PRESENT: &[&str] = &[
    "status",
    "uptime",
    "version",
    "memoryUsage",
    "circuitBreakers",
    "rateLimits",
    "degraded",
];

const BREAKER_KEYS: &[&str] = &[
    "provider",
    "state",
    "failureCount",
    "lastFailure",
    "retryAfterMs",
];
const CONNECTION_KEYS: &[&str] = &[
    "connectionId",
    "provider",
    "name",
    "rateLimitProtection",
    "enabled",
    "active",
    "queued",
    "running",
    "executing",
    "done",
];

impl Tool for GetHealth {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_get_health",
            "Gateway health",
            "Returns OmniRoute health status including uptime, memory, circuit breakers, rate limits, and cache stats",
            &["read:health"],
        )
        .input_schema(schema::no_input())
        .output_schema(output_schema())
    }

    fn call(_input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        Ok(get_health(cx.gateway))
    }
}

/// Reads the three sources and assembles the result. Never fails: even with
/// the gateway down the answer is `status: "unreachable"` plus three
/// `degraded` entries.
pub fn get_health(gw: &dyn Gateway) -> Value {
    let requests = [
        Request::get(HEALTH),
        Request::get(RATE_LIMITS),
        Request::get(CACHE),
    ];
    let mut degraded = Degraded::new();
    let [health, rate_limits, cache] = <[_; 3]>::try_from(gw.send_all_json(&requests))
        .expect("send_all_json answers every request")
        .map(|result| degraded.take(result));

    let source = |path: &str| Request::get(path).source();
    let mut out = Map::new();
    match &health {
        Some(h) => {
            let status = string_or_null(&h["status"]);
            if status.is_null() {
                degraded.missing(&source(HEALTH), "`status`", "status");
            }
            out.insert("status".into(), status);
            out.insert("uptime".into(), number_or_null(&h["uptime"]));
            out.insert("version".into(), string_or_null(&h["version"]));
            out.insert("memoryUsage".into(), memory_usage(&h["memoryUsage"]));
            let breakers = pick_each(&h["providerBreakers"], BREAKER_KEYS);
            if breakers.is_null() {
                degraded.missing(&source(HEALTH), "`providerBreakers` list", "circuitBreakers");
            }
            out.insert("circuitBreakers".into(), breakers);
        }
        None => {
            out.insert("status".into(), json!("unreachable"));
            out.insert("uptime".into(), Value::Null);
            out.insert("version".into(), Value::Null);
            out.insert("memoryUsage".into(), Value::Null);
            out.insert("circuitBreakers".into(), Value::Null);
        }
    }
    let connections = match &rate_limits {
        Some(r) => {
            let connections = pick_each(&r["connections"], CONNECTION_KEYS);
            if connections.is_null() {
                degraded.missing(&source(RATE_LIMITS), "`connections` list", "rateLimits");
            }
            connections
        }
        None => Value::Null,
    };
    out.insert("rateLimits".into(), connections);
    if let Some(cache) = &cache {
        out.insert("cacheStats".into(), cache_stats(&cache["semanticCache"]));
    }
    if let Some(crypto) = health
        .as_ref()
        .map(|h| &h["cryptography"])
        .filter(|c| c.is_object())
    {
        out.insert("cryptography".into(), pick(crypto, &["status", "provider"]));
    }
    out.insert("degraded".into(), degraded.to_value());
    Value::Object(out)
}

/// `{heapUsed, heapTotal}` from `health.memoryUsage`, or null when absent.
fn memory_usage(mem: &Value) -> Value {
    if !mem.is_object() {
        return Value::Null;
    }
    json!({ "heapUsed": number_or_null(&mem["heapUsed"]), "heapTotal": number_or_null(&mem["heapTotal"]) })
}

/// Each entry of a gateway list reduced to `keys`, in gateway order; `null`
/// when `list` is not a list (the gateway did not send it).
fn pick_each(list: &Value, keys: &[&str]) -> Value {
    match list {
        Value::Array(items) => Value::Array(items.iter().map(|entry| pick(entry, keys)).collect()),
        _ => Value::Null,
    }
}

/// `{hits, misses, hitRate}` from `/api/cache` `semanticCache`; the gateway
/// sends `hitRate` as a percentage string (`"12.5"`), the output as a number.
fn cache_stats(semantic: &Value) -> Value {
    let hit_rate = match &semantic["hitRate"] {
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(coerce::number)
            .unwrap_or(Value::Null),
        other => number_or_null(other),
    };
    json!({ "hits": number_or_null(&semantic["hits"]), "misses": number_or_null(&semantic["misses"]), "hitRate": hit_rate })
}

fn output_schema() -> Value {
    let loose_object = |description: &str| json!({ "type": "object", "description": description });
    let number_or_null = |d: &str| schema::nullable("number", d);
    schema::object(
        json!({
            "status": schema::nullable("string", "The gateway's health status (\"healthy\"), or \"unreachable\" when the health endpoint failed; null (named in degraded) when the gateway answered without one"),
            "uptime": number_or_null("Gateway uptime in seconds"),
            "version": schema::nullable("string", "Gateway version"),
            "memoryUsage": {
                "type": ["object", "null"],
                "description": "Gateway heap usage in bytes",
                "properties": {
                    "heapUsed": number_or_null("Heap used, bytes"),
                    "heapTotal": number_or_null("Heap total, bytes"),
                },
                "required": ["heapUsed", "heapTotal"],
            },
            "circuitBreakers": {
                "type": ["array", "null"],
                "description": "Per-provider circuit breakers in gateway order: {provider, state (CLOSED|OPEN|HALF_OPEN), failureCount, lastFailure, retryAfterMs}; null (not empty) when health could not be read or sent no breaker list, named in degraded",
                "items": loose_object("One provider's breaker, as the gateway reports it"),
            },
            "rateLimits": {
                "type": ["array", "null"],
                "description": "Per-connection rate-limit queues: {connectionId, provider, name, rateLimitProtection, enabled, active, queued, running, executing, done}; null (not empty) when rate limits could not be read or sent no connection list, named in degraded",
                "items": loose_object("One connection, as the gateway reports it"),
            },
            "cacheStats": {
                "type": "object",
                "description": "Response (semantic) cache counters; absent when the cache endpoint failed",
                "properties": {
                    "hits": number_or_null("Cache hits"),
                    "misses": number_or_null("Cache misses"),
                    "hitRate": number_or_null("Hit rate in percent"),
                },
                "required": ["hits", "misses", "hitRate"],
            },
            "cryptography": loose_object("Credential encryption status {status, provider}; absent when the gateway does not report it"),
            "degraded": schema::degraded(),
        }),
        ALWAYS_PRESENT,
    )
}

#[cfg(test)]
mod tests;
