//! The [`Tool`] trait every tool implements, its self-description, and the
//! call context through which it reaches the host.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::failure::GatewayFailure;
use crate::gateway::Gateway;
use omniroute_tool_contract::budget::BudgetGuard;
use omniroute_tool_contract::ledger::{Annotation, LedgerEntry};

/// A tool: a pure function from validated JSON input to JSON output, plus a
/// description the host publishes in `tools/list`.
///
/// A tool crate implements this on a unit struct and exports it with
/// [`crate::export_tool!`]:
///
/// ```
/// use omniroute_tool_sdk::{Ctx, Tool, ToolDescription, ToolError, schema};
/// use serde_json::{Value, json};
///
/// pub struct Ping;
///
/// impl Tool for Ping {
///     fn describe() -> ToolDescription {
///         ToolDescription::read_only("ping", "Ping", "Answers pong", &["read:health"])
///             .input_schema(schema::no_input())
///             .output_schema(json!({"type": "object"}))
///     }
///     fn call(_input: Value, _cx: &Ctx<'_>) -> Result<Value, ToolError> {
///         Ok(json!({"pong": true}))
///     }
/// }
///
/// omniroute_tool_sdk::export_tool!(Ping);
/// ```
pub trait Tool {
    /// Name, schemas, scopes and annotations. Called once when the host loads
    /// the component; the host checks it against the tool's `tool.toml`.
    fn describe() -> ToolDescription;

    /// One call. `input` has already been validated by the host against the
    /// published input schema. An `Err` becomes an MCP error result whose text
    /// should tell the agent what to do next.
    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError>;
}

/// The host capabilities available to one call.
///
/// Trait objects, so that the same tool code runs against the WIT imports in
/// the component and against fakes in native unit tests.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// Requests to the OmniRoute gateway, limited to the call's scopes.
    pub gateway: &'a dyn Gateway,
    /// The session state: ledger, budget guard, handle, private values.
    pub session: &'a dyn Session,
    /// Progress notifications for long calls.
    pub progress: &'a dyn Progress,
}

/// The call's session state, kept by the host (WIT `state`): the bucket the
/// agent's `sessionId` handle names, else the legacy transport session, else
/// the caller's default bucket. The host fills the ledger from the wire and
/// enforces the budget guard; a tool reads them, annotates completions its
/// own call sent, and keeps private values.
pub trait Session {
    /// A value private to this tool; `None` when absent.
    fn get(&self, key: &str) -> Option<String>;
    /// Stores a value private to this tool (keys 1-256 bytes, values ≤ 64 KiB).
    fn set(&self, key: &str, value: &str) -> Result<(), String>;

    /// ISO 8601 time the session was first used; `None` when the host says none.
    fn session_start(&self) -> Option<String>;
    /// The session's completions, oldest first.
    fn ledger(&self) -> Vec<LedgerEntry>;
    /// The routing index: the newest completion with this `x-request-id`
    /// the same caller sent, in this session or an earlier one.
    fn find_request(&self, request_id: &str) -> Option<LedgerEntry>;
    /// The session's guard, else the caller's default budget.
    fn budget_guard(&self) -> Option<BudgetGuard>;
    /// Sets the guard; the host refuses it without the `write:budget` scope.
    fn set_budget_guard(&self, guard: &BudgetGuard) -> Result<(), String>;
    /// The handle naming this session, for the agent to pass back as
    /// `sessionId`; a call holding `write:budget` gets one minted.
    fn handle(&self) -> Option<String>;
    /// Adds the facts only the tool knows to a completion its call sent.
    fn annotate(&self, note: &Annotation) -> Result<(), String>;

    /// [`Session::get`] parsed as JSON; `None` when absent or not JSON.
    fn get_json(&self, key: &str) -> Option<Value> {
        self.get(key).and_then(|s| serde_json::from_str(&s).ok())
    }

    /// [`Session::set`] with a JSON value, serialised compactly.
    fn set_json(&self, key: &str, value: &Value) -> Result<(), String> {
        self.set(key, &value.to_string())
    }
}

