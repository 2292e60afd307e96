//! `omniroute_explain_route` (docs/tools/explain_route.md).
//!
//! OmniRoute 3.7.9 neither exposes its routing decisions nor stores the
//! `x-request-id` anywhere (docs/gateway.md#request-ids), so a request is explained from the
//! first of these sources that knows it:
//!
//! 1. the gateway's decision route, `GET /api/routing/decisions/<id>`,
//!    while it has not been found missing for the gateway's version (a
//!    404 or non-JSON answer is remembered in a private session key);
//! 2. the host's routing index (`request:<id>`): completions this server
//!    sent, enriched from the gateway's call logs by a time, combo and
//!    model match (heuristic: concurrent traffic on a shared gateway can
//!    add rows that do not belong to the request);
//! 3. the id as a gateway call-log id, `GET /api/usage/call-logs/<id>`.
//!
//! The scoring `factors` are this server's after-the-fact assessment from
//! data read now, not the gateway's internal score (`scoreBasis` says so).

pub mod factors;

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::coerce::{self, number_or_null, string_or_null};
use omniroute_tool_sdk::combos::{COMBOS, combo_steps, combos_of};
use omniroute_tool_sdk::completion::COMPLETIONS;
use omniroute_tool_sdk::ledger::{self, LedgerEntry};
use omniroute_tool_sdk::providers::{self, HEALTH, PRICING, Providers};
use omniroute_tool_sdk::quota::QUOTA;
use omniroute_tool_sdk::{
    Ctx, Degraded, GatewayError, GatewayFailure, Method, Request, Tool, ToolDescription, ToolError,
    clock, schema,
};
use serde_json::{Map, Value, json};

use factors::{FactorInputs, Factors};

/// The tool, exported as the component's `describe` and `call`.
pub struct ExplainRoute;

omniroute_tool_sdk::export_tool!(ExplainRoute);

pub use omniroute_tool_sdk::providers::{PRICING_MODELS, PROVIDER_NODES};
pub const DECISIONS: &str = "/api/routing/decisions";
pub const CALL_LOGS: &str = "/api/usage/call-logs";
pub use omniroute_tool_sdk::combos::COMBO_METRICS;
/// Call-log rows read for the enrichment.
pub const CALL_LOG_LIMIT: &str = "200";
/// Slack around a ledger entry's send and receive times, ms.
pub const WINDOW_SLACK_MS: u64 = 2_000;
/// This tool's private session key: `{"version": <gateway version or null>}`
/// once the decision route was found missing for that version.
pub const DECISIONS_MISSING_KEY: &str = "decisions-route-missing";

pub const SCORE_BASIS: &str =
    "post-hoc assessment by this server; the gateway does not expose its routing score";
pub const NOT_FOUND_NOTE: &str = "Request id not found. OmniRoute 3.7.9 neither exposes routing decisions nor records x-request-id in its logs, so only requests sent through this server since it started, or gateway call-log ids, can be explained.";

pub const SOURCES: &[&str] = &[
    "gateway_decisions",
    "host_ledger",
    "host_ledger+call_logs",
    "call_log",
];

impl Tool for ExplainRoute {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_explain_route",
            "Explain a route",
            &format!(
                "Explains why a request was routed to a specific provider, showing scoring factors and fallbacks.{}",
                schema::SESSION_ID_HINT
            ),
            &["read:health", "read:usage"],
        )
        .input_schema(schema::input(
            json!({
                "requestId": { "type": "string", "description": "Request ID from the X-Request-Id header" },
                "sessionId": schema::session_id(),
            }),
            &["requestId"],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let id = args::string(&input, "requestId")?;
        Ok(explain(cx, id))
    }
}

/// Ids that can be a path segment as they are (UUIDs and the like); other
/// ids are only looked up in the host's index.
pub fn path_safe(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
}

