//! Checks of a tool's self-description and outputs: the shape the host
//! reads, agreement with `tool.toml`, the output schema, and the gateway
//! failures every tool must word the same way.

use omniroute_tool_sdk::schema::DRAFT_07;
use omniroute_tool_sdk::{GatewayError, Method, Tool, describe_json};
use serde_json::Value;

use crate::fake_gateway::Reply;

/// The gateway failures every tool must report with the contract's texts
/// as `(reply for method path, expected error text)`:
/// unreachable, timeout, a JSON 401 (pretty-printed, shown compact), a JSON
/// 500, a 404 HTML page (shown by size only) and a non-JSON 2xx.
///
/// ```
/// use omniroute_tool_testing::{FakeGateway, gateway_failures};
/// use omniroute_tool_sdk::{Gateway, Method};
/// for (reply, text) in gateway_failures(Method::Get, "/api/combos") {
///     let gw = FakeGateway::new().on_get("/api/combos", reply);
///     assert_eq!(gw.get_json("/api/combos", &[]).unwrap_err().message, text);
/// }
/// ```
pub fn gateway_failures(method: Method, path: &str) -> Vec<(Reply, String)> {
    let source = format!("{method} {path}");
    let html = format!(
        "<!DOCTYPE html><html><body>{}</body></html>",
        "x".repeat(2000)
    );
    vec![
        (
            Reply::unreachable("connect ECONNREFUSED 127.0.0.1:20128"),
            format!("OmniRoute API unreachable: {source}: connect ECONNREFUSED 127.0.0.1:20128"),
        ),
        (
            Reply::error(GatewayError::Timeout(15)),
            format!("OmniRoute API timeout after 15 s: {source}"),
        ),
        (
            Reply::json(401, "{\n  \"error\": \"Authentication required\"\n}"),
            r#"OmniRoute API error [401]: {"error":"Authentication required"}"#.to_string(),
        ),
        (
            Reply::json(500, r#"{"error":"Internal Server Error"}"#),
            r#"OmniRoute API error [500]: {"error":"Internal Server Error"}"#.to_string(),
        ),
        (
            Reply::status(404, html.clone()),
            format!(
                "OmniRoute API error [404]: <non-JSON body, {} bytes>",
                html.len()
            ),
        ),
        (
            Reply::status(200, "not json"),
            "OmniRoute API error [200]: <non-JSON body, 8 bytes>".to_string(),
        ),
    ]
}

/// The published input schema of a session tool without its last property,
/// the host's optional `sessionId` (asserted to be the SDK's), as JSON text:
/// the original's schema, for the tests that pin it.
pub fn input_schema_without_session_id(desc: &Value) -> String {
    let mut input = desc["inputSchema"].clone();
    let properties = input["properties"].as_object_mut().expect("inputSchema.properties is an object");
    assert_eq!(properties.keys().last().map(String::as_str), Some("sessionId"), "sessionId is the last input property");
    let session_id = properties.remove("sessionId");
    assert_eq!(session_id, Some(omniroute_tool_sdk::schema::session_id()), "sessionId is the SDK's");
    input.to_string()
}

/// Checks the shape of `T::describe()` as the host will read it: key order,
/// a draft-07 object input schema, an object output schema, non-empty
/// scopes, the four annotation hints. Panics with the problem.
pub fn check_description<T: Tool>() -> Value {
    let desc: Value = serde_json::from_str(&describe_json::<T>()).expect("describe() is JSON");
    let keys: Vec<&str> = desc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        // The optional audit hint comes last when present.
        .filter(|k| *k != "audit")
        .collect();
    if let Some(audit) = desc.get("audit") {
        let pointer = audit["output"].as_str().expect("audit.output is a string");
        assert!(
            pointer.starts_with('/'),
            "audit.output must be a JSON pointer, got {pointer:?}"
        );
    }
    assert_eq!(
        keys,
        [
            "name",
            "title",
            "description",
            "inputSchema",
            "outputSchema",
            "scopes",
            "annotations"
        ],
        "describe() keys"
    );
    let input = &desc["inputSchema"];
    assert_eq!(input["$schema"], DRAFT_07, "inputSchema.$schema");
    assert_eq!(input["type"], "object", "inputSchema.type");
    assert!(input["properties"].is_object(), "inputSchema.properties");
    if let Some(required) = input.get("required") {
        assert!(
            !required.as_array().unwrap().is_empty(),
            "required only when non-empty"
        );
    }
    assert_eq!(desc["outputSchema"]["type"], "object", "outputSchema.type");
    assert!(!desc["scopes"].as_array().unwrap().is_empty(), "scopes");
    for hint in [
        "readOnlyHint",
        "destructiveHint",
        "idempotentHint",
        "openWorldHint",
    ] {
        assert!(desc["annotations"][hint].is_boolean(), "annotations.{hint}");
    }
    desc
}

/// Checks that a tool's `tool.toml` names the same tool and scopes as
/// `describe()` (the host refuses to load a component where they differ).
/// Reads only the simple `key = value` lines these manifests use.
pub fn check_manifest<T: Tool>(manifest: &str) {
    let desc = T::describe();
    let field = |key: &str| -> Value {
        manifest
            .lines()
            .find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key)
                    .then(|| serde_json::from_str(v.trim()).expect("a JSON-compatible TOML value"))
            })
            .unwrap_or_else(|| panic!("tool.toml has no `{key}`"))
    };
    assert_eq!(field("name"), desc.name, "tool.toml name vs describe()");
    assert_eq!(
        field("scopes"),
        serde_json::json!(desc.scopes),
        "tool.toml scopes vs describe()"
    );
}

