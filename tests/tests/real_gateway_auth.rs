//! Gateway credentials (`docs/architecture.md`, "Gateway credentials") against the REAL OmniRoute 3.7.9 gateway that has a dashboard
//! password and `REQUIRE_API_KEY=true` (the `auth` instance of `cargo xtask test`):
//!
//! * with `OMNIROUTE_DASHBOARD_PASSWORD`, management routes work through the login cookie;
//! * `/v1` completions work with the API key alone, and fail without it;
//! * without a password, management failures carry the hint naming the setting;
//! * a wrong password fails with the login error. Wrong logins feed the gateway's brute-force
//!   lockout, so the whole suite makes exactly one, followed by a correct login (which resets
//!   the gateway's failure counter for this address).

use omniroute_mcp_tests::real::{is_uuid, traffic_lock, unique_name};
use omniroute_mcp_tests::{McpClient, RealGateway, ServerCommand, combo_named};
use omniroute_mcp_tests::tools::{HEALTH, LIST_COMBOS, ROUTE, SWITCH_COMBO};
use serde_json::{Value, json};

const HINT: &str = " (management routes need a dashboard login: set OMNIROUTE_DASHBOARD_PASSWORD)";

fn with_password(gateway: &RealGateway) -> ServerCommand {
    gateway.server().env(
        "OMNIROUTE_DASHBOARD_PASSWORD",
        gateway
            .password
            .as_deref()
            .expect("the auth gateway has a password"),
    )
}

fn messages() -> Value {
    json!([{ "role": "user", "content": format!("e2e {}", unique_name("auth")) }])
}