/// The sources shared by every explanation: health and quota for the
/// factors, the provider maps for alias sets.
struct Common {
    health: Option<Value>,
    quota: Option<Value>,
    providers: Providers,
}

impl Common {
    /// The factors of a completion served by `provider`/`model`.
    fn assess(
        &self,
        provider: Option<&str>,
        model: Option<&str>,
        role: Option<&str>,
        data: &ComboData,
    ) -> Factors {
        Factors::assess(&FactorInputs {
            provider,
            model,
            role,
            steps: data.steps.as_deref(),
            pricing: data.pricing.as_ref(),
            metrics: data.metrics.as_ref(),
            health: self.health.as_ref(),
            quota: self.quota.as_ref(),
            providers: &self.providers,
        })
    }
}

/// The whole call; never fails.
pub fn explain(cx: &Ctx<'_>, id: &str) -> Value {
    let mut degraded = Degraded::new();
    let [nodes, models] = providers::requests();
    let first = [Request::get(HEALTH), Request::get(QUOTA), nodes, models];
    let [health, quota, nodes, models] = <[_; 4]>::try_from(cx.gateway.send_all_json(&first))
        .expect("send_all_json answers every request");
    let common = Common {
        health: degraded.take(health),
        quota: degraded.take(quota),
        providers: providers::from_results(nodes, models, &mut degraded),
    };

    if path_safe(id)
        && let Some(decision) = gateway_decision(cx, id, common.health.as_ref(), &mut degraded)
    {
        return output(id, Some("gateway_decisions"), decision, &degraded);
    }
    if let Some(entry) = ledger::request_entry(cx.session, id) {
        let (source, decision) = from_ledger(cx, &entry, &common, &mut degraded);
        return output(id, Some(source), decision, &degraded);
    }
    if path_safe(id) {
        let req = Request::get(format!("{CALL_LOGS}/{id}"));
        match cx.gateway.send(&req) {
            Ok(resp) if resp.status == 404 => {}
            answer => {
                if let Some(row) =
                    degraded.take(omniroute_tool_sdk::gateway::json_result(&req, answer))
                    && row.is_object()
                {
                    let decision = from_call_log(cx, &req.source(), &row, &common, &mut degraded);
                    return output(id, Some("call_log"), decision, &degraded);
                }
            }
        }
    }
    output(id, None, not_found_decision(), &degraded)
}

/// `{requestId, source, decision, scoreBasis?, degraded, note?}`.
fn output(id: &str, source: Option<&str>, decision: Value, degraded: &Degraded) -> Value {
    let mut out = Map::new();
    out.insert("requestId".into(), json!(id));
    out.insert("source".into(), json!(source));
    out.insert("decision".into(), decision);
    if source.is_some_and(|s| s != "gateway_decisions") {
        out.insert("scoreBasis".into(), json!(SCORE_BASIS));
    }
    out.insert("degraded".into(), degraded.to_value());
    if source.is_none() {
        out.insert("note".into(), json!(NOT_FOUND_NOTE));
    }
    Value::Object(out)
}

/// Nothing found: every value unknown (the `note` says why), no factors
/// assessed, no attempts known.
fn not_found_decision() -> Value {
    json!({
        "comboUsed": null, "providerSelected": null, "modelUsed": null, "score": null,
        "factors": [], "fallbacksTriggered": null, "costActual": null, "latencyActual": null,
    })
}

