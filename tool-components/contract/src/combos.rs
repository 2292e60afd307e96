//! Combo records and combo steps of `GET /api/combos`.
//!
//! Steps come in three shapes: model objects
//! (`{"kind":"model","model":"mock/mock-small","providerId":"mock",…}`),
//! combo references (`{"kind":"combo-ref","comboName":"x"}`) and, in old
//! data, plain strings (`"mock/mock-small"`). Several tools read them, so the
//! normalisation rules live here once.

use serde_json::{Value, json};

use crate::coerce::{self, non_blank};
use crate::providers::Providers;

/// The combo list of a `GET /api/combos` response, accepted as
/// `{"combos":[…]}` or as a bare array; anything else is empty.
pub fn combos_of(response: &Value) -> &[Value] {
    match response {
        Value::Array(items) => items,
        other => coerce::arr(&other["combos"]),
    }
}

/// The steps of a combo: `models` if it is a non-empty array, else `data.models`.
pub fn combo_steps(combo: &Value) -> &[Value] {
    match combo["models"].as_array() {
        Some(steps) if !steps.is_empty() => steps,
        _ => coerce::arr(&combo["data"]["models"]),
    }
}

/// True for `{"kind":"combo-ref",…}` steps.
pub fn is_combo_ref(step: &Value) -> bool {
    step["kind"].as_str() == Some("combo-ref")
}

/// The text before the first `/`, when there is a non-empty one.
fn prefix_of(model: &str) -> Option<&str> {
    model
        .split_once('/')
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty())
}

/// `modelString(step)`: the `provider/model` string a step routes to.
///
/// * string step: the trimmed string, or `None` if blank;
/// * combo-ref: `None`;
/// * object: the trimmed `model`; if it has no `/`, it is prefixed with
///   `providerId` or `provider` (when one is a non-blank string).
pub fn model_string(step: &Value) -> Option<String> {
    match step {
        Value::String(_) => non_blank(step).map(str::to_string),
        Value::Object(_) if is_combo_ref(step) => None,
        Value::Object(_) => {
            let model = non_blank(&step["model"])?;
            if model.contains('/') {
                return Some(model.to_string());
            }
            match non_blank(&step["providerId"]).or_else(|| non_blank(&step["provider"])) {
                Some(provider) => Some(format!("{provider}/{model}")),
                None => Some(model.to_string()),
            }
        }
        _ => None,
    }
}

/// `modelProvider(step)`: the provider name a step names (a node prefix or a
/// provider alias/id; see [`crate::providers`]).
///
/// * string step: the text before the first `/`;
/// * combo-ref: `None`;
/// * object: `providerId`, else `provider`, else the prefix of `model`.
pub fn model_provider(step: &Value) -> Option<String> {
    match step {
        Value::String(s) => prefix_of(s.trim()).map(str::to_string),
        Value::Object(_) if is_combo_ref(step) => None,
        Value::Object(_) => non_blank(&step["providerId"])
            .or_else(|| non_blank(&step["provider"]))
            .or_else(|| non_blank(&step["model"]).and_then(prefix_of))
            .map(str::to_string),
        _ => None,
    }
}

/// `stepTarget(step)`: what a step points at: a string step as is, the
/// `comboName` of a combo-ref, [`model_string`] otherwise.
pub fn step_target(step: &Value) -> Option<String> {
    match step {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::String(_) => None,
        _ if is_combo_ref(step) => non_blank(&step["comboName"]).map(str::to_string),
        _ => model_string(step),
    }
}

/// One step as `omniroute_list_combos` lists it: `{provider, model, priority}`.
///
/// * `provider`: [`model_provider`]; `"combo"` for a combo reference (the
///   gateway's own owner name for combos); else the step's `provider`
///   string; else `null` (e.g. a bare `"gpt-4o"` step names no provider);
/// * `model`: [`model_string`], else [`step_target`], else `null`;
/// * `priority`: the step's own number, else its position (`index + 1`):
///   the gateway tries a combo's steps in list order.
pub fn list_combos_step(step: &Value, index: usize) -> Value {
    let provider = model_provider(step).or_else(|| match step {
        _ if is_combo_ref(step) => Some("combo".to_string()),
        _ => non_blank(&step["provider"]).map(str::to_string),
    });
    let model = model_string(step).or_else(|| step_target(step));
    json!({
        "provider": provider,
        "model": model,
        "priority": coerce::num_value(&step["priority"], (index + 1) as f64),
    })
}

