//! The server's Prometheus metrics: what an operator alerts on (tenants at
//! their limits, sandbox stops, a slow gateway, a failing audit log).
//!
//! Every label value comes from a bounded set: tools as loaded (a name no
//! tool has is counted as `unknown`), tenants as configured (the stdio
//! operator is `anonymous`), outcomes, stop causes ([`StopCause`], the same
//! type the runtime and the audit use), route templates from the capability
//! table and status classes. No free-form client string becomes a label.
//!
//! Metrics are off unless `--metrics ADDR` is given: [`install`] then sets the
//! process-wide [`Metrics`], and every recording point is one `Option` check
//! when it is off.

use crate::stop_cause::StopCause;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::OnceLock;
use std::time::Duration;

/// How a `tools/call` ended, as an operator counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CallOutcome {
    /// The tool answered with a result.
    ok,
    /// The tool ran and reported an error (or answered with output that is not JSON).
    tool_error,
    /// Missing scopes, or a tool outside the tenant's allow-list.
    denied,
    /// Unknown tool, or arguments that do not match the input schema.
    invalid,
    /// The tenant's rate or concurrency limit refused the call.
    limited,
    /// The sandbox stopped the call (see `omniroute_mcp_sandbox_stops_total` for the cause).
    stopped,
    /// The host could not run it (audit log unusable, component cannot start).
    error,
}

/// What the session budget guard did to a completion instead of sending it as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetAction {
    /// Refused before anything left the host (`action = "block"`, or a
    /// `degrade` that found no cheaper target).
    Blocked,
    /// Sent to a cheaper model of the guard's tier (`action = "degrade"`).
    Degraded,
}

/// The tenant label of a principal id (`tenant:<id>` → `<id>`,
/// `operator:<name>` → `anonymous` as stdio audit rows say, and a
/// per-subject OAuth principal `oauth:<issuer>:<subject>` → `oauth:<issuer>`,
/// its issuer's default policy): subjects never become label values.
pub fn tenant_of_principal(id: &str) -> String {
    if let Some(tenant) = id.strip_prefix("tenant:") {
        return tenant.to_owned();
    }
    if let Some(rest) = id.strip_prefix("oauth:") {
        return format!("oauth:{}", rest.split(':').next().unwrap_or_default());
    }
    "anonymous".to_owned()
}

/// The tenant label of a caller name as audit rows show it: a tenant id or
/// `anonymous` stays itself; a per-subject OAuth caller `<issuer>:<subject>`
/// becomes `oauth:<issuer>` (tenant ids cannot hold a `:`), the same label
/// [`tenant_of_principal`] gives its principal id.
pub fn tenant_of_caller(caller: &str) -> String {
    match caller.split_once(':') {
        Some((issuer, _)) => format!("oauth:{issuer}"),
        None => caller.to_owned(),
    }
}

/// Counts one budget-guard block or degrade of a completion sent for the
/// principal `principal_id` (a no-op with metrics off).
pub fn budget(principal_id: &str, action: BudgetAction) {
    if let Some(m) = metrics() {
        let family = match action {
            BudgetAction::Blocked => &m.budget_blocks,
            BudgetAction::Degraded => &m.budget_degrades,
        };
        family.get_or_create(&TenantLabel { tenant: tenant_of_principal(principal_id) }).inc();
    }
}

/// [`budget`] for a block, passing the refusal's message through, so the
/// guard's refusal points count it in one expression.
pub fn budget_blocked(principal_id: &str, message: String) -> String {
    budget(principal_id, BudgetAction::Blocked);
    message
}

/// A Streamable HTTP session of `principal_id` started (`opened`) or ended:
/// moves the `sessions` gauge of its tenant (a no-op with metrics off).
pub fn http_session(principal_id: &str, opened: bool) {
    if let Some(m) = metrics() {
        let gauge = m.sessions.get_or_create(&TenantLabel { tenant: tenant_of_principal(principal_id) });
        if opened {
            gauge.inc();
        } else {
            gauge.dec();
        }
    }
}

/// The stop-cause label: the runtime's [`StopCause`] by its wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CauseLabel(pub StopCause);