/// Source 1. `None` when the route is known missing for this gateway
/// version, answers 404 or non-JSON (then remembered), or fails (then
/// named in `degraded`).
fn gateway_decision(
    cx: &Ctx<'_>,
    id: &str,
    health: Option<&Value>,
    degraded: &mut Degraded,
) -> Option<Value> {
    let version = health.map_or(Value::Null, |h| string_or_null(&h["version"]));
    if cx
        .session
        .get_json(DECISIONS_MISSING_KEY)
        .is_some_and(|memo| memo["version"] == version)
    {
        return None;
    }
    let req = Request::get(format!("{DECISIONS}/{id}"));
    let missing = |cx: &Ctx<'_>| {
        // A refused write only costs one more request next time.
        let _ = cx
            .session
            .set_json(DECISIONS_MISSING_KEY, &json!({ "version": version }));
        None
    };
    match cx.gateway.send(&req) {
        Ok(resp) if resp.status == 404 => missing(cx),
        Ok(resp) if resp.is_success() => match serde_json::from_str::<Value>(&resp.body) {
            Ok(d) if d.is_object() => Some(map_gateway_decision(&d, &req.source(), degraded)),
            _ => missing(cx),
        },
        Ok(resp) => {
            degraded.push(GatewayFailure::from_status(&req, resp.status, &resp.body));
            None
        }
        // A huge answer is the HTML page of a missing route.
        Err(GatewayError::TooLarge) => missing(cx),
        Err(e) => {
            degraded.push(GatewayFailure::from_error(&req, &e));
            None
        }
    }
}

/// The original's mapping without invented defaults: what the gateway's
/// decision (answered by `source`) does not say is `null`, and a missing
/// provider, model or list is named in `degraded`.
pub fn map_gateway_decision(d: &Value, source: &str, degraded: &mut Degraded) -> Value {
    let mut text = |k: &str| {
        let value = d[k].as_str().filter(|s| !s.is_empty());
        if value.is_none() {
            degraded.missing(source, &format!("`{k}`"), &format!("decision.{k}"));
        }
        json!(value)
    };
    let (provider, model) = (text("providerSelected"), text("modelUsed"));
    let mut list = |k: &str| {
        if !d[k].is_array() {
            degraded.missing(source, &format!("`{k}` list"), &format!("decision.{k}"));
        }
        d[k].as_array().map_or(Value::Null, |items| Value::Array(items.clone()))
    };
    let (factors, fallbacks) = (list("factors"), list("fallbacksTriggered"));
    json!({
        "comboUsed": string_or_null(&d["comboUsed"]),
        "providerSelected": provider,
        "modelUsed": model,
        "score": number_or_null(&d["score"]),
        "factors": factors,
        "fallbacksTriggered": fallbacks,
        "costActual": number_or_null(&d["costActual"]),
        "latencyActual": number_or_null(&d["latencyActual"]),
    })
}

/// Per-combo data for the cost and latency factors: the combo's steps,
/// prices, and its in-memory metrics.
struct ComboData {
    steps: Option<Vec<Value>>,
    pricing: Option<Value>,
    metrics: Option<Value>,
}

/// The requests for [`ComboData`] (none without a combo; prices alone when
/// `need_pricing`).
fn combo_requests(combo: Option<&str>, need_pricing: bool) -> Vec<Request> {
    match combo {
        Some(name) => vec![
            Request::get(COMBOS),
            Request::get(PRICING),
            Request::get(COMBO_METRICS).query("combo", name),
        ],
        None if need_pricing => vec![Request::get(PRICING)],
        None => Vec::new(),
    }
}

fn combo_data(
    combo: Option<&str>,
    answers: &mut impl Iterator<Item = Result<Value, GatewayFailure>>,
    degraded: &mut Degraded,
    need_pricing: bool,
) -> ComboData {
    let mut next = || degraded.take(answers.next().expect("one answer per request"));
    match combo {
        Some(name) => {
            let combos = next();
            let pricing = next();
            let metrics = next();
            // `None` also when the combo is no longer listed: its steps are unknown.
            let steps = combos.and_then(|c| {
                combos_of(&c)
                    .iter()
                    .find(|c| c["name"].as_str() == Some(name))
                    .map(|c| combo_steps(c).to_vec())
            });
            ComboData {
                steps,
                pricing,
                metrics: metrics.map(|m| m["metrics"].clone()),
            }
        }
        None => ComboData {
            steps: None,
            pricing: if need_pricing { next() } else { None },
            metrics: None,
        },
    }
}

