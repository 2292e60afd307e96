//! What a component's store holds for one call.

use super::invoke::ProgressSink;
use crate::capability::CapabilitySet;
use crate::gateway::Broker;
use crate::session::Session;
use crate::session::ledger::{RoutingIndex, SharedEntry};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Guest stdout/stderr kept per call for the host log. Writing past this traps
/// the call: a tool has no business printing megabytes.
pub(crate) const GUEST_OUTPUT_CAP: usize = 1024 * 1024;

/// Everything a call may reach through its imports, decided by the host
/// before the component runs.
#[derive(Clone)]
pub struct CallContext {
    /// The tool being called (names its private session keys and log lines).
    pub tool: Arc<str>,
    /// Who is calling (stdio: `anonymous`; HTTP: the tenant).
    pub caller: Arc<str>,
    /// Granted ∩ declared scopes: the only gateway routes this call may use.
    pub caps: CapabilitySet,
    pub broker: Arc<Broker>,
    pub session: Arc<Session>,
    /// Request id -> completion, across sessions (for explaining routes).
    pub routing_index: Arc<RoutingIndex>,
    /// Shapes of the gateway requests this call made, for the audit log.
    pub journal: Arc<std::sync::Mutex<Vec<crate::audit::GatewayCall>>>,
    /// Where progress goes, when the client asked for it.
    pub progress: Option<ProgressSink>,
}

/// The store data of one call.
pub struct CallState {
    pub(crate) ctx: CallContext,
    pub(crate) requests_left: u32,
    pub(crate) request_cap: u32,
    /// Completions this call sent: the only ledger entries it may annotate.
    pub(crate) completions: Vec<SharedEntry>,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl CallState {
    /// A WASI context that grants nothing: no files, sockets, name lookups,
    /// environment or arguments. Clocks and randomness stay available.
    pub(crate) fn new(ctx: CallContext, request_cap: u32, memory_bytes: usize) -> Self {
        let stdout = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            ctx,
            requests_left: request_cap,
            request_cap,
            completions: Vec::new(),
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap { cap: memory_bytes, exceeded: false },
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
            tracing::debug!(tool = %self.ctx.tool, stream, bytes = bytes.len(), output = %shown, "guest output");
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

/// Caps linear memory growth and remembers whether the cap was hit, so a
/// guest that aborts on a failed allocation is reported as out of memory
/// rather than as a mysterious crash.
pub(crate) struct MemoryCap {
    pub(crate) cap: usize,
    pub(crate) exceeded: bool,
}

/// Table elements a component may grow to; Rust guests need a few hundred.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
