//! The gateway error texts, in one place, so every tool words
//! the same failure the same way and agents can rely on the prefixes.

use std::fmt;

use serde_json::Value;

use crate::wire::{GatewayError, Request};

/// Body text longer than this many characters is cut.
pub const MAX_BODY_CHARS: usize = 1000;

/// `OmniRoute API error [<status>]: <body>`.
///
/// `<body>` is the compact JSON when the body parses as JSON, otherwise
/// `<non-JSON body, <n> bytes>`: the gateway's 404 pages are ~250 KB of HTML
/// that no agent should read. The body text is cut to 1000 characters + `…`.
pub fn api_error_text(status: u16, body: &str) -> String {
    let shown = match serde_json::from_str::<Value>(body) {
        Ok(json) => truncate(&json.to_string(), MAX_BODY_CHARS),
        Err(_) => non_json_body(body),
    };
    format!("OmniRoute API error [{status}]: {shown}")
}

/// `OmniRoute API error [<status>]: <non-JSON body, <n> bytes>` for a 2xx
/// answer whose body is not the JSON the tool needs.
pub fn non_json_text(status: u16, body: &str) -> String {
    format!("OmniRoute API error [{status}]: {}", non_json_body(body))
}

/// `OmniRoute API unreachable: <METHOD> <path>: <reason>`.
pub fn unreachable_text(req: &Request, reason: &str) -> String {
    format!("OmniRoute API unreachable: {}: {reason}", req.source())
}

/// `OmniRoute API timeout after <n> s: <METHOD> <path>`.
pub fn timeout_text(req: &Request, seconds: u32) -> String {
    format!("OmniRoute API timeout after {seconds} s: {}", req.source())
}

/// `Not permitted: <METHOD> <path> is outside the scopes granted to this call (<detail>)`.
pub fn denied_text(req: &Request, detail: &str) -> String {
    format!(
        "Not permitted: {} is outside the scopes granted to this call ({detail})",
        req.source()
    )
}

/// `OmniRoute API response too large: <METHOD> <path>`.
pub fn too_large_text(req: &Request) -> String {
    format!("OmniRoute API response too large: {}", req.source())
}

/// `Invalid gateway request: <detail>`.
pub fn invalid_text(detail: &str) -> String {
    format!("Invalid gateway request: {detail}")
}

/// The text for a transport-level error reported by the host.
pub fn error_text(req: &Request, err: &GatewayError) -> String {
    match err {
        GatewayError::Denied(detail) => denied_text(req, detail),
        GatewayError::Timeout(seconds) => timeout_text(req, *seconds),
        GatewayError::Unreachable(reason) => unreachable_text(req, reason),
        GatewayError::TooLarge => too_large_text(req),
        GatewayError::Invalid(detail) => invalid_text(detail),
        GatewayError::Auth(message) | GatewayError::Refused(message) => message.clone(),
    }
}

fn non_json_body(body: &str) -> String {
    format!("<non-JSON body, {} bytes>", body.len())
}

/// Cuts `text` to `max` characters and marks the cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A gateway request that did not yield the JSON a tool needed, with the
/// agent-facing text already rendered.
///
/// `source` is `"<METHOD> <path>"` (no query) so multi-source tools can list
/// it in `degraded`; single-source tools return `message` as
/// their error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayFailure {
    pub source: String,
    pub message: String,
    /// The HTTP status when the gateway answered (non-2xx or non-JSON 2xx).
    pub status: Option<u16>,
}

impl GatewayFailure {
    /// A transport-level failure reported by the host.
    pub fn from_error(req: &Request, err: &GatewayError) -> Self {
        GatewayFailure {
            source: req.source(),
            message: error_text(req, err),
            status: None,
        }
    }

    /// A non-2xx answer.
    pub fn from_status(req: &Request, status: u16, body: &str) -> Self {
        GatewayFailure {
            source: req.source(),
            message: api_error_text(status, body),
            status: Some(status),
        }
    }

