//! The sandbox: one wasmtime [`Engine`] for the process, a precompiled-code
//! cache, and a fresh, capped `Store` for every tool call.

pub mod bindings;
mod cache;
mod engine;
mod imports;
mod invoke;
mod limits;
mod state;

pub use cache::{CacheOutcome, CompiledCache};
pub use engine::{Runtime, RuntimeError};
pub use invoke::{CallError, CallOutcome, CallRequest, ProgressSink};
pub use limits::CallLimits;
pub use state::{CallContext, CallState};
