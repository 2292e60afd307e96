//! Server settings, from flags and the environment (flags win). Secrets
//! (`OMNIROUTE_API_KEY`) come from the environment only, never from argv,
//! where other local users could read them.

use crate::auth::PrincipalId;
use crate::capability::Grants;
use crate::runtime::LimitPolicy;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Where the gateway is when nothing says otherwise (the original's default).
pub const DEFAULT_BASE_URL: &str = "http://localhost:20128";

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub base_url: Url,
    /// Bearer key for `/v1` routes.
    pub api_key: Option<String>,
    /// Dashboard password for management routes (docs/architecture.md#gateway-credentials).
    pub dashboard_password: Option<String>,
    /// The precompiled cache, the audit database and the state store live
    /// here (created 0700).
    pub data_dir: PathBuf,
    /// Folders of built-in tool components.
    pub tools_dirs: Vec<PathBuf>,
    pub gateway_timeout: Duration,
    pub completion_timeout: Duration,
    /// `OMNIROUTE_MCP_ENFORCE_SCOPES=true`.
    pub enforce_scopes: bool,
    /// `OMNIROUTE_MCP_SCOPES` (each pattern checked).
    pub scopes: Grants,
    /// Who the stdio operator is (`OMNIROUTE_MCP_PRINCIPAL`, default
    /// [`crate::auth::DEFAULT_OPERATOR`]): its state's namespace.
    pub operator: PrincipalId,
    /// The stdio operator's spend cap and worst-case settings
    /// (`OMNIROUTE_MCP_SPEND_CAP`, `OMNIROUTE_MCP_UNPRICED_COMPLETION_USD`,
    /// `OMNIROUTE_MCP_DEFAULT_MAX_TOKENS`).
    pub operator_spend: crate::state::SpendPolicy,
    /// Per-call bounds; each tool's are derived from them by class.
    pub limits: LimitPolicy,
    /// Precompiled component cache.
    pub cache_dir: PathBuf,
    /// The audit database; `None` means `--audit off`.
    pub audit_db: Option<PathBuf>,
    /// `--audit-url postgres://…`: the audit log on PostgreSQL instead of `audit_db`.
    pub audit_url: Option<String>,
    /// `--audit-on-failure` and `--audit-retention-days`.
    pub audit_options: crate::audit::AuditOptions,
    /// `--state-url`: PostgreSQL (or another SQLite file) for the state
    /// store; default `state.sqlite` in the data folder.
    pub state_url: Option<String>,
    /// `OMNIROUTE_API_KEY_ID`, copied into audit rows.
    pub api_key_id: Option<String>,
    /// The plugin folder and its grants (`--plugins`), if any.
    pub plugins: Option<crate::registry::PluginSource>,
    /// `serve --metrics ADDR`: where Prometheus metrics are served; `None`
    /// keeps metrics off.
    pub metrics: Option<crate::telemetry::endpoint::MetricsEndpoint>,
}

/// A setting that cannot be used, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("gateway URL {0:?} is not valid: {1}. Set OMNIROUTE_BASE_URL to e.g. http://localhost:20128")]
    BaseUrl(String, String),
    #[error("gateway timeout must be 10-30 seconds, got {0}. Fix OMNIROUTE_MCP_GATEWAY_TIMEOUT_S or --gateway-timeout")]
    GatewayTimeout(u64),
    #[error("completion timeout must be 1-3600 seconds, got {0}. Fix OMNIROUTE_MCP_COMPLETION_TIMEOUT_S or --completion-timeout")]
    CompletionTimeout(u64),
    #[error("no data directory: set OMNIROUTE_MCP_DATA_DIR or pass --data-dir")]
    NoDataDir,
    #[error("no tools folder found (looked in {0}). Build the tools with `cargo xtask build`, or pass --tools-dir / OMNIROUTE_MCP_TOOLS_DIR")]
    NoToolsDir(String),
}

