//! Third-party tools from the plugin folder: the same loading path as the
//! built-ins (manifest, sha256 pin, describe() agreement), plus the rules
//! that only apply to code we did not ship: a reserved name prefix, no name
//! taken twice, and scopes cut down to what the operator granted.

use super::{LoadOptions, Origin, Refusal, ToolEntry, ToolFolder, load_folder};
use crate::registry::grants::PluginGrants;
use crate::registry::GRANTS_FILE_NAME;
use std::collections::HashMap;
use std::path::PathBuf;

/// Names starting with this belong to the built-in tools.
pub const RESERVED_PREFIX: &str = "omniroute_";

/// Where plugins and their grants live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSource {
    pub dir: PathBuf,
    pub grants_file: PathBuf,
}

impl PluginSource {
    /// A plugin folder; the grants default to `grants.toml` inside it.
    pub fn new(dir: impl Into<PathBuf>, grants_file: Option<PathBuf>) -> Self {
        let dir = dir.into();
        let grants_file = grants_file.unwrap_or_else(|| dir.join(GRANTS_FILE_NAME));
        Self { dir, grants_file }
    }

    /// The file whose change asks running servers to reload (`plugins reload`).
    pub fn reload_marker(&self) -> PathBuf {
        self.dir.join(".reload")
    }
}

/// What loading a plugin folder produced.
#[derive(Default)]
pub(super) struct Loaded {
    pub entries: Vec<ToolEntry>,
    pub refused: Vec<Refusal>,
    pub warnings: Vec<String>,
}

/// Loads the plugins of `source`; `builtins` are the names already taken.
pub(super) async fn load(opts: &LoadOptions<'_>, source: &PluginSource, builtins: &HashMap<String, usize>) -> Loaded {
    let mut loaded = Loaded::default();
    let folder = match ToolFolder::open(&source.dir) {
        Ok(folder) => std::sync::Arc::new(folder),
        Err(e) => {
            loaded.refused.push(Refusal {
                path: source.dir.clone(),
                reason: format!("cannot open the plugin folder: {e}"),
                plugin: true,
            });
            return loaded;
        }
    };
    let grants = PluginGrants::load(&source.grants_file);
    if let Some(problem) = grants.problem() {
        loaded.warnings.push(problem.to_owned());
    }

    // Manifest file that first claimed each plugin name, to name it in a collision.
    let mut claimed: HashMap<String, String> = HashMap::new();
    let results = load_folder(opts, &folder, true, |manifest| {
        let name = &manifest.name;
        if name.starts_with(RESERVED_PREFIX) {
            return Err(format!(
                "the name \"{name}\" uses the prefix `{RESERVED_PREFIX}`, which is reserved for built-in tools; rename the plugin (manifest `name` and describe())"
            ));
        }
        if builtins.contains_key(name) {
            return Err(format!("a built-in tool is already named \"{name}\"; rename the plugin"));
        }
        if let Some(first) = claimed.get(name) {
            return Err(format!(
                "the plugin name \"{name}\" is already used by {first} in this folder; remove one of them or rename it"
            ));
        }
        claimed.insert(name.clone(), manifest.component.clone());
        Ok(())
    })
    .await;

    for result in results {
        match result {
            Ok(mut entry) => {
                let split = grants.split(entry.name(), &entry.scopes);
                if let Some(warning) = grants.withheld_warning(entry.name(), &split) {
                    loaded.warnings.push(warning);
                }
                entry.origin = Origin::Plugin { requested: entry.scopes.clone(), withheld: split.withheld };
                entry.scopes = split.effective;
                loaded.entries.push(entry);
            }
            Err(refusal) => loaded.refused.push(refusal),
        }
    }
    loaded
}
