//! A principal's spend settings (`spend_cap`, `unpriced_completion_usd`,
//! `default_max_tokens` in the tenants file, an `[[oauth.issuer]]` policy or
//! the stdio operator's environment): the cap its reservations are checked
//! against, and how the host bounds the worst case of one completion.

use super::{Period, SpendCap};
use serde::Deserialize;

/// Output tokens a completion is assumed to write when it sets neither
/// `max_tokens` nor `max_completion_tokens` (a completion that writes more
/// can overshoot its reservation; see README "Spend caps").
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// How much a principal may spend, and how a completion's worst case is bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendPolicy {
    /// The principal's cap over all its sessions, handles and nodes.
    pub cap: Option<SpendCap>,
    /// USD reserved for one completion when some model it can reach has no
    /// known price; `None`: such a completion is refused while a cap applies.
    pub unpriced_completion_usd: Option<f64>,
    /// Output tokens assumed when a completion sets no `max_tokens`.
    pub default_max_tokens: u32,
}

impl Default for SpendPolicy {
    fn default() -> Self {
        SpendPolicy { cap: None, unpriced_completion_usd: None, default_max_tokens: DEFAULT_MAX_TOKENS }
    }
}

/// `spend_cap = { amount = 25.0, period = "month" }` as written in a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendCapConfig {
    /// USD.
    pub amount: f64,
    /// `day`, `month` (UTC calendar periods) or `total`.
    pub period: String,
}

/// A spend setting that cannot be used; the text names the setting and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpendConfigError {
    #[error("{who}: spend_cap.amount must be a non-negative number of USD, got {amount}")]
    Amount { who: String, amount: f64 },
    #[error("{who}: spend_cap.period must be \"day\", \"month\" or \"total\" (UTC), got \"{period}\"")]
    Period { who: String, period: String },
    #[error("{who}: unpriced_completion_usd must be a non-negative number of USD, got {amount}")]
    Unpriced { who: String, amount: f64 },
    #[error("{who}: default_max_tokens must be at least 1")]
    MaxTokens { who: String },
    #[error(
        "{who}: a spend cap is written AMOUNT/PERIOD in USD, e.g. 25/month, 2.5/day or 100/total; got \"{text}\""
    )]
    CapText { who: String, text: String },
}

impl SpendPolicy {
    /// Checks the settings of `who` (e.g. `tenant acme`) as a file states them.
    pub fn from_settings(
        who: &str,
        cap: Option<&SpendCapConfig>,
        unpriced_completion_usd: Option<f64>,
        default_max_tokens: Option<u32>,
    ) -> Result<SpendPolicy, SpendConfigError> {
        let cap = match cap {
            None => None,
            Some(c) => {
                if !(c.amount.is_finite() && c.amount >= 0.0) {
                    return Err(SpendConfigError::Amount { who: who.to_owned(), amount: c.amount });
                }
                let period = Period::parse(c.period.trim())
                    .ok_or_else(|| SpendConfigError::Period { who: who.to_owned(), period: c.period.clone() })?;
                Some(SpendCap { amount: c.amount, period })
            }
        };
        if let Some(amount) = unpriced_completion_usd.filter(|a| !(a.is_finite() && *a >= 0.0)) {
            return Err(SpendConfigError::Unpriced { who: who.to_owned(), amount });
        }
        if default_max_tokens == Some(0) {
            return Err(SpendConfigError::MaxTokens { who: who.to_owned() });
        }
        Ok(SpendPolicy {
            cap,
            unpriced_completion_usd,
            default_max_tokens: default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        })
    }

    /// A cap written `AMOUNT/PERIOD` (`25/month`), as the environment gives it.
    pub fn parse_cap(who: &str, text: &str) -> Result<SpendCapConfig, SpendConfigError> {
        let bad = || SpendConfigError::CapText { who: who.to_owned(), text: text.to_owned() };
        let (amount, period) = text.trim().split_once('/').ok_or_else(bad)?;
        let amount: f64 = amount.trim().parse().map_err(|_| bad())?;
        Ok(SpendCapConfig { amount, period: period.trim().to_owned() })
    }

    /// Whether anything limits this principal's spend.
    pub fn has_cap(&self) -> bool {
        self.cap.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_name_the_field() {
        let cap = SpendCapConfig { amount: 25.0, period: "month".into() };
        let p = SpendPolicy::from_settings("tenant a", Some(&cap), Some(0.05), None).unwrap();
        assert_eq!(p.cap, Some(SpendCap { amount: 25.0, period: Period::Month }));
        assert_eq!(p.unpriced_completion_usd, Some(0.05));
        assert_eq!(p.default_max_tokens, DEFAULT_MAX_TOKENS);
        let week = SpendCapConfig { amount: 1.0, period: "week".into() };
        let err = SpendPolicy::from_settings("tenant a", Some(&week), None, None).unwrap_err().to_string();
        assert!(err.starts_with("tenant a: spend_cap.period must be") && err.contains("\"week\""), "{err}");
        let negative = SpendCapConfig { amount: -1.0, period: "day".into() };
        let err = SpendPolicy::from_settings("tenant a", Some(&negative), None, None).unwrap_err().to_string();
        assert!(err.contains("spend_cap.amount"), "{err}");
        assert!(SpendPolicy::from_settings("x", None, Some(f64::NAN), None).unwrap_err().to_string().contains("unpriced_completion_usd"));
        assert!(SpendPolicy::from_settings("x", None, None, Some(0)).unwrap_err().to_string().contains("default_max_tokens"));
        assert_eq!(SpendPolicy::parse_cap("x", " 2.5 / day ").unwrap(), SpendCapConfig { amount: 2.5, period: "day".into() });
        let err = SpendPolicy::parse_cap("OMNIROUTE_MCP_SPEND_CAP", "25 USD").unwrap_err().to_string();
        assert!(err.starts_with("OMNIROUTE_MCP_SPEND_CAP: a spend cap is written AMOUNT/PERIOD"), "{err}");
    }
}
