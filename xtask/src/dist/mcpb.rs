//! The MCPB bundle (`.mcpb`, manifest 0.3) for Claude Desktop: the binary,
//! a manifest whose `user_config` asks for the gateway URL, the API key and
//! the dashboard password (both sensitive), and `compatibility.platforms`
//! naming the platform of the binary it holds (one bundle per platform). Checked with `mcpb validate`
//! (npm `@anthropic-ai/mcpb`, installed under target/node-tools).

use super::{Meta, archive, platform::Platform};
use crate::util::{self, RunExt};
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The `@anthropic-ai/mcpb` version that checks the bundle.
pub const MCPB_CLI_VERSION: &str = "2.1.2";

/// A tool as the manifest lists it.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
}

/// The manifest of the bundle holding `platform`'s binary under `server/`:
/// one bundle per platform, since a bundle runs one command and MCPB names
/// operating systems only (`linux`, `win32`), not CPUs.
pub fn manifest(meta: &Meta, platform: &Platform, tools: &[ToolInfo]) -> serde_json::Value {
    let entry_point = format!("server/omniroute-mcp{}", platform.exe_suffix);
    json!({
        "manifest_version": "0.3",
        "name": "omniroute-mcp",
        "display_name": "OmniRoute",
        "version": meta.version,
        "description": meta.description,
        "long_description": "Tools for the OmniRoute AI gateway: health, combos, quotas, costs, routing and budget guards. Every tool is a sandboxed WebAssembly component that reaches only the gateway routes its scopes allow.",
        "author": { "name": "omniroute-mcp contributors", "url": meta.repository },
        "repository": { "type": "git", "url": meta.repository },
        "homepage": meta.repository,
        "license": meta.license,
        "keywords": ["omniroute", "llm", "gateway", "routing"],
        "server": {
            "type": "binary",
            "entry_point": entry_point,
            "mcp_config": {
                "command": format!("${{__dirname}}/{entry_point}"),
                "args": [],
                "env": {
                    "OMNIROUTE_BASE_URL": "${user_config.base_url}",
                    "OMNIROUTE_API_KEY": "${user_config.api_key}",
                    "OMNIROUTE_DASHBOARD_PASSWORD": "${user_config.dashboard_password}"
                }
            }
        },
        "tools": tools.iter().map(|t| json!({ "name": t.name, "description": t.description })).collect::<Vec<_>>(),
        "tools_generated": false,
        "compatibility": { "platforms": [platform.mcpb] },
        "user_config": {
            "base_url": {
                "type": "string",
                "title": "Gateway URL",
                "description": "The OmniRoute gateway's base URL.",
                "default": "http://localhost:20128",
                "required": true
            },
            "api_key": {
                "type": "string",
                "title": "API key",
                "description": "An OmniRoute API key, for /v1 routes (leave empty if the gateway requires none).",
                "sensitive": true,
                "required": false
            },
            "dashboard_password": {
                "type": "string",
                "title": "Dashboard password",
                "description": "The gateway's dashboard password, for management routes (leave empty if it has none).",
                "sensitive": true,
                "required": false
            }
        }
    })
}

/// Writes `omniroute-mcp-<version>-<platform>.mcpb` into `out` and checks its manifest.
pub fn write(
    meta: &Meta,
    platform: &Platform,
    binary: &Path,
    tools: &[ToolInfo],
    work: &Path,
    out: &Path,
    level: archive::Level,
) -> anyhow::Result<PathBuf> {
    let manifest = manifest(meta, platform, tools);
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    let dir = work.join("mcpb");
    std::fs::create_dir_all(&dir)?;
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, &text)?;
    validate(&manifest_path)?;
    let exe = format!("server/omniroute-mcp{}", platform.exe_suffix);
    let mut entries = vec![
        archive::Entry::bytes("manifest.json", text, 0o644),
        archive::Entry::file(exe, binary, 0o755),
        archive::Entry::file("README.md", &meta.readme, 0o644),
    ];
    if let Some(license) = &meta.license_file {
        entries.push(archive::Entry::file("LICENSE", license, 0o644));
    }
    let path = out.join(format!("omniroute-mcp-{}-{}.mcpb", meta.version, platform.npm_name()));
    archive::zip(&path, &entries, level)?;
    Ok(path)
}

/// `mcpb validate manifest.json`, installing the CLI under target/node-tools once.
pub fn validate(manifest: &Path) -> anyhow::Result<()> {
    let tools = util::workspace_root().join("target").join("node-tools");
    let cli = tools.join("node_modules").join(".bin").join("mcpb");
    let installed = tools
        .join("node_modules/@anthropic-ai/mcpb/package.json")
        .is_file()
        .then(|| std::fs::read_to_string(tools.join("node_modules/@anthropic-ai/mcpb/package.json")).ok())
        .flatten()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    if installed.as_deref() != Some(MCPB_CLI_VERSION) {
        util::step(&format!("installing @anthropic-ai/mcpb {MCPB_CLI_VERSION} (checks the bundle) in {}", tools.display()));
        std::fs::create_dir_all(&tools)?;
        std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&tools)
            .arg(format!("@anthropic-ai/mcpb@{MCPB_CLI_VERSION}"))
            .run()
            .context("npm is needed to install the mcpb CLI")?;
    }
    let out = std::process::Command::new(&cli)
        .arg("validate")
        .arg(manifest)
        .output()
        .with_context(|| format!("cannot run {}", cli.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "mcpb validate {} failed:\n{}{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
