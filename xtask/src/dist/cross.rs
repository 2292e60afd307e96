//! The platforms built here besides the host: Linux aarch64 with Debian's gcc
//! cross toolchain (run under `qemu-user`) and Windows x86_64 with Debian's
//! mingw-w64 (run under Wine). Installs what is missing, idempotently: the
//! apt packages when running as root (CI is root on a clean Debian machine),
//! the rustup targets always; without root a missing package skips that
//! platform with the command that installs it, except in CI (`CI` set), where
//! it is an error.

use super::platform::{self, Platform};
use crate::util::{self, RunExt};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How one non-host platform is built and run on an x86_64 Debian machine.
#[derive(Debug, Clone, Copy)]
pub struct Cross {
    pub platform: Platform,
    /// The C compiler that links the binary (and builds C dependencies).
    linker: &'static str,
    /// The apt packages holding the linker, the C library and binutils.
    build_packages: &'static [&'static str],
    /// Runs a binary of this platform here.
    runner: Runner,
}

/// An emulator or compatibility layer and the apt packages holding it.
#[derive(Debug, Clone, Copy)]
struct Runner {
    program: &'static str,
    args: &'static [&'static str],
    packages: &'static [&'static str],
    /// Environment the server needs under this runner.
    env: &'static [(&'static str, &'static str)],
}

/// The cross-built platforms, in the order they are packaged.
pub const CROSS: &[Cross] = &[
    Cross {
        platform: platform::LINUX_ARM64,
        linker: "aarch64-linux-gnu-gcc",
        build_packages: &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
        // -L: where the aarch64 dynamic loader and glibc are (libc6-arm64-cross).
        // wasmtime's pooling allocator reserves terabytes of address space up front;
        // qemu-user keeps state for every reserved guest page, so under qemu that
        // reservation took 21 GB of RAM until the OOM killer stopped it (a real aarch64
        // kernel reserves it for free). Memory mapped per call instead:
        runner: Runner {
            program: "qemu-aarch64",
            args: &["-L", "/usr/aarch64-linux-gnu"],
            packages: &["qemu-user"],
            env: &[("OMNIROUTE_MCP_WASM_ALLOCATOR", "on-demand")],
        },
    },
    Cross {
        platform: platform::WINDOWS_X64,
        linker: "x86_64-w64-mingw32-gcc",
        build_packages: &["gcc-mingw-w64-x86-64"],
        runner: Runner { program: "wine", args: &[], packages: &["wine", "wine64"], env: &[] },
    },
];

/// What `cargo xtask test` passes to the tests (as JSON in [`ENV`]) for each cross platform.
pub const ENV: &str = "OMNIROUTE_MCP_CROSS";

/// `off` leaves the cross builds (and their tests) out of `cargo xtask test`:
/// each adds a full build of the host's dependencies for its target to a
/// fresh run (see the README, "Releasing", for the measured minutes).
pub const SWITCH_ENV: &str = "OMNIROUTE_MCP_CROSS_TESTS";

/// A cross platform ready to build and run, or why it is skipped.
pub enum Readiness {
    Ready,
    Skipped(String),
}

impl Cross {
    pub fn by_triple(triple: &str) -> Option<Cross> {
        CROSS.iter().copied().find(|c| c.platform.triple == triple)
    }

    /// Installs what building this platform needs and, with `run`, what
    /// runs its binaries here, if missing.
    pub fn ensure(&self, run: bool) -> anyhow::Result<Readiness> {
        if Platform::host()? != platform::LINUX_X64 {
            return Ok(Readiness::Skipped(format!(
                "{} is cross-built only on x86_64 Linux (Debian's toolchains)",
                self.platform.npm_name()
            )));
        }
        let mut missing: Vec<&str> = Vec::new();
        let mut needed = vec![(self.linker, self.build_packages)];
        if run {
            needed.push((self.runner.program, self.runner.packages));
        }
        for (program, packages) in needed {
            if !on_path(program) {
                missing.extend(packages);
            }
        }
        if !missing.is_empty() {
            let install = format!("apt-get install -y --no-install-recommends {}", missing.join(" "));
            if is_root() {
                apt_install(&missing)?;
            } else if std::env::var_os("CI").is_some() {
                bail!("{} needs `{install}` (not root, so it cannot be installed here); CI must run as root or install them first", self.platform.npm_name());
            } else {
                return Ok(Readiness::Skipped(format!("{} skipped: run `sudo {install}` to build and test it", self.platform.npm_name())));
            }
        }
        ensure_rust_target(self.platform.triple)?;
        if self.platform.is_windows() && self.can_run() {
            wine::prepare()?;
        }
        Ok(Readiness::Ready)
    }

