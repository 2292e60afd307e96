//! `McpClient`: the server binary over stdio, driven by the rmcp client.

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, Implementation, InitializeRequestParams,
    ProtocolVersion,
};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use serde_json::Value;

use crate::process::{ServerCommand, StderrTail};
use crate::{DEFAULT_TIMEOUT, STARTUP_TIMEOUT};

/// A tools/call result reduced to what the tests look at.
#[derive(Clone, Debug)]
pub struct ToolResult {
    pub is_error: bool,
    /// All text content blocks, joined with newlines.
    pub text: String,
    pub structured: Option<Value>,
    /// The whole result as it came over the wire.
    pub raw: Value,
}

impl ToolResult {
    /// From a JSON-RPC `result` object of a tools/call.
    pub fn from_json(raw: Value) -> Self {
        let text = raw["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|block| block["type"] == "text")
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            is_error: raw["isError"].as_bool().unwrap_or(false),
            text,
            structured: raw.get("structuredContent").cloned(),
            raw,
        }
    }

    /// The structured content of a successful call; panics (with the text) otherwise, and
    /// checks that the text content is the same JSON.
    pub fn expect_ok(&self) -> &Value {
        assert!(!self.is_error, "tool call failed: {}", self.text);
        let structured = self
            .structured
            .as_ref()
            .unwrap_or_else(|| panic!("result has no structuredContent: {}", self.raw));
        let text_json: Value = serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("text content is not JSON ({e}): {}", self.text));
        assert_eq!(
            numbers_as_f64(&text_json),
            numbers_as_f64(structured),
            "text content and structuredContent differ"
        );
        structured
    }

    /// As [`Self::expect_ok`], returning the structured content by value.
    pub fn into_ok(self) -> Value {
        self.expect_ok().clone()
    }

    /// The error text of a failed call; panics if the call succeeded.
    pub fn expect_error(&self) -> &str {
        assert!(self.is_error, "expected an error result, got: {}", self.raw);
        &self.text
    }
}

/// The error message of a call that must fail, whichever way the server reports it: a JSON-RPC
/// error, or a result with `isError: true`. Panics if the call succeeded.
pub fn error_message(outcome: &Result<ToolResult, ServiceError>) -> String {
    match outcome {
        Err(ServiceError::McpError(error)) => error.message.to_string(),
        Err(other) => panic!("expected an MCP error, got a transport failure: {other}"),
        Ok(result) => result.expect_error().to_owned(),
    }
}

/// JSON equality where `0` equals `0.0`.
#[track_caller]
pub fn assert_same(actual: &Value, expected: &Value, what: &str) {
    assert_eq!(numbers_as_f64(actual), numbers_as_f64(expected), "{what}");
}

/// The keys of a JSON object, in order (key order is part of the tool contracts).
pub fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The entry named `name` in a list_combos result; panics with the list when absent.
#[track_caller]
pub fn combo_named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["combos"]
        .as_array()
        .and_then(|combos| combos.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("combo {name:?} not listed: {list}"))
}

/// `value` with every number as an f64, so `0` and `0.0` compare equal (the text content is
/// printed with JS number formatting, structuredContent keeps floats).
pub fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Null, |f| serde_json::json!(f)),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The server spawned as a child process and connected through rmcp's stdio client.
pub struct McpClient {
    service: RunningService<RoleClient, InitializeRequestParams>,
    stderr: StderrTail,
    command: ServerCommand,
}

