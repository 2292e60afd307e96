//! Chat completions on the wire: the request path, the gateway's routing
//! headers and their one parser ([`Routing`]), and the headers the host adds
//! to a response to say what its budget guard did (`x-omniroute-mcp-*`).
//!
//! The host reads [`Routing`] to fill the ledger; tools read it to report
//! how a completion was served. Both therefore see the same values with the
//! same types (token counts are whole numbers, cost and latency decimals).

use serde_json::Value;

use crate::coerce::parse_number;

/// `POST /v1/chat/completions`: the requests the ledger records.
pub const COMPLETIONS: &str = "/v1/chat/completions";

/// Response header names (compared case-insensitively).
pub mod headers {
    /// Gateway-minted request id.
    pub const REQUEST_ID: &str = "x-request-id";
    /// Serving provider: node id or provider id.
    pub const PROVIDER: &str = "x-omniroute-provider";
    /// Served upstream model, without prefix.
    pub const MODEL: &str = "x-omniroute-model";
    /// Cost in USD, 10 decimals.
    pub const COST: &str = "x-omniroute-response-cost";
    /// Gateway-measured latency.
    pub const LATENCY_MS: &str = "x-omniroute-latency-ms";
    /// Prompt tokens as the gateway accounts them.
    pub const TOKENS_IN: &str = "x-omniroute-tokens-in";
    /// Completion tokens as the gateway accounts them.
    pub const TOKENS_OUT: &str = "x-omniroute-tokens-out";
    /// `HIT` or `MISS`.
    pub const CACHE: &str = "x-omniroute-cache";
    /// The prefix of every header the host adds; a gateway response never carries one.
    pub const MCP_PREFIX: &str = "x-omniroute-mcp-";
    /// Added by the host: the budget guard sent the completion elsewhere;
    /// the original target.
    pub const MCP_DEGRADED_FROM: &str = "x-omniroute-mcp-degraded-from";
    /// Added by the host with [`MCP_DEGRADED_FROM`]: the degrade target.
    pub const MCP_DEGRADED_TO: &str = "x-omniroute-mcp-degraded-to";
    /// Added by the host: one per budget warning.
    pub const MCP_WARNING: &str = "x-omniroute-mcp-warning";
}

/// The first value of header `name` (compared case-insensitively, as HTTP
/// requires), trimmed; `None` when absent or blank.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The routing facts of a completion response, as the gateway reports them
/// in its headers; each `None` when the gateway did not say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `x-omniroute-provider`: node id or provider id.
    pub provider: Option<String>,
    /// `x-omniroute-model`: the upstream model, without prefix.
    pub model: Option<String>,
    /// `x-omniroute-response-cost`, USD.
    pub cost: Option<f64>,
    /// `x-omniroute-latency-ms`.
    pub latency_ms: Option<f64>,
    /// `x-omniroute-tokens-in`.
    pub tokens_in: Option<u64>,
    /// `x-omniroute-tokens-out`.
    pub tokens_out: Option<u64>,
    /// `x-omniroute-cache`: `HIT` or `MISS`.
    pub cache: Option<String>,
}

impl Routing {
    /// Reads the routing headers. Text values are trimmed and blank ones
    /// dropped; a number that does not parse is `None`, never 0.
    pub fn from_headers(all: &[(String, String)]) -> Routing {
        let text = |name| header(all, name).map(str::to_string);
        let decimal = |name| header(all, name).and_then(parse_number);
        let count = |name| header(all, name).and_then(|v| v.parse::<u64>().ok());
        Routing {
            request_id: text(headers::REQUEST_ID),
            provider: text(headers::PROVIDER),
            model: text(headers::MODEL),
            cost: decimal(headers::COST),
            latency_ms: decimal(headers::LATENCY_MS),
            tokens_in: count(headers::TOKENS_IN),
            tokens_out: count(headers::TOKENS_OUT),
            cache: text(headers::CACHE),
        }
    }

    /// Fills the token counts the headers did not carry from the body's
    /// `usage` (`prompt_tokens`, `completion_tokens`). The headers are the
    /// gateway's accounting and win whenever present; only a successful
    /// completion's body should be read this way.
    pub fn fill_tokens_from_usage(&mut self, body: &Value) {
        let usage = |key: &str| body["usage"][key].as_u64();
        self.tokens_in = self.tokens_in.or_else(|| usage("prompt_tokens"));
        self.tokens_out = self.tokens_out.or_else(|| usage("completion_tokens"));
    }

    /// Input + output tokens; `None` unless both counts are known.
    pub fn total_tokens(&self) -> Option<u64> {
        Some(self.tokens_in? + self.tokens_out?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniroute_tool_testing::fixtures::{CHAT_COMPLETION_PRICED, CHAT_ERROR_BREAKER_OPEN};
    use serde_json::json;

    /// The headers and body of a capture fixture `{request, status, headers{…}, body}`.
    fn capture(fixture: &str) -> (Vec<(String, String)>, Value) {
        let capture: Value = serde_json::from_str(fixture).unwrap();
        let headers = capture["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        (headers, capture["body"].clone())
    }

    #[test]
    fn routing_from_the_priced_capture() {
        let (headers, body) = capture(CHAT_COMPLETION_PRICED);
        let mut r = Routing::from_headers(&headers);
        assert_eq!(
            r.request_id.as_deref(),
            Some("0a95b984-132a-4f78-a212-d46c7fff82ad")
        );
        assert_eq!(r.cost, Some(0.0000285));
        assert_eq!(r.model.as_deref(), Some("mock-small"));
        assert_eq!(r.cache.as_deref(), Some("MISS"));
        assert_eq!((r.tokens_in, r.tokens_out), (Some(7), Some(3)));
        r.fill_tokens_from_usage(&body);
        assert_eq!(
            r.total_tokens(),
            Some(10),
            "headers win over the body's usage"
        );
    }

    #[test]
    fn usage_fills_only_what_the_headers_lack() {
        let (_, body) = capture(CHAT_COMPLETION_PRICED);
        let mut bare = Routing::default();
        bare.fill_tokens_from_usage(&body);
        assert_eq!(
            bare.total_tokens(),
            Some(2010),
            "body usage when the headers are absent"
        );
        let mut half = Routing {
            tokens_in: Some(7),
            ..Routing::default()
        };
        half.fill_tokens_from_usage(&json!({}));
        assert_eq!(
            half.total_tokens(),
            None,
            "one unknown count makes the total unknown"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_checked() {
        let headers = vec![
            ("X-OmniRoute-Tokens-In".to_string(), " 12 ".to_string()),
            ("x-omniroute-tokens-out".to_string(), "7.5".to_string()),
            ("x-omniroute-response-cost".to_string(), "abc".to_string()),
            ("x-omniroute-provider".to_string(), "   ".to_string()),
            ("x-omniroute-latency-ms".to_string(), "78".to_string()),
        ];
        let r = Routing::from_headers(&headers);
        assert_eq!(r.tokens_in, Some(12));
        assert_eq!(r.tokens_out, None, "token counts are whole numbers");
        assert_eq!(r.cost, None);
        assert_eq!(r.provider, None);
        assert_eq!(r.latency_ms, Some(78.0));
        assert_eq!(header(&headers, "x-omniroute-tokens-in"), Some("12"));
    }

    #[test]
    fn a_failed_completion_carries_an_id_but_no_cost() {
        let (headers, _) = capture(CHAT_ERROR_BREAKER_OPEN);
        let r = Routing::from_headers(&headers);
        assert_eq!(r.cost, None);
        assert_eq!(r.tokens_in, None);
    }
}
