//! The `progress` import: progress reports of one call, bounded.
//!
//! A guest may call `progress.report` as often as it likes; what reaches the
//! client is coalesced and capped per call. The sink keeps only the newest
//! report (a message cut to [`MAX_MESSAGE_CHARS`]); a forwarder task sends
//! the newest one at most every [`MIN_INTERVAL`], at most [`MAX_NOTIFICATIONS`]
//! in all, and ends with the call after sending the last report it holds.
//! Host reports (the labels of `send-all-labelled`) take the same path.

use crate::runtime::bindings::progress;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Receives progress reports: (done, total, message). Cheap; never blocks.
pub type ProgressSink = Arc<dyn Fn(f64, Option<f64>, Option<String>) + Send + Sync>;

/// Least time between two notifications of one call.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);
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

/// The newest report and its sequence number (0: none yet).
type Latest = (u64, Option<ProgressReport>);

/// A sink for one call and the task that forwards what it receives with
/// `send` (which returns `false` once the client is gone). The task ends
/// after every clone of the sink is dropped, i.e. with the call.
pub fn forwarder<S, F>(mut send: S) -> (ProgressSink, tokio::task::JoinHandle<()>)
where
    S: FnMut(ProgressReport) -> F + Send + 'static,
    F: Future<Output = bool> + Send,
{
    let (tx, mut rx) = watch::channel::<Latest>((0, None));
    let task = tokio::spawn(async move {
        let mut sent = 0u32;
        let mut next_slot = tokio::time::Instant::now();
        // `changed` reports a report not yet forwarded even after the sink is
        // gone, so the last one is always sent before the task ends.
        while rx.changed().await.is_ok() {
            tokio::time::sleep_until(next_slot).await;
            let Some(report) = rx.borrow_and_update().1.clone() else { continue };
            if !send(report).await {
                break;
            }
            sent += 1;
            if sent >= MAX_NOTIFICATIONS {
                tracing::debug!(sent, "progress notification cap reached; later reports are dropped");
                break;
            }
            next_slot = tokio::time::Instant::now() + MIN_INTERVAL;
        }
    });
    let sink: ProgressSink = Arc::new(move |done, total, message: Option<String>| {
        let report = ProgressReport { done, total, message: message.map(|m| cut(&m)) };
        tx.send_modify(|(seq, latest)| {
            *seq += 1;
            *latest = Some(report);
        });
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
    use std::sync::Mutex;

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
    async fn a_flood_is_coalesced_capped_and_ends_with_the_call() {
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
        assert!(seen.len() >= 2, "some progress must get through: {}", seen.len());
        assert!(seen.iter().all(|r| r.message.as_ref().is_none_or(|m| m.chars().count() <= MAX_MESSAGE_CHARS)));
        assert!(seen.windows(2).all(|w| w[0].done < w[1].done), "in order, newest wins");
    }

    #[tokio::test]
    async fn the_last_report_is_delivered_before_the_forwarder_ends() {
        let (seen, sink, task) = recorder();
        sink(1.0, Some(3.0), Some("one".into()));
        sink(2.0, Some(3.0), None);
        sink(3.0, Some(3.0), Some("three".into()));
        drop(sink);
        task.await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last().map(|r| r.done), Some(3.0), "{seen:?}");
        assert_eq!(seen.len(), 1, "three reports before the first slot coalesce into one: {seen:?}");
    }

    #[test]
    fn messages_are_cut_on_character_boundaries() {
        assert_eq!(cut("short"), "short");
        let cut_text = cut(&"é".repeat(1000));
        assert_eq!(cut_text.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut_text.ends_with('…'));
    }
}