/// All steps of a combo, strings included, normalised by [`list_combos_step`].
pub fn list_combos_models(combo: &Value) -> Vec<Value> {
    combo_steps(combo)
        .iter()
        .enumerate()
        .map(|(i, step)| list_combos_step(step, i))
        .collect()
}

/// A step as the advanced tools see it (the original's `getComboModels`).
#[derive(Clone, Debug, PartialEq)]
pub struct ComboModel {
    /// [`model_provider`]; `"combo"` for a combo reference; `None` when the
    /// step names no provider.
    pub provider: Option<String>,
    /// [`model_string`], else [`step_target`]; `None` when the step names
    /// neither.
    pub model: Option<String>,
}

/// The object steps of a combo (strings are dropped), as the advanced tools
/// read them.
pub fn combo_models(combo: &Value) -> Vec<ComboModel> {
    combo_steps(combo)
        .iter()
        .filter(|step| step.is_object())
        .map(|step| ComboModel {
            provider: model_provider(step).or_else(|| is_combo_ref(step).then(|| "combo".to_string())),
            model: model_string(step).or_else(|| step_target(step)),
        })
        .collect()
}

/// The combo's `id`; `None` when it has no string id.
pub fn combo_id(combo: &Value) -> Option<&str> {
    combo["id"].as_str()
}

/// The combo's `name` (what `/v1/chat/completions` and the combo metrics
/// know it by); `None` when it has no string name.
pub fn combo_name(combo: &Value) -> Option<&str> {
    combo["name"].as_str()
}

/// `strategy`, else `data.strategy`, else `"priority"`: the strategy the
/// gateway applies to a combo that names none.
pub fn combo_strategy(combo: &Value) -> &str {
    let stored = combo["strategy"].as_str().or_else(|| combo["data"]["strategy"].as_str());
    stored.unwrap_or("priority")
}

/// False only when `isActive === false` (or a future `enabled === false`).
/// 3.7.9 omits `isActive` until a combo has been switched once, so an absent
/// value means active.
pub fn combo_enabled(combo: &Value) -> bool {
    combo["isActive"] != Value::Bool(false) && combo["enabled"] != Value::Bool(false)
}

/// `GET /api/combos`.
pub const COMBOS: &str = "/api/combos";

/// The combo `id_or_name` names: an exact `id` match first, then an exact
/// `name` match; `None` when neither matches.
pub fn find_combo<'a>(combos: &'a [Value], id_or_name: &str) -> Option<&'a Value> {
    combos
        .iter()
        .find(|c| c["id"].as_str() == Some(id_or_name))
        .or_else(|| {
            combos
                .iter()
                .find(|c| c["name"].as_str() == Some(id_or_name))
        })
}

/// `Combo not found: "<comboId>"`: the text of every tool that takes a
/// combo id or name the gateway does not know.
pub fn combo_not_found_text(id_or_name: &str) -> String {
    format!("Combo not found: \"{id_or_name}\"")
}

/// `GET /api/combos/metrics`: in-memory combo metrics keyed by combo **name**
/// (reset when the gateway restarts).
pub const COMBO_METRICS: &str = "/api/combos/metrics";
/// `GET /api/usage/combo-health?range=…`: persistent per-step combo health.
pub const COMBO_HEALTH: &str = "/api/usage/combo-health";

/// Where a combo's latency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencySource {
    /// `avgLatencyMs` of the in-memory `GET /api/combos/metrics` entry.
    ComboMetrics,
    /// The request-weighted mean over the targets of `GET /api/usage/combo-health`.
    ComboHealth,
}

impl LatencySource {
    /// `"combo-metrics"` or `"combo-health"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencySource::ComboMetrics => "combo-metrics",
            LatencySource::ComboHealth => "combo-health",
        }
    }
}

/// A measured combo latency and its source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComboLatency {
    pub ms: f64,
    pub source: LatencySource,
}

