//! Tenants for the HTTP transport: who may call (the SHA-256 of a bearer
//! token), what they may do (scopes, a tool allow-list), and how much
//! (concurrency, rate and live-session limits, a default budget guard for new
//! sessions). Each tenant authenticates as one [`Principal`].
//!
//! The tenants file never holds a token, only its hash; `omniroute-mcp
//! tenants add` prints a fresh token once and appends its hash. Its
//! `[oauth]` table (see [`super::oauth`]) lets OAuth access tokens act as
//! tenants too; a tenant reached only through OAuth needs no token hash.

use super::oauth::{OAuth, OAuthConfig};
use super::{DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_SESSIONS, DEFAULT_RATE_PER_MINUTE, DefaultBudget, Limits, Principal, PrincipalId};
use std::collections::HashMap;
use crate::capability::Grants;
use crate::state::{SpendCapConfig, SpendPolicy};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default)]
    tenant: Vec<TenantConfig>,
    oauth: Option<OAuthConfig>,
}

/// The tenants by id, for `[[oauth.map]]` to name.
pub type TenantTable = HashMap<String, Arc<Principal>>;

/// One `[[tenant]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    /// Lowercase hex SHA-256 of the bearer token; absent for a tenant only
    /// OAuth access tokens act as (`[[oauth.map]]`).
    pub token_sha256: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Tools this tenant may see and call (default: all its scopes allow).
    pub tools: Option<Vec<String>>,
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// Live Streamable HTTP sessions at once.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: u32,
    pub default_budget: Option<DefaultBudget>,
    /// The tenant's cap over all its sessions, handles and nodes:
    /// `spend_cap = { amount = 25.0, period = "month" }` (UTC periods).
    pub spend_cap: Option<SpendCapConfig>,
    /// USD reserved for a completion whose model (or a model its combo can
    /// reach) has no known price; without it such a completion is refused
    /// while a cap applies.
    pub unpriced_completion_usd: Option<f64>,
    /// Output tokens assumed for a completion without `max_tokens`.
    pub default_max_tokens: Option<u32>,
}

fn default_max_concurrent() -> u32 {
    DEFAULT_MAX_CONCURRENT
}
fn default_rate() -> u32 {
    DEFAULT_RATE_PER_MINUTE
}
fn default_max_sessions() -> u32 {
    DEFAULT_MAX_SESSIONS
}

/// A tenant: the hash its bearer token must match, and the principal it
/// authenticates as.
#[derive(Debug)]
struct Tenant {
    token_sha256: Option<[u8; 32]>,
    principal: Arc<Principal>,
}

impl Tenant {
    fn from_config(c: TenantConfig) -> Result<Tenant, String> {
        let id = PrincipalId::tenant(&c.id).map_err(|e| e.to_string())?;
        let hash = match &c.token_sha256 {
            None => None,
            Some(text) => Some(
                hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("tenant {}: token_sha256 must be 64 hex characters (SHA-256 of the token)", c.id))?,
            ),
        };
        let grants = Grants::from_checked_patterns(c.scopes.iter().map(String::as_str))
            .map_err(|e| format!("tenant {}: {e}", c.id))?;
        if c.max_concurrent == 0 || c.rate_per_minute == 0 || c.max_sessions == 0 {
            return Err(format!("tenant {}: max_concurrent, rate_per_minute and max_sessions must be at least 1", c.id));
        }
        if let Some(b) = &c.default_budget {
            if !matches!(b.action.as_str(), "block" | "degrade" | "alert") {
                return Err(format!("tenant {}: default_budget.action must be block, degrade or alert", c.id));
            }
            if !(b.max_cost.is_finite() && b.max_cost >= 0.0) {
                return Err(format!("tenant {}: default_budget.max_cost must be a non-negative number", c.id));
            }
        }
        let limits = Limits {
            max_concurrent: c.max_concurrent,
            rate_per_minute: c.rate_per_minute,
            max_sessions: c.max_sessions,
        };
        let spend = SpendPolicy::from_settings(&format!("tenant {}", c.id), c.spend_cap.as_ref(), c.unpriced_completion_usd, c.default_max_tokens)
            .map_err(|e| e.to_string())?;
        let principal = Principal::tenant(id, &c.id, grants, c.tools, limits, c.default_budget).with_spend(spend);
        Ok(Tenant { token_sha256: hash, principal: Arc::new(principal) })
    }
}

/// Every tenant of the server.
#[derive(Debug, Default)]
pub struct Tenants {
    tenants: Vec<Tenant>,
    /// The `[oauth]` table's resource server, when there is one.
    oauth: Option<Arc<OAuth>>,
}

