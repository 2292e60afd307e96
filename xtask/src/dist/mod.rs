//! `cargo xtask dist`: everything a user installs without a Rust toolchain,
//! written to `target/dist`: per platform a `.tar.gz` (binary, README,
//! LICENSE) with its `.sha256`, the npm launcher and platform packages
//! (`npm pack`), a Python wheel, an MCPB bundle, and `server.json` for the
//! MCP registry. Versions come from Cargo.toml.
//!
//! The same [`package`] runs on the release binary here and, with
//! `--binary`, on the debug binary in the tests (`tests/tests/dist.rs`), so
//! what the tests install is packed by the code that packs a release.

mod archive;
mod mcpb;
mod npm;
mod platform;
mod registry;
mod wheel;

use crate::util::{self, RunExt};
use anyhow::{Context, bail};
use platform::Platform;
use std::path::{Path, PathBuf};

/// `cargo xtask dist` arguments.
#[derive(Debug, clap::Args)]
pub struct DistArgs {
    /// Package this binary instead of building the release one (it must
    /// embed the built-in tools; the tests pass the debug build's).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Where to write (default: target/dist). Emptied first.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fast compression (for tests); releases use the best.
    #[arg(long)]
    fast: bool,
}

/// What the release is, from Cargo.toml and the repository.
#[derive(Debug, Clone)]
pub struct Meta {
    pub version: String,
    pub description: String,
    pub license: String,
    pub repository: String,
    pub readme: PathBuf,
    /// `LICENSE`, when the repository has one.
    pub license_file: Option<PathBuf>,
}

impl Meta {
    /// Reads the workspace's and the host's Cargo.toml.
    pub fn load(root: &Path) -> anyhow::Result<Meta> {
        let read = |path: PathBuf| -> anyhow::Result<toml::Table> {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        };
        let workspace = read(root.join("Cargo.toml"))?;
        let host = read(root.join("host/Cargo.toml"))?;
        let field = |table: &toml::Table, path: &[&str]| -> anyhow::Result<String> {
            let mut value = table.get(path[0]);
            for key in &path[1..] {
                value = value.and_then(|v| v.get(*key));
            }
            value
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("Cargo.toml has no {}", path.join(".")))
        };
        let license_file = root.join("LICENSE");
        Ok(Meta {
            version: field(&workspace, &["workspace", "package", "version"])?,
            license: field(&workspace, &["workspace", "package", "license"])?,
            repository: field(&workspace, &["workspace", "package", "repository"])?,
            description: field(&host, &["package", "description"])?,
            readme: root.join("README.md"),
            license_file: license_file.is_file().then_some(license_file),
        })
    }

    /// The description cut to the registry's 100 characters.
    pub fn short_description(&self) -> String {
        let first = self.description.split(';').next().unwrap_or(&self.description).trim();
        first.chars().take(100).collect()
    }

    #[cfg(test)]
    pub fn test() -> Meta {
        Meta::load(&util::workspace_root()).expect("the workspace's Cargo.toml")
    }
}

/// What [`package`] wrote.
#[derive(Debug)]
pub struct Artefacts {
    pub archive: PathBuf,
    pub npm_launcher: PathBuf,
    pub npm_platform: PathBuf,
    pub wheel: PathBuf,
    pub mcpb: PathBuf,
    pub server_json: PathBuf,
    /// The built-in tools the packaged binary embeds.
    pub tools: usize,
}

/// `cargo xtask dist`.
pub fn command(args: DistArgs) -> anyhow::Result<()> {
    let root = util::workspace_root();
    let binary = match args.binary {
        Some(binary) => binary,
        None => crate::build::build_all(true)?.binary,
    };
    let out = std::path::absolute(args.out.unwrap_or_else(|| root.join("target").join("dist")))?;
    let binary = std::path::absolute(binary)?;
    let level = if args.fast { archive::Level::Fast } else { archive::Level::Best };
    let started = std::time::Instant::now();
    let artefacts = package(&binary, &out, level)?;
    util::step(&format!(
        "packaged {} ({} built-in tools embedded) in {:.1} s:",
        binary.display(),
        artefacts.tools,
        started.elapsed().as_secs_f64()
    ));
    for path in [
        &artefacts.archive,
        &artefacts.npm_launcher,
        &artefacts.npm_platform,
        &artefacts.wheel,
        &artefacts.mcpb,
        &artefacts.server_json,
    ] {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!("{}  {:.1} MB", path.display(), size as f64 / 1e6);
    }
    Ok(())
}

