//! The host-owned session state tools read (WIT `session`, spec C.0.7):
//! the session start, the ledger of completions, the budget guard, and the
//! budget texts of spec C.0.8 that several tools word the same way.
//!
//! The host records every completion it brokers in the ledger and enforces
//! the guard; tools only read them (and `set_budget_guard` writes the guard).

use serde_json::{Map, Value, json};

use crate::coerce::{self, js_number, round_cost};
use crate::tool::Session;

/// `session-start`: JSON string, ISO time the MCP session started.
pub const SESSION_START: &str = "session-start";
/// `ledger`: JSON array of the completions brokered in this session.
pub const LEDGER: &str = "ledger";
/// `budget-guard`: JSON object or absent; settable only with `write:budget`.
pub const BUDGET_GUARD: &str = "budget-guard";
/// `ledger-annotation`: `{requestId, combo, role, fallbacksTriggered,
/// degradedFrom}` adds those facts to the ledger entry of a completion sent
/// by the same call.
pub const LEDGER_ANNOTATION: &str = "ledger-annotation";

/// `request:<x-request-id>`: the host's routing index entry of a completion.
pub fn request_key(request_id: &str) -> String {
    format!("request:{request_id}")
}

/// The session's ledger entries; empty when absent or not an array.
pub fn entries(session: &dyn Session) -> Vec<Value> {
    match session.get_json(LEDGER) {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    }
}

/// `spent`: the sum of the numeric `cost` values of ledger entries (C.0.7).
pub fn spent(entries: &[Value]) -> f64 {
    entries.iter().map(|e| coerce::num(&e["cost"], 0.0)).sum()
}

/// A USD amount in a message: JS number formatting after roundCost (C.0.8).
pub fn usd(x: f64) -> String {
    js_number(round_cost(x))
}

/// The session's budget guard (C.0.7):
/// `{sessionId:"budget_<epoch ms>", maxCost, action, degradeToTier?, createdAt}`.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetGuard {
    pub session_id: String,
    /// `maxCost` as stored (a JSON number), so outputs echo it unchanged.
    pub max_cost: Value,
    pub action: String,
    pub degrade_to_tier: Option<String>,
    pub created_at: String,
}

impl BudgetGuard {
    /// A new guard created at `now_ms` (its `sessionId` is `budget_<now_ms>`).
    pub fn new(max_cost: f64, action: &str, degrade_to_tier: Option<&str>, now_ms: u64) -> Self {
        BudgetGuard {
            session_id: format!("budget_{now_ms}"),
            max_cost: coerce::number(max_cost),
            action: action.to_string(),
            degrade_to_tier: degrade_to_tier.map(str::to_string),
            created_at: crate::clock::iso8601(now_ms),
        }
    }

    /// The session's guard; `None` when absent, not JSON, or without a
    /// numeric `maxCost`.
    pub fn read(session: &dyn Session) -> Option<BudgetGuard> {
        Self::from_value(&session.get_json(BUDGET_GUARD)?)
    }

    /// A guard from its JSON; `None` without a numeric `maxCost`.
    pub fn from_value(v: &Value) -> Option<BudgetGuard> {
        v["maxCost"].as_f64().filter(|x| x.is_finite())?;
        Some(BudgetGuard {
            session_id: coerce::str(&v["sessionId"], "").to_string(),
            max_cost: v["maxCost"].clone(),
            action: coerce::str(&v["action"], "").to_string(),
            degrade_to_tier: v["degradeToTier"].as_str().map(str::to_string),
            created_at: coerce::str(&v["createdAt"], "").to_string(),
        })
    }

    /// The JSON the host stores; `degradeToTier` only when given.
    pub fn to_value(&self) -> Value {
        let mut guard = Map::new();
        guard.insert("sessionId".into(), json!(self.session_id));
        guard.insert("maxCost".into(), self.max_cost.clone());
        guard.insert("action".into(), json!(self.action));
        if let Some(tier) = &self.degrade_to_tier {
            guard.insert("degradeToTier".into(), json!(tier));
        }
        guard.insert("createdAt".into(), json!(self.created_at));
        Value::Object(guard)
    }

    pub fn max_cost(&self) -> f64 {
        coerce::num(&self.max_cost, 0.0)
    }

    /// `remaining = maxCost − spent` (may be negative).
    pub fn remaining(&self, spent: f64) -> f64 {
        self.max_cost() - spent
    }

    /// `roundCost(max(0, maxCost − spent))`: the remaining budget as outputs show it.
    pub fn remaining_shown(&self, spent: f64) -> f64 {
        round_cost(self.remaining(spent).max(0.0))
    }

    /// `exceeded = remaining ≤ 0` (C.0.8).
    pub fn exceeded(&self, spent: f64) -> bool {
        self.remaining(spent) <= 0.0
    }

    /// The C.0.8 block text, with `(action=<action>)`.
    pub fn blocked_text(&self, spent: f64, action: &str) -> String {
        format!(
            "Budget guard blocked the request: session spend {} USD reached the limit {} USD (action={action}).",
            usd(spent),
            usd(self.max_cost())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemorySession;

    #[test]
    fn spent_sums_numeric_costs_only() {
        let ledger =
            json!([{"cost": 0.0000285}, {"cost": null}, {"cost": "1"}, {"cost": 0.0000015}]);
        assert_eq!(round_cost(spent(ledger.as_array().unwrap())), 0.00003);
        assert_eq!(spent(&[]), 0.0);
    }

    #[test]
    fn entries_of_a_session() {
        let s = MemorySession::new().with(LEDGER, r#"[{"requestId":"a"}]"#);
        assert_eq!(entries(&s).len(), 1);
        assert!(entries(&MemorySession::new()).is_empty());
        assert!(entries(&MemorySession::new().with(LEDGER, "{}")).is_empty());
        assert_eq!(request_key("r1"), "request:r1");
    }

    #[test]
    fn guard_round_trip_and_texts() {
        let g = BudgetGuard::new(0.01, "block", None, 1_795_648_370_000);
        assert_eq!(
            g.to_value().to_string(),
            r#"{"sessionId":"budget_1795648370000","maxCost":0.01,"action":"block","createdAt":"2026-11-25T23:12:50.000Z"}"#
        );
        let s = MemorySession::new().with(BUDGET_GUARD, &g.to_value().to_string());
        assert_eq!(BudgetGuard::read(&s), Some(g.clone()));
        assert!(!g.exceeded(0.0099));
        assert!(g.exceeded(0.01));
        assert_eq!(g.remaining_shown(0.0000285), 0.0099715);
        assert_eq!(g.remaining_shown(1.0), 0.0);
        assert_eq!(
            g.blocked_text(0.0100000001, "degrade"),
            "Budget guard blocked the request: session spend 0.0100000001 USD reached the limit 0.01 USD (action=degrade)."
        );
        let tiered = BudgetGuard::new(2.0, "degrade", Some("free"), 1);
        assert_eq!(tiered.to_value()["degradeToTier"], "free");
        assert_eq!(tiered.to_value()["maxCost"].to_string(), "2");
        assert_eq!(BudgetGuard::from_value(&json!({"maxCost": "1"})), None);
        assert_eq!(BudgetGuard::read(&MemorySession::new()), None);
    }
}
