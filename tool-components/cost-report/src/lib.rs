//! `omniroute_cost_report` (docs/tools/cost_report.md).
//!
//! Two sources, chosen by `period`:
//!
//! * `session` (the default): this MCP session's completions, from the
//!   host-owned `ledger` session key. No gateway call; it never fails.
//! * `day`, `week`, `month`: `GET /api/usage/analytics?range=1d|7d|30d`,
//!   i.e. all gateway traffic (every client and key) in a rolling window,
//!   with costs recomputed by the gateway at query time.
//!
//! Both report the session's budget guard (host-owned `budget-guard` key)
//! against the session's spend.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::coerce::{self, array_or_null, number_or_null, round_cost};
use omniroute_tool_sdk::ledger::{self, BudgetGuard, LedgerEntry};
use omniroute_tool_sdk::{Ctx, Gateway, Session, Tool, ToolDescription, ToolError, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct CostReport;

omniroute_tool_sdk::export_tool!(CostReport);

pub const ANALYTICS: &str = "/api/usage/analytics";
/// Host-owned session keys (read-only to tools).

/// The output keys, in order; all always present.
pub const OUTPUT_KEYS: &[&str] = &[
    "period",
    "source",
    "range",
    "totalCost",
    "requestCount",
    "tokenCount",
    "byProvider",
    "byModel",
    "budget",
];

/// The periods, in the published order.
pub const PERIODS: &[&str] = &["session", "day", "week", "month"];

impl Tool for CostReport {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_cost_report",
            "Cost report",
            &format!("Generates a cost report for the specified period.{}", schema::SESSION_ID_HINT),
            &["read:usage"],
        )
        .input_schema(schema::input(
            json!({
                "period": {
                    "default": "session",
                    "description": "Time period for the cost report",
                    "type": "string",
                    "enum": PERIODS,
                },
                "sessionId": schema::session_id(),
            }),
            &[],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let period = args::optional_one_of(&input, "period", PERIODS)?.unwrap_or("session");
        cost_report(period, cx.gateway, cx.session)
    }
}

/// The analytics `range` of a gateway period.
pub fn range_of(period: &str) -> Option<&'static str> {
    match period {
        "day" => Some("1d"),
        "week" => Some("7d"),
        "month" => Some("30d"),
        _ => None,
    }
}

/// The report for `period` (one of [`PERIODS`]).
pub fn cost_report(
    period: &str,
    gw: &dyn Gateway,
    session: &dyn Session,
) -> Result<Value, ToolError> {
    let ledger = &ledger::entries(session)[..];
    let totals = Totals::of(ledger);
    // spent: the sum of the known ledger costs, as the budget guard counts it.
    let spent = ledger::spent(ledger);
    let budget = budget(ledger::budget_guard(session).as_ref(), spent);

    let Some(range) = range_of(period) else {
        return Ok(json!({
            "period": period,
            "source": "session_ledger",
            "range": null,
            "totalCost": coerce::number(round_cost(spent)),
            "requestCount": ledger.len(),
            "tokenCount": {
                "prompt": totals.prompt,
                "completion": totals.completion,
            },
            "byProvider": by_provider(ledger),
            "byModel": by_model(ledger),
            "budget": budget,
        }));
    };

    let analytics = gw.get_json(ANALYTICS, &[("range", range)])?;
    let summary = &analytics["summary"];
    Ok(json!({
        "period": period,
        "source": "gateway_analytics",
        "range": range,
        "totalCost": number_or_null(&summary["totalCost"]),
        "requestCount": number_or_null(&summary["totalRequests"]),
        "tokenCount": {
            "prompt": number_or_null(&summary["promptTokens"]),
            "completion": number_or_null(&summary["completionTokens"]),
        },
        "byProvider": array_or_null(&analytics["byProvider"]),
        "byModel": array_or_null(&analytics["byModel"]),
        "budget": budget,
    }))
}

/// `{limit: maxCost, remaining: roundCost(max(0, maxCost − spent))}` for the
/// session's guard, `{limit: null, remaining: null}` without one.
fn budget(guard: Option<&BudgetGuard>, spent: f64) -> Value {
    match guard {
        Some(guard) => json!({
            "limit": coerce::number(guard.max_cost),
            "remaining": coerce::number(guard.remaining_shown(spent)),
        }),
        None => json!({ "limit": null, "remaining": null }),
    }
}

