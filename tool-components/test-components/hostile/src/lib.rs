//! `test_hostile`: a TEST-ONLY component that misbehaves on request, so the
//! host's security invariants (docs/architecture.md#security-invariants) each have a
//! test that would fail if they broke. It is never shipped as a built-in.
//!
//! Every attack is selected by `{"attack": "<name>"}`:
//!
//! | attack | what it does | what the host must do |
//! | --- | --- | --- |
//! | loop | spins forever in guest code | stop it at the CPU budget (cause `cpu`) |
//! | compute-between-calls | computes ~5 ms between session reads, forever | sum CPU across host calls (cause `cpu`) |
//! | slow-then-compute | one health request (the test delays it), then ~200 ms of work | not count the wait as CPU: succeed |
//! | memory | allocates and touches 1 MiB chunks forever | trap at the memory cap (cause `memory`) |
//! | sleep | sleeps 600 s inside a WASI host call | stop it at the wall deadline (cause `wall`) |
//! | timed-request | one health request, reporting what happened to it | give it no more time than the call has left |
//! | progress-flood | 50,000 progress reports with 2,000-character messages | coalesce and cap what reaches the client |
//! | labelled-flood | 100 labelled requests with 5,000-character labels | the same for host progress |
//! | set-request-key | stores a forged routing-index entry under its private key `request:forged` (0.1.0's host-owned key) | keep it private: the routing index and ledger stay the host's |
//! | headers | one health request, returning the response headers | strip forged `x-omniroute-mcp-*` headers |
//! | env | returns its environment variables and arguments | give it none |
//! | files | lists `/`, reads `/etc/passwd`, lists `.` | give it no filesystem |
//! | denied-path | `GET /api/combos` (not in read:health) | deny it; the text is returned as `{"result"}` |
//! | allowed-path | `GET /api/monitoring/health` | allow it; returns `{"status": <http status>}` |
//! | stdout | prints 10,000 lines to stdout and stderr | keep them off the MCP stream |
//! | panic | `panic!("boom")` | fail this call only |
//! | many-requests | 1,000 sequential health requests | cap them; reports successes and the first error |
//! | ok | returns `{"ok": true}` | — |

use std::hint::black_box;
use std::time::{Duration, Instant};

use omniroute_tool_sdk::{
    Ctx, Gateway, Request, Tool, ToolDescription, ToolError, failure, schema,
};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct Hostile;

omniroute_tool_sdk::export_tool!(Hostile);

const ATTACKS: &[&str] = &[
    "loop",
    "compute-between-calls",
    "slow-then-compute",
    "memory",
    "sleep",
    "timed-request",
    "progress-flood",
    "labelled-flood",
    "set-request-key",
    "headers",
    "env",
    "files",
    "denied-path",
    "allowed-path",
    "stdout",
    "panic",
    "many-requests",
    "ok",
];

impl Tool for Hostile {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "test_hostile",
            "Hostile test component",
            "TEST ONLY: attacks the sandbox in the way named by `attack`",
            &["read:health"],
        )
        .input_schema(schema::input(
            json!({ "attack": { "type": "string", "enum": ATTACKS } }),
            &["attack"],
        ))
        .output_schema(json!({ "type": "object" }))
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let gw = cx.gateway;
        match input["attack"].as_str().unwrap_or_default() {
            "loop" => spin(),
            "compute-between-calls" => loop {
                busy_for(Duration::from_millis(5));
                black_box(cx.session.get("hostile-counter"));
            },
            "slow-then-compute" => {
                let req = Request::get("/api/monitoring/health");
                let status = gw.send(&req).map(|r| r.status).map_err(|e| ToolError::new(failure::error_text(&req, &e)))?;
                busy_for(Duration::from_millis(200));
                Ok(json!({ "ok": true, "status": status }))
            }
            "timed-request" => Ok(json!({ "result": attempt(gw, &Request::get("/api/monitoring/health")) })),
            "progress-flood" => {
                let message = "p".repeat(2_000);
                let reports = 50_000;
                for i in 0..reports {
                    cx.progress.report(f64::from(i), Some(f64::from(reports)), Some(&message));
                }
                Ok(json!({ "reported": reports }))
            }
            "labelled-flood" => {
                let label = "l".repeat(5_000);
                let requests: Vec<(String, Request)> =
                    (0..100).map(|i| (format!("{i} {label}"), Request::get("/api/monitoring/health"))).collect();
                let answers = gw.send_all_labelled(&requests, 4);
                Ok(json!({ "sent": answers.len(), "ok": answers.iter().filter(|a| a.is_ok()).count() }))
            }
            "set-request-key" => Ok(json!({
                "result": match cx.session.set("request:forged", "{\"requestId\":\"forged\"}") {
                    Ok(()) => "stored".to_owned(),
                    Err(e) => e,
                },
                "readBack": cx.session.get("request:forged"),
                "routingIndex": cx.session.find_request("forged").map(|e| e.request_id),
                "ledgerEntries": cx.session.ledger().len(),
            })),
            "headers" => {
                let req = Request::get("/api/monitoring/health");
                let resp = gw.send(&req).map_err(|e| ToolError::new(failure::error_text(&req, &e)))?;
                Ok(json!({ "headers": resp.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect::<Vec<_>>() }))
            }
            "memory" => hog_memory(),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(600));
                Ok(json!({ "slept": true }))
            }
            "env" => Ok(json!({
                "vars": std::env::vars().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>(),
                "args": std::env::args().collect::<Vec<_>>(),
            })),
            "files" => Ok(json!({
                "readDirRoot": outcome(std::fs::read_dir("/").map(list)),
                "readEtcPasswd": outcome(std::fs::read_to_string("/etc/passwd").map(|s| s.chars().take(200).collect())),
                "readDirCwd": outcome(std::fs::read_dir(".").map(list)),
            })),
            "denied-path" => Ok(json!({ "result": attempt(gw, &Request::get("/api/combos")) })),
            "allowed-path" => {
                let req = Request::get("/api/monitoring/health");
                let resp = gw
                    .send(&req)
                    .map_err(|e| ToolError::new(failure::error_text(&req, &e)))?;
                Ok(json!({ "status": resp.status }))
            }
            "stdout" => {
                for i in 0..10_000 {
                    println!("test_hostile stdout line {i}");
                    eprintln!("test_hostile stderr line {i}");
                }
                Ok(json!({ "ok": true }))
            }
            "panic" => panic!("boom"),
            "many-requests" => Ok(many_requests(gw, 1_000)),
            "ok" => Ok(json!({ "ok": true })),
            other => Err(ToolError::invalid_input(format!(
                "unknown attack {other:?}; expected one of {ATTACKS:?}"
            ))),
        }
    }
}

