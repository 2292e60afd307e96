//! The real gateway answers under `fixtures/gateway/` of this crate
//! (captured from OmniRoute 3.7.9), one constant per file, named after it.
//! This folder is their only copy: the host's and the end-to-end tests read
//! the same files by path. Constants cost nothing in a test that does not
//! use them.

/// The custom node of `provider-nodes.json`, `usage-quota.json`,
/// `call-logs.json` and `chat-completion-combo.json` (prefix `mock`).
pub const NODE_9BF: &str = "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be";
/// The same `mock` node on the restarted gateway of
/// `chat-completion-priced.json` and `health-open-breakers.json`.
pub const NODE_1F2: &str = "openai-compatible-chat-1f2e00b9-0860-4f8f-93e7-2cf565feb2f4";
pub const CACHE: &str = include_str!("../fixtures/gateway/cache.json");
pub const CALL_LOGS: &str = include_str!("../fixtures/gateway/call-logs.json");
pub const CALL_LOG_BY_REQUEST_ID_404: &str =
    include_str!("../fixtures/gateway/call-log-by-request-id-404.json");
pub const CALL_LOG_DETAIL: &str = include_str!("../fixtures/gateway/call-log-detail.json");
pub const CHAT_COMPLETION_COMBO: &str =
    include_str!("../fixtures/gateway/chat-completion-combo.json");
pub const CHAT_COMPLETION_PREFIX_PRICED_COST_ZERO: &str =
    include_str!("../../testing/fixtures/gateway/chat-completion-prefix-priced-cost-zero.json");
pub const CHAT_COMPLETION_PRICED: &str =
    include_str!("../fixtures/gateway/chat-completion-priced.json");
pub const CHAT_ERROR_ALL_ACCOUNTS_INACTIVE: &str =
    include_str!("../fixtures/gateway/chat-error-all-accounts-inactive.json");
pub const CHAT_ERROR_BREAKER_OPEN: &str =
    include_str!("../fixtures/gateway/chat-error-breaker-open.json");
pub const CHAT_ERROR_UPSTREAM_500: &str =
    include_str!("../fixtures/gateway/chat-error-upstream-500.json");
pub const COMBOS_POPULATED: &str = include_str!("../fixtures/gateway/combos-populated.json");
pub const COMBO_HEALTH_24H: &str = include_str!("../fixtures/gateway/combo-health-24h.json");
pub const COMBO_METRICS_ALL: &str = include_str!("../fixtures/gateway/combo-metrics-all.json");
pub const COMBO_METRICS_BY_ID_OR_UNKNOWN: &str =
    include_str!("../fixtures/gateway/combo-metrics-by-id-or-unknown.json");
pub const COMBO_METRICS_CODING_FAST: &str =
    include_str!("../fixtures/gateway/combo-metrics-coding-fast.json");
pub const HEALTH_FRESH: &str = include_str!("../fixtures/gateway/health-fresh.json");
pub const HEALTH_OPEN_BREAKERS: &str =
    include_str!("../fixtures/gateway/health-open-breakers.json");
pub const HEALTH_POPULATED: &str = include_str!("../fixtures/gateway/health-populated.json");
pub const PRICING: &str = include_str!("../fixtures/gateway/pricing.json");
pub const PRICING_MODELS_EXCERPT: &str =
    include_str!("../fixtures/gateway/pricing-models-excerpt.json");
pub const PROVIDER_METRICS: &str = include_str!("../fixtures/gateway/provider-metrics.json");
pub const PROVIDER_NODES: &str = include_str!("../fixtures/gateway/provider-nodes.json");
pub const RATE_LIMITS_POPULATED: &str =
    include_str!("../fixtures/gateway/rate-limits-populated.json");
pub const RESILIENCE_DEFAULTS: &str = include_str!("../fixtures/gateway/resilience-defaults.json");
pub const USAGE_ANALYTICS_1D: &str = include_str!("../fixtures/gateway/usage-analytics-1d.json");
pub const USAGE_ANALYTICS_FRESH: &str =
    include_str!("../fixtures/gateway/usage-analytics-fresh.json");
pub const USAGE_BUDGET_MISSING_PARAM_400: &str =
    include_str!("../fixtures/gateway/usage-budget-missing-param-400.json");
pub const USAGE_QUOTA: &str = include_str!("../fixtures/gateway/usage-quota.json");
/// Answers derived from the captured ones for the edge cases a live gateway
/// rarely shows; `fixtures/derived/README.md` says how each was made.
pub mod derived {
    /// `usage-quota.json` with an unrecognised `tokenStatus`, an entry
    /// without `connectionId`, use and limit, and one without name and
    /// provider but with a known limit; no `meta.generatedAt`.
    pub const USAGE_QUOTA_ODD_ENTRIES: &str =
        include_str!("../fixtures/derived/usage-quota-odd-entries.json");
    /// `health-populated.json` without `status` and `providerBreakers`.
    pub const HEALTH_WITHOUT_STATUS_AND_BREAKERS: &str =
        include_str!("../fixtures/derived/health-without-status-and-breakers.json");
    /// `rate-limits-populated.json` without `connections`.
    pub const RATE_LIMITS_WITHOUT_CONNECTIONS: &str =
        include_str!("../fixtures/derived/rate-limits-without-connections.json");
}

pub const V1_MODELS_POPULATED: &str = include_str!("../fixtures/gateway/v1-models-populated.json");
