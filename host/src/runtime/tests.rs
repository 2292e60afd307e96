//! The runtime against components written in WebAssembly text, each built to
//! hit one limit: the test asserts the cause the runtime reports.

use super::*;
use crate::gateway::{Broker, BrokerConfig};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// A tool component whose `describe` and `call` run the given WAT
/// instructions first (then return a description and `{}`), with
/// `grower_instances` more core instances, each with its own memory, that
/// `call` can grow through `$grow1`, `$grow2`, ...
fn component(describe_body: &str, call_body: &str, grower_instances: usize) -> Vec<u8> {
    let describe = r#"{"name":"wat_tool","description":"test","inputSchema":{"type":"object"},"scopes":[]}"#;
    let growers: String = (1..=grower_instances).map(|i| format!("(core instance $g{i} (instantiate $grower))\n")).collect();
    let imports: String = (1..=grower_instances)
        .map(|i| format!("(import \"g{i}\" \"grow\" (func $grow{i} (param i32) (result i32)))\n"))
        .collect();
    let with: String = (1..=grower_instances).map(|i| format!("(with \"g{i}\" (instance $g{i}))")).collect();
    let text = format!(
        r#"(component
  (core module $grower
    (memory (export "mem") 1)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  {growers}
  (core module $main
    {imports}
    (memory (export "mem") 1)
    (global $heap (mut i32) (i32.const 8192))
    (data (i32.const 1024) "{describe_escaped}")
    (data (i32.const 4096) "{{}}")
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    (func (export "describe") (result i32)
      {describe_body}
      (i32.store (i32.const 16) (i32.const 1024))
      (i32.store (i32.const 20) (i32.const {describe_len}))
      (i32.const 16))
    (func (export "call") (param i32 i32) (result i32)
      {call_body}
      (i32.store8 (i32.const 32) (i32.const 0))
      (i32.store (i32.const 36) (i32.const 4096))
      (i32.store (i32.const 40) (i32.const 2))
      (i32.const 32)))
  (core instance $m (instantiate $main {with}))
  (func (export "describe") (result string) (canon lift (core func $m "describe") (memory (core memory $m "mem"))))
  (func (export "call") (param "input" string) (result (result string (error string)))
    (canon lift (core func $m "call") (memory (core memory $m "mem")) (realloc (core func $m "realloc")))))"#,
        describe_escaped = describe.replace('"', "\\\""),
        describe_len = describe.len(),
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const SPIN: &str = "(loop $l (br $l))";

fn context() -> CallContext {
    let url = url::Url::parse("http://127.0.0.1:9").unwrap();
    CallContext {
        tool: Arc::from("wat_tool"),
        caps: Default::default(),
        broker: Arc::new(Broker::new(BrokerConfig::new(url)).unwrap()),
        store: test_store(),
        bucket: Arc::new(std::sync::Mutex::new(crate::session::bucket::CallBucket::default_of(Arc::from("test")))),
        default_guard: None,
        spend: Default::default(),
        journal: Default::default(),
        progress: None,
    }
}

/// One SQLite state store for the tests of this module (in the temp folder).
fn test_store() -> crate::state::Store {
    static STORE: std::sync::OnceLock<crate::state::Store> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("omr-runtime-tests-{}", std::process::id()));
            Arc::new(crate::state::SqliteStore::open(&dir.join("state.sqlite"), Default::default()).unwrap())
        })
        .clone()
}

fn prepare(runtime: &Runtime, wasm: &[u8]) -> crate::runtime::bindings::ToolPre<CallState> {
    let sha = hex::encode(Sha256::digest(wasm));
    runtime.prepare(wasm, &sha).unwrap().0
}

async fn call(runtime: &Runtime, wasm: &[u8], limits: CallLimits) -> CallReport {
    let pre = prepare(runtime, wasm);
    runtime
        .call(CallRequest { pre: &pre, ctx: context(), limits, input: "{}".into(), cancel: None })
        .await
}

fn limits() -> CallLimits {
    LimitPolicy::default().for_class(DeadlineClass::Gateway)
}

#[tokio::test]
async fn a_component_that_returns_is_not_stopped() {
    let runtime = Runtime::new(None).unwrap();
    let report = call(&runtime, &component("", "", 0), limits()).await;
    assert_eq!(report.outcome, Ok(CallOutcome::Output("{}".into())));
    assert_eq!(report.stop_cause(), None);
}

#[tokio::test]
async fn a_spinning_call_is_stopped_for_cpu() {
    let runtime = Runtime::new(None).unwrap();
    let limits = CallLimits { cpu: Duration::from_millis(300), ..limits() };
    let report = call(&runtime, &component("", SPIN, 0), limits).await;
    assert_eq!(report.outcome, Err(CallError::Cpu(300)), "{report:?}");
    assert!(report.usage.cpu >= Duration::from_millis(300), "{:?}", report.usage);
}

#[tokio::test]
async fn a_spinning_describe_is_stopped_for_cpu() {
    let runtime = Runtime::new(None).unwrap();
    let pre = prepare(&runtime, &component(SPIN, "", 0));
    let err = runtime.describe(&pre, context(), LimitPolicy::default().for_describe()).await.unwrap_err();
    assert_eq!(err.cause(), StopCause::Cpu, "{err}");
}

/// Four memories of 48 MiB each fit a 128 MiB cap one by one, not together.
#[tokio::test]
async fn memory_is_capped_over_all_memories_of_a_call() {
    let runtime = Runtime::new(None).unwrap();
    let grow_all = "
      (if (i32.lt_s (call $grow1 (i32.const 768)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $grow2 (i32.const 768)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (call $grow3 (i32.const 768)) (i32.const 0)) (then unreachable))
      (if (i32.lt_s (memory.grow (i32.const 768)) (i32.const 0)) (then unreachable))";
    let wasm = component("", grow_all, 3);
    let capped = CallLimits { memory_bytes: 128 * 1024 * 1024, ..limits() };
    let report = call(&runtime, &wasm, capped).await;
    assert_eq!(report.outcome, Err(CallError::Memory(128)), "{report:?}");
    // The same component within a cap that holds all four memories works.
    let roomy = CallLimits { memory_bytes: 256 * 1024 * 1024, ..limits() };
    assert_eq!(call(&runtime, &wasm, roomy).await.outcome, Ok(CallOutcome::Output("{}".into())));
}

#[tokio::test]
async fn a_cancelled_call_is_stopped_with_that_cause() {
    let runtime = Runtime::new(None).unwrap();
    let pre = prepare(&runtime, &component("", SPIN, 0));
    let cancel = tokio_util::sync::CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        canceller.cancel();
    });
    let report = runtime
        .call(CallRequest { pre: &pre, ctx: context(), limits: limits(), input: "{}".into(), cancel: Some(cancel) })
        .await;
    assert_eq!(report.outcome, Err(CallError::Cancelled), "{report:?}");
}

#[tokio::test]
async fn output_over_the_cap_is_refused() {
    let runtime = Runtime::new(None).unwrap();
    let tiny = CallLimits { output_bytes: 1, ..limits() };
    let report = call(&runtime, &component("", "", 0), tiny).await;
    assert_eq!(report.outcome, Err(CallError::Output(2, 1)));
}
