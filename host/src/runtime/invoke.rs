//! One tool call: a fresh store with its limits, instantiate, call, tear down.

use super::bindings::ToolPre;
use super::engine::Runtime;
use super::limits::CallLimits;
use super::state::{CallContext, CallState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, UpdateDeadline};

/// Receives `progress.report` calls: (done, total, message).
pub type ProgressSink = Arc<dyn Fn(f64, Option<f64>, Option<String>) + Send + Sync>;

/// What to run.
pub struct CallRequest<'a> {
    pub pre: &'a ToolPre<CallState>,
    pub ctx: CallContext,
    pub limits: CallLimits,
    /// The validated arguments, as JSON text.
    pub input: String,
}

/// A call that ran to completion: the tool's JSON output or its own error
/// message for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Output(String),
    ToolError(String),
}

/// A call the sandbox stopped. The texts complete "The tool ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("exceeded its {0} ms deadline and was stopped")]
    Deadline(u128),
    #[error("exceeded its memory limit of {0} MiB and was stopped")]
    Memory(usize),
    #[error("returned {0} bytes of output, more than the limit of {1} bytes")]
    OutputTooLarge(usize, usize),
    #[error("crashed: {0}")]
    Trap(String),
    #[error("could not be started: {0}")]
    Instantiate(String),
}

impl Runtime {
    /// Runs `describe` once (at load time); no capabilities are needed.
    pub async fn describe(&self, pre: &ToolPre<CallState>, ctx: CallContext, limits: CallLimits) -> Result<String, CallError> {
        let (mut store, deadline) = self.store(ctx, limits);
        let run = async {
            let tool = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
            tool.call_describe(&mut store).await.map_err(|e| classify(&store, e, limits, deadline))
        };
        match tokio::time::timeout(limits.deadline + GRACE, run).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Deadline(limits.deadline.as_millis())),
        }
    }

    /// Runs one `call` in a fresh store.
    pub async fn call(&self, req: CallRequest<'_>) -> Result<CallOutcome, CallError> {
        let limits = req.limits;
        let tool_name = req.ctx.tool.clone();
        let (mut store, deadline) = self.store(req.ctx, limits);
        let run = async {
            let tool = req
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
            tracing::debug!(tool = %tool_name, "instance created");
            let result = tool.call_call(&mut store, &req.input).await;
            store.data().flush_guest_output();
            let result = result.map_err(|e| classify(&store, e, limits, deadline))?;
            match result {
                Ok(output) if output.len() > limits.output_bytes => {
                    Err(CallError::OutputTooLarge(output.len(), limits.output_bytes))
                }
                Ok(output) => Ok(CallOutcome::Output(output)),
                Err(message) => Ok(CallOutcome::ToolError(message)),
            }
        };
        // Epoch interruption stops running guest code; this timeout stops a
        // guest blocked in a host call (a WASI sleep, a slow gateway).
        match tokio::time::timeout(limits.deadline + GRACE, run).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Deadline(limits.deadline.as_millis())),
        }
    }

    fn store(&self, ctx: CallContext, limits: CallLimits) -> (Store<CallState>, Instant) {
        let state = CallState::new(ctx, limits.gateway_requests, limits.memory_bytes);
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limiter);
        let deadline = Instant::now() + limits.deadline;
        store.set_epoch_deadline(1);
        // Every tick: past the deadline, trap; otherwise yield to the executor
        // so one busy guest cannot starve other calls on the same thread.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        (store, deadline)
    }
}

/// Slack for the outer timeout, so the epoch trap (with its clearer
/// classification) normally fires first.
const GRACE: Duration = Duration::from_millis(250);

fn classify(store: &Store<CallState>, e: wasmtime::Error, limits: CallLimits, deadline: Instant) -> CallError {
    if store.data().limiter.exceeded {
        return CallError::Memory(limits.memory_bytes / (1024 * 1024));
    }
    if matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) || Instant::now() >= deadline {
        return CallError::Deadline(limits.deadline.as_millis());
    }
    let text = format!("{e:#}");
    // The first line carries the trap reason; the backtrace is for logs.
    let first = text.lines().next().unwrap_or("unknown trap").to_owned();
    tracing::debug!(error = %text, "tool trapped");
    CallError::Trap(first)
}
