//! What the `gateway` import checks before a completion leaves the host and
//! books after it answers: the bucket's budget guard (block, degrade,
//! alert) and a reservation of the completion's worst case against the
//! guard and the principal's spend cap, settled with the real cost.

use super::CallContext;
use crate::gateway::{GatewayError, GatewayRequest, GatewayResponse};
use crate::runtime::clock::CallClock;
use crate::session::budget::{self, BudgetGuard, Decision, GuardAction};
use crate::session::spend::{self, Estimate, Reservation};
use crate::session::ledger::LedgerEntry;
use crate::state::{LedgerId, Refusal, SpendLimits, StoreError};
use crate::telemetry::metrics;
use omniroute_tool_contract::coerce::usd;

/// A completion the host lets go: the guard it ran under, what the bucket
/// had spent (settled and reserved) before it, the warnings and degrade to
/// put on its answer, and its reservation (none when neither a guard nor a
/// cap limits the principal: then only the real cost is booked).
pub(crate) struct Admitted {
    pub(crate) guard: Option<(BudgetGuard, f64)>,
    pub(crate) warnings: Vec<String>,
    pub(crate) degraded_from: Option<String>,
    reservation: Option<Reservation>,
}

impl Admitted {
    /// Records the completion (`entry`; `None` when nothing left the host)
    /// and books its real cost (the entry's cost; an outcome without one
    /// settles a reservation in full) in one store transaction. Returns the
    /// entry's id and the entry.
    pub(crate) async fn finish(
        &mut self,
        ctx: &CallContext,
        result: &Result<GatewayResponse, GatewayError>,
        entry: Option<LedgerEntry>,
    ) -> (Option<LedgerId>, Option<LedgerEntry>) {
        let actual = spend::settled_cost(result, entry.as_ref().and_then(|e| e.cost));
        let reserved = self.reservation.as_ref().map(Reservation::amount);
        let bucket = ctx.bucket();
        let (id, entry, charged) =
            spend::finish_completion(&ctx.store, bucket.principal, bucket.key, self.reservation.take(), entry, actual).await;
        match (charged, reserved, actual) {
            (Err(e), _, _) => {
                tracing::error!(error = %e, ?reserved, "a completion's cost could not be booked; a reservation is settled in full when it is stale");
            }
            (Ok(_), Some(amount), Some(real)) if real > amount + 1e-12 => {
                tracing::warn!(reserved = amount, real, "a completion cost more than its reservation (overshoot)");
            }
            (Ok(_), _, _) => {}
        }
        (id, entry)
    }
}

