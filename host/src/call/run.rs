//! One tools/call, end to end: lookup, scope check, argument validation,
//! sandboxed run, audit row committed, result. Every exit path writes exactly
//! one audit row before the response leaves.

use super::result::{error_result, from_outcome, from_output, with_stop_cause};
use super::{Caller, Outcome, ToolCall};
use crate::app::App;
use crate::audit::{AuditRecord, GatewayCall, canonical_args, input_hash, output_summary};
use crate::capability::{CapabilitySet, EffectiveGrants, Grants};
use crate::runtime::{CallContext, CallOutcome, CallRequest};
use crate::session::bucket::{self, SESSION_ID_ARG};
use super::observe::{CallEnd, CallTelemetry};
use crate::telemetry;
use rmcp::model::CallToolResult;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};

/// Refuses a call before it runs (tenant limits, tool allow-list), audited
/// through the aggregating refusal path of the audit log.
pub(super) async fn refuse(app: &App, caller: &Caller, call: ToolCall, code: &str, message: String) -> Outcome {
    let tele = CallTelemetry::start(app, &call.name, &call.meta);
    let args = Value::Object(call.arguments.unwrap_or_default());
    let mut record = new_record(app, caller, &call.name, &args);
    record.error_code = Some(code.to_owned());
    let outcome = if code == "tenant_limit" { telemetry::CallOutcome::limited } else { telemetry::CallOutcome::denied };
    // Refusals are aggregated per caller and code, so a flood of them costs
    // one row per interval (the first is committed before this answer).
    match tele.finish(app, &call.name, caller.principal.caller(), CallEnd::plain(outcome), app.audit().refused(record)).await {
        Ok(()) => Outcome::Answered(error_result(message)),
        Err(e) => Outcome::Answered(error_result(e.to_string())),
    }
}

/// The row every exit starts from: not yet successful, nothing sent.
fn new_record(app: &App, caller: &Caller, name: &str, args: &Value) -> AuditRecord {
    AuditRecord {
        tool_name: name.to_owned(),
        input_hash: input_hash(args),
        output_summary: output_summary(None),
        duration_ms: 0,
        api_key_id: app.api_key_id().map(str::to_owned),
        success: false,
        error_code: None,
        caller: caller.principal.caller().to_owned(),
        session_id: Some(caller.session.id().to_owned()),
        stop_cause: None,
        gateway_calls: vec![],
    }
}

/// The request's `_meta` scopes (`scopes`, else `auth.scopes`, else
/// `omniroute.scopes`), as the original reads them; used only to narrow.
pub fn meta_scopes(meta: &Map<String, Value>) -> Option<Grants> {
    let list = meta
        .get("scopes")
        .or_else(|| meta.get("auth").and_then(|a| a.get("scopes")))
        .or_else(|| meta.get("omniroute").and_then(|o| o.get("scopes")))?
        .as_array()?;
    Some(Grants::from_patterns(list.iter().filter_map(Value::as_str)))
}

