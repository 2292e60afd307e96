//! The CPU budget of one call: CPU time of the thread while it runs the
//! call's code, not wall time.
//!
//! A call is an async future; its guest runs on a fiber that only executes
//! inside a poll of that future, on the polling thread. So each poll is
//! measured with the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) at its
//! start and end and the differences are summed: time the thread spends
//! descheduled, or the call spends waiting for the gateway or a WASI sleep,
//! is never counted, and a call that moves between worker threads across
//! host calls is measured on each thread it runs on. Inside a poll, the epoch
//! callback (every tick while guest code runs) compares the running total
//! with the budget and stops the guest; host work done inside a poll
//! (instantiation, the import adapters) counts too and is checked when the
//! poll ends.
//!
//! Cost: two `clock_gettime` calls per poll (a plain call is polled a few
//! times: instantiation, once per gateway round trip) plus one per epoch
//! tick of running guest code.

use super::stop::CallError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The calling thread's CPU time in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a
    // constant the kernel always supports for the calling thread.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// CPU used by one call so far, against its budget. Shared by the future
/// wrapper (which measures) and the epoch callback (which stops the guest).
#[derive(Debug)]
pub(crate) struct CpuMeter {
    budget_ns: u64,
    /// Sum over finished polls.
    used_ns: AtomicU64,
    /// Thread CPU time when the current poll started; 0 between polls.
    poll_started_ns: AtomicU64,
}

impl CpuMeter {
    pub(crate) fn new(budget: Duration) -> Self {
        Self {
            budget_ns: u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX),
            used_ns: AtomicU64::new(0),
            poll_started_ns: AtomicU64::new(0),
        }
    }

    /// CPU used so far, the running poll included (when called on the
    /// polling thread, as the epoch callback is).
    pub(crate) fn used(&self) -> Duration {
        let done = self.used_ns.load(Ordering::Relaxed);
        let started = self.poll_started_ns.load(Ordering::Relaxed);
        let running = if started == 0 { 0 } else { thread_cpu_ns().saturating_sub(started) };
        Duration::from_nanos(done.saturating_add(running))
    }

    /// Whether the call has used more than its budget.
    pub(crate) fn exhausted(&self) -> bool {
        self.used().as_nanos() > u128::from(self.budget_ns)
    }

    /// The budget, in milliseconds, for messages.
    pub(crate) fn budget_ms(&self) -> u128 {
        u128::from(self.budget_ns / 1_000_000)
    }

    fn begin_poll(&self) {
        // 0 means "not polling"; a real reading of 0 ns cannot occur after
        // the thread has run any code, but keep the sentinel unambiguous.
        self.poll_started_ns.store(thread_cpu_ns().max(1), Ordering::Relaxed);
    }

    fn end_poll(&self) {
        let started = self.poll_started_ns.swap(0, Ordering::Relaxed);
        if started != 0 {
            self.used_ns.fetch_add(thread_cpu_ns().saturating_sub(started), Ordering::Relaxed);
        }
    }
}

/// Runs `inner`, measuring each poll on `meter`; once the budget is spent
/// after a poll that did not finish, ends with [`CallError::Cpu`] (dropping
/// `inner` stops the guest).
pub(crate) struct Metered<'m, F> {
    inner: Pin<Box<F>>,
    meter: &'m CpuMeter,
}

impl<'m, F> Metered<'m, F> {
    pub(crate) fn new(inner: F, meter: &'m CpuMeter) -> Self {
        Self { inner: Box::pin(inner), meter }
    }
}

impl<T, F: Future<Output = Result<T, CallError>>> Future for Metered<'_, F> {
    type Output = Result<T, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let meter = self.meter;
        meter.begin_poll();
        let polled = self.inner.as_mut().poll(cx);
        meter.end_poll();
        match polled {
            Poll::Pending if meter.exhausted() => Poll::Ready(Err(CallError::Cpu(meter.budget_ms()))),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU on this thread until the thread CPU clock moved by `d`.
    fn burn(d: Duration) {
        let start = thread_cpu_ns();
        let mut x = 0u64;
        while thread_cpu_ns() - start < d.as_nanos() as u64 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[tokio::test]
    async fn waiting_is_not_counted_and_computing_is() {
        let meter = CpuMeter::new(Duration::from_millis(50));
        let waited = Metered::new(
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, CallError>(())
            },
            &meter,
        )
        .await;
        assert_eq!(waited, Ok(()), "200 ms of waiting must not spend a 50 ms CPU budget");
        assert!(meter.used() < Duration::from_millis(50), "{:?}", meter.used());

        let meter = CpuMeter::new(Duration::from_millis(50));
        let busy = Metered::new(
            async {
                for _ in 0..100 {
                    burn(Duration::from_millis(5));
                    tokio::task::yield_now().await;
                }
                Ok::<_, CallError>(())
            },
            &meter,
        )
        .await;
        assert_eq!(busy, Err(CallError::Cpu(50)), "CPU summed across polls must trip the budget");
    }
}