impl McpClient {
    /// Spawns the server and completes `initialize` (bounded by [`STARTUP_TIMEOUT`]).
    pub async fn start(command: ServerCommand) -> Self {
        let (transport, stderr) = TokioChildProcess::builder(command.to_command())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", command.describe()));
        let stderr = StderrTail::capture(stderr.expect("stderr is piped"));
        let info = InitializeRequestParams::new(
            ClientCapabilities::default(),
            Implementation::new("omniroute-mcp-tests", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25);
        let service = match tokio::time::timeout(STARTUP_TIMEOUT, info.serve(transport)).await {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => panic!(
                "MCP initialize failed ({e}) for {}\n--- server stderr ---\n{}",
                command.describe(),
                stderr.text()
            ),
            Err(_) => panic!(
                "MCP initialize timed out after {STARTUP_TIMEOUT:?} for {}\n--- server stderr ---\n{}",
                command.describe(),
                stderr.text()
            ),
        };
        Self {
            service,
            stderr,
            command,
        }
    }

    /// What the server answered to `initialize`: `{protocolVersion, capabilities, serverInfo, …}`.
    pub fn server_info(&self) -> Value {
        serde_json::to_value(self.service.peer_info()).expect("peer info serialises")
    }

    /// tools/list (all pages), each tool as its wire JSON.
    pub async fn list_tools(&self) -> Vec<Value> {
        let tools = self
            .bounded("tools/list", DEFAULT_TIMEOUT, self.service.list_all_tools())
            .await;
        let tools = tools.unwrap_or_else(|e| self.fail(&format!("tools/list failed: {e}")));
        tools
            .iter()
            .map(|t| serde_json::to_value(t).expect("tool serialises"))
            .collect()
    }

    /// tools/call; a JSON-RPC error comes back as `Err`, a tool error as `Ok(is_error: true)`.
    pub async fn try_call(&self, name: &str, args: Value) -> Result<ToolResult, ServiceError> {
        self.try_call_within(name, args, DEFAULT_TIMEOUT).await
    }

    /// As [`Self::try_call`] with an explicit bound; panics when it is exceeded.
    pub async fn try_call_within(
        &self,
        name: &str,
        args: Value,
        limit: Duration,
    ) -> Result<ToolResult, ServiceError> {
        let arguments = match args {
            Value::Object(map) => Some(map),
            Value::Null => None,
            other => panic!("tool arguments must be a JSON object, got {other}"),
        };
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments;
        let result = self
            .bounded(
                &format!("tools/call {name}"),
                limit,
                self.service.call_tool(params),
            )
            .await?;
        Ok(ToolResult::from_json(
            serde_json::to_value(result).expect("result serialises"),
        ))
    }

    /// tools/call that must produce a result (successful or not); panics on a JSON-RPC error.
    pub async fn call(&self, name: &str, args: Value) -> ToolResult {
        self.try_call(name, args).await.unwrap_or_else(|e| {
            self.fail(&format!(
                "tools/call {name} failed with a protocol error: {e}"
            ))
        })
    }

    /// The server's stderr so far (its last 256 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The server's stderr once `done` holds for it (a log line written during a
    /// call may reach the pipe after the call's answer); fails after 10 s.
    pub async fn stderr_until(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr();
            if done(&text) {
                return text;
            }
            if std::time::Instant::now() > deadline {
                self.fail("the expected server log did not appear within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn command(&self) -> &ServerCommand {
        &self.command
    }

    /// Closes stdin and waits (bounded) for the server to exit; it is killed otherwise.
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(DEFAULT_TIMEOUT, self.service.cancel()).await;
    }

    async fn bounded<T>(&self, what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
        match tokio::time::timeout(limit, future).await {
            Ok(value) => value,
            Err(_) => self.fail(&format!("{what} got no answer within {limit:?}")),
        }
    }

    fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\nserver: {}\n--- server stderr ---\n{}",
            self.command.describe(),
            self.stderr.text()
        )
    }
}

/// The JSON-RPC answer in a Streamable HTTP response body: the first SSE
/// `data:` event that carries an `id`, else the whole body as JSON (the
/// server answers either way).
pub fn http_answer(body: &str) -> Option<Value> {
    sse_answer(body).or_else(|| serde_json::from_str(body).ok())
}

/// The first SSE `data:` event of `body` that carries an `id` (a JSON-RPC
/// answer, not a notification); `None` while it has not arrived.
pub fn sse_answer(body: &str) -> Option<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
}
