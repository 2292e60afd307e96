//! The quota entry normalisation shared by check_quota,
//! simulate_route, get_provider_metrics and explain_route.

use serde_json::{Value, json};

use crate::coerce::{self, non_blank};
use crate::providers::AliasSet;

/// `GET /api/usage/quota`.
pub const QUOTA: &str = "/api/usage/quota";

/// The `tokenStatus` values passed through; anything else reads `"valid"`.
pub const TOKEN_STATUSES: &[&str] = &["valid", "expiring", "expired", "refreshing"];

/// The provider list of a quota response: `providers`, or the body itself
/// when it is an array.
pub fn raw_entries(raw: &Value) -> &[Value] {
    match raw {
        Value::Array(items) => items.as_slice(),
        other => coerce::arr(&other["providers"]),
    }
}

/// One provider entry normalised as the original did, keys in its order:
/// `{name, provider, connectionId, quotaUsed, quotaTotal, percentRemaining, resetAt, tokenStatus}`.
pub fn entry(e: &Value) -> Value {
    let provider = coerce::str(&e["provider"], "unknown");
    let name = untrimmed_non_blank(&e["name"]).unwrap_or(provider);
    let total = Some(coerce::num_a(&e["quotaTotal"], f64::NAN)).filter(|t| *t >= 0.0);
    let used = coerce::num(&e["quotaUsed"], 0.0).max(0.0);
    let used = total.map_or(used, |t| used.min(t));
    let percent = match e["percentRemaining"].as_f64().filter(|x| x.is_finite()) {
        Some(given) => given,
        None => match total {
            Some(t) if t > 0.0 => (t - used) / t * 100.0,
            _ => 100.0,
        },
    };
    let token_status = e["tokenStatus"]
        .as_str()
        .filter(|s| TOKEN_STATUSES.contains(s))
        .unwrap_or("valid");
    json!({
        "name": name,
        "provider": provider,
        "connectionId": untrimmed_non_blank(&e["connectionId"]).unwrap_or("unknown"),
        "quotaUsed": coerce::number(used),
        "quotaTotal": total.map_or(Value::Null, coerce::number),
        "percentRemaining": coerce::number(percent.clamp(0.0, 100.0)),
        "resetAt": coerce::string_or_null(&e["resetAt"]),
        "tokenStatus": token_status,
    })
}

/// The normalised entry of the first connection whose `provider` is in `set`.
pub fn entry_for(raw: &Value, set: &AliasSet) -> Option<Value> {
    raw_entries(raw)
        .iter()
        .find(|e| e["provider"].as_str().is_some_and(|p| set.contains(p)))
        .map(entry)
}

/// A string that is not blank, as the gateway sent it (not trimmed).
fn untrimmed_non_blank(v: &Value) -> Option<&str> {
    non_blank(v).and(v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    use omniroute_tool_testing::fixtures::USAGE_QUOTA as QUOTA_FIXTURE;

    #[test]
    fn fixture_entry_by_alias_set() {
        let raw: Value = serde_json::from_str(QUOTA_FIXTURE).unwrap();
        let id = "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be";
        let set = AliasSet::single(id);
        let e = entry_for(&raw, &set).unwrap();
        assert_eq!(e["percentRemaining"], 100);
        assert_eq!(e["quotaTotal"], Value::Null);
        assert!(entry_for(&raw, &AliasSet::single("mock")).is_none());
        assert_eq!(raw_entries(&json!([{"provider":"x"}])).len(), 1);
    }

    #[test]
    fn computed_percent_and_clamps() {
        let e = entry(&json!({"provider":"p","quotaUsed":150,"quotaTotal":"200"}));
        assert_eq!(e["percentRemaining"], 25);
        let e = entry(&json!({"quotaUsed":500,"quotaTotal":200,"tokenStatus":"odd"}));
        assert_eq!(e["quotaUsed"], 200);
        assert_eq!(e["percentRemaining"], 0);
        assert_eq!(e["tokenStatus"], "valid");
        assert_eq!(e["provider"], "unknown");
    }
}
