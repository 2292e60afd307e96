//! Finds tool components, verifies them against their manifests, compiles
//! (or maps) them once and reads `describe()` once. Built-in tools and
//! plugins go through this same path.

mod builtin;
mod description;
mod folder;
mod grants;
mod manifest;
mod order;
mod plugins;
mod validate;

pub use builtin::{BuildDescribe, EMBEDDED_LABEL, EmbeddedTool, embedded};
pub use description::{Annotations, Description, DescriptionError};
pub use folder::{FileStamp, GRANTS_FILE_NAME, MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES, ToolFolder};
pub use grants::{PluginGrants, Split};
pub use manifest::{Manifest, ManifestError, ManifestLimits, valid_tool_name};
pub use plugins::{PluginSource, RESERVED_PREFIX};
pub use validate::{ArgumentError, ArgumentValidator};

use crate::capability::{CapabilitySet, Scope};
use crate::runtime::bindings::ToolPre;
use crate::runtime::{CacheOutcome, CallContext, CallLimits, CallState, DeadlineClass, LimitPolicy, Runtime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where a tool came from, and for plugins what the operator's grants did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with the server (embedded in the binary, or `--tools-dir`).
    Builtin,
    /// From the plugin folder (`--plugins`).
    Plugin {
        /// What the manifest (and describe()) asked for.
        requested: Vec<Scope>,
        /// Asked for but not granted by the operator; never reachable.
        withheld: Vec<Scope>,
    },
}

impl Origin {
    /// `builtin` or `plugin`, for listings.
    pub fn label(&self) -> &'static str {
        match self {
            Origin::Builtin => "builtin",
            Origin::Plugin { .. } => "plugin",
        }
    }
}

/// A loaded, verified tool ready to be called.
pub struct ToolEntry {
    pub description: Description,
    pub manifest: Manifest,
    /// The scopes the tool gets: for a built-in what it declares, for a
    /// plugin what it declares ∩ what the operator granted. Calls check and
    /// build their capability set from these.
    pub scopes: Vec<Scope>,
    pub origin: Origin,
    pub limits: CallLimits,
    /// The component file it was loaded from (for an embedded tool,
    /// [`EMBEDDED_LABEL`]/`<file>`).
    pub path: PathBuf,
    /// Where its bytes are, to map the component on first use.
    source: ComponentSource,
    /// The `describe()` output it was loaded with (validated), as returned.
    describe_json: String,
    /// Linked and ready to instantiate: set at load when `describe()` had to
    /// run, else on the first call (a tool never called costs no memory).
    pre: OnceLock<ToolPre<CallState>>,
    pub validator: ArgumentValidator,
    pub cache: CacheOutcome,
}

impl ToolEntry {
    /// The MCP tool name.
    pub fn name(&self) -> &str {
        &self.description.name
    }

    /// The validated `describe()` output, as the component returned it
    /// (`cargo xtask build` embeds it so a cold start compiles nothing).
    pub fn describe_json(&self) -> &str {
        &self.describe_json
    }

    /// Whether the component is embedded in the binary.
    pub fn is_embedded(&self) -> bool {
        matches!(self.source, ComponentSource::Embedded(_))
    }

    /// Whether the input schema declares the top-level property `name`
    /// (e.g. `sessionId`: only then does the host read it).
    pub fn declares_input(&self, name: &str) -> bool {
        self.description.input_schema.get("properties").and_then(|p| p.get(name)).is_some()
    }

    /// The component, ready to instantiate. The first call maps it from the
    /// compile cache after checking the file still has the pinned sha256.
    pub fn pre(&self, runtime: &Runtime) -> Result<&ToolPre<CallState>, String> {
        if let Some(pre) = self.pre.get() {
            return Ok(pre);
        }
        let wasm = match &self.source {
            ComponentSource::Folder(folder) => std::borrow::Cow::Owned(folder.read_component(&self.manifest.component)?),
            ComponentSource::Embedded(bytes) => std::borrow::Cow::Borrowed(*bytes),
        };
        let actual = hex::encode(Sha256::digest(&wasm));
        if actual != self.manifest.sha256 {
            return Err(format!(
                "its component {} changed after the server loaded it (sha256 {actual}, pinned {}); restore the file or reload the plugins",
                self.path.display(),
                self.manifest.sha256
            ));
        }
        let (pre, outcome) = runtime.prepare(&wasm, &actual).map_err(|e| e.to_string())?;
        tracing::debug!(tool = %self.name(), cache = ?outcome, "component mapped on first use");
        Ok(self.pre.get_or_init(|| pre))
    }
}

/// Where a tool's component bytes are.
#[derive(Clone)]
enum ComponentSource {
    /// A tools or plugin folder: read again (and re-checked) on first use.
    Folder(Arc<ToolFolder>),
    /// Embedded in the binary at build time.
    Embedded(&'static [u8]),
}

/// A component that was not loaded, and why (shown on stderr and by `tools`).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub path: PathBuf,
    pub reason: String,
    /// Whether it came from the plugin folder.
    pub plugin: bool,
}

