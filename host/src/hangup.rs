//! SIGHUP as "reload now", on every platform: the plugin folder and the
//! tenants file are reloaded on it. Windows has no SIGHUP, so there it never
//! fires (both are still polled for changes).

/// A listener for SIGHUP.
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Starts listening. `what` names what a SIGHUP reloads, for the warning
    /// when the signal cannot be listened for.
    pub fn listen(what: &str) -> Hangup {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| tracing::warn!("cannot listen for SIGHUP ({e}); {what} is still reloaded when it changes"))
                .ok();
            Hangup { signal }
        }
        #[cfg(not(unix))]
        {
            let _ = what;
            Hangup {}
        }
    }

    /// Resolves at the next SIGHUP; never where there is none.
    pub async fn received(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut()
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}
