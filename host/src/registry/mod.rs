//! Finds tool components, verifies them against their manifests, compiles
//! (or maps) them once and reads `describe()` once. Built-in tools and
//! plugins go through this same path.

mod description;
mod manifest;
mod order;
mod validate;

pub use description::{Annotations, Description, DescriptionError};
pub use manifest::{Manifest, ManifestError, ManifestLimits, valid_tool_name};
pub use validate::{ArgumentError, ArgumentValidator};

use crate::capability::{CapabilitySet, Scope};
use crate::runtime::bindings::ToolPre;
use crate::runtime::{CacheOutcome, CallContext, CallLimits, CallState, Runtime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded, verified tool ready to be called.
pub struct ToolEntry {
    pub description: Description,
    pub manifest: Manifest,
    pub scopes: Vec<Scope>,
    pub limits: CallLimits,
    /// The component file it was loaded from.
    pub path: PathBuf,
    pub pre: ToolPre<CallState>,
    pub validator: ArgumentValidator,
    pub cache: CacheOutcome,
}

impl ToolEntry {
    /// The MCP tool name.
    pub fn name(&self) -> &str {
        &self.description.name
    }
}

/// A component that was not loaded, and why (shown on stderr and by `tools`).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub path: PathBuf,
    pub reason: String,
}

/// Every tool the server offers, in presentation order.
#[derive(Default)]
pub struct Registry {
    tools: Vec<Arc<ToolEntry>>,
    by_name: HashMap<String, usize>,
    refused: Vec<Refusal>,
}

/// What is needed to load tools.
pub struct LoadOptions<'a> {
    pub runtime: &'a Runtime,
    /// Folders of `<tool>.toml` + component pairs.
    pub dirs: &'a [PathBuf],
    /// The server's limits, which manifests may tighten.
    pub limits: CallLimits,
    /// A context for `describe()` calls: no scopes, throwaway session.
    pub describe_ctx: CallContext,
}

impl Registry {
    /// Loads every manifest in `dirs`. A bad component is refused and
    /// reported; it never stops the others from loading.
    pub async fn load(opts: LoadOptions<'_>) -> Registry {
        let mut registry = Registry::default();
        let mut manifests: Vec<PathBuf> = Vec::new();
        for dir in opts.dirs {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
                        .collect();
                    found.sort();
                    manifests.extend(found);
                }
                Err(e) => registry.refused.push(Refusal {
                    path: dir.clone(),
                    reason: format!("cannot read the tools folder: {e}"),
                }),
            }
        }

        for manifest_path in manifests {
            match load_one(&opts, &manifest_path).await {
                Ok(entry) => {
                    let name = entry.name().to_owned();
                    if registry.by_name.contains_key(&name) {
                        registry.refused.push(Refusal {
                            path: entry.path.clone(),
                            reason: format!("a tool named \"{name}\" is already loaded; names must be unique"),
                        });
                        continue;
                    }
                    tracing::debug!(tool = %name, cache = ?entry.cache, "tool loaded");
                    registry.by_name.insert(name, registry.tools.len());
                    registry.tools.push(Arc::new(entry));
                }
                Err(reason) => registry.refused.push(Refusal {
                    path: manifest_path,
                    reason,
                }),
            }
        }
        for refusal in &registry.refused {
            tracing::warn!(path = %refusal.path.display(), reason = %refusal.reason, "tool refused");
        }
        registry.sort();
        registry
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
}

async fn load_one(opts: &LoadOptions<'_>, manifest_path: &Path) -> Result<ToolEntry, String> {
    let text = std::fs::read_to_string(manifest_path).map_err(|e| format!("cannot read manifest: {e}"))?;
    let manifest = Manifest::parse(&text).map_err(|e| e.to_string())?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let path = dir.join(&manifest.component);
    let wasm = std::fs::read(&path).map_err(|e| format!("cannot read component {}: {e}", path.display()))?;
    let actual = hex::encode(Sha256::digest(&wasm));
    if actual != manifest.sha256 {
        return Err(format!(
            "component {} has sha256 {actual}, but the manifest pins {}; refusing a component that changed after it was vouched for",
            path.display(),
            manifest.sha256
        ));
    }
    let scopes = manifest.parsed_scopes().map_err(|e| e.to_string())?;
    let limits = opts.limits.tightened(
        manifest.deadline(),
        manifest.limits.memory_mib.map(|m| m.saturating_mul(1024 * 1024)),
        manifest.limits.gateway_requests,
    );

    // Loading happens before the server answers anything, so compiling on
    // this thread (a cache miss) delays nothing else.
    let (pre, cache) = opts.runtime.prepare(&wasm, &actual).map_err(|e| e.to_string())?;

    let mut describe_ctx = opts.describe_ctx.clone();
    describe_ctx.tool = Arc::from(manifest.name.as_str());
    describe_ctx.caps = CapabilitySet::default();
    let json = opts
        .runtime
        .describe(&pre, describe_ctx, limits)
        .await
        .map_err(|e| format!("describe() failed: the tool {e}"))?;
    let description = Description::parse(&json).map_err(|e| e.to_string())?;
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
    Ok(ToolEntry {
        description,
        manifest,
        scopes,
        limits,
        path,
        pre,
        validator,
        cache,
    })
}

fn join_scopes(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}
