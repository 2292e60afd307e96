//! The TOML manifest beside every tool component, built-in or plugin.

use crate::capability::Scope;
use serde::Deserialize;
use std::time::Duration;

/// `<tool>.toml`: what the operator (or the build) vouches for.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Tool name; `describe()` must report the same.
    pub name: String,
    pub version: String,
    /// File name of the component, in the same folder as the manifest.
    pub component: String,
    /// Lowercase hex SHA-256 of the component file; loading refuses a mismatch.
    pub sha256: String,
    /// Scopes the tool needs; `describe()` must declare the same set.
    pub scopes: Vec<String>,
    #[serde(default)]
    pub limits: ManifestLimits,
    /// `tasks = true`: the tool may run as an MCP task (the tasks extension,
    /// `io.modelcontextprotocol/tasks`) when the client declares support, so
    /// a long call can be polled, read later and cancelled (`crate::tasks`).
    #[serde(default)]
    pub tasks: bool,
}

/// Optional per-tool limits; they can only tighten the server's.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestLimits {
    /// Wall-clock deadline of a call.
    pub deadline_ms: Option<u64>,
    /// CPU time the guest may use in a call.
    pub cpu_ms: Option<u64>,
    /// Memory over all the component's memories and tables.
    pub memory_mib: Option<usize>,
    pub gateway_requests: Option<u32>,
}

/// A manifest that cannot be used, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid TOML for a tool manifest: {0}")]
    Parse(String),
    #[error("`component` must be a file name in the manifest's folder, got {0:?}")]
    ComponentPath(String),
    #[error("`sha256` must be 64 lowercase hex characters, got {0:?}")]
    Sha256(String),
    #[error("`name` must be 1-64 characters of a-z, 0-9, '_' or '-', got {0:?}")]
    Name(String),
    #[error("in `scopes`: {0}")]
    Scope(#[from] crate::capability::ScopeError),
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        if !valid_tool_name(&manifest.name) {
            return Err(ManifestError::Name(manifest.name));
        }
        let c = &manifest.component;
        if c.is_empty() || c.contains(['/', '\\']) || c == "." || c == ".." || c.starts_with('.') {
            return Err(ManifestError::ComponentPath(c.clone()));
        }
        let h = &manifest.sha256;
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ManifestError::Sha256(h.clone()));
        }
        manifest.parsed_scopes()?;
        Ok(manifest)
    }

    /// The scopes as [`Scope`]s.
    pub fn parsed_scopes(&self) -> Result<Vec<Scope>, crate::capability::ScopeError> {
        self.scopes.iter().map(|s| s.parse()).collect()
    }

    /// The per-tool deadline, if any.
    pub fn deadline(&self) -> Option<Duration> {
        self.limits.deadline_ms.map(Duration::from_millis)
    }

    /// How this manifest tightens the server's limits.
    pub fn tightening(&self) -> crate::runtime::Tightening {
        crate::runtime::Tightening {
            wall: self.deadline(),
            cpu: self.limits.cpu_ms.map(Duration::from_millis),
            memory_bytes: self.limits.memory_mib.map(|m| m.saturating_mul(1024 * 1024)),
            gateway_requests: self.limits.gateway_requests,
        }
    }
}

/// MCP tool names: short, plain, safe in logs and file names.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "omniroute_get_health"
version = "0.1.0"
component = "omniroute_get_health.wasm"
sha256 = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
scopes = ["read:health"]
[limits]
deadline_ms = 2000
cpu_ms = 500
"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.parsed_scopes().unwrap(), vec![Scope::ReadHealth]);
        assert_eq!(m.deadline(), Some(Duration::from_secs(2)));
        assert_eq!(m.tightening().cpu, Some(Duration::from_millis(500)));
    }

    #[test]
    fn refuses_bad_fields() {
        let cases = [
            ("component = \"omniroute_get_health.wasm\"", "component = \"../x.wasm\""),
            ("component = \"omniroute_get_health.wasm\"", "component = \"/etc/x.wasm\""),
            ("sha256 = \"44136f", "sha256 = \"44136F"),
            ("scopes = [\"read:health\"]", "scopes = [\"read:all\"]"),
            ("name = \"omniroute_get_health\"", "name = \"Bad Name\""),
            ("deadline_ms = 2000", "deadline_ms = 2000\nsurprise = 1"),
        ];
        for (from, to) in cases {
            let text = GOOD.replace(from, to);
            assert!(Manifest::parse(&text).is_err(), "accepted: {to}");
        }
    }
}
