//! MCP 2025-11-25's experimental tasks, beside the 2026-07-28 tasks
//! extension of [`super::tasks`]: same task records, same runs, the older
//! wire.
//!
//! A client that negotiated 2025-11-25 sees `capabilities.tasks` in the
//! `initialize` answer and `execution.taskSupport: "optional"` on each tool
//! that may run as a task (its manifest says `tasks = true`); it sends
//! `tools/call` with `params.task` and gets `{task}` back, polls `tasks/get`,
//! blocks on `tasks/result` for the tool result (with the
//! `io.modelcontextprotocol/related-task` `_meta`), lists with `tasks/list`
//! and stops one with `tasks/cancel`.
//!
//! rmcp 3.11 models only the 2026-07-28 shapes (it drops `params.task` while
//! parsing and has no `tasks` capability), so the transports adapt the wire:
//! [`route_inbound`] renames such a request of a 2025-11-25 session to one
//! of our own methods before rmcp parses it, rmcp hands those to the
//! handler as custom requests, and [`answer`] serves them with the caller
//! rmcp resolved; [`advertise`] adds the capability to the `initialize`
//! answer on its way out.

use crate::call::{Caller, ToolCall};
use crate::state::{TaskRecord, TaskStatus};
use crate::tasks::{POLL_INTERVAL, Tasks};
use rmcp::ErrorData as McpError;
use rmcp::model::ErrorCode;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The revision whose task wire this module speaks.
pub const VERSION: &str = "2025-11-25";

/// Our method names for the renamed requests (never sent by a client).
const PREFIX: &str = "io.github.omniroute/tasks-2025-11-25/";
const CALL: &str = "io.github.omniroute/tasks-2025-11-25/tools-call";
const GET: &str = "io.github.omniroute/tasks-2025-11-25/get";
const RESULT: &str = "io.github.omniroute/tasks-2025-11-25/result";
const LIST: &str = "io.github.omniroute/tasks-2025-11-25/list";
const CANCEL: &str = "io.github.omniroute/tasks-2025-11-25/cancel";
const TOOLS_LIST: &str = "io.github.omniroute/tasks-2025-11-25/tools-list";

/// The `_meta` key that ties a result to its task.
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// How long `tasks/cancel` waits for a task running on this node to record
/// that it stopped, so its answer already says `cancelled`.
const CANCEL_SETTLE: Duration = Duration::from_secs(2);

/// Whether a raw message may need [`route_inbound`] or [`advertise`]: a
/// cheap look at the bytes, so other messages are never parsed twice.
pub fn may_concern(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(b"tasks/") || has(b"\"task\"") || has(b"tools/list") || has(b"initialize")
}

/// Renames a request of a 2025-11-25 session that rmcp would misread to one
/// of ours. `legacy`: the session negotiated [`VERSION`]. Returns whether the
/// message changed.
pub fn route_inbound(message: &mut Value, legacy: bool) -> bool {
    if !legacy {
        return false;
    }
    let Some(method) = message.get("method").and_then(Value::as_str) else { return false };
    let target = match method {
        "tools/call" if message.pointer("/params/task").is_some_and(Value::is_object) => CALL,
        "tasks/get" => GET,
        "tasks/result" => RESULT,
        "tasks/list" => LIST,
        "tasks/cancel" => CANCEL,
        "tools/list" => TOOLS_LIST,
        _ => return false,
    };
    message["method"] = Value::from(target);
    true
}

/// The id of an `initialize` request asking for [`VERSION`], whose answer
/// [`advertise`] must complete.
pub fn initialize_id(message: &Value) -> Option<Value> {
    (message.get("method").and_then(Value::as_str) == Some("initialize")
        && message.pointer("/params/protocolVersion").and_then(Value::as_str) == Some(VERSION))
    .then(|| message.get("id").cloned())
    .flatten()
}

/// Adds `capabilities.tasks` to the answer of that `initialize` when the
/// server agreed on [`VERSION`]. Returns whether the message changed.
pub fn advertise(message: &mut Value, id: &Value) -> bool {
    if message.get("id") != Some(id) || message.pointer("/result/protocolVersion").and_then(Value::as_str) != Some(VERSION) {
        return false;
    }
    let Some(capabilities) = message.pointer_mut("/result/capabilities").and_then(Value::as_object_mut) else { return false };
    capabilities.insert("tasks".into(), json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } }));
    true
}

/// Whether `method` is one of ours ([`answer`] serves it).
pub fn is_ours(method: &str) -> bool {
    method.starts_with(PREFIX)
}