/// Runs one admitted call: lookup, scope check, argument validation,
/// sandboxed run, audit row committed.
pub(super) async fn run(app: &App, caller: &Caller, call: ToolCall) -> Outcome {
    let ToolCall { name, arguments, meta, progress, cancel } = call;
    let tele = CallTelemetry::start(app, &name, &meta);
    let name = name.as_str();
    let args = Value::Object(arguments.unwrap_or_default());
    let mut record = new_record(app, caller, name, &args);

    if let Err(e) = app.audit().check() {
        // Nothing can be recorded, so nothing runs.
        let _ = tele.finish(app, name, caller.principal.caller(), CallEnd::plain(telemetry::CallOutcome::error), async { Err::<(), _>(()) }).await;
        return Outcome::Answered(error_result(e.to_string()));
    }

    // The snapshot (and so the tool) stays valid for this call even if a
    // plugin reload swaps the registry meanwhile.
    let registry = app.registry();
    let Some(tool) = registry.get(name) else {
        record.error_code = Some("unknown_tool".to_owned());
        let end = CallEnd::plain(telemetry::CallOutcome::invalid);
        return match tele.finish(app, name, caller.principal.caller(), end, app.audit().commit(record)).await {
            Ok(()) => Outcome::UnknownTool(name.to_owned()),
            Err(e) => Outcome::Answered(error_result(e.to_string())),
        };
    };

    let principal = &caller.principal;
    let narrowing = meta_scopes(&meta);
    let source = if narrowing.is_some() { "meta" } else { principal.grant_source().as_str() };
    let grants = EffectiveGrants::new(principal.grants().clone(), narrowing);
    let missing: Vec<&str> = tool.scopes.iter().filter(|s| !grants.allows(**s)).map(|s| s.as_str()).collect();
    if principal.enforces_scopes() && !missing.is_empty() {
        // Audited as the original does: raw args plus the check; the
        // component is never instantiated.
        let mut audited = args.as_object().cloned().unwrap_or_default();
        audited.insert(
            "_scopeCheck".into(),
            json!({
                "callerId": principal.caller(),
                "source": source,
                "required": tool.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "provided": grants.patterns(),
                "missing": missing,
            }),
        );
        record.input_hash = input_hash(&Value::Object(audited));
        record.error_code = Some("scope_denied:missing_scopes".to_owned());
        let result = error_result(format!(
            "Insufficient MCP scopes for {name}. Missing: {}. Caller={}, source={source}.",
            missing.join(", "),
            principal.caller()
        ));
        return finish(app, caller, name, record, result, tele, CallEnd::plain(telemetry::CallOutcome::denied)).await;
    }

    if let Err(e) = tele.validation(|| tool.validator.check(&args)) {
        let message = format!(
            "Invalid arguments for tool {name}: {e}. Fix the arguments to match the tool's inputSchema (see tools/list)."
        );
        return fail(app, caller, name, record, message, tele, telemetry::CallOutcome::invalid).await;
    }
    let canonical = canonical_args(&tool.description.input_schema, &args);
    record.input_hash = input_hash(&canonical);
    let t_checked = tele.elapsed();

    let pre = match tool.pre(app.runtime()) {
        Ok(pre) => pre,
        Err(reason) => {
            let message = format!("The tool {name} cannot start: {reason}.");
            return fail(app, caller, name, record, message, tele, telemetry::CallOutcome::error).await;
        }
    };

    // The session state this call reads and writes: the handle it passes
    // (a tool that declares `sessionId`), else its legacy session, else the
    // principal's default bucket.
    let session_id = tool.declares_input(SESSION_ID_ARG).then(|| args.get(SESSION_ID_ARG)).flatten();
    let bucket = match bucket::resolve(app.state(), principal.id().as_str(), &caller.session, session_id).await {
        Ok(bucket) => bucket,
        Err(e) => {
            let outcome = match e {
                bucket::BucketError::Store(_) => telemetry::CallOutcome::error,
                bucket::BucketError::NotFound { .. } | bucket::BucketError::NotAString => telemetry::CallOutcome::invalid,
            };
            return fail(app, caller, name, record, e.to_string(), tele, outcome).await;
        }
    };

    let t_bucket = tele.elapsed();
    // Per call: granted ∩ declared, whether or not enforcement gates access.
    let caps = CapabilitySet::new(grants.granted(&tool.scopes));
    let journal = Arc::new(Mutex::new(Vec::<GatewayCall>::new()));
    let ctx = CallContext {
        tool: Arc::from(name),
        caps,
        broker: app.broker().clone(),
        store: app.state().clone(),
        bucket: Arc::new(Mutex::new(bucket)),
        default_guard: principal.default_budget().map(|b| Arc::from(b.guard_json())),
        spend: *principal.spend(),
        journal: journal.clone(),
        progress,
    };
    let report = tele
        .sandboxed(app.runtime().call(CallRequest {
            pre,
            ctx,
            limits: tool.limits,
            input: canonical.to_string(),
            cancel,
        }))
        .await;
    let t_sandbox = tele.elapsed();
    let stop_cause = report.stop_cause();
    record.stop_cause = stop_cause.map(|c| c.as_str().to_owned());
    let outcome = report.outcome;
    record.duration_ms = tele.elapsed().as_millis() as u64;
    record.gateway_calls = std::mem::take(&mut *journal.lock().unwrap_or_else(|p| p.into_inner()));
    // The guest's output is parsed once: for the audit summary and for the result.
    let (result, counted) = match outcome {
        Ok(CallOutcome::Output(text)) => {
            let parsed = serde_json::from_str::<Value>(&text);
            record.success = parsed.is_ok();
            let audited = parsed.as_ref().ok().map(|v| match &tool.description.audit_output {
                Some(pointer) => v.pointer(pointer).unwrap_or(&Value::Null),
                None => v,
            });
            record.output_summary = output_summary(audited);
            let counted = if parsed.is_err() {
                record.error_code = Some("tool returned output that is not JSON".to_owned());
                telemetry::CallOutcome::tool_error
            } else {
                telemetry::CallOutcome::ok
            };
            (from_output(name, parsed), counted)
        }
        Ok(CallOutcome::ToolError(message)) => {
            record.error_code = Some(message.clone());
            (from_outcome(name, Ok(CallOutcome::ToolError(message))), telemetry::CallOutcome::tool_error)
        }
        Err(e) => {
            record.error_code = Some(format!("The tool {name} {e}"));
            (from_outcome(name, Err(e)), telemetry::CallOutcome::stopped)
        }
    };
    let end = CallEnd { outcome: counted, stop: stop_cause };
    let t_output = tele.elapsed();
    let started = std::time::Instant::now();
    let outcome = finish(app, caller, name, record, with_stop_cause(result, stop_cause), tele, end).await;
    tracing::debug!(
        tool = name,
        checked_us = t_checked.as_micros() as u64,
        bucket_us = (t_bucket - t_checked).as_micros() as u64,
        sandbox_us = (t_sandbox - t_bucket).as_micros() as u64,
        output_us = (t_output - t_sandbox).as_micros() as u64,
        audit_us = started.elapsed().as_micros() as u64,
        "call phases"
    );
    outcome
}

/// Ends a call that could not run: the message is the agent's answer and
/// the audit row's error code.
async fn fail(
    app: &App,
    caller: &Caller,
    name: &str,
    mut record: AuditRecord,
    message: String,
    tele: CallTelemetry,
    outcome: telemetry::CallOutcome,
) -> Outcome {
    record.error_code = Some(message.clone());
    record.duration_ms = tele.elapsed().as_millis() as u64;
    finish(app, caller, name, record, error_result(message), tele, CallEnd::plain(outcome)).await
}

/// Commits the row, then releases the result; if the row cannot be written
/// the agent gets the audit error instead of an unaudited answer.
async fn finish(app: &App, caller: &Caller, name: &str, record: AuditRecord, result: CallToolResult, tele: CallTelemetry, end: CallEnd) -> Outcome {
    let tenant = caller.principal.caller();
    match tele.finish(app, name, tenant, end, app.audit().commit(record)).await {
        Ok(()) => Outcome::Answered(result),
        Err(e) => Outcome::Answered(error_result(e.to_string())),
    }
}