/// Every tool the server offers, in presentation order.
#[derive(Default)]
pub struct Registry {
    tools: Vec<Arc<ToolEntry>>,
    by_name: HashMap<String, usize>,
    refused: Vec<Refusal>,
    /// Things an operator should know that did not stop a load (withheld scopes, grants file problems).
    warnings: Vec<String>,
}

/// What is needed to load tools.
#[derive(Clone)]
pub struct LoadOptions<'a> {
    pub runtime: &'a Runtime,
    /// Folders of `<tool>.toml` + component pairs.
    pub dirs: &'a [PathBuf],
    /// The server's limits, from which each tool's are derived by class and
    /// tightened by its manifest.
    pub limits: LimitPolicy,
    /// A context for `describe()` calls: no scopes, throwaway session.
    pub describe_ctx: CallContext,
}

/// Identifies what a registry offers: name, component hash and effective
/// scopes of each tool. When it changes, clients are told the list changed.
pub type Listing = Vec<(String, String, Vec<Scope>)>;

impl Registry {
    /// Loads every manifest in `dirs` (the built-in tools), or with no
    /// `dirs` the tools embedded in the binary. A bad component is refused
    /// and reported; it never stops the others from loading.
    pub async fn load(opts: LoadOptions<'_>) -> Registry {
        let mut registry = Registry::default();
        if opts.dirs.is_empty() {
            for tool in embedded() {
                match load_embedded(&opts, tool).await {
                    Ok(entry) => registry.insert(entry),
                    Err(refusal) => registry.refused.push(refusal),
                }
            }
        }
        for dir in opts.dirs {
            let folder = match ToolFolder::open(dir) {
                Ok(folder) => Arc::new(folder),
                Err(e) => {
                    registry.refused.push(Refusal {
                        path: dir.clone(),
                        reason: format!("cannot read the tools folder: {e}"),
                        plugin: false,
                    });
                    continue;
                }
            };
            for loaded in load_folder(&opts, &folder, false, |_| Ok(())).await {
                match loaded {
                    Ok(entry) => registry.insert(entry),
                    Err(refusal) => registry.refused.push(refusal),
                }
            }
        }
        for refusal in &registry.refused {
            tracing::warn!(path = %refusal.path.display(), reason = %refusal.reason, "tool refused");
        }
        registry.sort();
        registry
    }

    /// The built-in tools of `builtins` plus the plugins of `source`. The
    /// built-in entries are shared, not reloaded.
    pub async fn with_plugins(builtins: &Registry, opts: LoadOptions<'_>, source: &PluginSource) -> Registry {
        let mut registry = Registry {
            tools: builtins.tools.clone(),
            by_name: builtins.by_name.clone(),
            refused: builtins.refused.clone(),
            warnings: builtins.warnings.clone(),
        };
        let loaded = plugins::load(&opts, source, &builtins.by_name).await;
        for entry in loaded.entries {
            registry.insert(entry);
        }
        for refusal in &loaded.refused {
            tracing::warn!(path = %refusal.path.display(), reason = %refusal.reason, "plugin refused");
        }
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        registry.refused.extend(loaded.refused);
        registry.warnings.extend(loaded.warnings);
        registry.sort();
        registry
    }

    fn insert(&mut self, entry: ToolEntry) {
        let name = entry.name().to_owned();
        if self.by_name.contains_key(&name) {
            self.refused.push(Refusal {
                path: entry.path.clone(),
                reason: format!("a tool named \"{name}\" is already loaded; names must be unique"),
                plugin: matches!(entry.origin, Origin::Plugin { .. }),
            });
            return;
        }
        tracing::debug!(tool = %name, cache = ?entry.cache, origin = entry.origin.label(), "tool loaded");
        self.by_name.insert(name, self.tools.len());
        self.tools.push(Arc::new(entry));
    }

    fn sort(&mut self) {
        self.tools.sort_by(|a, b| order::compare(a.name(), b.name()));
        self.by_name = self
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name().to_owned(), i))
            .collect();
    }

    /// Tools in presentation order (the original's order for the 16, then by name).
    pub fn tools(&self) -> &[Arc<ToolEntry>] {
        &self.tools
    }

    /// Looks a tool up by name.
    pub fn get(&self, name: &str) -> Option<&Arc<ToolEntry>> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    /// Components that were not loaded.
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// Warnings that did not stop a load (withheld scopes, grants file problems).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What this registry offers, for change detection.
    pub fn listing(&self) -> Listing {
        self.tools
            .iter()
            .map(|t| (t.name().to_owned(), t.manifest.sha256.clone(), t.scopes.clone()))
            .collect()
    }
}