/// A combo's measured latency: the in-memory `avgLatencyMs` of
/// `GET /api/combos/metrics` (`metrics`) when that entry has requests, else
/// the request-weighted mean `avgLatencyMs` of the combo-health targets with
/// requests (`health`, matched by `comboId`, then `comboName`); `None` when
/// neither knows, never a guess.
pub fn combo_latency(
    combo: &Value,
    metrics: Option<&Value>,
    health: Option<&Value>,
) -> Option<ComboLatency> {
    let name = combo_name(combo);
    let in_memory = metrics
        .zip(name)
        .map(|(m, name)| &m["metrics"][name])
        .filter(|m| coerce::finite(&m["totalRequests"]).is_some_and(|n| n > 0.0));
    if let Some(avg) = in_memory.and_then(|m| m["avgLatencyMs"].as_f64()) {
        return Some(ComboLatency {
            ms: avg,
            source: LatencySource::ComboMetrics,
        });
    }
    let entry = coerce::arr(&health?["combos"]).iter().find(|c| {
        let by_id = combo_id(combo).is_some_and(|id| c["comboId"].as_str() == Some(id));
        by_id || name.is_some_and(|name| c["comboName"].as_str() == Some(name))
    })?;
    let (mut weighted, mut requests) = (0.0, 0.0);
    for t in coerce::arr(&entry["targetHealth"]) {
        if let (Some(r), Some(avg)) = (coerce::finite(&t["requests"]).filter(|r| *r > 0.0), t["avgLatencyMs"].as_f64()) {
            weighted += r * avg;
            requests += r;
        }
    }
    (requests > 0.0).then(|| ComboLatency {
        ms: weighted / requests,
        source: LatencySource::ComboHealth,
    })
}