/// A task as 2025-11-25 shows it.
fn task_json(record: &TaskRecord) -> Value {
    let status = match record.status {
        TaskStatus::Working => "working",
        TaskStatus::InputRequired => "input_required",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
    };
    let mut task = json!({
        "taskId": record.task_id,
        "status": status,
        "createdAt": crate::session::iso8601_ms(record.created_ms),
        "lastUpdatedAt": crate::session::iso8601_ms(record.updated_ms),
        "ttl": record.expires_ms.saturating_sub(record.created_ms).max(0),
        "pollInterval": POLL_INTERVAL.as_millis() as u64,
    });
    if let Some(message) = super::tasks::status_message(record) {
        task["statusMessage"] = Value::from(message);
    }
    task
}

fn task_id(params: Option<&Value>) -> Result<String, McpError> {
    params
        .and_then(|p| p.get("taskId"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| McpError::invalid_params("params.taskId is required: the id from the task's creation or tasks/list", None))
}

/// Serves one of our renamed requests for `caller`. `tools` builds the
/// plain tools/list answer; `cancelled` ends a blocking `tasks/result` when
/// the request itself is cancelled.
pub async fn answer(
    tasks: &std::sync::Arc<Tasks>,
    caller: Caller,
    method: &str,
    params: Option<Value>,
    tools: impl FnOnce() -> Value,
    cancelled: tokio_util::sync::CancellationToken,
) -> Result<Value, McpError> {
    match method {
        CALL => call(tasks, caller, params).await,
        GET => Ok(task_json(&tasks.get(&caller, &task_id(params.as_ref())?).await.map_err(super::tasks::to_mcp_error)?)),
        RESULT => result(tasks, &caller, &task_id(params.as_ref())?, cancelled).await,
        LIST => {
            let records = tasks.list(&caller).await.map_err(super::tasks::to_mcp_error)?;
            Ok(json!({ "tasks": records.iter().map(task_json).collect::<Vec<_>>() }))
        }
        CANCEL => cancel(tasks, &caller, &task_id(params.as_ref())?).await,
        TOOLS_LIST => Ok(with_task_support(tools(), |name| tasks.supports(name))),
        _ => Err(McpError::new(ErrorCode::METHOD_NOT_FOUND, "Method not found", None)),
    }
}

/// `tools/call` with `params.task`: the task's creation, or -32601 for a
/// tool that does not run as a task (its `taskSupport` is absent, i.e.
/// "forbidden").
async fn call(tasks: &std::sync::Arc<Tasks>, caller: Caller, params: Option<Value>) -> Result<Value, McpError> {
    let Some(Value::Object(mut params)) = params else {
        return Err(McpError::invalid_params("params must be an object with name, arguments and task", None));
    };
    let name = match params.remove("name") {
        Some(Value::String(name)) => name,
        _ => return Err(McpError::invalid_params("params.name must be the name of a tool from tools/list", None)),
    };
    if !tasks.supports(&name) {
        return Err(McpError::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("The tool \"{}\" does not run as a task (tools/list shows no execution.taskSupport for it); call it without params.task", clip(&name)),
            None,
        ));
    }
    let arguments = match params.remove("arguments") {
        None | Some(Value::Null) => None,
        Some(Value::Object(arguments)) => Some(arguments),
        Some(_) => return Err(McpError::invalid_params("params.arguments must be an object", None)),
    };
    let meta = match params.remove("_meta") {
        Some(Value::Object(meta)) => meta,
        _ => Map::new(),
    };
    let call = ToolCall { name, arguments, meta, progress: None, cancel: None };
    let record = tasks.start(caller, call).await.map_err(super::tasks::to_mcp_error)?;
    Ok(json!({ "task": task_json(&record) }))
}

/// `tasks/result`: waits until the task has ended, then answers what the
/// `tools/call` would have (a failed task's error as the JSON-RPC error).
async fn result(tasks: &Tasks, caller: &Caller, id: &str, cancelled: tokio_util::sync::CancellationToken) -> Result<Value, McpError> {
    loop {
        let record = tasks.get(caller, id).await.map_err(super::tasks::to_mcp_error)?;
        match record.status {
            TaskStatus::Completed => {
                let mut result: Value = record
                    .result
                    .as_deref()
                    .and_then(|text| serde_json::from_str(text).ok())
                    .filter(Value::is_object)
                    .ok_or_else(|| McpError::internal_error("the task's stored result is not a JSON object", None))?;
                let meta = result.as_object_mut().map(|r| r.entry("_meta").or_insert_with(|| json!({})));
                if let Some(Value::Object(meta)) = meta {
                    meta.insert(RELATED_TASK.into(), json!({ "taskId": record.task_id }));
                }
                return Ok(result);
            }
            TaskStatus::Failed => {
                let error: Value = record.result.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
                let code = error.get("code").and_then(Value::as_i64).and_then(|c| i32::try_from(c).ok()).unwrap_or(-32603);
                let message = error.get("message").and_then(Value::as_str).unwrap_or("the task failed").to_owned();
                return Err(McpError::new(ErrorCode(code), message, Some(json!({ RELATED_TASK: { "taskId": record.task_id } }))));
            }
            TaskStatus::Cancelled => {
                return Err(McpError::new(
                    ErrorCode::INVALID_REQUEST,
                    format!("task \"{}\" was cancelled before it finished; it has no result", clip(id)),
                    Some(json!({ RELATED_TASK: { "taskId": record.task_id } })),
                ));
            }
            TaskStatus::Working | TaskStatus::InputRequired => {}
        }
        tokio::select! {
            () = cancelled.cancelled() => return Err(McpError::new(ErrorCode::INVALID_REQUEST, "tasks/result was cancelled", None)),
            () = tokio::time::sleep(POLL_INTERVAL / 2) => {}
        }
    }
}

