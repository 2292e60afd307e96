//! What one audit row holds, and the exact rules for its derived columns
//! (docs/architecture.md#audit-log): input hash, output summary.

use crate::json_text::{to_js_compact, to_js_compact_prefix};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One tools/call, as written to `mcp_tool_audit`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub tool_name: String,
    pub input_hash: String,
    pub output_summary: String,
    pub duration_ms: u64,
    pub api_key_id: Option<String>,
    pub success: bool,
    pub error_code: Option<String>,
    pub caller: String,
    pub session_id: Option<String>,
    /// Why the sandbox stopped the call (`cpu`, `wall`, `memory`, `output`,
    /// `requests`, `cancelled`), when it did.
    pub stop_cause: Option<String>,
    pub gateway_calls: Vec<GatewayCall>,
}

/// Longest stored text per field (characters): a row has a bounded size
/// whatever a client sends as a tool name or a tool returns as an error.
pub mod caps {
    pub const TOOL_NAME: usize = 128;
    pub const ERROR_CODE: usize = 1_000;
    pub const CALLER: usize = 128;
    pub const SESSION_ID: usize = 256;
    pub const API_KEY_ID: usize = 128;
    pub const STOP_CAUSE: usize = 32;
    pub const METHOD: usize = 16;
    pub const PATH_TEMPLATE: usize = 256;
    pub const GATEWAY_ERROR: usize = 256;
    /// Gateway requests recorded per row (the runtime caps a call's requests lower).
    pub const GATEWAY_CALLS: usize = 256;
}

impl AuditRecord {
    /// The record with every text field cut to its cap (`…` marks a cut).
    pub fn bounded(mut self) -> AuditRecord {
        cut(&mut self.tool_name, caps::TOOL_NAME);
        cut(&mut self.caller, caps::CALLER);
        for (field, max) in [
            (&mut self.error_code, caps::ERROR_CODE),
            (&mut self.session_id, caps::SESSION_ID),
            (&mut self.api_key_id, caps::API_KEY_ID),
            (&mut self.stop_cause, caps::STOP_CAUSE),
        ] {
            if let Some(text) = field {
                cut(text, max);
            }
        }
        self.gateway_calls.truncate(caps::GATEWAY_CALLS);
        for g in &mut self.gateway_calls {
            cut(&mut g.method, caps::METHOD);
            cut(&mut g.path_template, caps::PATH_TEMPLATE);
            if let Some(e) = &mut g.error {
                cut(e, caps::GATEWAY_ERROR);
            }
        }
        self
    }
}

/// Cuts `text` to `max` characters, the last one `…`, if it is longer.
fn cut(text: &mut String, max: usize) {
    if let Some((i, _)) = text.char_indices().nth(max.saturating_sub(1)) {
        if text[i..].chars().nth(1).is_some() {
            text.truncate(i);
            text.push('…');
        }
    }
}

/// One gateway request a call made: shapes only, never bodies, query values
/// or credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatewayCall {
    pub method: String,
    /// The capability-table pattern it matched (`/api/combos/{id}`), or
    /// `(not permitted)` for a denied request.
    pub path_template: String,
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub bytes: u64,
    /// The kind of failure without a response: `timeout`, `unreachable`, …
    pub error: Option<String>,
}

/// Lowercase hex SHA-256 of the compact JSON (JavaScript formatting).
/// `{}` hashes to `44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a`.
pub fn input_hash(canonical: &Value) -> String {
    hex::encode(Sha256::digest(to_js_compact(canonical).as_bytes()))
}

/// The arguments as the original hashes them: keys in the schema's property
/// order, unknown keys stripped, defaults applied (recursively for objects
/// and arrays of objects that declare properties).
pub fn canonical_args(schema: &Map<String, Value>, args: &Value) -> Value {
    canonical(schema, args)
}

fn canonical(schema: &Map<String, Value>, value: &Value) -> Value {
    match (schema.get("properties").and_then(Value::as_object), value) {
        (Some(props), Value::Object(given)) => {
            let mut out = Map::new();
            for (key, prop) in props {
                if let Some(v) = given.get(key) {
                    let value = match prop.as_object() {
                        Some(prop) => canonical(prop, v),
                        None => v.clone(),
                    };
                    out.insert(key.clone(), value);
                } else if let Some(default) = prop.get("default") {
                    out.insert(key.clone(), default.clone());
                }
            }
            Value::Object(out)
        }
        (_, Value::Array(items)) => match schema.get("items").and_then(Value::as_object) {
            Some(item_schema) => Value::Array(items.iter().map(|i| canonical(item_schema, i)).collect()),
            None => value.clone(),
        },
        _ => value.clone(),
    }
}

