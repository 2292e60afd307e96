//! The scope -> gateway endpoint table. Each row grants one (method, path
//! pattern) pair; `{id}` matches exactly one non-empty path segment. A row
//! also says which request bodies it allows: reads take none, and each write
//! takes only the JSON its schema describes (the narrowest the tools need),
//! so `write:combos` can switch a combo on or off but not rewrite it.
//!
//! The rows follow what the 16 tools of the OmniRoute MCP surface need
//! (docs/README.md#the-built-in-tools), grouped by the data a scope is about. `write:budget` grants
//! no gateway route: the budget guard lives in the host.

use super::Scope;

/// HTTP methods a component may use (the contract's, shared with the guests).
pub use omniroute_tool_contract::method::Method;

/// One grant: `scope` allows `method` on paths matching `pattern`, with a
/// body matching `body` (a JSON Schema), or with no body when it is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityRow {
    pub scope: Scope,
    pub method: Method,
    pub pattern: &'static str,
    /// Why the scope needs it; printed by `omniroute-mcp tools`.
    pub purpose: &'static str,
    /// JSON Schema of the only bodies allowed; `None`: no body at all.
    pub body: Option<&'static str>,
}

const fn row(scope: Scope, method: Method, pattern: &'static str, purpose: &'static str) -> CapabilityRow {
    CapabilityRow {
        scope,
        method,
        pattern,
        purpose,
        body: None,
    }
}

const fn write(scope: Scope, method: Method, pattern: &'static str, purpose: &'static str, body: &'static str) -> CapabilityRow {
    CapabilityRow {
        scope,
        method,
        pattern,
        purpose,
        body: Some(body),
    }
}

/// Switching a combo: `{"isActive": <bool>}` and nothing else.
pub const SWITCH_COMBO_BODY: &str = r#"{
  "type": "object",
  "properties": { "isActive": { "type": "boolean" } },
  "required": ["isActive"],
  "additionalProperties": false
}"#;

/// A non-streaming chat completion as the tools send it: model, messages of
/// role and content, optionally `max_tokens` and `"stream": false`.
pub const COMPLETION_BODY: &str = r#"{
  "type": "object",
  "properties": {
    "model": { "type": "string" },
    "messages": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": { "role": { "type": "string" }, "content": { "type": "string" } },
        "required": ["role", "content"],
        "additionalProperties": false
      }
    },
    "max_tokens": { "type": "integer", "minimum": 1 },
    "stream": { "const": false }
  },
  "required": ["model", "messages"],
  "additionalProperties": false
}"#;

/// A resilience profile: request queue, connection cooldowns and provider
/// breakers, each value a non-negative integer (or the retry-hint switch).
pub const RESILIENCE_BODY: &str = r##"{
  "type": "object",
  "$defs": {
    "count": { "type": "integer", "minimum": 0 },
    "cooldown": {
      "type": "object",
      "properties": {
        "baseCooldownMs": { "$ref": "#/$defs/count" },
        "useUpstreamRetryHints": { "type": "boolean" },
        "maxBackoffSteps": { "$ref": "#/$defs/count" }
      },
      "additionalProperties": false
    },
    "breaker": {
      "type": "object",
      "properties": {
        "failureThreshold": { "$ref": "#/$defs/count" },
        "resetTimeoutMs": { "$ref": "#/$defs/count" }
      },
      "additionalProperties": false
    }
  },
  "properties": {
    "requestQueue": {
      "type": "object",
      "properties": {
        "requestsPerMinute": { "$ref": "#/$defs/count" },
        "minTimeBetweenRequestsMs": { "$ref": "#/$defs/count" },
        "concurrentRequests": { "$ref": "#/$defs/count" }
      },
      "additionalProperties": false
    },
    "connectionCooldown": {
      "type": "object",
      "properties": { "oauth": { "$ref": "#/$defs/cooldown" }, "apikey": { "$ref": "#/$defs/cooldown" } },
      "additionalProperties": false
    },
    "providerBreaker": {
      "type": "object",
      "properties": { "oauth": { "$ref": "#/$defs/breaker" }, "apikey": { "$ref": "#/$defs/breaker" } },
      "additionalProperties": false
    }
  },
  "additionalProperties": false
}"##;

use Method::{Get, Patch, Post, Put};
use Scope::*;

