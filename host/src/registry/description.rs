//! The JSON a component's `describe()` returns, checked once at load.

use crate::capability::{Scope, ScopeError};
use serde::Deserialize;
use serde_json::{Map, Value};

/// What a tool says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    /// JSON Schema of the arguments (object schema).
    pub input_schema: Map<String, Value>,
    /// JSON Schema of the structured output, if the tool publishes one.
    pub output_schema: Option<Map<String, Value>>,
    pub scopes: Vec<Scope>,
    pub annotations: Annotations,
    /// JSON pointer into the output that the audit summary records instead
    /// of the whole output (route_request: `/routing`, never the answer text).
    pub audit_output: Option<String>,
}

/// MCP tool annotations (hints for clients).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    name: String,
    title: Option<String>,
    description: String,
    input_schema: Value,
    output_schema: Option<Value>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    annotations: Annotations,
    #[serde(default)]
    audit: Option<AuditHint>,
}

#[derive(Deserialize)]
struct AuditHint {
    output: Option<String>,
}

/// A `describe()` answer that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("describe() did not return a valid description: {0}")]
    Json(String),
    #[error("describe(): `name` must be 1-64 characters of a-z, 0-9, '_' or '-', got {0:?}")]
    Name(String),
    #[error("describe(): `{0}` must be a JSON Schema object with \"type\": \"object\"")]
    Schema(&'static str),
    #[error("describe(): {0}")]
    Scope(#[from] ScopeError),
}

impl Description {
    /// Parses and checks `describe()` output.
    pub fn parse(json: &str) -> Result<Self, DescriptionError> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| DescriptionError::Json(e.to_string()))?;
        if !super::valid_tool_name(&raw.name) {
            return Err(DescriptionError::Name(raw.name));
        }
        let input_schema = object_schema(raw.input_schema).ok_or(DescriptionError::Schema("inputSchema"))?;
        let output_schema = match raw.output_schema {
            None | Some(Value::Null) => None,
            Some(schema) => Some(object_schema(schema).ok_or(DescriptionError::Schema("outputSchema"))?),
        };
        let scopes = raw
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Description {
            name: raw.name,
            title: raw.title,
            description: raw.description,
            input_schema,
            output_schema,
            scopes,
            annotations: raw.annotations,
            audit_output: raw.audit.and_then(|a| a.output).filter(|p| p.is_empty() || p.starts_with('/')),
        })
    }
}

impl Description {
    /// Corrects annotations that the scopes contradict: a tool holding any
    /// `write:` or `execute:` scope is not read-only, whatever it says (some
    /// clients auto-approve read-only tools). Returns what was overridden.
    pub fn correct_annotations(&mut self) -> Option<String> {
        let writer = self.scopes.iter().find(|s| {
            let name = s.as_str();
            name.starts_with("write:") || name.starts_with("execute:")
        })?;
        if self.annotations.read_only_hint != Some(true) {
            return None;
        }
        self.annotations.read_only_hint = Some(false);
        Some(format!(
            "tool {} declares readOnlyHint: true but holds the scope {writer}; serving readOnlyHint: false",
            self.name
        ))
    }
}

/// MCP requires tool schemas to be object schemas.
fn object_schema(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("object") => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let ok = r#"{"name":"t","description":"d","inputSchema":{"type":"object","properties":{}},"scopes":["read:health"],"annotations":{"readOnlyHint":true}}"#;
        let d = Description::parse(ok).unwrap();
        assert_eq!(d.scopes, vec![Scope::ReadHealth]);
        assert_eq!(d.annotations.read_only_hint, Some(true));
        assert!(d.output_schema.is_none());
        for bad in [
            r#"{"name":"T T","description":"d","inputSchema":{"type":"object"}}"#,
            r#"{"name":"t","description":"d","inputSchema":{"type":"string"}}"#,
            r#"{"name":"t","description":"d","inputSchema":{"type":"object"},"outputSchema":[]}"#,
            r#"{"name":"t","description":"d","inputSchema":{"type":"object"},"scopes":["root"]}"#,
            r#"not json"#,
        ] {
            assert!(Description::parse(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn scopes_that_write_override_a_read_only_claim() {
        let claim = |scopes: &str| {
            Description::parse(&format!(
                r#"{{"name":"t","description":"d","inputSchema":{{"type":"object"}},"scopes":[{scopes}],"annotations":{{"readOnlyHint":true}}}}"#
            ))
            .unwrap()
        };
        for writer in [r#""read:combos","write:combos""#, r#""execute:completions""#, r#""write:budget""#] {
            let mut d = claim(writer);
            let note = d.correct_annotations().unwrap_or_else(|| panic!("{writer}: not overridden"));
            assert_eq!(d.annotations.read_only_hint, Some(false), "{writer}");
            assert!(note.contains("readOnlyHint"), "{note}");
        }
        let mut reader = claim(r#""read:health""#);
        assert_eq!(reader.correct_annotations(), None);
        assert_eq!(reader.annotations.read_only_hint, Some(true));
    }
}
