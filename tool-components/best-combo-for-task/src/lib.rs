//! `omniroute_best_combo_for_task` (docs/tools/best_combo_for_task.md).
//!
//! Scores the enabled combos with the original's fitness table (preferred
//! providers and name traits per task type), but only over steps whose
//! provider's breaker is not OPEN, skips combos with no usable step, and
//! applies the optional cost and latency constraints where the gateway has
//! the data. Every check that ran or could not run is said in `reason`.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::coerce::{self, js_number, round4};
use omniroute_tool_sdk::combos::{
    self, ComboModel, combo_enabled, combo_id, combo_latency, combo_name, combos_of,
};
use omniroute_tool_sdk::fitness::{self, TASK_TYPES};
use omniroute_tool_sdk::ledger::usd;
use omniroute_tool_sdk::providers::{self, BreakerState, HEALTH, Providers, breaker_state};
use omniroute_tool_sdk::{Ctx, Degraded, Request, Tool, ToolDescription, ToolError, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct BestComboForTask;

omniroute_tool_sdk::export_tool!(BestComboForTask);

pub use omniroute_tool_sdk::combos::{COMBO_HEALTH, COMBO_METRICS, COMBOS};
pub use omniroute_tool_sdk::providers::{PRICING_MODELS, PROVIDER_NODES};
pub const ANALYTICS: &str = "/api/usage/analytics";

/// How many alternatives are listed.
pub const ALTERNATIVES: usize = 3;

impl Tool for BestComboForTask {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_best_combo_for_task",
            "Best combo for a task",
            "Recommends the best combo for a task type based on provider fitness and constraints",
            &["read:combos", "read:health"],
        )
        .input_schema(schema::input(
            json!({
                "taskType": { "type": "string", "enum": TASK_TYPES, "description": "Type of task to find the best combo for" },
                "budgetConstraint": { "description": "Maximum cost in USD", "type": "number" },
                "latencyConstraint": { "description": "Maximum acceptable latency in ms", "type": "number" },
            }),
            &["taskType"],
        ))
        .output_schema(output_schema())
        .audit_output("/recommendedCombo")
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let task = args::one_of(&input, "taskType", TASK_TYPES)?;
        best_combo(
            cx,
            task,
            args::optional_number(&input, "budgetConstraint"),
            args::optional_number(&input, "latencyConstraint"),
        )
    }
}

/// One enabled combo under consideration.
struct Candidate<'a> {
    combo: &'a Value,
    /// Advanced-normalised steps with their breaker state.
    steps: Vec<(ComboModel, BreakerState)>,
    score: f64,
    free: bool,
    /// Why it was skipped or excluded.
    excluded: Option<String>,
}

impl Candidate<'_> {
    fn usable(&self) -> impl Iterator<Item = &ComboModel> {
        self.steps
            .iter()
            .filter(|(_, state)| *state != BreakerState::Open)
            .map(|(m, _)| m)
    }

    fn id_name(&self) -> Value {
        json!({ "id": combo_id(self.combo), "name": combo_name(self.combo) })
    }
}

