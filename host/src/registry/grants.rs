//! The operator's grants for plugins (`grants.toml`): a plugin gets at most
//! the scopes granted to it here, whatever its manifest requests.
//!
//! ```toml
//! [tools]
//! rank_combos = ["read:combos"]
//! provider_digest = ["read:*"]
//! ```

use crate::capability::{Grants, Scope};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Parsed grants, or why the file could not be used (then nothing is granted).
#[derive(Debug, Clone, Default)]
pub struct PluginGrants {
    path: PathBuf,
    tools: BTreeMap<String, Grants>,
    /// Set when the file exists but cannot be used: every plugin then gets no scope.
    problem: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsFile {
    #[serde(default)]
    tools: BTreeMap<String, Vec<String>>,
}

/// The scope split for one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Requested and granted: what the plugin gets.
    pub effective: Vec<Scope>,
    /// Requested but not granted: withheld.
    pub withheld: Vec<Scope>,
}

impl PluginGrants {
    /// Reads `path`. A missing file grants nothing (silently: a folder of
    /// plugins without grants is a valid, locked-down setup); an unusable one
    /// grants nothing and says why.
    pub fn load(path: &Path) -> Self {
        let mut grants = PluginGrants { path: path.to_path_buf(), ..Default::default() };
        match std::fs::read_to_string(path) {
            Ok(text) => match parse(&text) {
                Ok(tools) => grants.tools = tools,
                Err(e) => grants.problem = Some(format!("{}: {e}; no plugin gets any scope until it is fixed", path.display())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => grants.problem = Some(format!("cannot read {}: {e}; no plugin gets any scope", path.display())),
        }
        grants
    }

    /// Where the grants come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the file could not be used, if it could not.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Splits what `tool` requests into granted and withheld scopes.
    pub fn split(&self, tool: &str, requested: &[Scope]) -> Split {
        let granted = self.tools.get(tool);
        let (effective, withheld) = requested
            .iter()
            .copied()
            .partition(|s| granted.is_some_and(|g| g.allows(*s)));
        Split { effective, withheld }
    }

    /// The warning for withheld scopes, naming the line to add.
    pub fn withheld_warning(&self, tool: &str, split: &Split) -> Option<String> {
        if split.withheld.is_empty() {
            return None;
        }
        let all: Vec<&str> = split.effective.iter().chain(&split.withheld).map(|s| s.as_str()).collect();
        let withheld: Vec<&str> = split.withheld.iter().map(|s| s.as_str()).collect();
        Some(format!(
            "plugin {tool} requests {} but the operator has not granted it; the scope is withheld (to grant it, add `{tool} = [{}]` under [tools] in {})",
            withheld.join(", "),
            all.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "),
            self.path.display()
        ))
    }
}

/// Parses and validates the file: every pattern must be able to match a scope.
fn parse(text: &str) -> Result<BTreeMap<String, Grants>, String> {
    let file: GrantsFile = toml::from_str(text).map_err(|e| format!("not a valid grants file: {e}"))?;
    let mut out = BTreeMap::new();
    for (tool, patterns) in file.tools {
        let grants = Grants::from_checked_patterns(patterns.iter().map(String::as_str))
            .map_err(|e| format!("[tools] {tool}: {e}"))?;
        out.insert(tool, grants);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(text: &str) -> PluginGrants {
        PluginGrants { path: "grants.toml".into(), tools: parse(text).unwrap(), problem: None }
    }

    #[test]
    fn effective_scopes_are_requested_and_granted() {
        let g = grants("[tools]\nswitcher = [\"read:combos\"]\nreader = [\"read:*\"]\n");
        let requested = [Scope::ReadCombos, Scope::WriteCombos];
        let split = g.split("switcher", &requested);
        assert_eq!(split.effective, vec![Scope::ReadCombos]);
        assert_eq!(split.withheld, vec![Scope::WriteCombos]);
        let warning = g.withheld_warning("switcher", &split).unwrap();
        assert!(warning.contains("switcher = [\"read:combos\", \"write:combos\"]"), "{warning}");
        assert_eq!(g.split("reader", &requested).effective, vec![Scope::ReadCombos]);
        // A plugin the file does not name gets nothing.
        assert_eq!(g.split("stranger", &requested).effective, vec![]);
        assert!(g.withheld_warning("reader", &g.split("reader", &[Scope::ReadHealth])).is_none());
    }

    #[test]
    fn refuses_patterns_that_match_nothing() {
        for bad in ["[tools]\nx = [\"read:everything\"]", "[tools]\nx = [\"admin:*\"]", "[tool]\nx = []", "[tools]\nx = \"read:health\""] {
            assert!(parse(bad).is_err(), "accepted {bad}");
        }
        let err = parse("[tools]\nx = [\"read:al\"]").unwrap_err();
        assert!(err.contains("[tools] x") && err.contains("read:health"), "{err}");
    }

    #[test]
    fn a_missing_file_grants_nothing_quietly_and_a_broken_one_says_so() {
        let dir = std::env::temp_dir().join(format!("omniroute-mcp-grants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = PluginGrants::load(&dir.join("none.toml"));
        assert!(missing.problem().is_none());
        assert!(missing.split("x", &[Scope::ReadHealth]).effective.is_empty());
        std::fs::write(dir.join("broken.toml"), "[tools\n").unwrap();
        let broken = PluginGrants::load(&dir.join("broken.toml"));
        assert!(broken.problem().unwrap().contains("no plugin gets any scope"));
    }
}
