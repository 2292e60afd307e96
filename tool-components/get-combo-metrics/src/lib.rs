//! `omniroute_get_combo_metrics` (docs/tools/get_combo_metrics.md).
//!
//! The gateway's combo metrics are keyed by combo **name** and answer an id
//! or an unknown name exactly like a combo without traffic. So the tool first
//! resolves the argument (id, then name) against `GET /api/combos`, fails
//! clearly on an unknown combo, and only then asks
//! `GET /api/combos/metrics?combo=<name>`.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::combos::{combo_id, combo_name, resolve_combo};
use omniroute_tool_sdk::{Ctx, Gateway, Tool, ToolDescription, ToolError, schema};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct GetComboMetrics;

omniroute_tool_sdk::export_tool!(GetComboMetrics);

pub use omniroute_tool_sdk::combos::COMBOS;
pub use omniroute_tool_sdk::combos::COMBO_METRICS;

impl Tool for GetComboMetrics {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_get_combo_metrics",
            "Combo metrics",
            "Returns detailed performance metrics for a specific combo",
            &["read:combos"],
        )
        .input_schema(schema::input(
            json!({
                "comboId": { "type": "string", "description": "ID of the combo to get metrics for" },
            }),
            &["comboId"],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let combo_id = args::string(&input, "comboId")?;
        get_combo_metrics(cx.gateway, combo_id)
    }
}

/// Resolves the combo, then reads its metrics. Both reads are required: a
/// failure of either is the tool's error.
pub fn get_combo_metrics(gw: &dyn Gateway, id_or_name: &str) -> Result<Value, ToolError> {
    let combo = resolve_combo(gw, id_or_name)?;
    let name = combo_name(&combo).ok_or_else(|| {
        ToolError::new(format!(
            "Combo \"{id_or_name}\" has no name in GET /api/combos, and the gateway keeps combo metrics by name; check the combo in the OmniRoute dashboard"
        ))
    })?;
    let response = gw.get_json(COMBO_METRICS, &[("combo", name)])?;

    let mut out = Map::new();
    out.insert("id".into(), json!(combo_id(&combo)));
    out.insert("name".into(), json!(name));
    // `{"metrics":{…}}`, or `{"metrics":null,"message":"No metrics for this combo yet"}`.
    let metrics = &response["metrics"];
    out.insert(
        "metrics".into(),
        if metrics.is_object() {
            metrics.clone()
        } else {
            Value::Null
        },
    );
    if let Some(message) = response["message"].as_str() {
        out.insert("message".into(), json!(message));
    }
    Ok(Value::Object(out))
}

fn output_schema() -> Value {
    schema::object(
        json!({
            "id": schema::nullable("string", "Combo id; null when the gateway sent none"),
            "name": schema::typed("string", "Combo name (the gateway keys metrics by name)"),
            "metrics": schema::nullable(
                "object",
                "The gateway's in-memory metrics since its last start: totalRequests, totalSuccesses, totalFailures, totalFallbacks, totalLatencyMs, strategy, lastUsedAt, intentCounts, byModel, byTarget, avgLatencyMs, successRate and fallbackRate (integer percentages); null when the combo has had no traffic",
            ),
            "message": schema::typed("string", "The gateway's note, e.g. \"No metrics for this combo yet\"; present only when it sent one"),
        }),
        &["id", "name", "metrics"],
    )
}

#[cfg(test)]
mod tests;
