//! The names of the 16 built-in tools (their contracts: `docs/tools/`).

pub const HEALTH: &str = "omniroute_get_health";
pub const LIST_COMBOS: &str = "omniroute_list_combos";
pub const COMBO_METRICS: &str = "omniroute_get_combo_metrics";
pub const SWITCH_COMBO: &str = "omniroute_switch_combo";
pub const CHECK_QUOTA: &str = "omniroute_check_quota";
pub const ROUTE: &str = "omniroute_route_request";
pub const COST_REPORT: &str = "omniroute_cost_report";
pub const CATALOG: &str = "omniroute_list_models_catalog";
pub const SIMULATE: &str = "omniroute_simulate_route";
pub const BUDGET: &str = "omniroute_set_budget_guard";
pub const RESILIENCE: &str = "omniroute_set_resilience_profile";
pub const TEST_COMBO: &str = "omniroute_test_combo";
pub const PROVIDER_METRICS: &str = "omniroute_get_provider_metrics";
pub const BEST_COMBO: &str = "omniroute_best_combo_for_task";
pub const EXPLAIN: &str = "omniroute_explain_route";
pub const SNAPSHOT: &str = "omniroute_get_session_snapshot";
