//! The built-in tools embedded in the binary by `host/build.rs` (what
//! `cargo xtask build` staged), so the server needs nothing beside it.
//!
//! Each embedded tool is the staged manifest (sha256 pinned), the component
//! and, when the build produced it, the `describe()` output that the host
//! validated at build time. With that output `tools/list` needs no compile:
//! the component is compiled (or mapped from the cache) on its first call.
//! build.rs embeds a component only when its sha256 is the one its manifest
//! pins; the server does not hash it again at each start (the binary is its
//! own root of trust, and hashing would read 3.5 MB of it into memory).

use serde::Deserialize;

/// One built-in tool as embedded at build time.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedTool {
    /// The manifest's file name (`<tool>.toml`), for messages.
    pub file: &'static str,
    /// The manifest text (component file name and sha256 pinned by xtask).
    pub manifest: &'static str,
    /// The component bytes.
    pub component: &'static [u8],
    /// `{"sha256": …, "describe": "<describe() JSON>"}` from the build, if any.
    pub describe: Option<&'static str>,
}

static EMBEDDED: &[EmbeddedTool] = include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The tools embedded in this binary (none when it was built without
/// `cargo xtask build`; it then needs a tools folder).
pub fn embedded() -> &'static [EmbeddedTool] {
    EMBEDDED
}

/// What the build recorded for one component: which component (by sha256)
/// the `describe()` output belongs to, and the output itself.
#[derive(Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct BuildDescribe {
    pub sha256: String,
    pub describe: String,
}

impl EmbeddedTool {
    /// The build's `describe()` output if it was made for the component with
    /// `sha256`; a stale or unreadable one is ignored (describe() then runs).
    pub fn describe_for(&self, sha256: &str) -> Option<String> {
        let text = self.describe?;
        match serde_json::from_str::<BuildDescribe>(text) {
            Ok(entry) if entry.sha256 == sha256 => Some(entry.describe),
            Ok(_) => {
                tracing::warn!(tool = self.file, "the embedded describe() output was made for another component; running describe()");
                None
            }
            Err(e) => {
                tracing::warn!(tool = self.file, error = %e, "the embedded describe() output is unreadable; running describe()");
                None
            }
        }
    }
}

/// The label shown where a folder path would be (`tools`, refusals).
pub const EMBEDDED_LABEL: &str = "(built into the binary)";

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(describe: Option<&'static str>) -> EmbeddedTool {
        EmbeddedTool { file: "t.toml", manifest: "", component: b"", describe }
    }

    #[test]
    fn the_build_describe_is_used_only_for_the_component_it_was_made_for() {
        let text = r#"{"sha256":"aa","describe":"{\"name\":\"t\"}"}"#;
        assert_eq!(tool(Some(text)).describe_for("aa").as_deref(), Some(r#"{"name":"t"}"#));
        assert_eq!(tool(Some(text)).describe_for("bb"), None, "made for another component");
        assert_eq!(tool(Some("not json")).describe_for("aa"), None);
        assert_eq!(tool(None).describe_for("aa"), None);
    }

    #[test]
    fn every_embedded_tool_has_its_component_and_a_describe_for_it() {
        use sha2::{Digest, Sha256};
        for tool in embedded() {
            let manifest = crate::registry::Manifest::parse(tool.manifest).expect("an embedded manifest parses");
            let sha = hex::encode(Sha256::digest(tool.component));
            assert_eq!(sha, manifest.sha256, "{}: the embedded component is the pinned one", tool.file);
            // `cargo xtask build` records describe() for each; a binary built without it has none.
            if tool.describe.is_some() {
                assert!(tool.describe_for(&sha).is_some(), "{}: the embedded describe() is for this component", tool.file);
            }
        }
    }
}
