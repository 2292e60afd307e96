//! The session budget guard, enforced by the host on every completion any
//! tool sends: a tool cannot route around it or under-report what was
//! spent, because the ledger is filled from the wire. The guard's type, its
//! decision, its texts and the degrade-target rule are the contract's, the
//! same the tools use.

pub use omniroute_tool_contract::budget::{
    BudgetGuard, Decision, GuardAction, degrade_target, degraded_text, no_target_text,
};
