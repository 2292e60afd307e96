//! The JSON helpers of the `Gateway` trait turn every answer into the
//! contract's texts (run against the testing crate's FakeGateway).

use omniroute_tool_sdk::{Gateway, Method, Request};
use omniroute_tool_testing::{FakeGateway, Reply};
use serde_json::json;

#[test]
fn json_helpers_turn_statuses_into_failures() {
    let gw = FakeGateway::new()
        .on_get(
            "/500",
            Reply::json(500, r#"{"status":"error","error":"Health check failed"}"#),
        )
        .on_get("/text", Reply::status(200, "OK"))
        .on_get("/down", Reply::unreachable("connection refused"));
    let results = gw.send_all_json(&[
        Request::get("/500"),
        Request::get("/text"),
        Request::get("/down"),
    ]);
    let texts: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap_err().message)
        .collect();
    assert_eq!(
        texts,
        [
            r#"OmniRoute API error [500]: {"status":"error","error":"Health check failed"}"#,
            "OmniRoute API error [200]: <non-JSON body, 2 bytes>",
            "OmniRoute API unreachable: GET /down: connection refused",
        ]
    );
}

#[test]
fn json_and_response_keeps_the_response() {
    use omniroute_tool_sdk::gateway::json_and_response;
    let req = Request::new(Method::Post, "/v1/chat/completions");
    let answer = |reply: Reply| match reply {
        Reply::Response(r) => Ok(r),
        Reply::Error(e) => Err(e),
    };
    let ok = Reply::json(200, r#"{"a":1}"#).header("x-request-id", "r1");
    let (json, resp) = json_and_response(&req, answer(ok)).unwrap();
    assert_eq!(json, json!({"a":1}));
    assert_eq!(resp.header("x-request-id"), Some("r1"));
    let failed = Reply::json(503, r#"{"e":1}"#).header("x-request-id", "r2");
    let (failure, resp) = json_and_response(&req, answer(failed)).unwrap_err();
    assert_eq!(failure.message, r#"OmniRoute API error [503]: {"e":1}"#);
    assert_eq!(resp.unwrap().header("x-request-id"), Some("r2"));
    let (failure, resp) =
        json_and_response(&req, answer(Reply::status(200, "data: x"))).unwrap_err();
    assert_eq!(failure.status, Some(200));
    assert!(resp.is_some());
    let (failure, resp) = json_and_response(&req, answer(Reply::unreachable("down"))).unwrap_err();
    assert_eq!(
        failure.message,
        "OmniRoute API unreachable: POST /v1/chat/completions: down"
    );
    assert!(resp.is_none());
}
