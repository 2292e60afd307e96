//! Reading tool arguments. The host has validated the input against the
//! published schema before the call, so these only guard against a host
//! that did not (or a schema that is looser than the tool); their errors
//! read `Invalid input: <key> must be …`.

use serde_json::Value;

use crate::tool::ToolError;

/// A required string argument.
pub fn string<'a>(input: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    input[key]
        .as_str()
        .ok_or_else(|| ToolError::invalid_input(format!("{key} must be a string")))
}

/// A required finite number argument.
pub fn number(input: &Value, key: &str) -> Result<f64, ToolError> {
    optional_number(input, key)
        .ok_or_else(|| ToolError::invalid_input(format!("{key} must be a number")))
}

/// An optional finite number argument (`None` when absent or not a number).
pub fn optional_number(input: &Value, key: &str) -> Option<f64> {
    input[key].as_f64().filter(|x| x.is_finite())
}

/// A required boolean argument.
pub fn boolean(input: &Value, key: &str) -> Result<bool, ToolError> {
    input[key]
        .as_bool()
        .ok_or_else(|| ToolError::invalid_input(format!("{key} must be a boolean")))
}

/// A required string argument from an enum.
pub fn one_of<'a>(input: &'a Value, key: &str, allowed: &[&str]) -> Result<&'a str, ToolError> {
    input[key]
        .as_str()
        .filter(|v| allowed.contains(v))
        .ok_or_else(|| {
            ToolError::invalid_input(format!("{key} must be one of {}", allowed.join(", ")))
        })
}

/// An optional string argument from an enum: `None` when absent (null),
/// an error when present but not allowed.
pub fn optional_one_of<'a>(
    input: &'a Value,
    key: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, ToolError> {
    match &input[key] {
        Value::Null => Ok(None),
        _ => one_of(input, key, allowed).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_explains() {
        let v = json!({"s": "x", "n": 2.5, "b": true, "e": "b", "bad": "z"});
        assert_eq!(string(&v, "s").unwrap(), "x");
        assert_eq!(
            string(&v, "n").unwrap_err().message(),
            "Invalid input: n must be a string"
        );
        assert_eq!(number(&v, "n").unwrap(), 2.5);
        assert_eq!(
            number(&v, "s").unwrap_err().message(),
            "Invalid input: s must be a number"
        );
        assert_eq!(optional_number(&v, "missing"), None);
        assert!(boolean(&v, "b").unwrap());
        assert!(boolean(&v, "s").is_err());
        assert_eq!(one_of(&v, "e", &["a", "b"]).unwrap(), "b");
        assert_eq!(
            one_of(&v, "bad", &["a", "b"]).unwrap_err().message(),
            "Invalid input: bad must be one of a, b"
        );
        assert_eq!(optional_one_of(&v, "missing", &["a"]).unwrap(), None);
        assert!(optional_one_of(&v, "bad", &["a"]).is_err());
    }
}