/// Source 2: a ledger entry, enriched from the call logs.
fn from_ledger(
    cx: &Ctx<'_>,
    entry: &LedgerEntry,
    common: &Common,
    degraded: &mut Degraded,
) -> (&'static str, Value) {
    let combo = entry.combo.as_deref().filter(|c| !c.is_empty());
    let provider = entry.provider.as_deref();
    let model = entry.model.as_deref();
    let log_model = model.or(entry.requested_model.as_deref());
    let logs_request = match (combo, log_model) {
        (Some(name), _) => Some(
            Request::get(CALL_LOGS)
                .query("combo", "1")
                .query("search", name)
                .query("limit", CALL_LOG_LIMIT),
        ),
        (None, Some(m)) => Some(
            Request::get(CALL_LOGS)
                .query("model", m)
                .query("limit", CALL_LOG_LIMIT),
        ),
        (None, None) => None,
    };
    let mut requests: Vec<Request> = logs_request.iter().cloned().collect();
    requests.extend(combo_requests(combo, false));
    let mut answers = cx.gateway.send_all_json(&requests).into_iter();
    let rows = logs_request
        .as_ref()
        .and_then(|_| degraded.take(answers.next().expect("logs")));
    if logs_request.is_none() {
        degraded.note(
            &Request::get(CALL_LOGS).source(),
            "not read: the ledger entry names no combo or model to look the call logs up by; decision.fallbacksTriggered is null",
        );
    }
    let data = combo_data(combo, &mut answers, degraded, false);

    let matched = rows
        .as_ref()
        .map(|rows| match_rows(entry, coerce::arr(rows)));
    let served_row = matched.as_ref().and_then(|m| m.served.clone());
    // `null` when the call logs could not be read (named in `degraded`).
    let fallbacks: Option<Vec<Value>> = matched
        .as_ref()
        .map(|m| m.fallbacks.iter().map(fallback_item).collect());
    let enriched = matched
        .as_ref()
        .is_some_and(|m| m.served.is_some() || !m.fallbacks.is_empty());

    let completion = Request::new(Method::Post, COMPLETIONS).source();
    if provider.is_none() {
        degraded.missing(&completion, "`x-omniroute-provider` (host ledger)", "decision.providerSelected");
    }
    if model.is_none() {
        degraded.missing(&completion, "`x-omniroute-model` (host ledger)", "decision.modelUsed");
    }
    let factors = common.assess(provider, model, entry.role.as_deref(), &data);
    let latency = match entry.latency_ms {
        Some(ms) => coerce::number(ms),
        None => served_row
            .as_ref()
            .map_or(Value::Null, |r| number_or_null(&r["duration"])),
    };
    let decision = json!({
        "comboUsed": combo,
        "providerSelected": provider,
        "modelUsed": model,
        "score": factors.score_value(),
        "factors": factors.to_value(),
        "fallbacksTriggered": fallbacks,
        "costActual": entry.cost.map_or(Value::Null, coerce::number),
        "latencyActual": latency,
    });
    let source = if enriched {
        "host_ledger+call_logs"
    } else {
        "host_ledger"
    };
    (source, decision)
}

/// The call-log rows that belong to a ledger entry.
struct Matched {
    served: Option<Value>,
    /// Oldest first.
    fallbacks: Vec<Value>,
}

