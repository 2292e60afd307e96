//! [`FakeGateway`]: a scripted gateway that answers from a table and
//! records every request, and [`Reply`], what it answers.

use std::cell::RefCell;
use std::collections::HashMap;

use omniroute_tool_sdk::providers::{PRICING_MODELS, PROVIDER_NODES};
use omniroute_tool_sdk::{Gateway, GatewayError, GatewayResult, Method, Request, Response};
use serde_json::Value;

use crate::fixtures;

/// What a [`FakeGateway`] answers for one (method, path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Response(Response),
    Error(GatewayError),
}

impl Reply {
    /// A response with this status and body and no headers.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Reply::Response(Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            elapsed_ms: 0,
        })
    }

    /// A JSON response (`content-type: application/json`).
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Reply::Response(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            elapsed_ms: 0,
        })
    }

    /// A transport error instead of a response.
    pub fn error(error: GatewayError) -> Self {
        Reply::Error(error)
    }

    /// `unreachable("connect ECONNREFUSED 127.0.0.1:20128")`.
    pub fn unreachable(reason: &str) -> Self {
        Reply::Error(GatewayError::Unreachable(reason.to_string()))
    }

    /// The response recorded in a capture fixture such as
    /// `chat-completion-priced.json`: `{request, status, headers{…}, body}`,
    /// with the body re-serialised compactly (a string body is kept as is).
    pub fn capture(fixture: &str) -> Self {
        let capture: Value = serde_json::from_str(fixture).expect("capture fixture is JSON");
        let status = capture["status"].as_u64().expect("capture has a status") as u16;
        let headers = capture["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let body = match &capture["body"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        Reply::Response(Response {
            status,
            headers,
            body,
            elapsed_ms: 0,
        })
    }

    /// Sets the host-measured wall time of a response.
    pub fn elapsed(mut self, ms: u32) -> Self {
        if let Reply::Response(resp) = &mut self {
            resp.elapsed_ms = ms;
        }
        self
    }

    /// Adds (or, with the same name, replaces) a response header.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.map_headers(|headers| {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            headers.push((name.to_string(), value.to_string()));
        })
    }

    /// Removes a response header.
    pub fn without_header(self, name: &str) -> Self {
        self.map_headers(|headers| headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name)))
    }

    fn map_headers(mut self, f: impl FnOnce(&mut Vec<(String, String)>)) -> Self {
        if let Reply::Response(resp) = &mut self {
            f(&mut resp.headers);
        }
        self
    }
}

/// What narrows a [`FakeGateway`] reply beyond (method, path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// The query has this (key, value) pair.
    Query(String, String),
    /// The JSON body has this top-level string field (e.g. `model`).
    BodyField(String, String),
}

impl Matcher {
    fn matches(&self, req: &Request) -> bool {
        match self {
            Matcher::Query(k, v) => req.query.iter().any(|(qk, qv)| qk == k && qv == v),
            Matcher::BodyField(k, v) => req
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .is_some_and(|body| body[k.as_str()].as_str() == Some(v.as_str())),
        }
    }
}

/// A labelled batch as the tool sent it: the labels and the in-flight cap.
pub type LabelledBatch = (Vec<String>, u32);

/// A gateway that answers from a table keyed by (method, path) and records
/// every request it gets. The query is ignored for matching unless a reply
/// was added with a [`Matcher`] ([`FakeGateway::on_query`],
/// [`FakeGateway::on_body`]); those are tried first, the latest first. A
/// request with no entry fails with [`GatewayError::Invalid`] naming it, so a
/// test that forgot a route fails loudly.
#[derive(Debug, Default)]
pub struct FakeGateway {
    replies: HashMap<(Method, String), Reply>,
    matched: Vec<(Method, String, Matcher, Reply)>,
    requests: RefCell<Vec<Request>>,
    batches: RefCell<Vec<usize>>,
    labelled: RefCell<Vec<LabelledBatch>>,
}

impl FakeGateway {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `method path` with `reply` (replacing an earlier entry).
    pub fn on(mut self, method: Method, path: &str, reply: Reply) -> Self {
        self.replies.insert((method, path.to_string()), reply);
        self
    }

    /// Answers `GET path` with `reply`.
    pub fn on_get(self, path: &str, reply: Reply) -> Self {
        self.on(Method::Get, path, reply)
    }

    /// Answers the two provider-map sources of [`omniroute_tool_sdk::providers::Providers`]
    /// with the real fixtures: `GET /api/provider-nodes` (the custom node
    /// `mock` = [`fixtures::NODE_9BF`]) and `GET /api/pricing/models`.
    pub fn with_provider_maps(self) -> Self {
        self.on_get(PROVIDER_NODES, Reply::json(200, fixtures::PROVIDER_NODES))
            .on_get(
                PRICING_MODELS,
                Reply::json(200, fixtures::PRICING_MODELS_EXCERPT),
            )
    }

    /// Answers `method path` with `reply` when `matcher` also holds.
    pub fn on_matching(
        mut self,
        method: Method,
        path: &str,
        matcher: Matcher,
        reply: Reply,
    ) -> Self {
        self.matched
            .push((method, path.to_string(), matcher, reply));
        self
    }

    /// Answers `GET path` carrying the query pair `key=value` with `reply`.
    pub fn on_query(self, path: &str, key: &str, value: &str, reply: Reply) -> Self {
        let matcher = Matcher::Query(key.to_string(), value.to_string());
        self.on_matching(Method::Get, path, matcher, reply)
    }

    /// Answers `method path` whose JSON body has `field: value` with `reply`
    /// (e.g. one reply per completion `model`).
    pub fn on_body(
        self,
        method: Method,
        path: &str,
        field: &str,
        value: &str,
        reply: Reply,
    ) -> Self {
        let matcher = Matcher::BodyField(field.to_string(), value.to_string());
        self.on_matching(method, path, matcher, reply)
    }