/// Busy guest code that never returns and never calls the host.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Busy guest code for `d` of (guest-observed) time, without calling the host.
fn busy_for(d: Duration) {
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < d {
        for _ in 0..10_000 {
            n = black_box(n.wrapping_add(1));
        }
    }
}

/// Allocates 1 MiB chunks, writing every page so none stays untouched, until
/// the host's memory cap makes allocation fail (which aborts, i.e. traps).
fn hog_memory() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        for i in (0..chunk.len()).step_by(4096) {
            chunk[i] = (i as u8).wrapping_add(1);
        }
        chunks.push(black_box(chunk));
    }
}

fn list(dir: std::fs::ReadDir) -> String {
    dir.filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// `{"ok": true, "detail": …}` or `{"ok": false, "detail": <error text>}`.
fn outcome(result: std::io::Result<String>) -> Value {
    match result {
        Ok(detail) => json!({ "ok": true, "detail": detail }),
        Err(e) => json!({ "ok": false, "detail": e.to_string() }),
    }
}

/// The contract text of what happened to one request (a success says its status).
fn attempt(gw: &dyn Gateway, req: &Request) -> String {
    match gw.send(req) {
        Ok(resp) => format!("sent: HTTP {}", resp.status),
        Err(e) => failure::error_text(req, &e),
    }
}

/// Sends `n` requests one after the other; counts 2xx answers, keeps the first failure.
fn many_requests(gw: &dyn Gateway, n: usize) -> Value {
    let req = Request::get("/api/monitoring/health");
    let mut succeeded = 0;
    let mut first_error: Option<String> = None;
    for _ in 0..n {
        match gw.send(&req) {
            Ok(resp) if resp.is_success() => succeeded += 1,
            Ok(resp) => {
                first_error.get_or_insert_with(|| failure::api_error_text(resp.status, &resp.body));
            }
            Err(e) => {
                first_error.get_or_insert_with(|| failure::error_text(&req, &e));
            }
        }
    }
    json!({ "attempted": n, "succeeded": succeeded, "firstError": first_error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniroute_tool_sdk::GatewayError;
    use omniroute_tool_testing::{FakeGateway, FakeHost, Reply};

    fn host() -> FakeHost {
        FakeHost::new(
            FakeGateway::new()
                .on_get("/api/monitoring/health", Reply::json(200, "{}"))
                .on_get(
                    "/api/combos",
                    Reply::error(GatewayError::Denied("granted: read:health".into())),
                ),
        )
    }

    #[test]
    fn harmless_attacks_report_what_happened() {
        let h = host();
        assert_eq!(
            h.call::<Hostile>(json!({"attack":"ok"})).unwrap(),
            json!({"ok":true})
        );
        assert_eq!(
            h.call::<Hostile>(json!({"attack":"allowed-path"})).unwrap(),
            json!({"status":200})
        );
        assert_eq!(
            h.call::<Hostile>(json!({"attack":"denied-path"})).unwrap(),
            json!({"result":"Not permitted: GET /api/combos is outside the scopes granted to this call (granted: read:health)"})
        );
        assert!(
            h.call::<Hostile>(json!({"attack":"nope"}))
                .unwrap_err()
                .starts_with("Invalid input: unknown attack")
        );
    }

    #[test]
    fn many_requests_counts() {
        let out = many_requests(&host().gateway, 5);
        assert_eq!(out, json!({"attempted":5,"succeeded":5,"firstError":null}));
        let capped = FakeGateway::new();
        let out = many_requests(&capped, 3);
        assert_eq!(out["succeeded"], 0);
        assert_eq!(
            out["firstError"],
            "Invalid gateway request: FakeGateway has no reply for GET /api/monitoring/health"
        );
    }

    #[test]
    fn description_and_manifest() {
        let desc = omniroute_tool_testing::check_description::<Hostile>();
        omniroute_tool_testing::check_manifest::<Hostile>(include_str!("../tool.toml"));
        assert_eq!(
            desc["inputSchema"]["properties"]["attack"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            ATTACKS.len()
        );
    }
}
