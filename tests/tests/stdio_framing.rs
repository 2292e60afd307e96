//! The stdio framing under arbitrary input: whatever bytes arrive on stdin
//! after the handshake (random bytes, invalid UTF-8, truncated or odd
//! JSON-RPC, huge lines, stray newlines and carriage returns), the server
//! never crashes, keeps answering, exits cleanly when stdin closes, and
//! never writes a line to stdout that is not a JSON-RPC 2.0 message.
//!
//! A property test with a fixed number of cases (each one a fresh server),
//! so a run is reproducible in length; a failure is shrunk to a small input.

use omniroute_mcp_tests::{FakeGateway, RawServer, ServerCommand};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// Servers started per run (each case is one server).
const CASES: u32 = 64;

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("initialize".to_owned()),
        Just("ping".to_owned()),
        Just("tools/list".to_owned()),
        Just("tools/call".to_owned()),
        Just("server/discover".to_owned()),
        Just("notifications/cancelled".to_owned()),
        Just("notifications/initialized".to_owned()),
        Just("resources/read".to_owned()),
        "[a-z/_]{0,24}",
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        Just(json!("omniroute_get_health")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![Just("name".to_owned()), Just("arguments".to_owned()), Just("_meta".to_owned()), "[a-zA-Z]{1,8}"],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One JSON-RPC-shaped message with fields of any kind, some left out.
fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::option::of(prop_oneof![Just(json!("2.0")), json_value()]),
        prop::option::of(json_value()),
        prop::option::of(method()),
        prop::option::of(json_value()),
    )
        .prop_map(|(version, id, method, params)| {
            let mut m = serde_json::Map::new();
            if let Some(v) = version {
                m.insert("jsonrpc".into(), v);
            }
            if let Some(id) = id {
                m.insert("id".into(), id);
            }
            if let Some(method) = method {
                m.insert("method".into(), Value::from(method));
            }
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            let mut line = Value::Object(m).to_string().into_bytes();
            line.push(b'\n');
            line
        })
}

/// A piece of stdin: raw bytes, a message, a cut message, a batch, or a long line.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        message(),
        (message(), any::<prop::sample::Index>()).prop_map(|(m, cut)| m[..cut.index(m.len())].to_vec()),
        prop::collection::vec(message(), 1..4).prop_map(|ms| {
            let items: Vec<String> = ms.iter().map(|m| String::from_utf8_lossy(m).trim_end().to_owned()).collect();
            format!("[{}]\n", items.join(",")).into_bytes()
        }),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n\n".to_vec()),
        Just(vec![0xEF, 0xBB, 0xBF, b'{', b'}', b'\n']),
        (1usize..300_000).prop_map(|n| {
            let mut line = br#"{"jsonrpc":"2.0","id":7,"method":"ping","params":{"x":""#.to_vec();
            line.extend(std::iter::repeat_n(b'a', n));
            line.extend_from_slice(b"\"}}\n");
            line
        }),
    ]
}

fn stdin_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(chunk(), 1..8).prop_map(|chunks| chunks.concat())
}

/// One case: handshake, the bytes, a newline, then a `ping` that must be
/// answered; stdin closes and the server must exit with success.
async fn survives(gateway: &FakeGateway, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut server = RawServer::start(ServerCommand::new(&gateway.url())).await;
    server.initialize().await;
    server.send_bytes(bytes).await;
    server.send_bytes(b"\n").await;
    let probe = server.request("ping", json!({})).await;
    prop_assert_eq!(&probe["result"], &json!({}), "the server stopped answering: {}", probe);
    let transcript = server.finish().await;
    transcript.assert_json_rpc_only();
    prop_assert!(!transcript.stderr.contains("panicked at"), "a panic:\n{}", transcript.stderr);
    let exit = transcript.exit.ok_or_else(|| TestCaseError::fail("the server did not exit when stdin closed"))?;
    prop_assert!(exit.success(), "exit status {exit}\n{}", transcript.stderr);
    Ok(())
}

#[test]
fn arbitrary_bytes_on_stdin_never_crash_the_server_or_pollute_stdout() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let gateway = FakeGateway::start();
    let config = Config { cases: CASES, failure_persistence: None, max_shrink_iters: 64, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&stdin_bytes(), |bytes| runtime.block_on(survives(&gateway, &bytes)));
    if let Err(e) = result {
        panic!("{e}");
    }
}
