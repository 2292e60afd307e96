//! Chat completions as tools see them: the contract's routing headers and
//! their parser ([`omniroute_tool_contract::completion`], re-exported here),
//! plus building the request and reading what the host's budget guard did
//! from a [`Response`].

pub use omniroute_tool_contract::completion::*;

use omniroute_tool_contract::budget::degrade_target_in;
use serde_json::{Value, json};

use crate::wire::{Method, Request, Response};

/// A non-streaming completion request for `model` with these messages.
pub fn request(model: &str, messages: &Value, max_tokens: Option<u32>) -> Request {
    let mut body = json!({ "model": model, "messages": messages });
    if let Some(max) = max_tokens {
        body["max_tokens"] = json!(max);
    }
    body["stream"] = json!(false);
    Request::new(Method::Post, COMPLETIONS).json_body(&body)
}

/// The routing facts the gateway put in this response's headers.
pub fn routing(response: &Response) -> Routing {
    Routing::from_headers(&response.headers)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: "{}".into(),
            elapsed_ms: 0,
        }
    }

    #[test]
    fn host_headers() {
        let warning =
            "Budget guard degraded the request from \"coding-fast\" to \"free-tier\" (tier free).";
        let r = response(&[
            (headers::MCP_DEGRADED_FROM, "coding-fast"),
            (headers::MCP_WARNING, warning),
        ]);
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
        assert_eq!(degrade_of(&response(&[])), None);
        let odd = response(&[(headers::MCP_DEGRADED_FROM, "x")]);
        assert_eq!(
            degrade_of(&odd),
            Some(Degrade {
                from: "x".into(),
                to: None
            })
        );
    }

    #[test]
    fn routing_reads_the_response_headers() {
        let r = response(&[("X-Request-Id", "r1"), (headers::TOKENS_IN, "7")]);
        let routing = routing(&r);
        assert_eq!(routing.request_id.as_deref(), Some("r1"));
        assert_eq!(routing.tokens_in, Some(7));
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
