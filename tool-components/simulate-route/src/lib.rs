//! `omniroute_simulate_route` (docs/tools/simulate_route.md).
//!
//! A dry run: which steps a request to a combo would try, in order, with an
//! estimated prompt cost per step, the step provider's breaker state and its
//! quota. Nothing is sent upstream. The combo list is required; health,
//! quota, prices and the two provider maps are optional and named in
//! `degraded` when they fail.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::combos::{self, combo_enabled, combos_of, find_combo, list_combos_step};
use omniroute_tool_sdk::providers::{self, HEALTH, PRICING, PRICING_MODELS, PROVIDER_NODES, Providers, breaker_state,};
use omniroute_tool_sdk::quota::{self, QUOTA};
use omniroute_tool_sdk::{
    Ctx, Degraded, Request, Tool, ToolDescription, ToolError, coerce, schema,
};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct SimulateRoute;

omniroute_tool_sdk::export_tool!(SimulateRoute);

pub use omniroute_tool_sdk::combos::COMBOS;

/// The input price assumed when neither the gateway nor the step has one
/// (the original's default), USD per 1M tokens.
pub const DEFAULT_INPUT_PER_MILLION: f64 = 3.0;

/// The `assumptions` every result states.
pub const ASSUMPTIONS: &[&str] = &[
    "probability is a fixed heuristic (0.85 for the first step, the rest shared equally), not measured",
    "estimatedCost prices the prompt tokens only, at the input rate",
];

/// Where a step's input price came from.
pub const COST_BASES: &[&str] = &["gateway_pricing", "combo_step", "default_estimate"];

impl Tool for SimulateRoute {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_simulate_route",
            "Simulate a route",
            "Simulates the routing path a request would take without executing it (dry-run)",
            &["read:health", "read:combos"],
        )
        .input_schema(schema::input(
            json!({
                "model": { "type": "string", "description": "Target model for simulation" },
                "promptTokenEstimate": { "type": "number", "description": "Estimated prompt token count" },
                "combo": { "description": "Specific combo to simulate (default: active combo)", "type": "string" },
            }),
            &["model", "promptTokenEstimate"],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        // `model` is part of the published input, but the combo's steps say
        // which models a request would reach: it never stands in for a
        // step's model.
        args::string(&input, "model")?;
        let tokens = args::number(&input, "promptTokenEstimate")?;
        simulate(cx, tokens, input["combo"].as_str())
    }
}

/// The whole call.
pub fn simulate(cx: &Ctx<'_>, tokens: f64, combo: Option<&str>) -> Result<Value, ToolError> {
    let requests = [
        Request::get(COMBOS),
        Request::get(HEALTH),
        Request::get(QUOTA),
        Request::get(PRICING),
        Request::get(PROVIDER_NODES),
        Request::get(PRICING_MODELS),
    ];
    let [combos, health, quota, pricing, nodes, models] =
        <[_; 6]>::try_from(cx.gateway.send_all_json(&requests))
            .expect("send_all_json answers every request");
    let combos = combos?;
    let mut degraded = Degraded::new();
    let health = degraded.take(health);
    let quota = degraded.take(quota);
    let pricing = degraded.take(pricing);
    let providers = providers::from_results(nodes, models, &mut degraded);

    let list = combos_of(&combos);
    let target = match combo {
        Some(wanted) => find_combo(list, wanted)
            .ok_or_else(|| ToolError::new(format!("No matching combo found: \"{wanted}\"")))?,
        None => list
            .iter()
            .find(|c| combo_enabled(c))
            .ok_or_else(|| ToolError::new("No enabled combo found"))?,
    };

    let sources = Sources {
        health: health.as_ref(),
        quota: quota.as_ref(),
        pricing: pricing.as_ref(),
        providers: &providers,
    };
    let steps = combos::combo_steps(target);
    let n = steps.len();
    let path: Vec<Step> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| sources.step(step, i, n, tokens))
        .collect();

    let costs: Vec<f64> = path.iter().map(|s| s.cost).collect();
    let extreme = |pick: fn(f64, f64) -> f64| {
        costs
            .iter()
            .copied()
            .reduce(pick)
            .map_or(Value::Null, coerce::number)
    };
    let fallback_tree = json!({
        "primary": path.first().map(|s| s.provider.clone()),
        "fallbacks": path.iter().skip(1).map(|s| s.provider.clone()).collect::<Vec<_>>(),
        "worstCaseCost": extreme(f64::max),
        "bestCaseCost": extreme(f64::min),
        "costEstimated": path.iter().any(|s| s.basis == "default_estimate"),
    });
    Ok(json!({
        "simulatedPath": path.iter().map(Step::to_value).collect::<Vec<_>>(),
        "fallbackTree": fallback_tree,
        "assumptions": ASSUMPTIONS,
        "degraded": degraded.to_value(),
    }))
}

/// The optional sources of one call (`None`: the request failed).
struct Sources<'a> {
    health: Option<&'a Value>,
    quota: Option<&'a Value>,
    pricing: Option<&'a Value>,
    providers: &'a Providers,
}

