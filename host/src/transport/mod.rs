//! Network transports (stdio lives in the CLI; it is rmcp's).

pub mod http;
