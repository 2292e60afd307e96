//! `omniroute_get_provider_metrics` (docs/tools/get_provider_metrics.md).
//!
//! One provider, under every name the gateway uses for it (its alias set,
//! docs/gateway.md#provider-identity): all-time success and latency from `/api/provider-metrics`,
//! latency percentiles and the last error from the newest call logs, the
//! breaker state from health, and its quota. Every source is optional; a
//! failed one leaves its fields `null` and is named in `degraded`.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::coerce::{self, round4};
use omniroute_tool_sdk::providers::{self, AliasSet, HEALTH, breaker_state};
use omniroute_tool_sdk::quota::{self, QUOTA};
use omniroute_tool_sdk::{Ctx, Degraded, Request, Tool, ToolDescription, ToolError, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct GetProviderMetrics;

omniroute_tool_sdk::export_tool!(GetProviderMetrics);

pub use omniroute_tool_sdk::providers::{PRICING_MODELS, PROVIDER_NODES};
pub const PROVIDER_METRICS: &str = "/api/provider-metrics";
pub const CALL_LOGS: &str = "/api/usage/call-logs";
/// Call-log entries read per gateway provider key (newest first).
pub const CALL_LOG_LIMIT: usize = 500;

pub const OUTPUT_KEYS: &[&str] = &[
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
    "degraded",
];

impl Tool for GetProviderMetrics {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_get_provider_metrics",
            "Provider metrics",
            "Returns detailed metrics for a specific provider including latency percentiles and circuit breaker state",
            &["read:health"],
        )
        .input_schema(schema::input(
            json!({
                "provider": { "type": "string", "description": "Provider name (e.g., 'claude', 'gemini-cli', 'codex')" },
            }),
            &["provider"],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let provider = args::string(&input, "provider")?;
        Ok(provider_metrics(cx, provider))
    }
}

/// The whole call; never fails.
pub fn provider_metrics(cx: &Ctx<'_>, provider: &str) -> Value {
    let [nodes, models] = providers::requests();
    let first = [
        nodes,
        models,
        Request::get(PROVIDER_METRICS),
        Request::get(HEALTH),
        Request::get(QUOTA),
    ];
    let [nodes, models, metrics, health, quota] =
        <[_; 5]>::try_from(cx.gateway.send_all_json(&first))
            .expect("send_all_json answers every request");
    let mut degraded = Degraded::new();
    let providers = providers::from_results(nodes, models, &mut degraded);
    let metrics = degraded.take(metrics);
    let health = degraded.take(health);
    let quota = degraded.take(quota);
    let set = providers.alias_set(provider);

    // The names the gateway's own logs use: node and provider ids. When the
    // maps failed or know nothing, the name as given.
    let mut keys: Vec<&str> = set
        .members()
        .iter()
        .map(String::as_str)
        .filter(|m| providers.is_gateway_key(m))
        .collect();
    if keys.is_empty() {
        keys.push(provider);
    }
    let log_requests: Vec<Request> = keys
        .iter()
        .map(|k| {
            Request::get(CALL_LOGS)
                .query("provider", *k)
                .query("limit", CALL_LOG_LIMIT.to_string())
        })
        .collect();
    let mut logs: Option<Vec<Value>> = Some(Vec::new());
    for (key, answer) in keys.iter().zip(cx.gateway.send_all_json(&log_requests)) {
        match (degraded.take(answer), logs.as_mut()) {
            (Some(rows), Some(all)) => all.extend(
                coerce::arr(&rows)
                    .iter()
                    .filter(|r| r["provider"].as_str() == Some(key))
                    .cloned(),
            ),
            _ => logs = None,
        }
    }
    let logs = logs.map(newest_first);

    let mut resolved: Vec<&String> = set.members().iter().collect();
    resolved.sort();
    let totals = metrics.as_ref().map(|m| Totals::of(m, &set));
    let success_rate = totals.as_ref().and_then(Totals::success_rate);
    let durations: Option<Vec<f64>> = logs.as_ref().map(|rows| {
        let mut d: Vec<f64> = rows
            .iter()
            .filter(|r| status_of(r).is_some_and(|s| (200..400).contains(&s)))
            .filter_map(|r| r["duration"].as_f64())
            .collect();
        d.sort_by(f64::total_cmp);
        d
    });
    let percentile = |p: f64| durations.as_deref().and_then(|d| nearest_rank(d, p));
    let last_error = logs
        .as_ref()
        .and_then(|rows| rows.iter().find(|r| status_of(r).is_some_and(|s| s >= 400)));
    let quota_info = quota
        .as_ref()
        .and_then(|raw| quota::entry_for(raw, &set))
        .map_or(json!({ "used": null, "total": null, "resetAt": null }), |e| {
            json!({ "used": e["quotaUsed"], "total": e["quotaTotal"], "resetAt": e["resetAt"] })
        });
    json!({
        "provider": provider,
        "resolvedAs": resolved,
        "successRate": success_rate.map(coerce::number),
        "requestCount": totals.as_ref().map(|t| coerce::number(t.requests)),
        "avgLatencyMs": totals.as_ref().and_then(Totals::avg_latency).map(coerce::number),
        "p50LatencyMs": percentile(50.0).map(coerce::number),
        "p95LatencyMs": percentile(95.0).map(coerce::number),
        "p99LatencyMs": percentile(99.0).map(coerce::number),
        "errorRate": success_rate.map(|r| coerce::number(round4(1.0 - r))),
        "lastError": last_error.map(error_text),
        "lastErrorAt": last_error.map(|r| coerce::string_or_null(&r["timestamp"])),
        "circuitBreakerState": health.as_ref().map(|h| breaker_state(h, &set).as_str()),
        "quotaInfo": quota_info,
        "sampleSize": durations.as_ref().map(Vec::len),
        "degraded": degraded.to_value(),
    })
}

/// Sums over the `/api/provider-metrics` entries of an alias set, each over
/// the entries that report it (a missing count is not read as 0).
struct Totals {
    requests: f64,
    /// Σ successes and Σ requests over the entries that report both.
    successes: f64,
    success_requests: f64,
    /// Σ requests × avgLatencyMs, over entries with both.
    latency_weighted: f64,
    latency_requests: f64,
}

impl Totals {
    fn of(metrics: &Value, set: &AliasSet) -> Totals {
        let mut t = Totals {
            requests: 0.0,
            successes: 0.0,
            success_requests: 0.0,
            latency_weighted: 0.0,
            latency_requests: 0.0,
        };
        for (key, m) in coerce::rec(&metrics["metrics"]) {
            if !set.contains(key) {
                continue;
            }
            let Some(requests) = coerce::finite(&m["totalRequests"]) else {
                continue;
            };
            t.requests += requests;
            if let Some(successes) = coerce::finite(&m["totalSuccesses"]) {
                t.successes += successes;
                t.success_requests += requests;
            }
            if let Some(avg) = coerce::finite(&m["avgLatencyMs"]) {
                t.latency_weighted += requests * avg;
                t.latency_requests += requests;
            }
        }
        t
    }

    /// round4(Σ successes / Σ requests); `None` without requests.
    fn success_rate(&self) -> Option<f64> {
        (self.success_requests > 0.0).then(|| round4(self.successes / self.success_requests))
    }

    /// The request-weighted mean latency, rounded as JS `Math.round` does.
    fn avg_latency(&self) -> Option<f64> {
        (self.latency_requests > 0.0)
            .then(|| (self.latency_weighted / self.latency_requests + 0.5).floor())
    }
}

/// Rows sorted by `timestamp`, newest first (ISO strings sort as times),
/// at most [`CALL_LOG_LIMIT`].
fn newest_first(mut rows: Vec<Value>) -> Vec<Value> {
    // Rows without a timestamp sort last.
    rows.sort_by(|a, b| b["timestamp"].as_str().cmp(&a["timestamp"].as_str()));
    rows.truncate(CALL_LOG_LIMIT);
    rows
}

fn status_of(row: &Value) -> Option<u64> {
    row["status"].as_u64()
}

/// `"<status>: <error>"`, or `"<status>"` without error text.
fn error_text(row: &Value) -> Value {
    let status = &row["status"];
    match coerce::non_blank(&row["error"]) {
        Some(error) => json!(format!("{status}: {error}")),
        None => json!(status.to_string()),
    }
}

/// The nearest-rank percentile of ascending `sorted`: the value at rank
/// ⌈p/100 · n⌉; `None` when empty.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

fn output_schema() -> Value {
    let num = |d: &str| schema::nullable("number", d);
    let text = |d: &str| schema::nullable("string", d);
    schema::object(
        json!({
            "provider": schema::typed("string", "The provider as given"),
            "resolvedAs": { "type": "array", "items": { "type": "string" }, "description": "The provider's names (alias set) that were matched, sorted" },
            "successRate": num("Successful share of all retained requests (all time), 0..1; null without requests"),
            "requestCount": num("Requests in all retained call logs (all time); null when provider metrics failed"),
            "avgLatencyMs": num("Request-weighted mean latency, ms"),
            "p50LatencyMs": num("Median latency of the newest successful calls, ms"),
            "p95LatencyMs": num("95th percentile (nearest rank), ms"),
            "p99LatencyMs": num("99th percentile (nearest rank), ms"),
            "errorRate": num("1 - successRate"),
            "lastError": text("Newest failed call as \"<status>: <error>\""),
            "lastErrorAt": text("Its timestamp"),
            "circuitBreakerState": { "type": ["string", "null"], "enum": ["CLOSED", "HALF_OPEN", "OPEN", null], "description": "Worst breaker state of the provider's names; null when health failed" },
            "quotaInfo": schema::object(
                json!({
                    "used": num("Quota used"),
                    "total": num("Quota limit; null when unknown"),
                    "resetAt": text("When the quota resets"),
                }),
                &["used", "total", "resetAt"],
            ),
            "sampleSize": num("Successful call-log entries behind the percentiles; null when call logs failed"),
            "degraded": schema::degraded(),
        }),
        OUTPUT_KEYS,
    )
}

#[cfg(test)]
mod tests;
