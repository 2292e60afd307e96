//! The session keys of the WIT `session` interface (`omniroute:tool@0.1.0`)
//! that the host owns. Tools read them (and `set_budget_guard` writes the
//! guard); every other key is private to the tool that writes it.

/// JSON string: ISO time the MCP session started. Read-only.
pub const SESSION_START: &str = "session-start";
/// JSON array of [`crate::ledger::LedgerEntry`]: the completions the host
/// brokered in this session, oldest first. Read-only.
pub const LEDGER: &str = "ledger";
/// JSON [`crate::budget::BudgetGuard`] or absent; settable only by a call
/// holding `write:budget`.
pub const BUDGET_GUARD: &str = "budget-guard";
/// Prefix of the read-only keys `request:<x-request-id>`: the host's routing
/// index entry (a [`crate::ledger::LedgerEntry`]) of a completion.
pub const REQUEST_PREFIX: &str = "request:";
/// Write-only: a [`crate::ledger::Annotation`] adds the facts only the tool
/// knows to the ledger entry of a completion sent by the same call.
pub const LEDGER_ANNOTATION: &str = "ledger-annotation";

/// JSON string: the opaque handle (`sh_…`) that names this call's session
/// state, for the tool to give back to the agent (`sessionId`), who passes
/// it to later calls. Read-only. In a call without one (a stateless
/// request that passed no `sessionId`) reading it mints a fresh handle and
/// moves the call onto it, but only for a call holding `write:budget`
/// (`set_budget_guard`); other calls read nothing.
pub const SESSION_HANDLE: &str = "session-handle";

/// `request:<request_id>`: the routing index key of a completion.
pub fn request_key(request_id: &str) -> String {
    format!("{REQUEST_PREFIX}{request_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_carry_the_prefix() {
        assert_eq!(request_key("r1"), "request:r1");
        assert_eq!(request_key("r1").strip_prefix(REQUEST_PREFIX), Some("r1"));
    }
}
