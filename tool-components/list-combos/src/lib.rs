//! `omniroute_list_combos` (docs/tools/list_combos.md).
//!
//! Lists the gateway's combos with their steps normalised (docs/contract.md#combo-steps). With
//! `includeMetrics`, the in-memory metrics of `GET /api/combos/metrics` are
//! attached per combo. The gateway keys them by combo **name**, not id, which
//! is why the original server always showed `null`.

use omniroute_tool_sdk::combos::{
    combo_enabled, combo_id, combo_name, combo_strategy, combos_of, list_combos_models,
};
use omniroute_tool_sdk::{
    Ctx, Degraded, Gateway, Request, Tool, ToolDescription, ToolError, schema,
};
use serde_json::{Map, Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct ListCombos;

omniroute_tool_sdk::export_tool!(ListCombos);

pub const COMBOS: &str = "/api/combos";
pub use omniroute_tool_sdk::combos::COMBO_METRICS;

impl Tool for ListCombos {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "omniroute_list_combos",
            "List combos",
            "Lists all configured combos (model chains) with strategies and optional metrics",
            &["read:combos"],
        )
        .input_schema(schema::input(
            json!({
                "includeMetrics": {
                    "description": "Include request count, success rate, latency, and cost metrics per combo",
                    "type": "boolean",
                },
            }),
            &[],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        list_combos(cx.gateway, input["includeMetrics"] == Value::Bool(true))
    }
}

/// Reads the combos (and, if asked, their metrics, concurrently). A failed
/// combo list is the tool's error; a failed metrics read only degrades.
pub fn list_combos(gw: &dyn Gateway, include_metrics: bool) -> Result<Value, ToolError> {
    if !include_metrics {
        let combos = gw.get_json(COMBOS, &[])?;
        return Ok(
            json!({ "combos": combos_of(&combos).iter().map(|c| combo_entry(c, None)).collect::<Vec<_>>() }),
        );
    }

    let [combos, metrics] =
        <[_; 2]>::try_from(gw.send_all_json(&[Request::get(COMBOS), Request::get(COMBO_METRICS)]))
            .expect("send_all_json answers every request");
    let combos = combos?;
    let mut degraded = Degraded::new();
    // `{"metrics":{<name>:{…}}}`, or `{"metrics":null,…}` before any traffic.
    let by_name = degraded
        .take(metrics)
        .map(|m| m["metrics"].clone())
        .unwrap_or(Value::Null);
    let entries: Vec<Value> = combos_of(&combos)
        .iter()
        .map(|c| combo_entry(c, Some(&by_name)))
        .collect();
    Ok(json!({ "combos": entries, "degraded": degraded.to_value() }))
}

/// One combo: `{id, name, models, strategy, enabled, metrics?}`; `metrics`
/// only when metrics were asked for, `null` when the combo has no entry.
fn combo_entry(combo: &Value, metrics_by_name: Option<&Value>) -> Value {
    let mut entry = Map::new();
    entry.insert("id".into(), json!(combo_id(combo)));
    entry.insert("name".into(), json!(combo_name(combo)));
    entry.insert("models".into(), Value::Array(list_combos_models(combo)));
    entry.insert("strategy".into(), json!(combo_strategy(combo)));
    entry.insert("enabled".into(), json!(combo_enabled(combo)));
    if let Some(by_name) = metrics_by_name {
        let metrics = combo["name"]
            .as_str()
            .map(|name| &by_name[name])
            .filter(|m| m.is_object());
        entry.insert("metrics".into(), metrics.cloned().unwrap_or(Value::Null));
    }
    Value::Object(entry)
}

fn output_schema() -> Value {
    let step = schema::object(
        json!({
            "provider": schema::nullable("string", "Provider prefix or alias of the step; \"combo\" for a reference to another combo; null when the step names no provider (a bare model)"),
            "model": schema::nullable("string", "provider/model string, or the referenced combo's name; null when the step names neither"),
            "priority": schema::typed("number", "Step order (1-based) unless the step sets its own"),
        }),
        &["provider", "model", "priority"],
    );
    let combo = schema::object(
        json!({
            "id": schema::nullable("string", "Combo id (use it with switch_combo); null when the gateway sent none"),
            "name": schema::nullable("string", "Combo name (what clients send as the model); null when the gateway sent none"),
            "models": { "type": "array", "description": "The combo's steps, in order", "items": step },
            "strategy": schema::typed("string", "Routing strategy, e.g. priority, weighted, round-robin"),
            "enabled": schema::typed("boolean", "False only when the combo was switched off"),
            "metrics": schema::nullable(
                "object",
                "Gateway metrics since its last start (totalRequests, successRate %, avgLatencyMs, byModel, byTarget, …); null when the combo has no traffic or metrics could not be read. Present only with includeMetrics",
            ),
        }),
        &["id", "name", "models", "strategy", "enabled"],
    );
    let mut degraded = schema::degraded();
    degraded["description"] =
        json!("Present only with includeMetrics: sources that failed (the metrics endpoint)");
    schema::object(
        json!({
            "combos": { "type": "array", "description": "Combos in gateway order", "items": combo },
            "degraded": degraded,
        }),
        &["combos"],
    )
}

#[cfg(test)]
mod tests;
