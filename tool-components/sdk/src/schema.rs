//! JSON Schema builders for tool descriptions.
//!
//! Input schemas are published exactly as the original server did:
//! draft-07 `$schema`, `type: object`, `properties`, and `required` only when
//! non-empty. Output schemas are validated by real MCP clients (the Python
//! SDK checks `structuredContent` against them), so they must stay truthful:
//! nullable where a value can be null, loose over gateway objects copied as-is.

use serde_json::{Map, Value, json};

/// The `$schema` of every published input schema.
pub const DRAFT_07: &str = "http://json-schema.org/draft-07/schema#";

/// The input schema of a parameterless tool.
pub fn no_input() -> Value {
    json!({
        "$schema": DRAFT_07,
        "type": "object",
        "properties": {},
        "description": "No parameters required",
    })
}

/// An input schema with these properties (in order) and required names.
pub fn input(properties: Value, required: &[&str]) -> Value {
    let mut schema = Map::new();
    schema.insert("$schema".into(), json!(DRAFT_07));
    if let Value::Object(rest) = object(properties, required) {
        schema.extend(rest);
    }
    Value::Object(schema)
}

/// An object schema for outputs: these properties, these required names.
pub fn object(properties: Value, required: &[&str]) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), properties);
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    Value::Object(schema)
}

/// `{"type": [ty, "null"], "description": …}`: a value that is `null` when
/// the gateway did not supply it.
pub fn nullable(ty: &str, description: &str) -> Value {
    json!({ "type": [ty, "null"], "description": description })
}

/// The description of the optional `sessionId` input of the tools that read
/// or write session state.
pub const SESSION_ID_DESCRIPTION: &str = "Session handle (sh_...) that omniroute_set_budget_guard returned as sessionId: pass it \
back so this call uses that session's budget guard and ledger, from any connection or server node. Omit it to use this \
connection's MCP session, or, for a stateless client, your default session";

/// Appended to the description of every tool that takes `sessionId`.
pub const SESSION_ID_HINT: &str = " Pass sessionId (the handle omniroute_set_budget_guard returns) to use that session's budget guard and ledger.";

/// The optional `sessionId` input property (see [`SESSION_ID_DESCRIPTION`]).
pub fn session_id() -> Value {
    json!({ "type": "string", "description": SESSION_ID_DESCRIPTION })
}

/// `{"type": ty, "description": …}`.
pub fn typed(ty: &str, description: &str) -> Value {
    json!({ "type": ty, "description": description })
}

/// The `degraded` list every multi-source tool ends with.
pub fn degraded() -> Value {
    json!({
        "type": "array",
        "description": "Gateway sources that failed during this call; empty when all succeeded",
        "items": {
            "type": "object",
            "properties": {
                "source": { "type": "string", "description": "\"<METHOD> <path>\" of the failed request" },
                "error": { "type": "string", "description": "Why it failed" },
            },
            "required": ["source", "error"],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_input_matches_the_published_form() {
        assert_eq!(
            no_input().to_string(),
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{},"description":"No parameters required"}"#
        );
    }

    #[test]
    fn required_only_when_non_empty() {
        assert!(input(json!({}), &[]).get("required").is_none());
        assert_eq!(
            input(json!({"a":{"type":"string"}}), &["a"])["required"],
            json!(["a"])
        );
    }
}
