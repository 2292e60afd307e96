//! Test support for omniroute-mcp's end-to-end tests.
//!
//! ```no_run
//! # async fn example() {
//! use omniroute_mcp_tests::{FakeGateway, McpClient, ServerCommand};
//! use serde_json::json;
//!
//! let gateway = FakeGateway::start();
//! let client = McpClient::start(ServerCommand::new(&gateway.url())).await;
//! let health = client.call("omniroute_get_health", json!({})).await;
//! assert!(!health.is_error, "{}", health.text);
//! assert_eq!(gateway.requests_to("GET", "/api/cache").len(), 1);
//! # }
//! ```
//!
//! * [`FakeGateway`]: an in-process OmniRoute 3.7.9 stand-in serving the captured fixtures,
//!   recording every request, with per-route overrides (status, body, delay, dropped connection).
//! * [`McpClient`]: the server binary spawned over stdio and driven by the rmcp client.
//! * [`RawServer`]: the same binary driven line by line, keeping every stdout line.
//! * [`RealGateway`]: the real OmniRoute gateways `cargo xtask test` starts (env `OMNIROUTE_TEST_GATEWAY*`);
//!   [`real::checks`]: what the real-gateway tests share.
//! * [`tools`]: the built-in tools' names.
//! * [`paths`]: where the binary, the tool components and the Python venv are expected.
//! * [`markdown`]: the tables, headings and links of the pages in `docs/` (for `tests/tests/docs.rs`).
//!
//! Every wait is bounded (see [`DEFAULT_TIMEOUT`] and [`STARTUP_TIMEOUT`]), so a hung server
//! fails a test instead of hanging the run.

pub mod audit;
pub mod gateway;
pub mod http_server;
pub mod markdown;
pub mod mcp;
pub mod paths;
pub mod process;
pub mod python;
pub mod raw;
pub mod real;
pub mod temp;
pub mod tools;
pub mod wat_plugins;

pub use gateway::{CompletionHold, FakeGateway, Override, RecordedRequest};
pub use mcp::{McpClient, ToolResult, assert_same, combo_named, error_message, keys, numbers_as_f64};
pub use process::ServerCommand;
pub use raw::{RawServer, RawTranscript};
pub use real::RealGateway;
pub use temp::TempDir;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Upper bound for any single wait on the server (one request, shutdown).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Upper bound for startup up to the `initialize` answer. With a fresh data dir the server
/// compiles every component first (about 5 s for the debug build on 2 cores, more under load).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

/// Built-in tool: gateway health.
pub const GET_HEALTH: &str = tools::HEALTH;
/// Built-in tool: combos.
pub const LIST_COMBOS: &str = tools::LIST_COMBOS;
/// Test-only component that attacks the sandbox.
pub const TEST_HOSTILE: &str = "test_hostile";

/// The API key the e2e tests give the server; it must never show up in tool output.
pub const TEST_API_KEY: &str = "sk-test-secret-XYZ";

/// Locks, ignoring poisoning: a panicking test thread must not break the harness for others.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
