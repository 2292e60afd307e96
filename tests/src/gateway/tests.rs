use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

/// One answer, read whole.
struct HttpResponse {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; panics with the body text if it is not JSON.
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A blocking client without a connection pool: one connection per request, so every
/// request reaches the gateway afresh (as the dropped-connection and shutdown tests need).
fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .no_proxy()
            .build()
            .expect("a blocking reqwest client builds")
    })
}

/// Sends one request (`target` is the path with optional query) and reads the whole answer.
fn request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> reqwest::Result<HttpResponse> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
    let mut request = client().request(method, format!("http://{addr}{target}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_vec());
    }
    let response = request.send()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes()?.to_vec();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn get_at(addr: std::net::SocketAddr, target: &str) -> reqwest::Result<HttpResponse> {
    request(addr, "GET", target, &[], None)
}

fn get(gw: &FakeGateway, target: &str) -> HttpResponse {
    get_at(gw.addr(), target).unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

fn send(gw: &FakeGateway, method: &str, target: &str, body: &str) -> HttpResponse {
    request(
        gw.addr(),
        method,
        target,
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

#[test]
fn serves_every_fixture_route_with_the_real_shapes() {
    let gw = FakeGateway::start();
    for (target, fixture) in [
        ("/api/rate-limits", "rate-limits-populated.json"),
        ("/api/cache", "cache.json"),
        ("/api/usage/quota?provider=mock", "usage-quota.json"),
        ("/api/usage/analytics?range=1d", "usage-analytics-1d.json"),
        ("/api/provider-metrics", "provider-metrics.json"),
        ("/api/provider-nodes", "provider-nodes.json"),
        ("/api/pricing", "pricing.json"),
        ("/api/pricing/models", "pricing-models-excerpt.json"),
        ("/api/usage/call-logs?limit=5", "call-logs.json"),
        ("/v1/models", "v1-models-populated.json"),
        ("/api/combos", "combos-populated.json"),
        ("/api/resilience", "resilience-defaults.json"),
    ] {
        let response = get(&gw, target);
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{target}"
        );
        assert_eq!(response.json(), FakeGateway::fixture(fixture), "{target}");
    }
}

#[test]
fn health_uptime_grows_and_timestamp_is_current() {
    let gw = FakeGateway::start();
    let first = get(&gw, "/api/monitoring/health").json();
    let second = get(&gw, "/api/monitoring/health").json();
    let (a, b) = (
        first["uptime"].as_f64().unwrap(),
        second["uptime"].as_f64().unwrap(),
    );
    assert!(a >= 521.0 && b > a, "uptime must grow: {a} then {b}");
    assert_eq!(second["system"]["uptime"], second["uptime"]);
    assert_eq!(first["status"], "healthy");
    assert_eq!(
        first["providerBreakers"],
        FakeGateway::fixture("health-populated.json")["providerBreakers"]
    );
    let stamp = first["timestamp"].as_str().unwrap();
    assert_eq!(stamp.len(), "2026-11-25T23:12:50.364Z".len(), "{stamp}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
    assert!(stamp > "2025-01-01", "{stamp}");
}

#[test]
fn route_class_and_fresh_request_id_on_every_answer() {
    let gw = FakeGateway::start();
    let health = get(&gw, "/api/monitoring/health");
    let combos = get(&gw, "/api/combos");
    let models = get(&gw, "/v1/models");
    let missing = get(&gw, "/api/nope");
    assert_eq!(health.header("x-omniroute-route-class"), Some("PUBLIC"));
    assert_eq!(combos.header("x-omniroute-route-class"), Some("MANAGEMENT"));
    assert_eq!(models.header("x-omniroute-route-class"), Some("CLIENT_API"));
    assert_eq!(
        missing.header("x-omniroute-route-class"),
        Some("MANAGEMENT")
    );
    let ids: Vec<&str> = [&health, &combos, &models, &missing]
        .iter()
        .map(|r| r.header("x-request-id").unwrap())
        .collect();
    for id in &ids {
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.matches('-').count(), 4, "{id}");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "request ids repeat: {ids:?}");
}

#[test]
fn unknown_routes_and_methods_are_404_json() {
    let gw = FakeGateway::start();
    for (method, target) in [
        ("GET", "/api/routing/decisions/x"),
        ("DELETE", "/api/combos"),
        ("POST", "/v1/models"),
    ] {
        let response = send(&gw, method, target, "");
        assert_eq!(response.status, 404, "{method} {target}");
        assert_eq!(response.json(), json!({"error": "Not found"}));
    }
}

#[test]
fn combo_metrics_lookup_is_by_name() {
    let gw = FakeGateway::start();
    assert_eq!(
        get(&gw, "/api/combos/metrics").json(),
        FakeGateway::fixture("combo-metrics-all.json")
    );
    assert_eq!(
        get(&gw, "/api/combos/metrics?combo=coding-fast").json(),
        FakeGateway::fixture("combo-metrics-coding-fast.json")
    );
    let id = "c9df3fce-0dd7-4438-a4e7-8f10fde6b078";
    for other in [id, "unknown", "coding%20fast"] {
        assert_eq!(
            get(&gw, &format!("/api/combos/metrics?combo={other}")).json(),
            json!({"metrics": null, "message": "No metrics for this combo yet"})
        );
    }
}

#[test]
fn put_combo_updates_is_active_by_id_only() {
    let gw = FakeGateway::start();
    let id = "c9df3fce-0dd7-4438-a4e7-8f10fde6b078";
    let updated = send(
        &gw,
        "PUT",
        &format!("/api/combos/{id}"),
        r#"{"isActive":false}"#,
    );
    assert_eq!(updated.status, 200);
    let updated = updated.json();
    assert_eq!(updated["isActive"], false);
    assert_eq!(updated["name"], "coding-fast");
    assert_ne!(updated["updatedAt"], "2026-11-25T22:36:03.518Z");
    let listed = get(&gw, "/api/combos").json();
    assert_eq!(listed["combos"][0]["isActive"], false);
    assert_eq!(listed, gw.combos());

    let by_name = send(
        &gw,
        "PUT",
        "/api/combos/coding-fast",
        r#"{"isActive":true}"#,
    );
    assert_eq!(
        (by_name.status, by_name.json()),
        (404, json!({"error": "Combo not found"}))
    );

    let wrong_type = send(
        &gw,
        "PUT",
        &format!("/api/combos/{id}"),
        r#"{"isActive":"yes"}"#,
    );
    assert_eq!(wrong_type.status, 400);
    assert_eq!(
        wrong_type.json()["error"]["details"][0]["message"],
        "Invalid input: expected boolean, received string"
    );
}

#[test]
fn patch_resilience_deep_merges() {
    let gw = FakeGateway::start();
    let patched = send(
        &gw,
        "PATCH",
        "/api/resilience",
        r#"{"providerBreaker":{"apikey":{"failureThreshold":9}}}"#,
    );
    assert_eq!(patched.status, 200);
    let patched = patched.json();
    assert_eq!(patched["ok"], true);
    assert_eq!(patched["providerBreaker"]["apikey"]["failureThreshold"], 9);
    let defaults = FakeGateway::fixture("resilience-defaults.json");
    assert_eq!(
        patched["providerBreaker"]["oauth"],
        defaults["providerBreaker"]["oauth"]
    );
    assert_eq!(
        patched["providerBreaker"]["apikey"]["resetTimeoutMs"],
        defaults["providerBreaker"]["apikey"]["resetTimeoutMs"]
    );
    assert_eq!(
        get(&gw, "/api/resilience").json()["providerBreaker"]["apikey"]["failureThreshold"],
        9
    );
    assert_eq!(
        send(&gw, "PATCH", "/api/resilience", "not json").status,
        400
    );
}

#[test]
fn chat_completion_has_routing_headers_and_fresh_ids() {
    let gw = FakeGateway::start();
    let exchange = FakeGateway::fixture("chat-completion-combo.json");
    let body = exchange["request"]["body"].to_string();
    let first = send(&gw, "POST", "/v1/chat/completions", &body);
    let second = send(&gw, "POST", "/v1/chat/completions", &body);
    assert_eq!(first.status, 200);
    assert_eq!(first.json(), exchange["body"]);
    for name in [
        "x-omniroute-provider",
        "x-omniroute-model",
        "x-omniroute-response-cost",
        "x-omniroute-tokens-in",
    ] {
        assert_eq!(
            first.header(name),
            exchange["headers"][name].as_str(),
            "{name}"
        );
    }
    assert_ne!(first.header("x-request-id"), second.header("x-request-id"));
    assert_ne!(
        first.header("x-request-id"),
        exchange["headers"]["x-request-id"].as_str()
    );
}

#[test]
fn records_method_path_query_headers_and_body() {
    let gw = FakeGateway::start();
    request(
        gw.addr(),
        "POST",
        "/v1/chat/completions?x=1&name=a%20b+c",
        &[
            ("Authorization", "Bearer k"),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"model":"m"}"#),
    )
    .unwrap();
    get(&gw, "/api/cache");
    let all = gw.requests();
    assert_eq!(all.len(), 2);
    let chat = &gw.requests_to("post", "/v1/chat/completions")[0];
    assert_eq!(chat.query.as_deref(), Some("x=1&name=a%20b+c"));
    assert_eq!(chat.query_param("name").as_deref(), Some("a b c"));
    assert_eq!(chat.header("authorization"), Some("Bearer k"));
    assert_eq!(chat.body_json(), Some(json!({"model": "m"})));
    assert_eq!(
        gw.requests_to("GET", "/api/cache")[0].header("authorization"),
        None
    );
    gw.clear_requests();
    assert!(gw.requests().is_empty());
}

#[test]
fn overrides_replace_status_and_body_until_cleared() {
    let gw = FakeGateway::start();
    gw.set_override(
        "GET",
        "/api/cache",
        Override::json(500, json!({"error": "boom"})),
    );
    let failed = get(&gw, "/api/cache");
    assert_eq!(
        (failed.status, failed.json()),
        (500, json!({"error": "boom"}))
    );
    assert!(failed.header("x-request-id").is_some());

    gw.set_override(
        "*",
        "/api/combos",
        Override::html(404, "<html>nope</html>").with_header("x-extra", "1"),
    );
    let html = get(&gw, "/api/combos");
    assert_eq!(html.status, 404);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(html.header("x-extra"), Some("1"));
    assert_eq!(html.body, b"<html>nope</html>");

    gw.clear_override("GET", "/api/cache");
    assert_eq!(get(&gw, "/api/cache").status, 200);
    gw.clear_overrides();
    assert_eq!(get(&gw, "/api/combos").status, 200);
}

#[test]
fn delay_override_delays_the_normal_answer() {
    let gw = FakeGateway::start();
    gw.set_override(
        "GET",
        "/api/rate-limits",
        Override::delay(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let response = get(&gw, "/api/rate-limits");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        response.json(),
        FakeGateway::fixture("rate-limits-populated.json")
    );
    // Other routes are not delayed meanwhile.
    let started = Instant::now();
    get(&gw, "/api/cache");
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[test]
fn close_connection_override_answers_nothing_and_is_recorded() {
    let gw = FakeGateway::start();
    gw.set_override("GET", "/api/cache", Override::close_connection());
    let error = get_at(gw.addr(), "/api/cache")
        .err()
        .expect("the connection must close without an answer");
    let chain = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(
        chain.contains("connection closed before message completed"),
        "{chain}"
    );
    assert_eq!(gw.requests_to("GET", "/api/cache").len(), 1);
    assert_eq!(
        get(&gw, "/api/rate-limits").status,
        200,
        "the gateway keeps serving"
    );
}

#[test]
fn required_api_key_guards_v1_only() {
    let gw = FakeGateway::start();
    gw.require_api_key(Some("sk-good"));
    let anonymous = get(&gw, "/v1/models");
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"]["code"], "AUTH_002");
    let with_key = |auth: &str| {
        request(
            gw.addr(),
            "GET",
            "/v1/models",
            &[("Authorization", auth)],
            None,
        )
        .unwrap()
        .status
    };
    assert_eq!(with_key("Bearer sk-bad"), 401);
    assert_eq!(with_key("Bearer sk-good"), 200);
    assert_eq!(get(&gw, "/api/combos").status, 200);
    gw.require_api_key(None);
    assert_eq!(get(&gw, "/v1/models").status, 200);
}

#[test]
fn dropping_the_gateway_closes_its_port() {
    let gw = FakeGateway::start();
    let addr = gw.addr();
    assert_eq!(get(&gw, "/api/cache").status, 200);
    drop(gw);
    assert!(get_at(addr, "/api/cache").is_err());
    let down = unreachable_url();
    let down: std::net::SocketAddr = down.trim_start_matches("http://").parse().unwrap();
    assert!(get_at(down, "/").is_err());
}

#[test]
fn works_inside_an_async_test_too() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let gw = FakeGateway::start();
        let addr = gw.addr();
        let status =
            tokio::task::spawn_blocking(move || get_at(addr, "/api/cache").unwrap().status)
                .await
                .unwrap();
        assert_eq!(status, 200);
    });
}

#[test]
fn many_sequential_requests_are_fast() {
    let gw = FakeGateway::start();
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(get(&gw, "/api/monitoring/health").status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "200 requests took {:?}",
        started.elapsed()
    );
}

#[test]
fn query_decoding() {
    assert_eq!(
        routes::parse_query(Some("a=1&b=x%2Fy+z&c&d=%zz&e=%4")),
        vec![
            ("a".into(), "1".into()),
            ("b".into(), "x/y z".into()),
            ("c".into(), String::new()),
            ("d".into(), "%zz".into()),
            ("e".into(), "%4".into()),
        ]
    );
    assert!(routes::parse_query(None).is_empty());
}

#[test]
fn startup_probes_are_kept_apart_from_the_tools_traffic() {
    let gw = FakeGateway::start();
    let probe = request(
        gw.addr(),
        "GET",
        "/api/monitoring/health",
        &[("User-Agent", "omniroute-mcp/0.1.0 startup-probe")],
        None,
    )
    .unwrap();
    assert_eq!(probe.status, 200);
    get(&gw, "/api/monitoring/health");
    assert_eq!(gw.requests_to("GET", "/api/monitoring/health").len(), 1);
    let probes = gw.startup_probes();
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!(probes[0].path, "/api/monitoring/health");
}
