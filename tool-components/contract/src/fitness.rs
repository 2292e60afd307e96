//! The task fitness table: preferred providers (in order) and
//! name traits per task type. best_combo_for_task scores combos with it and
//! explain_route's `task_fit` factor reads it for a completion's role.

/// The task types, in the published order.
pub const TASK_TYPES: &[&str] = &[
    "coding",
    "review",
    "planning",
    "analysis",
    "debugging",
    "documentation",
];

/// Preferred providers of a task type, best first; empty for unknown types.
pub fn preferred(task: &str) -> &'static [&'static str] {
    match task {
        "coding" | "debugging" => &["claude", "deepseek", "codex"],
        "review" => &["claude", "gemini", "openai"],
        "planning" => &["gemini", "claude", "openai"],
        "analysis" => &["gemini", "claude"],
        "documentation" => &["gemini", "claude", "openai"],
        _ => &[],
    }
}

/// Name traits of a task type (each +5 when the lower-cased combo name contains it).
pub fn traits(task: &str) -> &'static [&'static str] {
    match task {
        "coding" => &["fast", "code-optimized"],
        "review" => &["analytical", "thorough"],
        "planning" => &["reasoning", "structured"],
        "analysis" => &["deep-reasoning", "large-context"],
        "debugging" => &["code-aware", "fast"],
        "documentation" => &["clear", "structured"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_type_has_a_row() {
        for t in TASK_TYPES {
            assert!(!preferred(t).is_empty(), "{t}");
            assert_eq!(traits(t).len(), 2, "{t}");
        }
        assert!(preferred("x").is_empty());
        assert_eq!(preferred("analysis"), ["gemini", "claude"]);
    }
}