/// No credential shows up in what the tools return.
#[track_caller]
fn assert_no_secrets(gateway: &RealGateway, text: &str) {
    assert!(
        !text.contains(&gateway.api_key),
        "the API key leaked: {text}"
    );
    if let Some(password) = &gateway.password {
        assert!(
            !text.contains(password.as_str()),
            "the password leaked: {text}"
        );
    }
    assert!(
        !text.contains("auth_token"),
        "the login cookie leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_tools_log_in_with_the_dashboard_password() {
    let gateway = RealGateway::auth();
    let name = unique_name("e2e-auth-switch");
    let id = gateway.create_combo(&name, &["mock/mock-small"]).await;
    let client = McpClient::start(with_password(&gateway)).await;

    let listed = client.call(LIST_COMBOS, json!({})).await;
    assert_no_secrets(&gateway, &listed.text);
    let listed = listed.into_ok();
    assert_eq!(
        combo_named(&listed, "coding-fast")["id"],
        gateway.combo_id("coding-fast").as_str(),
        "{listed}"
    );
    assert_eq!(combo_named(&listed, &name)["enabled"], true, "{listed}");

    let off = client
        .call(SWITCH_COMBO, json!({ "comboId": name, "active": false }))
        .await;
    assert_no_secrets(&gateway, &off.text);
    let off = off.into_ok();
    assert_eq!(
        off["id"],
        id.as_str(),
        "resolved by name through the cookie: {off}"
    );
    assert_eq!(off["enabled"], false, "{off}");
    let listed = client.call(LIST_COMBOS, json!({})).await.into_ok();
    assert_eq!(combo_named(&listed, &name)["enabled"], false, "{listed}");
    let stored = gateway.stored_combo(&id).await;
    assert_eq!(stored["isActive"], false, "the gateway stored it: {stored}");

    let on = client
        .call(SWITCH_COMBO, json!({ "comboId": name, "active": true }))
        .await
        .into_ok();
    assert_eq!(on["enabled"], true, "{on}");

    // Health's two management sources (rate limits, cache) work with the cookie too.
    let health = client.call(HEALTH, json!({})).await.into_ok();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["degraded"], json!([]), "{health}");
    assert!(
        health["rateLimits"]
            .as_array()
            .is_some_and(|r| r.iter().any(|c| c["provider"] == gateway.node_id.as_str())),
        "the seeded connection is listed: {health}"
    );
    assert!(health["cacheStats"]["hitRate"].is_number(), "{health}");

    client.shutdown().await;
    gateway.delete_combo(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_request_authenticates_v1_with_the_api_key() {
    let _traffic = traffic_lock().read().await;
    let gateway = RealGateway::auth();

    // Key and password: the combo is recognised (via the cookie) and the completion is served.
    let client = McpClient::start(with_password(&gateway)).await;
    let before = gateway.mock_stats().await;
    let result = client
        .call(
            ROUTE,
            json!({ "model": "coding-fast", "messages": messages() }),
        )
        .await;
    assert_no_secrets(&gateway, &result.text);
    let out = result.into_ok();
    let after = gateway.mock_stats().await;
    let routing = &out["routing"];
    assert_eq!(routing["provider"], gateway.node_id.as_str(), "{routing}");
    assert_eq!(routing["model"], "mock-small", "{routing}");
    assert_eq!(routing["combo"], "coding-fast", "{routing}");
    assert_eq!(
        routing["fallbacksTriggered"].as_f64(),
        Some(0.0),
        "{routing}"
    );
    let cost = routing["cost"].as_f64().unwrap_or_default();
    assert!((cost - 0.0000285).abs() < 1e-12, "{routing}");
    assert!(
        is_uuid(routing["requestId"].as_str().unwrap_or_default()),
        "{routing}"
    );
    assert_eq!(out["response"]["content"], "Hello from mock", "{out}");
    assert!(
        after.chat_requests() > before.chat_requests(),
        "reached the upstream"
    );
    assert_eq!(
        after.last_chat_authorization(),
        Some("Bearer sk-mock"),
        "the upstream sees the gateway's provider key, never ours"
    );
    client.shutdown().await;

    // The API key alone is enough for /v1 (there is no cookie without a password).
    let key_only = McpClient::start(gateway.server()).await;
    let out = key_only
        .call(
            ROUTE,
            json!({ "model": "mock/mock-small", "messages": messages() }),
        )
        .await
        .into_ok();
    assert_eq!(
        out["routing"]["provider"],
        gateway.node_id.as_str(),
        "{out}"
    );
    assert_eq!(out["routing"]["model"], "mock-small", "{out}");
    key_only.shutdown().await;

    // Neither: REQUIRE_API_KEY=true refuses the completion.
    let anonymous = McpClient::start(ServerCommand::new(&gateway.url)).await;
    let refused = anonymous
        .call(
            ROUTE,
            json!({ "model": "mock/mock-small", "messages": messages() }),
        )
        .await;
    let text = refused.expect_error();
    assert!(
        text.starts_with("Error: OmniRoute API error [401]: ") && text.contains("AUTH_002"),
        "{text}"
    );
    anonymous.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_password_management_failures_name_the_missing_setting() {
    let gateway = RealGateway::auth();
    let client = McpClient::start(gateway.server()).await;

    let listed = client.call(LIST_COMBOS, json!({})).await;
    let text = listed.expect_error();
    assert!(
        text.starts_with("Error: OmniRoute API error [401]: "),
        "{text}"
    );
    assert!(text.contains("AUTH_001"), "the gateway's own text: {text}");
    assert!(text.ends_with(HINT), "{text}");
    assert_no_secrets(&gateway, text);

    let switched = client
        .call(
            SWITCH_COMBO,
            json!({ "comboId": "coding-fast", "active": true }),
        )
        .await;
    let text = switched.expect_error();
    assert!(text.contains(HINT), "{text}");

    // The public health route still answers; the management sources are named in degraded.
    let health = client.call(HEALTH, json!({})).await.into_ok();
    assert_eq!(health["status"], "healthy", "{health}");
    let degraded = health["degraded"].as_array().expect("degraded");
    let sources: Vec<&str> = degraded
        .iter()
        .filter_map(|d| d["source"].as_str())
        .collect();
    assert_eq!(
        sources,
        ["GET /api/rate-limits", "GET /api/cache"],
        "{health}"
    );
    for entry in degraded {
        let error = entry["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("OmniRoute API error [401]: ") && error.ends_with(HINT),
            "{entry}"
        );
    }
    client.shutdown().await;
}

/// The only wrong login of the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_with_the_login_error() {
    const WRONG: &str = "definitely-not-the-password";
    let gateway = RealGateway::auth();
    let client =
        McpClient::start(gateway.server().env("OMNIROUTE_DASHBOARD_PASSWORD", WRONG)).await;

    let listed = client.call(LIST_COMBOS, json!({})).await;
    let text = listed.expect_error().to_owned();
    client.shutdown().await;
    // A correct login resets the gateway's failure counter for this address.
    let _ = gateway.login_cookie().await;

    assert!(
        text.starts_with("Error: OmniRoute dashboard login failed [401]"),
        "{text}"
    );
    assert!(
        text.contains("Invalid password"),
        "the gateway's answer: {text}"
    );
    assert!(
        !text.contains(WRONG),
        "the password must not be echoed: {text}"
    );
    assert_no_secrets(&gateway, &text);
}

/// docs/architecture.md#gateway-credentials: a gateway without a dashboard password answers the login with `403 needsSetup`; the
/// host then carries on without a cookie (loopback management access is open in that state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_for_a_gateway_without_one_is_not_an_error() {
    let plain = RealGateway::plain();
    let client = McpClient::start(
        plain
            .server()
            .env("OMNIROUTE_DASHBOARD_PASSWORD", "unused-password"),
    )
    .await;
    let listed = client.call(LIST_COMBOS, json!({})).await.into_ok();
    assert_eq!(
        combo_named(&listed, "coding-fast")["id"],
        plain.combo_id("coding-fast").as_str(),
        "{listed}"
    );
    let health = client.call(HEALTH, json!({})).await.into_ok();
    assert_eq!(health["degraded"], json!([]), "{health}");
    client.shutdown().await;
}
