//! What the real-gateway tests (`tests/tests/real_gateway_*.rs`) share: the seeded prices,
//! completions through our server, number assertions, and the gateway's view of the mock
//! provider (breaker state, quota entries, routing of `coding-fast`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{RealGateway, is_uuid, unique_name};
use crate::McpClient;
use crate::tools::ROUTE;

/// 7 tokens in at 1.5 USD/M plus 3 out at 6 USD/M: one `mock/mock-small` completion.
pub const SMALL_COST: f64 = 0.0000285;
/// 7 × 3 + 3 × 15 per million: one `mock/mock-large` completion.
pub const LARGE_COST: f64 = 0.000066;

/// Our server against this gateway, with its API key.
pub async fn start(gateway: &RealGateway) -> McpClient {
    McpClient::start(gateway.server()).await
}

/// A user message no other request of the run has.
pub fn prompt() -> String {
    format!("e2e {}", unique_name("prompt"))
}

/// One user message.
pub fn messages(text: &str) -> Value {
    json!([{ "role": "user", "content": text }])
}

/// route_request that must succeed; returns the structured output.
pub async fn route(client: &McpClient, args: Value) -> Value {
    client.call(ROUTE, args).await.into_ok()
}

/// route_request with `combo` as the model and a fresh prompt.
pub async fn route_combo(client: &McpClient, combo: &str) -> Value {
    route(
        client,
        json!({ "model": combo, "messages": messages(&prompt()) }),
    )
    .await
}

/// A number within 1e-12 of `expected`.
#[track_caller]
pub fn assert_close(actual: &Value, expected: f64, what: &str) {
    let value = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what} must be a number, got {actual}"));
    assert!(
        (value - expected).abs() < 1e-12,
        "{what}: expected {expected}, got {value}"
    );
}

/// A number equal to `expected`, whether it came as an integer or a float (serde_json's
/// `Value == 1` is false for `1.0`).
#[macro_export]
macro_rules! assert_num {
    ($actual:expr, $expected:expr $(,)?) => {
        $crate::assert_num!($actual, $expected, "{}", stringify!($actual))
    };
    ($actual:expr, $expected:expr, $($message:tt)+) => {{
        let actual: &serde_json::Value = &$actual;
        let expected = $expected as f64;
        let value = actual.as_f64().unwrap_or_else(|| {
            panic!("expected the number {expected}, got {actual}: {}", format_args!($($message)+))
        });
        assert!(value == expected, "expected {expected}, got {value}: {}", format_args!($($message)+));
    }};
}

/// The value as a number; panics naming `what` otherwise.
#[track_caller]
pub fn num(value: &Value, what: &str) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} must be a number, got {value}"))
}

/// The `providerBreakers` entries the gateway reports right now for the mock provider: those
/// named `mock` (the combo step prefix) or the node id.
async fn mock_breakers(gateway: &RealGateway) -> Vec<Value> {
    let health = gateway
        .api_json("GET", "/api/monitoring/health", None)
        .await;
    health["providerBreakers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["provider"] == "mock" || b["provider"] == gateway.node_id.as_str())
        .cloned()
        .collect()
}

/// The breaker state the gateway reports right now for the mock provider: the worst state of
/// its `providerBreakers` entries (see [`mock_breakers`]).
pub async fn mock_breaker_state(gateway: &RealGateway) -> &'static str {
    let breakers = mock_breakers(gateway).await;
    let states: Vec<&str> = breakers
        .iter()
        .filter_map(|b| b["state"].as_str())
        .collect();
    if states.contains(&"OPEN") {
        "OPEN"
    } else if states.contains(&"HALF_OPEN") {
        "HALF_OPEN"
    } else {
        "CLOSED"
    }
}

/// How long [`ensure_mock_breaker_not_open`] waits: the longest breaker reset timeout of the
/// resilience profiles (60 s, `conservative`) plus time for the closing request.
pub const BREAKER_WAIT: Duration = Duration::from_secs(90);

/// Makes the precondition "the mock provider's breaker is not OPEN" hold for a test that needs
/// it. A breaker opened by failures elsewhere on the shared gateway lets one request through once
/// its reset timeout (`retryAfterMs`) has passed, and that request's success closes it: so this
/// waits out `retryAfterMs` and sends a `coding-fast` completion, until the breaker is not OPEN.
/// Panics, saying how to fix the environment, if it is still OPEN after [`BREAKER_WAIT`].
pub async fn ensure_mock_breaker_not_open(gateway: &RealGateway, client: &McpClient) {
    let started = Instant::now();
    loop {
        let breakers = mock_breakers(gateway).await;
        if !breakers.iter().any(|b| b["state"] == "OPEN") {
            return;
        }
        assert!(
            started.elapsed() < BREAKER_WAIT,
            "the mock provider's breaker on the shared gateway {} is still OPEN after {} s \
             (something keeps sending failing requests to it): {breakers:?}. Restart the \
             gateway with `cargo xtask gateway stop && cargo xtask gateway start`, or stop \
             whatever else sends failing completions to it, then run the test again",
            gateway.url,
            BREAKER_WAIT.as_secs()
        );
        let retry_after = breakers
            .iter()
            .filter_map(|b| b["retryAfterMs"].as_u64())
            .max()
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(retry_after.clamp(200, 5_000))).await;
        // The request that closes a half-open breaker; its own outcome does not matter here
        // (a failure re-opens the breaker, and the loop waits again).
        let _ = client
            .try_call(
                ROUTE,
                json!({ "model": "coding-fast", "messages": messages(&prompt()) }),
            )
            .await;
    }
}

/// A quota entry of the mock connection. The gateway reports an unknown limit
/// (`quotaTotal:null`, 100 %) when idle, and its request-queue window (`quotaTotal` = requests
/// per minute) while the connection's queue has recent traffic.
#[track_caller]
pub fn assert_quota_consistent(used: &Value, total: &Value, percent: Option<&Value>, what: &str) {
    if total.is_null() {
        crate::assert_num!(used, 0, "{what}: unknown limit");
        if let Some(percent) = percent {
            crate::assert_num!(percent, 100, "{what}: unknown limit");
        }
    } else {
        let (used, total) = (num(used, "used"), num(total, "total"));
        assert!(used >= 0.0 && used <= total, "{what}: {used} of {total}");
        if let Some(percent) = percent {
            assert_close(percent, (total - used) / total * 100.0, what);
        }
    }
}

/// Checks the `routing` of a completion served by `mock-small` through `coding-fast`.
#[track_caller]
pub fn assert_coding_fast_routing(gateway: &RealGateway, routing: &Value) {
    assert_eq!(routing["provider"], gateway.node_id.as_str(), "{routing}");
    assert_eq!(routing["model"], "mock-small", "{routing}");
    assert_eq!(routing["combo"], "coding-fast", "{routing}");
    crate::assert_num!(
        routing["fallbacksTriggered"],
        0,
        "first step served: {routing}"
    );
    assert_close(&routing["cost"], SMALL_COST, "routing.cost");
    crate::assert_num!(routing["tokensIn"], 7, "{routing}");
    crate::assert_num!(routing["tokensOut"], 3, "{routing}");
    let request_id = routing["requestId"].as_str().unwrap_or_default();
    assert!(is_uuid(request_id), "requestId must be a UUID: {routing}");
}
