//! omniroute-mcp: an MCP server for the OmniRoute AI gateway in which every
//! tool is a sandboxed WebAssembly component.
//!
//! The folders mirror the architecture (see the README): `mcp` speaks the
//! protocol, `registry` finds and verifies tools, `runtime` runs them in
//! wasmtime with per-call limits, `capability` decides what a call may ask
//! the gateway, `gateway` is the only code that talks to it, `session`
//! holds per-session state, `state` the store that keeps state across calls,
//! processes and nodes (SQLite or PostgreSQL), and `db` what it shares with
//! the audit log.

pub mod app;
pub mod audit;
pub mod capability;
pub mod config;
pub mod db;
pub mod gateway;
pub mod mcp;
pub mod registry;
pub mod runtime;
pub mod session;
pub mod state;
pub mod tenants;
pub mod transport;
