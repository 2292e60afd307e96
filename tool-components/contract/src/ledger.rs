//! The completion ledger: one [`LedgerEntry`] per `POST /v1/chat/completions`
//! the host brokered in a session, success or failure.
//!
//! The host fills every field it can see on the wire (request id, provider,
//! model, cost, tokens, latency, cache, status), so no tool can under-report
//! what was spent; a tool may only add the facts only it knows through an
//! [`Annotation`]. The host serialises this type under the session keys
//! `ledger` (an array) and `request:<id>`; tools deserialise the same type.

use serde::{Deserialize, Serialize};

/// One brokered completion. Serialises with these keys, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub request_id: Option<String>,
    pub sent_at: String,
    pub received_at: String,
    /// The tool that sent it (`omniroute_route_request`, `omniroute_test_combo`, a plugin).
    pub origin: String,
    /// The `model` of the request body as the tool sent it.
    pub requested_model: Option<String>,
    pub combo: Option<String>,
    pub role: Option<String>,
    /// HTTP status, or null when no response came back.
    pub status: Option<u16>,
    pub success: bool,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub cost: Option<f64>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub latency_ms: Option<f64>,
    pub cache: Option<String>,
    pub fallbacks_triggered: Option<u64>,
    pub degraded_from: Option<String>,
    pub error: Option<String>,
}

impl LedgerEntry {
    /// Applies a tool's annotation; only the fields a tool may know, and
    /// only those the annotation sets.
    pub fn annotate(&mut self, note: &Annotation) {
        if let Some(combo) = &note.combo {
            self.combo = Some(combo.clone());
        }
        if let Some(role) = &note.role {
            self.role = Some(role.clone());
        }
        if let Some(n) = note.fallbacks_triggered {
            self.fallbacks_triggered = Some(n);
        }
        if let Some(from) = &note.degraded_from {
            self.degraded_from = Some(from.clone());
        }
    }
}

/// What a tool may add to the ledger entry of a completion its own call
/// sent (`session.set("ledger-annotation", …)`): the entry with this
/// `requestId`, or without one the newest entry that has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub request_id: Option<String>,
    pub combo: Option<String>,
    pub role: Option<String>,
    pub fallbacks_triggered: Option<u64>,
    pub degraded_from: Option<String>,
}

/// `spent`: the sum of the known costs of `entries`, what the budget guard
/// compares with its limit. Failed completions carry no cost.
pub fn spent<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> f64 {
    entries.into_iter().filter_map(|e| e.cost).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coerce::round_cost;
    use serde_json::{Value, json};

    fn entry() -> LedgerEntry {
        LedgerEntry {
            request_id: Some("r1".into()),
            sent_at: "2026-11-25T23:12:50.000Z".into(),
            received_at: "2026-11-25T23:12:50.078Z".into(),
            origin: "omniroute_route_request".into(),
            requested_model: Some("coding-fast".into()),
            combo: None,
            role: None,
            status: Some(200),
            success: true,
            provider: Some("openai-compatible-chat-1".into()),
            model: Some("mock-small".into()),
            cost: Some(0.0000285),
            tokens_in: Some(7),
            tokens_out: Some(3),
            latency_ms: Some(78.0),
            cache: Some("MISS".into()),
            fallbacks_triggered: None,
            degraded_from: None,
            error: None,
        }
    }

    #[test]
    fn serialises_with_the_keys_in_order_and_reads_back() {
        let v = serde_json::to_value(entry()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "requestId",
                "sentAt",
                "receivedAt",
                "origin",
                "requestedModel",
                "combo",
                "role",
                "status",
                "success",
                "provider",
                "model",
                "cost",
                "tokensIn",
                "tokensOut",
                "latencyMs",
                "cache",
                "fallbacksTriggered",
                "degradedFrom",
                "error"
            ]
        );
        assert_eq!(serde_json::from_value::<LedgerEntry>(v).unwrap(), entry());
    }

    #[test]
    fn annotations_set_only_what_they_carry() {
        let mut e = entry();
        e.annotate(&Annotation {
            combo: Some("coding-fast".into()),
            fallbacks_triggered: Some(1),
            ..Default::default()
        });
        assert_eq!(e.combo.as_deref(), Some("coding-fast"));
        assert_eq!(e.fallbacks_triggered, Some(1));
        assert_eq!(e.role, None);
        let note: Annotation =
            serde_json::from_value(json!({"requestId": "r1", "role": "coding"})).unwrap();
        e.annotate(&note);
        assert_eq!(
            (e.role.as_deref(), e.combo.as_deref()),
            (Some("coding"), Some("coding-fast"))
        );
        let written = serde_json::to_value(&note).unwrap();
        assert_eq!(
            written["combo"],
            Value::Null,
            "every key is written, unset ones as null"
        );
    }

    #[test]
    fn spent_sums_known_costs_only() {
        let mut failed = entry();
        failed.cost = None;
        let mut second = entry();
        second.cost = Some(0.0000015);
        assert_eq!(round_cost(spent(&[entry(), failed, second])), 0.00003);
        assert_eq!(spent(&[]), 0.0);
    }
}