/// The whole call.
pub fn best_combo(
    cx: &Ctx<'_>,
    task: &str,
    budget: Option<f64>,
    latency: Option<f64>,
) -> Result<Value, ToolError> {
    let [nodes, models] = providers::requests();
    let mut requests = vec![Request::get(COMBOS), Request::get(HEALTH), nodes, models];
    if budget.is_some() {
        requests.push(Request::get(ANALYTICS).query("range", "30d"));
    }
    if latency.is_some() {
        requests.push(Request::get(COMBO_METRICS));
        requests.push(Request::get(COMBO_HEALTH).query("range", "24h"));
    }
    let mut answers = cx.gateway.send_all_json(&requests).into_iter();
    let mut next = || answers.next().expect("send_all_json answers every request");
    let combos_response = next()?;
    let mut degraded = Degraded::new();
    let health = degraded.take(next());
    let (nodes, models) = (next(), next());
    let providers = providers::from_results(nodes, models, &mut degraded);
    let analytics: Option<Value> = budget.and_then(|_| degraded.take(next()));
    let (metrics, combo_health) = match latency {
        Some(_) => (degraded.take(next()), degraded.take(next())),
        None => (None, None),
    };

    let enabled: Vec<&Value> = combos_of(&combos_response)
        .iter()
        .filter(|c| combo_enabled(c))
        .collect();
    if enabled.is_empty() {
        return Err(ToolError::new("No enabled combos available"));
    }

    let mut candidates: Vec<Candidate> = enabled
        .into_iter()
        .map(|combo| {
            let steps = combos::combo_models(combo)
                .into_iter()
                .map(|m| {
                    // No breaker is known for a step that names no provider.
                    let state = match (health.as_ref(), m.provider.as_deref()) {
                        (Some(h), Some(p)) => breaker_state(h, &providers.alias_set(p)),
                        _ => BreakerState::Closed,
                    };
                    (m, state)
                })
                .collect();
            Candidate {
                combo,
                steps,
                score: 0.0,
                free: false,
                excluded: None,
            }
        })
        .collect();

    let mut clauses = Vec::new();
    // Breakers: skip combos whose every step is OPEN.
    let mut skipped = Vec::new();
    let mut open_ignored: Vec<String> = Vec::new();
    for c in &mut candidates {
        let open: Vec<&str> = c
            .steps
            .iter()
            .filter(|(_, s)| *s == BreakerState::Open)
            .filter_map(|(m, _)| m.provider.as_deref())
            .collect();
        if !c.steps.is_empty() && open.len() == c.steps.len() {
            c.excluded = Some(format!(
                "all providers' breakers OPEN ({})",
                dedup(&open).join(", ")
            ));
            skipped.push(label(c.combo));
        } else {
            for p in open {
                if !open_ignored.iter().any(|o| o == p) {
                    open_ignored.push(p.to_string());
                }
            }
        }
    }
    if !skipped.is_empty() {
        clauses.push(format!(
            "skipped {} combo(s) with all provider breakers OPEN: {}",
            skipped.len(),
            skipped.join(", ")
        ));
    }
    if !open_ignored.is_empty() {
        clauses.push(format!(
            "OPEN providers ignored in scoring: {}",
            open_ignored.join(", ")
        ));
    }

    // Scores over the usable steps.
    for c in &mut candidates {
        let (score, free) = {
            let usable: Vec<&ComboModel> = c.usable().collect();
            let name = combo_name(c.combo);
            (fitness_score(task, name, &usable), is_free(name, &usable))
        };
        c.score = score;
        c.free = free;
    }

    // Constraints, over the combos not skipped.
    if let Some(limit) = budget {
        let (mut applied, mut unknown) = (0, 0);
        for c in candidates.iter_mut().filter(|c| c.excluded.is_none()) {
            let first = c.usable().next();
            match first.and_then(|m| expected_cost(analytics.as_ref(), m, &providers)) {
                Some(cost) => {
                    applied += 1;
                    if cost > limit {
                        c.excluded = Some(format!(
                            "expected cost {} USD > {} USD",
                            usd(cost),
                            js_number(limit)
                        ));
                    }
                }
                None => unknown += 1,
            }
        }
        clauses.push(format!(
            "budgetConstraint {} USD: applied to {applied} combo(s), not evaluated for {unknown} (no cost data)",
            js_number(limit)
        ));
    }
    if let Some(limit) = latency {
        let (mut applied, mut unknown) = (0, 0);
        for c in candidates.iter_mut().filter(|c| c.excluded.is_none()) {
            match combo_latency(c.combo, metrics.as_ref(), combo_health.as_ref()).map(|l| l.ms) {
                Some(ms) => {
                    applied += 1;
                    if ms > limit {
                        c.excluded = Some(format!(
                            "avg latency {} ms > {} ms",
                            js_number(round4(ms)),
                            js_number(limit)
                        ));
                    }
                }
                None => unknown += 1,
            }
        }
        clauses.push(format!(
            "latencyConstraint {} ms: applied to {applied} combo(s), not evaluated for {unknown} (no latency data)",
            js_number(limit)
        ));
    }
    if health.is_none() {
        clauses.push("health unavailable: breakers not checked".to_string());
    }

    let mut remaining: Vec<&Candidate> =
        candidates.iter().filter(|c| c.excluded.is_none()).collect();
    let excluded: Vec<Value> = candidates
        .iter()
        .filter_map(|c| {
            c.excluded.as_ref().map(|reason| {
                json!({ "id": combo_id(c.combo), "name": combo_name(c.combo), "reason": reason })
            })
        })
        .collect();
    if remaining.is_empty() {
        let why: Vec<String> = candidates
            .iter()
            .filter_map(|c| Some(format!("{}: {}", label(c.combo), c.excluded.as_ref()?)))
            .collect();
        return Err(ToolError::new(format!(
            "No enabled combo satisfies the constraints: {}",
            why.join("; ")
        )));
    }
    // Stable: equal scores keep the gateway's order.
    remaining.sort_by(|a, b| b.score.total_cmp(&a.score));
    let best = remaining[0];

    let preferred = fitness::preferred(task);
    let mut reason = format!(
        "Best match for \"{task}\": preferred providers ({})",
        preferred
            .iter()
            .take(3)
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    );
    for clause in &clauses {
        reason.push_str("; ");
        reason.push_str(clause);
    }
    let alternatives: Vec<Value> = remaining
        .iter()
        .skip(1)
        .take(ALTERNATIVES)
        .map(|c| {
            let tradeoff = if c.free {
                "free but may have limits"
            } else if c.score < 0.5 * best.score {
                "cheaper but slower"
            } else {
                "similar quality, different providers"
            };
            json!({ "id": combo_id(c.combo), "name": combo_name(c.combo), "tradeoff": tradeoff })
        })
        .collect();
    let free_alternative = remaining
        .iter()
        .skip(1)
        .find(|c| c.free)
        .map_or(Value::Null, |c| c.id_name());

    Ok(json!({
        "recommendedCombo": { "id": combo_id(best.combo), "name": combo_name(best.combo), "reason": reason },
        "alternatives": alternatives,
        "freeAlternative": free_alternative,
        "excluded": excluded,
        "degraded": degraded.to_value(),
    }))
}

