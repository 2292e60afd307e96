//! Chat completions as tools see them: the request path, the routing
//! headers of a response (spec A.5) and the headers the host adds about
//! what its budget guard did (`x-omniroute-mcp-*`, WIT `gateway.response`).

use serde_json::{Value, json};

use crate::gateway::{Method, Request, Response};

/// `POST /v1/chat/completions`.
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
    pub const TOKENS_IN: &str = "x-omniroute-tokens-in";
    pub const TOKENS_OUT: &str = "x-omniroute-tokens-out";
    /// `HIT` or `MISS`.
    pub const CACHE: &str = "x-omniroute-cache";
    /// Added by the host: the budget guard sent the completion elsewhere;
    /// the original target.
    pub const MCP_DEGRADED_FROM: &str = "x-omniroute-mcp-degraded-from";
    /// Added by the host, if it says so: the degrade target.
    pub const MCP_DEGRADED_TO: &str = "x-omniroute-mcp-degraded-to";
    /// Added by the host: one per budget warning.
    pub const MCP_WARNING: &str = "x-omniroute-mcp-warning";
}

/// A non-streaming completion request for `model` with these messages.
pub fn request(model: &str, messages: &Value, max_tokens: Option<u32>) -> Request {
    let mut body = json!({ "model": model, "messages": messages });
    if let Some(max) = max_tokens {
        body["max_tokens"] = json!(max);
    }
    body["stream"] = json!(false);
    Request::new(Method::Post, COMPLETIONS).json_body(&body)
}

/// The routing facts of a completion response, from its headers.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    pub request_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub cost: Option<f64>,
    pub latency_ms: Option<f64>,
    pub cache: Option<String>,
    pub tokens_in: Option<f64>,
    pub tokens_out: Option<f64>,
}

impl Served {
    pub fn from_headers(response: &Response) -> Served {
        let text = |name| response.header(name).map(str::to_string);
        Served {
            request_id: text(headers::REQUEST_ID),
            provider: text(headers::PROVIDER),
            model: text(headers::MODEL),
            cost: response.header_number(headers::COST),
            latency_ms: response.header_number(headers::LATENCY_MS),
            cache: text(headers::CACHE),
            tokens_in: response.header_number(headers::TOKENS_IN),
            tokens_out: response.header_number(headers::TOKENS_OUT),
        }
    }

    /// Input + output tokens: the headers' counts (what the gateway
    /// accounts), each falling back to the body's `usage`; `None` when
    /// neither knows either count.
    pub fn token_count(&self, body: &Value) -> Option<f64> {
        let usage = |key: &str| body["usage"][key].as_f64().filter(|x| x.is_finite());
        let tokens_in = self.tokens_in.or_else(|| usage("prompt_tokens"));
        let tokens_out = self.tokens_out.or_else(|| usage("completion_tokens"));
        match (tokens_in, tokens_out) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        }
    }
}

/// The host's budget warnings on a response, in order.
pub fn host_warnings(response: &Response) -> Vec<String> {
    response
        .header_values(headers::MCP_WARNING)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// What the host's budget guard did to a completion: retargeted it from
/// `from` to `to` (`to` from the host's `x-omniroute-mcp-degraded-to`
/// header, else read from its degrade warning; `None` when neither says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Degrade {
    pub from: String,
    pub to: Option<String>,
}

/// The guard's retargeting of this response, if any.
pub fn degrade_of(response: &Response) -> Option<Degrade> {
    let from = response.header(headers::MCP_DEGRADED_FROM)?.to_string();
    let to = response
        .header(headers::MCP_DEGRADED_TO)
        .map(str::to_string)
        .or_else(|| {
            host_warnings(response)
                .iter()
                .find_map(|w| degrade_target_in(w, &from))
        });
    Some(Degrade { from, to })
}

/// The target in the C.0.8 warning
/// `Budget guard degraded the request from "<original>" to "<target>" (tier <tier>).`
fn degrade_target_in(warning: &str, from: &str) -> Option<String> {
    let prefix = format!("Budget guard degraded the request from \"{from}\" to \"");
    let rest = warning.strip_prefix(&prefix)?;
    let end = rest.rfind("\" (tier ")?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Reply;

    fn response(reply: Reply) -> Response {
        match reply {
            Reply::Response(r) => r,
            Reply::Error(e) => panic!("{e:?}"),
        }
    }

    const PRICED: &str =
        include_str!("../../../tests/fixtures/gateway/chat-completion-priced.json");

    #[test]
    fn served_from_the_priced_capture() {
        let r = response(Reply::capture(PRICED));
        let s = Served::from_headers(&r);
        assert_eq!(
            s.request_id.as_deref(),
            Some("0a95b984-132a-4f78-a212-d46c7fff82ad")
        );
        assert_eq!(s.cost, Some(0.0000285));
        assert_eq!(s.tokens_in, Some(7.0));
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(s.token_count(&body), Some(10.0));
        let bare = Served::from_headers(&response(Reply::json(200, "{}")));
        assert_eq!(
            bare.token_count(&body),
            Some(2010.0),
            "falls back to body usage"
        );
        assert_eq!(bare.token_count(&json!({})), None);
    }

    #[test]
    fn host_headers() {
        let warning =
            "Budget guard degraded the request from \"coding-fast\" to \"free-tier\" (tier free).";
        let r = response(
            Reply::json(200, "{}")
                .header(headers::MCP_DEGRADED_FROM, "coding-fast")
                .header(headers::MCP_WARNING, warning),
        );
        assert_eq!(host_warnings(&r), [warning]);
        assert_eq!(
            degrade_of(&r),
            Some(Degrade {
                from: "coding-fast".into(),
                to: Some("free-tier".into())
            })
        );
        let mut r2 = r.clone();
        r2.headers
            .push((headers::MCP_DEGRADED_TO.into(), "cheap".into()));
        r2.headers
            .push((headers::MCP_WARNING.into(), "second".into()));
        assert_eq!(degrade_of(&r2).unwrap().to.as_deref(), Some("cheap"));
        assert_eq!(host_warnings(&r2), [warning, "second"]);
        assert_eq!(degrade_of(&response(Reply::json(200, "{}"))), None);
        let odd = response(Reply::json(200, "{}").header(headers::MCP_DEGRADED_FROM, "x"));
        assert_eq!(
            degrade_of(&odd),
            Some(Degrade {
                from: "x".into(),
                to: None
            })
        );
    }

    #[test]
    fn request_body_shape() {
        let r = request("m", &json!([{"role":"user","content":"hi"}]), Some(50));
        assert_eq!(
            r.body.as_deref(),
            Some(
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"stream":false}"#
            )
        );
        assert_eq!(
            request("m", &json!([]), None).body.as_deref(),
            Some(r#"{"model":"m","messages":[],"stream":false}"#)
        );
    }
}
