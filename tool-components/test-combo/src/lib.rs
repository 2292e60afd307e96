//! `omniroute_test_combo` (docs/tools/test_combo.md).
//!
//! Sends one short real completion to every step of a combo, at most four
//! at a time, and reports per step whether it answered, how long the host
//! measured, what the gateway charged and how many tokens it counted. The
//! host sends an MCP progress notification as each step finishes
//! (`send-all-labelled`) and records every step in the session ledger.
//!
//! Budget guard: the host enforces it on every completion, but a test that
//! the guard would redirect or block is pointless, so when the session's
//! guard is exceeded with `block` or `degrade` this tool refuses before
//! sending anything. With `alert` it sends, and the host's warnings are
//! listed in `warnings`.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::budget::GuardAction;
use omniroute_tool_sdk::combos::{self, is_combo_ref, list_combos_step, resolve_combo};
use omniroute_tool_sdk::completion::{self, host_warnings, routing};
use omniroute_tool_sdk::gateway::json_and_response;
use omniroute_tool_sdk::ledger::{self, Annotation};
use omniroute_tool_sdk::{
    Annotations, Ctx, GatewayError, GatewayResult, Request, Tool, ToolDescription, ToolError,
    coerce, schema,
};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct TestCombo;

omniroute_tool_sdk::export_tool!(TestCombo);

pub use omniroute_tool_sdk::combos::COMBOS;
pub use omniroute_tool_sdk::completion::COMPLETIONS;

/// Steps in flight at once.
pub const MAX_IN_FLIGHT: u32 = 4;
/// The prompt is cut to this many characters.
pub const PROMPT_CHARS: usize = 200;
/// The prompt when `testPrompt` is empty.
pub const DEFAULT_PROMPT: &str = "Say hello";
/// `max_tokens` of every test completion.
pub const MAX_TOKENS: u32 = 50;

/// Sends real completions (spends money, reaches upstream models), not
/// idempotent, destroys nothing.
pub const ANNOTATIONS: Annotations = Annotations {
    read_only_hint: false,
    destructive_hint: false,
    idempotent_hint: false,
    open_world_hint: true,
};

impl Tool for TestCombo {
    fn describe() -> ToolDescription {
        ToolDescription::new(
            "omniroute_test_combo",
            "Test a combo",
            &format!(
                "Tests each provider in a combo with a real prompt, reporting latency, cost, and success per provider.{}",
                schema::SESSION_ID_HINT
            ),
            &["execute:completions", "read:combos"],
            ANNOTATIONS,
        )
        .input_schema(schema::input(
            json!({
                "comboId": { "type": "string", "description": "ID of the combo to test" },
                "testPrompt": { "type": "string", "maxLength": 500, "description": "Short test prompt (max 500 chars)" },
                "sessionId": schema::session_id(),
            }),
            &["comboId", "testPrompt"],
        ))
        .output_schema(output_schema())
        .audit_output("/summary")
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let combo_id = args::string(&input, "comboId")?;
        let prompt = args::string(&input, "testPrompt")?;
        test_combo(cx, combo_id, prompt)
    }
}

/// The prompt actually sent: `testPrompt` (or [`DEFAULT_PROMPT`] when
/// empty), cut to [`PROMPT_CHARS`] characters.
pub fn prompt_of(test_prompt: &str) -> String {
    let prompt = if test_prompt.is_empty() {
        DEFAULT_PROMPT
    } else {
        test_prompt
    };
    prompt.chars().take(PROMPT_CHARS).collect()
}