impl EncodeLabelValue for CauseLabel {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    tenant: String,
    outcome: CallOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ToolLabel {
    tool: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StopLabels {
    tool: String,
    cause: CauseLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    method: &'static str,
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteStatusLabels {
    method: &'static str,
    route: &'static str,
    status: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from 1 ms to about 66 s: tool calls and gateway requests.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 17))
}

/// Every metric of the server, registered once.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_duration: HistogramFamily<ToolLabel>,
    stops: Family<StopLabels, Counter>,
    gateway_requests: Family<RouteStatusLabels, Counter>,
    gateway_duration: HistogramFamily<RouteLabel>,
    audit_commit: Histogram,
    audit_failures: Counter,
    budget_blocks: Family<TenantLabel, Counter>,
    budget_degrades: Family<TenantLabel, Counter>,
    sessions: Family<TenantLabel, Gauge>,
    /// Refreshed at each scrape from the state store.
    handles: Family<TenantLabel, Gauge>,
    /// Refreshed at each scrape from the audit log.
    pub audit_queue: Gauge,
    /// Refreshed at each scrape from the registry snapshot.
    pub tools_loaded: Gauge,
    /// Refreshed at each scrape from the registry snapshot.
    pub tools_refused: Gauge,
    /// Calls running now (admitted, not yet answered).
    pub calls_in_flight: Gauge,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turns metrics on for this process (idempotent) and returns them.
pub fn install() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The process's metrics, or `None` when `--metrics` was not given.
pub fn metrics() -> Option<&'static Metrics> {
    METRICS.get()
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("omniroute_mcp");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "tools/call requests by tool (as loaded, else unknown), tenant (as configured) and outcome",
            calls.clone(),
        );
        let call_duration: HistogramFamily<ToolLabel> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "tool_call_duration",
            "Duration of a tools/call from admission to the committed audit row, by tool",
            Unit::Seconds,
            call_duration.clone(),
        );
        let stops = Family::<StopLabels, Counter>::default();
        registry.register(
            "sandbox_stops",
            "Calls the sandbox stopped, or that reached their request cap, by tool and stop cause",
            stops.clone(),
        );
        let gateway_requests = Family::<RouteStatusLabels, Counter>::default();
        registry.register(
            "gateway_requests",
            "Requests sent to the OmniRoute gateway by method, route template and status class (2xx..5xx, or error when no response came)",
            gateway_requests.clone(),
        );
        let gateway_duration: HistogramFamily<RouteLabel> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "gateway_request_duration",
            "Latency of gateway requests by method and route template",
            Unit::Seconds,
            gateway_duration.clone(),
        );
        let audit_commit = latency_histogram();
        registry.register_with_unit(
            "audit_commit_duration",
            "Time to commit one tools/call audit row",
            Unit::Seconds,
            audit_commit.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit rows that could not be written (the call was answered with the audit error)",
            audit_failures.clone(),
        );
        let budget_blocks = Family::<TenantLabel, Counter>::default();
        registry.register(
            "budget_blocks",
            "Completions the session budget guard refused before sending (action block, or degrade without a cheaper target), by tenant",
            budget_blocks.clone(),
        );
        let budget_degrades = Family::<TenantLabel, Counter>::default();
        registry.register(
            "budget_degrades",
            "Completions the session budget guard sent to a cheaper model (action degrade), by tenant",
            budget_degrades.clone(),
        );
        let sessions = Family::<TenantLabel, Gauge>::default();
        registry.register("http_sessions", "Live Streamable HTTP sessions (Mcp-Session-Id), by tenant", sessions.clone());
        let handles = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "session_handles",
            "Session handles (sessionId) held in the state store, by tenant; with a shared store, every node reports the same (refreshed at each scrape)",
            handles.clone(),
        );
        let audit_queue = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Audit rows not yet in the audit tables: journaled and waiting for their batch, or handed to the writer and not yet committed (refreshed at each scrape)",
            audit_queue.clone(),
        );
        let tools_loaded = Gauge::default();
        registry.register("tools_loaded", "Tools on offer (built-ins and plugins)", tools_loaded.clone());
        let tools_refused = Gauge::default();
        registry.register(
            "tools_refused",
            "Tool components and plugins refused at the last load (the server log says why)",
            tools_refused.clone(),
        );
        let calls_in_flight = Gauge::default();
        registry.register("calls_in_flight", "tools/call requests running now", calls_in_flight.clone());
        Self {
            registry,
            calls,
            call_duration,
            stops,
            gateway_requests,
            gateway_duration,
            audit_commit,
            audit_failures,
            budget_blocks,
            budget_degrades,
            sessions,
            handles,
            audit_queue,
            tools_loaded,
            tools_refused,
            calls_in_flight,
        }
    }

    /// Sets the `session_handles` gauge from the store's per-principal
    /// counts, summed by tenant label; tenants that hold none drop out.
    pub fn set_handles(&self, counts: &[(String, u64)]) {
        let mut by_tenant: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for (principal, n) in counts {
            *by_tenant.entry(tenant_of_principal(principal)).or_default() += n;
        }
        self.handles.clear();
        for (tenant, n) in by_tenant {
            self.handles.get_or_create(&TenantLabel { tenant }).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// One finished call. `tool` must already be bounded (a loaded tool's
    /// name, or `unknown`); `tenant` is the principal's caller name (a
    /// per-subject OAuth caller is counted under its issuer's policy).
    pub fn call(&self, tool: &str, tenant: &str, outcome: CallOutcome, stop: Option<StopCause>, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels { tool: tool.to_owned(), tenant: tenant_of_caller(tenant), outcome })
            .inc();
        self.call_duration.get_or_create(&ToolLabel { tool: tool.to_owned() }).observe(elapsed.as_secs_f64());
        if let Some(cause) = stop {
            self.stops.get_or_create(&StopLabels { tool: tool.to_owned(), cause: CauseLabel(cause) }).inc();
        }
    }

    /// One gateway exchange: `route` is a capability-table template
    /// (`/api/combos/{id}`), `status` the response's status, or `None`
    /// when no response came (timeout, connection refused).
    pub fn gateway(&self, method: &'static str, route: &'static str, status: Option<u16>, elapsed: Duration) {
        let status = match status {
            Some(100..=199) => "1xx",
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(500..=599) => "5xx",
            Some(_) => "other",
            None => "error",
        };
        self.gateway_requests.get_or_create(&RouteStatusLabels { method, route, status }).inc();
        self.gateway_duration.get_or_create(&RouteLabel { method, route }).observe(elapsed.as_secs_f64());
    }

    /// One audit commit and whether it was written.
    pub fn audit_commit(&self, elapsed: Duration, written: bool) {
        self.audit_commit.observe(elapsed.as_secs_f64());
        if !written {
            self.audit_failures.inc();
        }
    }

    /// The OpenMetrics text exposition (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_counts_appear_in_the_exposition() {
        let m = Metrics::new();
        m.call("omniroute_get_health", "acme", CallOutcome::ok, None, Duration::from_millis(3));
        m.call("test_hostile", "acme", CallOutcome::stopped, Some(StopCause::Cpu), Duration::from_millis(300));
        m.gateway("GET", "/api/combos/{id}", Some(404), Duration::from_millis(2));
        m.gateway("GET", "/api/health", None, Duration::from_millis(2));
        m.audit_commit(Duration::from_millis(1), false);
        let text = m.encode();
        for line in [
            "omniroute_mcp_tool_calls_total{tool=\"omniroute_get_health\",tenant=\"acme\",outcome=\"ok\"} 1",
            "omniroute_mcp_tool_calls_total{tool=\"test_hostile\",tenant=\"acme\",outcome=\"stopped\"} 1",
            "omniroute_mcp_sandbox_stops_total{tool=\"test_hostile\",cause=\"cpu\"} 1",
            "omniroute_mcp_gateway_requests_total{method=\"GET\",route=\"/api/combos/{id}\",status=\"4xx\"} 1",
            "omniroute_mcp_gateway_requests_total{method=\"GET\",route=\"/api/health\",status=\"error\"} 1",
            "omniroute_mcp_audit_write_failures_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn tenant_labels_are_bounded_to_tenants_and_policies() {
        assert_eq!(tenant_of_principal("tenant:acme"), "acme");
        assert_eq!(tenant_of_principal("operator:local"), "anonymous");
        assert_eq!(tenant_of_principal("oauth:corp:sha256-0123"), "oauth:corp");
        assert_eq!(tenant_of_caller("acme"), "acme");
        assert_eq!(tenant_of_caller("anonymous"), "anonymous");
        assert_eq!(tenant_of_caller("corp:alice"), "oauth:corp");
        let m = Metrics::new();
        m.call("omniroute_get_health", "corp:alice", CallOutcome::ok, None, Duration::from_millis(1));
        m.call("omniroute_get_health", "corp:bob", CallOutcome::ok, None, Duration::from_millis(1));
        let text = m.encode();
        let line = "omniroute_mcp_tool_calls_total{tool=\"omniroute_get_health\",tenant=\"oauth:corp\",outcome=\"ok\"} 2";
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        assert!(!text.contains("alice"), "{text}");
    }
}