/// One `simulatedPath` item.
struct Step {
    provider: Option<String>,
    model: Option<String>,
    probability: f64,
    cost: f64,
    basis: &'static str,
    health: Value,
    quota: Value,
}

impl Sources<'_> {
    fn step(&self, step: &Value, i: usize, n: usize, tokens: f64) -> Step {
        let normalised = list_combos_step(step, i);
        let provider = normalised["provider"].as_str().map(str::to_string);
        let step_model = combos::model_string(step).or_else(|| combos::step_target(step));
        let is_ref = combos::is_combo_ref(step);
        let (per_million, basis) = self.input_price(step, provider.as_deref(), step_model.as_deref());
        // A combo reference has no breaker or quota; a step that names no
        // provider has none known.
        let set = provider.as_deref().filter(|_| !is_ref).map(|p| self.providers.alias_set(p));
        let health = match (self.health, &set) {
            (Some(health), Some(set)) => json!(breaker_state(health, set).as_str()),
            _ => Value::Null,
        };
        let quota = match (self.quota, &set) {
            (Some(raw), Some(set)) => quota::entry_for(raw, set)
                .and_then(|e| quota::known_percent_remaining(&e))
                .map_or(Value::Null, coerce::number),
            _ => Value::Null,
        };
        Step {
            provider,
            model: step_model,
            probability: if i == 0 {
                0.85
            } else {
                0.15 / (n.saturating_sub(1)).max(1) as f64
            },
            cost: coerce::round_cost(tokens * per_million / 1e6),
            basis,
            health,
            quota,
        }
    }

    /// The input price (USD per 1M tokens) and its basis: the gateway's
    /// price for the step, else the step's own numeric `inputCostPer1M`,
    /// else the default.
    fn input_price(
        &self,
        step: &Value,
        provider: Option<&str>,
        model: Option<&str>,
    ) -> (f64, &'static str) {
        let known = self
            .pricing
            .zip(provider.zip(model))
            .filter(|_| !combos::is_combo_ref(step))
            .and_then(|(pricing, (provider, model))| self.providers.price(pricing, &[provider], model));
        if let Some(price) = known {
            return (price.input_per_million, "gateway_pricing");
        }
        match coerce::finite_a(&step["inputCostPer1M"]) {
            Some(x) => (x, "combo_step"),
            None => (DEFAULT_INPUT_PER_MILLION, "default_estimate"),
        }
    }
}

impl Step {
    fn to_value(&self) -> Value {
        json!({
            "provider": self.provider,
            "model": self.model,
            "probability": coerce::number(self.probability),
            "estimatedCost": coerce::number(self.cost),
            "costBasis": self.basis,
            "healthStatus": self.health,
            "quotaAvailable": self.quota,
        })
    }
}

fn output_schema() -> Value {
    let step = schema::object(
        json!({
            "provider": schema::nullable("string", "Step provider as the combo names it (node prefix or provider alias/id); \"combo\" for a combo reference; null when the step names no provider"),
            "model": schema::nullable("string", "Step model (provider/model), or the referenced combo name; null when the step names neither"),
            "probability": schema::typed("number", "Fixed heuristic, not measured: 0.85 for the first step, the rest share 0.15"),
            "estimatedCost": schema::typed("number", "promptTokenEstimate x input price / 1e6, USD (prompt tokens only)"),
            "costBasis": { "type": "string", "enum": COST_BASES, "description": "Where the input price came from: the gateway's pricing, the step's inputCostPer1M, or the default 3.0 USD per 1M tokens" },
            "healthStatus": { "type": ["string", "null"], "enum": ["CLOSED", "HALF_OPEN", "OPEN", null], "description": "Breaker state of the step provider; null when health failed, for a combo reference, or when the step names no provider" },
            "quotaAvailable": schema::nullable("number", "percentRemaining (0-100) of the provider's quota entry when the gateway knows its limit; null when there is no entry or its limit is unknown (the gateway then reports 100 %, which says nothing about what is left)"),
        }),
        &[
            "provider",
            "model",
            "probability",
            "estimatedCost",
            "costBasis",
            "healthStatus",
            "quotaAvailable",
        ],
    );
    schema::object(
        json!({
            "simulatedPath": { "type": "array", "description": "The combo's steps in order", "items": step },
            "fallbackTree": schema::object(
                json!({
                    "primary": schema::nullable("string", "Provider of the first step; null for a combo without steps or a first step that names no provider"),
                    "fallbacks": { "type": "array", "items": { "type": ["string", "null"] }, "description": "Providers of the other steps, in order (null for a step that names no provider)" },
                    "worstCaseCost": schema::nullable("number", "Highest step cost; null without steps"),
                    "bestCaseCost": schema::nullable("number", "Lowest step cost; null without steps"),
                    "costEstimated": schema::typed("boolean", "True when any step used the default price"),
                }),
                &["primary", "fallbacks", "worstCaseCost", "bestCaseCost", "costEstimated"],
            ),
            "assumptions": { "type": "array", "items": { "type": "string" }, "description": "What the simulation assumes" },
            "degraded": schema::degraded(),
        }),
        &["simulatedPath", "fallbackTree", "assumptions", "degraded"],
    )
}

#[cfg(test)]
mod tests;
