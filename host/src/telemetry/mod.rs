//! Logs: on stderr (in stdio mode stdout carries JSON-RPC only), through a
//! writer that never blocks the server and never writes a line longer than
//! [`stderr::MAX_LINE_BYTES`].

pub mod stderr;

pub use stderr::{LogGuard, StderrLog};

/// Sends logs to stderr, never stdout, filtered by `filter` (tracing syntax).
/// Keep the guard until exit: dropping it flushes what is queued.
pub fn init_logging(filter: &str) -> Option<LogGuard> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match StderrLog::start() {
        Ok((writer, guard)) => {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi).try_init();
            Some(guard)
        }
        Err(e) => {
            // No thread for the queue: write directly (may block on a full pipe).
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
            tracing::warn!("cannot start the stderr log thread ({e}); logging directly to stderr");
            None
        }
    }
}