    /// The labels and in-flight cap of each `send_all_labelled` batch, in order.
    pub fn labelled_batches(&self) -> Vec<LabelledBatch> {
        self.labelled.borrow().clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.borrow().clone()
    }

    /// The requests received so far for this path, in order.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests
            .borrow()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The size of each `send_all` batch received so far, in order: lets a
    /// test check that requests meant to run concurrently were batched.
    pub fn batches(&self) -> Vec<usize> {
        self.batches.borrow().clone()
    }

    fn answer(&self, req: &Request) -> GatewayResult {
        self.requests.borrow_mut().push(req.clone());
        let matched = self
            .matched
            .iter()
            .rev()
            .find(|(m, p, matcher, _)| *m == req.method && *p == req.path && matcher.matches(req))
            .map(|(_, _, _, reply)| reply);
        match matched.or_else(|| self.replies.get(&(req.method, req.path.clone()))) {
            Some(Reply::Response(resp)) => Ok(resp.clone()),
            Some(Reply::Error(err)) => Err(err.clone()),
            None => Err(GatewayError::Invalid(format!(
                "FakeGateway has no reply for {}",
                req.source()
            ))),
        }
    }
}

impl Gateway for FakeGateway {
    fn send(&self, req: &Request) -> GatewayResult {
        self.answer(req)
    }

    fn send_all(&self, reqs: &[Request]) -> Vec<GatewayResult> {
        self.batches.borrow_mut().push(reqs.len());
        reqs.iter().map(|r| self.answer(r)).collect()
    }

    fn send_all_labelled(
        &self,
        reqs: &[(String, Request)],
        max_in_flight: u32,
    ) -> Vec<GatewayResult> {
        let labels = reqs.iter().map(|(l, _)| l.clone()).collect();
        self.labelled.borrow_mut().push((labels, max_in_flight));
        reqs.iter().map(|(_, r)| self.answer(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fake_gateway_matches_method_and_path_and_records() {
        let gw = FakeGateway::new().on_get("/a", Reply::json(200, "{\"x\":1}"));
        assert_eq!(gw.get_json("/a", &[("q", "1")]).unwrap(), json!({"x":1}));
        let err = gw.get_json("/b", &[]).unwrap_err();
        assert_eq!(
            err.message,
            "Invalid gateway request: FakeGateway has no reply for GET /b"
        );
        let reqs = gw.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].query, vec![("q".to_string(), "1".to_string())]);
        assert_eq!(
            gw.send_all(&[Request::get("/a"), Request::get("/a")]).len(),
            2
        );
        assert_eq!(gw.batches(), vec![2]);
    }

    #[test]
    fn matchers_and_labelled_batches() {
        let post =
            |model: &str| Request::new(Method::Post, "/c").json_body(&json!({"model": model}));
        let gw = FakeGateway::new()
            .on(Method::Post, "/c", Reply::json(200, "0"))
            .on_body(
                Method::Post,
                "/c",
                "model",
                "a",
                Reply::json(200, "1").elapsed(7),
            )
            .on_get("/q", Reply::json(200, "0"))
            .on_query("/q", "p", "x", Reply::json(200, "1"))
            .on_query("/q", "p", "x", Reply::json(200, "2"));
        let results = gw.send_all_labelled(
            &[("first".into(), post("a")), ("second".into(), post("b"))],
            4,
        );
        let bodies: Vec<(String, u32)> = results
            .into_iter()
            .map(|r| r.map(|r| (r.body, r.elapsed_ms)).unwrap())
            .collect();
        assert_eq!(bodies, [("1".to_string(), 7), ("0".to_string(), 0)]);
        assert_eq!(
            gw.labelled_batches(),
            vec![(vec!["first".to_string(), "second".to_string()], 4)]
        );
        assert_eq!(
            gw.get_json("/q", &[("p", "x")]).unwrap(),
            json!(2),
            "latest matcher wins"
        );
        assert_eq!(gw.get_json("/q", &[("p", "y")]).unwrap(), json!(0));
    }

    /// The trait's default ignores labels and the cap.
    #[test]
    fn default_labelled_send_uses_send_all() {
        struct Plain(FakeGateway);
        impl Gateway for Plain {
            fn send(&self, req: &Request) -> GatewayResult {
                self.0.send(req)
            }
        }
        let plain = Plain(FakeGateway::new().on_get("/a", Reply::json(200, "1")));
        let out = plain.send_all_labelled(&[("l".into(), Request::get("/a"))], 0);
        assert_eq!(out[0].as_ref().unwrap().body, "1");
        assert!(plain.0.labelled_batches().is_empty());
    }

    #[test]
    fn capture_replies_and_headers() {
        let reply = Reply::capture(fixtures::CHAT_COMPLETION_PRICED);
        let Reply::Response(resp) = &reply else {
            panic!("a response")
        };
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("X-OmniRoute-Response-Cost"),
            Some("0.0000285000")
        );
        assert_eq!(
            resp.header_number("x-omniroute-response-cost"),
            Some(0.0000285)
        );
        assert_eq!(
            serde_json::from_str::<Value>(&resp.body).unwrap()["model"],
            "mock-small"
        );
        let Reply::Response(changed) = reply
            .header("x-omniroute-cache", "HIT")
            .without_header("x-request-id")
        else {
            panic!("a response")
        };
        assert_eq!(changed.header("x-omniroute-cache"), Some("HIT"));
        assert_eq!(changed.header("x-request-id"), None);
        assert_eq!(
            Reply::unreachable("x").header("a", "b"),
            Reply::unreachable("x")
        );
    }
}
