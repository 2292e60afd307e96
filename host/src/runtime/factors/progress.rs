//! The `progress` import: progress reports of one call, bounded.
//!
//! A guest may call `progress.report` as often as it likes; what reaches the
//! client is bounded per call. The sink queues at most [`QUEUE`] reports
//! (when full, a new report replaces the newest queued one, so the latest
//! state is never lost) with messages cut to [`MAX_MESSAGE_CHARS`]; a
//! forwarder task sends them in order, in bursts of at most [`BURST`] and
//! otherwise one per [`MIN_INTERVAL`], at most [`MAX_NOTIFICATIONS`] in all,
//! and ends with the call once the queue is sent. Host reports (the labels
//! of `send-all-labelled`) take the same path.

use crate::runtime::bindings::progress;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Receives progress reports: (done, total, message). Cheap; never blocks.
pub type ProgressSink = Arc<dyn Fn(f64, Option<f64>, Option<String>) + Send + Sync>;

/// Least time between two notifications of one call, beyond a burst.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);
/// Notifications sent back to back before the interval applies (a
/// `test_combo` of up to this many steps reports every step).
pub const BURST: u32 = 16;
/// Reports waiting to be sent; beyond it, the newest is replaced.
pub const QUEUE: usize = 16;
/// Most notifications one call sends.
pub const MAX_NOTIFICATIONS: u32 = 256;
/// Longest message, in characters; longer ones are cut and end with `…`.
pub const MAX_MESSAGE_CHARS: usize = 256;

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressReport {
    pub done: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
}

/// What the sink and the forwarder share.
#[derive(Default)]
struct Shared {
    state: Mutex<Queue>,
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    reports: VecDeque<ProgressReport>,
    /// Every sink clone is gone: the call is over.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        super::lock(&self.state)
    }

    fn push(&self, report: ProgressReport) {
        let mut queue = self.lock();
        if queue.reports.len() >= QUEUE {
            queue.reports.pop_back();
        }
        queue.reports.push_back(report);
        drop(queue);
        self.wake.notify_one();
    }

    /// The next report, or `None` once the call is over and all are sent.
    async fn next(&self) -> Option<ProgressReport> {
        loop {
            {
                let mut queue = self.lock();
                if let Some(report) = queue.reports.pop_front() {
                    return Some(report);
                }
                if queue.closed {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    fn closed(&self) -> bool {
        self.lock().closed
    }
}

/// Marks the queue closed when the last sink clone is dropped.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

/// A sink for one call and the task that forwards what it receives with
/// `send` (which returns `false` once the client is gone). The task ends
/// after every clone of the sink is dropped (with the call) and the queued
/// reports are sent.
pub fn forwarder<S, F>(mut send: S) -> (ProgressSink, tokio::task::JoinHandle<()>)
where
    S: FnMut(ProgressReport) -> F + Send + 'static,
    F: Future<Output = bool> + Send,
{
    let shared = Arc::new(Shared::default());
    let queue = shared.clone();
    let task = tokio::spawn(async move {
        let mut sent = 0u32;
        // A token bucket: `BURST` at once, one more per `MIN_INTERVAL`.
        let mut tokens = f64::from(BURST);
        let mut refilled = tokio::time::Instant::now();
        while let Some(report) = queue.next().await {
            let now = tokio::time::Instant::now();
            tokens = (tokens + now.duration_since(refilled).as_secs_f64() / MIN_INTERVAL.as_secs_f64()).min(f64::from(BURST));
            refilled = now;
            if tokens < 1.0 && !queue.closed() {
                tokio::time::sleep(MIN_INTERVAL.mul_f64(1.0 - tokens)).await;
                tokens = 1.0;
                refilled = tokio::time::Instant::now();
            }
            if !send(report).await {
                break;
            }
            tokens = (tokens - 1.0).max(0.0);
            sent += 1;
            if sent >= MAX_NOTIFICATIONS {
                tracing::debug!(sent, "progress notification cap reached; later reports are dropped");
                break;
            }
        }
    });
    let closer = CloseOnDrop(shared.clone());
    let sink: ProgressSink = Arc::new(move |done, total, message: Option<String>| {
        let _keep_open = &closer;
        shared.push(ProgressReport { done, total, message: message.map(|m| cut(&m)) });
    });
    (sink, task)
}

/// `text` cut to [`MAX_MESSAGE_CHARS`] characters.
pub fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut short = text[..end].to_owned();
            short.pop();
            short.push('…');
            short
        }
    }
}

/// The per-call state of the `progress` import.
pub(crate) struct ProgressState {
    pub(crate) sink: Option<ProgressSink>,
}

impl progress::Host for ProgressState {
    async fn report(&mut self, done: f64, total: Option<f64>, message: Option<String>) {
        if let Some(sink) = &self.sink {
            sink(done, total, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (Arc<Mutex<Vec<ProgressReport>>>, ProgressSink, tokio::task::JoinHandle<()>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let (sink, task) = forwarder(move |r| {
            into.lock().unwrap().push(r);
            async { true }
        });
        (seen, sink, task)
    }

    #[tokio::test]
    async fn a_flood_is_bounded_in_order_and_ends_with_the_call() {
        let (seen, sink, task) = recorder();
        let long = "x".repeat(100_000);
        for i in 0..20_000 {
            sink(f64::from(i), Some(20_000.0), Some(long.clone()));
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        sink(20_000.0, Some(20_000.0), Some("done".into()));
        drop(sink);
        task.await.unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen.len() <= MAX_NOTIFICATIONS as usize, "{} notifications", seen.len());
        assert!(seen.len() > BURST as usize, "progress keeps flowing after a burst: {}", seen.len());
        assert!(seen.iter().all(|r| r.message.as_ref().is_none_or(|m| m.chars().count() <= MAX_MESSAGE_CHARS)));
        assert!(seen.windows(2).all(|w| w[0].done < w[1].done), "in order");
        assert_eq!(seen.last().map(|r| r.done), Some(20_000.0), "the last report is sent");
    }

    #[tokio::test]
    async fn a_few_reports_are_all_delivered_before_the_forwarder_ends() {
        let (seen, sink, task) = recorder();
        sink(1.0, Some(3.0), Some("one".into()));
        sink(2.0, Some(3.0), None);
        sink(3.0, Some(3.0), Some("three".into()));
        drop(sink);
        task.await.unwrap();
        let done: Vec<f64> = seen.lock().unwrap().iter().map(|r| r.done).collect();
        assert_eq!(done, [1.0, 2.0, 3.0]);
    }

    #[tokio::test]
    async fn a_full_queue_keeps_the_newest_report() {
        let (seen, sink, task) = recorder();
        for i in 0..1000 {
            sink(f64::from(i), None, None);
        }
        drop(sink);
        task.await.unwrap();
        let done: Vec<f64> = seen.lock().unwrap().iter().map(|r| r.done).collect();
        assert_eq!(done.len(), QUEUE, "{done:?}");
        assert_eq!(done.last(), Some(&999.0), "{done:?}");
    }

    #[test]
    fn messages_are_cut_on_character_boundaries() {
        assert_eq!(cut("short"), "short");
        let cut_text = cut(&"é".repeat(1000));
        assert_eq!(cut_text.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut_text.ends_with('…'));
    }
}
