//! Completions that wait for the test: with [`FakeGateway::hold_completions`](super::FakeGateway::hold_completions)
//! every `POST /v1/chat/completions` is recorded, then waits until the test releases it, and
//! the hold counts what arrived, what was answered and what the server gave up on (the
//! connection closed, or the request future was dropped, while it was held).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Shared between the gateway's handler and the test's [`CompletionHold`].
pub(crate) struct HoldState {
    arrived: AtomicUsize,
    answered: AtomicUsize,
    abandoned: AtomicUsize,
    releases: Semaphore,
}

impl HoldState {
    pub(crate) fn new() -> Self {
        Self {
            arrived: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            abandoned: AtomicUsize::new(0),
            releases: Semaphore::new(0),
        }
    }

    /// Counts the request and waits for a release. If the connection goes away first, the
    /// handler's future is dropped here and the request counts as abandoned.
    pub(crate) async fn wait_for_release(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let mut pending = Abandoned(Some(&self.abandoned));
        if let Ok(permit) = self.releases.acquire().await {
            permit.forget();
        }
        pending.0 = None;
        self.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts an abandoned request unless disarmed.
struct Abandoned<'a>(Option<&'a AtomicUsize>);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(counter) = self.0 {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The test's side of a hold: counts and releases.
#[derive(Clone)]
pub struct CompletionHold {
    pub(crate) state: Arc<HoldState>,
}

impl CompletionHold {
    /// Completion requests received so far (held, answered or abandoned).
    pub fn arrived(&self) -> usize {
        self.state.arrived.load(Ordering::SeqCst)
    }

    /// Completion requests released and answered.
    pub fn answered(&self) -> usize {
        self.state.answered.load(Ordering::SeqCst)
    }

    /// Completion requests whose connection closed while they were held.
    pub fn abandoned(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    /// Lets `n` more completions (held now or arriving later) be answered.
    pub fn release(&self, n: usize) {
        self.state.releases.add_permits(n);
    }

    /// Lets every completion through from now on.
    pub fn release_all(&self) {
        self.state.releases.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Waits until `count()` reaches `n`; panics with `what` after `limit`.
    async fn wait_until(&self, what: &str, n: usize, limit: Duration, count: impl Fn(&Self) -> usize) {
        let start = Instant::now();
        while count(self) < n {
            assert!(start.elapsed() < limit, "waited {limit:?} for {n} completions {what}; {} so far", count(self));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `n` completions have arrived.
    pub async fn wait_for_arrived(&self, n: usize, limit: Duration) {
        self.wait_until("to arrive", n, limit, Self::arrived).await;
    }

    /// Waits until `n` completions have been abandoned by the server.
    pub async fn wait_for_abandoned(&self, n: usize, limit: Duration) {
        self.wait_until("to be abandoned", n, limit, Self::abandoned).await;
    }
}

/// The name of a combo of six model steps that [`held_six_step_gateway`] adds.
pub const SIX_STEPS: &str = "six-steps";

/// The combos fixture plus [`SIX_STEPS`].
fn combos_with_six_steps() -> serde_json::Value {
    let mut body = super::FakeGateway::fixture("combos-populated.json");
    let models: Vec<serde_json::Value> = (1..=6)
        .map(|i| serde_json::json!({"id": format!("six-{i}"), "kind": "model", "model": format!("mock/model-{i}"), "providerId": "mock", "weight": 0}))
        .collect();
    body["combos"].as_array_mut().expect("a combos array").push(serde_json::json!({
        "name": SIX_STEPS, "id": "6b9d0c1e-0000-4000-8000-000000000006", "models": models, "strategy": "priority",
        "config": {}, "isHidden": false, "sortOrder": 3, "version": 1,
        "createdAt": "2026-11-25T22:36:03.518Z", "updatedAt": "2026-11-25T22:36:03.518Z",
    }));
    body
}

/// A fake gateway serving [`SIX_STEPS`] whose completions are held: the cancellation and
/// task tests drive `test_combo` through it.
pub fn held_six_step_gateway() -> (super::FakeGateway, CompletionHold) {
    let gateway = super::FakeGateway::start();
    gateway.set_override("GET", "/api/combos", super::Override::json(200, combos_with_six_steps()));
    let hold = gateway.hold_completions();
    (gateway, hold)
}
