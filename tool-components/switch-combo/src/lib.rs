//! `omniroute_switch_combo` (docs/tools/switch_combo.md).
//!
//! `PUT /api/combos/{id}` takes only the id; the tool also accepts a name by
//! resolving it against `GET /api/combos` first (id, then name). The result
//! leads with `id`, `name` and the computed `enabled`, followed by the
//! gateway's updated record in its own key order.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::combos::{combo_enabled, combo_id, combo_name, resolve_combo};
use omniroute_tool_sdk::{
    Annotations, Ctx, Gateway, Method, Request, Tool, ToolDescription, ToolError, schema,
};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct SwitchCombo;

omniroute_tool_sdk::export_tool!(SwitchCombo);

pub use omniroute_tool_sdk::combos::COMBOS;

/// Writes gateway state, the same write twice is the same state, and it only
/// switches routing on or off (nothing is deleted).
pub const ANNOTATIONS: Annotations = Annotations {
    read_only_hint: false,
    destructive_hint: false,
    idempotent_hint: true,
    open_world_hint: false,
};

impl Tool for SwitchCombo {
    fn describe() -> ToolDescription {
        ToolDescription::new(
            "omniroute_switch_combo",
            "Switch combo on/off",
            "Activates or deactivates a combo for routing",
            &["write:combos"],
            ANNOTATIONS,
        )
        .input_schema(schema::input(
            json!({
                "comboId": { "type": "string", "description": "ID of the combo to activate/deactivate" },
                "active": { "type": "boolean", "description": "Whether to enable or disable the combo" },
            }),
            &["comboId", "active"],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let combo_id = args::string(&input, "comboId")?;
        let active = args::boolean(&input, "active")?;
        switch_combo(cx.gateway, combo_id, active)
    }
}

/// The path of `PUT /api/combos/<id>`.
pub fn combo_path(id: &str) -> String {
    format!("{COMBOS}/{id}")
}

/// Resolves the combo, switches it, and shapes the gateway's answer.
pub fn switch_combo(gw: &dyn Gateway, id_or_name: &str, active: bool) -> Result<Value, ToolError> {
    let combo = resolve_combo(gw, id_or_name)?;
    let id = combo_id(&combo).ok_or_else(|| {
        ToolError::new(format!(
            "Combo \"{id_or_name}\" has no id in GET {COMBOS}, and the gateway switches combos by id; check the combo in the OmniRoute dashboard"
        ))
    })?;
    let request =
        Request::new(Method::Put, combo_path(id)).json_body(&json!({ "isActive": active }));
    let updated = gw.send_json(&request)?;
    Ok(shape(&updated, &combo))
}

/// `id`, `name`, `enabled`, then every other field of the updated record in
/// the gateway's order. `id` and `name` come from the record, or from the
/// resolved combo should the answer lack them.
fn shape(updated: &Value, resolved: &Value) -> Value {
    let source = if updated["id"].is_string() {
        updated
    } else {
        resolved
    };
    let mut out = Map::new();
    out.insert("id".into(), json!(combo_id(source)));
    out.insert("name".into(), json!(combo_name(source)));
    out.insert("enabled".into(), json!(combo_enabled(updated)));
    if let Some(fields) = updated.as_object() {
        for (key, value) in fields {
            if !out.contains_key(key) {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

fn output_schema() -> Value {
    schema::object(
        json!({
            "id": schema::typed("string", "Combo id"),
            "name": schema::nullable("string", "Combo name; null when the gateway sent none"),
            "enabled": schema::typed("boolean", "Whether the combo now routes (false only when isActive is false)"),
            // The rest is the gateway's record, copied as-is (not constrained).
            "models": { "description": "The combo's steps, as the gateway stores them" },
            "strategy": { "description": "Routing strategy" },
            "isActive": { "description": "The gateway's stored flag, now set" },
        }),
        &["id", "name", "enabled"],
    )
}

#[cfg(test)]
mod tests;