/// The guard, the degrade and the reservation of one completion, or the
/// refusal text for the agent (nothing was sent).
pub(crate) async fn admit(ctx: &CallContext, clock: &CallClock, req: &mut GatewayRequest) -> Result<Admitted, String> {
    let bucket = ctx.bucket();
    let unavailable = |e: StoreError| {
        format!("Budget could not be checked: the session state is unavailable ({e}); request not sent. Retry shortly.")
    };
    let state = ctx.store.open_bucket(&bucket.principal, &bucket.key).await.map_err(unavailable)?;
    let json = state.budget_guard.clone().or_else(|| ctx.default_guard.as_deref().map(str::to_owned));
    let guard = BudgetGuard::parse(json.as_deref());
    let mut warnings = Vec::new();
    let mut degraded_from = None;
    let mut spent = state.spent + state.reserved;
    if let Some(g) = &guard {
        // Entries recorded before reservations existed count too.
        let ledger = ctx.store.ledger(&bucket.principal, &bucket.key).await.map_err(unavailable)?;
        let in_ledger: f64 = ledger.iter().filter_map(|r| r.entry.cost).sum();
        spent = state.spent.max(in_ledger) + state.reserved;
        match g.decide(spent) {
            Decision::Send { warnings: w } => warnings = w,
            Decision::Refuse(message) => return Err(metrics::budget_blocked(&bucket.principal, with_in_flight(message, state.reserved))),
            Decision::Degrade { tier } => match budget::degrade(&ctx.broker, clock.request_budget(), req, &tier)
                .await
                .map_err(|message| metrics::budget_blocked(&bucket.principal, message))?
            {
                Some(original) => {
                    let target = spend::requested_model(req).unwrap_or_default();
                    warnings.push(budget::degraded_text(&original, &target, &tier));
                    degraded_from = Some(original);
                    metrics::budget(&bucket.principal, metrics::BudgetAction::Degraded);
                }
                None => {}
            },
        }
    }
    let blocking = guard.as_ref().filter(|g| g.action == GuardAction::Block).map(|g| g.max_cost);
    let limits = SpendLimits { bucket_max: blocking, cap: ctx.spend.cap };
    let amount = if guard.is_none() && limits.cap.is_none() {
        // Nothing limits this principal: book the real cost only.
        0.0
    } else {
        match spend::worst_case(&ctx.broker, clock.request_budget(), req, &ctx.spend).await {
            Estimate::Priced(usd) => usd,
            Estimate::Unpriced(models) => match (ctx.spend.unpriced_completion_usd, limits.cap) {
                (Some(ceiling), _) => ceiling,
                (None, Some(_)) => return Err(no_price_text(&models)),
                // A guard alone: only what was settled and reserved counts.
                (None, None) => 0.0,
            },
        }
    };
    let reservation = if guard.is_none() && limits.cap.is_none() {
        // Nothing to check and nothing to hold: the real cost is booked
        // when the completion ends, in the transaction that records it.
        None
    } else {
        let reserved = Reservation::reserve(&ctx.store, bucket.principal.clone(), &bucket.key, amount, limits).await.map_err(|e| match e {
            StoreError::Refused(refusal) => metrics::budget_blocked(&bucket.principal, refusal_text(&refusal, guard.as_ref(), amount)),
            other => unavailable(other),
        })?;
        Some(reserved)
    };
    Ok(Admitted { guard: guard.map(|g| (g, spent)), warnings, degraded_from, reservation })
}

fn with_in_flight(message: String, reserved: f64) -> String {
    if reserved > 0.0 {
        format!("{message} This counts {} USD reserved by completions still in flight.", usd(reserved))
    } else {
        message
    }
}

/// Why a reservation was refused, naming the limit and its figures, and what
/// the agent can do next.
fn refusal_text(refusal: &Refusal, guard: Option<&BudgetGuard>, amount: f64) -> String {
    match refusal {
        Refusal::Guard { max, spent, reserved } => {
            let text = match guard {
                Some(g) => g.block_text(spent + reserved),
                None => format!("Budget guard blocked the request: session spend {} USD reached the limit {} USD.", usd(spent + reserved), usd(*max)),
            };
            format!(
                "{text} This counts {} USD reserved by completions still in flight. Wait for them to finish, or raise the guard with omniroute_set_budget_guard.",
                usd(*reserved)
            )
        }
        Refusal::Cap { cap, period_key, spent, reserved } => format!(
            "Spend cap reached: this caller may spend {} USD per {} ({period_key}, UTC); {} USD is spent and {} USD reserved by completions in flight, and this completion may cost up to {} USD. Request not sent. Set max_tokens lower or pick a cheaper model, wait for the next period, or ask the operator to raise spend_cap.",
            usd(cap.amount),
            cap.period.as_str(),
            usd(*spent),
            usd(*reserved),
            usd(amount)
        ),
    }
}

fn no_price_text(models: &[String]) -> String {
    format!(
        "Spend cap: the worst-case cost of this completion is unknown because the gateway knows no price for {}; request not sent. Pick a model with a price in the gateway (GET /api/pricing), or ask the operator to set unpriced_completion_usd (tenants file) or OMNIROUTE_MCP_UNPRICED_COMPLETION_USD (stdio).",
        models.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Period, SpendCap};

    #[test]
    fn refusals_name_the_limit_and_the_next_step() {
        let cap = SpendCap { amount: 0.105, period: Period::Day };
        let text = refusal_text(&Refusal::Cap { cap, period_key: "day:2026-12-07".into(), spent: 0.1, reserved: 0.0 }, None, 0.01);
        assert!(text.starts_with("Spend cap reached: this caller may spend 0.105 USD per day (day:2026-12-07, UTC)"), "{text}");
        assert!(text.contains("ask the operator to raise spend_cap"), "{text}");
        let text = no_price_text(&["x/y".into()]);
        assert!(text.contains("\"x/y\"") && text.contains("unpriced_completion_usd"), "{text}");
    }
}
