//! What clients discover: the protected-resource metadata (RFC 9728) and
//! the `WWW-Authenticate: Bearer` challenges (RFC 6750 §3, RFC 9728 §5.1)
//! that point to it.

use crate::capability::Scope;
use serde_json::{Value, json};

/// The well-known path of the metadata; the path-suffixed form appends the
/// resource's path (`/.well-known/oauth-protected-resource/mcp`).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata document for `resource`.
pub fn document(resource: &str, authorization_servers: &[String]) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": authorization_servers,
        "scopes_supported": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "resource_name": "omniroute-mcp",
    })
}

/// Where the metadata of `resource` is: the well-known path inserted between
/// its origin and its path (RFC 9728 §3.1).
pub fn metadata_url(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(url) => {
            let path = url.path().trim_end_matches('/');
            format!("{}{WELL_KNOWN}{path}", url.origin().ascii_serialization())
        }
        Err(_) => format!("{}{WELL_KNOWN}", resource.trim_end_matches('/')),
    }
}

/// A `Bearer` challenge's parameters.
#[derive(Debug, Default)]
pub struct Challenge<'a> {
    pub resource: &'a str,
    /// `invalid_token`, `insufficient_scope`, or none (no token was sent).
    pub error: Option<&'static str>,
    pub description: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Challenge<'_> {
    /// The header value.
    pub fn header(&self) -> String {
        let mut out = format!("Bearer resource_metadata=\"{}\"", quoted(&metadata_url(self.resource)));
        if !self.scopes.is_empty() {
            let names: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
            out.push_str(&format!(", scope=\"{}\"", names.join(" ")));
        }
        if let Some(error) = self.error {
            out.push_str(&format!(", error=\"{error}\""));
        }
        if let Some(d) = &self.description {
            out.push_str(&format!(", error_description=\"{}\"", quoted(d)));
        }
        out
    }
}

/// A quoted-string's content: printable ASCII, `"` and `\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_path() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(metadata_url("http://127.0.0.1:8931/"), "http://127.0.0.1:8931/.well-known/oauth-protected-resource");
    }

    #[test]
    fn challenges_quote_their_parameters() {
        let c = Challenge {
            resource: "https://h/mcp",
            error: Some("insufficient_scope"),
            description: Some("needs \"read:combos\"\n".into()),
            scopes: vec![Scope::ReadCombos, Scope::WriteCombos],
        };
        assert_eq!(
            c.header(),
            "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\", \
             scope=\"read:combos write:combos\", error=\"insufficient_scope\", \
             error_description=\"needs \\\"read:combos\\\"?\""
        );
    }
}
