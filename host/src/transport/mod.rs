//! Transports: Streamable HTTP for hosting, and the byte streams of stdio
//! (the protocol on top of them is rmcp's).

pub mod http;
pub mod stdio;
