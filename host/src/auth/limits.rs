//! How much a principal may do: calls at once, calls per minute, live MCP
//! sessions, and the budget guard its sessions start with.

use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use crate::state::{Store, StoreError};

/// The state store's name of a principal's rate bucket (calls and session starts).
pub const RATE_BUCKET: &str = "calls";

/// Defaults when a tenant leaves a limit out.
pub const DEFAULT_MAX_CONCURRENT: u32 = 4;
pub const DEFAULT_RATE_PER_MINUTE: u32 = 60;
/// Live Streamable HTTP sessions one tenant may hold: enough for a few
/// clients, small enough that session state cannot grow without bound.
pub const DEFAULT_MAX_SESSIONS: u32 = 16;

/// A principal's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls running at once.
    pub max_concurrent: u32,
    /// Calls (and `initialize` requests) per minute.
    pub rate_per_minute: u32,
    /// Live MCP sessions (Streamable HTTP).
    pub max_sessions: u32,
}

/// The budget guard every new session of a tenant starts with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultBudget {
    pub max_cost: f64,
    pub action: String,
    pub degrade_to_tier: Option<String>,
}

impl DefaultBudget {
    /// The guard as the session stores it (`set_budget_guard`'s shape).
    pub fn guard_json(&self) -> String {
        let mut v = serde_json::json!({ "maxCost": self.max_cost, "action": self.action });
        if let Some(tier) = &self.degrade_to_tier {
            v["degradeToTier"] = serde_json::Value::from(tier.clone());
        }
        v.to_string()
    }
}

/// Held while a call runs; releases its concurrency slot on drop.
#[derive(Debug)]
pub struct CallPermit {
    _slot: Option<OwnedSemaphorePermit>,
}

impl CallPermit {
    /// A permit of a principal without limits.
    pub(super) fn unlimited() -> Self {
        Self { _slot: None }
    }
}

/// The live state behind [`Limits`]: a semaphore and a token bucket.
#[derive(Debug)]
pub(super) struct Limiter {
    /// Who the refusal texts name (`tenant <name>`).
    name: String,
    limits: Limits,
    concurrency: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
    /// Tokens this node took from the shared bucket ahead of use (see
    /// [`lease_size`]); spent before the store is asked again.
    leased: Mutex<u32>,
}

/// Tokens taken from the shared bucket per store round trip: a tenth of a
/// second of the rate, 1 (no lease) below 1,200 calls a minute, at most 64.
/// A lease spends tokens early, never more than the bucket holds, so the
/// limit across nodes stays exact up to the tokens leased and not yet used.
fn lease_size(rate_per_minute: u32) -> u32 {
    (rate_per_minute / 600).clamp(1, 64)
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    pub(super) fn new(name: &str, limits: Limits) -> Self {
        Self {
            name: name.to_owned(),
            limits,
            concurrency: Arc::new(Semaphore::new(limits.max_concurrent as usize)),
            bucket: Mutex::new(Bucket { tokens: limits.rate_per_minute as f64, last: Instant::now() }),
            leased: Mutex::new(0),
        }
    }

    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// One concurrency slot and one rate token, or why not.
    pub(super) fn admit_call(&self) -> Result<CallPermit, String> {
        let slot = self.slot()?;
        self.take_rate_token()?;
        Ok(CallPermit { _slot: Some(slot) })
    }

    /// One concurrency slot (calls at once are counted per node).
    fn slot(&self) -> Result<OwnedSemaphorePermit, String> {
        self.concurrency.clone().try_acquire_owned().map_err(|_| {
            format!(
                "Concurrency limit reached for tenant {}: at most {} calls at a time; retry when a call finishes",
                self.name, self.limits.max_concurrent
            )
        })
    }

    /// [`Limiter::admit_call`] with the rate token taken from the state
    /// store's bucket of `principal`, which every node sharing the store
    /// draws from. A store that cannot answer falls back to this node's bucket.
    pub(super) async fn admit_call_shared(&self, store: &Store, principal: &str) -> Result<CallPermit, String> {
        let slot = self.slot()?;
        self.take_shared_token(store, principal).await?;
        Ok(CallPermit { _slot: Some(slot) })
    }

    /// One token from the principal's shared rate bucket (capacity one
    /// minute's worth, refilled continuously).
    pub(super) async fn take_shared_token(&self, store: &Store, principal: &str) -> Result<(), String> {
        let rate = self.limits.rate_per_minute;
        {
            let mut leased = self.leased.lock().unwrap_or_else(|p| p.into_inner());
            if *leased > 0 {
                *leased -= 1;
                return Ok(());
            }
        }
        let lease = lease_size(rate);
        if lease > 1 {
            // All or none; with fewer left, one at a time below.
            if store.take_tokens(principal, RATE_BUCKET, rate, f64::from(rate) / 60.0, lease).await.is_ok() {
                *self.leased.lock().unwrap_or_else(|p| p.into_inner()) += lease - 1;
                return Ok(());
            }
        }
        match store.take_token(principal, RATE_BUCKET, rate, f64::from(rate) / 60.0).await {
            Ok(()) => Ok(()),
            Err(StoreError::RateLimited(wait)) => Err(format!(
                "Rate limit exceeded for tenant {}: {} calls per minute; retry in {} s",
                self.name,
                rate,
                wait.as_secs_f64().ceil().max(1.0) as u64
            )),
            Err(e) => {
                tracing::warn!(tenant = %self.name, error = %e, "the shared rate bucket is unavailable; this node's own bucket limits the call");
                self.take_rate_token()
            }
        }
    }

    /// One token from the bucket (refilled continuously up to one minute's worth).
    pub(super) fn take_rate_token(&self) -> Result<(), String> {
        let rate = self.limits.rate_per_minute as f64;
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * rate / 60.0;
        b.tokens = (b.tokens + refill).min(rate);
        b.last = now;
        if b.tokens < 1.0 {
            let wait = ((1.0 - b.tokens) * 60.0 / rate).ceil().max(1.0);
            return Err(format!(
                "Rate limit exceeded for tenant {}: {} calls per minute; retry in {} s",
                self.name, self.limits.rate_per_minute, wait as u64
            ));
        }
        b.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_only_at_high_rates() {
        assert_eq!(lease_size(60), 1);
        assert_eq!(lease_size(1_199), 1);
        assert_eq!(lease_size(6_000), 10);
        assert_eq!(lease_size(1_000_000_000), 64);
    }

    #[test]
    fn session_starts_and_calls_share_the_rate() {
        let l = Limiter::new("a", Limits { max_concurrent: 10, rate_per_minute: 2, max_sessions: 1 });
        l.take_rate_token().unwrap();
        let _call = l.admit_call().unwrap();
        let err = l.admit_call().unwrap_err();
        assert!(err.starts_with("Rate limit exceeded for tenant a: 2 calls per minute; retry in "), "{err}");
    }
}