/// Token and cost sums over ledger entries (the values the gateway
/// reported; a failed request reports none).
#[derive(Default)]
struct Totals {
    requests: usize,
    prompt: u64,
    completion: u64,
    cost: f64,
}

impl Totals {
    fn of<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> Totals {
        let entries: Vec<&LedgerEntry> = entries.into_iter().collect();
        Totals {
            requests: entries.len(),
            prompt: entries.iter().filter_map(|e| e.tokens_in).sum(),
            completion: entries.iter().filter_map(|e| e.tokens_out).sum(),
            cost: ledger::spent(entries.iter().copied()),
        }
    }

    /// `requests, promptTokens, completionTokens, totalTokens, cost` after
    /// the grouping keys already in `head`.
    fn row(&self, mut head: serde_json::Map<String, Value>) -> Value {
        head.insert("requests".into(), json!(self.requests));
        head.insert("promptTokens".into(), json!(self.prompt));
        head.insert("completionTokens".into(), json!(self.completion));
        head.insert("totalTokens".into(), json!(self.prompt + self.completion));
        head.insert("cost".into(), coerce::number(round_cost(self.cost)));
        Value::Object(head)
    }
}

/// Groups entries by the values `key_of` gives for `keys` (first-seen
/// order), then sorts the groups by request count, descending; ties keep
/// first-seen order.
fn grouped<'a>(
    ledger: &'a [LedgerEntry],
    keys: &[&str],
    key_of: impl Fn(&'a LedgerEntry) -> Vec<Option<&'a str>>,
) -> Vec<Value> {
    let mut groups: Vec<(Vec<Option<&str>>, Vec<&LedgerEntry>)> = Vec::new();
    for entry in ledger {
        let key = key_of(entry);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }
    groups.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
    groups
        .into_iter()
        .map(|(key, members)| {
            let head = keys
                .iter()
                .zip(key)
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            Totals::of(members).row(head)
        })
        .collect()
}

/// `[{provider, requests, promptTokens, completionTokens, totalTokens, cost}]`;
/// failed requests, which have no provider, group under `null`.
fn by_provider(ledger: &[LedgerEntry]) -> Vec<Value> {
    grouped(ledger, &["provider"], |e| vec![e.provider.as_deref()])
}

/// `[{model, provider, requests, …}]` by served model and provider.
fn by_model(ledger: &[LedgerEntry]) -> Vec<Value> {
    grouped(ledger, &["model", "provider"], |e| vec![e.model.as_deref(), e.provider.as_deref()])
}

fn output_schema() -> Value {
    let num = |d: &str| schema::nullable("number", d);
    let rows =
        |d: &str| json!({ "type": ["array", "null"], "description": d, "items": { "type": "object" } });
    schema::object(
        json!({
            "period": { "type": "string", "description": "The period reported", "enum": PERIODS },
            "source": {
                "type": "string",
                "description": "session_ledger: this MCP session's completions; gateway_analytics: all gateway traffic in the window",
                "enum": ["session_ledger", "gateway_analytics"],
            },
            "range": schema::nullable("string", "Analytics window (1d, 7d, 30d); null for the session"),
            "totalCost": num("Total cost in USD"),
            "requestCount": num("Requests, failures included"),
            "tokenCount": schema::object(
                json!({
                    "prompt": num("Input tokens"),
                    "completion": num("Output tokens"),
                }),
                &["prompt", "completion"],
            ),
            "byProvider": rows("Per provider, by requests descending (session: {provider, requests, promptTokens, completionTokens, totalTokens, cost}, provider null for failed requests; analytics: the gateway's rows, null when its answer has none)"),
            "byModel": rows("Per served model (session: {model, provider, requests, promptTokens, completionTokens, totalTokens, cost}; analytics: the gateway's rows, at most 50, successRatePct as a string; null when its answer has none)"),
            "budget": schema::object(
                json!({
                    "limit": num("The session budget guard's maxCost, USD; null without a guard"),
                    "remaining": num("maxCost minus the session's spend, at least 0; null without a guard"),
                }),
                &["limit", "remaining"],
            ),
        }),
        OUTPUT_KEYS,
    )
}

#[cfg(test)]
mod tests;
