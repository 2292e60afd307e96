//! MCP tasks: a long tool call (a tool whose manifest says `tasks = true`,
//! e.g. `omniroute_test_combo`) runs detached from the request that started
//! it, and its client polls, reads the result later, or cancels it.
//!
//! The record of every task (status, progress, result, cancel request) lives
//! in the state store, namespaced by principal, so a task started through
//! one node can be polled and cancelled through another node sharing the
//! same PostgreSQL. The node that runs a task checks the store every
//! [`POLL_INTERVAL`] for a cancel request made elsewhere; a cancel made on
//! the running node stops the guest at once. Records expire [`TASK_TTL`]
//! after they were created (then "not found", and pruned).
//!
//! The wire format (the `io.modelcontextprotocol/tasks` extension) is the
//! `mcp` module's business; this module only runs and records.

use crate::call::{CallService, Caller, Outcome, ToolCall};
use crate::state::{StoreError, TaskRecord, TaskStatus, TaskUpdate};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a task's record (and its result) is kept, counted from its
/// creation: long enough for a `test_combo` of many steps to finish and be
/// read at leisure, short enough that results do not pile up.
pub const TASK_TTL: Duration = Duration::from_secs(60 * 60);

/// The polling interval suggested to clients, and how often the running
/// node looks for a cancel request made through another node.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long a finished task waits for its last progress report to be
/// recorded before it records the result.
const PROGRESS_FLUSH: Duration = Duration::from_secs(1);

