//! Argument validation against a tool's input schema, compiled once at load,
//! run by the host before any instance is created.

use serde_json::{Map, Value};

/// A compiled input schema.
pub struct ArgumentValidator {
    validator: jsonschema::Validator,
}

/// Arguments that do not match; the text names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ArgumentError {
    /// JSON pointer of the offending value (`/includeMetrics`), empty for the root.
    pub field: String,
    pub message: String,
}

/// A schema that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("inputSchema is not a valid JSON Schema: {0}")]
pub struct SchemaError(String);

impl ArgumentValidator {
    /// Compiles `schema` (any draft jsonschema supports; `$schema` decides).
    pub fn new(schema: &Map<String, Value>) -> Result<Self, SchemaError> {
        let schema = Value::Object(schema.clone());
        let validator = jsonschema::validator_for(&schema).map_err(|e| SchemaError(e.to_string()))?;
        Ok(Self { validator })
    }

    /// Checks `args`; on failure reports the first error with its field and
    /// the rule it breaks, never the value: arguments can hold prompts, and
    /// this text reaches the agent and the audit log.
    pub fn check(&self, args: &Value) -> Result<(), ArgumentError> {
        match self.validator.iter_errors(args).next() {
            None => Ok(()),
            Some(error) => {
                let field = error.instance_path().to_string();
                let location = if field.is_empty() {
                    "the arguments".to_owned()
                } else {
                    format!("`{}`", clip(&field.trim_start_matches('/').replace('/', "."), 120))
                };
                Err(ArgumentError {
                    field,
                    message: format!("{location}: {}", rule(&error)),
                })
            }
        }
    }
}

/// The broken rule in words, the offending value masked. Property names a
/// client made up are named by their first characters only.
fn rule(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    match error.kind() {
        Kind::AdditionalProperties { unexpected } | Kind::UnevaluatedProperties { unexpected } => {
            let named: Vec<String> = unexpected.iter().take(3).map(|p| format!("\"{}\"", clip(p, 32))).collect();
            let more = unexpected.len().saturating_sub(named.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!("properties not in the schema are not allowed ({}{more})", named.join(", "))
        }
        Kind::PropertyNames { .. } => "a property name does not match the schema's propertyNames".to_owned(),
        _ => error.masked_with("the value").to_string(),
    }
}

/// The first `max` characters of `text`, marked when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator(schema: Value) -> ArgumentValidator {
        ArgumentValidator::new(schema.as_object().unwrap()).unwrap()
    }

    #[test]
    fn names_the_field() {
        let v = validator(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"includeMetrics": {"type": "boolean"}, "comboId": {"type": "string"}},
            "required": ["comboId"]
        }));
        assert!(v.check(&json!({"comboId": "x"})).is_ok());
        let e = v.check(&json!({"comboId": "x", "includeMetrics": "yes"})).unwrap_err();
        assert_eq!(e.field, "/includeMetrics");
        assert!(e.message.starts_with("`includeMetrics`: "), "{}", e.message);
        let e = v.check(&json!({})).unwrap_err();
        assert!(e.message.contains("comboId"), "{}", e.message);
    }

    #[test]
    fn names_the_rule_never_the_value() {
        let v = validator(json!({
            "type": "object",
            "properties": {
                "testPrompt": {"type": "string", "maxLength": 5},
                "messages": {"type": "array", "items": {"type": "object", "properties": {"content": {"type": "string"}}}}
            },
            "additionalProperties": false
        }));
        let e = v.check(&json!({"testPrompt": "SECRET-PROMPT"})).unwrap_err();
        assert_eq!(e.message, "`testPrompt`: the value is longer than 5 characters");
        let e = v.check(&json!({"messages": [{"content": ["SECRET"]}]})).unwrap_err();
        assert_eq!(e.message, "`messages.0.content`: the value is not of type \"string\"");
        let key = format!("SECRET{}", "k".repeat(100));
        let e = v.check(&json!({ key: 1 })).unwrap_err();
        assert!(e.message.starts_with("the arguments: properties not in the schema are not allowed"), "{}", e.message);
        assert!(e.message.len() < 200, "{}", e.message);
    }
}
