//! The session budget guard (spec C.0.8), enforced by the host on every
//! completion any tool sends: a tool cannot route around it or under-report
//! what was spent, because the ledger is filled from the wire.

use crate::json_text::js_number;
use omniroute_tool_sdk::coerce::round_cost;
use omniroute_tool_sdk::combos::{combo_enabled, combo_name, combo_steps, combos_of, model_provider, model_string};
use omniroute_tool_sdk::providers::Providers;
use serde::Deserialize;
use serde_json::Value;

/// The guard as `set_budget_guard` stores it under `budget-guard`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetGuard {
    pub max_cost: f64,
    pub action: GuardAction,
    pub degrade_to_tier: Option<String>,
}

/// What happens once the session has spent its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardAction {
    Block,
    Degrade,
    Alert,
}

impl GuardAction {
    fn as_str(self) -> &'static str {
        match self {
            GuardAction::Block => "block",
            GuardAction::Degrade => "degrade",
            GuardAction::Alert => "alert",
        }
    }
}

/// The decision for one completion, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send as is; `warnings` go on the response.
    Send { warnings: Vec<String> },
    /// Send to the degrade target instead.
    Degrade { tier: String },
    /// Do not send; the message is the tool's error.
    Refuse(String),
}

fn usd(x: f64) -> String {
    js_number(round_cost(x))
}

impl BudgetGuard {
    /// Parses the stored guard; `None` when absent or unreadable.
    pub fn parse(json: Option<&str>) -> Option<Self> {
        json.and_then(|j| serde_json::from_str(j).ok())
    }

    /// `remaining ≤ 0`.
    pub fn exceeded(&self, spent: f64) -> bool {
        self.max_cost - spent <= 0.0
    }

    /// Decides before sending, given what the session has spent.
    pub fn decide(&self, spent: f64) -> Decision {
        if !self.exceeded(spent) {
            return Decision::Send { warnings: vec![] };
        }
        match self.action {
            GuardAction::Block => Decision::Refuse(self.block_text(spent)),
            GuardAction::Alert => Decision::Send {
                warnings: vec![format!(
                    "Budget guard alert: session spend {} USD exceeds the limit {} USD.",
                    usd(spent),
                    usd(self.max_cost)
                )],
            },
            GuardAction::Degrade => Decision::Degrade {
                tier: self.degrade_to_tier.clone().unwrap_or_else(|| "cheap".to_owned()),
            },
        }
    }

    /// The refusal text, also used by tools that refuse on their own.
    pub fn block_text(&self, spent: f64) -> String {
        format!(
            "Budget guard blocked the request: session spend {} USD reached the limit {} USD (action={}).",
            usd(spent),
            usd(self.max_cost),
            self.action.as_str()
        )
    }

    /// The warning after a response that used up the budget (no guard action yet).
    pub fn reached_text(&self, spent: f64) -> String {
        format!(
            "Budget limit reached: session spend {} USD of {} USD.",
            usd(spent),
            usd(self.max_cost)
        )
    }
}

/// The warning when a completion was sent elsewhere.
pub fn degraded_text(original: &str, target: &str, tier: &str) -> String {
    format!("Budget guard degraded the request from \"{original}\" to \"{target}\" (tier {tier}).")
}

/// The refusal when no combo fits the tier.
pub fn no_target_text(tier: &str) -> String {
    format!("Budget guard could not degrade to tier \"{tier}\": no matching combo; request not sent.")
}

/// The degrade target among the gateway's combos (spec C.0.8): `free` is the
/// first active combo named like "free" or whose step providers all contain
/// "free"; `cheap` is the active combo whose first step has the lowest known
/// unit price, else the `free` rule.
pub fn degrade_target(tier: &str, combos: &Value, pricing: Option<&Value>, providers: &Providers) -> Option<String> {
    let active: Vec<&Value> = combos_of(combos).iter().filter(|c| combo_enabled(c)).collect();
    let free = || {
        active.iter().copied().find(|c| {
            let name = combo_name(c).to_lowercase();
            let steps = combo_steps(c);
            name.contains("free")
                || (!steps.is_empty()
                    && steps
                        .iter()
                        .all(|s| model_provider(s).is_some_and(|p| p.to_lowercase().contains("free"))))
        })
    };
    let chosen = if tier == "free" {
        free()
    } else {
        let cheapest = pricing.and_then(|pricing| {
            active
                .iter()
                .filter_map(|c| {
                    let first = combo_steps(c).first()?;
                    let model = model_string(first)?;
                    let provider = model_provider(first)?;
                    let price = providers.price(pricing, &[provider.as_str()], &model)?;
                    Some((price.unit(), c))
                })
                // Stable: the first combo wins ties.
                .fold(None::<(f64, &&Value)>, |best, (unit, c)| match best {
                    Some((b, _)) if b <= unit => best,
                    _ => Some((unit, c)),
                })
                .map(|(_, c)| *c)
        });
        cheapest.or_else(free)
    };
    chosen.map(|c| combo_name(c).to_owned()).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guard(action: &str, max: f64) -> BudgetGuard {
        BudgetGuard::parse(Some(&json!({"sessionId":"budget_1","maxCost":max,"action":action,"createdAt":"x"}).to_string())).unwrap()
    }

    #[test]
    fn decisions_follow_the_spec() {
        assert_eq!(guard("block", 0.01).decide(0.0000285), Decision::Send { warnings: vec![] });
        assert_eq!(
            guard("block", 0.00002).decide(0.0000285),
            Decision::Refuse("Budget guard blocked the request: session spend 0.0000285 USD reached the limit 0.00002 USD (action=block).".into())
        );
        match guard("alert", 0.0).decide(0.0) {
            Decision::Send { warnings } => assert_eq!(warnings, ["Budget guard alert: session spend 0 USD exceeds the limit 0 USD."]),
            other => panic!("{other:?}"),
        }
        assert_eq!(guard("degrade", 0.0).decide(1.0), Decision::Degrade { tier: "cheap".into() });
        assert!(BudgetGuard::parse(Some("{\"maxCost\":1,\"action\":\"explode\"}")).is_none());
        assert!(BudgetGuard::parse(None).is_none());
    }

    fn combos() -> Value {
        json!({"combos":[
            {"name":"coding-fast","id":"1","models":[{"model":"mock/mock-large","providerId":"mock"}]},
            {"name":"cheap-one","id":"2","models":[{"model":"mock/mock-small","providerId":"mock"}]},
            {"name":"free-tier","id":"3","models":[{"model":"mock/mock-small","providerId":"mock"}], "isActive": true},
            {"name":"off","id":"4","models":[{"model":"mock/mock-tiny","providerId":"mock"}], "isActive": false}
        ]})
    }

    #[test]
    fn degrade_targets() {
        let nodes = json!({"nodes":[{"id":"node-1","prefix":"mock"}]});
        let providers = Providers::from_json(Some(&nodes), None);
        let pricing = json!({"node-1":{"mock-small":{"input":1.5,"output":6},"mock-large":{"input":3,"output":15},"mock-tiny":{"input":0.1,"output":0.1}}});
        assert_eq!(degrade_target("cheap", &combos(), Some(&pricing), &providers).as_deref(), Some("cheap-one"));
        assert_eq!(degrade_target("free", &combos(), Some(&pricing), &providers).as_deref(), Some("free-tier"));
        // No prices known: cheap falls back to the free rule.
        assert_eq!(degrade_target("cheap", &combos(), None, &providers).as_deref(), Some("free-tier"));
        assert_eq!(degrade_target("free", &json!({"combos":[]}), None, &providers), None);
    }
}
