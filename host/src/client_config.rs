//! `omniroute-mcp config <client>`: the snippet that registers this binary
//! with an MCP client, with the binary's absolute path filled in, so a user
//! copies it instead of writing JSON by hand. Secrets are never copied into
//! it: where one is in use, the snippet holds a placeholder to replace.

use serde_json::{Map, Value, json};
use std::path::Path;

/// The clients a snippet can be printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(clap::ValueEnum)]
pub enum Client {
    ClaudeDesktop,
    Cursor,
    Vscode,
    ClaudeCode,
}

/// The server's name in every snippet.
pub const SERVER_NAME: &str = "omniroute";

/// The environment a snippet passes to the server.
#[derive(Debug, Clone, Default)]
pub struct SnippetEnv {
    /// The gateway URL in force.
    pub base_url: String,
    /// OMNIROUTE_API_KEY is in use (a placeholder is added).
    pub api_key: bool,
    /// OMNIROUTE_DASHBOARD_PASSWORD is in use (a placeholder is added).
    pub dashboard_password: bool,
}

/// Placeholders for secrets (the value is never printed).
pub const API_KEY_PLACEHOLDER: &str = "<your OmniRoute API key>";
pub const PASSWORD_PLACEHOLDER: &str = "<your OmniRoute dashboard password>";

impl SnippetEnv {
    fn map(&self) -> Map<String, Value> {
        let mut env = Map::new();
        env.insert("OMNIROUTE_BASE_URL".into(), json!(self.base_url));
        if self.api_key {
            env.insert("OMNIROUTE_API_KEY".into(), json!(API_KEY_PLACEHOLDER));
        }
        if self.dashboard_password {
            env.insert("OMNIROUTE_DASHBOARD_PASSWORD".into(), json!(PASSWORD_PLACEHOLDER));
        }
        env
    }
}

/// Where the client keeps the snippet, for the line printed before it.
pub fn where_it_goes(client: Client) -> &'static str {
    match client {
        Client::ClaudeDesktop => {
            "Add to claude_desktop_config.json (macOS: ~/Library/Application Support/Claude/, Windows: %APPDATA%\\Claude\\), then restart Claude Desktop:"
        }
        Client::Cursor => "Add to ~/.cursor/mcp.json (all projects) or .cursor/mcp.json (one project):",
        Client::Vscode => "Add to .vscode/mcp.json in your workspace (or run \"MCP: Add Server\" and choose the user settings):",
        Client::ClaudeCode => "Run:",
    }
}

/// The snippet for `client` that starts `binary` with `env`.
pub fn snippet(client: Client, binary: &Path, env: &SnippetEnv) -> String {
    let command = binary.display().to_string();
    match client {
        Client::ClaudeDesktop | Client::Cursor => pretty(&json!({
            "mcpServers": { SERVER_NAME: { "command": command, "args": [], "env": env.map() } }
        })),
        Client::Vscode => pretty(&json!({
            "servers": { SERVER_NAME: { "type": "stdio", "command": command, "args": [], "env": env.map() } }
        })),
        Client::ClaudeCode => {
            let mut line = format!("claude mcp add {SERVER_NAME} --scope user");
            for (name, value) in env.map() {
                let value = value.as_str().unwrap_or_default().to_owned();
                line.push_str(&format!(" --env {}", shell_quote(&format!("{name}={value}"))));
            }
            line.push_str(&format!(" -- {}", shell_quote(&command)));
            line
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> SnippetEnv {
        SnippetEnv { base_url: "http://localhost:20128".into(), api_key: true, dashboard_password: false }
    }

    #[test]
    fn json_snippets_name_the_binary_and_hold_no_secret() {
        let bin = Path::new("/opt/omni route/omniroute-mcp");
        for client in [Client::ClaudeDesktop, Client::Cursor, Client::Vscode] {
            let text = snippet(client, bin, &env());
            let value: Value = serde_json::from_str(&text).unwrap();
            let servers = value.get("mcpServers").or_else(|| value.get("servers")).unwrap();
            let server = &servers[SERVER_NAME];
            assert_eq!(server["command"], "/opt/omni route/omniroute-mcp");
            assert_eq!(server["env"]["OMNIROUTE_BASE_URL"], "http://localhost:20128");
            assert_eq!(server["env"]["OMNIROUTE_API_KEY"], API_KEY_PLACEHOLDER);
            assert!(server["env"].get("OMNIROUTE_DASHBOARD_PASSWORD").is_none());
        }
    }

    #[test]
    fn the_claude_code_line_quotes_what_a_shell_would_split() {
        let line = snippet(Client::ClaudeCode, Path::new("/opt/omni route/omniroute-mcp"), &env());
        assert!(line.starts_with("claude mcp add omniroute --scope user --env OMNIROUTE_BASE_URL=http://localhost:20128 "), "{line}");
        assert!(line.contains("--env 'OMNIROUTE_API_KEY=<your OmniRoute API key>'"), "{line}");
        assert!(line.ends_with(" -- '/opt/omni route/omniroute-mcp'"), "{line}");
    }
}
