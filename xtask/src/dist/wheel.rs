//! The Python wheel: the binary as the wheel's script (the way ruff and other
//! maturin `bindings = "bin"` projects ship), so `uvx omniroute-mcp` and
//! `pipx run omniroute-mcp` start it. Written directly (a wheel is a zip with
//! a RECORD of sha256s), so the test wheel needs no recompile.

use super::{Meta, archive, platform::Platform};
use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The distribution name on PyPI.
pub const DIST_NAME: &str = "omniroute-mcp";

/// The wheel platform tag for `binary` built for `platform`: for Linux the
/// manylinux tag of the newest glibc symbol version the binary needs.
pub fn platform_tag(platform: &Platform, binary: &Path) -> anyhow::Result<String> {
    if platform.is_windows() {
        return Ok(format!("win_{}", platform.wheel_arch));
    }
    let (major, minor) = glibc_needed(&platform.binutil("objdump"), binary)?;
    Ok(format!("manylinux_{major}_{minor}_{}", platform.wheel_arch))
}

/// The newest `GLIBC_x.y` version the binary's dynamic symbols need
/// (`objdump -T`, the platform's own objdump for a cross-built binary).
fn glibc_needed(objdump: &str, binary: &Path) -> anyhow::Result<(u32, u32)> {
    let out = std::process::Command::new(objdump)
        .arg("-T")
        .arg(binary)
        .output()
        .with_context(|| format!("{objdump} (binutils) is needed to find the glibc version the binary needs"))?;
    if !out.status.success() {
        bail!("objdump -T {} failed: {}", binary.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let newest = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            Some((parts.next()?.parse::<u32>().ok()?, parts.next().unwrap_or("0").parse::<u32>().ok()?))
        })
        .max();
    newest.with_context(|| format!("{} needs no GLIBC_ symbol version; is it a Linux glibc binary?", binary.display()))
}

/// Writes `omniroute_mcp-<version>-py3-none-<tag>.whl` into `out`.
pub fn write(meta: &Meta, platform: &Platform, binary: &Path, out: &Path, level: archive::Level) -> anyhow::Result<PathBuf> {
    let tag = platform_tag(platform, binary)?;
    let stem = DIST_NAME.replace('-', "_");
    let version = &meta.version;
    let data = format!("{stem}-{version}.data");
    let info = format!("{stem}-{version}.dist-info");
    let readme = std::fs::read_to_string(&meta.readme)?;
    let metadata = format!(
        "Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: {version}\nSummary: {}\nLicense: {}\nHome-page: {}\nRequires-Python: >=3.8\nDescription-Content-Type: text/markdown\n\n{readme}",
        meta.description, meta.license, meta.repository
    );
    let wheel = format!(
        "Wheel-Version: 1.0\nGenerator: omniroute-mcp xtask dist\nRoot-Is-Purelib: false\nTag: py3-none-{tag}\n"
    );
    let exe = format!("omniroute-mcp{}", platform.exe_suffix);
    let mut entries = vec![
        archive::Entry::file(format!("{data}/scripts/{exe}"), binary, 0o755),
        archive::Entry::bytes(format!("{info}/METADATA"), metadata, 0o644),
        archive::Entry::bytes(format!("{info}/WHEEL"), wheel, 0o644),
    ];
    if let Some(license) = &meta.license_file {
        entries.push(archive::Entry::file(format!("{info}/LICENSE"), license, 0o644));
    }
    let mut record = String::new();
    for entry in &entries {
        let bytes = match &entry.source {
            archive::Source::File(path) => std::fs::read(path)?,
            archive::Source::Bytes(bytes) => bytes.clone(),
        };
        let digest = base64_url(&Sha256::digest(&bytes));
        record.push_str(&format!("{},sha256={digest},{}\n", entry.name, bytes.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    entries.push(archive::Entry::bytes(format!("{info}/RECORD"), record, 0o644));
    let path = out.join(format!("{stem}-{version}-py3-none-{tag}.whl"));
    archive::zip(&path, &entries, level)?;
    Ok(path)
}

/// URL-safe base64 without padding (the RECORD hash format).
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_url_matches_the_rfc_vectors() {
        for (input, expected) in [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(super::base64_url(input.as_bytes()), expected);
        }
        assert_eq!(super::base64_url(&[0xfb, 0xff]), "-_8");
    }
}
