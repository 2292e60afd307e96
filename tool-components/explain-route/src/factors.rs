//! The five scoring factors of docs/tools/explain_route.md, computed now from real data:
//! each `{name, value, weight, contribution, source}`, `value` in 0..1 or
//! null when the data is missing, and a score over the non-null ones.

use omniroute_tool_sdk::coerce::{self, round4};
use omniroute_tool_sdk::combos::{model_provider, model_string, served_step};
use omniroute_tool_sdk::fitness;
use omniroute_tool_sdk::providers::{BreakerState, Providers, breaker_state};
use omniroute_tool_sdk::quota;
use serde_json::{Value, json};

/// What the factors are computed from; `None`: not known or not read.
pub struct FactorInputs<'a> {
    /// Serving provider (`x-omniroute-provider` or the call log's).
    pub provider: Option<&'a str>,
    /// Served model, without prefix.
    pub model: Option<&'a str>,
    /// The `role` the route_request carried.
    pub role: Option<&'a str>,
    /// The steps of the combo the request went through.
    pub steps: Option<&'a [Value]>,
    /// `GET /api/pricing`.
    pub pricing: Option<&'a Value>,
    /// The combo's entry of `GET /api/combos/metrics?combo=<name>`.
    pub metrics: Option<&'a Value>,
    pub health: Option<&'a Value>,
    pub quota: Option<&'a Value>,
    pub providers: &'a Providers,
}

/// One factor.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    pub name: &'static str,
    pub value: Option<f64>,
    pub weight: f64,
    pub source: &'static str,
}

impl Factor {
    /// round4(value × weight), or `None`.
    pub fn contribution(&self) -> Option<f64> {
        self.value.map(|v| round4(v * self.weight))
    }
}

/// The five factors, in order.
pub struct Factors(pub Vec<Factor>);

impl Factors {
    pub fn assess(x: &FactorInputs<'_>) -> Factors {
        let set = x.provider.map(|p| x.providers.alias_set(p));
        let health = match (x.health, &set) {
            (Some(h), Some(set)) => Some(match breaker_state(h, set) {
                BreakerState::Closed => 1.0,
                BreakerState::HalfOpen => 0.5,
                BreakerState::Open => 0.0,
            }),
            _ => None,
        };
        let quota = match (x.quota, &set) {
            (Some(raw), Some(set)) => quota::entry_for(raw, set)
                .filter(|e| !e["quotaTotal"].is_null())
                .and_then(|e| e["percentRemaining"].as_f64())
                .map(|p| p / 100.0),
            _ => None,
        };
        let served = match (x.steps, x.provider, x.model) {
            (Some(steps), Some(p), Some(m)) => served_step(steps, p, m, x.providers),
            _ => None,
        };
        let cost = served
            .zip(x.steps)
            .zip(x.pricing)
            .and_then(|((i, steps), pricing)| {
                let unit = |step: &Value| {
                    let (p, m) = (model_provider(step)?, model_string(step)?);
                    x.providers
                        .price(pricing, &[&p], &m)
                        .map(|price| price.unit())
                };
                relative_to_best(steps, i, unit)
            });
        let latency = served
            .zip(x.steps)
            .zip(x.metrics)
            .and_then(|((i, steps), metrics)| {
                let avg = |step: &Value| {
                    let m = model_string(step)?;
                    metrics["byModel"][m.as_str()]["avgLatencyMs"].as_f64()
                };
                relative_to_best(steps, i, avg)
            });
        let task_fit = match (x.role, &set) {
            (Some(role), Some(set)) => {
                let preferred = fitness::preferred(role);
                (!preferred.is_empty()).then(|| {
                    preferred
                        .iter()
                        .position(|p| set.contains(p))
                        .map_or(0.0, |k| {
                            (preferred.len() - k) as f64 / preferred.len() as f64
                        })
                })
            }
            _ => None,
        };
        Factors(vec![
            Factor {
                name: "health",
                value: health,
                weight: 0.3,
                source: "GET /api/monitoring/health providerBreakers",
            },
            Factor {
                name: "quota",
                value: quota,
                weight: 0.25,
                source: "GET /api/usage/quota percentRemaining (known limits only)",
            },
            Factor {
                name: "cost",
                value: cost,
                weight: 0.2,
                source: "GET /api/pricing unit prices of the combo's steps",
            },
            Factor {
                name: "latency",
                value: latency,
                weight: 0.15,
                source: "GET /api/combos/metrics byModel.avgLatencyMs of the combo's steps",
            },
            Factor {
                name: "task_fit",
                value: task_fit,
                weight: 0.1,
                source: "the request's role and the best_combo_for_task fitness table",
            },
        ])
    }

    /// round4(Σ contributions / Σ weights of the non-null factors), or `None`.
    pub fn score(&self) -> Option<f64> {
        let known: Vec<&Factor> = self.0.iter().filter(|f| f.value.is_some()).collect();
        if known.is_empty() {
            return None;
        }
        let contributions: f64 = known.iter().filter_map(|f| f.contribution()).sum();
        let weights: f64 = known.iter().map(|f| f.weight).sum();
        Some(round4(contributions / weights))
    }

    pub fn score_value(&self) -> Value {
        self.score().map_or(Value::Null, coerce::number)
    }

    pub fn to_value(&self) -> Value {
        let number = |x: Option<f64>| x.map_or(Value::Null, coerce::number);
        Value::Array(
            self.0
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "value": number(f.value.map(round4)),
                        "weight": coerce::number(f.weight),
                        "contribution": number(f.contribution()),
                        "source": f.source,
                    })
                })
                .collect(),
        )
    }
}

/// For "lower is better" step measures: best / served when the served step
/// and at least one other have a value; 1 when the served step is the best.
fn relative_to_best(
    steps: &[Value],
    served: usize,
    measure: impl Fn(&Value) -> Option<f64>,
) -> Option<f64> {
    let own = measure(steps.get(served)?)?;
    let others: Vec<f64> = steps
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != served)
        .filter_map(|(_, s)| measure(s))
        .collect();
    let best_other = others.into_iter().reduce(f64::min)?;
    Some(if own <= best_other {
        1.0
    } else {
        best_other / own
    })
}
