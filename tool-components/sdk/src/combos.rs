//! Combo records and steps: the contract's reading rules
//! ([`omniroute_tool_contract::combos`], re-exported here) plus resolving a
//! combo a tool was asked about against `GET /api/combos`.

pub use omniroute_tool_contract::combos::*;

use serde_json::Value;

use crate::gateway::Gateway;
use crate::tool::ToolError;

/// `Combo not found: "<comboId>"`: the error of every tool that takes a
/// combo id or name the gateway does not know.
pub fn combo_not_found(id_or_name: &str) -> ToolError {
    ToolError::new(combo_not_found_text(id_or_name))
}

/// Reads `GET /api/combos` and resolves `id_or_name` with [`find_combo`].
/// The gateway cannot tell an unknown combo from one without traffic, so
/// tools resolve against the combo list first. A failed read is the
/// gateway's error text; an unknown combo is [`combo_not_found`].
pub fn resolve_combo(gw: &dyn Gateway, id_or_name: &str) -> Result<Value, ToolError> {
    let response = gw.get_json(COMBOS, &[])?;
    find_combo(combos_of(&response), id_or_name)
        .cloned()
        .ok_or_else(|| combo_not_found(id_or_name))
}
