//! Turning a sandbox outcome into an MCP tool result: the JSON as pretty text
//! (as the original prints it) and as `structuredContent`; failures as
//! `isError` results with `Error: <message>`, which agents can act on.

use crate::json_text::to_js_pretty;
use crate::runtime::{CallError, CallOutcome, StopCause};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

/// A successful result carrying `value`.
pub fn output_result(value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(to_js_pretty(&value))]);
    if value.is_object() {
        result.structured_content = Some(value);
    }
    result
}

/// An error result: `Error: <message>`, `isError: true`.
pub fn error_result(message: impl AsRef<str>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("Error: {}", message.as_ref()))])
}

/// The result's `_meta` key naming what stopped the call (`cpu`, `wall`,
/// `memory`, ...) or the limit it reached (`requests`).
pub const STOP_CAUSE_META: &str = "omniroute-mcp/stopCause";

/// Marks `result` with the stop cause, when there is one.
pub(crate) fn with_stop_cause(mut result: CallToolResult, cause: Option<StopCause>) -> CallToolResult {
    if let Some(cause) = cause {
        let mut meta = result.meta.take().unwrap_or_default();
        meta.0.insert(STOP_CAUSE_META.to_owned(), Value::String(cause.as_str().to_owned()));
        result.meta = Some(meta);
    }
    result
}

/// The result of a guest output already parsed (`parsed`).
pub(crate) fn from_output(tool: &str, parsed: Result<Value, serde_json::Error>) -> CallToolResult {
    match parsed {
        Ok(value) => output_result(value),
        Err(e) => error_result(format!(
            "The tool {tool} returned output that is not JSON ({e}); this is a bug in the tool, report it to its author."
        )),
    }
}

pub(crate) fn from_outcome(tool: &str, outcome: Result<CallOutcome, CallError>) -> CallToolResult {
    match outcome {
        Ok(CallOutcome::Output(text)) => from_output(tool, serde_json::from_str::<Value>(&text)),
        Ok(CallOutcome::ToolError(message)) => error_result(message),
        Err(e) => {
            tracing::warn!(tool, error = %e, "tool call stopped by the sandbox");
            let hint = match e {
                CallError::Wall(_) => " Try again later; if it persists, the gateway may be slow or the tool stuck.",
                CallError::Cpu(_) => " The tool computed for too long; narrow the request, or report it to the tool's author.",
                CallError::Memory(_) | CallError::Output(..) => " Narrow the request (filters, fewer items).",
                CallError::Crash(_) => " This is a bug in the tool; the next call starts fresh.",
                CallError::Start(_) => " The server may be overloaded; try again.",
                CallError::Cancelled => "",
            };
            error_result(format!("The tool {tool} {e}.{hint}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_has_text_and_structured_content() {
        let r = from_outcome("t", Ok(CallOutcome::Output("{\"cost\":2.85e-5}".into())));
        assert_eq!(r.is_error, Some(false));
        let text = r.content[0].as_text().unwrap().text.clone();
        assert_eq!(text, "{\n  \"cost\": 0.0000285\n}");
        assert_eq!(r.structured_content.unwrap()["cost"], 0.0000285);
    }

    #[test]
    fn errors_are_results() {
        let r = from_outcome("t", Ok(CallOutcome::ToolError("Combo not found: \"x\"".into())));
        assert_eq!(r.is_error, Some(true));
        assert_eq!(r.content[0].as_text().unwrap().text, "Error: Combo not found: \"x\"");
        let r = from_outcome("t", Err(CallError::Wall(2000)));
        let text = &r.content[0].as_text().unwrap().text;
        assert!(text.starts_with("Error: The tool t exceeded its 2000 ms deadline"), "{text}");
        let r = with_stop_cause(from_outcome("t", Err(CallError::Cpu(2000))), Some(StopCause::Cpu));
        assert_eq!(r.meta.unwrap().0[STOP_CAUSE_META], "cpu");
        let r = from_outcome("t", Ok(CallOutcome::Output("nope".into())));
        assert_eq!(r.is_error, Some(true));
    }
}
