//! The session budget guard: its stored form, the decision the host takes
//! before every completion, the texts it and the tools say, and the rule
//! that picks the degrade target.
//!
//! `set_budget_guard` writes the guard under the session key `budget-guard`
//! (a tenant's default budget is written by the host); the host enforces it
//! on every completion any tool sends, so a tool cannot route around it;
//! `cost_report`, `get_session_snapshot` and `test_combo` read it. Definitions:
//! `remaining = maxCost − spent`, `exceeded = remaining ≤ 0`, with `spent`
//! the sum of the known costs in the ledger ([`crate::ledger::spent`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock;
use crate::coerce::{round_cost, serialize_number, usd};
use crate::combos::{
    combo_enabled, combo_name, combo_steps, combos_of, model_provider, model_string,
};
use crate::providers::Providers;

/// The degrade tiers, `cheap` being the default.
pub const TIERS: &[&str] = &["cheap", "free"];
/// The tier `degrade` falls back to when the guard names none.
pub const DEFAULT_TIER: &str = "cheap";

/// The guard as the session stores it:
/// `{sessionId:"budget_<epoch ms>", maxCost, action, degradeToTier?, createdAt}`.
/// `sessionId` and `createdAt` are absent from a tenant's default budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetGuard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// USD.
    #[serde(serialize_with = "serialize_number")]
    pub max_cost: f64,
    pub action: GuardAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degrade_to_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// What happens to completions once the session has spent its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardAction {
    /// Send to the degrade target instead.
    Degrade,
    /// Send nothing; the call fails with [`BudgetGuard::block_text`].
    Block,
    /// Send, with a warning.
    Alert,
}

impl GuardAction {
    /// Every action, in the published order.
    pub const ALL: [GuardAction; 3] =
        [GuardAction::Degrade, GuardAction::Block, GuardAction::Alert];
    /// Their names, in the same order (the `action` input enum).
    pub const NAMES: [&'static str; 3] = ["degrade", "block", "alert"];

    /// `"degrade"`, `"block"` or `"alert"`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Degrade => "degrade",
            GuardAction::Block => "block",
            GuardAction::Alert => "alert",
        }
    }

    /// The action named `name`; `None` for anything else.
    pub fn parse(name: &str) -> Option<GuardAction> {
        GuardAction::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// The host's decision for one completion, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send as is; `warnings` go on the response.
    Send { warnings: Vec<String> },
    /// Send to the degrade target of this tier instead.
    Degrade { tier: String },
    /// Do not send; the message is the tool's error.
    Refuse(String),
}

impl BudgetGuard {
    /// A new guard created at `now_ms` (its `sessionId` is `budget_<now_ms>`).
    pub fn new(
        max_cost: f64,
        action: GuardAction,
        degrade_to_tier: Option<&str>,
        now_ms: u64,
    ) -> Self {
        BudgetGuard {
            session_id: Some(format!("budget_{now_ms}")),
            max_cost,
            action,
            degrade_to_tier: degrade_to_tier.map(str::to_string),
            created_at: Some(clock::iso8601(now_ms)),
        }
    }

    /// The stored guard; `None` when absent or unreadable (no numeric
    /// `maxCost`, or an `action` the host does not enforce).
    pub fn parse(json: Option<&str>) -> Option<Self> {
        json.and_then(|j| serde_json::from_str(j).ok())
    }

    /// [`BudgetGuard::parse`] over parsed JSON.
    pub fn from_value(value: &Value) -> Option<Self> {
        Self::deserialize(value).ok()
    }

    /// The JSON stored under `budget-guard`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// `remaining = maxCost − spent` (may be negative).
    pub fn remaining(&self, spent: f64) -> f64 {
        self.max_cost - spent
    }

    /// `roundCost(max(0, maxCost − spent))`: the remaining budget as outputs show it.
    pub fn remaining_shown(&self, spent: f64) -> f64 {
        round_cost(self.remaining(spent).max(0.0))
    }

    /// `exceeded = remaining ≤ 0`.
    pub fn exceeded(&self, spent: f64) -> bool {
        self.remaining(spent) <= 0.0
    }

