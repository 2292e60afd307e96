//! OpenTelemetry traces over OTLP/HTTP: with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a small
//! OTLP/HTTP receiver in the test, a `tools/call` whose `_meta.traceparent` names a client span
//! produces a server span in the client's trace (its parent the client's span), an argument
//! validation span, a sandbox span, one client span per gateway request, and an audit span; the fake gateway received each request
//! with a `traceparent` naming exactly one of those gateway spans. Without the variable, no
//! `traceparent` header reaches the gateway.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use omniroute_mcp_tests::{FakeGateway, RawServer, ServerCommand};
use serde_json::{Value, json};

const HEALTH: &str = "omniroute_get_health";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Collects the spans of every OTLP/HTTP JSON export request it receives.
struct OtlpReceiver {
    url: String,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl OtlpReceiver {
    async fn start() -> OtlpReceiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        let router = Router::new().route(
            "/v1/traces",
            post(move |headers: axum::http::HeaderMap, body: String| {
                let sink = sink.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/json");
                    let export: Value = serde_json::from_str(&body).expect("OTLP JSON body");
                    for rs in export["resourceSpans"].as_array().expect("resourceSpans") {
                        let service = rs["resource"]["attributes"]
                            .as_array()
                            .and_then(|a| a.iter().find(|kv| kv["key"] == "service.name"))
                            .map(|kv| kv["value"]["stringValue"].clone());
                        assert_eq!(service, Some(json!("omniroute-mcp")), "{body}");
                        for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                            sink.lock().unwrap().extend(ss["spans"].as_array().expect("spans").iter().cloned());
                        }
                    }
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        OtlpReceiver { url, spans }
    }

    /// Waits (bounded) until `count` spans of `trace` arrived; returns them.
    async fn spans_of(&self, trace: &str, count: usize, context: &dyn Fn() -> String) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Value> = self.spans.lock().unwrap().iter().filter(|s| s["traceId"] == trace).cloned().collect();
            if spans.len() >= count {
                return spans;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} of {count} spans of {trace}: {spans:#?}\n{}", spans.len(), context());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array()?.iter().find(|kv| kv["key"] == key).map(|kv| &kv["value"])
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_trace_continues_through_the_server_into_the_gateway() {
    let receiver = OtlpReceiver::start().await;
    let gateway = FakeGateway::start();
    let command = ServerCommand::new(&gateway.url()).env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url);
    let mut server = RawServer::start(command).await;
    server.initialize().await;
    gateway.clear_requests();

    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let answer = server
        .request("tools/call", json!({"name": HEALTH, "arguments": {}, "_meta": {"traceparent": traceparent}}))
        .await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");

    // The gateway saw the client's trace id, each request with its own parent span.
    let requests = gateway.requests();
    assert!(!requests.is_empty());
    let mut gateway_parents = BTreeSet::new();
    for r in &requests {
        let header = r.header("traceparent").unwrap_or_else(|| panic!("{} {} without traceparent", r.method, r.path));
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", CLIENT_TRACE, "01"), "{header}");
        assert!(gateway_parents.insert(parts[2].to_owned()), "two requests share span {header}");
    }

    // root + validation + sandbox + one per gateway request + audit commit
    let spans = receiver.spans_of(CLIENT_TRACE, 4 + requests.len(), &|| server.stderr()).await;
    let root = named(&spans, &format!("tools/call {HEALTH}"));
    assert_eq!(root.len(), 1, "{spans:#?}");
    let root = root[0];
    assert_eq!(root["parentSpanId"], CLIENT_SPAN, "the client's span is the root's parent");
    assert_eq!(root["kind"], 2, "server span");
    assert_eq!(attribute(root, "mcp.method.name"), Some(&json!({"stringValue": "tools/call"})));
    assert_eq!(attribute(root, "gen_ai.tool.name"), Some(&json!({"stringValue": HEALTH})));
    assert_eq!(root["status"]["code"], 0, "{root}");
    let root_id = root["spanId"].as_str().unwrap();

    let sandbox = named(&spans, "sandbox.run");
    assert_eq!(sandbox.len(), 1, "{spans:#?}");
    assert_eq!(sandbox[0]["parentSpanId"], root_id);
    let validation = named(&spans, "validate_arguments");
    assert_eq!(validation.len(), 1, "{spans:#?}");
    assert_eq!(validation[0]["parentSpanId"], root_id);
    let audit = named(&spans, "audit.commit");
    assert_eq!(audit.len(), 1, "{spans:#?}");
    assert_eq!(audit[0]["parentSpanId"], root_id);

    let gateway_spans: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    assert_eq!(gateway_spans.len(), requests.len(), "{spans:#?}");
    for span in &gateway_spans {
        assert_eq!(span["parentSpanId"], sandbox[0]["spanId"], "{span}");
        assert_eq!(attribute(span, "http.response.status_code"), Some(&json!({"intValue": "200"})), "{span}");
        let route = attribute(span, "url.template").unwrap()["stringValue"].as_str().unwrap();
        assert!(requests.iter().any(|r| r.path == route), "{route} was not requested");
    }
    let span_ids: BTreeSet<String> = gateway_spans.iter().map(|s| s["spanId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(span_ids, gateway_parents, "each gateway request names its own client span");

    // A call without a traceparent starts a trace of its own.
    gateway.clear_requests();
    let answer = server.request("tools/call", json!({"name": HEALTH, "arguments": {}})).await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    let header = gateway.requests()[0].header("traceparent").expect("traceparent").to_owned();
    let trace = header.split('-').nth(1).unwrap().to_owned();
    assert_ne!(trace, CLIENT_TRACE);
    let spans = receiver.spans_of(&trace, 4, &|| server.stderr()).await;
    let root = named(&spans, &format!("tools/call {HEALTH}"));
    assert_eq!(root.len(), 1, "{spans:#?}");
    assert!(root[0].get("parentSpanId").is_none(), "{}", root[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_otlp_configuration_no_trace_context_is_sent() {
    let gateway = FakeGateway::start();
    let mut server = RawServer::start(ServerCommand::new(&gateway.url()).env("OTEL_EXPORTER_OTLP_ENDPOINT", "")).await;
    server.initialize().await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let answer = server
        .request("tools/call", json!({"name": HEALTH, "arguments": {}, "_meta": {"traceparent": traceparent}}))
        .await;
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    let requests = gateway.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.header("traceparent").is_none()), "{requests:?}");
}
