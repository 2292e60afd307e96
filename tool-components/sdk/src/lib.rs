//! Guest SDK for omniroute-mcp tools: write an MCP tool for the OmniRoute
//! gateway as plain Rust, run it sandboxed as a WebAssembly component.
//!
//! A **tool** is a WebAssembly component (`wasm32-wasip2`) implementing the
//! WIT world `omniroute:tool/tool@0.1.0` (`tools-wit/wit/tool.wit`): it
//! exports `describe()` and `call(input)`, and reaches the outside world
//! only through the host's `gateway` broker (requests limited to the call's
//! granted scopes, credentials added by the host), per-session state and
//! progress notifications. No files, environment, sockets or credentials;
//! every call has a deadline, a memory cap and a request cap.
//!
//! This crate hides the WIT world behind a [`Tool`] trait, so a tool crate
//! is its logic, a `Tool` impl and one line of glue. Everything but the glue
//! compiles natively, so tools are unit-tested on the build machine with
//! [`testing::FakeGateway`] and real gateway answers:
//!
//! ```
//! use omniroute_tool_sdk::providers::HEALTH;
//! use omniroute_tool_sdk::testing::{FakeGateway, FakeHost, Reply, fixtures};
//! use omniroute_tool_sdk::{Ctx, Tool, ToolDescription, ToolError, schema};
//! use serde_json::{Value, json};
//!
//! pub struct GatewayVersion;
//! omniroute_tool_sdk::export_tool!(GatewayVersion); // the WIT glue (wasm32 only)
//!
//! impl Tool for GatewayVersion {
//!     fn describe() -> ToolDescription {
//!         ToolDescription::read_only("gateway_version", "Gateway version", "Says the gateway version", &["read:health"])
//!             .input_schema(schema::no_input())
//!             .output_schema(schema::object(
//!                 json!({ "version": schema::nullable("string", "Gateway version") }),
//!                 &["version"],
//!             ))
//!     }
//!     fn call(_input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
//!         // `?`: a failed request ends the call with a text the agent can act on.
//!         let health = cx.gateway.get_json(HEALTH, &[])?;
//!         Ok(json!({ "version": health["version"] }))
//!     }
//! }
//!
//! // A native test: scripted gateway, real 3.7.9 answer, output checked
//! // against the output schema.
//! let gw = FakeGateway::new().on_get(HEALTH, Reply::json(200, fixtures::HEALTH_POPULATED));
//! let out = FakeHost::new(gw).call::<GatewayVersion>(json!({})).unwrap();
//! assert_eq!(out["version"], "3.7.9");
//! let down = FakeGateway::new().on_get(HEALTH, Reply::unreachable("connection refused"));
//! assert_eq!(
//!     FakeHost::new(down).call::<GatewayVersion>(json!({})),
//!     Err("OmniRoute API unreachable: GET /api/monitoring/health: connection refused".into())
//! );
//! ```
//!
//! Beside the crate, `tool.toml` names the tool, its version, its scopes and
//! optional `[limits]` (`deadline_ms`, `memory_mib`, `gateway_requests`, which
//! only tighten the server's); the build pins the component's sha256 in it.
//! `cargo xtask new-tool NAME` generates a working plugin crate;
//! `tool-components/sdk/README.md` is the guide for outside authors.
//!
//! * [`Tool`], [`ToolDescription`], [`ToolError`], [`Ctx`]: the contract.
//!   Errors are messages for the agent: say what failed and what to do next.
//! * [`Gateway`]: requests through the host's broker; `send_all_json` runs
//!   several concurrently; the JSON helpers produce the contract's error
//!   texts ([`failure`]).
//! * [`Degraded`]: the `degraded` list of multi-source tools: one failed
//!   source is reported, not fatal, and never replaced by a made-up value.
//! * [`testing`]: `FakeGateway`, `FakeHost`, real fixtures, schema checks.
//! * [`args`]: reading validated tool arguments with uniform error texts.
//! * [`coerce`], [`combos`]: the shared reading rules for gateway JSON,
//!   combo steps and measured combo latency.
//! * [`providers`]: provider alias sets, breaker states and prices (spec A.4, C.0.6).
//! * [`completion`]: completion requests, routing headers, host guard headers.
//! * [`ledger`]: the host-owned session state (ledger, budget guard, start).
//! * [`quota`]: quota entry normalisation; [`fitness`]: the task fitness table.
//! * [`clock`]: wall-clock time and JS-style ISO timestamps and durations.
//! * [`schema`]: builders for the published input and output schemas.

pub mod args;
pub mod clock;
pub mod coerce;
pub mod combos;
pub mod completion;
pub mod degraded;
pub mod failure;
pub mod fitness;
pub mod gateway;
pub mod ledger;
pub mod providers;
pub mod quota;
pub mod schema;
pub mod session_cache;
pub mod testing;
pub mod tool;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wit;

pub use degraded::Degraded;
pub use failure::GatewayFailure;
pub use gateway::{Gateway, GatewayError, GatewayResult, Method, Request, Response};
pub use tool::{
    Annotations, Ctx, Progress, Session, Tool, ToolDescription, ToolError, call_json, describe_json,
};

/// Exports a [`Tool`] as the component's `describe` and `call`.
///
/// Use it once, at the root of the tool crate. On wasm32 it implements the
/// WIT world by delegating to the tool; natively it expands to nothing, so
/// the same crate also builds and tests on the host machine.
#[macro_export]
macro_rules! export_tool {
    ($tool:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __OmniRouteToolGuest;
            impl $crate::wit::Guest for __OmniRouteToolGuest {
                fn describe() -> ::std::string::String {
                    $crate::describe_json::<$tool>()
                }
                fn call(
                    input: ::std::string::String,
                ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                    $crate::wit::run::<$tool>(&input)
                }
            }
    $crate::wit::__export_tool_world!(__OmniRouteToolGuest with_types_in $crate::wit);
        };
    };
}
