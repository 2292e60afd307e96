//! Where the things under test live. Each lookup can be overridden by an environment variable;
//! a missing artifact panics with a message telling the user how to build it.

use std::path::{Path, PathBuf};

/// Env var naming the server binary.
pub const BIN_ENV: &str = "OMNIROUTE_MCP_BIN";
/// Env var naming the folder of built-in tool components.
pub const TOOLS_DIR_ENV: &str = "OMNIROUTE_MCP_TOOLS_DIR";
/// Env var naming the folder of test-only tool components (test_hostile, ...).
pub const TEST_TOOLS_DIR_ENV: &str = "OMNIROUTE_MCP_TEST_TOOLS_DIR";
/// Env var naming the folder of example plugins staged by `cargo xtask build` (with `grants.toml`).
pub const PLUGINS_DIR_ENV: &str = "OMNIROUTE_MCP_TEST_PLUGINS_DIR";
/// Env var naming the Python interpreter that has the `mcp` SDK installed.
pub const PYTHON_ENV: &str = "OMNIROUTE_MCP_PYTHON";
/// Env var naming the xtask binary (what `cargo xtask` runs).
pub const XTASK_BIN_ENV: &str = "OMNIROUTE_MCP_XTASK_BIN";

const BUILD_HINT: &str =
    "run `cargo xtask test`, which builds the server and the tool components first";

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .unwrap_or_else(|| panic!("{} has no parent directory", here.display()))
        .to_path_buf()
}

/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// This crate's directory (`<workspace>/tests`).
pub fn tests_crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The captured OmniRoute 3.7.9 responses, kept once for every workspace:
/// `tool-components/testing/fixtures/gateway` (the guest testing crate embeds them).
pub fn gateway_fixtures_dir() -> PathBuf {
    workspace_root()
        .join("tool-components")
        .join("testing")
        .join("fixtures")
        .join("gateway")
}

/// `tests/python`.
pub fn python_scripts_dir() -> PathBuf {
    tests_crate_dir().join("python")
}

/// The `omniroute-mcp` binary: `$OMNIROUTE_MCP_BIN`, else `<workspace>/target/debug/omniroute-mcp`.
pub fn server_binary() -> PathBuf {
    let path =
        env_path(BIN_ENV).unwrap_or_else(|| target_dir().join("debug").join("omniroute-mcp"));
    if !path.is_file() {
        panic!(
            "server binary not found at {} (set {BIN_ENV} to use another one): {BUILD_HINT}",
            path.display()
        );
    }
    path
}

/// Built-in tool components: `$OMNIROUTE_MCP_TOOLS_DIR`, else `<workspace>/target/tools`.
/// Panics unless it holds at least one `.wasm` component.
pub fn builtin_tools_dir() -> PathBuf {
    let dir = env_path(TOOLS_DIR_ENV).unwrap_or_else(|| target_dir().join("tools"));
    require_components(&dir, TOOLS_DIR_ENV, &[]);
    dir
}

/// Test-only tool components: `$OMNIROUTE_MCP_TEST_TOOLS_DIR`, else `<workspace>/target/test-tools`.
/// Panics unless it holds `test_hostile.wasm` and its manifest.
pub fn test_tools_dir() -> PathBuf {
    let dir = env_path(TEST_TOOLS_DIR_ENV).unwrap_or_else(|| target_dir().join("test-tools"));
    require_components(&dir, TEST_TOOLS_DIR_ENV, &["test_hostile"]);
    dir
}

/// Example plugins: `$OMNIROUTE_MCP_TEST_PLUGINS_DIR`, else `<workspace>/target/plugins`.
/// Panics unless it holds `names` (component and manifest each).
pub fn example_plugins_dir(names: &[&str]) -> PathBuf {
    let dir = env_path(PLUGINS_DIR_ENV).unwrap_or_else(|| target_dir().join("plugins"));
    require_components(&dir, PLUGINS_DIR_ENV, names);
    dir
}

/// The venv interpreter: `$OMNIROUTE_MCP_PYTHON`, else `<workspace>/target/venv/bin/python`.
pub fn python_interpreter() -> PathBuf {
    let path = env_path(PYTHON_ENV)
        .unwrap_or_else(|| target_dir().join("venv").join("bin").join("python"));
    if !path.exists() {
        panic!(
            "Python interpreter not found at {} (set {PYTHON_ENV} to use another one): \
             run `cargo xtask test`, which creates the venv",
            path.display()
        );
    }
    path
}

/// The xtask binary: `$OMNIROUTE_MCP_XTASK_BIN`, else `<workspace>/target/debug/xtask`, which
/// every `cargo xtask` command builds.
pub fn xtask_binary() -> PathBuf {
    let path = env_path(XTASK_BIN_ENV).unwrap_or_else(|| target_dir().join("debug").join("xtask"));
    if !path.is_file() {
        panic!(
            "xtask binary not found at {} (set {XTASK_BIN_ENV} to use another one): {BUILD_HINT}",
            path.display()
        );
    }
    path
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn require_components(dir: &Path, var: &str, names: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!(
            "tool component folder {} does not exist (set {var} to use another one): {BUILD_HINT}",
            dir.display()
        );
    };
    let wasm: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    if wasm.is_empty() {
        panic!("no .wasm components in {}: {BUILD_HINT}", dir.display());
    }
    for name in names {
        for file in [format!("{name}.wasm"), format!("{name}.toml")] {
            if !dir.join(&file).is_file() {
                panic!("{file} missing from {}: {BUILD_HINT}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(
            gateway_fixtures_dir()
                .join("health-populated.json")
                .is_file()
        );
    }

    #[test]
    #[should_panic(expected = "cargo xtask test")]
    fn missing_components_name_the_fix() {
        let empty = crate::TempDir::new("paths");
        require_components(empty.path(), TOOLS_DIR_ENV, &[]);
    }
}
