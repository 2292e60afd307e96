//! Embeds the built-in tool components that `cargo xtask build` staged in
//! `<workspace>/target/tools` (`<tool>.toml` + `<tool>.wasm`, and the
//! `<tool>.describe.json` that xtask produced with the host and validated),
//! so the released binary runs from any folder with nothing beside it.
//!
//! A plain `cargo build` before any `cargo xtask build` finds no staged tools
//! and embeds none: that binary then loads its tools from a folder (`tools`
//! beside the binary, or `--tools-dir`). The files are embedded as they are;
//! the binary still checks each component against its manifest's sha256
//! when it loads it (`host/src/registry/builtin.rs`).

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

    let mut code = String::from("&[\n");
    let mut count = 0;
    for name in tool_names(&staged) {
        let manifest = staged.join(format!("{name}.toml"));
        let wasm = staged.join(format!("{name}.wasm"));
        if !wasm.is_file() {
            println!("cargo::warning={} has no {name}.wasm beside it; not embedded", manifest.display());
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

/// A Rust string literal of `path` (for include_bytes!).
fn literal(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}
