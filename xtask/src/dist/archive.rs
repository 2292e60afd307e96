//! Writing archives (tar.gz, zip) and their sha256 files. Entries get a fixed
//! time and explicit modes, so the same inputs give the same archive.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// One file to put in an archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its path inside the archive (`/`-separated).
    pub name: String,
    pub source: Source,
    /// Unix mode (0o755 for executables).
    pub mode: u32,
}

/// Where an entry's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

impl Entry {
    pub fn file(name: impl Into<String>, path: &Path, mode: u32) -> Self {
        Entry { name: name.into(), source: Source::File(path.to_path_buf()), mode }
    }

    pub fn bytes(name: impl Into<String>, bytes: impl Into<Vec<u8>>, mode: u32) -> Self {
        Entry { name: name.into(), source: Source::Bytes(bytes.into()), mode }
    }

    fn read(&self) -> anyhow::Result<Vec<u8>> {
        match &self.source {
            Source::File(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display())),
            Source::Bytes(bytes) => Ok(bytes.clone()),
        }
    }
}

/// The entries' time: 2020-01-01T00:00:00Z (zip cannot hold times before 1980).
const MTIME: u64 = 1_577_836_800;

/// How hard to compress: `Fast` for the test packages of the debug binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Best,
    Fast,
}

/// Writes a gzip-compressed tar of `entries`.
pub fn tar_gz(out: &Path, entries: &[Entry], level: Level) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        match level {
            Level::Best => flate2::Compression::best(),
            Level::Fast => flate2::Compression::fast(),
        },
    );
    let mut tar = tar::Builder::new(gz);
    for entry in entries {
        let bytes = entry.read()?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(entry.mode);
        header.set_mtime(MTIME);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &entry.name, bytes.as_slice())
            .with_context(|| format!("adding {} to {}", entry.name, out.display()))?;
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(())
}

/// Writes a deflated zip of `entries` (wheels and MCPB bundles are zips).
pub fn zip(out: &Path, entries: &[Entry], level: Level) -> anyhow::Result<()> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let time = zip::DateTime::from_date_and_time(2020, 1, 1, 0, 0, 0).map_err(|e| anyhow::anyhow!("zip time: {e:?}"))?;
    for entry in entries {
        let bytes = entry.read()?;
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(match level {
                Level::Best => 9,
                Level::Fast => 1,
            }))
            .unix_permissions(entry.mode)
            .last_modified_time(time)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(entry.name.as_str(), options)
            .with_context(|| format!("adding {} to {}", entry.name, out.display()))?;
        zip.write_all(&bytes)?;
    }
    zip.finish()?.flush()?;
    Ok(())
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes `<file>.sha256` in the `sha256sum` format; returns the hash.
pub fn write_sha256(path: &Path) -> anyhow::Result<String> {
    let sha = sha256_file(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).context("an archive path has a file name")?;
    let out = PathBuf::from(format!("{}.sha256", path.display()));
    std::fs::write(&out, format!("{sha}  {name}\n")).with_context(|| format!("writing {}", out.display()))?;
    Ok(sha)
}