    /// The tier `degrade` sends to: `degradeToTier`, else [`DEFAULT_TIER`].
    pub fn tier(&self) -> &str {
        self.degrade_to_tier.as_deref().unwrap_or(DEFAULT_TIER)
    }

    /// The host's decision before sending a completion, given what the
    /// session has spent.
    pub fn decide(&self, spent: f64) -> Decision {
        if !self.exceeded(spent) {
            return Decision::Send { warnings: vec![] };
        }
        match self.action {
            GuardAction::Block => Decision::Refuse(self.block_text(spent)),
            GuardAction::Alert => Decision::Send {
                warnings: vec![self.alert_text(spent)],
            },
            GuardAction::Degrade => Decision::Degrade {
                tier: self.tier().to_owned(),
            },
        }
    }

    /// The refusal text, also used by tools that refuse on their own
    /// (`test_combo` refuses for `degrade` too: redirecting a test defeats it).
    pub fn block_text(&self, spent: f64) -> String {
        format!(
            "Budget guard blocked the request: session spend {} USD reached the limit {} USD (action={}).",
            usd(spent),
            usd(self.max_cost),
            self.action.as_str()
        )
    }

    /// The warning an `alert` guard puts on every completion once exceeded.
    pub fn alert_text(&self, spent: f64) -> String {
        format!(
            "Budget guard alert: session spend {} USD exceeds the limit {} USD.",
            usd(spent),
            usd(self.max_cost)
        )
    }

    /// The warning on the response that used up the budget (no guard action yet).
    pub fn reached_text(&self, spent: f64) -> String {
        format!(
            "Budget limit reached: session spend {} USD of {} USD.",
            usd(spent),
            usd(self.max_cost)
        )
    }
}

/// The warning when a completion was sent to the degrade target.
pub fn degraded_text(original: &str, target: &str, tier: &str) -> String {
    format!("Budget guard degraded the request from \"{original}\" to \"{target}\" (tier {tier}).")
}

/// The target named in a [`degraded_text`] warning about `original`; `None`
/// when `warning` is not one.
pub fn degrade_target_in(warning: &str, original: &str) -> Option<String> {
    let prefix = format!("Budget guard degraded the request from \"{original}\" to \"");
    let rest = warning.strip_prefix(&prefix)?;
    let end = rest.rfind("\" (tier ")?;
    Some(rest[..end].to_string())
}

/// The refusal when no combo fits the tier.
pub fn no_target_text(tier: &str) -> String {
    format!(
        "Budget guard could not degrade to tier \"{tier}\": no matching combo; request not sent."
    )
}

