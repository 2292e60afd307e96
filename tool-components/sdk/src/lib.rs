//! Guest SDK for omniroute-mcp tool components.
//!
//! A tool is a WebAssembly component implementing the WIT world
//! `omniroute:tool/tool` (`tools-wit/wit/tool.wit`). This crate hides that
//! world behind plain Rust so a tool crate is: its logic, a [`Tool`] impl, and
//! one line of glue:
//!
//! ```ignore
//! pub struct GetHealth;
//! impl omniroute_tool_sdk::Tool for GetHealth { /* describe + call */ }
//! omniroute_tool_sdk::export_tool!(GetHealth);
//! ```
//!
//! Everything except the glue compiles natively, so tools are unit-tested on
//! the build machine with [`testing::FakeGateway`] and real gateway fixtures.
//!
//! * [`Gateway`]: requests to the OmniRoute gateway through the host's
//!   broker; the JSON helpers produce the contract's error texts ([`failure`]).
//! * [`Degraded`]: the `degraded` list of multi-source tools.
//! * [`args`]: reading validated tool arguments with uniform error texts.
//! * [`coerce`], [`combos`]: the shared reading rules for gateway JSON.
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
