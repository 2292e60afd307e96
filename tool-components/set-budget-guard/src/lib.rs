//! `omniroute_set_budget_guard` (docs/tools/set_budget_guard.md).
//!
//! Replaces this MCP session's budget guard in the host (`budget-guard`
//! session key, writable only by a call holding `write:budget`) and reports
//! it against what the session has really spent: the sum of the costs of
//! the completions in the host's ledger. No gateway call. The host enforces
//! the guard on every completion it brokers (docs/architecture.md#budget-guard).

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::budget::{self, GuardAction};
use omniroute_tool_sdk::ledger::{self, BudgetGuard};
use omniroute_tool_sdk::{
    Annotations, Ctx, Session, Tool, ToolDescription, ToolError, clock, coerce, schema,
};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct SetBudgetGuard;

omniroute_tool_sdk::export_tool!(SetBudgetGuard);

pub const ACTIONS: &[&str] = &GuardAction::NAMES;
pub const TIERS: &[&str] = budget::TIERS;
pub const STATUSES: &[&str] = &["active", "warning", "exceeded"];

/// Changes host state only (no gateway call): not read-only, not
/// destructive, not idempotent (a stateless call without `sessionId` mints a new session), closed world.
pub const ANNOTATIONS: Annotations = Annotations {
    read_only_hint: false,
    destructive_hint: false,
    idempotent_hint: false,
    open_world_hint: false,
};

impl Tool for SetBudgetGuard {
    fn describe() -> ToolDescription {
        ToolDescription::new(
            "omniroute_set_budget_guard",
            "Set session budget guard",
            "Sets a session budget limit with configurable action when exceeded (degrade/block/alert). Returns sessionId, a \
             handle: pass it to route_request, test_combo, cost_report, get_session_snapshot and explain_route so they use \
             this guard and ledger (needed by stateless clients; works from any connection or server node), and back here \
             to change this guard",
            &["write:budget"],
            ANNOTATIONS,
        )
        .input_schema(schema::input(
            json!({
                "maxCost": { "type": "number", "description": "Maximum cost in USD for this session" },
                "action": { "type": "string", "enum": ACTIONS, "description": "Action when budget is exceeded" },
                "degradeToTier": { "description": "If action=degrade, which tier to fall back to", "type": "string", "enum": TIERS },
                "sessionId": schema::session_id(),
            }),
            &["maxCost", "action"],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let max_cost = input["maxCost"]
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                ToolError::invalid_input("maxCost must be a number of USD, 0 or more")
            })?;
        let action = args::one_of(&input, "action", ACTIONS)?;
        let tier = args::optional_one_of(&input, "degradeToTier", TIERS)?;
        set_budget_guard(cx.session, max_cost, action, tier, clock::now_ms())
    }
}

/// Writes the new guard and reports it. A refused write (no `write:budget`
/// in the host's view) is the tool's error, with the host's reason.
pub fn set_budget_guard(
    session: &dyn Session,
    max_cost: f64,
    action: &str,
    tier: Option<&str>,
    now_ms: u64,
) -> Result<Value, ToolError> {
    let guard_action = GuardAction::parse(action)
        .ok_or_else(|| ToolError::invalid_input(format!("action must be one of {}", ACTIONS.join(", "))))?;
    let mut guard = BudgetGuard::new(max_cost, guard_action, tier, now_ms);
    // The host's handle for this session (minted now for a stateless call);
    // an older host has none, and the guard keeps its `budget_<ms>` id.
    if let Some(handle) = session.handle() {
        guard.session_id = Some(handle);
    }
    session
        .set_budget_guard(&guard)
        .map_err(|reason| {
            ToolError::new(format!(
                "The host did not accept the budget guard: {reason}"
            ))
        })?;
    let spent = ledger::spent(&ledger::entries(session));
    let remaining = guard.remaining(spent);
    let status = if remaining <= 0.0 {
        "exceeded"
    } else if remaining < 0.2 * max_cost {
        "warning"
    } else {
        "active"
    };
    let mut out = Map::new();
    out.insert("sessionId".into(), json!(guard.session_id));
    out.insert("budgetTotal".into(), coerce::number(guard.max_cost));
    out.insert(
        "budgetSpent".into(),
        coerce::number(coerce::round_cost(spent)),
    );
    out.insert(
        "budgetRemaining".into(),
        coerce::number(guard.remaining_shown(spent)),
    );
    out.insert("action".into(), json!(action));
    if let Some(tier) = tier {
        out.insert("degradeToTier".into(), json!(tier));
    }
    out.insert("status".into(), json!(status));
    Ok(Value::Object(out))
}

fn output_schema() -> Value {
    schema::object(
        json!({
            "sessionId": schema::typed("string", "The session handle (sh_...): pass it as sessionId to the other session tools so they use this guard and ledger"),
            "budgetTotal": schema::typed("number", "maxCost, USD"),
            "budgetSpent": schema::typed("number", "What this session's completions have cost so far, USD"),
            "budgetRemaining": schema::typed("number", "maxCost minus spent, at least 0, USD"),
            "action": { "type": "string", "enum": ACTIONS, "description": "What the host does to completions once the budget is exceeded" },
            "degradeToTier": { "type": "string", "enum": TIERS, "description": "Present only when given: the tier degrade falls back to (default cheap)" },
            "status": { "type": "string", "enum": STATUSES, "description": "exceeded when nothing remains, warning under 20% remaining, else active" },
        }),
        &[
            "sessionId",
            "budgetTotal",
            "budgetSpent",
            "budgetRemaining",
            "action",
            "status",
        ],
    )
}

#[cfg(test)]
mod tests;