impl Tenants {
    /// Parses a tenants file's text.
    pub fn parse(text: &str) -> Result<Tenants, String> {
        let repr: FileRepr = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut tenants: Vec<Tenant> = Vec::new();
        for c in repr.tenant {
            let t = Tenant::from_config(c)?;
            let name = t.principal.caller();
            if tenants.iter().any(|o| o.principal.id() == t.principal.id()) {
                return Err(format!("tenant id \"{name}\" appears twice"));
            }
            if t.token_sha256.is_some() && tenants.iter().any(|o| o.token_sha256 == t.token_sha256) {
                return Err(format!("tenant {name} shares its token hash with another tenant"));
            }
            tenants.push(t);
        }
        let oauth = match repr.oauth {
            None => None,
            Some(config) => {
                let table: TenantTable =
                    tenants.iter().map(|t| (t.principal.caller().to_owned(), t.principal.clone())).collect();
                Some(Arc::new(OAuth::new(config, &table).map_err(|e| e.to_string())?))
            }
        };
        if oauth.is_none()
            && let Some(t) = tenants.iter().find(|t| t.token_sha256.is_none())
        {
            return Err(format!(
                "tenant {} has no token_sha256 and there is no [oauth] table: nothing could authenticate as it",
                t.principal.caller()
            ));
        }
        Ok(Tenants { tenants, oauth })
    }

    /// The OAuth resource server of the `[oauth]` table.
    pub fn oauth(&self) -> Option<&Arc<OAuth>> {
        self.oauth.as_ref()
    }

    /// Reads and parses a tenants file.
    pub fn load(path: &Path) -> Result<Tenants, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the tenants file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("invalid tenants file {}: {e}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The principal of the tenant whose token this is. Compares every hash
    /// in constant time.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.tenants {
            let Some(expected) = &t.token_sha256 else { continue };
            let diff = expected.iter().zip(hash.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(t.principal.clone());
            }
        }
        found
    }
}

/// Hex SHA-256 of a token, as the tenants file stores it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: 32 bytes from the OS RNG, hex-encoded, prefixed `omr_`.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(format!("omr_{}", hex::encode(bytes)))
}

/// What `tenants add` appends.
pub struct NewTenant<'a> {
    pub id: &'a str,
    pub scopes: &'a [String],
    pub tools: Option<&'a [String]>,
    pub max_concurrent: u32,
    pub rate_per_minute: u32,
    pub max_sessions: u32,
}

