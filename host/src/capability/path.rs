//! Gateway path normalisation: the broker only ever matches and sends paths
//! that passed through here, so a component cannot smuggle a traversal, a
//! second host or an encoded slash past the capability table.

/// A gateway path that is absolute, has no empty, `.` or `..` segments and no
/// encoded separators. Only [`normalize_path`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    /// The path, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("gateway path must start with '/', got {0:?}")]
    NotAbsolute(String),
    #[error("gateway path must be a path, not a URL: {0:?}")]
    HasScheme(String),
    #[error("gateway path must not contain a query or fragment; send the query separately: {0:?}")]
    HasQuery(String),
    #[error("gateway path must not contain empty, '.' or '..' segments: {0:?}")]
    BadSegment(String),
    #[error("gateway path must not contain encoded separators or dots, backslashes or control characters: {0:?}")]
    BadCharacter(String),
    #[error("gateway path is too long ({0} bytes, at most 2048)")]
    TooLong(usize),
}

const MAX_PATH: usize = 2048;

/// Validates a path a component asked for. Nothing is rewritten silently: a
/// path that would need rewriting is refused, so what is checked is exactly
/// what is sent.
pub fn normalize_path(raw: &str) -> Result<NormalizedPath, PathError> {
    if raw.len() > MAX_PATH {
        return Err(PathError::TooLong(raw.len()));
    }
    if raw.contains("://") {
        return Err(PathError::HasScheme(raw.to_owned()));
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute(raw.to_owned()));
    }
    if raw.contains('?') || raw.contains('#') {
        return Err(PathError::HasQuery(raw.to_owned()));
    }
    if raw
        .chars()
        .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    {
        return Err(PathError::BadCharacter(raw.to_owned()));
    }
    let lower = raw.to_ascii_lowercase();
    // %2f '/', %5c '\', %2e '.', %25 '%' (double encoding), %00 NUL.
    if ["%2f", "%5c", "%2e", "%25", "%00"]
        .iter()
        .any(|enc| lower.contains(enc))
    {
        return Err(PathError::BadCharacter(raw.to_owned()));
    }
    let rest = &raw[1..];
    // "/" alone is a valid path; otherwise no segment may be empty or a dot segment.
    if !rest.is_empty()
        && rest
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(PathError::BadSegment(raw.to_owned()));
    }
    Ok(NormalizedPath(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_paths() {
        for p in ["/", "/api/combos", "/api/combos/c9df3fce-0dd7", "/v1/chat/completions", "/api/usage/call-logs/a%20b"] {
            assert_eq!(normalize_path(p).unwrap().as_str(), p);
        }
    }

    #[test]
    fn refuses_everything_that_could_escape() {
        let bad = [
            "api/combos",
            "http://evil.example/api/combos",
            "//evil.example/api",
            "/api//combos",
            "/api/./combos",
            "/api/../v1/chat/completions",
            "/api/combos/..",
            "/api/combos/",
            "/api/combos%2f..%2fkeys",
            "/api/combos%2F",
            "/api/%2e%2e/keys",
            "/api/%252e%252e/keys",
            "/api\\combos",
            "/api/combos?x=1",
            "/api/combos#frag",
            "/api/com bos",
            "/api/combos\n",
        ];
        for p in bad {
            assert!(normalize_path(p).is_err(), "{p:?} should be refused");
        }
        assert!(matches!(normalize_path(&"/a".repeat(2000)), Err(PathError::TooLong(_))));
    }
}
