//! Embeds the built-in tool components that `cargo xtask build` staged in
//! `<workspace>/target/tools` (`<tool>.toml` + `<tool>.wasm`, and the
//! `<tool>.describe.json` that xtask produced with the host and validated),
//! so the released binary runs from any folder with nothing beside it.
//!
//! A plain `cargo build` before any `cargo xtask build` finds no staged tools
//! and embeds none: that binary then loads its tools from a folder (`tools`
//! beside the binary, or `--tools-dir`). The files are embedded as they are,
//! and only when the component's sha256 is the one its manifest pins: the
//! check is made here, once, so the server does not read (and keep resident)
//! the 3.5 MB of embedded components at every start to hash them again; the
//! binary is its own root of trust (`host/src/registry/builtin.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let staged = manifest_dir.join("..").join("target").join("tools");
    // A folder that does not exist would make cargo rerun this script (and
    // rebuild the host) on every build; an empty one is watched cheaply.
    if let Err(e) = std::fs::create_dir_all(&staged) {
        println!("cargo::warning=cannot create {}: {e}; no built-in tools are embedded", staged.display());
    }
    println!("cargo::rerun-if-changed={}", staged.display());
    println!("cargo::rerun-if-changed=build.rs");
    order_symbols(&manifest_dir);

    let mut code = String::from("&[\n");
    let mut count = 0;
    for name in tool_names(&staged) {
        let manifest = staged.join(format!("{name}.toml"));
        let wasm = staged.join(format!("{name}.wasm"));
        if !wasm.is_file() {
            println!("cargo::warning={} has no {name}.wasm beside it; not embedded", manifest.display());
            continue;
        }
        if let Err(why) = pinned(&manifest, &wasm) {
            println!("cargo::warning={name}: {why}; not embedded");
            continue;
        }
        let describe = staged.join(format!("{name}.describe.json"));
        let describe = if describe.is_file() {
            format!("Some(include_str!({}))", literal(&describe))
        } else {
            "None".to_owned()
        };
        let _ = writeln!(
            code,
            "    EmbeddedTool {{ file: {:?}, manifest: include_str!({}), component: include_bytes!({}), describe: {describe} }},",
            format!("{name}.toml"),
            literal(&manifest),
            literal(&wasm),
        );
        count += 1;
    }
    code.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("builtins.rs"), code).expect("cannot write builtins.rs in OUT_DIR");
    if count == 0 {
        println!("cargo::warning=no built-in tools staged in {}; this binary loads its tools from a folder (`cargo xtask build` embeds them)", staged.display());
    }
}

/// `<tool>` of every `<tool>.toml` in `dir` (sorted), the way the tools
/// folder lists manifests: no hidden files, no `grants.toml`.
fn tool_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && n != "grants.toml")
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Links the functions that run at start-up and in tool calls side by side
/// (`link/symbol-order.txt`, written by the bench's `--symbol-order`), so a
/// running server keeps a few MB of its text resident instead of most of it:
/// the kernel maps 64 KiB around every page fault in a file mapping. Only
/// for release builds on x86_64 Linux, where rustc links with its own lld
/// (Rust ≥ 1.90), unless the flags pick another linker or
/// `OMNIROUTE_MCP_NO_SYMBOL_ORDER` is set. Names the build lacks are skipped.
fn order_symbols(manifest_dir: &Path) {
    let order = manifest_dir.join("link").join("symbol-order.txt");
    println!("cargo::rerun-if-changed={}", order.display());
    println!("cargo::rerun-if-env-changed=OMNIROUTE_MCP_NO_SYMBOL_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = ["linker-features=-lld", "link-self-contained=-linker", "fuse-ld=", "-Clinker=", "linker="]
        .iter()
        .any(|flag| flags.contains(flag))
        || !var("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty();
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || other_linker
        || std::env::var_os("OMNIROUTE_MCP_NO_SYMBOL_ORDER").is_some()
        || !order.is_file()
        || !rustc_links_with_lld()
    {
        return;
    }
    println!("cargo::rustc-link-arg-bin=omniroute-mcp=-Wl,--symbol-ordering-file={}", order.display());
    println!("cargo::rustc-link-arg-bin=omniroute-mcp=-Wl,--no-warn-symbol-ordering");
}

/// Whether the compiler is Rust 1.90 or later, whose x86_64 Linux target links with rust-lld.
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("--version").output() else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = text.split_whitespace().nth(1).unwrap_or_default().split(['.', '-']);
    let major: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let minor: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 90)
}

/// Whether `wasm`'s sha256 is the one `manifest` pins (its `sha256 = "…"` line).
fn pinned(manifest: &Path, wasm: &Path) -> Result<(), String> {
    use sha2::Digest;
    let text = std::fs::read_to_string(manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let pin = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(key, _)| key.trim() == "sha256")
        .map(|(_, value)| value.trim().trim_matches('"').to_ascii_lowercase())
        .ok_or_else(|| format!("{} pins no sha256", manifest.display()))?;
    let bytes = std::fs::read(wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
    let actual = hex::encode(sha2::Sha256::digest(&bytes));
    if actual == pin {
        Ok(())
    } else {
        Err(format!("{} has sha256 {actual}, but its manifest pins {pin}", wasm.display()))
    }
}

/// A Rust string literal of `path` (for include_bytes!).
fn literal(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}
