//! The types of the WIT `gateway` interface as plain Rust: a request, a
//! response, why the host did not deliver one. The [`crate::gateway`]
//! trait sends them; [`crate::failure`] words their failures.

use serde_json::Value;

/// HTTP method of a gateway request (mirrors WIT `gateway.method`; the contract's type).
pub use omniroute_tool_contract::method::Method;

/// One request to the gateway (mirrors WIT `gateway.request`).
///
/// `path` is a gateway path such as `/api/combos`, never a URL; the query is
/// kept apart so the host can check the path against the call's capability
/// set and percent-encode the query itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Request {
    /// A request without query or body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    /// `GET <path>`, the most common request by far.
    pub fn get(path: impl Into<String>) -> Self {
        Request::new(Method::Get, path)
    }

    /// Adds one query parameter (unencoded; the host encodes it).
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Sets a JSON body, serialised compactly.
    pub fn json_body(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string());
        self
    }

    /// `"<METHOD> <path>"`: how errors and `degraded[].source` name this
    /// request. The query is never part of it.
    pub fn source(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A gateway answer (mirrors WIT `gateway.response`). Any HTTP status is a
/// response: the tool decides what a 404 means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wall time the host measured for this request, in milliseconds.
    pub elapsed_ms: u32,
}

impl Response {
    /// True for 2xx statuses.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name, compared case-insensitively as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated header, in order (e.g. one
    /// `x-omniroute-mcp-warning` per warning), compared case-insensitively.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A header holding a decimal number (`x-omniroute-latency-ms: 78`);
    /// `None` when absent or not a finite number.
    pub fn header_number(&self, name: &str) -> Option<f64> {
        self.header(name)
            .and_then(omniroute_tool_contract::coerce::parse_number)
    }
}

/// Why the host did not deliver a response (mirrors WIT `gateway.error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayError {
    /// The (method, path) pair is outside this call's capability set; nothing was sent.
    Denied(String),
    /// No answer within the given number of seconds.
    Timeout(u32),
    /// The gateway could not be reached; the reason is safe to show to an agent.
    Unreachable(String),
    /// The response body exceeded the host's size cap.
    TooLarge,
    /// The request itself is malformed (bad path, too many requests in this call, ...).
    Invalid(String),
    /// The host could not authenticate to the gateway; the complete message.
    Auth(String),
    /// The host refused to send the request (e.g. the session's budget guard
    /// blocks completions); the complete message, shown verbatim.
    Refused(String),
}

/// The result of one gateway request as the host reports it.
pub type GatewayResult = Result<Response, GatewayError>;