/// The first non-empty of the given values, trimmed, as the original resolves
/// `OMNIROUTE_BASE_URL`, `BASE_URL`, `NEXT_PUBLIC_BASE_URL` (docs/architecture.md#configuration).
pub fn resolve_base_url(candidates: &[Option<String>]) -> Result<Url, ConfigError> {
    let raw = candidates
        .iter()
        .flatten()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .unwrap_or(DEFAULT_BASE_URL);
    let trimmed = raw.trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| ConfigError::BaseUrl(raw.to_owned(), e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::BaseUrl(raw.to_owned(), "the scheme must be http or https".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::BaseUrl(raw.to_owned(), "it has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::BaseUrl(raw.to_owned(), "it must not have a query or fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::BaseUrl(
            raw.to_owned(),
            "credentials do not belong in the URL; use OMNIROUTE_API_KEY".into(),
        ));
    }
    Ok(url)
}

/// Checks the gateway timeout range of docs/architecture.md#timeouts.
pub fn gateway_timeout(seconds: u64) -> Result<Duration, ConfigError> {
    if (10..=30).contains(&seconds) {
        Ok(Duration::from_secs(seconds))
    } else {
        Err(ConfigError::GatewayTimeout(seconds))
    }
}

/// Checks the completion timeout.
pub fn completion_timeout(seconds: u64) -> Result<Duration, ConfigError> {
    if (1..=3600).contains(&seconds) {
        Ok(Duration::from_secs(seconds))
    } else {
        Err(ConfigError::CompletionTimeout(seconds))
    }
}

/// The default data directory: the platform's user data folder.
pub fn default_data_dir() -> Result<PathBuf, ConfigError> {
    directories::ProjectDirs::from("", "", "omniroute-mcp")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or(ConfigError::NoDataDir)
}

/// Built-in tools ship beside the binary: `<exe dir>/tools`, or
/// `<exe dir>/../tools` (where `cargo xtask build` puts them for
/// `target/debug` and `target/release`).
pub fn default_tools_dirs(exe: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("tools"), dir.join("..").join("tools")];
    candidates
        .iter()
        .find(|c| c.is_dir())
        .map(|c| vec![c.clone()])
        .ok_or_else(|| {
            ConfigError::NoToolsDir(
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_resolution_follows_the_original() {
        let u = resolve_base_url(&[None, Some("  ".into()), Some("http://127.0.0.1:9/".into())]).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9/");
        assert_eq!(resolve_base_url(&[]).unwrap().as_str(), "http://localhost:20128/");
        for bad in ["ftp://x", "localhost:20128", "http://u:p@h", "http://h/?q=1", "not a url"] {
            assert!(resolve_base_url(&[Some(bad.into())]).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeout_ranges() {
        assert!(gateway_timeout(9).is_err());
        assert_eq!(gateway_timeout(15).unwrap(), Duration::from_secs(15));
        assert!(completion_timeout(0).is_err());
    }

    #[test]
    fn the_operators_spend_settings_come_from_the_environment() {
        use crate::state::{Period, SpendCap};
        let p = operator_spend(Some("25/month"), Some("0.05"), Some("1000")).unwrap();
        assert_eq!(p.cap, Some(SpendCap { amount: 25.0, period: Period::Month }));
        assert_eq!((p.unpriced_completion_usd, p.default_max_tokens), (Some(0.05), 1000));
        assert_eq!(operator_spend(None, Some(" "), None).unwrap(), crate::state::SpendPolicy::default());
        let err = operator_spend(Some("25"), None, None).unwrap_err();
        assert!(err.starts_with("OMNIROUTE_MCP_SPEND_CAP: a spend cap is written AMOUNT/PERIOD"), "{err}");
        let err = operator_spend(Some("5/week"), None, None).unwrap_err();
        assert!(err.contains("spend_cap.period must be"), "{err}");
        assert!(operator_spend(None, Some("cheap"), None).unwrap_err().starts_with("OMNIROUTE_MCP_UNPRICED_COMPLETION_USD"));
        assert!(operator_spend(None, None, Some("-1")).unwrap_err().starts_with("OMNIROUTE_MCP_DEFAULT_MAX_TOKENS"));
    }
}

/// The stdio operator's spend settings from the environment:
/// `OMNIROUTE_MCP_SPEND_CAP` (`AMOUNT/PERIOD`, e.g. `25/month`),
/// `OMNIROUTE_MCP_UNPRICED_COMPLETION_USD` and `OMNIROUTE_MCP_DEFAULT_MAX_TOKENS`.
pub fn operator_spend(
    cap: Option<&str>,
    unpriced: Option<&str>,
    max_tokens: Option<&str>,
) -> Result<crate::state::SpendPolicy, String> {
    use crate::state::SpendPolicy;
    let set = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let cap = match set(cap) {
        Some(text) => Some(SpendPolicy::parse_cap("OMNIROUTE_MCP_SPEND_CAP", &text).map_err(|e| e.to_string())?),
        None => None,
    };
    let unpriced = match set(unpriced) {
        Some(text) => Some(text.parse::<f64>().map_err(|_| {
            format!("OMNIROUTE_MCP_UNPRICED_COMPLETION_USD must be a number of USD (e.g. 0.05), got \"{text}\"")
        })?),
        None => None,
    };
    let max_tokens = match set(max_tokens) {
        Some(text) => Some(text.parse::<u32>().map_err(|_| {
            format!("OMNIROUTE_MCP_DEFAULT_MAX_TOKENS must be a whole number of tokens (e.g. 4096), got \"{text}\"")
        })?),
        None => None,
    };
    SpendPolicy::from_settings("the stdio operator (OMNIROUTE_MCP_SPEND_CAP)", cap.as_ref(), unpriced, max_tokens)
        .map_err(|e| e.to_string())
}
