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
pub mod cross;
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
    /// embed the built-in tools; the tests pass the debug build's). Repeat
    /// as `TRIPLE=PATH` for other platforms (`x86_64-pc-windows-gnu=...exe`);
    /// a bare path is the host's. With `--binary`, nothing is built.
    #[arg(long = "binary", value_name = "[TRIPLE=]PATH")]
    binaries: Vec<String>,
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

/// What [`package`] wrote for one platform.
#[derive(Debug)]
pub struct PlatformArtefacts {
    pub platform: Platform,
    /// `.tar.gz`, or `.zip` for Windows (each with its `.sha256`).
    pub archive: PathBuf,
    pub npm: PathBuf,
    pub wheel: PathBuf,
    pub mcpb: PathBuf,
    /// How the binary's embedded tools were listed (natively, under qemu or
    /// Wine), or why they could not be run here.
    pub checked: String,
}

/// What [`package`] wrote.
#[derive(Debug)]
pub struct Artefacts {
    pub platforms: Vec<PlatformArtefacts>,
    pub npm_launcher: PathBuf,
    pub server_json: PathBuf,
    /// The built-in tools the packaged binaries embed.
    pub tools: usize,
}

/// `cargo xtask dist`.
pub fn command(args: DistArgs) -> anyhow::Result<()> {
    let root = util::workspace_root();
    let binaries = if args.binaries.is_empty() { build_release()? } else { parse_binaries(&args.binaries)? };
    let out = std::path::absolute(args.out.unwrap_or_else(|| root.join("target").join("dist")))?;
    let level = if args.fast { archive::Level::Fast } else { archive::Level::Best };
    let started = std::time::Instant::now();
    let artefacts = package(&binaries, &out, level)?;
    util::step(&format!(
        "packaged {} platform(s) ({}; {} built-in tools embedded) in {:.1} s:",
        artefacts.platforms.len(),
        platform::names(&artefacts.platforms.iter().map(|p| p.platform).collect::<Vec<_>>()),
        artefacts.tools,
        started.elapsed().as_secs_f64()
    ));
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    for built in &artefacts.platforms {
        println!("{} ({}):", built.platform.npm_name(), built.checked);
        for path in [&built.archive, &built.npm, &built.wheel, &built.mcpb] {
            println!("  {}  {:.1} MB", path.display(), size(path));
        }
    }
    for path in [&artefacts.npm_launcher, &artefacts.server_json] {
        println!("{}  {:.1} MB", path.display(), size(path));
    }
    Ok(())
}

/// Builds the release binary for the host and for every cross platform
/// whose toolchain is installed (or installable: see [`cross`]).
fn build_release() -> anyhow::Result<Vec<(Platform, PathBuf)>> {
    let mut binaries = vec![(Platform::host()?, crate::build::build_all(true)?.binary)];
    for cross in cross::CROSS {
        match cross.ensure(false)? {
            cross::Readiness::Ready => binaries.push((cross.platform, cross.build(true)?)),
            cross::Readiness::Skipped(why) => util::step(&format!("not packaged: {why}")),
        }
    }
    Ok(binaries)
}

/// `--binary [TRIPLE=]PATH` values.
fn parse_binaries(values: &[String]) -> anyhow::Result<Vec<(Platform, PathBuf)>> {
    let mut binaries: Vec<(Platform, PathBuf)> = Vec::new();
    for value in values {
        let (platform, path) = match value.split_once('=') {
            Some((triple, path)) => (
                Platform::by_triple(triple)
                    .with_context(|| format!("--binary {value}: unknown target {triple}; known: {}", platform::triples(platform::KNOWN)))?,
                path,
            ),
            None => (Platform::host()?, value.as_str()),
        };
        if binaries.iter().any(|(p, _)| *p == platform) {
            bail!("--binary names {} twice", platform.triple);
        }
        binaries.push((platform, std::path::absolute(path)?));
    }
    binaries.sort_by_key(|(p, _)| platform::KNOWN.iter().position(|k| k == p));
    Ok(binaries)
}

