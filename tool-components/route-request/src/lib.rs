//! `omniroute_route_request` (docs/tools/route_request.md).
//!
//! Sends one non-streaming chat completion and reports what the gateway
//! says about its routing. The gateway puts routing facts only in response
//! headers (`x-omniroute-*`, `x-request-id`), never in the body, and says
//! nothing about combos or fallbacks; the tool adds the combo name (its own
//! argument, or the model when that names a combo) and, for priority
//! combos, which step served.
//!
//! The host owns the budget guard (docs/architecture.md#budget-guard) and enforces it for every
//! completion it brokers: a blocked request comes back as
//! [`GatewayError::Refused`] (nothing was sent) and is this tool's error
//! verbatim; a degraded one carries `x-omniroute-mcp-degraded-from`; budget
//! warnings arrive as `x-omniroute-mcp-warning` headers, listed first in
//! `warnings`.
//!
//! The host records every completion in the session ledger itself (cost,
//! tokens, provider, …); the tool only annotates its entry with what only
//! it knows (`ledger-annotation`).

pub mod combos_cache;

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::combos::{combo_steps, combo_strategy, served_step};
use omniroute_tool_sdk::completion::{self, Degrade, Routing, degrade_of, host_warnings, routing};
use omniroute_tool_sdk::gateway::json_and_response;
use omniroute_tool_sdk::providers;
use omniroute_tool_sdk::{
    Annotations, Ctx, Degraded, GatewayError, Tool, ToolDescription, ToolError, coerce, schema,
};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct RouteRequest;

omniroute_tool_sdk::export_tool!(RouteRequest);

pub use omniroute_tool_sdk::combos::COMBOS;
pub use omniroute_tool_sdk::completion::{COMPLETIONS, headers};
use omniroute_tool_sdk::ledger::Annotation;
pub use omniroute_tool_sdk::providers::{PRICING_MODELS, PROVIDER_NODES};

/// Task roles accepted by `role` (a hint recorded in the ledger; not sent).
pub const ROLES: &[&str] = &["coding", "review", "planning", "analysis"];

/// Sends a completion: spends money upstream (not idempotent, not read-only,
/// reaches models outside the gateway), but destroys nothing.
pub const ANNOTATIONS: Annotations = Annotations {
    read_only_hint: false,
    destructive_hint: false,
    idempotent_hint: false,
    open_world_hint: true,
};

impl Tool for RouteRequest {
    fn describe() -> ToolDescription {
        ToolDescription::new(
            "omniroute_route_request",
            "Route a chat completion",
            &format!("Sends a chat completion request through OmniRoute intelligent routing.{}", schema::SESSION_ID_HINT),
            &["execute:completions"],
            ANNOTATIONS,
        )
        .input_schema(input_schema())
        .output_schema(output_schema())
        .audit_output("/routing")
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        route_request(&Args::parse(&input)?, cx)
    }
}

/// The validated arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub model: String,
    /// Each message reduced to `{role, content}`.
    pub messages: Vec<Value>,
    /// A non-empty `combo`.
    pub combo: Option<String>,
    pub budget: Option<f64>,
    pub role: Option<String>,
}

