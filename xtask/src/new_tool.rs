//! `cargo xtask new-tool NAME [--dir DIR]`: a standalone, working plugin
//! crate using the Rust guest SDK, ready to test, build and load.
//!
//! The crate has its own `[workspace]` table (it builds outside this
//! repository's workspaces), the SDK as a path dependency and the testing
//! crate (`FakeGateway`, fixtures) as a path dev-dependency, a copy of
//! `tool-components/Cargo.lock` (the same dependency versions as the
//! built-in tools), the release profile of the built-in tools (so builds
//! with `--target-dir target/components` reuse their compiled
//! dependencies), a `tool.toml`, an example tool (a gateway health summary
//! over `read:health`) and unit tests on the testing crate's `FakeGateway`.

use crate::util;
use anyhow::{Context, bail};
use std::path::{Component, Path, PathBuf};

/// The prefix reserved for the built-in tools.
pub const RESERVED_PREFIX: &str = "omniroute_";

/// Checks a tool name the way the host does: 1-64 characters of a-z, 0-9,
/// `_` and `-`, not starting with the reserved prefix.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 64 {
        bail!(
            "tool name {name:?} must be 1-64 characters long (it is {})",
            name.len()
        );
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
    {
        bail!(
            "tool name {name:?} has {bad:?}: use only lowercase a-z, digits 0-9, '_' and '-' (e.g. {:?})",
            suggest(name)
        );
    }
    if let Some(rest) = name.strip_prefix(RESERVED_PREFIX) {
        bail!(
            "tool name {name:?} starts with the reserved prefix `{RESERVED_PREFIX}` (built-in tools only); the host refuses such plugins. Try {rest:?}"
        );
    }
    Ok(())
}

/// A valid name close to `name`, for error messages.
fn suggest(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches(RESERVED_PREFIX).to_string();
    if s.is_empty() {
        "my_tool".into()
    } else {
        s.chars().take(64).collect()
    }
}

/// The Cargo package name: `my_tool` -> `my-tool` (a leading digit gets `tool-`).
fn crate_name(name: &str) -> String {
    let dashed = name.replace('_', "-");
    if dashed.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        format!("tool-{}", dashed.trim_start_matches('-'))
    } else {
        dashed
    }
}

/// The Rust type name: `my_tool` -> `MyTool`.
fn type_name(name: &str) -> String {
    let camel: String = name
        .split(['_', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    if camel.starts_with(|c: char| c.is_ascii_digit()) || camel.is_empty() {
        format!("Tool{camel}")
    } else {
        camel
    }
}

/// `to` relative to the directory `from` (both absolute), for the SDK and
/// testing crate paths.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return to.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part.as_os_str());
    }
    out
}

/// `cargo xtask new-tool NAME [--dir DIR]`: generates the crate and prints
/// the commands that take it to a loaded plugin.
pub fn command(name: &str, dir: Option<&Path>) -> anyhow::Result<()> {
    validate_name(name)?;
    let root = util::workspace_root();
    // Default: beside the checkout, so the plugin is its own project.
    let dir = match dir {
        Some(d) => std::path::absolute(d)?,
        None => root
            .parent()
            .map(|p| p.join(crate_name(name)))
            .context("the repository has no parent folder; pass --dir")?,
    };
    generate(&root, name, &dir)?;
    let manifest = dir.join("Cargo.toml");
    println!(
        "Created the plugin crate {dir} (tool `{name}`, scope read:health).\n\
         \nNext, from {root}:\n\
         \n  cargo test --manifest-path {manifest} --target-dir target/components   # unit tests (FakeGateway)\
         \n  cargo xtask build-plugin {dir} --out ~/omniroute-plugins                # <name>.wasm + pinned {name}.toml\
         \n\nThen grant it in ~/omniroute-plugins/grants.toml:\n\
         \n  [tools]\n  {name} = [\"read:health\"]\n\
         \nand serve it:\n\
         \n  omniroute-mcp plugins verify ~/omniroute-plugins\
         \n  omniroute-mcp --plugins ~/omniroute-plugins\
         \n  omniroute-mcp plugins list --plugins ~/omniroute-plugins\n\
         \nEdit src/lib.rs (describe + call) and tool.toml (name, scopes) together; the tests check they agree.",
        dir = dir.display(),
        root = root.display(),
        manifest = manifest.display(),
    );
    Ok(())
}