/// Packs `binary` (for the platform xtask runs on) into every format, in `out`.
pub fn package(binary: &Path, out: &Path, level: archive::Level) -> anyhow::Result<Artefacts> {
    let root = util::workspace_root();
    let meta = Meta::load(&root)?;
    let platform = Platform::host()?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("emptying {}", out.display()))?;
    }
    let work = out.join(".work");
    std::fs::create_dir_all(&work)?;

    // A stripped copy, alone in a folder: it must need nothing beside it.
    let exe_name = format!("omniroute-mcp{}", platform.exe_suffix);
    let staged = work.join("bin").join(&exe_name);
    std::fs::create_dir_all(staged.parent().context("a staged binary has a folder")?)?;
    std::fs::copy(binary, &staged).with_context(|| format!("copying {}", binary.display()))?;
    std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg(&staged)
        .run()
        .context("strip (binutils) is needed to strip the binary")?;
    let tools = embedded_tools(&staged, &work)?;

    let stem = format!("omniroute-mcp-{}-{}", meta.version, platform.triple);
    let mut entries = vec![
        archive::Entry::file(format!("{stem}/{exe_name}"), &staged, 0o755),
        archive::Entry::file(format!("{stem}/README.md"), &meta.readme, 0o644),
    ];
    if let Some(license) = &meta.license_file {
        entries.push(archive::Entry::file(format!("{stem}/LICENSE"), license, 0o644));
    }
    let archive_path = out.join(format!("{stem}.tar.gz"));
    archive::tar_gz(&archive_path, &entries, level)?;
    archive::write_sha256(&archive_path)?;

    let npm_work = work.join("npm");
    let npm_platform = npm::platform(&meta, &platform, &staged, &npm_work, out)?;
    let npm_launcher = npm::launcher(&meta, &[platform], &npm_work, out)?;
    let wheel = wheel::write(&meta, &platform, &staged, out, level)?;
    let mcpb = mcpb::write(&meta, &platform, &staged, &tools, &work, out, level)?;
    let mcpb_sha = archive::write_sha256(&mcpb)?;

    let mcpb_name = mcpb.file_name().and_then(|n| n.to_str()).context("the bundle has a file name")?;
    let server = registry::server_json(
        &meta,
        npm::LAUNCHER,
        wheel::DIST_NAME,
        &[registry::Bundle { file_name: mcpb_name, sha256: &mcpb_sha }],
    );
    registry::validate(&root, &server)?;
    let server_json = out.join("server.json");
    std::fs::write(&server_json, serde_json::to_string_pretty(&server)? + "\n")?;

    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    Ok(Artefacts { archive: archive_path, npm_launcher, npm_platform, wheel, mcpb, server_json, tools: tools.len() })
}

/// The tools `binary` embeds, from `tools --json` run with nothing beside it
/// and no tools folder: fails unless every tool is built in.
fn embedded_tools(binary: &Path, work: &Path) -> anyhow::Result<Vec<mcpb::ToolInfo>> {
    let data = work.join("tools-data");
    let mut command = std::process::Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OMNIROUTE_") {
            command.env_remove(&name);
        }
    }
    let listing = command
        .args(["tools", "--json", "--audit", "off", "--log", "warn", "--data-dir"])
        .arg(&data)
        .output_text()?;
    let value: serde_json::Value = serde_json::from_str(&listing).context("reading `tools --json`")?;
    let tools = value["tools"].as_array().context("`tools --json` has no tools")?;
    let mut out = Vec::new();
    for tool in tools {
        let name = tool["name"].as_str().unwrap_or_default().to_owned();
        let component = tool["component"].as_str().unwrap_or_default();
        if !component.starts_with("(built into the binary)") {
            bail!("{} loads the tool {name} from {component}, not from itself: build it with `cargo xtask build` so the tools are embedded", binary.display());
        }
        out.push(mcpb::ToolInfo { name, description: tool["description"].as_str().unwrap_or_default().to_owned() });
    }
    if out.is_empty() {
        bail!("{} embeds no tools: build it with `cargo xtask build` so the tools are embedded", binary.display());
    }
    Ok(out)
}
