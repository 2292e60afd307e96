//! Task records on the wire: the `io.modelcontextprotocol/tasks` extension
//! (SEP-2663, MCP 2026-07-28): `tools/call` answers a task handle
//! (`resultType: "task"`), `tasks/get` returns the task with its result
//! inlined once completed, `tasks/cancel` and `tasks/update` acknowledge.
//! A working task's progress is its `statusMessage` ("3/6: <step>: ok in 812 ms") and, as
//! numbers, `_meta["io.github.omniroute/progress"]` of `tasks/get`.

use crate::state::{TaskRecord, TaskStatus};
use crate::tasks::{POLL_INTERVAL, TaskError};
use rmcp::ErrorData as McpError;
use rmcp::model::{DetailedTask, GetTaskResult, JsonObject, MetaObject, Task, TaskPayload};
use serde_json::{Value, json};

/// Where `tasks/get` puts a working task's progress as numbers.
pub const PROGRESS_META: &str = "io.github.omniroute/progress";

/// The base fields of a task: id, status, times, ttl, poll interval.
pub(super) fn task_of(record: &TaskRecord) -> Task {
    let mut task = Task::new(
        record.task_id.clone(),
        status_of(record.status),
        crate::session::iso8601_ms(record.created_ms),
        crate::session::iso8601_ms(record.updated_ms),
    )
    .with_ttl_ms(u64::try_from(record.expires_ms.saturating_sub(record.created_ms)).unwrap_or(0))
    .with_poll_interval_ms(POLL_INTERVAL.as_millis() as u64);
    if let Some(message) = status_message(record) {
        task = task.with_status_message(message);
    }
    task
}

/// The `tasks/get` answer: the task with its status-specific payload.
pub(super) fn get_result(record: &TaskRecord) -> GetTaskResult {
    let payload = match record.status {
        TaskStatus::Completed => match parse_object(record.result.as_deref()) {
            Some(result) => TaskPayload::Completed { result },
            None => TaskPayload::Failed { error: error_object(-32603, "the task's stored result is not a JSON object") },
        },
        TaskStatus::Failed => TaskPayload::Failed {
            error: parse_object(record.result.as_deref()).unwrap_or_else(|| error_object(-32603, "the task failed")),
        },
        TaskStatus::Cancelled => TaskPayload::Cancelled,
        // No tool asks for input mid-call: an `input_required` record is
        // reported as working.
        TaskStatus::Working | TaskStatus::InputRequired => TaskPayload::Working,
    };
    let mut result = GetTaskResult::new(DetailedTask::new(task_of(record), payload));
    if record.progress.is_some() {
        let mut meta = JsonObject::new();
        meta.insert(PROGRESS_META.to_owned(), json!({ "progress": record.progress, "total": record.total }));
        result.meta = Some(MetaObject(meta));
    }
    result
}

/// A task error as the protocol error the client gets.
pub(super) fn to_mcp_error(e: TaskError) -> McpError {
    match e {
        TaskError::NotFound(_) | TaskError::Ended(..) => McpError::invalid_params(e.to_string(), None),
        TaskError::Store(_) => {
            tracing::error!(error = %e, "task store");
            McpError::internal_error(e.to_string(), None)
        }
    }
}

fn status_of(status: TaskStatus) -> rmcp::model::TaskStatus {
    match status {
        TaskStatus::Working => rmcp::model::TaskStatus::Working,
        TaskStatus::InputRequired => rmcp::model::TaskStatus::Working,
        TaskStatus::Completed => rmcp::model::TaskStatus::Completed,
        TaskStatus::Failed => rmcp::model::TaskStatus::Failed,
        TaskStatus::Cancelled => rmcp::model::TaskStatus::Cancelled,
    }
}

/// "done/total: message" for a working task, "cancelling" once asked to stop.
pub(super) fn status_message(record: &TaskRecord) -> Option<String> {
    if record.status.is_final() {
        return None;
    }
    if record.cancel_requested {
        return Some("cancelling".to_owned());
    }
    let count = match (record.progress, record.total) {
        (Some(done), Some(total)) => Some(format!("{done}/{total}")),
        (Some(done), None) => Some(format!("{done}")),
        _ => None,
    };
    match (count, &record.message) {
        (Some(count), Some(message)) => Some(format!("{count}: {message}")),
        (Some(count), None) => Some(count),
        (None, Some(message)) => Some(message.clone()),
        (None, None) => None,
    }
}

fn parse_object(text: Option<&str>) -> Option<JsonObject> {
    match serde_json::from_str(text?) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

fn error_object(code: i64, message: &str) -> JsonObject {
    let mut object = JsonObject::new();
    object.insert("code".to_owned(), json!(code));
    object.insert("message".to_owned(), json!(message));
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: TaskStatus, result: Option<&str>) -> TaskRecord {
        TaskRecord {
            task_id: "task_1".into(),
            status,
            progress: Some(3.0),
            total: Some(6.0),
            message: Some("openai gpt-4o answered".into()),
            result: result.map(str::to_owned),
            cancel_requested: false,
            created_ms: 1_000,
            updated_ms: 2_000,
            expires_ms: 1_000 + 3_600_000,
        }
    }

    #[test]
    fn a_working_task_shows_its_progress_and_ttl() {
        let value = serde_json::to_value(get_result(&record(TaskStatus::Working, None))).unwrap();
        assert_eq!(value["status"], "working");
        assert_eq!(value["ttlMs"], 3_600_000);
        assert_eq!(value["statusMessage"], "3/6: openai gpt-4o answered");
        assert_eq!(value["_meta"][PROGRESS_META]["total"], 6.0);
        assert_eq!(value["createdAt"], "1970-01-01T00:00:01.000Z");
        assert!(value.get("result").is_none(), "{value}");
    }

    #[test]
    fn a_completed_task_inlines_the_tool_result() {
        let result = r#"{"content":[{"type":"text","text":"{}"}],"isError":false}"#;
        let value = serde_json::to_value(get_result(&record(TaskStatus::Completed, Some(result)))).unwrap();
        assert_eq!(value["status"], "completed");
        assert_eq!(value["result"]["isError"], false);
        assert!(value.get("statusMessage").is_none(), "{value}");
    }

    #[test]
    fn a_failed_task_carries_a_json_rpc_error() {
        let value = serde_json::to_value(get_result(&record(TaskStatus::Failed, Some("not json")))).unwrap();
        assert_eq!(value["status"], "failed");
        assert_eq!(value["error"]["code"], -32603);
    }
}
