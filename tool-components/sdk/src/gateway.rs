//! The `gateway` import as a trait, so tool logic can be written and
//! unit-tested natively against a fake (the `omniroute-tool-testing` crate)
//! and run inside the component against the host's broker unchanged.

use serde_json::Value;

use crate::failure::GatewayFailure;
pub use crate::wire::{GatewayError, GatewayResult, Method, Request, Response};

/// Access to the OmniRoute gateway through the host's broker.
///
/// Implementors provide [`Gateway::send`] (and [`Gateway::send_all`] when they
/// can run requests concurrently); tools mostly use the provided JSON helpers,
/// which turn every failure into the contract's error text ([`crate::failure`]).
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
