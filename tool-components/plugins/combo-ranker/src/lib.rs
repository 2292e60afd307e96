//! `rank_combos`: an example third-party plugin (issue #8).
//!
//! Ranks the gateway's combos by two measured properties, with weights the
//! agent chooses:
//!
//! * **latency**: the in-memory combo metrics (`GET /api/combos/metrics`),
//!   else the request-weighted 24 h combo health
//!   (`GET /api/usage/combo-health?range=24h`), via the SDK's
//!   [`combo_latency`];
//! * **price**: USD per 1M tokens from `GET /api/pricing` for the combo's
//!   steps (the first step of a priority combo, the weighted mean of a
//!   weighted combo, the mean otherwise).
//!
//! Everything it reads is allowed by the `read:combos` scope alone. A combo
//! without latency or price data gets `null` for it and a note saying why;
//! no number is ever made up. Each criterion is normalised over the combos
//! that have it (1 = best, 0 = worst), and a combo's score is the weighted
//! mean over the criteria it has data for (`scoreBasis`).

use omniroute_tool_sdk::coerce::{self, round4};
use omniroute_tool_sdk::combos::{
    COMBO_HEALTH, COMBO_METRICS, COMBOS, combo_enabled, combo_id, combo_latency, combo_name,
    combo_steps, combo_strategy, combos_of, is_combo_ref, model_provider, model_string,
    step_target,
};
use omniroute_tool_sdk::providers::{self, PRICING, Price, Providers};
use omniroute_tool_sdk::{Ctx, Degraded, Request, Tool, ToolDescription, ToolError, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct RankCombos;

omniroute_tool_sdk::export_tool!(RankCombos);

/// Weight of a criterion when the input does not give one.
pub const DEFAULT_WEIGHT: f64 = 0.5;

impl Tool for RankCombos {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "rank_combos",
            "Rank combos by latency and price",
            "Ranks combos by measured latency (in-memory combo metrics, else 24 h combo health) and known price (GET /api/pricing), with configurable weights. Missing data is null with a note, never estimated.",
            &["read:combos"],
        )
        .input_schema(schema::input(
            json!({
                "latencyWeight": { "type": "number", "minimum": 0, "default": DEFAULT_WEIGHT, "description": "Weight of latency in the score (0 ignores it)" },
                "priceWeight": { "type": "number", "minimum": 0, "default": DEFAULT_WEIGHT, "description": "Weight of price in the score (0 ignores it)" },
                "includeDisabled": { "type": "boolean", "default": false, "description": "Also rank combos switched off (isActive: false)" },
            }),
            &[],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let weights = Weights::from_input(&input)?;
        let include_disabled = input["includeDisabled"].as_bool().unwrap_or(false);
        rank(cx, weights, include_disabled)
    }
}

/// The two weights, both finite and non-negative, not both zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub latency: f64,
    pub price: f64,
}

impl Weights {
    pub fn from_input(input: &Value) -> Result<Self, ToolError> {
        let weight = |key: &str| -> Result<f64, ToolError> {
            match &input[key] {
                Value::Null => Ok(DEFAULT_WEIGHT),
                v => v
                    .as_f64()
                    .filter(|w| w.is_finite() && *w >= 0.0)
                    .ok_or_else(|| {
                        ToolError::invalid_input(format!(
                            "{key} must be a number >= 0 (0 ignores that criterion), got {v}"
                        ))
                    }),
            }
        };
        let weights = Weights {
            latency: weight("latencyWeight")?,
            price: weight("priceWeight")?,
        };
        if weights.latency == 0.0 && weights.price == 0.0 {
            return Err(ToolError::invalid_input(
                "latencyWeight and priceWeight are both 0; give at least one a positive weight, e.g. {\"latencyWeight\": 1, \"priceWeight\": 0}",
            ));
        }
        Ok(weights)
    }
}

