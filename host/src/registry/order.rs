//! Presentation order of tools: the original server's order for the 16
//! OmniRoute tools (docs/contract.md#tool-list), then everything else by name.

use std::cmp::Ordering;

/// The original's tools/list order.
pub const ORIGINAL_ORDER: [&str; 16] = [
    "omniroute_get_health",
    "omniroute_list_combos",
    "omniroute_get_combo_metrics",
    "omniroute_switch_combo",
    "omniroute_check_quota",
    "omniroute_route_request",
    "omniroute_cost_report",
    "omniroute_list_models_catalog",
    "omniroute_simulate_route",
    "omniroute_set_budget_guard",
    "omniroute_set_resilience_profile",
    "omniroute_test_combo",
    "omniroute_get_provider_metrics",
    "omniroute_best_combo_for_task",
    "omniroute_explain_route",
    "omniroute_get_session_snapshot",
];

/// Sorts known tools first in the original order, the rest by name.
pub fn compare(a: &str, b: &str) -> Ordering {
    let rank = |n: &str| ORIGINAL_ORDER.iter().position(|o| *o == n).unwrap_or(usize::MAX);
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn original_first_then_by_name() {
        let mut names = vec!["zeta", "omniroute_list_combos", "alpha", "omniroute_get_health"];
        names.sort_by(|a, b| super::compare(a, b));
        assert_eq!(names, ["omniroute_get_health", "omniroute_list_combos", "alpha", "zeta"]);
    }
}
