//! The host-owned session state tools read (WIT `state`): the ledger of
//! completions, the routing index and the budget guard. The types are the
//! contract's ([`omniroute_tool_contract::ledger`],
//! [`omniroute_tool_contract::budget`]), re-exported here; the host sends
//! them as typed WIT records, so no key names or JSON shapes are shared.
//!
//! The host records every completion it brokers in the ledger and enforces
//! the guard; tools only read them (and `set_budget_guard` writes the guard).

pub use omniroute_tool_contract::budget::BudgetGuard;
pub use omniroute_tool_contract::coerce::usd;
pub use omniroute_tool_contract::ledger::{Annotation, LedgerEntry, spent};

use crate::tool::Session;

/// The session's ledger entries, oldest first; empty when the host has
/// recorded none.
pub fn entries(session: &dyn Session) -> Vec<LedgerEntry> {
    session.ledger()
}

/// The routing index entry of `request_id`: a completion this caller sent
/// through the host; `None` when the host has none.
pub fn request_entry(session: &dyn Session, request_id: &str) -> Option<LedgerEntry> {
    session.find_request(request_id)
}

/// The session's budget guard; `None` when there is none.
pub fn budget_guard(session: &dyn Session) -> Option<BudgetGuard> {
    session.budget_guard()
}
