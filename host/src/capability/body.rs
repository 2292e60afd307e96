//! Request bodies against the capability table: a row without a body
//! schema allows no body; a row with one allows only JSON it accepts. What
//! is sent is the validated JSON re-serialised, so the gateway parses
//! exactly what was checked (no parser differences over duplicate keys,
//! escapes or trailing bytes).

use super::table::{CAPABILITY_TABLE, CapabilityRow};
use serde_json::Value;
use std::sync::LazyLock;

/// The compiled body schemas, one per table row (`None`: no body allowed).
static VALIDATORS: LazyLock<Vec<Option<jsonschema::Validator>>> = LazyLock::new(|| {
    CAPABILITY_TABLE
        .iter()
        .map(|row| {
            row.body.map(|schema| {
                let schema: Value = serde_json::from_str(schema)
                    .unwrap_or_else(|e| panic!("body schema of {} {} is not JSON: {e}", row.method, row.pattern));
                jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("body schema of {} {} does not compile: {e}", row.method, row.pattern))
            })
        })
        .collect()
});

/// Checks `body` against table row `index`; returns the body to send.
/// The reason names the field and the rule, never a value from the body.
pub(crate) fn check(index: usize, row: &CapabilityRow, body: Option<&str>) -> Result<Option<String>, String> {
    let validator = VALIDATORS.get(index).and_then(Option::as_ref);
    match (validator, body) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(format!("{} {} takes no request body", row.method, row.pattern)),
        (Some(_), None) => Err(format!("{} {} needs a JSON body", row.method, row.pattern)),
        (Some(validator), Some(text)) => {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                format!("the body of {} {} is not JSON (line {}, column {})", row.method, row.pattern, e.line(), e.column())
            })?;
            if let Some(error) = validator.iter_errors(&value).next() {
                let field = error.instance_path().to_string();
                let field = if field.is_empty() { "the body".to_owned() } else { format!("`{field}`") };
                return Err(format!(
                    "the body of {} {} is not one this capability allows: {field} breaks the rule `{}`",
                    row.method,
                    row.pattern,
                    error.schema_path()
                ));
            }
            Ok(Some(value.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_schema_compiles() {
        assert_eq!(VALIDATORS.len(), CAPABILITY_TABLE.len());
        let writes = CAPABILITY_TABLE.iter().filter(|r| r.body.is_some()).count();
        assert_eq!(VALIDATORS.iter().flatten().count(), writes);
    }
}
