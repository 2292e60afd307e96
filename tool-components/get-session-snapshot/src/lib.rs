//! `omniroute_get_session_snapshot` (docs/tools/get_session_snapshot.md).
//!
//! This MCP session at a glance, entirely from the host's session state:
//! when it started, what its completions cost and used, which models and
//! providers served them, how many failed, and the budget guard. No gateway
//! call, so it never fails.

use omniroute_tool_sdk::ledger::{self, LedgerEntry};
use omniroute_tool_sdk::{Ctx, Session, Tool, ToolDescription, ToolError, clock, coerce, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct GetSessionSnapshot;

omniroute_tool_sdk::export_tool!(GetSessionSnapshot);

/// How many models and providers `topModels` and `topProviders` list.
pub const TOP: usize = 5;

pub const OUTPUT_KEYS: &[&str] = &[
    "sessionStart",
    "duration",
    "durationSeconds",
    "requestCount",
    "costTotal",
    "tokenCount",
    "topModels",
    "topProviders",
    "errors",
    "fallbacks",
    "budgetGuard",
];

impl Tool for GetSessionSnapshot {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_get_session_snapshot",
            "Session snapshot",
            &format!(
                "Returns a full snapshot of the current working session: cost, tokens, top models, errors, budget status.{}",
                schema::SESSION_ID_HINT
            ),
            &["read:usage"],
        )
        .input_schema(schema::input(json!({ "sessionId": schema::session_id() }), &[]))
        .output_schema(output_schema())
    }

    fn call(_input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        Ok(snapshot(cx.session, clock::now_ms()))
    }
}

/// The snapshot at `now_ms`.
pub fn snapshot(session: &dyn Session, now_ms: u64) -> Value {
    let entries = ledger::entries(session);
    let spent = ledger::spent(&entries);
    let start = session.session_start();
    let start_text = start.as_deref();
    let elapsed_s = start_text
        .and_then(clock::parse_iso8601)
        .map(|start_ms| now_ms.saturating_sub(start_ms) / 1000);
    // Sums of the values the gateway reported (failed requests report none).
    let sum = |count: fn(&LedgerEntry) -> Option<u64>| entries.iter().filter_map(count).sum::<u64>();
    let budget = ledger::budget_guard(session).map_or(Value::Null, |guard| {
        json!({
            "active": true,
            "remaining": coerce::number(guard.remaining_shown(spent)),
            "action": guard.action.as_str(),
            "limit": coerce::number(guard.max_cost),
            "spent": coerce::number(coerce::round_cost(spent)),
        })
    });
    json!({
        "sessionStart": start_text,
        "duration": elapsed_s.map(clock::iso_duration),
        "durationSeconds": elapsed_s,
        "requestCount": entries.len(),
        "costTotal": coerce::number(coerce::round_cost(spent)),
        "tokenCount": {
            "prompt": sum(|e| e.tokens_in),
            "completion": sum(|e| e.tokens_out),
        },
        "topModels": top(&entries, "model", |e| e.model.as_deref()),
        "topProviders": top(&entries, "provider", |e| e.provider.as_deref()),
        "errors": entries.iter().filter(|e| !e.success).count(),
        "fallbacks": sum(|e| e.fallbacks_triggered),
        "budgetGuard": budget,
    })
}

/// Up to [`TOP`] `{<key>, count}` over the entries' `name_of` values, by
/// count descending; ties keep the order of first use (entries without the
/// value, i.e. failed requests, are not counted).
fn top<'a>(entries: &'a [LedgerEntry], key: &str, name_of: fn(&'a LedgerEntry) -> Option<&'a str>) -> Vec<Value> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for name in entries.iter().filter_map(name_of) {
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => counts.push((name, 1)),
        }
    }
    counts.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    counts
        .into_iter()
        .take(TOP)
        .map(|(name, count)| json!({ key: name, "count": count }))
        .collect()
}

fn output_schema() -> Value {
    let ranked = |key: &str, d: &str| {
        json!({
            "type": "array",
            "description": d,
            "items": schema::object(
                json!({ key: { "type": "string" }, "count": { "type": "number" } }),
                &[key, "count"],
            ),
        })
    };
    schema::object(
        json!({
            "sessionStart": schema::nullable("string", "When this MCP session was initialised (ISO); null if the host did not say"),
            "duration": schema::nullable("string", "Time since sessionStart as an ISO 8601 duration, e.g. PT12M5S"),
            "durationSeconds": schema::nullable("number", "Time since sessionStart in whole seconds"),
            "requestCount": schema::typed("number", "Completions this session sent, failures included"),
            "costTotal": schema::typed("number", "Their total cost in USD"),
            "tokenCount": schema::object(
                json!({
                    "prompt": schema::typed("number", "Input tokens the gateway accounted"),
                    "completion": schema::typed("number", "Output tokens the gateway accounted"),
                }),
                &["prompt", "completion"],
            ),
            "topModels": ranked("model", "Up to 5 served models by count, ties by first use"),
            "topProviders": ranked("provider", "Up to 5 serving providers by count, ties by first use"),
            "errors": schema::typed("number", "Failed completions"),
            "fallbacks": schema::typed("number", "Sum of the known fallback counts (priority combos)"),
            "budgetGuard": {
                "type": ["object", "null"],
                "description": "The session budget guard, or null without one",
                "properties": {
                    "active": { "type": "boolean" },
                    "remaining": { "type": "number", "description": "maxCost minus spent, at least 0, USD" },
                    "action": { "type": "string", "description": "degrade, block or alert" },
                    "limit": { "type": "number", "description": "maxCost, USD" },
                    "spent": { "type": "number", "description": "Session spend, USD" },
                },
                "required": ["active", "remaining", "action", "limit", "spent"],
            },
        }),
        OUTPUT_KEYS,
    )
}

#[cfg(test)]
mod tests;
