//! The typed `state` import (`omniroute:tool@0.1.1`): the same session state
//! as the key-value `session` import of 0.1.0 ([`super::session`]), as WIT
//! records instead of magic keys and JSON, so the host and the SDK share
//! types, not key names and shapes. Conversions between the contract's types
//! and the WIT records live here and nowhere else on the host.

use super::session::{SessionError, SessionState};
use crate::runtime::bindings::state;
use crate::session::budget::{BudgetGuard, GuardAction};
use crate::session::ledger::{Annotation, LedgerEntry};
use omniroute_tool_contract::budget::TIERS;

impl state::Host for SessionState {
    async fn session_start(&mut self) -> String {
        match SessionState::session_start(self).await {
            Ok(start) => start,
            Err(e) => {
                // The WIT function cannot fail: the tool sees "now", the log says why.
                tracing::warn!(tool = %self.tool, error = %e, "session start could not be read");
                crate::session::iso8601(std::time::SystemTime::now())
            }
        }
    }

    async fn ledger(&mut self) -> Vec<state::LedgerEntry> {
        self.or_logged("ledger", SessionState::ledger(self).await)
            .unwrap_or_default()
            .into_iter()
            .map(entry_to_wit)
            .collect()
    }

    async fn find_request(&mut self, request_id: String) -> Option<state::LedgerEntry> {
        self.or_logged("routing index", SessionState::find_request(self, &request_id).await)
            .flatten()
            .map(entry_to_wit)
    }

    async fn guard(&mut self) -> Option<state::BudgetGuard> {
        let json = self.or_logged("budget guard", self.guard_json().await).flatten();
        BudgetGuard::parse(json.as_deref()).map(guard_to_wit)
    }

    async fn set_guard(&mut self, guard: state::BudgetGuard) -> Result<(), String> {
        let guard = guard_from_wit(guard)?;
        self.set_guard_json(&guard.to_value().to_string()).await.map_err(|e: SessionError| e.to_string())
    }

    async fn handle(&mut self) -> Option<String> {
        self.or_logged("handle", SessionState::handle(self).await).flatten()
    }

    async fn annotate(&mut self, note: state::Annotation) -> Result<(), String> {
        let note = Annotation {
            request_id: note.request_id,
            combo: note.combo,
            role: note.role,
            fallbacks_triggered: note.fallbacks_triggered,
            degraded_from: note.degraded_from,
        };
        SessionState::annotate(self, &note).await
    }

    async fn get(&mut self, key: String) -> Option<String> {
        self.or_logged("private value", self.private_value(&key).await).flatten()
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), String> {
        self.set_private_value(&key, &value).await.map_err(|e| e.to_string())
    }
}

impl SessionState {
    /// The value, or `None` with a warning: reads of the `state` import
    /// cannot fail, so the tool sees "absent" and the log says why.
    fn or_logged<T>(&self, what: &str, result: Result<T, crate::state::StoreError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::warn!(tool = %self.tool, what, error = %e, "session state read failed");
                None
            }
        }
    }
}

fn entry_to_wit(e: LedgerEntry) -> state::LedgerEntry {
    state::LedgerEntry {
        request_id: e.request_id,
        sent_at: e.sent_at,
        received_at: e.received_at,
        origin: e.origin,
        requested_model: e.requested_model,
        combo: e.combo,
        role: e.role,
        status: e.status,
        success: e.success,
        provider: e.provider,
        model: e.model,
        cost: e.cost,
        tokens_in: e.tokens_in,
        tokens_out: e.tokens_out,
        latency_ms: e.latency_ms,
        cache: e.cache,
        fallbacks_triggered: e.fallbacks_triggered,
        degraded_from: e.degraded_from,
        error: e.error,
    }
}

fn guard_to_wit(g: BudgetGuard) -> state::BudgetGuard {
    state::BudgetGuard {
        session_id: g.session_id,
        max_cost: g.max_cost,
        action: match g.action {
            GuardAction::Degrade => state::GuardAction::Degrade,
            GuardAction::Block => state::GuardAction::Block,
            GuardAction::Alert => state::GuardAction::Alert,
        },
        degrade_to_tier: g.degrade_to_tier,
        created_at: g.created_at,
    }
}

/// The guard a tool asks for, checked as the host will enforce it.
fn guard_from_wit(g: state::BudgetGuard) -> Result<BudgetGuard, String> {
    if !(g.max_cost.is_finite() && g.max_cost >= 0.0) {
        return Err(format!("max-cost must be a finite number of USD ≥ 0, got {}", g.max_cost));
    }
    if let Some(tier) = &g.degrade_to_tier
        && !TIERS.contains(&tier.as_str())
    {
        return Err(format!("degrade-to-tier must be one of {}, got {tier:?}", TIERS.join(", ")));
    }
    Ok(BudgetGuard {
        session_id: g.session_id,
        max_cost: g.max_cost,
        action: match g.action {
            state::GuardAction::Degrade => GuardAction::Degrade,
            state::GuardAction::Block => GuardAction::Block,
            state::GuardAction::Alert => GuardAction::Alert,
        },
        degrade_to_tier: g.degrade_to_tier,
        created_at: g.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_guard(max_cost: f64, tier: Option<&str>) -> state::BudgetGuard {
        state::BudgetGuard {
            session_id: Some("sh_x".into()),
            max_cost,
            action: state::GuardAction::Degrade,
            degrade_to_tier: tier.map(str::to_owned),
            created_at: None,
        }
    }

    #[test]
    fn guards_round_trip_and_bad_ones_are_refused_with_the_field() {
        let g = guard_from_wit(wit_guard(0.5, Some("free"))).unwrap();
        assert_eq!(g.to_value().to_string(), r#"{"sessionId":"sh_x","maxCost":0.5,"action":"degrade","degradeToTier":"free"}"#);
        assert_eq!(guard_from_wit(guard_to_wit(g.clone())).unwrap(), g, "round trip");
        assert!(guard_from_wit(wit_guard(-1.0, None)).unwrap_err().starts_with("max-cost"));
        assert!(guard_from_wit(wit_guard(f64::NAN, None)).unwrap_err().starts_with("max-cost"));
        assert!(guard_from_wit(wit_guard(1.0, Some("gold"))).unwrap_err().starts_with("degrade-to-tier"));
    }
}