/// Keeps the rows in `[sentAt − 2 s, receivedAt + 2 s]` (and, with a
/// combo, of that exact combo: `search` is a substring match). The served
/// row is the newest 2xx row with the ledger's model and provider; the
/// fallback rows are the ≥ 400 rows of the same combo (without a combo, the
/// same requested model) at or before it.
fn match_rows(entry: &LedgerEntry, rows: &[Value]) -> Matched {
    let at = |v: &Value| v.as_str().and_then(clock::parse_iso8601);
    let (Some(sent), Some(received)) = (
        clock::parse_iso8601(&entry.sent_at),
        clock::parse_iso8601(&entry.received_at),
    ) else {
        return Matched {
            served: None,
            fallbacks: Vec::new(),
        };
    };
    let (from, to) = (
        sent.saturating_sub(WINDOW_SLACK_MS),
        received + WINDOW_SLACK_MS,
    );
    let combo = entry.combo.as_deref().filter(|c| !c.is_empty());
    let in_window: Vec<(&Value, u64)> = rows
        .iter()
        .filter_map(|r| at(&r["timestamp"]).map(|t| (r, t)))
        .filter(|(_, t)| (from..=to).contains(t))
        .filter(|(r, _)| combo.is_none_or(|c| r["comboName"].as_str() == Some(c)))
        .collect();
    let status = |r: &Value| r["status"].as_u64();
    let served = in_window
        .iter()
        .filter(|(r, _)| {
            status(r).is_some_and(|s| (200..300).contains(&s))
                && r["model"].as_str() == entry.model.as_deref()
                && entry.provider.is_some()
                && r["provider"].as_str() == entry.provider.as_deref()
        })
        .max_by_key(|(_, t)| *t)
        .copied();
    let until = served.map_or(to, |(_, t)| t);
    let mut fallbacks: Vec<(&Value, u64)> = in_window
        .iter()
        .filter(|(r, t)| {
            status(r).is_some_and(|s| s >= 400)
                && *t <= until
                && match combo {
                    Some(_) => true,
                    None => r["requestedModel"].as_str() == entry.requested_model.as_deref(),
                }
        })
        .copied()
        .collect();
    fallbacks.sort_by_key(|(_, t)| *t);
    Matched {
        served: served.map(|(r, _)| r.clone()),
        fallbacks: fallbacks.into_iter().map(|(r, _)| r.clone()).collect(),
    }
}

/// `{provider, model, reason, status, at}` of a failed attempt.
fn fallback_item(row: &Value) -> Value {
    let reason = match coerce::non_blank(&row["error"]) {
        Some(error) => error.to_string(),
        None => format!("HTTP {}", row["status"]),
    };
    json!({
        "provider": string_or_null(&row["provider"]),
        "model": string_or_null(&row["model"]),
        "reason": reason,
        "status": number_or_null(&row["status"]),
        "at": string_or_null(&row["timestamp"]),
    })
}

/// Source 3: one gateway call-log row. The decision's eight keys are
/// followed by what else the row says: `status`, `step`, `tokens`.
fn from_call_log(
    cx: &Ctx<'_>,
    source: &str,
    row: &Value,
    common: &Common,
    degraded: &mut Degraded,
) -> Value {
    let combo = row["comboName"].as_str().filter(|c| !c.is_empty());
    let provider = row["provider"].as_str();
    let model = row["model"].as_str();
    if provider.is_none() {
        degraded.missing(source, "`provider`", "decision.providerSelected");
    }
    if model.is_none() {
        degraded.missing(source, "`model`", "decision.modelUsed");
    }
    let requests = combo_requests(combo, true);
    let mut answers = cx.gateway.send_all_json(&requests).into_iter();
    let data = combo_data(combo, &mut answers, degraded, true);
    let factors = common.assess(provider, model, None, &data);
    let tokens_in = row["tokens"]["in"].as_f64();
    let tokens_out = row["tokens"]["out"].as_f64();
    let cost = match (
        provider,
        model,
        data.pricing.as_ref(),
        tokens_in,
        tokens_out,
    ) {
        (Some(p), Some(m), Some(pricing), Some(i), Some(o)) => {
            common.providers.price(pricing, &[p], m).map(|price| {
                coerce::round_cost(
                    (i * price.input_per_million + o * price.output_per_million) / 1e6,
                )
            })
        }
        _ => None,
    };
    json!({
        "comboUsed": combo,
        "providerSelected": provider,
        "modelUsed": model,
        "score": factors.score_value(),
        "factors": factors.to_value(),
        // One call-log row is one attempt: it records no earlier ones.
        "fallbacksTriggered": [],
        "costActual": cost.map(coerce::number),
        "latencyActual": number_or_null(&row["duration"]),
        "status": number_or_null(&row["status"]),
        "step": string_or_null(&row["comboStepId"]),
        "tokens": { "in": number_or_null(&row["tokens"]["in"]), "out": number_or_null(&row["tokens"]["out"]) },
    })
}

