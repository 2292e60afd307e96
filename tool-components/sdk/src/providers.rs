//! Provider identity and prices: the contract's rules
//! ([`omniroute_tool_contract::providers`], re-exported here) plus reading
//! their two mapping sources through the gateway, optionally kept for a
//! burst of calls in the tool's session.

pub use omniroute_tool_contract::providers::*;

use serde_json::Value;

use crate::degraded::Degraded;
use crate::failure::GatewayFailure;
use crate::gateway::{Gateway, Request};
use crate::tool::Session;
use crate::{clock, session_cache};

/// The two mapping requests, in the order [`from_results`] takes them.
pub fn requests() -> [Request; 2] {
    [Request::get(PROVIDER_NODES), Request::get(PRICING_MODELS)]
}

/// The maps from the two answers of [`requests`] (e.g. part of a larger
/// batch); a failed one is recorded in `degraded` and contributes nothing.
pub fn from_results(
    nodes: Result<Value, GatewayFailure>,
    models: Result<Value, GatewayFailure>,
    degraded: &mut Degraded,
) -> Providers {
    let nodes = degraded.take(nodes);
    let models = degraded.take(models);
    Providers::from_json(nodes.as_ref(), models.as_ref())
}

/// Reads both sources concurrently; a failed one is recorded in `degraded`
/// and contributes nothing.
pub fn fetch(gw: &dyn Gateway, degraded: &mut Degraded) -> Providers {
    let [nodes, models] = <[_; 2]>::try_from(gw.send_all_json(&requests()))
        .expect("send_all_json answers every request");
    from_results(nodes, models, degraded)
}

/// [`fetch`], kept in this tool's private session `key` for
/// [`session_cache::TTL_MS`] so a burst of calls reads the two mapping
/// sources once. When a source fails, the maps serve this call (the failure
/// is in `degraded`) but are not kept.
pub fn fetch_cached(
    gw: &dyn Gateway,
    session: &dyn Session,
    key: &str,
    degraded: &mut Degraded,
) -> Providers {
    fetch_cached_at(gw, session, key, clock::now_ms(), degraded)
}

/// [`fetch_cached`] at a given time (for tests).
pub fn fetch_cached_at(
    gw: &dyn Gateway,
    session: &dyn Session,
    key: &str,
    now_ms: u64,
    degraded: &mut Degraded,
) -> Providers {
    let cached = session_cache::fresh(session, key, now_ms, session_cache::TTL_MS);
    if let Some(providers) = cached.as_ref().and_then(Providers::from_cache_value) {
        return providers;
    }
    let failures = degraded.len();
    let providers = fetch(gw, degraded);
    if degraded.len() == failures {
        session_cache::store(session, key, now_ms, providers.to_cache_value());
    }
    providers
}