/// Why a task request failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No task with this id for this principal (never started, expired, or
    /// another principal's).
    #[error("no task \"{0}\" for this caller: it never existed, belongs to someone else, or expired after its ttl (see tasks/get)")]
    NotFound(String),
    /// The task has already ended; there is nothing to cancel.
    #[error("task \"{0}\" has already ended ({1}); only a working task can be cancelled")]
    Ended(String, &'static str),
    /// The state store failed (or a quota of the principal is used up).
    #[error("the task store failed: {0}")]
    Store(#[from] StoreError),
}

/// Runs and tracks the tasks of this node.
pub struct Tasks {
    service: Arc<CallService>,
    /// Tasks running on this node: cancelling the token stops the call.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// The tasks' runs, for the shutdown drain.
    tracker: TaskTracker,
}

impl Tasks {
    /// The tasks of the node serving `service`.
    pub fn new(service: Arc<CallService>) -> Arc<Tasks> {
        Arc::new(Tasks { service, running: Mutex::new(HashMap::new()), tracker: TaskTracker::new() })
    }

    /// Whether calls of `tool` may run as tasks (its manifest says `tasks = true`).
    pub fn supports(&self, tool: &str) -> bool {
        self.service.registry().get(tool).is_some_and(|t| t.manifest.tasks)
    }

    /// Creates the task record and starts the call detached from the
    /// request: neither the request's cancellation nor its connection ends
    /// it, only `tasks/cancel` (or the shutdown drain). The call's progress
    /// goes to the record. Returns the new record (`working`).
    pub async fn start(self: &Arc<Self>, caller: Caller, mut call: ToolCall) -> Result<TaskRecord, TaskError> {
        let store = self.service.app().state().clone();
        let principal = caller.principal.id().as_str().to_owned();
        let record = store.create_task(&principal, TASK_TTL).await?;
        let id = record.task_id.clone();
        let token = CancellationToken::new();
        self.lock().insert(id.clone(), token.clone());

        let (sink, forwarder) = {
            let (store, principal, id) = (store.clone(), principal.clone(), id.clone());
            crate::runtime::factors::progress::forwarder(move |report| {
                let (store, principal, id) = (store.clone(), principal.clone(), id.clone());
                async move {
                    let update =
                        TaskUpdate { status: None, progress: Some(report.done), total: report.total, message: report.message };
                    match store.update_task(&principal, &id, update).await {
                        Ok(found) => found,
                        Err(e) => {
                            tracing::warn!(task = %id, error = %e, "cannot record a task's progress");
                            true
                        }
                    }
                }
            })
        };
        call.progress = Some(sink);
        call.cancel = Some(token.clone());
        tracing::info!(task = %id, tool = %call.name, principal = %principal, "task started");

        let this = self.clone();
        self.tracker.spawn(async move {
            let outcome = this.run_watched(&caller, call, &principal, &id, &token).await;
            let mut forwarder = forwarder;
            if tokio::time::timeout(PROGRESS_FLUSH, &mut forwarder).await.is_err() {
                forwarder.abort();
            }
            let (status, result) = match outcome {
                _ if token.is_cancelled() => (TaskStatus::Cancelled, String::new()),
                Outcome::Answered(result) => match serde_json::to_string(&result) {
                    Ok(text) => (TaskStatus::Completed, text),
                    Err(e) => (TaskStatus::Failed, json!({ "code": -32603, "message": format!("the result cannot be stored: {e}") }).to_string()),
                },
                Outcome::UnknownTool(name) => (
                    TaskStatus::Failed,
                    json!({ "code": -32602, "message": format!("Unknown tool \"{name}\". Call tools/list to see the tools this server offers.") })
                        .to_string(),
                ),
            };
            match store.finish_task(&principal, &id, status, &result).await {
                Ok(_) => tracing::info!(task = %id, status = status.as_str(), "task ended"),
                Err(e) => tracing::error!(task = %id, error = %e, "cannot record a task's end; it stays working until its ttl"),
            }
            this.lock().remove(&id);
        });
        Ok(record)
    }

    /// Runs the call, cancelling it when a cancel request for the task shows
    /// up in the store (made through this node or another one).
    async fn run_watched(&self, caller: &Caller, call: ToolCall, principal: &str, id: &str, token: &CancellationToken) -> Outcome {
        let store = self.service.app().state().clone();
        let run = self.service.call(caller, call);
        tokio::pin!(run);
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                outcome = &mut run => return outcome,
                _ = ticks.tick(), if !token.is_cancelled() => {
                    match store.get_task(principal, id).await {
                        Ok(Some(record)) if record.cancel_requested => {
                            tracing::info!(task = %id, "task cancelled through the store");
                            token.cancel();
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            tracing::warn!(task = %id, "task record gone (expired or evicted); stopping the task");
                            token.cancel();
                        }
                        Err(e) => tracing::debug!(task = %id, error = %e, "cannot read a task's record; trying again"),
                    }
                }
            }
        }
    }

    /// The caller's task `id`.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<TaskRecord, TaskError> {
        self.service
            .app()
            .state()
            .get_task(caller.principal.id().as_str(), id)
            .await?
            .ok_or_else(|| TaskError::NotFound(clip(id)))
    }

    /// The caller's tasks, newest first (at most the principal's task quota).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<TaskRecord>, TaskError> {
        Ok(self.service.app().state().list_tasks(caller.principal.id().as_str()).await?)
    }

    /// Asks the caller's task `id` to stop: at once when it runs on this
    /// node, else within [`POLL_INTERVAL`] on the node that runs it. The
    /// record says `cancelled` once the call has stopped.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<(), TaskError> {
        let record = self.get(caller, id).await?;
        if record.status.is_final() {
            return Err(TaskError::Ended(clip(id), record.status.as_str()));
        }
        let store = self.service.app().state();
        if !store.cancel_task(caller.principal.id().as_str(), id).await? {
            return Err(TaskError::NotFound(clip(id)));
        }
        if let Some(token) = self.lock().get(id) {
            token.cancel();
        }
        Ok(())
    }

    /// Tasks running on this node.
    pub fn running(&self) -> usize {
        self.lock().len()
    }

    /// For shutdown: lets running tasks finish within `grace`, then cancels
    /// the rest and waits (up to `grace` again) until each has recorded its
    /// end (`cancelled`), so no record is left `working` by a clean stop.
    pub async fn drain(&self, grace: Duration) {
        self.tracker.close();
        if self.running() == 0 {
            return;
        }
        tracing::info!(tasks = self.running(), "waiting up to {grace:?} for running tasks");
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_ok() {
            return;
        }
        let tokens: Vec<CancellationToken> = self.lock().values().cloned().collect();
        tracing::warn!(tasks = tokens.len(), "tasks still running after {grace:?}; cancelling them");
        for token in tokens {
            token.cancel();
        }
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::error!("tasks did not record their end in time");
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A client-chosen id, cut for error messages.
fn clip(id: &str) -> String {
    id.chars().take(80).collect()
}
