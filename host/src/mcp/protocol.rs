//! Answers for requests rmcp could not route. A method it does not know is
//! "method not found"; a method it knows whose params do not parse (rmcp
//! then hands it over as a custom request) is "invalid params" naming the
//! field. Neither echoes what the client sent beyond a short prefix: a 5 MB
//! method name must not come back in the error, nor reach the log whole.

use rmcp::ErrorData as McpError;
use rmcp::model::ErrorCode;
use serde_json::Value;

/// The requests a client may send (rmcp's `ClientRequest`), besides `tools/call`.
const KNOWN_METHODS: [&str; 20] = [
    "ping",
    "initialize",
    "server/discover",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/directory/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "tools/list",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "skills/list",
    "skills/get",
];

/// Methods revision 2026-07-28 removed (SEP-2575): a request of that
/// revision naming one is "method not found" (HTTP 404), not a malformed
/// request of a method we serve.
const REMOVED_IN_2026_07_28: [&str; 5] = ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// The `_meta` key that carries a 2026-07-28 request's protocol revision.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// How much of a client-chosen method name an error repeats.
const ECHO_CHARS: usize = 64;

/// The error for a request no handler took; `meta` is the request's `_meta`
/// (rmcp hands it over apart from the params).
pub(super) fn unroutable(method: &str, params: Option<&Value>, meta: Option<&serde_json::Map<String, Value>>) -> McpError {
    if method == "tools/call" {
        return McpError::invalid_params(format!("Invalid params for tools/call: {}", call_params_problem(params)), None);
    }
    if KNOWN_METHODS.contains(&method) && !(REMOVED_IN_2026_07_28.contains(&method) && is_stateless_revision(meta)) {
        return McpError::invalid_params(
            format!("Invalid params for {method}: they do not match the method's schema in the MCP specification"),
            None,
        );
    }
    McpError::new(ErrorCode::METHOD_NOT_FOUND, format!("Method not found: {}", clip(method)), None)
}

/// Whether the request says in its `_meta` that it speaks a revision
/// without the initialize handshake (2026-07-28 or later).
fn is_stateless_revision(meta: Option<&serde_json::Map<String, Value>>) -> bool {
    meta.and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str)
        .is_some_and(|v| v >= "2026-07-28")
}

/// Which field of a `tools/call` is wrong, and the rule it breaks.
fn call_params_problem(params: Option<&Value>) -> String {
    let Some(Value::Object(params)) = params else {
        return "`params` must be an object with `name` (a tool name) and `arguments` (an object)".to_owned();
    };
    if !params.get("name").is_some_and(Value::is_string) {
        return "`name` must be a string naming a tool (see tools/list)".to_owned();
    }
    match params.get("arguments") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => {
            return format!(
                "`arguments` must be an object holding the tool's input (e.g. {{}}), not {}",
                kind(other)
            );
        }
    }
    if params.get("_meta").is_some_and(|m| !m.is_object() && !m.is_null()) {
        return "`_meta` must be an object".to_owned();
    }
    "the params do not match the tools/call schema in the MCP specification".to_owned()
}

/// A JSON value's kind, never its content.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first [`ECHO_CHARS`] characters, with how long the whole was.
fn clip(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_of_the_wrong_kind_are_invalid_params_naming_the_field() {
        let e = unroutable("tools/call", Some(&json!({"name": "t", "arguments": "nope"})), None);
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
        assert!(e.message.contains("`arguments` must be an object") && e.message.ends_with("not a string"), "{}", e.message);
        assert!(!e.message.contains("nope"), "{}", e.message);
        let e = unroutable("tools/call", Some(&json!({"arguments": {}})), None);
        assert!(e.message.contains("`name`"), "{}", e.message);
        let e = unroutable("tools/call", Some(&json!("SECRET")), None);
        assert!(e.message.contains("`params`") && !e.message.contains("SECRET"), "{}", e.message);
        let e = unroutable("tools/list", Some(&json!({"cursor": 5})), None);
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    }

    #[test]
    fn unknown_methods_are_named_only_by_a_short_prefix() {
        let e = unroutable("no/such/method", None, None);
        assert_eq!(e.code, ErrorCode::METHOD_NOT_FOUND);
        assert_eq!(e.message, "Method not found: no/such/method");
        let huge = "é".repeat(3_000_000);
        let e = unroutable(&huge, None, None);
        assert_eq!(e.code, ErrorCode::METHOD_NOT_FOUND);
        assert!(e.message.len() < 200, "{} bytes", e.message.len());
        assert!(e.message.ends_with("(6000000 bytes)"), "{}", e.message);
    }

    #[test]
    fn methods_removed_in_2026_07_28_are_not_found_for_that_revision_only() {
        let meta = |v: &str| json!({"io.modelcontextprotocol/protocolVersion": v}).as_object().cloned().unwrap();
        for method in REMOVED_IN_2026_07_28 {
            assert_eq!(unroutable(method, None, Some(&meta("2026-07-28"))).code, ErrorCode::METHOD_NOT_FOUND, "{method}");
            assert_eq!(unroutable(method, None, Some(&meta("2025-11-25"))).code, ErrorCode::INVALID_PARAMS, "{method}");
            assert_eq!(unroutable(method, None, None).code, ErrorCode::INVALID_PARAMS, "{method}");
        }
        assert_eq!(unroutable("tools/list", Some(&json!({"cursor": 5})), Some(&meta("2026-07-28"))).code, ErrorCode::INVALID_PARAMS);
    }
}