/// The schemas of the `factors` and `fallbacksTriggered` items this tool
/// builds (not enforced in the output schema: for `gateway_decisions` they
/// are the gateway's own).
pub fn item_schemas() -> (Value, Value) {
    let num = |d: &str| schema::nullable("number", d);
    let factor = schema::object(
        json!({
            "name": schema::typed("string", "health, quota, cost, latency or task_fit"),
            "value": num("0..1 from data read now; null when the data is missing"),
            "weight": schema::typed("number", "The original's weighting"),
            "contribution": num("value x weight, 4 decimals"),
            "source": schema::typed("string", "The data used"),
        }),
        &["name", "value", "weight", "contribution", "source"],
    );
    let fallback = schema::object(
        json!({
            "provider": schema::nullable("string", "Provider of the failed attempt"),
            "model": schema::nullable("string", "Model of the failed attempt"),
            "reason": schema::typed("string", "The call log's error, else HTTP <status>"),
            "status": num("HTTP status"),
            "at": schema::nullable("string", "Call-log timestamp"),
        }),
        &["provider", "model", "reason", "status", "at"],
    );
    (factor, fallback)
}

fn output_schema() -> Value {
    let num = |d: &str| schema::nullable("number", d);
    let decision = schema::object(
        json!({
            "comboUsed": schema::nullable("string", "Combo the request went through, or null"),
            "providerSelected": schema::nullable("string", "Serving provider (x-omniroute-provider); null when not known (named in degraded, or nothing was found)"),
            "modelUsed": schema::nullable("string", "Served model (x-omniroute-model); null when not known (named in degraded, or nothing was found)"),
            "score": num("Weighted mean of the non-null factors, 4 decimals; null when all are null"),
            "factors": {
                "type": ["array", "null"],
                "description": "Five factors {name, value, weight, contribution, source}: health, quota, cost, latency, task_fit; as the gateway sent them for gateway_decisions (null when it sent none); empty when nothing was found",
            },
            "fallbacksTriggered": {
                "type": ["array", "null"],
                "description": "Failed attempts {provider, model, reason, status, at} before the served one, from the call logs (as the gateway sent them for gateway_decisions); null when they could not be read (named in degraded) or nothing was found",
            },
            "costActual": num("USD: the ledger's cost; for a call-log row, computed from its tokens and current prices"),
            "latencyActual": num("ms: the ledger's latency, else the call log's duration"),
            "status": num("call_log only: HTTP status of the row"),
            "step": schema::nullable("string", "call_log only: the combo step id"),
            "tokens": { "type": "object", "description": "call_log only: {in, out}" },
        }),
        &[
            "comboUsed",
            "providerSelected",
            "modelUsed",
            "score",
            "factors",
            "fallbacksTriggered",
            "costActual",
            "latencyActual",
        ],
    );
    schema::object(
        json!({
            "requestId": schema::typed("string", "The id asked about"),
            "source": { "type": ["string", "null"], "enum": [SOURCES[0], SOURCES[1], SOURCES[2], SOURCES[3], null], "description": "Where the explanation came from; null when nothing was found" },
            "decision": decision,
            "scoreBasis": schema::typed("string", "Present unless source is gateway_decisions: the factors are this server's assessment"),
            "degraded": schema::degraded(),
            "note": schema::typed("string", "Present only when nothing was found"),
        }),
        &["requestId", "source", "decision", "degraded"],
    )
}

#[cfg(test)]
mod tests;
