//! Names of state: handles (what a client holds) and bucket keys (what the
//! store files state under).

use std::fmt;

/// An opaque, unguessable handle bound to one principal: `sh_` and 160 bits
/// from the OS RNG in hex. Knowing a handle is not enough to read its state:
/// it also has to be presented by the principal that minted it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

const HANDLE_PREFIX: &str = "sh_";
const HANDLE_BYTES: usize = 20;

impl Handle {
    /// A fresh handle.
    pub fn mint() -> Result<Handle, getrandom::Error> {
        Ok(Handle(format!("{HANDLE_PREFIX}{}", crate::db::random_hex(HANDLE_BYTES)?)))
    }

    /// The handle a client passed, if it has the shape of one (anything else
    /// cannot name state and is "not found" without a lookup).
    pub fn parse(text: &str) -> Option<Handle> {
        let hex = text.strip_prefix(HANDLE_PREFIX)?;
        (hex.len() == HANDLE_BYTES * 2 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Handle(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Handle {
    /// Logs show only a prefix: a handle is a bearer of state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}…)", &self.0[..self.0.len().min(9)])
    }
}

/// Where one bucket of session state is filed within a principal: a handle
/// (`h:<handle>`), a legacy transport session (`s:<id>`), or the principal's
/// default bucket (`d`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey(String);

/// Longest transport session id kept as a bucket name.
const MAX_SESSION_ID: usize = 256;

/// The kinds of bucket, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKind {
    Handle,
    Session,
    Default,
}

impl BucketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BucketKind::Handle => "handle",
            BucketKind::Session => "session",
            BucketKind::Default => "default",
        }
    }
}

impl BucketKey {
    /// The bucket a handle names.
    pub fn handle(handle: &Handle) -> BucketKey {
        BucketKey(format!("h:{}", handle.0))
    }

    /// A legacy transport session's bucket (stdio process, `Mcp-Session-Id`);
    /// over-long ids are cut, never trusted to be short.
    pub fn session(id: &str) -> BucketKey {
        let mut end = id.len().min(MAX_SESSION_ID);
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        BucketKey(format!("s:{}", &id[..end]))
    }

    /// The principal's default bucket (no handle, no transport session).
    pub fn default_bucket() -> BucketKey {
        BucketKey("d".to_owned())
    }

    /// A key read back from the database.
    pub(crate) fn from_stored(text: String) -> BucketKey {
        BucketKey(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> BucketKind {
        match self.0.as_bytes().first() {
            Some(b'h') => BucketKind::Handle,
            Some(b's') => BucketKind::Session,
            _ => BucketKind::Default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_random_and_checked() {
        let a = Handle::mint().unwrap();
        let b = Handle::mint().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 3 + 40);
        assert_eq!(Handle::parse(a.as_str()), Some(a.clone()));
        assert_eq!(Handle::parse("sh_xyz"), None);
        assert_eq!(Handle::parse(&a.as_str().to_uppercase()), None);
        assert!(!format!("{a:?}").contains(&a.as_str()[9..]), "Debug hides the handle");
        assert_eq!(BucketKey::handle(&a).kind(), BucketKind::Handle);
        assert_eq!(BucketKey::session("x").as_str(), "s:x");
        assert_eq!(BucketKey::session(&"é".repeat(300)).as_str().len(), 2 + 256);
        assert_eq!(BucketKey::default_bucket().kind(), BucketKind::Default);
    }
}
