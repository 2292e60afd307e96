//! Third-party tools from the plugin folder: the same loading path as the
//! built-ins (manifest, sha256 pin, describe() agreement), plus the rules
//! that only apply to code we did not ship: a reserved name prefix, no name
//! claimed twice (an ambiguous name loads neither claimant), and scopes cut
//! down to what the operator granted (optionally pinned to a component's sha256).

use super::{LoadOptions, Manifest, Origin, Refusal, ToolEntry, ToolFolder, load_folder};
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

    // A name claimed by two manifests is ambiguous: which one the operator's
    // grant was meant for cannot be told, so neither loads (whichever sorts
    // first must not take the grant).
    let claims = claims_by_name(&folder);
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
        if let Some(files) = claims.get(name).filter(|files| files.len() > 1) {
            return Err(format!(
                "the plugin name \"{name}\" is claimed by {} in this folder; none of them is loaded while the name is ambiguous: remove all but one or rename them",
                files.join(" and ")
            ));
        }
        Ok(())
    })
    .await;

    for result in results {
        match result {
            Ok(mut entry) => {
                let split = grants.split(entry.name(), &entry.manifest.sha256, &entry.scopes);
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

/// Plugin name -> the manifest files that claim it (unreadable manifests
/// are skipped here; loading reports them).
fn claims_by_name(folder: &ToolFolder) -> HashMap<String, Vec<String>> {
    let mut claims: HashMap<String, Vec<String>> = HashMap::new();
    for file in folder.manifests().unwrap_or_default() {
        if let Ok(manifest) = folder.read_manifest(&file).and_then(|t| Manifest::parse(&t).map_err(|e| e.to_string())) {
            claims.entry(manifest.name).or_default().push(file);
        }
    }
    claims
}
