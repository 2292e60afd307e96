//! `server.json` for the MCP registry: the npm, PyPI and MCPB packages of this
//! release, validated against the registry's published schema, vendored in
//! `xtask/dist/schemas/` (see the README there for its source and version).

use super::Meta;
use anyhow::Context;
use serde_json::json;
use std::path::Path;

/// The vendored schema and the `$schema` URL it was published at.
pub const SCHEMA_FILE: &str = "xtask/dist/schemas/server.schema.2025-12-11.json";
pub const SCHEMA_URL: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

/// The server's registry name. Publishing needs the namespace's owner to
/// prove it (a GitHub account or a domain); change it to the publisher's.
pub const REGISTRY_NAME: &str = "io.github.omniroute-mcp/omniroute-mcp";

/// The MCPB bundle as the registry lists it (downloaded from the release).
pub struct Bundle<'a> {
    pub file_name: &'a str,
    pub sha256: &'a str,
}

/// The environment every package reads.
fn environment() -> serde_json::Value {
    json!([
        {
            "name": "OMNIROUTE_BASE_URL",
            "description": "The OmniRoute gateway's base URL",
            "default": "http://localhost:20128",
            "format": "string",
            "isRequired": false
        },
        {
            "name": "OMNIROUTE_API_KEY",
            "description": "An OmniRoute API key, for /v1 routes",
            "isSecret": true,
            "isRequired": false
        },
        {
            "name": "OMNIROUTE_DASHBOARD_PASSWORD",
            "description": "The gateway's dashboard password, for management routes",
            "isSecret": true,
            "isRequired": false
        }
    ])
}

/// The `server.json` of this release.
pub fn server_json(meta: &Meta, npm_name: &str, pypi_name: &str, bundles: &[Bundle<'_>]) -> serde_json::Value {
    let stdio = json!({ "type": "stdio" });
    let mut packages = vec![
        json!({
            "registryType": "npm",
            "identifier": npm_name,
            "version": meta.version,
            "runtimeHint": "npx",
            "transport": stdio,
            "environmentVariables": environment(),
        }),
        json!({
            "registryType": "pypi",
            "identifier": pypi_name,
            "version": meta.version,
            "runtimeHint": "uvx",
            "transport": stdio,
            "environmentVariables": environment(),
        }),
    ];
    for bundle in bundles {
        packages.push(json!({
            "registryType": "mcpb",
            "identifier": format!("{}/releases/download/v{}/{}", meta.repository.trim_end_matches('/'), meta.version, bundle.file_name),
            "version": meta.version,
            "fileSha256": bundle.sha256,
            "transport": stdio,
            "environmentVariables": environment(),
        }));
    }
    json!({
        "$schema": SCHEMA_URL,
        "name": REGISTRY_NAME,
        "title": "OmniRoute",
        "description": meta.short_description(),
        "version": meta.version,
        "repository": { "url": meta.repository, "source": "git" },
        "websiteUrl": meta.repository,
        "packages": packages,
    })
}

/// Checks `value` against the vendored registry schema; the error lists every violation.
pub fn validate(root: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let path = root.join(SCHEMA_FILE);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    anyhow::ensure!(errors.is_empty(), "server.json does not match {}:\n  {}", SCHEMA_FILE, errors.join("\n  "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta::test()
    }

    #[test]
    fn the_release_server_json_matches_the_registry_schema() {
        let root = crate::util::workspace_root();
        let sha = "a".repeat(64);
        let value = server_json(&meta(), "omniroute-mcp", "omniroute-mcp", &[Bundle { file_name: "x.mcpb", sha256: &sha }]);
        validate(&root, &value).unwrap();
    }

    #[test]
    fn the_schema_refuses_what_the_registry_refuses() {
        let root = crate::util::workspace_root();
        let mut value = server_json(&meta(), "omniroute-mcp", "omniroute-mcp", &[]);
        value["packages"][0]["version"] = json!("latest");
        value["name"] = json!("no-namespace");
        let err = validate(&root, &value).unwrap_err().to_string();
        assert!(err.contains("/name") && err.contains("/packages/0/version"), "{err}");
    }
}
