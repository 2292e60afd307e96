//! What a component's store holds for one call: the state of each factor,
//! a WASI context that grants nothing, and the call's memory limiter.

use super::clock::CallClock;
use super::factors::gateway::GatewayState;
use super::factors::progress::ProgressState;
use super::factors::session::SessionState;
use super::factors::CallContext;
use super::limiter::CallLimiter;
use super::limits::CallLimits;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Guest stdout/stderr kept per call for the host log. Writing past this traps
/// the call: a tool has no business printing megabytes.
pub(crate) const GUEST_OUTPUT_CAP: usize = 1024 * 1024;

/// The store data of one call.
pub struct CallState {
    pub(crate) tool: Arc<str>,
    pub(crate) gateway: GatewayState,
    pub(crate) session: SessionState,
    pub(crate) progress: ProgressState,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: CallLimiter,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl CallState {
    /// A WASI context that grants nothing: no files, sockets, name lookups,
    /// environment or arguments. Clocks and randomness stay available.
    pub(crate) fn new(ctx: CallContext, limits: &CallLimits, clock: Arc<CallClock>) -> Self {
        let stdout = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let completions = super::factors::CallCompletions::default();
        let session = SessionState {
            tool: ctx.tool.clone(),
            caps: ctx.caps.clone(),
            store: ctx.store.clone(),
            bucket: ctx.bucket.clone(),
            default_guard: ctx.default_guard.clone(),
            completions: completions.clone(),
        };
        let progress = ProgressState { sink: ctx.progress.clone() };
        Self {
            tool: ctx.tool.clone(),
            gateway: GatewayState::new(ctx, clock, limits.gateway_requests, completions),
            session,
            progress,
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter::new(limits.memory_bytes),
            stdout,
            stderr,
        }
    }

    /// Sends guest stdout/stderr to the host log (never to the MCP stream).
    pub(crate) fn flush_guest_output(&self) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            let shown: String = text.chars().take(4096).collect();
            tracing::debug!(tool = %self.tool, stream, bytes = bytes.len(), output = %shown, "guest output");
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
