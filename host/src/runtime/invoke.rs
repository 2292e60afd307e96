//! One run of a component export in a fresh store with its limits:
//! instantiate, call, tear down, and say what stopped it if something did.
//!
//! Three things can end a run early, each with its own cause: the CPU meter
//! (guest CPU time, checked at every epoch tick while guest code runs and
//! after every poll), the call's clock (wall time, also while the guest is
//! blocked in a host call such as a WASI sleep or a slow gateway), and the
//! client's cancellation. Memory and output are checked by the store's
//! limiter and after the call.

use super::bindings::{Tool, ToolPre};
use super::clock::CallClock;
use super::cpu::{CpuMeter, Metered};
use super::engine::Runtime;
use super::factors::CallContext;
use super::limits::CallLimits;
use super::state::CallState;
use super::stop::{CallError, StopCause, Stopped};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, UpdateDeadline};

/// What to run.
pub struct CallRequest<'a> {
    pub pre: &'a ToolPre<CallState>,
    pub ctx: CallContext,
    pub limits: CallLimits,
    /// The validated arguments, as JSON text.
    pub input: String,
    /// Cancelled when the client gives up on the call: the guest is stopped
    /// and nothing more is sent on its behalf.
    pub cancel: Option<CancellationToken>,
}

/// A call that ran to completion: the tool's JSON output or its own error
/// message for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Output(String),
    ToolError(String),
}

/// What a call used, for the audit row, metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallUsage {
    /// CPU time of the call's code (guest and import adapters).
    pub cpu: Duration,
    pub wall: Duration,
    /// A limit the call reached without being stopped by it (`requests`:
    /// requests past the allowance were refused and the tool went on).
    pub limit_reached: Option<StopCause>,
}

/// The result of one call and what it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub outcome: Result<CallOutcome, CallError>,
    pub usage: CallUsage,
}

impl CallReport {
    /// The cause that stopped the call, else the limit it reached, if any.
    pub fn stop_cause(&self) -> Option<StopCause> {
        match &self.outcome {
            Err(e) => Some(e.cause()),
            Ok(_) => self.usage.limit_reached,
        }
    }
}

/// Which export to run.
enum Export<'a> {
    Describe,
    Call(&'a str),
}

impl Runtime {
    /// Runs `describe` once (at load time); no capabilities are needed.
    pub async fn describe(&self, pre: &ToolPre<CallState>, ctx: CallContext, limits: CallLimits) -> Result<String, CallError> {
        let report = self.run(pre, ctx, limits, None, Export::Describe).await;
        match report.outcome {
            Ok(CallOutcome::Output(json)) => Ok(json),
            Ok(CallOutcome::ToolError(message)) => Err(CallError::Crash(message)),
            Err(e) => Err(e),
        }
    }

    /// Runs one `call` in a fresh store.
    pub async fn call(&self, req: CallRequest<'_>) -> CallReport {
        self.run(req.pre, req.ctx, req.limits, req.cancel, Export::Call(&req.input)).await
    }

    async fn run(
        &self,
        pre: &ToolPre<CallState>,
        ctx: CallContext,
        limits: CallLimits,
        cancel: Option<CancellationToken>,
        export: Export<'_>,
    ) -> CallReport {
        let started = Instant::now();
        let tool_name = ctx.tool.clone();
        let clock = Arc::new(CallClock::new(&limits));
        let meter = Arc::new(CpuMeter::new(limits.cpu));
        let mut store = self.store(ctx, &limits, clock.clone(), meter.clone());
        let run = async {
            let tool = pre.instantiate_async(&mut store).await.map_err(|e| {
                if store.data().limiter.exceeded {
                    CallError::Memory(limits.memory_bytes / (1024 * 1024))
                } else {
                    CallError::Start(format!("{e:#}"))
                }
            })?;
            tracing::debug!(tool = %tool_name, instantiate_us = started.elapsed().as_micros() as u64, "instance created");
            let result = run_export(&tool, &mut store, export).await;
            store.data().flush_guest_output();
            match result.map_err(|e| classify(&store, e, &limits, &meter))? {
                Ok(output) if output.len() > limits.output_bytes => Err(CallError::Output(output.len(), limits.output_bytes)),
                Ok(output) => Ok(CallOutcome::Output(output)),
                Err(message) => Ok(CallOutcome::ToolError(message)),
            }
        };
        let cancelled = async {
            match &cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        // Epoch ticks stop running guest code (CPU); this select stops a call
        // blocked in a host call (wall) or given up by the client.
        let outcome = tokio::select! {
            biased;
            result = Metered::new(run, &meter) => result,
            () = clock.expired() => Err(CallError::Wall(clock.allowed().as_millis())),
            () = cancelled => Err(CallError::Cancelled),
        };
        let usage = CallUsage {
            cpu: meter.used(),
            wall: started.elapsed(),
            limit_reached: store.data().gateway.allowance_exhausted.then_some(StopCause::Requests),
        };
        match &outcome {
            Err(e) => {
                tracing::info!(tool = %tool_name, stop_cause = %e.cause(), cpu_ms = usage.cpu.as_millis() as u64, wall_ms = usage.wall.as_millis() as u64, "call stopped by the sandbox");
            }
            Ok(_) => {
                tracing::debug!(tool = %tool_name, cpu_us = usage.cpu.as_micros() as u64, polls = meter.polls(), wall_us = usage.wall.as_micros() as u64, "call finished");
            }
        }
        CallReport { outcome, usage }
    }

    fn store(&self, ctx: CallContext, limits: &CallLimits, clock: Arc<CallClock>, meter: Arc<CpuMeter>) -> Store<CallState> {
        let state = CallState::new(ctx, limits, clock);
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        // Every tick while guest code runs: over the CPU budget, trap with
        // that cause; otherwise yield to the executor so one busy guest
        // cannot starve other calls on the same thread.
        store.epoch_deadline_callback(move |_| {
            if meter.exhausted() {
                Err(wasmtime::Error::new(Stopped(StopCause::Cpu)))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

async fn run_export(tool: &Tool, store: &mut Store<CallState>, export: Export<'_>) -> wasmtime::Result<Result<String, String>> {
    match export {
        Export::Describe => tool.call_describe(store).await.map(Ok),
        Export::Call(input) => tool.call_call(store, input).await,
    }
}

/// Names the cause of a trap: a limit that raised it, the memory limiter,
/// else the guest itself crashed.
fn classify(store: &Store<CallState>, e: wasmtime::Error, limits: &CallLimits, meter: &CpuMeter) -> CallError {
    if let Some(Stopped(cause)) = e.downcast_ref::<Stopped>() {
        return match cause {
            StopCause::Cpu => CallError::Cpu(meter.budget_ms()),
            StopCause::Memory => CallError::Memory(limits.memory_bytes / (1024 * 1024)),
            other => CallError::Crash(format!("stopped ({other})")),
        };
    }
    if store.data().limiter.exceeded {
        return CallError::Memory(limits.memory_bytes / (1024 * 1024));
    }
    let text = format!("{e:#}");
    // The first line carries the trap reason; the backtrace is for logs.
    let first = text.lines().next().unwrap_or("unknown trap").to_owned();
    tracing::debug!(error = %text, "tool trapped");
    CallError::Crash(first)
}
