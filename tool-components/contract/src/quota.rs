//! The quota entry normalisation shared by check_quota,
//! simulate_route, get_provider_metrics and explain_route.

use serde_json::{Value, json};

use crate::coerce::{self, non_blank};
use crate::providers::AliasSet;

/// `GET /api/usage/quota`.
pub const QUOTA: &str = "/api/usage/quota";

/// The `tokenStatus` values OmniRoute 3.7.9 reports. Any other string the
/// gateway sends (a newer or custom status) is reported as it is, never as
/// one of these.
pub const TOKEN_STATUSES: &[&str] = &["valid", "expiring", "expired", "refreshing"];

/// The provider list of a quota response: `providers`, or the body itself
/// when it is an array.
pub fn raw_entries(raw: &Value) -> &[Value] {
    match raw {
        Value::Array(items) => items.as_slice(),
        other => coerce::arr(&other["providers"]),
    }
}

/// One provider entry, keys in the original server's order:
/// `{name, provider, connectionId, quotaUsed, quotaTotal, percentRemaining, resetAt, tokenStatus}`.
///
/// Only what the gateway says, each `null` when it did not say it:
///
/// * `name`, `provider`, `connectionId`: non-blank strings as sent;
/// * `quotaTotal`: a number ≥ 0 (numeric strings accepted);
/// * `quotaUsed`: a number, clamped to `[0, quotaTotal]` when the limit is known;
/// * `percentRemaining`: the gateway's own value (3.7.9 sends 100 for a
///   connection without a known limit), else computed from a known limit
///   and a known use, clamped to 0..100;
/// * `resetAt`: a string;
/// * `tokenStatus`: the gateway's string as it is, also when it is not one
///   of [`TOKEN_STATUSES`].
pub fn entry(e: &Value) -> Value {
    let total = coerce::finite_a(&e["quotaTotal"]).filter(|t| *t >= 0.0);
    let used = coerce::finite(&e["quotaUsed"]).map(|used| {
        let used = used.max(0.0);
        total.map_or(used, |t| used.min(t))
    });
    let percent = match coerce::finite(&e["percentRemaining"]) {
        Some(given) => Some(given),
        None => match (total, used) {
            (Some(t), Some(used)) if t > 0.0 => Some((t - used) / t * 100.0),
            _ => None,
        },
    };
    let number = |x: Option<f64>| x.map_or(Value::Null, coerce::number);
    json!({
        "name": untrimmed_non_blank(&e["name"]),
        "provider": untrimmed_non_blank(&e["provider"]),
        "connectionId": untrimmed_non_blank(&e["connectionId"]),
        "quotaUsed": number(used),
        "quotaTotal": number(total),
        "percentRemaining": number(percent.map(|p| p.clamp(0.0, 100.0))),
        "resetAt": coerce::string_or_null(&e["resetAt"]),
        "tokenStatus": coerce::string_or_null(&e["tokenStatus"]),
    })
}

/// The share of quota left of a normalised [`entry`] (0..100), only when
/// its limit is known: 3.7.9 reports 100 % for a connection whose limit it
/// does not know, which says nothing about what is available.
pub fn known_percent_remaining(entry: &Value) -> Option<f64> {
    if entry["quotaTotal"].is_null() {
        return None;
    }
    entry["percentRemaining"].as_f64()
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
        // The gateway's own 100 for an unknown limit is passed on as its value ...
        assert_eq!(e["percentRemaining"], 100);
        assert_eq!(e["quotaTotal"], Value::Null);
        // ... but is not a known share of quota.
        assert_eq!(known_percent_remaining(&e), None);
        assert!(entry_for(&raw, &AliasSet::single("mock")).is_none());
        assert_eq!(raw_entries(&json!([{"provider":"x"}])).len(), 1);
    }

    #[test]
    fn computed_percent_and_clamps() {
        let e = entry(&json!({"provider":"p","quotaUsed":150,"quotaTotal":"200"}));
        assert_eq!(e["percentRemaining"], 25);
        assert_eq!(known_percent_remaining(&e), Some(25.0));
        let e = entry(&json!({"quotaUsed":500,"quotaTotal":200,"tokenStatus":"valid"}));
        assert_eq!(e["quotaUsed"], 200);
        assert_eq!(e["percentRemaining"], 0);
    }

    #[test]
    fn nothing_is_filled_in() {
        let e = entry(&json!({"quotaTotal": 200}));
        assert_eq!(
            e,
            json!({"name": null, "provider": null, "connectionId": null, "quotaUsed": null, "quotaTotal": 200,
                   "percentRemaining": null, "resetAt": null, "tokenStatus": null}),
            "no usage: not 0 used, not 100 % left"
        );
        let e = entry(&json!({"provider": "p", "quotaUsed": 3}));
        assert_eq!((e["quotaUsed"].clone(), e["percentRemaining"].clone()), (json!(3), Value::Null), "unknown limit");
        let e = entry(&json!({"provider": "p", "quotaUsed": 0, "quotaTotal": 0}));
        assert_eq!(e["percentRemaining"], Value::Null, "no share of a zero limit");
    }

    #[test]
    fn token_statuses_are_reported_as_sent() {
        for status in ["valid", "expired", "revoked", "invalid_grant"] {
            assert_eq!(entry(&json!({"tokenStatus": status}))["tokenStatus"], status);
        }
        assert_eq!(entry(&json!({"tokenStatus": 3}))["tokenStatus"], Value::Null);
    }
}
