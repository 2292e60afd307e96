//! The combo list route_request needs to recognise combo names and to find
//! the served step: `GET /api/combos`, kept up to 30 s in this tool's
//! private session key (SDK `session_cache`) so a burst of completions does
//! not re-read it.

use omniroute_tool_sdk::combos::{COMBOS, combo_id, combo_steps, combo_strategy, combos_of};
use omniroute_tool_sdk::{Ctx, clock, session_cache};
use serde_json::{Value, json};

/// The tool's private session key for the cached combo list.
pub const CACHE_KEY: &str = "combos-cache";

/// The combos, from this session's copy while it is fresh (30 s), else from
/// the gateway (and then kept). `None` when the gateway read failed: callers
/// then know no combos, and say `null` where a combo fact was needed.
pub fn combos(cx: &Ctx<'_>) -> Option<Vec<Value>> {
    combos_at(cx, clock::now_ms())
}

/// [`combos`] at a given time (for tests).
pub fn combos_at(cx: &Ctx<'_>, now_ms: u64) -> Option<Vec<Value>> {
    let cached = session_cache::get_or_read_at(cx.session, CACHE_KEY, now_ms, || {
        let response = cx.gateway.get_json(COMBOS, &[]).ok()?;
        Some(Value::Array(combos_of(&response).iter().map(essentials).collect()))
    })?;
    match cached {
        Value::Array(list) => Some(list),
        _ => None,
    }
}

/// What route_request reads of a combo: identity, strategy and steps.
fn essentials(combo: &Value) -> Value {
    json!({
        "id": combo_id(combo),
        "name": combo["name"],
        "strategy": combo_strategy(combo),
        "models": combo_steps(combo),
    })
}

/// The combo named `name` (exact), if any.
pub fn named<'a>(combos: &'a [Value], name: &str) -> Option<&'a Value> {
    combos.iter().find(|c| c["name"].as_str() == Some(name))
}