/// Packs each binary (for its platform) into every format, in `out`.
pub fn package(binaries: &[(Platform, PathBuf)], out: &Path, level: archive::Level) -> anyhow::Result<Artefacts> {
    let root = util::workspace_root();
    let meta = Meta::load(&root)?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("emptying {}", out.display()))?;
    }
    let work = out.join(".work");
    std::fs::create_dir_all(&work)?;
    let npm_work = work.join("npm");

    let mut built = Vec::new();
    let mut listed: Option<Vec<mcpb::ToolInfo>> = None;
    for (platform, binary) in binaries {
        let (packed, tools) = package_platform(&meta, platform, binary, listed.as_deref(), &work, out, level)?;
        if let Some(first) = &listed {
            let names = |tools: &[mcpb::ToolInfo]| tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
            if names(first) != names(&tools) {
                bail!("{} embeds other tools than the first platform's binary: build them from the same tools\n  {:?}\n  {:?}", binary.display(), names(&tools), names(first));
            }
        }
        listed.get_or_insert(tools);
        built.push(packed);
    }
    let tool_count = listed.as_ref().map(Vec::len);
    let platforms: Vec<Platform> = built.iter().map(|b| b.platform).collect();
    let npm_launcher = npm::launcher(&meta, &platforms, &npm_work, out)?;

    let mut bundles = Vec::new();
    for b in &built {
        let name = b.mcpb.file_name().and_then(|n| n.to_str()).context("a bundle has a file name")?.to_owned();
        bundles.push((name, archive::sha256_file(&b.mcpb)?));
    }
    let bundles: Vec<registry::Bundle<'_>> = bundles.iter().map(|(file_name, sha256)| registry::Bundle { file_name, sha256 }).collect();
    let server = registry::server_json(&meta, npm::LAUNCHER, wheel::DIST_NAME, &bundles);
    registry::validate(&root, &server)?;
    let server_json = out.join("server.json");
    std::fs::write(&server_json, serde_json::to_string_pretty(&server)? + "\n")?;

    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    Ok(Artefacts { platforms: built, npm_launcher, server_json, tools: tool_count.unwrap_or(0) })
}

/// One platform's archive, npm package, wheel and bundle; with the tools it
/// embeds (`listed`, another platform's, when this one cannot run here).
fn package_platform(
    meta: &Meta,
    platform: &Platform,
    binary: &Path,
    listed: Option<&[mcpb::ToolInfo]>,
    work: &Path,
    out: &Path,
    level: archive::Level,
) -> anyhow::Result<(PlatformArtefacts, Vec<mcpb::ToolInfo>)> {
    let work = work.join(platform.triple);
    // A stripped copy, alone in a folder: it must need nothing beside it.
    let exe_name = format!("omniroute-mcp{}", platform.exe_suffix);
    let staged = work.join("bin").join(&exe_name);
    std::fs::create_dir_all(staged.parent().context("a staged binary has a folder")?)?;
    std::fs::copy(binary, &staged).with_context(|| format!("copying {}", binary.display()))?;
    let strip = platform.binutil("strip");
    std::process::Command::new(&strip)
        .arg("--strip-debug")
        .arg(&staged)
        .run()
        .with_context(|| format!("{strip} (binutils) is needed to strip the {} binary", platform.npm_name()))?;
    let (tools, checked) = match embedded_tools(platform, &staged, &work)? {
        (Some(tools), checked) => (tools, checked),
        (None, checked) => match listed {
            Some(tools) => (tools.to_vec(), checked),
            None => bail!("{}: cannot list its tools ({checked}); package a binary that runs here first", binary.display()),
        },
    };

    let stem = format!("omniroute-mcp-{}-{}", meta.version, platform.triple);
    let mut entries = vec![
        archive::Entry::file(format!("{stem}/{exe_name}"), &staged, 0o755),
        archive::Entry::file(format!("{stem}/README.md"), &meta.readme, 0o644),
    ];
    if let Some(license) = &meta.license_file {
        entries.push(archive::Entry::file(format!("{stem}/LICENSE"), license, 0o644));
    }
    let archive_path = if platform.is_windows() {
        let path = out.join(format!("{stem}.zip"));
        archive::zip(&path, &entries, level)?;
        path
    } else {
        let path = out.join(format!("{stem}.tar.gz"));
        archive::tar_gz(&path, &entries, level)?;
        path
    };
    archive::write_sha256(&archive_path)?;

    let npm = npm::platform(meta, platform, &staged, &work.join("npm"), out)?;
    let wheel = wheel::write(meta, platform, &staged, out, level)?;
    let mcpb = mcpb::write(meta, platform, &staged, &tools, &work, out, level)?;
    archive::write_sha256(&mcpb)?;
    Ok((PlatformArtefacts { platform: *platform, archive: archive_path, npm, wheel, mcpb, checked }, tools))
}

/// The tools `binary` embeds, from `tools --json` run with nothing beside it
/// and no tools folder (another platform's binary under its runner: qemu,
/// Wine): fails unless every tool is built in. Also says how it was run.
fn embedded_tools(platform: &Platform, binary: &Path, work: &Path) -> anyhow::Result<(Option<Vec<mcpb::ToolInfo>>, String)> {
    let data = work.join("tools-data");
    let (mut command, checked) = if *platform == Platform::host()? {
        let mut command = std::process::Command::new(binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OMNIROUTE_") {
                command.env_remove(&name);
            }
        }
        (command, "ran here".to_owned())
    } else {
        match cross::Cross::by_triple(platform.triple).filter(cross::Cross::can_run) {
            Some(cross) => (cross.command(binary), format!("ran under {}", cross.runner_argv().join(" "))),
            None => {
                util::step(&format!("{} cannot run here (no runner installed): its embedded tools are not checked", binary.display()));
                return Ok((None, "NOT RUN here: no runner installed; untested".to_owned()));
            }
        }
    };
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
    Ok((Some(out), checked))
}
