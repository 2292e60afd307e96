use std::time::Duration;

/// Why a gateway request produced no response. Each maps to one WIT
/// `gateway.error` case; the texts are safe to show an agent (no credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Denied(String),
    #[error("no answer within {0} s")]
    Timeout(u32),
    #[error("{0}")]
    Unreachable(String),
    #[error("response body larger than the cap")]
    TooLarge,
    #[error("{0}")]
    Invalid(String),
    /// The host could not authenticate; the complete message for the agent.
    #[error("{0}")]
    Auth(String),
    /// The host refused to send it (budget guard); the complete message.
    #[error("{0}")]
    Refused(String),
    #[error("HTTP client could not be built: {0}")]
    Client(String),
}

impl GatewayError {
    pub(crate) fn from_reqwest(e: &reqwest::Error, timeout: Duration) -> Self {
        if e.is_timeout() {
            return GatewayError::Timeout(timeout.as_secs().max(1) as u32);
        }
        // Walk to the innermost cause: "Connection refused (os error 111)" is
        // more useful to an agent than reqwest's "error sending request".
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        // reqwest includes the URL in some messages; the base URL is not a
        // secret, but keep the text short and stable.
        GatewayError::Unreachable(reason)
    }
}
