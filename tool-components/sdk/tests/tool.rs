//! The `Tool` trait's export path: input parsing, key order, error texts,
//! the session and progress wrappers, and the description's JSON.

use omniroute_tool_sdk::{
    Ctx, Gateway, GatewayResult, Request, Session, Tool, ToolDescription, ToolError, call_json,
    describe_json, schema,
};
use omniroute_tool_testing::{FakeGateway, FakeHost, Reply};
use serde_json::{Value, json};

/// Echoes its input, or fails with the gateway's text when asked to fetch.
struct Echo;

impl Tool for Echo {
    fn describe() -> ToolDescription {
        ToolDescription::read_only("echo", "Echo", "Echoes", &["read:health"])
            .output_schema(schema::object(json!({ "n": { "type": "number" } }), &[]))
    }
    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        if input["fetch"] == true {
            cx.gateway.get_json("/api/x", &[])?;
        }
        if input["progress"] == true {
            cx.progress.report(1.0, None, Some("one"));
            cx.session.set("seen", "true").map_err(ToolError::new)?;
        }
        Ok(input)
    }
}

#[test]
fn call_json_round_trip_keeps_key_order() {
    let host = FakeHost::default();
    let out = call_json::<Echo>(r#"{"b":1,"a":2}"#, &host.ctx()).unwrap();
    assert_eq!(out, r#"{"b":1,"a":2}"#);
    assert_eq!(call_json::<Echo>("  ", &host.ctx()).unwrap(), "{}");
    assert!(
        call_json::<Echo>("{nope", &host.ctx())
            .unwrap_err()
            .starts_with("Invalid input: not JSON")
    );
}

#[test]
fn gateway_failure_becomes_the_error_text() {
    let host =
        FakeHost::new(FakeGateway::new().on_get("/api/x", Reply::json(404, r#"{"error":"nope"}"#)));
    assert_eq!(
        host.call::<Echo>(json!({"fetch": true})),
        Err(r#"OmniRoute API error [404]: {"error":"nope"}"#.into())
    );
}

#[test]
fn session_and_progress_reach_the_fakes() {
    let host = FakeHost::default();
    host.call::<Echo>(json!({"progress": true})).unwrap();
    assert_eq!(
        host.progress.reports(),
        vec![(1.0, None, Some("one".to_string()))]
    );
    assert_eq!(host.session.get("seen").as_deref(), Some("true"));
}

#[test]
#[should_panic(expected = "output does not match the outputSchema")]
fn fake_host_rejects_outputs_outside_the_schema() {
    let _ = FakeHost::default().call::<Echo>(json!({"n": "not a number"}));
}

#[test]
fn description_json_key_order() {
    let desc = describe_json::<Echo>();
    assert!(
        desc.starts_with(r#"{"name":"echo","title":"Echo","description":"Echoes","inputSchema":{"#)
    );
    assert!(desc.ends_with(
        r#""scopes":["read:health"],"annotations":{"readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}}"#
    ));
}

/// A host that answers fewer results than requests (a host bug).
struct ShortHost;

impl Gateway for ShortHost {
    fn send(&self, _req: &Request) -> GatewayResult {
        unreachable!()
    }
    fn send_all(&self, _reqs: &[Request]) -> Vec<GatewayResult> {
        Vec::new()
    }
}

#[test]
fn send_all_json_always_answers_every_request() {
    let results = ShortHost.send_all_json(&[Request::get("/a"), Request::get("/b")]);
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[1].as_ref().unwrap_err().message,
        "Invalid gateway request: the host answered 0 of 2 requests"
    );
    assert_eq!(results[1].as_ref().unwrap_err().source, "GET /b");
}
