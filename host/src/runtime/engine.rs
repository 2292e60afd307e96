//! The process-wide engine: pooling allocator for fast instantiation, epoch
//! interruption driven by a ticker thread (the moments at which a running
//! guest's CPU budget is checked and it yields to other calls).

use super::bindings::{ToolPre, gateway, progress, session, state};
use super::cache::{CacheOutcome, CompiledCache};
use super::factors::gateway::GatewayState;
use super::factors::progress::ProgressState;
use super::factors::session::SessionState;
use super::state::CallState;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; the granularity of CPU budget checks and
/// of yielding a running guest back to the async executor.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Linear memory per warm pool slot kept mapped between calls (reset, never
/// shared): enough for a tool's heap on a typical call.
const KEEP_RESIDENT_BYTES: usize = 4 * 1024 * 1024;

/// Hard ceiling for a component's linear memory; per-call caps sit below it.
pub const MAX_MEMORY_BYTES: usize = 1024 * 1024 * 1024;

/// Failures while setting up the sandbox or loading a component.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not configure the WebAssembly engine: {0}")]
    Engine(String),
    #[error("could not link the tool world: {0}")]
    Link(String),
    #[error("could not compile the tool component: {0}")]
    Compile(String),
    #[error("component does not implement the omniroute:tool world: {0}")]
    World(String),
}

/// The environment variable that picks wasmtime's instance allocator:
/// `pooling` (the default: instances come from a pool reserved at start,
/// the fastest instantiation) or `on-demand` (memory mapped per call; for
/// tools that cannot host the pool's multi-terabyte address-space
/// reservation, such as valgrind in `cargo xtask bench --instructions`, or
/// hosts with a small `ulimit -v`).
pub const ALLOCATOR_ENV: &str = "OMNIROUTE_MCP_WASM_ALLOCATOR";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allocator {
    Pooling,
    OnDemand,
}

fn allocator_from_env() -> Result<Allocator, RuntimeError> {
    match std::env::var(ALLOCATOR_ENV).ok().as_deref().map(str::trim) {
        None | Some("" | "pooling") => Ok(Allocator::Pooling),
        Some("on-demand") => Ok(Allocator::OnDemand),
        Some(other) => Err(RuntimeError::Engine(format!("{ALLOCATOR_ENV}=\"{other}\" is not an allocator: use pooling (the default) or on-demand"))),
    }
}

/// The engine's configuration: the server and its compiler child ([`super::compiler`]) build
/// their engines from it, so the child's code fits the server's engine.
pub(crate) fn engine_config() -> Result<Config, RuntimeError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if allocator_from_env()? == Allocator::OnDemand {
        // Memory is mapped per instance when a call starts; no up-front reservation.
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        return Ok(config);
    }
    let mut pool = PoolingAllocationConfig::new();
    // A Rust wasip2 tool is one component with a handful of core
    // instances; 1,000 concurrent calls is far above what 2 cores serve.
    pool.total_component_instances(1000);
    pool.total_core_instances(4000);
    pool.max_core_instances_per_component(16);
    pool.total_memories(2000);
    pool.max_memories_per_component(4);
    pool.total_tables(4000);
    pool.max_tables_per_component(16);
    pool.total_stacks(1000);
    pool.max_memory_size(MAX_MEMORY_BYTES);
    pool.max_unused_warm_slots(64);
    // A fresh instance per call must not pay for page faults: the pages a
    // tool touched stay mapped in its warm slot and are reset to their
    // initial contents with memset (only the dirty ones, found with
    // PAGEMAP_SCAN where the kernel has it) instead of madvise + faults.
    pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
    pool.table_keep_resident(64 * 1024);
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(config)
}

/// Engine, linker and cache, shared by every call.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache: CompiledCache,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// Builds the engine and starts the epoch ticker. `cache_root` is
    /// `<data dir>/cache`; `None` disables the on-disk cache.
    pub fn new(cache_root: Option<&Path>) -> Result<Self, RuntimeError> {
        Self::with_config(&engine_config()?, cache_root)
    }

    fn with_config(config: &Config, cache_root: Option<&Path>) -> Result<Self, RuntimeError> {
        let engine = Engine::new(config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
        gateway::add_to_linker::<_, HasSelf<GatewayState>>(&mut linker, |state: &mut CallState| &mut state.gateway)
            .and_then(|()| session::add_to_linker::<_, HasSelf<SessionState>>(&mut linker, |state: &mut CallState| &mut state.session))
            .and_then(|()| state::add_to_linker::<_, HasSelf<SessionState>>(&mut linker, |state: &mut CallState| &mut state.session))
            .and_then(|()| progress::add_to_linker::<_, HasSelf<ProgressState>>(&mut linker, |state: &mut CallState| &mut state.progress))
            .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;

        let cache = CompiledCache::new(&engine, cache_root);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self {
            engine,
            linker,
            cache,
            ticker_stop,
        })
    }

    /// The engine (for stores).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled-code cache.
    pub fn cache(&self) -> &CompiledCache {
        &self.cache
    }

    /// Compiles (or maps from the cache) and links a component, ready to be
    /// instantiated once per call.
    pub fn prepare(&self, wasm: &[u8], sha256: &str) -> Result<(ToolPre<CallState>, CacheOutcome), RuntimeError> {
        let (component, outcome): (Component, CacheOutcome) = self
            .cache
            .load(&self.engine, wasm, sha256)
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RuntimeError::World(format!("{e:#}")))?;
        let pre = ToolPre::new(instance_pre).map_err(|e| RuntimeError::World(format!("{e:#}")))?;
        Ok((pre, outcome))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        // Without the ticker, wall deadlines still hold through the timeout
        // around each call, but a busy guest would neither yield nor have its
        // CPU budget checked until it calls the host; say so loudly.
        tracing::error!(error = %e, "could not start the epoch ticker thread; CPU budgets are checked only between host calls");
    }
}
