//! The contract between omniroute-mcp's host and its tool components, as
//! plain Rust: what crosses the boundary, and the rules both sides must
//! apply the same way.
//!
//! The host (native) and every tool (a `wasm32-wasip2` component) depend on
//! this crate, so each rule has exactly one implementation:
//!
//! * the **wire vocabulary**: the gateway's routing headers and the host's
//!   `x-omniroute-mcp-*` headers with one parser ([`completion`]), the WIT
//!   session keys ([`session_keys`]), the gateway's HTTP methods ([`method`]), the ledger entry the host writes and
//!   tools read ([`ledger`]), the budget guard with its decision, texts and
//!   degrade-target rule ([`budget`]);
//! * the **reading rules** for gateway JSON: defensive reads and JavaScript
//!   number formatting ([`coerce`]), combo lists and steps ([`combos`]),
//!   provider alias sets, breaker states and the price lookup
//!   ([`providers`]), quota entries ([`quota`]), the task fitness table
//!   ([`fitness`]) and JavaScript-style timestamps ([`clock`]).
//!
//! Nothing here talks to the gateway or knows the WIT world: the guest SDK
//! (`omniroute-tool-sdk`) adds the `Tool` trait and the imports on top, and
//! re-exports these modules under the same names.

pub mod budget;
pub mod clock;
pub mod coerce;
pub mod combos;
pub mod completion;
pub mod fitness;
pub mod ledger;
pub mod method;
pub mod providers;
pub mod quota;
pub mod session_keys;