    /// Builds the server for this platform: `release`, or the `cross`
    /// profile (dev without debuginfo) for the tests. Returns the binary.
    pub fn build(&self, release: bool) -> anyhow::Result<PathBuf> {
        let root = util::workspace_root();
        let profile = if release { "release" } else { "cross" };
        util::step(&format!("building the host for {} ({profile})", self.platform.triple));
        let linker_var = format!("CARGO_TARGET_{}_LINKER", self.platform.triple.to_uppercase().replace('-', "_"));
        util::cargo(&["build", "-p", "omniroute-mcp", "--bin", "omniroute-mcp", "--target", self.platform.triple, "--profile", profile])
            .current_dir(&root)
            .env(linker_var, self.linker)
            .run()?;
        let binary = target_dir(&root).join(self.platform.triple).join(profile).join(format!("omniroute-mcp{}", self.platform.exe_suffix));
        anyhow::ensure!(binary.is_file(), "the build wrote no {}", binary.display());
        Ok(binary)
    }

    /// Whether binaries of this platform can run here (the runner is installed).
    pub fn can_run(&self) -> bool {
        on_path(self.runner.program)
    }

    /// `binary` (of this platform) as a command that runs here, with no
    /// `OMNIROUTE_*` variable from this process but the runner's own.
    pub fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new(self.runner.program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OMNIROUTE_") {
                command.env_remove(&name);
            }
        }
        command.args(self.runner.args).arg(binary).envs(self.runner_env());
        command
    }

    /// The runner and its arguments, before the binary.
    pub fn runner_argv(&self) -> Vec<String> {
        std::iter::once(self.runner.program).chain(self.runner.args.iter().copied()).map(str::to_owned).collect()
    }

    /// The environment the runner and the server under it need (Wine: its
    /// prefix, quiet; qemu: the on-demand allocator).
    pub fn runner_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.runner.env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        if self.platform.is_windows() {
            env.extend(wine::env());
        }
        env
    }
}

/// The cargo target folder (as `cargo` resolves `CARGO_TARGET_DIR`).
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // `/proc/self` belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `apt-get install`, refreshing the package lists first when they are empty or stale.
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    util::step(&format!("installing {} with apt-get (cross builds and their runners)", packages.join(" ")));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
    };
    if install().is_ok() {
        return Ok(());
    }
    Command::new("apt-get").args(["update", "-q"]).run().context("apt-get update")?;
    install().with_context(|| format!("apt-get install {}", packages.join(" ")))
}

/// `rustup target add` when the target's standard library is missing.
fn ensure_rust_target(triple: &str) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output_text()
        .context("rustup is needed to add the cross targets")?;
    if installed.lines().any(|l| l.trim() == triple) {
        return Ok(());
    }
    util::step(&format!("adding the {triple} target with rustup"));
    Command::new("rustup").args(["target", "add", triple]).run()
}

/// Wine for the Windows smoke tests: a prefix of our own under `target/`,
/// made once, holding the one system DLL Debian 12's Wine 8.0 lacks.
pub mod wine {
    use crate::util::{self, RunExt};
    use anyhow::Context;
    use std::path::PathBuf;
    use std::process::Command;

