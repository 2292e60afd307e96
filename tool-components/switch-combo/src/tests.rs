use omniroute_tool_testing::{
    self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures, keys,
};
use omniroute_tool_sdk::{GatewayError, Method};
use serde_json::{Value, json};

use super::*;

const CODING_FAST_ID: &str = "c9df3fce-0dd7-4438-a4e7-8f10fde6b078";
const FREE_TIER_ID: &str = "60778c51-9485-4f7a-bedb-513010a8e882";

/// The gateway's answer to the PUT: the full updated record (docs/gateway.md#combos), built
/// from the fixture's record with `isActive` set and `updatedAt` moved on.
fn updated_record(index: usize, active: bool) -> Value {
    let combos: Value = serde_json::from_str(fixtures::COMBOS_POPULATED).unwrap();
    let mut record = combos["combos"][index].clone();
    record["updatedAt"] = json!("2026-11-25T23:30:00.000Z");
    record["isActive"] = json!(active);
    record
}

fn host(put_path: &str, put: Reply) -> FakeHost {
    FakeHost::new(
        FakeGateway::new()
            .on_get(COMBOS, Reply::json(200, fixtures::COMBOS_POPULATED))
            .on(Method::Put, put_path, put),
    )
}

fn run(host: &FakeHost, combo_id: &str, active: bool) -> Result<Value, String> {
    host.call::<SwitchCombo>(json!({ "comboId": combo_id, "active": active }))
}

#[test]
fn by_name_puts_to_the_id_and_leads_with_enabled() {
    let path = format!("/api/combos/{CODING_FAST_ID}");
    let h = host(
        &path,
        Reply::json(200, updated_record(0, false).to_string()),
    );
    let out = run(&h, "coding-fast", false).unwrap();
    assert_eq!(
        keys(&out),
        [
            "id",
            "name",
            "enabled",
            "models",
            "strategy",
            "config",
            "isHidden",
            "sortOrder",
            "createdAt",
            "updatedAt",
            "version",
            "isActive"
        ]
    );
    assert_eq!(out["id"], CODING_FAST_ID);
    assert_eq!(out["name"], "coding-fast");
    assert_eq!(out["enabled"], false);
    assert_eq!(out["isActive"], false);
    assert_eq!(out["models"][1]["model"], "mock/mock-large");
    assert_eq!(out["version"], 2);

    let reqs = h.gateway.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, COMBOS);
    assert_eq!(reqs[1].method, Method::Put);
    assert_eq!(reqs[1].path, path);
    assert_eq!(reqs[1].body.as_deref(), Some(r#"{"isActive":false}"#));
}

#[test]
fn by_id_activates() {
    let path = format!("/api/combos/{FREE_TIER_ID}");
    let h = host(&path, Reply::json(200, updated_record(1, true).to_string()));
    let out = run(&h, FREE_TIER_ID, true).unwrap();
    assert_eq!(out["name"], "free-tier");
    assert_eq!(out["enabled"], true);
    assert_eq!(
        h.gateway.requests()[1].body.as_deref(),
        Some(r#"{"isActive":true}"#)
    );
}

#[test]
fn unknown_combo_is_never_put() {
    let h = host(
        "/api/combos/nope",
        Reply::json(404, r#"{"error":"Combo not found"}"#),
    );
    assert_eq!(
        run(&h, "nope", true),
        Err(r#"Combo not found: "nope""#.to_string())
    );
    assert!(h.gateway.requests().iter().all(|r| r.method == Method::Get));

    let empty =
        FakeHost::new(FakeGateway::new().on_get(COMBOS, Reply::json(200, r#"{"combos":[]}"#)));
    assert_eq!(
        run(&empty, "coding-fast", true),
        Err(r#"Combo not found: "coding-fast""#.to_string())
    );
}

#[test]
fn put_failures_carry_the_gateway_status_and_body() {
    let path = format!("/api/combos/{CODING_FAST_ID}");
    let mut cases = gateway_failures(Method::Put, &path);
    cases.push((
        Reply::json(
            400,
            r#"{"error":{"message":"Invalid request","details":[{"field":"isActive","message":"Invalid input: expected boolean, received string"}]}}"#,
        ),
        r#"OmniRoute API error [400]: {"error":{"message":"Invalid request","details":[{"field":"isActive","message":"Invalid input: expected boolean, received string"}]}}"#.to_string(),
    ));
    cases.push((
        Reply::json(404, "{\n  \"error\": \"Combo not found\"\n}"),
        r#"OmniRoute API error [404]: {"error":"Combo not found"}"#.to_string(),
    ));
    cases.push((
        Reply::error(GatewayError::Denied("granted: read:combos".into())),
        format!("Not permitted: PUT {path} is outside the scopes granted to this call (granted: read:combos)"),
    ));
    for (reply, text) in cases {
        let h = host(&path, reply);
        assert_eq!(run(&h, CODING_FAST_ID, true), Err(text));
    }
}

#[test]
fn lookup_failures_are_tool_errors() {
    for (reply, text) in gateway_failures(Method::Get, COMBOS) {
        let h = FakeHost::new(FakeGateway::new().on_get(COMBOS, reply));
        assert_eq!(run(&h, "coding-fast", true), Err(text));
    }
}

#[test]
fn odd_answers_keep_the_resolved_identity() {
    let path = format!("/api/combos/{CODING_FAST_ID}");
    // A body without the record: identity from the resolved combo; an
    // absent isActive counts as active.
    let h = host(&path, Reply::json(200, r#"{"ok":true}"#));
    let out = run(&h, "coding-fast", true).unwrap();
    assert_eq!(
        out.to_string(),
        json!({ "id": CODING_FAST_ID, "name": "coding-fast", "enabled": true, "ok": true })
            .to_string()
    );
    // A body that is JSON but not an object.
    let h = host(&path, Reply::json(200, "[]"));
    assert_eq!(
        keys(&run(&h, "coding-fast", true).unwrap()),
        ["id", "name", "enabled"]
    );
    // A record that carries its own `enabled` does not duplicate the key.
    let mut rec = updated_record(0, true);
    rec["enabled"] = json!(false);
    let h = host(&path, Reply::json(200, rec.to_string()));
    let out = run(&h, "coding-fast", true).unwrap();
    assert_eq!(out["enabled"], false);
    assert_eq!(keys(&out).iter().filter(|k| **k == "enabled").count(), 1);
}

#[test]
fn description_and_manifest() {
    let desc = testing::check_description::<SwitchCombo>();
    testing::check_manifest::<SwitchCombo>(include_str!("../tool.toml"));
    assert_eq!(
        desc["inputSchema"].to_string(),
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"comboId":{"type":"string","description":"ID of the combo to activate/deactivate"},"active":{"type":"boolean","description":"Whether to enable or disable the combo"}},"required":["comboId","active"]}"#
    );
    assert_eq!(
        desc["description"],
        "Activates or deactivates a combo for routing"
    );
    assert_eq!(
        desc["annotations"],
        json!({"readOnlyHint":false,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false})
    );
    assert_eq!(desc["scopes"], json!(["write:combos"]));
}
