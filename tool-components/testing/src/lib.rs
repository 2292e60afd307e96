//! Native test support for omniroute-mcp tools: a scripted gateway, an
//! in-memory session, a progress recorder, checks of descriptions and
//! output schemas, and the captured gateway answers. Nothing here talks to
//! a real host. Use it as a dev-dependency only:
//!
//! ```toml
//! [dev-dependencies]
//! omniroute-tool-testing = { path = "…/tool-components/testing" }
//! ```
//!
//! ```
//! use omniroute_tool_testing::{FakeGateway, FakeHost, Reply};
//! use omniroute_tool_sdk::{GatewayError, Method};
//!
//! let gateway = FakeGateway::new()
//!     .on_get("/api/cache", Reply::json(200, r#"{"semanticCache":{}}"#))
//!     .on_get("/api/rate-limits", Reply::error(GatewayError::Timeout(15)));
//! let host = FakeHost::new(gateway);
//! // host.call::<MyTool>(json!({})) runs the tool through the export path.
//! # let _ = host;
//! ```
//!
//! * [`FakeGateway`], [`Reply`]: scripted answers per (method, path),
//!   narrowed by query or body field; records requests and batches.
//! * [`FakeHost`], [`MemorySession`], [`RecordingProgress`]: one call's
//!   context; [`FakeHost::call`] checks the output against the output schema.
//! * [`fixtures`]: real OmniRoute 3.7.9 answers (`fixtures/gateway/`) and
//!   answers derived from them for edge cases (`fixtures/derived/`).
//! * [`gateway_failures`], [`check_description`], [`check_manifest`],
//!   [`validate`]: the checks every tool's tests run.
//! * [`ledger_entry`]: a ledger entry in the host's shape.

mod checks;
mod fake_gateway;
mod fake_host;
pub mod fixtures;
mod ledger;

pub use checks::{assert_output_valid, check_description, input_schema_without_session_id, check_manifest, gateway_failures, validate};
pub use fake_gateway::{FakeGateway, LabelledBatch, Matcher, Reply};
pub use fake_host::{FakeHost, MemorySession, ProgressReport, RecordingProgress, degraded_sources, keys};
pub use ledger::ledger_entry;