/// Appends a tenant to `path` (creating it, mode 0600), returning its token.
pub fn add_tenant(path: &Path, new: &NewTenant<'_>) -> Result<String, String> {
    PrincipalId::tenant(new.id).map_err(|e| e.to_string())?;
    Grants::from_checked_patterns(new.scopes.iter().map(String::as_str)).map_err(|e| e.to_string())?;
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let current = Tenants::parse(&existing).map_err(|e| format!("invalid tenants file {}: {e}", path.display()))?;
    if current.tenants.iter().any(|t| t.principal.caller() == new.id) {
        return Err(format!("tenant \"{}\" already exists in {}", new.id, path.display()));
    }
    let token = new_token().map_err(|e| format!("cannot read random bytes: {e}"))?;
    let quote = |v: &[String]| {
        v.iter().map(|s| toml::Value::from(s.trim()).to_string()).collect::<Vec<_>>().join(", ")
    };
    let mut block = String::new();
    if !existing.is_empty() && !existing.ends_with("\n\n") {
        block.push_str(if existing.ends_with('\n') { "\n" } else { "\n\n" });
    }
    block.push_str(&format!(
        "[[tenant]]\nid = {}\ntoken_sha256 = \"{}\"\nscopes = [{}]\n",
        toml::Value::from(new.id),
        token_hash(&token),
        quote(new.scopes)
    ));
    if let Some(tools) = new.tools {
        block.push_str(&format!("tools = [{}]\n", quote(tools)));
    }
    block.push_str(&format!(
        "max_concurrent = {}\nrate_per_minute = {}\nmax_sessions = {}\n",
        new.max_concurrent, new.rate_per_minute, new.max_sessions
    ));
    Tenants::parse(&(existing.clone() + &block)).map_err(|e| format!("the new tenant would not parse: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.write_all(block.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(extra: &str) -> Tenants {
        Tenants::parse(&format!(
            "[[tenant]]\nid = \"a\"\ntoken_sha256 = \"{}\"\nscopes = [\"read:health\"]\n{extra}",
            token_hash("secret")
        ))
        .unwrap()
    }

    #[test]
    fn authenticates_by_hash() {
        let t = one("");
        assert_eq!(t.authenticate("secret").unwrap().caller(), "a");
        assert!(t.authenticate("other").is_none());
        assert!(t.authenticate("").is_none());
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Tenants::parse("[[tenant]]\nid = \"a\"\ntoken_sha256 = \"xyz\"\n").is_err());
        let h = token_hash("x");
        assert!(Tenants::parse(&format!("[[tenant]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\nscopes = [\"read:nope\"]\n")).is_err());
        assert!(Tenants::parse(&format!("[[tenant]]\nid = \"a b\"\ntoken_sha256 = \"{h}\"\n")).is_err());
        // The one scope-pattern parser: a prefix that matches no scope is refused too.
        let err = Tenants::parse(&format!("[[tenant]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\nscopes = [\"bogus*\"]\n")).unwrap_err();
        assert!(err.contains("\"bogus*\" matches no scope") && err.contains("read:health"), "{err}");
        assert!(Tenants::parse(&format!("[[tenant]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\nmax_sessions = 0\n")).is_err());
    }

    #[test]
    fn oauth_tables_are_checked_against_the_tenants() {
        let oauth_only = "[[tenant]]\nid = \"acme\"\nscopes = [\"read:*\"]\n";
        let err = Tenants::parse(oauth_only).unwrap_err();
        assert!(err.contains("no token_sha256 and there is no [oauth] table"), "{err}");
        let issuer = "[oauth]\n[[oauth.issuer]]\nname = \"corp\"\nissuer = \"https://sso.example.com/realms/acme\"\n";
        let ok = Tenants::parse(&format!("{oauth_only}{issuer}[[oauth.map]]\nissuer = \"corp\"\nsubject = \"u1\"\ntenant = \"acme\"\n")).unwrap();
        assert!(ok.oauth().is_some() && ok.authenticate("anything").is_none());
        let err = Tenants::parse(&format!("{oauth_only}{issuer}[[oauth.map]]\nissuer = \"corp\"\ntenant = \"nobody\"\n")).unwrap_err();
        assert!(err.contains("[[oauth.map]] #1") && err.contains("no [[tenant]] has id \"nobody\""), "{err}");
        let err = Tenants::parse(&format!("{oauth_only}[oauth]\n[[oauth.issuer]]\nname = \"corp\"\nissuer = \"https://x\"\nalgorithms = [\"HS256\"]\n")).unwrap_err();
        assert!(err.contains("HS256 is refused"), "{err}");
        let err = Tenants::parse(&format!("{oauth_only}[oauth]\n[[oauth.issuer]]\nname = \"corp\"\nissuer = \"https://x\"\nalgorithms = [\"none\"]\n")).unwrap_err();
        assert!(err.contains("algorithm \"none\" is unknown"), "{err}");
    }

    #[test]
    fn spend_caps_are_read_and_checked() {
        let t = one("spend_cap = { amount = 25.0, period = \"month\" }\nunpriced_completion_usd = 0.02\ndefault_max_tokens = 1000\n");
        let spend = *t.authenticate("secret").unwrap().spend();
        assert_eq!(spend.cap, Some(crate::state::SpendCap { amount: 25.0, period: crate::state::Period::Month }));
        assert_eq!((spend.unpriced_completion_usd, spend.default_max_tokens), (Some(0.02), 1000));
        let legacy = one("default_budget = { max_cost = 1.0, action = \"block\" }\n");
        assert_eq!(legacy.authenticate("secret").unwrap().spend().cap, None, "default_budget stays the per-session guard");
        let h = token_hash("x");
        let err = Tenants::parse(&format!("[[tenant]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\nspend_cap = {{ amount = 5, period = \"week\" }}\n")).unwrap_err();
        assert!(err.contains("tenant a: spend_cap.period must be \"day\", \"month\" or \"total\""), "{err}");
        let err = Tenants::parse(&format!("[[tenant]]\nid = \"a\"\ntoken_sha256 = \"{h}\"\nspend_cap = {{ amount = 5 }}\n")).unwrap_err();
        assert!(err.contains("period"), "{err}");
    }

    #[test]
    fn rate_limit_message() {
        let t = one("rate_per_minute = 2\nmax_concurrent = 10\n");
        let tenant = t.authenticate("secret").unwrap();
        let _a = tenant.admit_call().unwrap();
        let _b = tenant.admit_call().unwrap();
        let err = tenant.admit_call().unwrap_err();
        assert!(err.starts_with("Rate limit exceeded for tenant a: 2 calls per minute; retry in "), "{err}");
    }

    #[test]
    fn concurrency_limit_releases() {
        let t = one("rate_per_minute = 100\nmax_concurrent = 1\n");
        let tenant = t.authenticate("secret").unwrap();
        let a = tenant.admit_call().unwrap();
        assert!(tenant.admit_call().unwrap_err().starts_with("Concurrency limit reached for tenant a"));
        drop(a);
        assert!(tenant.admit_call().is_ok());
    }

    #[test]
    fn add_appends_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("omr-tenants-{}", std::process::id()));
        let path = dir.join("tenants.toml");
        let _ = std::fs::remove_file(&path);
        let scopes = vec!["read:health".to_owned(), "read:combos".to_owned()];
        let new = NewTenant { id: "acme", scopes: &scopes, tools: None, max_concurrent: 2, rate_per_minute: 30, max_sessions: 3 };
        let token = add_tenant(&path, &new).unwrap();
        let new2 = NewTenant { id: "beta", ..new };
        let token2 = add_tenant(&path, &new2).unwrap();
        assert!(add_tenant(&path, &new2).is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token) && !text.contains(&token2));
        let t = Tenants::load(&path).unwrap();
        assert_eq!(t.authenticate(&token).unwrap().caller(), "acme");
        assert_eq!(t.authenticate(&token2).unwrap().limits().unwrap().rate_per_minute, 30);
        assert_eq!(t.authenticate(&token2).unwrap().limits().unwrap().max_sessions, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
