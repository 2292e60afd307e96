//! Installing without a toolchain, as a user would: the artefacts of `cargo xtask dist`,
//! packed here from the debug binary by the same code that packs a release (`xtask dist
//! --binary`, stripped, fast compression), installed and started with nothing from the
//! repository beside them, and driven by the official Python MCP SDK
//! (`tests/python/installed_client.py`): each must list the 16 built-in tools and answer
//! omniroute_get_health against the fake gateway.
//!
//! * the `.tar.gz`'s binary copied alone into an empty folder, with an empty `HOME`;
//! * the npm tarballs installed into an empty prefix with npm's cache empty and the registry
//!   pointed at a closed port (`--offline`: nothing may come from the public registry), then
//!   started through `npx --offline omniroute-mcp`;
//! * the wheel installed into a fresh venv, started by its console script;
//! * the `.mcpb` unpacked by the `mcpb` CLI and its manifest's command started with the
//!   user_config filled in;
//! * `server.json` checked against the MCP registry's schema vendored in `xtask/dist/schemas/`;
//! * the other platforms `cargo xtask test` cross-built (`OMNIROUTE_MCP_CROSS`): the aarch64
//!   Linux tarball's binary run alone under qemu-user, the Windows zip's `.exe` under Wine, each
//!   with the same client and checks; their npm packages, wheels and bundles named and tagged
//!   for their platform. A platform xtask skipped (no cross toolchain, not root) is reported
//!   and not tested, except in CI, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use omniroute_mcp_tests::{FakeGateway, TempDir, paths, python};
use serde_json::{Value, json};

/// The built-in tools every install must list.
const BUILTIN_TOOLS: usize = 16;

/// The script bounds itself at 120 s; this is the backstop if Python itself hangs.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// What `xtask dist --binary <debug binary>` wrote.
struct Dist {
    dir: PathBuf,
}

impl Dist {
    /// The one file in the folder whose name ends with `suffix`.
    fn file(&self, suffix: &str) -> PathBuf {
        let matches = self.files_ending(suffix);
        assert_eq!(matches.len(), 1, "one *{suffix} in {}: {matches:?}", self.dir.display());
        matches.into_iter().next().expect("one match")
    }

    /// Every file of the folder whose name ends with `suffix`.
    fn files_ending(&self, suffix: &str) -> Vec<PathBuf> {
        std::fs::read_dir(&self.dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", self.dir.display()))
            .map(|e| e.expect("a folder entry").path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)))
            .collect()
    }

    fn npm_tarball(&self, name_prefix: &str) -> PathBuf {
        let version = version();
        self.file(&format!("{name_prefix}-{version}.tgz"))
    }
}

/// A platform `cargo xtask test` cross-built, and how to run its binaries here.
#[derive(Debug, Clone)]
struct Cross {
    binary: PathBuf,
    /// qemu-aarch64 -L ..., or wine.
    runner: Vec<String>,
    env: serde_json::Map<String, Value>,
}

impl Cross {
    /// The cross-built `triple` from `OMNIROUTE_MCP_CROSS`; `None` (with the
    /// reason on stderr) when xtask skipped it, which fails in CI.
    fn get(triple: &str) -> Option<Cross> {
        let text = std::env::var("OMNIROUTE_MCP_CROSS").unwrap_or_else(|_| "{}".to_owned());
        let all: Value = serde_json::from_str(&text).expect("OMNIROUTE_MCP_CROSS is JSON");
        let entry = &all[triple];
        let binary = entry["binary"].as_str().map(PathBuf::from);
        let Some(binary) = binary else {
            let why = entry["skipped"].as_str().unwrap_or("OMNIROUTE_MCP_CROSS does not name it: run the tests with `cargo xtask test`");
            // Switched off on purpose (OMNIROUTE_MCP_CROSS_TESTS=off) is allowed in CI; missing tools are not.
            let off = entry["off"].as_bool() == Some(true);
            assert!(off || std::env::var_os("CI").is_none(), "{triple} must be built and tested in CI: {why}");
            eprintln!("NOT TESTED: {triple}: {why}");
            return None;
        };
        let runner = entry["runner"].as_array().expect("a runner").iter().map(|a| a.as_str().expect("a string").to_owned()).collect();
        let env = entry["env"].as_object().cloned().unwrap_or_default();
        Some(Cross { binary, runner, env })
    }
}