/// The whole table. Order is presentation order.
pub const CAPABILITY_TABLE: &[CapabilityRow] = &[
    // read:health — gateway health, breakers, limits, caches and provider statistics.
    row(ReadHealth, Get, "/api/monitoring/health", "uptime, version, provider breakers"),
    row(ReadHealth, Get, "/api/resilience", "resilience settings"),
    row(ReadHealth, Get, "/api/rate-limits", "per-connection rate limiting"),
    row(ReadHealth, Get, "/api/cache", "semantic response cache statistics"),
    row(ReadHealth, Get, "/api/provider-metrics", "all-time per-provider success and latency"),
    row(ReadHealth, Get, "/api/usage/quota", "provider quota next to health"),
    row(ReadHealth, Get, "/api/usage/call-logs", "latency percentiles and recent errors"),
    row(ReadHealth, Get, "/api/provider-nodes", "custom node id <-> prefix aliases"),
    row(ReadHealth, Get, "/api/pricing/models", "built-in provider id <-> alias catalogue"),
    row(ReadHealth, Get, "/api/pricing", "step prices for route simulation"),
    // read:combos — combos, their metrics and health.
    row(ReadCombos, Get, "/api/combos", "combo definitions"),
    row(ReadCombos, Get, "/api/combos/metrics", "in-memory combo metrics"),
    row(ReadCombos, Get, "/api/usage/combo-health", "persistent per-step combo health"),
    row(ReadCombos, Get, "/api/usage/analytics", "expected cost per request of a combo step"),
    row(ReadCombos, Get, "/api/pricing", "step prices"),
    row(ReadCombos, Get, "/api/provider-nodes", "custom node id <-> prefix aliases"),
    row(ReadCombos, Get, "/api/pricing/models", "built-in provider id <-> alias catalogue"),
    // write:combos — switch a combo on or off.
    row(WriteCombos, Get, "/api/combos", "resolve a combo name to its id"),
    write(WriteCombos, Put, "/api/combos/{id}", "set isActive", SWITCH_COMBO_BODY),
    // read:quota — provider quotas.
    row(ReadQuota, Get, "/api/usage/quota", "remaining quota per connection"),
    row(ReadQuota, Get, "/api/provider-nodes", "map a provider prefix to the gateway's id"),
    row(ReadQuota, Get, "/api/pricing/models", "map a provider alias to the gateway's id"),
    // execute:completions — send completions (budget guard enforced by the host).
    write(ExecuteCompletions, Post, "/v1/chat/completions", "chat completions", COMPLETION_BODY),
    row(ExecuteCompletions, Get, "/api/combos", "recognise combo names, pick a degrade target"),
    row(ExecuteCompletions, Get, "/api/pricing", "cheapest degrade target"),
    row(ExecuteCompletions, Get, "/api/provider-nodes", "alias sets for prices"),
    row(ExecuteCompletions, Get, "/api/pricing/models", "alias sets for prices"),
    // read:usage — usage analytics and logs.
    row(ReadUsage, Get, "/api/usage/analytics", "cost and token totals"),
    row(ReadUsage, Get, "/api/usage/call-logs", "per-attempt call logs"),
    row(ReadUsage, Get, "/api/usage/call-logs/{id}", "one call log"),
    row(ReadUsage, Get, "/api/routing/decisions/{id}", "routing decisions, where the gateway has them"),
    row(ReadUsage, Get, "/api/combos/metrics", "step latency for route explanations"),
    row(ReadUsage, Get, "/api/combos", "combo steps for route explanations"),
    row(ReadUsage, Get, "/api/pricing", "step prices for route explanations"),
    // read:models — the model catalogue.
    row(ReadModels, Get, "/v1/models", "models and combos the gateway serves"),
    row(ReadModels, Get, "/api/pricing", "model prices"),
    row(ReadModels, Get, "/api/provider-nodes", "alias sets for filtering and prices"),
    row(ReadModels, Get, "/api/pricing/models", "alias sets for filtering and prices"),
    // write:resilience — apply a resilience profile and read it back.
    write(WriteResilience, Patch, "/api/resilience", "apply a profile", RESILIENCE_BODY),
    row(WriteResilience, Get, "/api/resilience", "read the applied settings back"),
];

/// The table pattern a request matches, for logs and the audit (which must
/// not hold concrete ids or other values from paths).
pub fn template_for(method: Method, path: &str) -> Option<&'static str> {
    CAPABILITY_TABLE
        .iter()
        .find(|row| row.method == method && pattern_matches(row.pattern, path))
        .map(|row| row.pattern)
}

/// Whether a normalised path matches a table pattern.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return true,
            (Some("{id}"), Some(seg)) if !seg.is_empty() => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("/api/combos/{id}", "/api/combos/x1"));
        assert!(!pattern_matches("/api/combos/{id}", "/api/combos"));
        assert!(!pattern_matches("/api/combos", "/api/combos/x1"));
        assert!(!pattern_matches("/api/combos", "/api/combosX"));
    }

    #[test]
    fn no_duplicate_rows() {
        for (i, a) in CAPABILITY_TABLE.iter().enumerate() {
            for b in &CAPABILITY_TABLE[i + 1..] {
                assert!(
                    !(a.scope == b.scope && a.method == b.method && a.pattern == b.pattern),
                    "duplicate row {a:?}"
                );
            }
        }
    }
}
