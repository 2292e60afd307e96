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
}

/// Every platform `cargo xtask dist` knows how to package (built or not).
pub const KNOWN: &[Platform] = &[
    Platform { triple: "x86_64-unknown-linux-gnu", npm_os: "linux", npm_cpu: "x64", wheel_arch: "x86_64", mcpb: "linux", exe_suffix: "" },
    Platform { triple: "aarch64-unknown-linux-gnu", npm_os: "linux", npm_cpu: "arm64", wheel_arch: "aarch64", mcpb: "linux", exe_suffix: "" },
    Platform { triple: "x86_64-pc-windows-gnu", npm_os: "win32", npm_cpu: "x64", wheel_arch: "amd64", mcpb: "win32", exe_suffix: ".exe" },
];

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

    pub fn is_windows(&self) -> bool {
        self.npm_os == "win32"
    }
}

/// `linux-x64, win32-x64` for messages.
pub fn names(platforms: &[Platform]) -> String {
    platforms.iter().map(Platform::npm_name).collect::<Vec<_>>().join(", ")
}
