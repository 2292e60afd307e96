//! What a component can import, one module per import of the `tool` world,
//! in the way Spin composes host capabilities: each factor has its
//! configuration, the per-call state it builds, its linker binding and its
//! own tests. The call's store data ([`super::CallState`]) is made of these
//! states; nothing here knows about the store, the engine or each other
//! beyond the completions a call sent (the gateway records them, the
//! session import annotates them).
//!
//! * [`gateway`]: the broker, the capability set, the request allowance and
//!   journal, the budget guard and spend reservation on completions (its
//!   `spend` helper), the call's deadline per request;
//! * [`session`]: session state in the state store, the ledger and the
//!   routing index (the key-value import of components built against 0.1.0);
//! * [`state`]: the same state as typed records (the import of 0.1.1);
//! * [`progress`]: progress reports, coalesced and capped.

pub mod gateway;
pub mod progress;
pub mod session;
mod spend;
pub mod state;

use crate::capability::CapabilitySet;
use crate::gateway::Broker;
use crate::session::bucket::SharedBucket;
use crate::session::ledger::LedgerEntry;
use crate::state::{LedgerId, Store};
use progress::ProgressSink;
use std::sync::{Arc, Mutex};

/// Everything a call may reach through its imports, decided by the host
/// before the component runs.
#[derive(Clone)]
pub struct CallContext {
    /// The tool being called (names its private session keys and log lines).
    pub tool: Arc<str>,
    /// Granted ∩ declared scopes: the only gateway routes this call may use.
    pub caps: CapabilitySet,
    pub broker: Arc<Broker>,
    /// Where session state, the ledger and the routing index live.
    pub store: Store,
    /// The bucket this call reads and writes (and its principal).
    pub bucket: SharedBucket,
    /// The guard of a bucket that has none of its own (a tenant's
    /// `default_budget`), as `set_budget_guard` stores guards.
    pub default_guard: Option<Arc<str>>,
    /// The principal's spend cap and worst-case settings, checked by a
    /// reservation before every completion.
    pub spend: crate::state::SpendPolicy,
    /// Shapes of the gateway requests this call made, for the audit log.
    pub journal: Arc<Mutex<Vec<crate::audit::GatewayCall>>>,
    /// Where progress goes, when the client asked for it.
    pub progress: Option<ProgressSink>,
}

/// A completion one call sent, as recorded in the store.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    /// Its ledger entry's id; `None` if recording it failed.
    pub(crate) id: Option<LedgerId>,
    pub(crate) entry: LedgerEntry,
}

/// The completions one call sent: the only ledger entries it may annotate.
pub(crate) type CallCompletions = Arc<Mutex<Vec<Sent>>>;

impl CallContext {
    /// The call's bucket as it is now.
    pub(crate) fn bucket(&self) -> crate::session::bucket::CallBucket {
        lock(&self.bucket).clone()
    }
}

/// Locks, ignoring poisoning: every update under these locks is a single push.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
