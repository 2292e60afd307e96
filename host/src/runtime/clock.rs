//! The wall-clock deadline of one call: fixed for ordinary tools, extended
//! for completion tools by the rounds each batch of completions needs, never
//! past the call's ceiling. Gateway requests are sized from what is left.

use super::limits::{CallLimits, WALL_MARGIN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Left for the guest after a gateway request that used up its time, so it
/// can still report the timeout before the call's deadline stops it.
const GUEST_RESERVE_MAX: Duration = Duration::from_millis(500);

/// One call's deadline.
#[derive(Debug)]
pub(crate) struct CallClock {
    started: Instant,
    /// The deadline, in milliseconds after `started`; only grows.
    deadline_ms: AtomicU64,
    max_ms: u64,
    round: Option<Duration>,
}

impl CallClock {
    pub(crate) fn new(limits: &CallLimits) -> Self {
        Self::starting_at(Instant::now(), limits)
    }

    fn starting_at(started: Instant, limits: &CallLimits) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            started,
            deadline_ms: AtomicU64::new(ms(limits.wall)),
            max_ms: ms(limits.wall_max.max(limits.wall)),
            round: limits.completion_round,
        }
    }

    /// When the call must be over.
    pub(crate) fn deadline(&self) -> Instant {
        self.started + Duration::from_millis(self.deadline_ms.load(Ordering::Relaxed))
    }

    /// The deadline as a duration from the start, for messages.
    pub(crate) fn allowed(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.load(Ordering::Relaxed))
    }

    /// How long a gateway request may take now: what is left of the call,
    /// minus a small reserve for the guest to act on the answer.
    pub(crate) fn request_budget(&self) -> Duration {
        let left = self.deadline().saturating_duration_since(Instant::now());
        left.saturating_sub((left / 10).min(GUEST_RESERVE_MAX))
    }

    /// A batch needing `rounds` sequential completion rounds starts now:
    /// make room for them (completion tools only), up to the ceiling.
    pub(crate) fn fit_completion_rounds(&self, rounds: u32) {
        let Some(round) = self.round else { return };
        if rounds == 0 {
            return;
        }
        let wanted = self.started.elapsed() + round.saturating_mul(rounds) + WALL_MARGIN;
        let wanted_ms = u64::try_from(wanted.as_millis()).unwrap_or(u64::MAX).min(self.max_ms);
        self.deadline_ms.fetch_max(wanted_ms, Ordering::Relaxed);
    }

    /// Resolves once the (possibly moving) deadline has passed.
    pub(crate) async fn expired(&self) {
        loop {
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::limits::{DeadlineClass, LimitPolicy};

    #[test]
    fn completion_rounds_extend_only_completion_tools_and_only_to_the_ceiling() {
        let policy = LimitPolicy::default();
        let plain = CallClock::new(&policy.for_class(DeadlineClass::Gateway));
        plain.fit_completion_rounds(3);
        assert_eq!(plain.allowed(), Duration::from_secs(30));

        let completion = CallClock::new(&policy.for_class(DeadlineClass::Completion));
        assert_eq!(completion.allowed(), Duration::from_secs(135));
        completion.fit_completion_rounds(3); // e.g. test_combo, 10 steps at 4 in flight
        let allowed = completion.allowed();
        assert!(allowed >= Duration::from_secs(375) && allowed < Duration::from_secs(376), "{allowed:?}");
        completion.fit_completion_rounds(1);
        assert_eq!(completion.allowed(), allowed, "a deadline never shrinks");
        completion.fit_completion_rounds(1000);
        assert_eq!(completion.allowed(), crate::runtime::limits::MAX_CALL_WALL);
    }

    #[test]
    fn requests_get_what_is_left_minus_a_reserve() {
        let limits = LimitPolicy::default().for_class(DeadlineClass::Gateway);
        let clock = CallClock::starting_at(Instant::now() - Duration::from_secs(28), &limits);
        let budget = clock.request_budget();
        assert!(budget <= Duration::from_millis(1800), "{budget:?}");
        assert!(budget > Duration::from_millis(1000), "{budget:?}");
        let past = CallClock::starting_at(Instant::now() - Duration::from_secs(31), &limits);
        assert_eq!(past.request_budget(), Duration::ZERO);
    }
}