const AARCH64: &str = "aarch64-unknown-linux-gnu";
const WINDOWS: &str = "x86_64-pc-windows-gnu";

/// Packs the debug binary (and the cross-built ones) once for every test of this file.
fn dist() -> &'static Dist {
    static DIST: OnceLock<Dist> = OnceLock::new();
    DIST.get_or_init(|| {
        let dir = paths::target_dir().join("dist-test");
        let mut command = Command::new(paths::xtask_binary());
        command.args(["dist", "--fast", "--binary"]).arg(paths::server_binary());
        for triple in [AARCH64, WINDOWS] {
            if let Some(cross) = Cross::get(triple) {
                command.arg("--binary").arg(format!("{triple}={}", cross.binary.display()));
            }
        }
        let out = command
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("cannot run xtask dist");
        assert!(
            out.status.success(),
            "xtask dist failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("xtask dist:\n{}", String::from_utf8_lossy(&out.stdout));
        Dist { dir }
    })
}

/// The workspace version (every artefact carries it).
fn version() -> String {
    let text = std::fs::read_to_string(paths::workspace_root().join("Cargo.toml")).expect("the workspace Cargo.toml");
    let line = text
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find(|l| l.trim_start().starts_with("version"))
        .expect("workspace.package.version");
    line.split('"').nth(1).expect("a quoted version").to_owned()
}