/// The whole call: resolve, guard, send, report.
pub fn test_combo(cx: &Ctx<'_>, combo_id: &str, test_prompt: &str) -> Result<Value, ToolError> {
    let combo = resolve_combo(cx.gateway, combo_id)?;
    refuse_when_guard_exceeded(cx)?;

    let messages = json!([{ "role": "user", "content": prompt_of(test_prompt) }]);
    let steps: Vec<(Value, bool)> = combos::combo_steps(&combo)
        .iter()
        .enumerate()
        .map(|(i, step)| (list_combos_step(step, i), is_combo_ref(step)))
        .collect();
    // A step that names no model has nothing to send; it fails without a request.
    let requests: Vec<(String, Request)> = steps
        .iter()
        .filter_map(|(step, _)| {
            let model = step["model"].as_str()?;
            let label = match step["provider"].as_str() {
                Some(provider) => format!("{provider} {model}"),
                None => model.to_string(),
            };
            Some((label, completion::request(model, &messages, Some(MAX_TOKENS))))
        })
        .collect();
    let answers = if requests.is_empty() {
        Vec::new()
    } else {
        cx.gateway.send_all_labelled(&requests, MAX_IN_FLIGHT)
    };
    let mut answers = answers.into_iter();
    let answered = answers.len();

    let mut results = Vec::with_capacity(steps.len());
    let mut warnings: Vec<String> = Vec::new();
    let mut sent = requests.iter();
    for (step, is_ref) in &steps {
        let Some(model) = step["model"].as_str() else {
            results.push((step, Outcome::not_sent("the step names no model to send")));
            continue;
        };
        let request = &sent.next().expect("one request per step with a model").1;
        let answer = answers.next().unwrap_or_else(|| {
            Err(GatewayError::Invalid(format!(
                "the host answered {answered} of {} requests",
                requests.len()
            )))
        });
        let outcome = Outcome::of(request, answer, &mut warnings);
        if *is_ref && let Some(request_id) = &outcome.request_id {
            annotate_combo_ref(cx, request_id, model);
        }
        results.push((step, outcome));
    }

    let mut out = Map::new();
    out.insert(
        "results".into(),
        Value::Array(results.iter().map(|(step, o)| o.to_value(step)).collect()),
    );
    out.insert("summary".into(), summary(&results));
    if !warnings.is_empty() {
        out.insert("warnings".into(), json!(warnings));
    }
    Ok(Value::Object(out))
}

/// `block` and `degrade` both refuse an exceeded session (docs/tools/test_combo.md):
/// redirecting a test defeats its purpose.
fn refuse_when_guard_exceeded(cx: &Ctx<'_>) -> Result<(), ToolError> {
    let Some(guard) = ledger::budget_guard(cx.session) else {
        return Ok(());
    };
    let spent = ledger::spent(&ledger::entries(cx.session));
    if guard.exceeded(spent) && matches!(guard.action, GuardAction::Block | GuardAction::Degrade) {
        return Err(ToolError::new(guard.block_text(spent)));
    }
    Ok(())
}

/// A combo-ref step was sent as the referenced combo's name: tell the host
/// its ledger entry went through that combo. A refused write is ignored.
fn annotate_combo_ref(cx: &Ctx<'_>, request_id: &str, combo: &str) {
    let annotation = Annotation {
        request_id: Some(request_id.to_string()),
        combo: Some(combo.to_string()),
        ..Annotation::default()
    };
    let _ = cx.session.annotate(&annotation);
}

/// What one step's completion came back as.
struct Outcome {
    success: bool,
    latency_ms: Option<u32>,
    cost: Option<f64>,
    tokens: Option<u64>,
    request_id: Option<String>,
    error: Option<String>,
}

impl Outcome {
    /// A step that failed before anything was sent: nothing was measured,
    /// charged or counted.
    fn not_sent(reason: &str) -> Outcome {
        Outcome {
            success: false,
            latency_ms: None,
            cost: Some(0.0),
            tokens: Some(0),
            request_id: None,
            error: Some(reason.to_string()),
        }
    }

