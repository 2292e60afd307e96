//! `omniroute_set_resilience_profile` (docs/tools/set_resilience_profile.md).
//!
//! Applies one of three fixed resilience profiles with
//! `PATCH /api/resilience` (the gateway merges it and persists it in its
//! settings), then reads `GET /api/resilience` back and checks that every
//! value of the profile is what the gateway now holds. The output is the
//! original's, `{applied, profile, settings}`; a read-back that differs, or
//! fails, is an error that says the PATCH was accepted and what differs.

use omniroute_tool_sdk::args;
use omniroute_tool_sdk::{
    Annotations, Ctx, Gateway, Method, Request, Tool, ToolDescription, ToolError, schema,
};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct SetResilienceProfile;

omniroute_tool_sdk::export_tool!(SetResilienceProfile);

pub const RESILIENCE: &str = "/api/resilience";
pub const PROFILES: &[&str] = &["aggressive", "balanced", "conservative"];

/// Changes gateway settings: not read-only; destructive, because it
/// overwrites the previous values (which it does not keep); idempotent (the
/// same profile twice leaves the same settings); closed world.
pub const ANNOTATIONS: Annotations = Annotations {
    read_only_hint: false,
    destructive_hint: true,
    idempotent_hint: true,
    open_world_hint: false,
};

impl Tool for SetResilienceProfile {
    fn describe() -> ToolDescription {
        ToolDescription::new(
            "omniroute_set_resilience_profile",
            "Set resilience profile",
            "Applies a resilience profile controlling circuit breakers, retries, timeouts, and fallback depth",
            &["write:resilience"],
            ANNOTATIONS,
        )
        .input_schema(schema::input(
            json!({
                "profile": { "type": "string", "enum": PROFILES, "description": "Resilience profile to apply" },
            }),
            &["profile"],
        ))
        .output_schema(output_schema())
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let profile = args::one_of(&input, "profile", PROFILES)?;
        apply(cx.gateway, profile)
    }
}

/// The settings of a profile (docs/tools/set_resilience_profile.md#input), keys in the contract's order.
pub fn settings(profile: &str) -> Value {
    // (rpm, minGapMs, concurrent, oauth cooldown, oauth backoff, apikey cooldown,
    //  apikey hints, apikey backoff, oauth threshold, oauth reset, apikey threshold, apikey reset)
    let (rpm, gap, conc, o_cool, o_steps, a_cool, a_hints, a_steps, o_thr, o_reset, a_thr, a_reset) =
        match profile {
            "aggressive" => (180, 100, 16, 30000, 4, 2000, true, 3, 2, 30000, 3, 15000),
            "conservative" => (60, 350, 6, 120000, 10, 30000, false, 8, 8, 120000, 8, 60000),
            _ => (100, 200, 10, 60000, 8, 3000, true, 5, 3, 60000, 5, 30000),
        };
    json!({
        "requestQueue": {
            "requestsPerMinute": rpm,
            "minTimeBetweenRequestsMs": gap,
            "concurrentRequests": conc,
        },
        "connectionCooldown": {
            "oauth": { "baseCooldownMs": o_cool, "useUpstreamRetryHints": false, "maxBackoffSteps": o_steps },
            "apikey": { "baseCooldownMs": a_cool, "useUpstreamRetryHints": a_hints, "maxBackoffSteps": a_steps },
        },
        "providerBreaker": {
            "oauth": { "failureThreshold": o_thr, "resetTimeoutMs": o_reset },
            "apikey": { "failureThreshold": a_thr, "resetTimeoutMs": a_reset },
        },
    })
}

/// PATCH, read back, compare.
pub fn apply(gw: &dyn Gateway, profile: &str) -> Result<Value, ToolError> {
    let settings = settings(profile);
    gw.send_json(&Request::new(Method::Patch, RESILIENCE).json_body(&settings))?;
    let read_back = gw.get_json(RESILIENCE, &[]).map_err(|failure| {
        ToolError::new(format!(
            "Resilience profile \"{profile}\" was sent (PATCH {RESILIENCE} succeeded) but could not be confirmed: {failure}"
        ))
    })?;
    let mut differences = Vec::new();
    differing_leaves(&settings, &read_back, "", &mut differences);
    if !differences.is_empty() {
        return Err(ToolError::new(format!(
            "Resilience profile \"{profile}\" was not confirmed: PATCH {RESILIENCE} succeeded but GET {RESILIENCE} reads back {}. Another client may have changed the settings; call the tool again or check the gateway's resilience settings.",
            differences.join(", ")
        )));
    }
    Ok(json!({ "applied": true, "profile": profile, "settings": settings }))
}

/// Every leaf of `sent` whose value in `got` differs, as
/// `<dotted path> = <got> (sent <sent>)`; numbers compare by value.
fn differing_leaves(sent: &Value, got: &Value, at: &str, out: &mut Vec<String>) {
    match sent {
        Value::Object(fields) => {
            for (key, value) in fields {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                differing_leaves(value, &got[key.as_str()], &path, out);
            }
        }
        _ => {
            let same = match (sent.as_f64(), got.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => sent == got,
            };
            if !same {
                let shown = if got.is_null() {
                    "missing".to_string()
                } else {
                    got.to_string()
                };
                out.push(format!("{at} = {shown} (sent {sent})"));
            }
        }
    }
}

fn output_schema() -> Value {
    let object = |d: &str| json!({ "type": "object", "description": d });
    schema::object(
        json!({
            "applied": { "type": "boolean", "description": "True: the gateway accepted the profile and reads it back unchanged" },
            "profile": { "type": "string", "enum": PROFILES, "description": "The profile applied" },
            "settings": schema::object(
                json!({
                    "requestQueue": object("requestsPerMinute, minTimeBetweenRequestsMs, concurrentRequests"),
                    "connectionCooldown": object("oauth and apikey: baseCooldownMs, useUpstreamRetryHints, maxBackoffSteps"),
                    "providerBreaker": object("oauth and apikey: failureThreshold, resetTimeoutMs"),
                }),
                &["requestQueue", "connectionCooldown", "providerBreaker"],
            ),
        }),
        &["applied", "profile", "settings"],
    )
}

#[cfg(test)]
mod tests;
