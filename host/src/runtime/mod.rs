//! The sandbox: one wasmtime [`Engine`](wasmtime::Engine) for the process,
//! an authenticated precompiled-code cache, and a fresh, bounded `Store` for
//! every tool call, whose imports are the [`factors`].
//!
//! Module map: `engine` (engine, linker, epoch ticker), `cache`, `compiler` (Cranelift, in a
//! child process), `invoke`
//! (one run of an export), `limits` (what bounds a call), `stop` (why a call
//! was stopped), `cpu` (the CPU budget), `clock` (the wall deadline),
//! `limiter` (memory over all memories and tables), `state` (the store data),
//! `factors` (the imports).

pub mod bindings;
mod cache;
mod clock;
mod compiler;
mod cpu;
mod engine;
pub mod factors;
mod invoke;
mod limiter;
mod limits;
mod state;
mod stop;
#[cfg(test)]
mod tests;

pub use cache::{CacheOutcome, CompiledCache};
pub use compiler::{
    CHILD_ARG as COMPILER_CHILD_ARG, COMPILE_TIME_LIMIT_ENV, compile_in_child_processes, serve_as_child as serve_as_compiler_child,
};
pub use engine::{Runtime, RuntimeError};
pub use factors::CallContext;
pub use factors::progress::ProgressSink;
pub use invoke::{CallOutcome, CallReport, CallRequest, CallUsage};
pub use limits::{
    CallLimits, DEFAULT_CPU, DESCRIBE_CPU, DESCRIBE_WALL, DeadlineClass, LimitPolicy, MAX_CALL_WALL, Tightening,
    WALL_MARGIN,
};
pub use state::CallState;
pub use stop::{CallError, StopCause, UnknownStopCause};