    /// Reads one answer; the host's warnings on it are added to `warnings`
    /// (without repeats).
    fn of(request: &Request, answer: GatewayResult, warnings: &mut Vec<String>) -> Outcome {
        if let Ok(response) = &answer {
            for w in host_warnings(response) {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        match json_and_response(request, answer) {
            Ok((body, response)) => {
                let mut served = routing(&response);
                served.fill_tokens_from_usage(&body);
                Outcome {
                    success: true,
                    latency_ms: Some(response.elapsed_ms),
                    cost: served.cost,
                    tokens: served.total_tokens(),
                    request_id: served.request_id,
                    error: None,
                }
            }
            Err((failure, response)) => Outcome {
                success: false,
                latency_ms: response.as_ref().map(|r| r.elapsed_ms),
                cost: Some(0.0),
                tokens: Some(0),
                request_id: response.as_ref().and_then(|r| routing(r).request_id),
                error: Some(failure.message),
            },
        }
    }

    fn to_value(&self, step: &Value) -> Value {
        let number = |x: Option<f64>| x.map_or(Value::Null, coerce::number);
        let mut item = Map::new();
        item.insert("provider".into(), step["provider"].clone());
        item.insert("model".into(), step["model"].clone());
        item.insert("success".into(), json!(self.success));
        item.insert("latencyMs".into(), json!(self.latency_ms));
        item.insert("cost".into(), number(self.cost));
        item.insert("tokenCount".into(), json!(self.tokens));
        item.insert("requestId".into(), json!(self.request_id));
        if let Some(error) = &self.error {
            item.insert("error".into(), json!(error));
        }
        Value::Object(item)
    }
}

/// `{totalProviders, successful, fastestProvider, cheapestProvider, totalCost}`.
///
/// The fastest is the successful step with the lowest latency; the cheapest
/// the successful step with the lowest known cost, ties in latency order;
/// `"none"` when nothing succeeded.
fn summary(results: &[(&Value, Outcome)]) -> Value {
    let mut ok: Vec<&(&Value, Outcome)> = results.iter().filter(|(_, o)| o.success).collect();
    ok.sort_by_key(|(_, o)| o.latency_ms.unwrap_or(u32::MAX));
    let provider = |r: Option<&&(&Value, Outcome)>| {
        r.map_or(json!("none"), |(step, _)| step["provider"].clone())
    };
    let fastest = provider(ok.first());
    let cheapest = provider(
        ok.iter()
            .filter(|(_, o)| o.cost.is_some())
            .reduce(|best, r| if r.1.cost < best.1.cost { r } else { best }),
    );
    let total: f64 = results.iter().filter_map(|(_, o)| o.cost).sum();
    json!({
        "totalProviders": results.len(),
        "successful": ok.len(),
        "fastestProvider": fastest,
        "cheapestProvider": cheapest,
        "totalCost": coerce::number(coerce::round_cost(total)),
    })
}

fn output_schema() -> Value {
    let item = json!({
        "type": "object",
        "properties": {
            "provider": { "type": ["string", "null"], "description": "Step provider as the combo names it; \"combo\" for a combo reference; null when the step names none" },
            "model": { "type": ["string", "null"], "description": "Model sent (a combo reference sends the referenced combo's name); null when the step names none (then nothing is sent and the step fails)" },
            "success": { "type": "boolean" },
            "latencyMs": schema::nullable("number", "Wall time the host measured for the request; null when nothing came back"),
            "cost": schema::nullable("number", "x-omniroute-response-cost in USD; 0 on failure (the gateway charges nothing); null when the header was absent"),
            "tokenCount": schema::nullable("number", "Input + output tokens from the headers (else the body's usage); null unless both counts are known; 0 on failure"),
            "requestId": schema::nullable("string", "x-request-id; use it with explain_route"),
            "error": schema::typed("string", "Failures only: why the step failed"),
        },
        "required": ["provider", "model", "success", "latencyMs", "cost", "tokenCount", "requestId"],
    });
    schema::object(
        json!({
            "results": { "type": "array", "description": "One entry per step, in combo order", "items": item },
            "summary": schema::object(
                json!({
                    "totalProviders": schema::typed("number", "Steps tested"),
                    "successful": schema::typed("number", "Steps that answered"),
                    "fastestProvider": schema::nullable("string", "Provider of the fastest successful step, or \"none\" when no step succeeded; null when that step names no provider"),
                    "cheapestProvider": schema::nullable("string", "Provider of the cheapest successful step (ties by latency), or \"none\" when no step succeeded; null when that step names no provider"),
                    "totalCost": schema::typed("number", "What the test cost, USD"),
                }),
                &["totalProviders", "successful", "fastestProvider", "cheapestProvider", "totalCost"],
            ),
            "warnings": { "type": "array", "items": { "type": "string" }, "description": "The session budget guard's warnings; present only when there is one" },
        }),
        &["results", "summary"],
    )
}

#[cfg(test)]
mod tests;
