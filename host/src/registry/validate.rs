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

    /// Checks `args`; on failure reports the first error with its field.
    pub fn check(&self, args: &Value) -> Result<(), ArgumentError> {
        match self.validator.iter_errors(args).next() {
            None => Ok(()),
            Some(error) => {
                let field = error.instance_path().to_string();
                let location = if field.is_empty() {
                    "the arguments".to_owned()
                } else {
                    format!("`{}`", field.trim_start_matches('/').replace('/', "."))
                };
                Err(ArgumentError {
                    field,
                    message: format!("{location}: {error}"),
                })
            }
        }
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
}