/// Progress for long calls (WIT `progress`); the host forwards it as MCP
/// `notifications/progress` when the client asked for it, and drops it otherwise.
pub trait Progress {
    fn report(&self, done: f64, total: Option<f64>, message: Option<&str>);
}

/// MCP tool annotations: hints for clients, not security boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    pub read_only_hint: bool,
    pub destructive_hint: bool,
    pub idempotent_hint: bool,
    /// False for tools that only talk to the configured gateway.
    pub open_world_hint: bool,
}

impl Annotations {
    /// Reads from the configured gateway only: read-only, non-destructive,
    /// idempotent, closed world.
    pub const READ_ONLY: Annotations = Annotations {
        read_only_hint: true,
        destructive_hint: false,
        idempotent_hint: true,
        open_world_hint: false,
    };
}

/// What `describe()` returns, serialised with the keys in the order the host
/// and `tools/list` expect: name, title, description, inputSchema,
/// outputSchema, scopes, annotations.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDescription {
    pub name: String,
    pub title: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Value,
    pub scopes: Vec<String>,
    pub annotations: Annotations,
    /// What the host's audit log records as this tool's output summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditHint>,
}

/// Audit hints for the host: what its audit log records of the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditHint {
    /// JSON pointer into the output (`/routing`): the part recorded in the
    /// audit summary instead of the whole output.
    pub output: String,
}

impl ToolDescription {
    /// A read-only tool ([`Annotations::READ_ONLY`]) with no input and an
    /// unconstrained object output until the builders below say otherwise.
    pub fn read_only(name: &str, title: &str, description: &str, scopes: &[&str]) -> Self {
        Self::new(name, title, description, scopes, Annotations::READ_ONLY)
    }

    /// A tool with these annotations, no input and an unconstrained object
    /// output until the builders below say otherwise.
    pub fn new(
        name: &str,
        title: &str,
        description: &str,
        scopes: &[&str],
        annotations: Annotations,
    ) -> Self {
        ToolDescription {
            name: name.to_string(),
            title: title.to_string(),
            description: description.to_string(),
            input_schema: crate::schema::no_input(),
            output_schema: serde_json::json!({ "type": "object" }),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            annotations,
            audit: None,
        }
    }

    /// Records only the output part at `pointer` in the audit summary, e.g.
    /// `/routing`, so answer text never reaches the audit log.
    pub fn audit_output(mut self, pointer: &str) -> Self {
        self.audit = Some(AuditHint {
            output: pointer.to_string(),
        });
        self
    }

    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = schema;
        self
    }

    pub fn annotations(mut self, annotations: Annotations) -> Self {
        self.annotations = annotations;
        self
    }

    /// The JSON the WIT `describe` export returns.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ToolDescription always serialises")
    }
}

/// A failed call: a message for the agent, shown as `Error: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolError {
    message: String,
}

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        ToolError {
            message: message.into(),
        }
    }

    /// Input the host's schema validation let through but the tool cannot use.
    pub fn invalid_input(detail: impl fmt::Display) -> Self {
        ToolError::new(format!("Invalid input: {detail}"))
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

/// A gateway failure that ends the call carries its contract text unchanged
/// ([`crate::failure`]), so `?` on [`Gateway::get_json`] is all a tool needs.
impl From<GatewayFailure> for ToolError {
    fn from(failure: GatewayFailure) -> Self {
        ToolError::new(failure.message)
    }
}

/// The WIT `describe` export for `T`.
pub fn describe_json<T: Tool>() -> String {
    T::describe().to_json()
}

/// The WIT `call` export for `T`: parses the input (an empty string counts as
/// `{}`), runs the tool, serialises the output compactly with key order kept.
/// Native tests go through this same function (the testing crate's `FakeHost`).
pub fn call_json<T: Tool>(input: &str, cx: &Ctx<'_>) -> Result<String, String> {
    let input: Value = if input.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(input).map_err(|e| format!("Invalid input: not JSON ({e})"))?
    };
    let output = T::call(input, cx).map_err(|e| e.message)?;
    serde_json::to_string(&output).map_err(|e| format!("Tool output could not be serialised: {e}"))
}