impl Args {
    pub fn parse(input: &Value) -> Result<Args, ToolError> {
        let model = args::string(input, "model")?;
        let messages = input["messages"]
            .as_array()
            .ok_or_else(|| ToolError::invalid_input("messages must be an array"))?
            .iter()
            .map(|m| match (&m["role"], &m["content"]) {
                (Value::String(role), Value::String(content)) => {
                    Ok(json!({ "role": role, "content": content }))
                }
                _ => Err(ToolError::invalid_input(
                    "each message needs string role and content",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Args {
            model: model.to_string(),
            messages,
            combo: input["combo"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            budget: input["budget"].as_f64().filter(|b| b.is_finite()),
            role: input["role"].as_str().map(str::to_string),
        })
    }

    /// What is asked for: the combo if given, else the model.
    pub fn target(&self) -> &str {
        self.combo.as_deref().unwrap_or(&self.model)
    }
}

/// The whole call: combo lookup, completion, routing facts, warnings,
/// ledger annotation.
pub fn route_request(args: &Args, cx: &Ctx<'_>) -> Result<Value, ToolError> {
    let combos = combos_cache::combos(cx);
    let request = completion::request(args.target(), &json!(args.messages), None);
    let answer = cx.gateway.send(&request);
    if let Err(GatewayError::Refused(message)) = &answer {
        // The host's budget guard sent nothing, so there is no ledger entry.
        return Err(ToolError::new(message.clone()));
    }
    let (body, response) = match json_and_response(&request, answer) {
        Ok(answer) => answer,
        Err((failure, response)) => {
            let degrade = response.as_ref().and_then(degrade_of);
            let combo_name = routed_combo(args, degrade.as_ref(), combos.as_deref());
            let served = response.as_ref().map(routing);
            let request_id = served.as_ref().and_then(|s| s.request_id.as_deref());
            annotate_ledger(
                cx,
                request_id,
                combo_name.as_deref(),
                args,
                None,
                degrade.as_ref(),
            );
            return Err(failure.into());
        }
    };
    let served = routing(&response);
    let degrade = degrade_of(&response);
    let combo_name = routed_combo(args, degrade.as_ref(), combos.as_deref());

    let combo = combo_name.as_deref().and_then(|name| {
        combos
            .as_deref()
            .and_then(|list| combos_cache::named(list, name))
    });
    let fallbacks = combo.and_then(|c| fallbacks_triggered(cx, c, &served));
    annotate_ledger(
        cx,
        served.request_id.as_deref(),
        combo_name.as_deref(),
        args,
        fallbacks,
        degrade.as_ref(),
    );

    let mut warnings = host_warnings(&response);
    if let (Some(budget), Some(cost)) = (args.budget, served.cost)
        && cost > budget
    {
        warnings.push(format!(
            "Request cost {} USD exceeded the per-request budget {} USD.",
            coerce::js_number(coerce::round_cost(cost)),
            coerce::js_number(coerce::round_cost(budget)),
        ));
    }

    let mut out = Map::new();
    out.insert("response".into(), response_part(&body, &served));
    out.insert(
        "routing".into(),
        routing_part(&served, combo_name.as_deref(), fallbacks, degrade.as_ref()),
    );
    if !warnings.is_empty() {
        out.insert("warnings".into(), json!(warnings));
    }
    Ok(Value::Object(out))
}

/// The combo used for routing. When the host's guard degraded the request,
/// its target (always a combo, docs/architecture.md#budget-guard) if known; otherwise `combo` when
/// given, else the model when it names a known combo, else none.
fn routed_combo(
    args: &Args,
    degrade: Option<&Degrade>,
    combos: Option<&[Value]>,
) -> Option<String> {
    if let Some(degrade) = degrade {
        return degrade.to.clone();
    }
    match &args.combo {
        Some(combo) => Some(combo.clone()),
        None => combos
            .and_then(|list| combos_cache::named(list, &args.model))
            .map(|_| args.model.clone()),
    }
}

/// `fallbacksTriggered` (docs/tools/route_request.md#output): for a priority combo, the
/// zero-based index of the first step whose model after `/` is the served
/// model and whose provider's alias set holds the serving provider. `None`
/// for other strategies, without the headers, or when no step matches.
fn fallbacks_triggered(cx: &Ctx<'_>, combo: &Value, served: &Routing) -> Option<usize> {
    if combo_strategy(combo) != "priority" {
        return None;
    }
    let (provider, model) = (served.provider.as_deref()?, served.model.as_deref()?);
    // Optional sources: without them an alias set is just the step's own
    // name. Kept 30 s per session, like the combo list.
    let providers = providers::fetch_cached(cx.gateway, cx.session, PROVIDERS_CACHE_KEY, &mut Degraded::new());
    served_step(combo_steps(combo), provider, model, &providers)
}

/// The tool's private session key for the cached provider maps.
pub const PROVIDERS_CACHE_KEY: &str = "providers-cache";

/// Tells the host what only the tool knows about this completion; the host
/// merges it into the ledger entry it recorded. A refused write is ignored.
fn annotate_ledger(
    cx: &Ctx<'_>,
    request_id: Option<&str>,
    combo: Option<&str>,
    args: &Args,
    fallbacks: Option<usize>,
    degrade: Option<&Degrade>,
) {
    let annotation = Annotation {
        request_id: request_id.map(str::to_string),
        combo: combo.map(str::to_string),
        role: args.role.clone(),
        fallbacks_triggered: fallbacks.map(|n| n as u64),
        degraded_from: degrade.map(|d| d.from.clone()),
    };
    // An annotation the host refuses changes nothing the agent sees.
    let _ = cx.session.annotate(&annotation);
}

/// `response{content, model, tokens{prompt, completion}}` from the body:
/// `content` when the first choice's content is text, `model` from the body
/// else from `x-omniroute-model`; `null` where neither says.
fn response_part(body: &Value, served: &Routing) -> Value {
    let model = body["model"].as_str().or(served.model.as_deref());
    json!({
        "content": coerce::string_or_null(&body["choices"][0]["message"]["content"]),
        "model": model,
        "tokens": {
            "prompt": coerce::number_or_null(&body["usage"]["prompt_tokens"]),
            "completion": coerce::number_or_null(&body["usage"]["completion_tokens"]),
        },
    })
}

/// `routing{…}` in the contract's key order.
fn routing_part(
    served: &Routing,
    combo: Option<&str>,
    fallbacks: Option<usize>,
    degrade: Option<&Degrade>,
) -> Value {
    let number = |x: Option<f64>| x.map_or(Value::Null, coerce::number);
    let mut routing = Map::new();
    routing.insert("provider".into(), json!(served.provider));
    routing.insert("model".into(), json!(served.model));
    routing.insert("combo".into(), json!(combo));
    routing.insert("requestId".into(), json!(served.request_id));
    routing.insert("fallbacksTriggered".into(), json!(fallbacks));
    routing.insert("cost".into(), number(served.cost));
    routing.insert("latencyMs".into(), number(served.latency_ms));
    routing.insert("cache".into(), json!(served.cache));
    routing.insert("tokensIn".into(), json!(served.tokens_in));
    routing.insert("tokensOut".into(), json!(served.tokens_out));
    routing.insert(
        "routingExplanation".into(),
        json!(explanation(served, combo, fallbacks)),
    );
    if let Some(degrade) = degrade {
        routing.insert("degradedFrom".into(), json!(degrade.from));
    }
    Value::Object(routing)
}

/// `Routed via combo "<combo>" to <model> on <provider>` (or `Routed to …`
/// without a combo), `+ " (served from cache)"` on HIT, `+ "; fallback steps
/// before it: <n>"` when n > 0. What the headers did not say is said so,
/// never filled in.
pub fn explanation(served: &Routing, combo: Option<&str>, fallbacks: Option<usize>) -> String {
    let target = match (served.model.as_deref(), served.provider.as_deref()) {
        (Some(model), Some(provider)) => format!("to {model} on {provider}"),
        (Some(model), None) => format!("to {model} (the gateway did not report the provider)"),
        (None, Some(provider)) => format!("on {provider} (the gateway did not report the model)"),
        (None, None) => "(the gateway did not report the serving model or provider)".to_string(),
    };
    let mut text = match combo {
        Some(combo) => format!("Routed via combo \"{combo}\" {target}"),
        None => format!("Routed {target}"),
    };
    if served.cache.as_deref() == Some("HIT") {
        text.push_str(" (served from cache)");
    }
    if let Some(n) = fallbacks.filter(|n| *n > 0) {
        text.push_str(&format!("; fallback steps before it: {n}"));
    }
    text
}

fn input_schema() -> Value {
    schema::input(
        json!({
            "model": { "type": "string", "description": "Model identifier (e.g., 'claude-sonnet-4', 'gpt-4o')" },
            "messages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": { "role": { "type": "string" }, "content": { "type": "string" } },
                    "required": ["role", "content"],
                },
                "description": "Chat messages in OpenAI format",
            },
            "combo": { "description": "Specific combo to route through", "type": "string" },
            "budget": { "description": "Maximum cost in USD for this request", "type": "number" },
            "role": {
                "description": "Task role hint for intelligent routing",
                "type": "string",
                "enum": ROLES,
            },
            "stream": { "default": false, "description": "Whether to stream the response", "type": "boolean" },
            "sessionId": schema::session_id(),
        }),
        &["model", "messages"],
    )
}

fn output_schema() -> Value {
    let num = |d: &str| schema::nullable("number", d);
    let text = |d: &str| schema::nullable("string", d);
    let response = schema::object(
        json!({
            "content": schema::nullable("string", "The first choice's message content; null when it is not text"),
            "model": schema::nullable("string", "Model named in the response body, else x-omniroute-model; null when neither says"),
            "tokens": schema::object(
                json!({
                    "prompt": num("usage.prompt_tokens from the body (may differ from the gateway's accounting, see routing.tokensIn)"),
                    "completion": num("usage.completion_tokens from the body"),
                }),
                &["prompt", "completion"],
            ),
        }),
        &["content", "model", "tokens"],
    );
    let routing = schema::object(
        json!({
            "provider": text("Serving provider (x-omniroute-provider: node id or provider id)"),
            "model": text("Served upstream model without prefix (x-omniroute-model)"),
            "combo": text("Combo used for routing: the combo argument, or the model when it names a combo; null otherwise"),
            "requestId": text("Gateway request id (x-request-id); use it with explain_route"),
            "fallbacksTriggered": num("Priority combos only: index of the step that served (steps that failed before it); null when unknown"),
            "cost": num("Cost in USD (x-omniroute-response-cost); null when the header is absent"),
            "latencyMs": num("Gateway-measured latency (x-omniroute-latency-ms)"),
            "cache": text("Response cache result (x-omniroute-cache): HIT or MISS"),
            "tokensIn": num("Input tokens the gateway accounted (x-omniroute-tokens-in)"),
            "tokensOut": num("Output tokens the gateway accounted (x-omniroute-tokens-out)"),
            "routingExplanation": schema::typed("string", "One sentence built from the facts above"),
            "degradedFrom": schema::typed("string", "Present only when the session's budget guard retargeted the request: the original target"),
        }),
        &[
            "provider",
            "model",
            "combo",
            "requestId",
            "fallbacksTriggered",
            "cost",
            "latencyMs",
            "cache",
            "tokensIn",
            "tokensOut",
            "routingExplanation",
        ],
    );
    schema::object(
        json!({
            "response": response,
            "routing": routing,
            "warnings": {
                "type": "array",
                "description": "The session budget guard's warnings, then the per-request budget warning; present only when there is one",
                "items": { "type": "string" },
            },
        }),
        &["response", "routing"],
    )
}

#[cfg(test)]
mod tests;