/// The degrade target among the gateway's combos: `free` is the first
/// active combo named like "free" or whose step providers all contain
/// "free"; `cheap` is the active combo whose first step has the lowest known
/// unit price, else the `free` rule.
pub fn degrade_target(
    tier: &str,
    combos: &Value,
    pricing: Option<&Value>,
    providers: &Providers,
) -> Option<String> {
    let active: Vec<&Value> = combos_of(combos)
        .iter()
        .filter(|c| combo_enabled(c))
        .collect();
    let free = || {
        active.iter().copied().find(|c| {
            let steps = combo_steps(c);
            combo_name(c).is_some_and(|name| name.to_lowercase().contains("free"))
                || (!steps.is_empty()
                    && steps.iter().all(|s| {
                        model_provider(s).is_some_and(|p| p.to_lowercase().contains("free"))
                    }))
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
    chosen
        .and_then(combo_name)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guard(action: &str, max: f64) -> BudgetGuard {
        BudgetGuard::parse(Some(
            &json!({"sessionId":"budget_1","maxCost":max,"action":action,"createdAt":"x"})
                .to_string(),
        ))
        .unwrap()
    }

    #[test]
    fn decisions() {
        assert_eq!(
            guard("block", 0.01).decide(0.0000285),
            Decision::Send { warnings: vec![] }
        );
        assert_eq!(
            guard("block", 0.00002).decide(0.0000285),
            Decision::Refuse("Budget guard blocked the request: session spend 0.0000285 USD reached the limit 0.00002 USD (action=block).".into())
        );
        match guard("alert", 0.0).decide(0.0) {
            Decision::Send { warnings } => assert_eq!(
                warnings,
                ["Budget guard alert: session spend 0 USD exceeds the limit 0 USD."]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            guard("degrade", 0.0).decide(1.0),
            Decision::Degrade {
                tier: "cheap".into()
            }
        );
        assert!(BudgetGuard::parse(Some("{\"maxCost\":1,\"action\":\"explode\"}")).is_none());
        assert!(BudgetGuard::parse(Some("{\"maxCost\":\"1\",\"action\":\"block\"}")).is_none());
        assert!(BudgetGuard::parse(None).is_none());
    }

    #[test]
    fn stored_form_round_trips() {
        let g = BudgetGuard::new(0.01, GuardAction::Block, None, 1_795_648_370_000);
        assert_eq!(
            g.to_value().to_string(),
            r#"{"sessionId":"budget_1795648370000","maxCost":0.01,"action":"block","createdAt":"2026-11-25T23:12:50.000Z"}"#
        );
        assert_eq!(
            BudgetGuard::parse(Some(&g.to_value().to_string())),
            Some(g.clone())
        );
        let tiered = BudgetGuard::new(2.0, GuardAction::Degrade, Some("free"), 1);
        assert_eq!(tiered.to_value()["degradeToTier"], "free");
        assert_eq!(tiered.to_value()["maxCost"].to_string(), "2");
        assert_eq!(tiered.tier(), "free");
        // A tenant's default budget has neither sessionId nor createdAt.
        let tenant = BudgetGuard::from_value(&json!({"maxCost": 1, "action": "alert"})).unwrap();
        assert_eq!((tenant.session_id, tenant.created_at), (None, None));
        assert_eq!(GuardAction::parse("alert"), Some(GuardAction::Alert));
        assert_eq!(GuardAction::parse("Alert"), None);
        assert_eq!(
            GuardAction::NAMES,
            GuardAction::ALL.map(GuardAction::as_str)
        );
    }

    #[test]
    fn remaining_and_texts() {
        let g = guard("degrade", 0.01);
        assert!(!g.exceeded(0.0099));
        assert!(g.exceeded(0.01));
        assert_eq!(g.remaining_shown(0.0000285), 0.0099715);
        assert_eq!(g.remaining_shown(1.0), 0.0);
        assert_eq!(
            g.block_text(0.0100000001),
            "Budget guard blocked the request: session spend 0.0100000001 USD reached the limit 0.01 USD (action=degrade)."
        );
        assert_eq!(
            g.reached_text(0.0100000001),
            "Budget limit reached: session spend 0.0100000001 USD of 0.01 USD."
        );
        assert_eq!(
            no_target_text("free"),
            "Budget guard could not degrade to tier \"free\": no matching combo; request not sent."
        );
    }

    #[test]
    fn the_degrade_warning_names_its_target() {
        let warning = degraded_text("coding-fast", "free-tier", "free");
        assert_eq!(
            warning,
            "Budget guard degraded the request from \"coding-fast\" to \"free-tier\" (tier free)."
        );
        assert_eq!(
            degrade_target_in(&warning, "coding-fast").as_deref(),
            Some("free-tier")
        );
        assert_eq!(degrade_target_in(&warning, "other"), None);
        assert_eq!(degrade_target_in("second", "coding-fast"), None);
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
        assert_eq!(
            degrade_target("cheap", &combos(), Some(&pricing), &providers).as_deref(),
            Some("cheap-one")
        );
        assert_eq!(
            degrade_target("free", &combos(), Some(&pricing), &providers).as_deref(),
            Some("free-tier")
        );
        // No prices known: cheap falls back to the free rule.
        assert_eq!(
            degrade_target("cheap", &combos(), None, &providers).as_deref(),
            Some("free-tier")
        );
        assert_eq!(
            degrade_target("free", &json!({"combos":[]}), None, &providers),
            None
        );
    }
}
