//! The CPU budget of one call: CPU time of the thread while it runs the
//! call's code, not wall time.
//!
//! A call is an async future; its guest runs on a fiber that only executes
//! inside a poll of that future, on the polling thread. So only polls are
//! measured, each on the thread that runs it, and summed: time the call
//! spends waiting for the gateway or a WASI sleep (between polls) is never
//! counted, and a call that moves between worker threads across host calls
//! is measured on each thread it runs on. Inside a poll, the epoch callback
//! (every tick while guest code runs) compares the running total with the
//! budget and stops the guest; host work done inside a poll (instantiation,
//! the import adapters) counts too and is checked when the poll ends.
//!
//! Two clocks, for cost: reading the thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`) is a system call (about 0.5-1 µs here), and
//! a call is polled once per gateway round trip (2-16 polls for the
//! built-ins on a real gateway). So the first [`precise_after`] of a call's
//! running time (a twentieth of its budget, at most 100 ms) is measured with
//! the monotonic clock (a vDSO read, about 25 ns), which also counts time the
//! thread was descheduled *inside* a poll; from then on the thread's CPU
//! clock is used, switching at the next epoch tick if need be. A call can
//! therefore be charged at most that much (plus a tick) more than the CPU it
//! used, never less, and a typical call never pays for a system call.

use super::stop::CallError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The calling thread's CPU time in nanoseconds.
#[cfg(unix)]
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

/// The calling thread's CPU time (user + kernel) in nanoseconds, from
/// `GetThreadTimes`. Windows advances it per scheduler tick (about 15.6 ms),
/// so past the monotonic-clock part a call is charged in whole ticks.
#[cfg(windows)]
fn thread_cpu_ns() -> u64 {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::{GetCurrentThread, GetThreadTimes};
    let zero = || FILETIME { dwLowDateTime: 0, dwHighDateTime: 0 };
    let (mut created, mut exited, mut kernel, mut user) = (zero(), zero(), zero(), zero());
    // SAFETY: GetCurrentThread returns a pseudo-handle valid in this thread;
    // the four FILETIMEs are valid and writable.
    let ok = unsafe { GetThreadTimes(GetCurrentThread(), &mut created, &mut exited, &mut kernel, &mut user) };
    if ok == 0 {
        return 0;
    }
    let hundreds = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    hundreds(kernel).saturating_add(hundreds(user)).saturating_mul(100)
}

/// How much of a call's running time is measured with the monotonic clock.
pub(crate) fn precise_after(budget: Duration) -> Duration {
    (budget / 20).min(Duration::from_millis(100))
}

/// Which clock the running segment is measured with.
const IDLE: u64 = 0;
const WALL: u64 = 1;
const CPU: u64 = 2;

/// CPU used by one call so far, against its budget. Shared by the future
/// wrapper (which measures) and the epoch callback (which stops the guest);
/// both run on the polling thread.
#[derive(Debug)]
pub(crate) struct CpuMeter {
    budget_ns: u64,
    precise_after_ns: u64,
    /// Base of the monotonic readings.
    epoch: Instant,
    /// Sum over finished segments.
    used_ns: AtomicU64,
    /// The running segment: its clock ([`IDLE`] between polls) and start.
    clock: AtomicU64,
    started_ns: AtomicU64,
    /// Polls so far.
    polls: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl CpuMeter {
    pub(crate) fn new(budget: Duration) -> Self {
        Self {
            budget_ns: nanos(budget),
            precise_after_ns: nanos(precise_after(budget)),
            epoch: Instant::now(),
            used_ns: AtomicU64::new(0),
            clock: AtomicU64::new(IDLE),
            started_ns: AtomicU64::new(0),
            polls: AtomicU64::new(0),
        }
    }

    fn read(&self, clock: u64) -> u64 {
        match clock {
            WALL => nanos(self.epoch.elapsed()),
            CPU => thread_cpu_ns(),
            _ => 0,
        }
    }

    /// Time charged to the running segment so far.
    fn running_ns(&self) -> u64 {
        let clock = self.clock.load(Ordering::Relaxed);
        if clock == IDLE {
            return 0;
        }
        self.read(clock).saturating_sub(self.started_ns.load(Ordering::Relaxed))
    }

    /// CPU used so far, the running poll included (when called on the
    /// polling thread, as the epoch callback is).
    pub(crate) fn used(&self) -> Duration {
        Duration::from_nanos(self.used_ns.load(Ordering::Relaxed).saturating_add(self.running_ns()))
    }

    /// Whether the call has used more than its budget. Also moves the
    /// running segment to the CPU clock once the cheap part is used up.
    pub(crate) fn exhausted(&self) -> bool {
        let used = nanos(self.used());
        if self.clock.load(Ordering::Relaxed) == WALL && used >= self.precise_after_ns {
            self.end_segment();
            self.start_segment(CPU);
        }
        used > self.budget_ns
    }

    /// The budget, in milliseconds, for messages.
    pub(crate) fn budget_ms(&self) -> u128 {
        u128::from(self.budget_ns / 1_000_000)
    }

    /// How many times the call's future was polled.
    pub(crate) fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    fn start_segment(&self, clock: u64) {
        self.started_ns.store(self.read(clock), Ordering::Relaxed);
        self.clock.store(clock, Ordering::Relaxed);
    }

    fn end_segment(&self) {
        let running = self.running_ns();
        self.clock.store(IDLE, Ordering::Relaxed);
        self.used_ns.fetch_add(running, Ordering::Relaxed);
    }

    fn begin_poll(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        let cheap = self.used_ns.load(Ordering::Relaxed) < self.precise_after_ns;
        self.start_segment(if cheap { WALL } else { CPU });
    }

    fn end_poll(&self) {
        self.end_segment();
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

    /// Past the cheap part, time the thread is not running the call's code
    /// inside a poll is not charged: a poll that mostly sleeps (blocking the
    /// thread, as a descheduled thread would be) costs only its computing.
    #[test]
    fn after_the_cheap_part_only_cpu_is_charged() {
        let meter = CpuMeter::new(Duration::from_secs(2));
        let cheap = precise_after(Duration::from_secs(2));
        assert_eq!(cheap, Duration::from_millis(100));
        meter.begin_poll();
        // Guest code with the epoch callback's checks every few milliseconds.
        while meter.used() < cheap {
            burn(Duration::from_millis(2));
            assert!(!meter.exhausted());
        }
        std::thread::sleep(Duration::from_millis(300));
        burn(Duration::from_millis(10));
        meter.end_poll();
        let used = meter.used();
        assert!(used >= cheap + Duration::from_millis(10), "{used:?}");
        assert!(used < cheap + Duration::from_millis(200), "the 300 ms asleep must not be charged: {used:?}");
    }
}
