//! The operator's grants for plugins (`grants.toml`): a plugin gets at most
//! the scopes granted to it here, whatever its manifest requests. A grant
//! may be pinned to one component by its sha256: another component under
//! the same name then gets nothing until the pin is updated.
//!
//! ```toml
//! [tools]
//! rank_combos = ["read:combos"]
//! provider_digest = { scopes = ["read:*"], sha256 = "9f2c…" }
//! ```

use crate::capability::{Grants, Scope};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Parsed grants, or why the file could not be used (then nothing is granted).
#[derive(Debug, Clone, Default)]
pub struct PluginGrants {
    path: PathBuf,
    tools: BTreeMap<String, Grant>,
    /// Set when the file exists but cannot be used: every plugin then gets no scope.
    problem: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsFile {
    #[serde(default)]
    tools: BTreeMap<String, GrantEntry>,
}

/// `name = [scopes]` or `name = { scopes = [...], sha256 = "..." }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum GrantEntry {
    Scopes(Vec<String>),
    Pinned(PinnedEntry),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinnedEntry {
    scopes: Vec<String>,
    sha256: String,
}

/// What one plugin name is granted, and for which component if pinned.
#[derive(Debug, Clone, Default)]
struct Grant {
    grants: Grants,
    sha256: Option<String>,
}

/// The scope split for one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Requested and granted: what the plugin gets.
    pub effective: Vec<Scope>,
    /// Requested but not granted: withheld.
    pub withheld: Vec<Scope>,
    /// The grant is pinned to another component (this sha256): nothing is granted.
    pub pinned_to_other: Option<String>,
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

    /// Splits what `tool` (component `sha256`) requests into granted and
    /// withheld scopes.
    pub fn split(&self, tool: &str, sha256: &str, requested: &[Scope]) -> Split {
        let grant = self.tools.get(tool);
        let pinned_to_other = grant.and_then(|g| g.sha256.clone()).filter(|pin| pin != sha256);
        let granted = grant.filter(|_| pinned_to_other.is_none());
        let (effective, withheld) = requested
            .iter()
            .copied()
            .partition(|s| granted.is_some_and(|g| g.grants.allows(*s)));
        Split { effective, withheld, pinned_to_other }
    }

    /// The warning for withheld scopes, naming the line to add.
    pub fn withheld_warning(&self, tool: &str, split: &Split) -> Option<String> {
        if let Some(pin) = &split.pinned_to_other {
            return Some(format!(
                "plugin {tool}: the grant in {} is pinned to the component with sha256 {pin}, and this is another component; it gets no scope until the pin names its sha256",
                self.path.display()
            ));
        }
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
fn parse(text: &str) -> Result<BTreeMap<String, Grant>, String> {
    let file: GrantsFile = toml::from_str(text).map_err(|e| format!("not a valid grants file: {e}"))?;
    let mut out = BTreeMap::new();
    for (tool, entry) in file.tools {
        let (patterns, sha256) = match entry {
            GrantEntry::Scopes(patterns) => (patterns, None),
            GrantEntry::Pinned(PinnedEntry { scopes, sha256 }) => (scopes, Some(sha256)),
        };
        let grants = Grants::from_checked_patterns(patterns.iter().map(String::as_str))
            .map_err(|e| format!("[tools] {tool}: {e}"))?;
        if let Some(pin) = &sha256
            && !(pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(format!("[tools] {tool}: `sha256` must be 64 lowercase hex characters (the component's, as in its manifest)"));
        }
        out.insert(tool, Grant { grants, sha256 });
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
        let split = g.split("switcher", SHA_A, &requested);
        assert_eq!(split.effective, vec![Scope::ReadCombos]);
        assert_eq!(split.withheld, vec![Scope::WriteCombos]);
        let warning = g.withheld_warning("switcher", &split).unwrap();
        assert!(warning.contains("switcher = [\"read:combos\", \"write:combos\"]"), "{warning}");
        assert_eq!(g.split("reader", SHA_A, &requested).effective, vec![Scope::ReadCombos]);
        // A plugin the file does not name gets nothing.
        assert_eq!(g.split("stranger", SHA_A, &requested).effective, vec![]);
        assert!(g.withheld_warning("reader", &g.split("reader", SHA_A, &[Scope::ReadHealth])).is_none());
    }

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_pinned_grant_goes_only_to_its_component() {
        let g = grants(&format!("[tools]\nswitcher = {{ scopes = [\"write:combos\"], sha256 = \"{SHA_A}\" }}\n"));
        assert_eq!(g.split("switcher", SHA_A, &[Scope::WriteCombos]).effective, vec![Scope::WriteCombos]);
        let other = g.split("switcher", SHA_B, &[Scope::WriteCombos]);
        assert_eq!(other.effective, vec![], "another component under the same name takes nothing");
        assert_eq!(other.pinned_to_other.as_deref(), Some(SHA_A));
        let warning = g.withheld_warning("switcher", &other).unwrap();
        assert!(warning.contains("pinned") && warning.contains(SHA_A), "{warning}");
        assert!(parse("[tools]\nx = { scopes = [\"read:health\"], sha256 = \"ABC\" }").is_err());
        assert!(parse("[tools]\nx = { scopes = [\"read:health\"], surprise = 1 }").is_err());
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
        assert!(missing.split("x", SHA_A, &[Scope::ReadHealth]).effective.is_empty());
        std::fs::write(dir.join("broken.toml"), "[tools\n").unwrap();
        let broken = PluginGrants::load(&dir.join("broken.toml"));
        assert!(broken.problem().unwrap().contains("no plugin gets any scope"));
    }
}