/// The index of the step that served `provider`/`model` (the
/// `x-omniroute-provider` and `x-omniroute-model` of a completion): the first step whose model after `/` is `model` and whose
/// provider's alias set holds `provider`.
pub fn served_step(
    steps: &[Value],
    provider: &str,
    model: &str,
    providers: &Providers,
) -> Option<usize> {
    steps.iter().position(|step| {
        let Some(step_model) = model_string(step) else {
            return false;
        };
        let after_slash = step_model
            .split_once('/')
            .map_or(step_model.as_str(), |(_, m)| m);
        after_slash == model
            && model_provider(step).is_some_and(|p| providers.alias_set(&p).contains(provider))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use omniroute_tool_testing::fixtures::{COMBO_HEALTH_24H, COMBO_METRICS_ALL, COMBOS_POPULATED as COMBOS_FIXTURE};

    #[test]
    fn step_functions_on_fixture_steps() {
        let combos: Value = serde_json::from_str(COMBOS_FIXTURE).unwrap();
        let step = &combos_of(&combos)[0]["models"][0];
        assert_eq!(model_string(step).as_deref(), Some("mock/mock-small"));
        assert_eq!(model_provider(step).as_deref(), Some("mock"));
        assert_eq!(step_target(step).as_deref(), Some("mock/mock-small"));
    }

    #[test]
    fn string_steps() {
        let s = json!(" cc/claude-sonnet ");
        assert_eq!(model_string(&s).as_deref(), Some("cc/claude-sonnet"));
        assert_eq!(model_provider(&s).as_deref(), Some("cc"));
        assert_eq!(step_target(&s).as_deref(), Some(" cc/claude-sonnet "));
        let bare = json!("gpt-4o");
        assert_eq!(model_provider(&bare), None);
        assert_eq!(
            list_combos_step(&bare, 0),
            json!({"provider":null,"model":"gpt-4o","priority":1}),
            "a bare model names no provider"
        );
        assert_eq!(model_string(&json!("  ")), None);
    }

    #[test]
    fn combo_ref_steps() {
        let r = json!({"kind":"combo-ref","comboName":"free-tier"});
        assert_eq!(model_string(&r), None);
        assert_eq!(model_provider(&r), None);
        assert_eq!(step_target(&r).as_deref(), Some("free-tier"));
        assert_eq!(
            list_combos_step(&r, 2),
            json!({"provider":"combo","model":"free-tier","priority":3})
        );
    }

    #[test]
    fn object_steps_without_slash_get_the_provider_prefix() {
        let s = json!({"model":" small ","providerId":"mock"});
        assert_eq!(model_string(&s).as_deref(), Some("mock/small"));
        let s = json!({"model":"small","provider":"openai"});
        assert_eq!(model_string(&s).as_deref(), Some("openai/small"));
        assert_eq!(model_provider(&s).as_deref(), Some("openai"));
        let s = json!({"model":"small"});
        assert_eq!(model_string(&s).as_deref(), Some("small"));
        assert_eq!(model_provider(&s), None);
    }

    #[test]
    fn odd_entries_are_null_where_unknown() {
        assert_eq!(
            list_combos_step(&json!({}), 0),
            json!({"provider":null,"model":null,"priority":1})
        );
        assert_eq!(
            list_combos_step(&json!({"providerId":"x","priority":7}), 0),
            json!({"provider":"x","model":null,"priority":7})
        );
        assert_eq!(
            list_combos_step(&json!(42), 4),
            json!({"provider":null,"model":null,"priority":5})
        );
        assert_eq!(list_combos_step(&json!({"provider":" p "}), 0)["provider"], "p");
    }

    #[test]
    fn steps_source_and_list_shapes() {
        assert_eq!(combos_of(&json!([{"id":"a"}])).len(), 1);
        assert_eq!(combos_of(&json!({"combos":[]})).len(), 0);
        assert_eq!(combos_of(&json!({"other":1})).len(), 0);
        let c = json!({"models":[],"data":{"models":["a/b"],"strategy":"weighted"}});
        assert_eq!(combo_steps(&c).len(), 1);
        assert_eq!(combo_strategy(&c), "weighted");
        assert_eq!(combo_strategy(&json!({})), "priority");
    }

    #[test]
    fn identity_and_enabled() {
        assert_eq!(combo_name(&json!({"id":"x"})), None, "an id is not a name");
        assert_eq!(combo_name(&json!({})), None);
        assert_eq!(combo_name(&json!({"id":"x","name":"n"})), Some("n"));
        assert_eq!(combo_id(&json!({"id":"x"})), Some("x"));
        assert_eq!(combo_id(&json!({"id":7})), None);
        assert!(combo_enabled(&json!({})));
        assert!(combo_enabled(&json!({"isActive":true})));
        assert!(combo_enabled(&json!({"isActive":"false"})));
        assert!(!combo_enabled(&json!({"isActive":false})));
        assert!(!combo_enabled(&json!({"enabled":false})));
    }

    #[test]
    fn advanced_models_drop_strings() {
        let c = json!({"models":["a/b",{"kind":"combo-ref","comboName":"z"},{"model":"m/x","inputCostPer1M":"1.5"},{"model":"bare"},{}]});
        let models = combo_models(&c);
        let model = |p: Option<&str>, m: Option<&str>| ComboModel {
            provider: p.map(str::to_string),
            model: m.map(str::to_string),
        };
        assert_eq!(
            models,
            vec![
                model(Some("combo"), Some("z")),
                model(Some("m"), Some("m/x")),
                model(None, Some("bare")),
                model(None, None),
            ]
        );
    }

    #[test]
    fn find_by_id_then_name() {
        let combos: Value = serde_json::from_str(COMBOS_FIXTURE).unwrap();
        let list = combos_of(&combos);
        let by_id = find_combo(list, "60778c51-9485-4f7a-bedb-513010a8e882").unwrap();
        assert_eq!(by_id["name"], "free-tier");
        assert_eq!(
            find_combo(list, "coding-fast").unwrap()["id"],
            "c9df3fce-0dd7-4438-a4e7-8f10fde6b078"
        );
        assert!(find_combo(list, "Coding-Fast").is_none());
        assert!(find_combo(&[], "x").is_none());
        // An id wins over a name that happens to equal it.
        let tricky = [json!({"id":"a","name":"b"}), json!({"id":"b","name":"c"})];
        assert_eq!(find_combo(&tricky, "b").unwrap()["id"], "b");
        assert_eq!(combo_not_found_text("nope"), "Combo not found: \"nope\"");
    }

    #[test]
    fn latency_from_metrics_then_combo_health() {
        let combos: Value = serde_json::from_str(COMBOS_FIXTURE).unwrap();
        let [coding_fast, free_tier] = [&combos_of(&combos)[0], &combos_of(&combos)[1]];
        let metrics: Value = serde_json::from_str(COMBO_METRICS_ALL).unwrap();
        let health: Value = serde_json::from_str(COMBO_HEALTH_24H).unwrap();
        assert_eq!(
            combo_latency(coding_fast, Some(&metrics), Some(&health)),
            Some(ComboLatency {
                ms: 1341.0,
                source: LatencySource::ComboMetrics
            })
        );
        // (8 × 118 + 2 × 102) / 10 when the in-memory metrics are gone.
        let latency = combo_latency(coding_fast, None, Some(&health)).unwrap();
        assert_eq!(latency.source.as_str(), "combo-health");
        assert!((latency.ms - 114.8).abs() < 1e-9);
        // free-tier: no traffic anywhere.
        assert_eq!(
            combo_latency(free_tier, Some(&metrics), Some(&health)),
            None
        );
        assert_eq!(combo_latency(coding_fast, None, None), None);
    }
}