/// One combo being ranked.
struct Ranked<'a> {
    combo: &'a Value,
    latency: Option<(f64, &'static str)>,
    price: Option<(Price, &'static str)>,
    notes: Vec<String>,
    score: Option<f64>,
    basis: Vec<&'static str>,
}

/// The whole call: one batch of six reads, then pure ranking.
pub fn rank(cx: &Ctx<'_>, weights: Weights, include_disabled: bool) -> Result<Value, ToolError> {
    let [nodes, models] = providers::requests();
    let requests = [
        Request::get(COMBOS),
        Request::get(COMBO_METRICS),
        Request::get(COMBO_HEALTH).query("range", "24h"),
        Request::get(PRICING),
        nodes,
        models,
    ];
    let [combos, metrics, health, pricing, nodes, models] =
        <[_; 6]>::try_from(cx.gateway.send_all_json(&requests)).map_err(|_| {
            ToolError::new(
                "Invalid gateway request: the host did not answer every request; retry the call",
            )
        })?;
    let combos = combos?;
    let mut degraded = Degraded::new();
    let metrics = degraded.take(metrics);
    let health = degraded.take(health);
    let pricing = degraded.take(pricing);
    let providers = providers::from_results(nodes, models, &mut degraded);

    let mut notes = Vec::new();
    let mut ranked: Vec<Ranked> = combos_of(&combos)
        .iter()
        .filter(|c| include_disabled || combo_enabled(c))
        .map(|combo| {
            let mut r = Ranked {
                combo,
                latency: None,
                price: None,
                notes: Vec::new(),
                score: None,
                basis: Vec::new(),
            };
            match combo_latency(combo, metrics.as_ref(), health.as_ref()) {
                Some(l) => r.latency = Some((l.ms, l.source.as_str())),
                None if metrics.is_none() && health.is_none() => r
                    .notes
                    .push("latency unknown: both latency sources failed (see degraded)".into()),
                None => r.notes.push(
                    "latency unknown: no traffic in the in-memory combo metrics (reset when the gateway restarts) nor in the last 24 h of combo health"
                        .into(),
                ),
            }
            match pricing.as_ref() {
                Some(pricing) => match combo_price(combo, pricing, &providers) {
                    Ok(price) => r.price = Some(price),
                    Err(why) => r.notes.push(why),
                },
                None => r
                    .notes
                    .push("price unknown: GET /api/pricing failed (see degraded)".into()),
            }
            r
        })
        .collect();
    if ranked.is_empty() {
        return Err(ToolError::new(if include_disabled {
            "The gateway has no combos; create one in the OmniRoute dashboard first"
        } else {
            "No enabled combos; call again with {\"includeDisabled\": true} to rank switched-off combos too"
        }));
    }

    let latency_range = range(ranked.iter().filter_map(|r| r.latency.map(|(ms, _)| ms)));
    let price_range = range(ranked.iter().filter_map(|r| r.price.map(|(p, _)| p.unit())));
    for (label, weight, known) in [
        ("latency", weights.latency, latency_range.is_some()),
        ("price", weights.price, price_range.is_some()),
    ] {
        if weight > 0.0 && !known {
            notes.push(format!(
                "no combo has {label} data, so {label} did not affect the ranking"
            ));
        }
    }
    for r in &mut ranked {
        let mut total = 0.0;
        let mut weight_sum = 0.0;
        let criteria = [
            (
                "latency",
                weights.latency,
                r.latency.map(|(ms, _)| ms),
                latency_range,
            ),
            (
                "price",
                weights.price,
                r.price.map(|(p, _)| p.unit()),
                price_range,
            ),
        ];
        for (label, weight, value, range) in criteria {
            if let (true, Some(v), Some(range)) = (weight > 0.0, value, range) {
                total += weight * normalised(v, range);
                weight_sum += weight;
                r.basis.push(label);
            }
        }
        if weight_sum > 0.0 {
            r.score = Some(total / weight_sum);
        } else {
            r.notes
                .push("not ranked: no data for any criterion with a positive weight".into());
        }
    }
    // Best score first, unscored last; equal scores keep the gateway's order.
    ranked.sort_by(|a, b| match (a.score, b.score) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });

    let ranking: Vec<Value> = ranked
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "rank": if r.score.is_some() { json!(i + 1) } else { Value::Null },
                "id": combo_id(r.combo),
                "name": combo_name(r.combo),
                "strategy": combo_strategy(r.combo),
                "enabled": combo_enabled(r.combo),
                "score": r.score.map_or(Value::Null, |s| coerce::number(round4(s))),
                "scoreBasis": r.basis,
                "latencyMs": r.latency.map_or(Value::Null, |(ms, _)| coerce::number(round4(ms))),
                "latencySource": r.latency.map_or(Value::Null, |(_, s)| json!(s)),
                "price": r.price.map_or(Value::Null, |(p, _)| p.to_value()),
                "priceBasis": r.price.map_or(Value::Null, |(_, b)| json!(b)),
                "notes": r.notes,
            })
        })
        .collect();
    Ok(json!({
        "weights": { "latency": coerce::number(weights.latency), "price": coerce::number(weights.price) },
        "ranking": ranking,
        "notes": notes,
        "degraded": degraded.to_value(),
    }))
}

/// (min, max) of the values, `None` when there are none.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Lower is better: 1 for the minimum, 0 for the maximum, linear between;
/// 1 when all values are equal.
pub fn normalised(value: f64, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        (hi - value) / (hi - lo)
    } else {
        1.0
    }
}

