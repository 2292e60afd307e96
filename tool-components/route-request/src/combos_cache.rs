//! The combo list route_request needs to recognise combo names and to find
//! the served step: `GET /api/combos`, kept up to 30 s in this tool's
//! private session key so a burst of completions does not re-read it.

use omniroute_tool_sdk::combos::{COMBOS, combo_id, combo_steps, combo_strategy, combos_of};
use omniroute_tool_sdk::{Ctx, clock};
use serde_json::{Value, json};

/// The tool's private session key for the cached combo list.
pub const CACHE_KEY: &str = "combos-cache";
/// How long a cached combo list is used.
pub const TTL_MS: u64 = 30_000;

/// The combos, from the cache when it is fresh, else from the gateway (and
/// then cached). `None` when the gateway read failed: callers then know no
/// combos, and say `null` where a combo fact was needed.
pub fn combos(cx: &Ctx<'_>) -> Option<Vec<Value>> {
    combos_at(cx, clock::now_ms())
}

/// [`combos`] at a given time (for tests).
pub fn combos_at(cx: &Ctx<'_>, now_ms: u64) -> Option<Vec<Value>> {
    if let Some(cached) = cx.session.get_json(CACHE_KEY) {
        let fresh = cached["fetchedAtMs"]
            .as_u64()
            .is_some_and(|at| at <= now_ms && now_ms - at < TTL_MS);
        if let (true, Some(list)) = (fresh, cached["combos"].as_array()) {
            return Some(list.clone());
        }
    }
    let response = cx.gateway.get_json(COMBOS, &[]).ok()?;
    let list: Vec<Value> = combos_of(&response).iter().map(essentials).collect();
    // A refused write (size limit) only costs a re-read next time.
    let _ = cx
        .session
        .set_json(CACHE_KEY, &json!({ "fetchedAtMs": now_ms, "combos": list }));
    Some(list)
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
