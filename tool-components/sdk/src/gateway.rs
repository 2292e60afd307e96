//! The `gateway` import as plain Rust types and a trait, so tool logic can be
//! written and unit-tested natively against [`crate::testing::FakeGateway`]
//! and run inside the component against the host's broker unchanged.

use serde_json::Value;

use crate::failure::GatewayFailure;

/// HTTP method of a gateway request (mirrors WIT `gateway.method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// The upper-case name used in error texts and `degraded[].source` (spec C.0.4, C.0.5).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// request. The query is never part of it (spec C.0.5).
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
        self.header(name).and_then(crate::coerce::parse_number)
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

/// Access to the OmniRoute gateway through the host's broker.
///
/// Implementors provide [`Gateway::send`] (and [`Gateway::send_all`] when they
/// can run requests concurrently); tools mostly use the provided JSON helpers,
/// which turn every failure into the contract's error text (spec C.0.4).
pub trait Gateway {
    /// Sends one request.
    fn send(&self, req: &Request) -> GatewayResult;

    /// Sends several requests, concurrently where the implementation can;
    /// results come back in input order. The default sends them one by one.
    fn send_all(&self, reqs: &[Request]) -> Vec<GatewayResult> {
        reqs.iter().map(|r| self.send(r)).collect()
    }

    /// Sends several requests concurrently, at most `max_in_flight` at once
    /// (0: the host's default), each with a label the host uses for one MCP
    /// progress notification as it finishes (`<label>: ok in <ms> ms` or
    /// `<label>: failed (<status or error>)`). Results come back in input
    /// order. The default ignores labels and the cap and uses
    /// [`Gateway::send_all`].
    fn send_all_labelled(
        &self,
        reqs: &[(String, Request)],
        _max_in_flight: u32,
    ) -> Vec<GatewayResult> {
        let plain: Vec<Request> = reqs.iter().map(|(_, r)| r.clone()).collect();
        self.send_all(&plain)
    }

    /// `GET path?query`, expecting a 2xx JSON body. Non-2xx statuses, non-JSON
    /// bodies and transport errors all become a [`GatewayFailure`] carrying
    /// the exact text an agent should see.
    fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, GatewayFailure> {
        let mut req = Request::get(path);
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        self.send_json(&req)
    }

    /// Sends any request and interprets the answer like [`Gateway::get_json`].
    fn send_json(&self, req: &Request) -> Result<Value, GatewayFailure> {
        json_result(req, self.send(req))
    }

    /// Sends the requests through [`Gateway::send_all`] and interprets each
    /// answer like [`Gateway::get_json`]; results come back in input order.
    ///
    /// Always one result per request: should the host answer fewer, the
    /// missing ones are failures rather than silently absent.
    fn send_all_json(&self, reqs: &[Request]) -> Vec<Result<Value, GatewayFailure>> {
        let mut results = self.send_all(reqs).into_iter();
        let answered = results.len();
        reqs.iter()
            .map(|req| match results.next() {
                Some(res) => json_result(req, res),
                None => Err(GatewayFailure::from_error(
                    req,
                    &GatewayError::Invalid(format!(
                        "the host answered {answered} of {} requests",
                        reqs.len()
                    )),
                )),
            })
            .collect()
    }
}

/// Interprets one gateway result as a 2xx JSON body, or the contract failure.
pub fn json_result(req: &Request, res: GatewayResult) -> Result<Value, GatewayFailure> {
    json_and_response(req, res)
        .map(|(json, _)| json)
        .map_err(|(failure, _)| failure)
}

/// Like [`json_result`], but keeps the response for tools that also read
/// headers (completions): the 2xx JSON body with its response, or the
/// contract failure with the response when the gateway did answer (a failed
/// completion's headers may still carry its `x-request-id`).
pub fn json_and_response(
    req: &Request,
    res: GatewayResult,
) -> Result<(Value, Response), (GatewayFailure, Option<Response>)> {
    let resp = match res {
        Ok(resp) => resp,
        Err(e) => return Err((GatewayFailure::from_error(req, &e), None)),
    };
    if !resp.is_success() {
        let failure = GatewayFailure::from_status(req, resp.status, &resp.body);
        return Err((failure, Some(resp)));
    }
    match serde_json::from_str(&resp.body) {
        Ok(json) => Ok((json, resp)),
        Err(_) => {
            let failure = GatewayFailure::non_json(req, resp.status, &resp.body);
            Err((failure, Some(resp)))
        }
    }
}