/// The price a combo's traffic pays, USD per 1M tokens, with its basis, or
/// the reason it is unknown (a sentence for `notes`).
///
/// * `priority`: the first step's price (it serves unless it fails);
/// * `weighted`: the mean of the step prices weighted by `weight` (plain
///   mean when a step has no numeric weight or the weights sum to 0);
/// * any other strategy: the plain mean of the step prices.
///
/// Every step it needs must have a known price; a combo-reference step has
/// none here (the referenced combo is not resolved).
pub fn combo_price(
    combo: &Value,
    pricing: &Value,
    providers: &Providers,
) -> Result<(Price, &'static str), String> {
    let steps = combo_steps(combo);
    if steps.is_empty() {
        return Err("price unknown: the combo has no steps".into());
    }
    let strategy = combo_strategy(combo);
    let used = if strategy == "priority" {
        &steps[..1]
    } else {
        steps
    };
    let mut missing = Vec::new();
    let mut priced = Vec::new();
    for step in used {
        let target = step_target(step);
        let target = target.as_deref().unwrap_or("a step without model");
        if is_combo_ref(step) {
            missing.push(format!("{target} (a combo reference)"));
            continue;
        }
        let price = match (model_provider(step), model_string(step)) {
            (Some(provider), Some(model)) => providers.price(pricing, &[&provider], &model),
            _ => None,
        };
        match price {
            Some(p) => priced.push((p, coerce::finite(&step["weight"]).map(|w| w.max(0.0)))),
            None => missing.push(target.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "price unknown: GET /api/pricing has no price for {} (custom nodes have none until one is set in the dashboard)",
            missing.join(", ")
        ));
    }
    // Weighted only when every step says its weight (none is assumed).
    let weights: Option<Vec<f64>> = priced.iter().map(|(_, w)| *w).collect();
    let weight_sum: f64 = weights.iter().flatten().sum();
    let (basis, weights) = match (strategy, weights) {
        ("priority", _) => ("first step", None),
        ("weighted", Some(weights)) if weight_sum > 0.0 => ("weighted mean of steps", Some(weights)),
        _ => ("mean of steps", None),
    };
    let share = |i: usize| match &weights {
        Some(weights) => weights[i] / weight_sum,
        None => 1.0 / priced.len() as f64,
    };
    let mean = |rate: fn(&Price) -> f64| -> f64 {
        priced.iter().enumerate().map(|(i, (p, _))| rate(p) * share(i)).sum()
    };
    Ok((
        Price {
            input_per_million: round4(mean(|p| p.input_per_million)),
            output_per_million: round4(mean(|p| p.output_per_million)),
        },
        basis,
    ))
}

fn output_schema() -> Value {
    let nullable_number = |d: &str| schema::nullable("number", d);
    let entry = schema::object(
        json!({
            "rank": schema::nullable("integer", "1 = best; null when the combo has no data for any weighted criterion"),
            "id": schema::nullable("string", "Combo id; null when the gateway sent none"),
            "name": schema::nullable("string", "Combo name; null when the gateway sent none"),
            "strategy": schema::typed("string", "Combo strategy"),
            "enabled": schema::typed("boolean", "False when the combo is switched off"),
            "score": nullable_number("Weighted mean of the normalised criteria in scoreBasis (1 = best), or null"),
            "scoreBasis": { "type": "array", "items": { "type": "string", "enum": ["latency", "price"] }, "description": "Criteria the score is based on" },
            "latencyMs": nullable_number("Measured mean latency in ms, or null"),
            "latencySource": { "type": ["string", "null"], "enum": ["combo-metrics", "combo-health", null], "description": "combo-metrics (in-memory) or combo-health (24 h)" },
            "price": {
                "type": ["object", "null"],
                "description": "USD per 1M tokens from GET /api/pricing, or null",
                "properties": { "inputPerMillion": { "type": "number" }, "outputPerMillion": { "type": "number" } },
                "required": ["inputPerMillion", "outputPerMillion"],
            },
            "priceBasis": { "type": ["string", "null"], "enum": ["first step", "weighted mean of steps", "mean of steps", null], "description": "Which steps the price covers" },
            "notes": { "type": "array", "items": { "type": "string" }, "description": "Why a value is null or the combo is unranked" },
        }),
        &[
            "rank",
            "id",
            "name",
            "strategy",
            "enabled",
            "score",
            "scoreBasis",
            "latencyMs",
            "latencySource",
            "price",
            "priceBasis",
            "notes",
        ],
    );
    schema::object(
        json!({
            "weights": schema::object(json!({ "latency": { "type": "number" }, "price": { "type": "number" } }), &["latency", "price"]),
            "ranking": { "type": "array", "items": entry, "description": "Combos, best first; unranked ones last" },
            "notes": { "type": "array", "items": { "type": "string" }, "description": "Remarks about the whole ranking" },
            "degraded": schema::degraded(),
        }),
        &["weights", "ranking", "notes", "degraded"],
    )
}

#[cfg(test)]
mod tests;