    /// A 2xx answer whose body is not JSON.
    pub fn non_json(req: &Request, status: u16, body: &str) -> Self {
        GatewayFailure {
            source: req.source(),
            message: non_json_text(status, body),
            status: Some(status),
        }
    }
}

impl fmt::Display for GatewayFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GatewayFailure {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Method;

    fn req() -> Request {
        Request::get("/api/combos").query("combo", "x")
    }

    #[test]
    fn json_body_is_compacted() {
        let body = "{\n  \"error\": \"Combo not found\"\n}";
        assert_eq!(
            api_error_text(404, body),
            r#"OmniRoute API error [404]: {"error":"Combo not found"}"#
        );
    }

    #[test]
    fn fixture_400_body() {
        let body = omniroute_tool_testing::fixtures::USAGE_BUDGET_MISSING_PARAM_400;
        assert_eq!(
            api_error_text(400, body),
            r#"OmniRoute API error [400]: {"error":"apiKeyId query param is required"}"#
        );
    }

    #[test]
    fn html_body_is_summarised_by_size() {
        let body = format!("<!DOCTYPE html><html>{}</html>", "x".repeat(250_000));
        assert_eq!(
            api_error_text(404, &body),
            format!(
                "OmniRoute API error [404]: <non-JSON body, {} bytes>",
                body.len()
            )
        );
    }

    #[test]
    fn long_json_body_is_cut_at_1000_chars() {
        let body = serde_json::json!({ "error": "é".repeat(3000) }).to_string();
        let text = api_error_text(500, &body);
        let shown = text.strip_prefix("OmniRoute API error [500]: ").unwrap();
        assert!(shown.ends_with('…'));
        assert_eq!(shown.chars().count(), MAX_BODY_CHARS + 1);
        assert!(shown.starts_with("{\"error\":\"éé"));
    }

    #[test]
    fn exactly_1000_chars_is_not_cut() {
        let s = "a".repeat(1000);
        assert_eq!(truncate(&s, 1000), s);
        assert_eq!(truncate(&"a".repeat(1001), 1000), format!("{s}…"));
    }

    #[test]
    fn non_json_2xx() {
        assert_eq!(
            non_json_text(200, "hello"),
            "OmniRoute API error [200]: <non-JSON body, 5 bytes>"
        );
    }

    #[test]
    fn transport_errors() {
        let r = req();
        assert_eq!(
            error_text(&r, &GatewayError::Unreachable("connection refused".into())),
            "OmniRoute API unreachable: GET /api/combos: connection refused"
        );
        assert_eq!(
            error_text(&r, &GatewayError::Timeout(15)),
            "OmniRoute API timeout after 15 s: GET /api/combos"
        );
        assert_eq!(
            error_text(&r, &GatewayError::Denied("granted: read:health".into())),
            "Not permitted: GET /api/combos is outside the scopes granted to this call (granted: read:health)"
        );
        assert_eq!(
            error_text(&r, &GatewayError::TooLarge),
            "OmniRoute API response too large: GET /api/combos"
        );
        assert_eq!(
            error_text(&r, &GatewayError::Invalid("too many requests".into())),
            "Invalid gateway request: too many requests"
        );
        assert_eq!(
            error_text(
                &r,
                &GatewayError::Refused("Budget guard blocked the request.".into())
            ),
            "Budget guard blocked the request."
        );
        let put = Request::new(Method::Put, "/api/combos/1");
        assert_eq!(
            error_text(&put, &GatewayError::Timeout(30)),
            "OmniRoute API timeout after 30 s: PUT /api/combos/1"
        );
    }

    #[test]
    fn failure_carries_source_without_query() {
        let f = GatewayFailure::from_status(&req(), 500, r#"{"status":"error"}"#);
        assert_eq!(f.source, "GET /api/combos");
        assert_eq!(f.status, Some(500));
        assert_eq!(
            f.to_string(),
            r#"OmniRoute API error [500]: {"status":"error"}"#
        );
    }
}