/// Loads every manifest of `folder`. `precheck` sees each parsed manifest
/// before its component is read or compiled, and may refuse it.
async fn load_folder(
    opts: &LoadOptions<'_>,
    folder: &Arc<ToolFolder>,
    plugin: bool,
    mut precheck: impl FnMut(&Manifest) -> Result<(), String>,
) -> Vec<Result<ToolEntry, Refusal>> {
    let refuse = |path: PathBuf, reason: String| Refusal { path, reason, plugin };
    let names = match folder.manifests() {
        Ok(names) => names,
        Err(e) => return vec![Err(refuse(folder.path().to_path_buf(), format!("cannot read the tools folder: {e}")))],
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let manifest_path = folder.path().join(&name);
        let manifest = match folder.read_manifest(&name).and_then(|t| Manifest::parse(&t).map_err(|e| e.to_string())) {
            Ok(manifest) => manifest,
            Err(reason) => {
                out.push(Err(refuse(manifest_path, reason)));
                continue;
            }
        };
        if let Err(reason) = precheck(&manifest) {
            out.push(Err(refuse(manifest_path, reason)));
            continue;
        }
        let path = folder.path().join(&manifest.component);
        let loaded = match folder.read_component(&manifest.component) {
            Ok(wasm) => load_one(opts, ComponentSource::Folder(folder.clone()), path, &wasm, manifest, None).await,
            Err(reason) => Err(reason),
        };
        out.push(loaded.map_err(|reason| refuse(manifest_path, reason)));
    }
    out
}

/// Loads one tool embedded in the binary: the same checks as a folder's
/// (manifest, sha256 pin, describe() agreement), with the build's
/// describe() output when it was made for this very component.
async fn load_embedded(opts: &LoadOptions<'_>, tool: &EmbeddedTool) -> Result<ToolEntry, Refusal> {
    let label = PathBuf::from(EMBEDDED_LABEL);
    let refuse = |reason: String| Refusal { path: label.join(tool.file), reason, plugin: false };
    let manifest = Manifest::parse(tool.manifest).map_err(|e| refuse(e.to_string()))?;
    let path = label.join(&manifest.component);
    load_one(opts, ComponentSource::Embedded(tool.component), path, tool.component, manifest, Some(tool))
        .await
        .map_err(refuse)
}

async fn load_one(
    opts: &LoadOptions<'_>,
    source: ComponentSource,
    path: PathBuf,
    wasm: &[u8],
    manifest: Manifest,
    embedded: Option<&EmbeddedTool>,
) -> Result<ToolEntry, String> {
    // An embedded component was checked against its pin when build.rs embedded
    // it, and the binary is its own root of trust: hashing it again at each
    // start would only read 3.5 MB of the binary into memory.
    let actual = match source {
        ComponentSource::Embedded(_) => manifest.sha256.clone(),
        ComponentSource::Folder(_) => hex::encode(Sha256::digest(wasm)),
    };
    if actual != manifest.sha256 {
        return Err(format!(
            "component {} has sha256 {actual}, but the manifest pins {}; refusing a component that changed after it was vouched for",
            path.display(),
            manifest.sha256
        ));
    }
    let scopes = manifest.parsed_scopes().map_err(|e| e.to_string())?;
    let limits = opts.limits.for_class(DeadlineClass::of(&scopes)).tightened(manifest.tightening());

    // describe() of this exact component (by sha256) was validated before:
    // reuse it, and leave the component unmapped until its first call.
    // Otherwise compile (or map) it and run describe() now, within the
    // describe() limits: for built-ins before the server answers anything,
    // for plugins in the background while it serves.
    let cached = embedded
        .and_then(|tool| tool.describe_for(&actual))
        .or_else(|| opts.runtime.cache().describe(&actual));
    let (json, pre, cache) = match cached.clone() {
        Some(json) => (json, OnceLock::new(), CacheOutcome::Hit),
        None => {
            let (pre, cache) = opts.runtime.prepare(wasm, &actual).map_err(|e| e.to_string())?;
            let mut describe_ctx = opts.describe_ctx.clone();
            describe_ctx.tool = Arc::from(manifest.name.as_str());
            describe_ctx.caps = CapabilitySet::default();
            let describe_limits = opts.limits.for_describe().tightened(manifest.tightening());
            let json = opts
                .runtime
                .describe(&pre, describe_ctx, describe_limits)
                .await
                .map_err(|e| format!("describe() failed: the tool {e}"))?;
            (json, OnceLock::from(pre), cache)
        }
    };
    let mut description = Description::parse(&json).map_err(|e| e.to_string())?;
    if let Some(note) = description.correct_annotations() {
        tracing::warn!(tool = %manifest.name, "{note}");
    }
    if description.name != manifest.name {
        return Err(format!(
            "describe() names the tool \"{}\" but the manifest says \"{}\"",
            description.name, manifest.name
        ));
    }
    let mut declared = description.scopes.clone();
    declared.sort();
    let mut pinned = scopes.clone();
    pinned.sort();
    if declared != pinned {
        return Err(format!(
            "describe() declares scopes [{}] but the manifest pins [{}]",
            join_scopes(&declared),
            join_scopes(&pinned)
        ));
    }
    let validator = ArgumentValidator::new(&description.input_schema).map_err(|e| e.to_string())?;
    if cached.is_none() {
        opts.runtime.cache().store_describe(&actual, &json);
    }
    Ok(ToolEntry {
        description,
        manifest,
        scopes,
        origin: Origin::Builtin,
        limits,
        path,
        source,
        describe_json: json,
        pre,
        validator,
        cache,
    })
}

/// `a, b, c`, for messages.
pub fn join_scopes(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}