/// Validates `value` against `schema`, supporting the keywords tool schemas
/// use (`type`, `properties`, `required`, `items`, `enum`,
/// `additionalProperties`, `maxLength` plus annotations). An unsupported
/// keyword is an error, so a schema cannot silently go unchecked.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(schema, value, "$")
}

fn validate_at(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return match schema {
            Value::Bool(true) => Ok(()),
            _ => Err(format!("{at}: schema is not an object")),
        };
    };
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "$schema" | "description" | "title" | "default" | "required" => {}
            "type" => {
                let allowed: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("{at}: bad `type`")),
                };
                if !allowed.iter().any(|t| has_type(value, t)) {
                    return Err(format!("{at}: {value} is not of type {allowed:?}"));
                }
            }
            "enum" => {
                if !rule
                    .as_array()
                    .is_some_and(|options| options.contains(value))
                {
                    return Err(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "maxLength" => {
                if let (Some(s), Some(max)) = (value.as_str(), rule.as_u64())
                    && s.chars().count() as u64 > max
                {
                    return Err(format!("{at}: longer than {max}"));
                }
            }
            "properties" => {
                if let Some(obj) = value.as_object() {
                    for (name, sub) in rule.as_object().ok_or(format!("{at}: bad `properties`"))? {
                        if let Some(v) = obj.get(name) {
                            validate_at(sub, v, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(obj) = value.as_object() {
                    let known = schema.get("properties").and_then(Value::as_object);
                    for (name, v) in obj {
                        if known.is_none_or(|k| !k.contains_key(name)) {
                            match rule {
                                Value::Bool(false) => {
                                    return Err(format!("{at}: unexpected property `{name}`"));
                                }
                                _ => validate_at(rule, v, &format!("{at}.{name}"))?,
                            }
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        validate_at(rule, v, &format!("{at}[{i}]"))?;
                    }
                }
            }
            other => {
                return Err(format!(
                    "{at}: unsupported keyword `{other}` in this checker"
                ));
            }
        }
    }
    if let (Some(required), Some(obj)) = (schema.get("required"), value.as_object()) {
        for name in required.as_array().ok_or(format!("{at}: bad `required`"))? {
            let name = name.as_str().ok_or(format!("{at}: bad `required`"))?;
            if !obj.contains_key(name) {
                return Err(format!("{at}: missing required property `{name}`"));
            }
        }
    }
    Ok(())
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|x| x.fract() == 0.0),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// Asserts that `output` validates against `T`'s declared output schema.
pub fn assert_output_valid<T: Tool>(output: &Value) {
    if let Err(problem) = validate(&T::describe().output_schema, output) {
        panic!("output does not match the outputSchema: {problem}\noutput: {output:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validator_checks_what_it_claims() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": ["number", "null"]},
                "b": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
            },
            "required": ["a"],
            "additionalProperties": false,
        });
        assert!(validate(&schema, &json!({"a": null, "b": ["x"]})).is_ok());
        assert!(
            validate(&schema, &json!({"b": []}))
                .unwrap_err()
                .contains("missing required")
        );
        assert!(
            validate(&schema, &json!({"a": "1"}))
                .unwrap_err()
                .contains("not of type")
        );
        assert!(
            validate(&schema, &json!({"a": 1, "b": ["z"]}))
                .unwrap_err()
                .contains("not one of")
        );
        assert!(
            validate(&schema, &json!({"a": 1, "c": 1}))
                .unwrap_err()
                .contains("unexpected")
        );
        assert!(
            validate(&json!({"oneOf": []}), &json!(1))
                .unwrap_err()
                .contains("unsupported")
        );
    }
}
