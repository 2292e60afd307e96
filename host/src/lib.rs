//! omniroute-mcp: an MCP server for the OmniRoute AI gateway in which every
//! tool is a sandboxed WebAssembly component.
//!
//! The folders mirror the architecture (see the README): `transport` serves
//! stdio and Streamable HTTP and resolves who is calling into an `auth`
//! principal, `mcp` speaks the protocol, `call` runs one tool call for one
//! principal (admission, scopes, validation, sandbox, audit), `registry`
//! finds and verifies tools, `runtime` runs them in wasmtime with per-call
//! limits, `capability` decides what a call may ask the gateway, `gateway` is
//! the only code that talks to it, `session` decides which state a call uses
//! (handle, legacy session or default bucket) and records its ledger, `state`
//! keeps what outlives calls, processes and nodes (SQLite or PostgreSQL,
//! through `db`), `tasks` runs long calls detached as MCP tasks recorded in
//! that store, and `audit` records every call.

pub mod app;
pub mod audit;
pub mod auth;
pub mod call;
pub mod capability;
pub mod client_config;
pub mod config;
pub mod db;
pub mod doctor;
pub mod gateway;
pub mod hangup;
pub mod json_text;
pub mod mcp;
pub mod registry;
pub mod runtime;
pub mod session;
pub mod state;
pub mod tasks;
pub mod stop_cause;
pub mod telemetry;
pub mod transport;
