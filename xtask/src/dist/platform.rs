//! The platforms a release can hold, and how each packaging format names them.

use anyhow::bail;

/// One platform a binary is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// The Rust target triple.
    pub triple: &'static str,
    /// Node's `process.platform` / npm `os`.
    pub npm_os: &'static str,
    /// Node's `process.arch` / npm `cpu`.
    pub npm_cpu: &'static str,
    /// The machine part of a wheel tag (`x86_64`, `aarch64`, `amd64`).
    pub wheel_arch: &'static str,
    /// The MCPB `compatibility.platforms` name.
    pub mcpb: &'static str,
    /// `.exe` on Windows.
    pub exe_suffix: &'static str,
    /// The prefix of the GNU binutils for this platform (`aarch64-linux-gnu-`).
    pub binutils: &'static str,
}

/// Linux x86_64 (glibc).
pub const LINUX_X64: Platform = Platform { triple: "x86_64-unknown-linux-gnu", npm_os: "linux", npm_cpu: "x64", wheel_arch: "x86_64", mcpb: "linux", exe_suffix: "", binutils: "x86_64-linux-gnu-" };
/// Linux aarch64 (glibc), cross-built with Debian's gcc-aarch64-linux-gnu.
pub const LINUX_ARM64: Platform = Platform { triple: "aarch64-unknown-linux-gnu", npm_os: "linux", npm_cpu: "arm64", wheel_arch: "aarch64", mcpb: "linux", exe_suffix: "", binutils: "aarch64-linux-gnu-" };
/// Windows x86_64, cross-built with Debian's mingw-w64.
pub const WINDOWS_X64: Platform = Platform { triple: "x86_64-pc-windows-gnu", npm_os: "win32", npm_cpu: "x64", wheel_arch: "amd64", mcpb: "win32", exe_suffix: ".exe", binutils: "x86_64-w64-mingw32-" };

/// Every platform `cargo xtask dist` knows how to package (built or not).
/// macOS is not among them: it cannot be built here.
pub const KNOWN: &[Platform] = &[LINUX_X64, LINUX_ARM64, WINDOWS_X64];

impl Platform {
    /// The platform xtask itself runs on (the host build's).
    pub fn host() -> anyhow::Result<Platform> {
        let triple = match (std::env::consts::OS, std::env::consts::ARCH) {
            ("linux", "x86_64") => "x86_64-unknown-linux-gnu",
            ("linux", "aarch64") => "aarch64-unknown-linux-gnu",
            ("windows", "x86_64") => "x86_64-pc-windows-gnu",
            (os, arch) => bail!("cargo xtask dist cannot package for {os}/{arch}; it knows {}", names(KNOWN)),
        };
        Ok(Self::by_triple(triple).expect("the host triple is in KNOWN"))
    }

    pub fn by_triple(triple: &str) -> Option<Platform> {
        KNOWN.iter().copied().find(|p| p.triple == triple)
    }

    /// `linux-x64`: the npm platform package suffix and the human name.
    pub fn npm_name(&self) -> String {
        format!("{}-{}", self.npm_os, self.npm_cpu)
    }

    /// A binutils program (`strip`, `objdump`) that reads this platform's
    /// binaries: the plain one for the host, the prefixed one otherwise.
    pub fn binutil(&self, program: &str) -> String {
        match Platform::host() {
            Ok(host) if host == *self => program.to_owned(),
            _ => format!("{}{program}", self.binutils),
        }
    }

    pub fn is_windows(&self) -> bool {
        self.npm_os == "win32"
    }
}

/// `linux-x64, win32-x64` for messages.
pub fn names(platforms: &[Platform]) -> String {
    platforms.iter().map(Platform::npm_name).collect::<Vec<_>>().join(", ")
}

/// `x86_64-unknown-linux-gnu, ...` for messages.
pub fn triples(platforms: &[Platform]) -> String {
    platforms.iter().map(|p| p.triple).collect::<Vec<_>>().join(", ")
}