/// `(null)` for no output; otherwise the string itself, or compact JSON, cut
/// to 200 UTF-16 code units plus `…`.
pub fn output_summary(output: Option<&Value>) -> String {
    match output {
        None | Some(Value::Null) => "(null)".to_owned(),
        Some(Value::String(s)) => cut_utf16(s, SUMMARY_UNITS),
        // Only the beginning is kept: serialize no more than can be kept
        // (SUMMARY_PREFIX bytes hold more than SUMMARY_UNITS UTF-16 units).
        Some(v) => cut_utf16(&to_js_compact_prefix(v, SUMMARY_PREFIX).0, SUMMARY_UNITS),
    }
}

/// UTF-16 code units an output summary keeps.
const SUMMARY_UNITS: usize = 200;
/// Bytes of compact JSON enough to decide the summary: at most 4 bytes per
/// character and at least one UTF-16 unit per character, plus a margin for
/// a character cut at the end.
const SUMMARY_PREFIX: usize = 4 * (SUMMARY_UNITS + 2);

fn cut_utf16(text: &str, max: usize) -> String {
    let mut units = 0;
    for (i, c) in text.char_indices() {
        units += c.len_utf16();
        if units > max {
            return format!("{}…", &text[..i]);
        }
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_hashes() {
        assert_eq!(input_hash(&json!({})), "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    #[test]
    fn canonical_form_follows_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "provider": {"type": "string"},
                "connectionId": {"type": "string"},
                "stream": {"type": "boolean", "default": false},
                "messages": {"type": "array", "items": {"type": "object", "properties": {"role": {}, "content": {}}}}
            }
        });
        let args = json!({"connectionId": "a", "provider": "b", "extra": 1, "messages": [{"content": "x", "role": "user", "name": "n"}]});
        let c = canonical_args(schema.as_object().unwrap(), &args);
        assert_eq!(
            to_js_compact(&c),
            r#"{"provider":"b","connectionId":"a","stream":false,"messages":[{"role":"user","content":"x"}]}"#
        );
    }

    #[test]
    fn records_are_bounded() {
        let record = AuditRecord {
            tool_name: "t".repeat(5_000),
            input_hash: input_hash(&json!({})),
            output_summary: "(null)".into(),
            duration_ms: 0,
            api_key_id: None,
            success: false,
            error_code: Some("é".repeat(4 * 1024 * 1024)),
            caller: "c".into(),
            session_id: Some("s".repeat(300)),
            stop_cause: Some("cpu".into()),
            gateway_calls: vec![],
        }
        .bounded();
        assert_eq!(record.tool_name.chars().count(), caps::TOOL_NAME);
        assert!(record.tool_name.ends_with('…'));
        assert_eq!(record.error_code.unwrap().chars().count(), caps::ERROR_CODE);
        assert_eq!(record.session_id.unwrap().chars().count(), caps::SESSION_ID);
        assert_eq!((record.caller.as_str(), record.stop_cause.as_deref()), ("c", Some("cpu")), "short fields are kept");
        let mut exact = "x".repeat(caps::CALLER);
        cut(&mut exact, caps::CALLER);
        assert_eq!(exact.len(), caps::CALLER, "a field exactly at its cap is not cut");
    }

    #[test]
    fn summaries() {
        assert_eq!(output_summary(None), "(null)");
        assert_eq!(output_summary(Some(&json!({"cost": 0.0000285}))), r#"{"cost":0.0000285}"#);
        let long = "é".repeat(250);
        let s = output_summary(Some(&Value::String(long)));
        assert_eq!(s.chars().count(), 201);
        assert!(s.ends_with('…'));
        // Astral characters count as two UTF-16 units.
        // A large value: only its beginning is serialized, with the same summary.
        let big = json!({"items": (0..500).map(|i| json!({"id": format!("é{i}😀"), "n": i})).collect::<Vec<_>>()});
        let full = cut_utf16(&to_js_compact(&big), 200);
        assert_eq!(output_summary(Some(&big)), full);
        assert!(full.ends_with('…'));
        let small = json!({"a": [1, 2, "x"]});
        assert_eq!(output_summary(Some(&small)), to_js_compact(&small));
        let s = output_summary(Some(&Value::String("😀".repeat(150))));
        assert_eq!(s.chars().count(), 101);
    }
}