/// Writes the crate for tool `name` into `dir` (which must not exist or be empty).
pub fn generate(root: &Path, name: &str, dir: &Path) -> anyhow::Result<()> {
    validate_name(name)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} already exists and is not empty; pick another --dir",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let path_to = |krate: &str| -> anyhow::Result<String> {
        let path = relative(&dir, &root.join("tool-components").join(krate).canonicalize()?);
        Ok(path.to_string_lossy().replace('\\', "/"))
    };
    let (sdk, testing) = (path_to("sdk")?, path_to("testing")?);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name(name))
            .replace("{{type}}", &type_name(name))
            .replace("{{sdk}}", &sdk)
            .replace("{{testing}}", &testing)
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("tool.toml", fill(TOOL_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("src/tests.rs", fill(TESTS_RS)),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text).with_context(|| format!("writing {file}"))?;
    }
    std::fs::copy(
        root.join("tool-components/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .context("copying tool-components/Cargo.lock")?;
    util::step(&format!("generated {} for tool `{name}`", dir.display()));
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{{crate}}"
description = "{{name}}: an omniroute-mcp tool plugin"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[lib]
# cdylib: the WebAssembly component; rlib: so the logic is unit-tested natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
omniroute-tool-sdk = { path = "{{sdk}}" }
# preserve_order: the output keeps the key order the tool writes.
serde_json = { version = "1", features = ["preserve_order"] }

[dev-dependencies]
# FakeGateway, FakeHost and real gateway answers for the native unit tests.
omniroute-tool-testing = { path = "{{testing}}" }

# A workspace of its own: builds anywhere, outside omniroute-mcp's workspaces.
[workspace]

# The built-in tools' release profile: fast guest code, and builds with
# `--target-dir <omniroute-mcp>/target/components` reuse their compiled dependencies.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#;

const TOOL_TOML: &str = r#"# The manifest the build pins (component + sha256 are added by
# `cargo xtask build-plugin`). `name` and `scopes` must match describe().
name = "{{name}}"
version = "0.1.0"
scopes = ["read:health"]

# Optional limits; they can only tighten the server's.
[limits]
deadline_ms = 5000
gateway_requests = 4
"#;

const LIB_RS: &str = r#"//! `{{name}}`: an omniroute-mcp tool plugin.
//!
//! Summarises the gateway's health: its status and version, and the
//! providers whose circuit breaker is not CLOSED. It needs the
//! `read:health` scope, which allows `GET /api/monitoring/health`.

use omniroute_tool_sdk::coerce;
use omniroute_tool_sdk::providers::{BreakerState, HEALTH};
use omniroute_tool_sdk::{Ctx, Tool, ToolDescription, ToolError, schema};
use serde_json::{Value, json};

/// The tool, exported as the component's `describe` and `call`.
pub struct {{type}};

omniroute_tool_sdk::export_tool!({{type}});

impl Tool for {{type}} {
    fn describe() -> ToolDescription {
        ToolDescription::read_only(
            "{{name}}",
            "Gateway health summary",
            "Summarises gateway health: status, version and the providers whose circuit breaker is not CLOSED",
            &["read:health"],
        )
        .input_schema(schema::input(
            json!({
                "includeClosed": { "type": "boolean", "default": false, "description": "Also list providers whose breaker is CLOSED" },
            }),
            &[],
        ))
        .output_schema(schema::object(
            json!({
                "status": schema::nullable("string", "The gateway's own status, e.g. healthy"),
                "version": schema::nullable("string", "Gateway version"),
                "breakers": {
                    "type": "array",
                    "description": "Provider circuit breakers, worst first",
                    "items": schema::object(
                        json!({
                            "provider": schema::typed("string", "Provider name as the gateway reports it"),
                            "state": { "type": "string", "enum": ["OPEN", "HALF_OPEN", "CLOSED"] },
                            "failureCount": schema::nullable("number", "Failures the breaker counted"),
                        }),
                        &["provider", "state", "failureCount"],
                    ),
                },
            }),
            &["status", "version", "breakers"],
        ))
    }

    fn call(input: Value, cx: &Ctx<'_>) -> Result<Value, ToolError> {
        let include_closed = input["includeClosed"].as_bool().unwrap_or(false);
        // `?` turns any failure (status, timeout, denied scope, ...) into the
        // error text an agent can act on.
        let health = cx.gateway.get_json(HEALTH, &[])?;
        summarize(&health, include_closed)
    }
}

/// The pure logic, unit-tested on real gateway answers.
pub fn summarize(health: &Value, include_closed: bool) -> Result<Value, ToolError> {
    if !health.is_object() {
        return Err(ToolError::new(
            "GET /api/monitoring/health did not answer a JSON object; check that OMNIROUTE_BASE_URL points at an OmniRoute gateway",
        ));
    }
    let mut breakers: Vec<(BreakerState, Value)> = coerce::arr(&health["providerBreakers"])
        .iter()
        .filter_map(|b| {
            let provider = b["provider"].as_str()?;
            let state = b["state"].as_str().and_then(BreakerState::parse)?;
            (include_closed || state != BreakerState::Closed).then(|| {
                let entry = json!({
                    "provider": provider,
                    "state": state.as_str(),
                    "failureCount": coerce::number_or_null(&b["failureCount"]),
                });
                (state, entry)
            })
        })
        .collect();
    // Worst first; the gateway's order otherwise.
    breakers.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(json!({
        "status": coerce::string_or_null(&health["status"]),
        "version": coerce::string_or_null(&health["version"]),
        "breakers": breakers.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests;
"#;

const TESTS_RS: &str = r#"//! Native unit tests: the testing crate's FakeGateway answers with real
//! gateway responses (`omniroute_tool_testing::fixtures`), and FakeHost runs
//! the tool through the same path as the component, checking the output schema.

use omniroute_tool_sdk::Method;
use omniroute_tool_sdk::providers::HEALTH;
use omniroute_tool_testing::{self as testing, FakeGateway, FakeHost, Reply, fixtures, gateway_failures};
use serde_json::json;

use super::*;

fn run(reply: Reply, input: Value) -> Result<Value, String> {
    FakeHost::new(FakeGateway::new().on_get(HEALTH, reply)).call::<{{type}}>(input)
}

#[test]
fn open_breakers_are_listed() {
    let out = run(Reply::json(200, fixtures::HEALTH_OPEN_BREAKERS), json!({})).unwrap();
    assert_eq!(out["status"], "healthy");
    assert_eq!(out["version"], "3.7.9");
    assert_eq!(out["breakers"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["breakers"][1],
        json!({ "provider": "mock", "state": "OPEN", "failureCount": 2 })
    );
}

#[test]
fn closed_breakers_only_on_request() {
    let out = run(Reply::json(200, fixtures::HEALTH_POPULATED), json!({})).unwrap();
    assert_eq!(out["breakers"], json!([]));
    let all = run(
        Reply::json(200, fixtures::HEALTH_POPULATED),
        json!({ "includeClosed": true }),
    )
    .unwrap();
    assert_eq!(all["breakers"].as_array().unwrap().len(), 4);
}

#[test]
fn gateway_failures_become_the_error_text() {
    for (reply, text) in gateway_failures(Method::Get, HEALTH) {
        assert_eq!(run(reply, json!({})), Err(text));
    }
    assert!(
        run(Reply::json(200, "[1]"), json!({}))
            .unwrap_err()
            .contains("did not answer a JSON object")
    );
}

#[test]
fn description_matches_tool_toml() {
    testing::check_description::<{{type}}>();
    testing::check_manifest::<{{type}}>(include_str!("../tool.toml"));
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("my_tool").is_ok());
        assert!(validate_name("a-1").is_ok());
        assert!(validate_name(&"x".repeat(64)).is_ok());
        assert!(
            validate_name(&"x".repeat(65))
                .unwrap_err()
                .to_string()
                .contains("1-64")
        );
        assert!(validate_name("").is_err());
        let upper = validate_name("My Tool").unwrap_err().to_string();
        assert!(upper.contains("\"my_tool\""), "{upper}");
        let reserved = validate_name("omniroute_x").unwrap_err().to_string();
        assert!(reserved.contains("reserved prefix"), "{reserved}");
        assert_eq!(crate_name("my_tool"), "my-tool");
        assert_eq!(crate_name("1x"), "tool-1x");
        assert_eq!(type_name("my_tool-2"), "MyTool2");
        assert_eq!(type_name("9lives"), "Tool9lives");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/x/sdk")),
            PathBuf::from("../../x/sdk")
        );
        assert_eq!(
            relative(Path::new("/a"), Path::new("/a/sdk")),
            PathBuf::from("sdk")
        );
    }
}
