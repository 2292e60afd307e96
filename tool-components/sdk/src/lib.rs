//! Guest SDK for omniroute-mcp tools: write an MCP tool for the OmniRoute
//! gateway as plain Rust, run it sandboxed as a WebAssembly component.
//!
//! A **tool** is a WebAssembly component (`wasm32-wasip2`) implementing the
//! WIT world `omniroute:tool/tool@0.1.1` (`tools-wit/wit/tool.wit`): it
//! exports `describe()` and `call(input)`, and reaches the outside world
//! only through the host's `gateway` broker (requests limited to the call's
//! granted scopes, credentials added by the host), per-session state and
//! progress notifications. No files, environment, sockets or credentials;
//! every call has a deadline, a memory cap and a request cap.
//!
//! This crate hides the WIT world behind a [`Tool`] trait, so a tool crate
//! is its logic, a `Tool` impl and one line of glue. Everything but the glue
//! compiles natively, so tools are unit-tested on the build machine with
//! the testing crate's `FakeGateway` and real gateway answers:
//!
//! ```
//! use omniroute_tool_sdk::providers::HEALTH;
//! use omniroute_tool_sdk::{Ctx, Tool, ToolDescription, ToolError, schema};
//! use omniroute_tool_testing::{FakeGateway, FakeHost, Reply, fixtures};
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
//! // A native test (the `omniroute-tool-testing` dev-dependency): scripted
//! // gateway, real 3.7.9 answer, output checked against the output schema.
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
//! * [`Tool`], [`ToolDescription`], [`ToolError`], [`Ctx`]: the trait a tool
//!   implements. Errors are messages for the agent: say what failed and what
//!   to do next.
//! * [`Gateway`]: requests through the host's broker; `send_all_json` runs
//!   several concurrently; the JSON helpers produce the contract's error
//!   texts ([`failure`]). [`Session`], [`Progress`]: the other two imports.
//! * [`Degraded`]: the `degraded` list of multi-source tools: one failed
//!   source or unknown value is reported, not fatal, and never replaced by a
//!   made-up value.
//! * [`args`]: reading validated tool arguments with uniform error texts;
//!   [`schema`]: builders for the published input and output schemas.
//! * The contract shared with the host (crate `omniroute-tool-contract`,
//!   re-exported under the same module names): [`coerce`] (JSON reading
//!   rules, JavaScript numbers), [`combos`], [`providers`] (alias sets,
//!   breaker states, prices), [`quota`], [`fitness`], [`clock`],
//!   [`budget`]; [`combos`], [`providers`], [`completion`]
//!   and [`ledger`] add the reads through the imports.
//! * [`session_cache`]: short-lived copies of slow-changing gateway data.
//!
//! Test tools natively with the `omniroute-tool-testing` crate (a
//! dev-dependency): `FakeGateway`, `FakeHost`, real fixtures, schema checks.

pub use omniroute_tool_contract as contract;
pub use omniroute_tool_contract::{budget, clock, coerce, fitness, quota};

pub mod args;
pub mod combos;
pub mod completion;
pub mod degraded;
pub mod failure;
pub mod gateway;
pub mod ledger;
pub mod providers;
pub mod schema;
pub mod session_cache;
pub mod tool;
mod wire;

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
