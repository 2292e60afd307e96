//! The host-owned session state tools read (WIT `session`): the session
//! start, the ledger of completions and the budget guard. The types and key
//! names are the contract's ([`omniroute_tool_contract::ledger`],
//! [`omniroute_tool_contract::session_keys`],
//! [`omniroute_tool_contract::budget`]), re-exported here; this module reads
//! them through a [`Session`].
//!
//! The host records every completion it brokers in the ledger and enforces
//! the guard; tools only read them (and `set_budget_guard` writes the guard).

pub use omniroute_tool_contract::budget::BudgetGuard;
pub use omniroute_tool_contract::coerce::usd;
pub use omniroute_tool_contract::ledger::{Annotation, LedgerEntry, spent};
pub use omniroute_tool_contract::session_keys::*;

use crate::tool::Session;

/// The session's ledger entries, oldest first; empty when the host has
/// recorded none. The host writes this key with the same type, so it always
/// reads back.
pub fn entries(session: &dyn Session) -> Vec<LedgerEntry> {
    session
        .get(LEDGER)
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

/// The routing index entry of `request_id` (`request:<id>`): a completion
/// this caller sent through the host; `None` when the host has none.
pub fn request_entry(session: &dyn Session, request_id: &str) -> Option<LedgerEntry> {
    serde_json::from_str(&session.get(&request_key(request_id))?).ok()
}

/// The session's budget guard; `None` when there is none, or when what is
/// stored is not a guard the host enforces.
pub fn budget_guard(session: &dyn Session) -> Option<BudgetGuard> {
    BudgetGuard::parse(session.get(BUDGET_GUARD).as_deref())
}