    /// Rust's standard library on Windows gets random bytes from
    /// `ProcessPrng` in `bcryptprimitives.dll`, which every Windows since 10
    /// ships; Wine added it only in 9.0, so under Debian 12's Wine 8.0 every
    /// Rust program stops with "Library bcryptprimitives.dll ... not found"
    /// (status c0000135). This is that function over advapi32's
    /// `RtlGenRandom`, built with mingw into the prefix's system32 (never
    /// into a package).
    const BCRYPTPRIMITIVES_C: &str = r#"#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
"#;

    /// `target/wine-prefix`.
    pub fn prefix() -> PathBuf {
        util::workspace_root().join("target").join("wine-prefix")
    }

    /// The environment of every Wine command: our prefix, no debug chatter.
    pub fn env() -> Vec<(String, String)> {
        vec![("WINEPREFIX".into(), prefix().display().to_string()), ("WINEDEBUG".into(), "-all".into())]
    }

    /// Creates the prefix (`wineboot`, ~10 s, once) and installs the DLL shim.
    pub fn prepare() -> anyhow::Result<()> {
        let prefix = prefix();
        if !prefix.join("system.reg").is_file() {
            util::step(&format!("creating the Wine prefix {} (once)", prefix.display()));
            Command::new("wine").args(["wineboot", "--init"]).envs(env()).run().context("wineboot")?;
            // wineboot returns before the registry is flushed; the server's exit flushes it.
            Command::new("wineserver").arg("--wait").envs(env()).run().context("wineserver --wait")?;
        }
        let dll = prefix.join("drive_c/windows/system32/bcryptprimitives.dll");
        let source = prefix.join("bcryptprimitives.c");
        if !dll.is_file() || std::fs::read_to_string(&source).ok().as_deref() != Some(BCRYPTPRIMITIVES_C) {
            std::fs::create_dir_all(dll.parent().context("system32 has a parent")?)?;
            std::fs::write(&source, BCRYPTPRIMITIVES_C)?;
            Command::new("x86_64-w64-mingw32-gcc")
                .args(["-shared", "-O2", "-o"])
                .arg(&dll)
                .arg(&source)
                .args(["-ladvapi32", "-Wl,--kill-at"])
                .run()
                .context("building the bcryptprimitives.dll shim for Wine 8")?;
        }
        Ok(())
    }
}

/// Builds every cross platform for the tests (the `cross` profile, once per
/// target, cached in the shared target folder) and describes them as the
/// JSON the tests read from [`ENV`]: per triple, the binary, the runner
/// command and its environment, or why it was skipped.
pub fn for_tests() -> anyhow::Result<String> {
    let mut described = serde_json::Map::new();
    match std::env::var(SWITCH_ENV).ok().as_deref().map(str::trim) {
        None | Some("" | "on") => {}
        Some("off") => {
            for cross in CROSS {
                let why = format!("{} not built: {SWITCH_ENV}=off", cross.platform.npm_name());
                util::step(&why);
                described.insert(cross.platform.triple.to_owned(), serde_json::json!({ "skipped": why, "off": true }));
            }
            return Ok(serde_json::Value::Object(described).to_string());
        }
        Some(other) => bail!("{SWITCH_ENV}={other:?}: use on (the default) or off"),
    }
    for cross in CROSS {
        let started = std::time::Instant::now();
        let value = match cross.ensure(true)? {
            Readiness::Ready => {
                let binary = cross.build(false)?;
                util::step(&format!("{} test binary ready in {:.0} s", cross.platform.npm_name(), started.elapsed().as_secs_f64()));
                serde_json::json!({
                    "binary": binary,
                    "runner": cross.runner_argv(),
                    "env": cross.runner_env().into_iter().map(|(k, v)| (k, serde_json::Value::from(v))).collect::<serde_json::Map<_, _>>(),
                })
            }
            Readiness::Skipped(why) => {
                util::step(&why);
                serde_json::json!({ "skipped": why })
            }
        };
        described.insert(cross.platform.triple.to_owned(), value);
    }
    Ok(serde_json::Value::Object(described).to_string())
}