/// `tasks/cancel`: asks the task to stop and answers the task, `cancelled`
/// once it has stopped (at once on this node; within the poll interval on
/// the node running it, until then `working` with "cancelling").
async fn cancel(tasks: &Tasks, caller: &Caller, id: &str) -> Result<Value, McpError> {
    tasks.cancel(caller, id).await.map_err(super::tasks::to_mcp_error)?;
    let deadline = tokio::time::Instant::now() + CANCEL_SETTLE;
    loop {
        let record = tasks.get(caller, id).await.map_err(super::tasks::to_mcp_error)?;
        if record.status.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(task_json(&record));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tools/list answer with `execution.taskSupport: "optional"` on each tool
/// that may run as a task.
fn with_task_support(mut list: Value, supports: impl Fn(&str) -> bool) -> Value {
    if let Some(tools) = list.get_mut("tools").and_then(Value::as_array_mut) {
        for tool in tools {
            if tool.get("name").and_then(Value::as_str).is_some_and(&supports) {
                tool["execution"] = json!({ "taskSupport": "optional" });
            }
        }
    }
    list
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_2025_11_25_session_s_task_requests_are_renamed() {
        let mut call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "task": {"ttl": 1000}}});
        assert!(!route_inbound(&mut call.clone(), false), "another revision's request is left to rmcp");
        assert!(route_inbound(&mut call, true));
        assert_eq!(call["method"], CALL);
        let mut plain = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "t"}});
        assert!(!route_inbound(&mut plain, true), "a call without params.task stays a plain call");
        for (method, ours) in [("tasks/get", GET), ("tasks/result", RESULT), ("tasks/list", LIST), ("tasks/cancel", CANCEL), ("tools/list", TOOLS_LIST)] {
            let mut m = json!({"jsonrpc": "2.0", "id": 3, "method": method});
            assert!(route_inbound(&mut m, true));
            assert_eq!(m["method"], ours);
            assert!(is_ours(ours));
        }
    }

    #[test]
    fn the_capability_is_added_to_the_matching_initialize_answer_only() {
        let request = json!({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}});
        let id = initialize_id(&request).expect("an initialize for 2025-11-25");
        assert!(initialize_id(&json!({"id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}})).is_none());
        let mut other = json!({"jsonrpc": "2.0", "id": 8, "result": {"protocolVersion": "2025-11-25", "capabilities": {}}});
        assert!(!advertise(&mut other, &id));
        let mut older = json!({"jsonrpc": "2.0", "id": 7, "result": {"protocolVersion": "2025-06-18", "capabilities": {}}});
        assert!(!advertise(&mut older, &id), "a server that agreed on another revision advertises nothing");
        let mut answer = json!({"jsonrpc": "2.0", "id": 7, "result": {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}}});
        assert!(advertise(&mut answer, &id));
        assert_eq!(answer["result"]["capabilities"]["tasks"]["requests"]["tools"]["call"], json!({}));
        assert_eq!(answer["result"]["capabilities"]["tools"], json!({}));
    }

    #[test]
    fn a_task_has_the_2025_11_25_fields() {
        let record = TaskRecord {
            task_id: "task_1".into(),
            status: TaskStatus::Working,
            progress: Some(2.0),
            total: Some(6.0),
            message: None,
            result: None,
            cancel_requested: false,
            created_ms: 1_000,
            updated_ms: 2_000,
            expires_ms: 3_601_000,
        };
        let task = task_json(&record);
        assert_eq!(task["ttl"], 3_600_000);
        assert_eq!(task["pollInterval"], POLL_INTERVAL.as_millis() as u64);
        assert_eq!(task["lastUpdatedAt"], "1970-01-01T00:00:02.000Z");
        assert_eq!(task["statusMessage"], "2/6");
        assert!(task.get("ttlMs").is_none());
    }

    #[test]
    fn only_task_tools_get_task_support() {
        let list = with_task_support(json!({"tools": [{"name": "a"}, {"name": "b"}]}), |n| n == "b");
        assert!(list["tools"][0].get("execution").is_none());
        assert_eq!(list["tools"][1]["execution"]["taskSupport"], "optional");
    }
}
