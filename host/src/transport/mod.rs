//! Transports: each one resolves who is calling into a
//! [`Principal`](crate::auth::Principal) and hands MCP requests to the handler.
//! Stdio serves the operator over one session; Streamable HTTP serves many
//! tenants over many sessions.

pub mod http;
pub mod stdio;
pub mod tasks_2025;

use std::path::PathBuf;

/// Folders as one line for startup messages (none: the tools built into the binary).
fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return crate::registry::EMBEDDED_LABEL.to_owned();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