/// Runs a command to success; panics with its output otherwise.
fn run(command: &mut Command) -> String {
    let line = format!("{command:?}");
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {line}: {e}"));
    assert!(
        out.status.success(),
        "{line} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Drives the installed server through the Python SDK; returns the script's stdout.
async fn drive(command: &[String], env: Value, cwd: Option<&Path>) -> String {
    let mut vars = vec![
        ("INSTALLED_COMMAND".to_owned(), serde_json::to_string(command).expect("JSON")),
        ("INSTALLED_ENV".to_owned(), env.to_string()),
        ("EXPECTED_TOOLS".to_owned(), BUILTIN_TOOLS.to_string()),
    ];
    if let Some(cwd) = cwd {
        vars.push(("INSTALLED_CWD".to_owned(), cwd.display().to_string()));
    }
    let stdout = python::run_script("installed_client.py", &vars, SCRIPT_TIMEOUT, String::new).await.stdout;
    assert!(stdout.contains("all checks passed"), "{stdout}");
    eprintln!("{command:?}:\n{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archives_binary_runs_alone_in_an_empty_folder_with_an_empty_home() {
    let dist = dist();
    let archive = dist.file("-x86_64-unknown-linux-gnu.tar.gz");
    let sha = std::fs::read_to_string(format!("{}.sha256", archive.display())).expect("the archive's .sha256");
    let name = archive.file_name().and_then(|n| n.to_str()).expect("a file name");
    assert_eq!(sha, format!("{}  {name}\n", sha256_hex(&archive)), "the .sha256 file");

    let unpacked = TempDir::new("dist-tar");
    run(Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(unpacked.path()));
    let stem = name.trim_end_matches(".tar.gz");
    for file in ["omniroute-mcp", "README.md", "LICENSE"] {
        assert!(unpacked.path().join(stem).join(file).is_file(), "{stem}/{file} in the archive");
    }
    let alone = TempDir::new("dist-alone");
    let binary = alone.path().join("omniroute-mcp");
    std::fs::copy(unpacked.path().join(stem).join("omniroute-mcp"), &binary).expect("copy the binary");
    let home = TempDir::new("dist-home");
    let gateway = FakeGateway::start();
    drive(
        &[binary.display().to_string()],
        json!({ "HOME": home.path(), "OMNIROUTE_BASE_URL": gateway.url() }),
        Some(alone.path()),
    )
    .await;
    // Its data (cache, audit, state) went to the empty HOME; nothing appeared beside it.
    assert!(home.path().join(".local/share/omniroute-mcp").is_dir(), "the data folder under the empty HOME");
    let beside: Vec<_> = std::fs::read_dir(alone.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("omniroute-mcp")]);
    assert!(!gateway.requests_to("GET", "/api/monitoring/health").is_empty(), "the call reached the gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_packages_install_offline_and_start_through_npx() {
    let dist = dist();
    let prefix = TempDir::new("dist-npm");
    let cache = prefix.path().join(".npm-cache");
    // Nothing may come from the public registry: an empty cache, a closed registry, --offline.
    let npm_env = [("npm_config_cache", cache.display().to_string()), ("npm_config_registry", "http://127.0.0.1:9/".to_owned())];
    run(Command::new("npm")
        .args(["install", "--offline", "--no-audit", "--no-fund", "--prefix"])
        .arg(prefix.path())
        .arg(dist.npm_tarball("omniroute-mcp-linux-x64"))
        .arg(dist.npm_tarball("omniroute-mcp"))
        .envs(npm_env.clone()));
    let launcher = prefix.path().join("node_modules/omniroute-mcp/bin/omniroute-mcp.js");
    assert!(launcher.is_file(), "the launcher is installed");

    let home = TempDir::new("dist-npm-home");
    let gateway = FakeGateway::start();
    let mut env = json!({ "HOME": home.path(), "OMNIROUTE_BASE_URL": gateway.url() });
    for (name, value) in &npm_env {
        env[name] = json!(value);
    }
    drive(&["npx".to_owned(), "--offline".to_owned(), "omniroute-mcp".to_owned()], env, Some(prefix.path())).await;

    // On a platform without a build the launcher names the ones that exist.
    let preload = prefix.path().join("as-darwin.js");
    std::fs::write(&preload, "Object.defineProperty(process, 'platform', { value: 'darwin' });\n").expect("write preload");
    let out = Command::new("node").arg("--require").arg(&preload).arg(&launcher).output().expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no build for darwin-x64") && stderr.contains(&format!("Builds exist for: {}.", shipped().join(", "))),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wheel_installs_into_a_fresh_venv_and_its_script_starts_the_server() {
    let dist = dist();
    let wheel = dist.file("_x86_64.whl");
    let name = wheel.file_name().and_then(|n| n.to_str()).expect("a file name").to_owned();
    assert!(
        name.starts_with(&format!("omniroute_mcp-{}-py3-none-manylinux_2_", version())) && name.ends_with("_x86_64.whl"),
        "{name}"
    );
    let venv = TempDir::new("dist-venv");
    let python = paths::python_interpreter();
    run(Command::new(&python).args(["-m", "venv", "--without-pip"]).arg(venv.path()));
    let venv_python = venv.path().join("bin/python");
    // The test venv's pip installs into the fresh one, from the file only.
    run(Command::new(&python)
        .args(["-m", "pip", "--disable-pip-version-check", "--python"])
        .arg(&venv_python)
        .args(["install", "--no-index", "--no-deps"])
        .arg(&wheel));
    let script = venv.path().join("bin/omniroute-mcp");
    assert!(script.is_file(), "the console script {}", script.display());
    let home = TempDir::new("dist-venv-home");
    let gateway = FakeGateway::start();
    drive(
        &[script.display().to_string()],
        json!({ "HOME": home.path(), "OMNIROUTE_BASE_URL": gateway.url() }),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcpb_bundle_unpacks_and_its_manifest_command_starts() {
    let dist = dist();
    let bundle = dist.file("-linux-x64.mcpb");
    let unpacked = TempDir::new("dist-mcpb");
    let mcpb = paths::target_dir().join("node-tools/node_modules/.bin/mcpb");
    run(Command::new(&mcpb).arg("unpack").arg(&bundle).arg(unpacked.path()));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(unpacked.path().join("manifest.json")).expect("manifest.json in the bundle"),
    )
    .expect("manifest.json is JSON");
    assert_eq!(manifest["manifest_version"], "0.3");
    assert_eq!(manifest["version"], version().as_str());
    assert_eq!(manifest["compatibility"]["platforms"], json!(["linux"]));
    assert_eq!(manifest["tools"].as_array().map(Vec::len), Some(BUILTIN_TOOLS));
    for secret in ["api_key", "dashboard_password"] {
        assert_eq!(manifest["user_config"][secret]["sensitive"], true, "{secret} is sensitive");
    }

    // What Claude Desktop does: fill in ${__dirname} and ${user_config.*}, start the command.
    let gateway = FakeGateway::start();
    let user_config = json!({ "base_url": gateway.url(), "api_key": "", "dashboard_password": "" });
    let fill = |text: &str| -> String {
        let mut text = text.replace("${__dirname}", &unpacked.path().display().to_string());
        for (key, value) in user_config.as_object().expect("an object") {
            text = text.replace(&format!("${{user_config.{key}}}"), value.as_str().unwrap_or_default());
        }
        text
    };
    let config = &manifest["server"]["mcp_config"];
    let mut command = vec![fill(config["command"].as_str().expect("a command"))];
    command.extend(config["args"].as_array().expect("args").iter().map(|a| fill(a.as_str().expect("a string"))));
    let home = TempDir::new("dist-mcpb-home");
    let mut env = json!({ "HOME": home.path() });
    for (name, value) in config["env"].as_object().expect("env") {
        env[name] = json!(fill(value.as_str().expect("a string")));
    }
    drive(&command, env, None).await;
}

#[test]
fn server_json_lists_the_packages_and_matches_the_registry_schema() {
    let dist = dist();
    let server: Value = serde_json::from_str(&std::fs::read_to_string(dist.file("server.json")).expect("server.json"))
        .expect("server.json is JSON");
    let schema_path = paths::workspace_root().join("xtask/dist/schemas/server.schema.2025-12-11.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema_path).expect("the vendored schema")).expect("JSON");
    assert_eq!(server["$schema"], schema["$id"], "server.json names the vendored schema's version");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(&server).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");

    let version = version();
    assert_eq!(server["version"], version.as_str());
    let packages = server["packages"].as_array().expect("packages");
    let kinds: Vec<&str> = packages.iter().map(|p| p["registryType"].as_str().unwrap_or_default()).collect();
    let mut expected = vec!["npm", "pypi"];
    expected.extend(shipped().iter().map(|_| "mcpb"));
    assert_eq!(kinds, expected);
    for package in packages {
        assert_eq!(package["version"], version.as_str());
    }
    // One bundle per platform, each with its own sha256.
    for (package, platform) in packages[2..].iter().zip(shipped()) {
        let bundle = dist.file(&format!("-{platform}.mcpb"));
        let name = bundle.file_name().and_then(|n| n.to_str()).expect("a file name");
        assert!(package["identifier"].as_str().is_some_and(|id| id.ends_with(&format!("/{name}"))), "{package}");
        assert_eq!(package["fileSha256"], sha256_hex(&bundle).as_str(), "{name}'s sha256");
    }

    // The schema is not a formality: it refuses what the registry refuses.
    let mut bad = server.clone();
    bad["packages"][0]["version"] = json!("latest");
    assert!(!validator.is_valid(&bad), "version \"latest\" must be refused");
}

/// The npm names of the platforms packed here, in the launcher's order.
fn shipped() -> Vec<&'static str> {
    let mut platforms = vec!["linux-x64"];
    if Cross::get(AARCH64).is_some() {
        platforms.push("linux-arm64");
    }
    if Cross::get(WINDOWS).is_some() {
        platforms.push("win32-x64");
    }
    platforms
}

/// The ELF or PE machine of a binary: `aarch64`, `x86_64` (ELF) or `pe-x86_64`.
fn machine(path: &Path) -> &'static str {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if bytes.starts_with(b"\x7fELF") {
        return match u16::from_le_bytes([bytes[18], bytes[19]]) {
            0xb7 => "aarch64",
            0x3e => "x86_64",
            other => panic!("{}: ELF machine {other:#x}", path.display()),
        };
    }
    assert!(bytes.starts_with(b"MZ"), "{} is neither ELF nor PE", path.display());
    let pe = u32::from_le_bytes(bytes[0x3c..0x40].try_into().expect("4 bytes")) as usize;
    assert_eq!(&bytes[pe..pe + 4], b"PE\0\0", "{}: no PE header", path.display());
    match u16::from_le_bytes([bytes[pe + 4], bytes[pe + 5]]) {
        0x8664 => "pe-x86_64",
        other => panic!("{}: PE machine {other:#x}", path.display()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aarch64_archives_binary_runs_alone_under_qemu() {
    let Some(cross) = Cross::get(AARCH64) else { return };
    let dist = dist();
    let archive = dist.file(&format!("-{AARCH64}.tar.gz"));
    let name = archive.file_name().and_then(|n| n.to_str()).expect("a file name");
    let sha = std::fs::read_to_string(format!("{}.sha256", archive.display())).expect("the archive's .sha256");
    assert_eq!(sha, format!("{}  {name}\n", sha256_hex(&archive)), "the .sha256 file");
    let unpacked = TempDir::new("dist-arm64");
    run(Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(unpacked.path()));
    let stem = name.trim_end_matches(".tar.gz");
    let alone = TempDir::new("dist-arm64-alone");
    let binary = alone.path().join("omniroute-mcp");
    std::fs::copy(unpacked.path().join(stem).join("omniroute-mcp"), &binary).expect("copy the binary");
    assert_eq!(machine(&binary), "aarch64");

    let home = TempDir::new("dist-arm64-home");
    let gateway = FakeGateway::start();
    let mut command = cross.runner.clone();
    command.push(binary.display().to_string());
    let mut env = json!({ "HOME": home.path(), "OMNIROUTE_BASE_URL": gateway.url() });
    for (name, value) in &cross.env {
        env[name] = value.clone();
    }
    drive(&command, env, Some(alone.path())).await;
    assert!(home.path().join(".local/share/omniroute-mcp").is_dir(), "the data folder under the empty HOME");
    assert!(!gateway.requests_to("GET", "/api/monitoring/health").is_empty(), "the call reached the gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_zips_exe_runs_alone_under_wine() {
    let Some(cross) = Cross::get(WINDOWS) else { return };
    let dist = dist();
    let archive = dist.file(&format!("-{WINDOWS}.zip"));
    let name = archive.file_name().and_then(|n| n.to_str()).expect("a file name");
    let sha = std::fs::read_to_string(format!("{}.sha256", archive.display())).expect("the archive's .sha256");
    assert_eq!(sha, format!("{}  {name}\n", sha256_hex(&archive)), "the .sha256 file");
    let unpacked = TempDir::new("dist-win");
    run(Command::new(paths::python_interpreter()).args(["-m", "zipfile", "-e"]).arg(&archive).arg(unpacked.path()));
    let stem = name.trim_end_matches(".zip");
    for file in ["omniroute-mcp.exe", "README.md", "LICENSE"] {
        assert!(unpacked.path().join(stem).join(file).is_file(), "{stem}/{file} in the zip");
    }
    let alone = TempDir::new("dist-win-alone");
    let exe = alone.path().join("omniroute-mcp.exe");
    std::fs::copy(unpacked.path().join(stem).join("omniroute-mcp.exe"), &exe).expect("copy the exe");
    assert_eq!(machine(&exe), "pe-x86_64");

    // Its data folder, as a Windows path on Wine's Z: drive (the host's /).
    let data = TempDir::new("dist-win-data");
    let data_dir = data.path().join("omniroute-mcp");
    let windows_path = format!("Z:{}", data_dir.display()).replace('/', "\\");
    let gateway = FakeGateway::start();
    let mut command = cross.runner.clone();
    command.push(exe.display().to_string());
    let mut env = json!({ "OMNIROUTE_BASE_URL": gateway.url(), "OMNIROUTE_MCP_DATA_DIR": windows_path });
    for (name, value) in &cross.env {
        env[name] = value.clone();
    }
    drive(&command, env, Some(alone.path())).await;
    assert!(data_dir.join("cache").is_dir(), "the Windows build wrote its cache under {}", data_dir.display());
    let beside: Vec<_> = std::fs::read_dir(alone.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("omniroute-mcp.exe")]);
    assert!(!gateway.requests_to("GET", "/api/monitoring/health").is_empty(), "the call reached the gateway");
}

/// Every cross-built platform also gets its npm package (os/cpu set for it), a wheel with its
/// platform tag and a bundle naming its OS; the launcher knows exactly the packed platforms.
#[test]
fn each_platform_has_its_npm_package_wheel_and_bundle() {
    let dist = dist();
    let version = version();
    let mut expected_packages = serde_json::Map::new();
    for (platform, os, cpu, wheel_tag, mcpb_os, exe) in [
        ("linux-x64", "linux", "x64", "_x86_64", "linux", "omniroute-mcp"),
        ("linux-arm64", "linux", "arm64", "_aarch64", "linux", "omniroute-mcp"),
        ("win32-x64", "win32", "x64", "win_amd64", "win32", "omniroute-mcp.exe"),
    ] {
        if !shipped().contains(&platform) {
            continue;
        }
        let package = format!("omniroute-mcp-{platform}");
        expected_packages.insert(package.clone(), json!(version));
        let unpacked = TempDir::new("dist-npm-platform");
        run(Command::new("tar").arg("-xzf").arg(dist.npm_tarball(&package)).arg("-C").arg(unpacked.path()));
        let manifest: Value = serde_json::from_str(&std::fs::read_to_string(unpacked.path().join("package/package.json")).expect("package.json"))
            .expect("JSON");
        assert_eq!((&manifest["os"], &manifest["cpu"]), (&json!([os]), &json!([cpu])), "{package}");
        let binary = unpacked.path().join("package/bin").join(exe);
        let expected_machine = match platform {
            "linux-x64" => "x86_64",
            "linux-arm64" => "aarch64",
            _ => "pe-x86_64",
        };
        assert_eq!(machine(&binary), expected_machine, "{package}'s binary");

        let wheel = dist.file(&format!("{wheel_tag}.whl"));
        let wheel_name = wheel.file_name().and_then(|n| n.to_str()).expect("a name").to_owned();
        let prefix = format!("omniroute_mcp-{version}-py3-none-");
        assert!(wheel_name.starts_with(&prefix), "{wheel_name}");
        if os == "linux" {
            assert!(wheel_name.starts_with(&format!("{prefix}manylinux_2_")), "{wheel_name}");
        }

        let bundle = dist.file(&format!("-{platform}.mcpb"));
        let listing = run(Command::new(paths::python_interpreter()).args(["-m", "zipfile", "-l"]).arg(&bundle));
        assert!(listing.contains(&format!("server/{exe}")), "{listing}");
        let unpacked = TempDir::new("dist-mcpb-platform");
        run(Command::new(paths::python_interpreter()).args(["-m", "zipfile", "-e"]).arg(&bundle).arg(unpacked.path()));
        let manifest: Value = serde_json::from_str(&std::fs::read_to_string(unpacked.path().join("manifest.json")).expect("manifest")).expect("JSON");
        assert_eq!(manifest["compatibility"]["platforms"], json!([mcpb_os]), "{platform}");
        assert_eq!(manifest["server"]["mcp_config"]["command"], format!("${{__dirname}}/server/{exe}"), "{platform}");
        assert_eq!(manifest["tools"].as_array().map(Vec::len), Some(BUILTIN_TOOLS), "{platform}");
    }
    assert_eq!(dist.files_ending(".whl").len(), shipped().len(), "one wheel per platform");
    assert_eq!(dist.files_ending(".mcpb").len(), shipped().len(), "one bundle per platform");

    let unpacked = TempDir::new("dist-npm-launcher");
    run(Command::new("tar").arg("-xzf").arg(dist.npm_tarball("omniroute-mcp")).arg("-C").arg(unpacked.path()));
    let launcher: Value = serde_json::from_str(&std::fs::read_to_string(unpacked.path().join("package/package.json")).expect("package.json"))
        .expect("JSON");
    assert_eq!(launcher["optionalDependencies"], Value::Object(expected_packages), "the launcher depends on every packed platform");
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))))
}