/// How reasons name a combo: its name, else its id.
fn label(combo: &Value) -> String {
    match (combo_name(combo), combo_id(combo)) {
        (Some(name), _) => name.to_string(),
        (None, Some(id)) => format!("id {id}"),
        (None, None) => "a combo without name or id".to_string(),
    }
}

fn dedup<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(n) {
            out.push(n);
        }
    }
    out
}

/// The original's fitness score: `(len(preferred) − k) × 10` for each step
/// whose provider equals the preferred entry at index k, plus 5 for each
/// task trait the lower-cased combo name contains.
pub fn fitness_score(task: &str, name: Option<&str>, steps: &[&ComboModel]) -> f64 {
    let preferred = fitness::preferred(task);
    let provider_points: usize = steps
        .iter()
        .filter_map(|m| preferred.iter().position(|p| m.provider.as_deref() == Some(*p)))
        .map(|k| (preferred.len() - k) * 10)
        .sum();
    let lower = name.map(str::to_lowercase);
    let trait_points = fitness::traits(task)
        .iter()
        .filter(|t| lower.as_deref().is_some_and(|n| n.contains(*t)))
        .count()
        * 5;
    (provider_points + trait_points) as f64
}

/// Free: the name contains `free`, or every step provider does (a combo
/// without steps counts as free; a step without provider is not free).
pub fn is_free(name: Option<&str>, steps: &[&ComboModel]) -> bool {
    name.is_some_and(|n| n.to_lowercase().contains("free"))
        || steps.iter().all(|m| {
            m.provider
                .as_deref()
                .is_some_and(|p| p.to_lowercase().contains("free"))
        })
}

/// `cost / requests` of the analytics `byModel` entry of a step: `rawModel`
/// equal to the step model after `/`, `provider` in the step provider's
/// alias set (analytics lower-cases providers). `None` without such an
/// entry, with zero requests, or without analytics.
fn expected_cost(
    analytics: Option<&Value>,
    step: &ComboModel,
    providers: &Providers,
) -> Option<f64> {
    let analytics = analytics?;
    let set = providers.alias_set(step.provider.as_deref()?);
    let step_model = step.model.as_deref()?;
    let model = step_model.split_once('/').map_or(step_model, |(_, m)| m);
    let entry = coerce::arr(&analytics["byModel"]).iter().find(|e| {
        e["rawModel"].as_str() == Some(model)
            && e["provider"]
                .as_str()
                .is_some_and(|p| set.contains_ignore_case(p))
    })?;
    let requests = coerce::finite(&entry["requests"])?;
    let cost = coerce::finite(&entry["cost"])?;
    (requests > 0.0).then(|| cost / requests)
}

fn output_schema() -> Value {
    let id_name = |extra: &str, d: &str| {
        schema::object(
            json!({
                "id": schema::nullable("string", "Combo id; null when the gateway sent none"),
                "name": schema::nullable("string", "Combo name; null when the gateway sent none"),
                extra: schema::typed("string", d),
            }),
            &["id", "name", extra],
        )
    };
    schema::object(
        json!({
            "recommendedCombo": id_name("reason", "Why, with one clause per check that ran or could not run"),
            "alternatives": { "type": "array", "description": "The next best remaining combos (up to 3)", "items": id_name("tradeoff", "free but may have limits | cheaper but slower | similar quality, different providers") },
            "freeAlternative": {
                "type": ["object", "null"],
                "description": "The first free remaining combo other than the recommended one, or null",
                "properties": { "id": { "type": ["string", "null"] }, "name": { "type": ["string", "null"] } },
                "required": ["id", "name"],
            },
            "excluded": { "type": "array", "description": "Enabled combos skipped (all breakers OPEN) or excluded by a constraint", "items": id_name("reason", "Why") },
            "degraded": schema::degraded(),
        }),
        &[
            "recommendedCombo",
            "alternatives",
            "freeAlternative",
            "excluded",
            "degraded",
        ],
    )
}

#[cfg(test)]
mod tests;
