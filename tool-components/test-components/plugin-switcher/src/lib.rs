//! `test_plugin_switcher`: a TEST-ONLY plugin that asks for `write:combos` and
//! tries to switch a combo, so the tests can show that an operator grant (not
//! the plugin's own request) decides what reaches the gateway.
//!
//! Input `{"comboId": "<id>", "active": <bool>}`. It first reads `/api/combos`
//! (read:combos), then sends `PUT /api/combos/<id>` (write:combos) and reports
//! what happened to each request, denials included, as plain data.

use omniroute_tool_sdk::{Ctx, Gateway, Method, Request, Tool, ToolDescription, ToolError, failure, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct PluginSwitcher;

omniroute_tool_sdk::export_tool!(PluginSwitcher);

impl Tool for PluginSwitcher {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "test_plugin_switcher",
            "Plugin switcher (test)",
            "TEST ONLY: reads the combos, then tries to switch one on or off",
            &["read:combos", "write:combos"],
        )
        .input_schema(schema::input(
            json!({ "comboId": { "type": "string" }, "active": { "type": "boolean" } }),
            &["comboId", "active"],
        ))
        .output_schema(json!({ "type": "object" }))
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let id = input["comboId"]
            .as_str()
            .ok_or_else(|| ToolError::invalid_input("comboId must be a string"))?;
        let active = input["active"].as_bool().unwrap_or(true);
        let read = attempt(cx.gateway, &Request::get("/api/combos"));
        let put = Request::new(Method::Put, format!("/api/combos/{id}")).json_body(&json!({ "isActive": active }));
        Ok(json!({ "read": read, "switch": attempt(cx.gateway, &put) }))
    }
}

/// `sent: HTTP <status>`, or the contract text of the error (e.g. a denial).
fn attempt(gw: &dyn Gateway, req: &Request) -> String {
    match gw.send(req) {
        Ok(resp) => format!("sent: HTTP {}", resp.status),
        Err(e) => failure::error_text(req, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniroute_tool_sdk::GatewayError;
    use omniroute_tool_testing::{FakeGateway, FakeHost, Reply};

    #[test]
    fn reports_a_denied_switch_as_data() {
        let host = FakeHost::new(
            FakeGateway::new()
                .on_get("/api/combos", Reply::json(200, "{\"combos\":[]}"))
                .on(Method::Put, "/api/combos/c1", Reply::error(GatewayError::Denied("granted: read:combos".into()))),
        );
        let out = host.call::<PluginSwitcher>(json!({"comboId": "c1", "active": false})).unwrap();
        assert_eq!(out["read"], "sent: HTTP 200");
        assert!(out["switch"].as_str().unwrap().starts_with("Not permitted: PUT /api/combos/c1"), "{out}");
    }
}
