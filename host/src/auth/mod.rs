//! Who is calling: the [`Principal`] every tool call runs for.
//!
//! The transport resolves it (stdio: once, from the operator's environment;
//! HTTP: per request, from the tenant behind the bearer token) and hands it to
//! the call service. It carries everything admission and the scope check
//! need, so the call path has one shape whatever the transport. State that
//! outlives a call is namespaced by [`PrincipalId`].

mod limits;
pub mod live;
pub mod oauth;
pub mod revocations;
pub mod tenants;

pub use limits::{CallPermit, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_SESSIONS, DEFAULT_RATE_PER_MINUTE, DefaultBudget, Limits, RATE_BUCKET};

use crate::capability::{Grants, Scope};
use crate::state::{SpendPolicy, Store};
use limits::Limiter;
use std::fmt;
use std::sync::Arc;

/// The stdio operator's name when `OMNIROUTE_MCP_PRINCIPAL` is not set. Every
/// stdio process on a machine is then the same principal, across restarts and
/// across IDE processes sharing one data folder.
pub const DEFAULT_OPERATOR: &str = "local";

/// A principal's stable identity, `operator:<name>` (stdio) or
/// `tenant:<id>` (HTTP): the kind is part of the id, so a tenant named like
/// the local operator never shares its state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalId(String);

/// A principal name outside the allowed characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} \"{name}\" must be 1-64 characters of A-Z a-z 0-9 _ . -")]
pub struct InvalidName {
    what: &'static str,
    name: String,
}

impl PrincipalId {
    /// The stdio operator named `name` (`OMNIROUTE_MCP_PRINCIPAL`).
    pub fn operator(name: &str) -> Result<Self, InvalidName> {
        checked_name("OMNIROUTE_MCP_PRINCIPAL", name).map(|n| Self(format!("operator:{n}")))
    }

    /// The HTTP tenant `id` of the tenants file.
    pub fn tenant(id: &str) -> Result<Self, InvalidName> {
        checked_name("tenant id", id).map(|n| Self(format!("tenant:{n}")))
    }

    /// The subject `subject` of the authorization server the operator named
    /// `issuer` in `[[oauth.issuer]]`, under that issuer's default policy. A
    /// subject outside the name characters is kept as the first 32 hex digits
    /// of its SHA-256, so any IdP's `sub` maps to a stable, path-safe id.
    pub fn oauth_subject(issuer: &str, subject: &str) -> Result<Self, InvalidName> {
        let issuer = checked_name("oauth issuer name", issuer)?;
        Ok(Self(format!("oauth:{issuer}:{}", subject_label(subject))))
    }

    /// A full id as [`PrincipalId::as_str`] writes it (`tenant:acme`,
    /// `operator:local`, `oauth:sso:alice`), checked part by part; `None`
    /// for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(':')?;
        let valid = match kind {
            "tenant" | "operator" => checked_name("name", rest).is_ok(),
            "oauth" => rest.split_once(':').is_some_and(|(issuer, sub)| checked_name("issuer", issuer).is_ok() && checked_name("subject", sub).is_ok()),
            _ => false,
        };
        valid.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A subject as ids and audit rows show it: itself when it is a valid name,
/// else `sha256-` and the first 32 hex digits of its SHA-256.
pub fn subject_label(subject: &str) -> String {
    match checked_name("subject", subject) {
        Ok(name) => name.to_owned(),
        Err(_) => {
            use sha2::Digest;
            let digest = hex::encode(sha2::Sha256::digest(subject.as_bytes()));
            format!("sha256-{}", &digest[..32])
        }
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names are path- and log-safe: 1-64 characters of A-Z a-z 0-9 _ . -
fn checked_name<'a>(what: &'static str, name: &'a str) -> Result<&'a str, InvalidName> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok { Ok(name) } else { Err(InvalidName { what, name: name.to_owned() }) }
}

/// Where a principal's grants come from, as denial texts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantSource {
    /// `OMNIROUTE_MCP_SCOPES` (or every scope, while enforcement is off).
    Env,
    /// Enforcement is on and `OMNIROUTE_MCP_SCOPES` grants nothing.
    None,
    /// The tenant's `scopes` in the tenants file.
    Tenant,
    /// An OAuth access token's scopes, within what the operator allows its
    /// tenant or subject.
    Token,
}

impl GrantSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantSource::Env => "env",
            GrantSource::None => "none",
            GrantSource::Tenant => "tenant",
            GrantSource::Token => "token",
        }
    }
}

/// Who a call runs for, and what that allows.
#[derive(Debug)]
pub struct Principal {
    id: PrincipalId,
    /// The name in audit rows and denial texts (stdio: `anonymous`, as the
    /// original server says; HTTP: the tenant id).
    caller: String,
    grants: Grants,
    enforce_scopes: bool,
    grant_source: GrantSource,
    /// Tools this principal may see and call; `None`: every tool.
    tools: Option<Vec<String>>,
    /// Rate, concurrency and session limits; `None`: unlimited (the operator).
    /// Shared by the principals an OAuth token narrows from this one, so a
    /// tenant's limits hold whichever tokens its callers present.
    limiter: Option<Arc<Limiter>>,
    /// The budget guard each new session of this principal starts with.
    default_budget: Option<DefaultBudget>,
    /// Its spend cap and how a completion's worst case is bounded.
    spend: SpendPolicy,
}

impl Principal {
    /// The stdio operator. With enforcement off every tool gets the scopes it
    /// declares; with it on, exactly `grants` (source `none` when empty).
    pub fn operator(id: PrincipalId, grants: Grants, enforce_scopes: bool) -> Principal {
        let (grants, grant_source) = match (enforce_scopes, grants.patterns().is_empty()) {
            (false, _) => (Grants::all(), GrantSource::Env),
            (true, true) => (grants, GrantSource::None),
            (true, false) => (grants, GrantSource::Env),
        };
        Principal {
            id,
            caller: "anonymous".to_owned(),
            grants,
            enforce_scopes,
            grant_source,
            tools: None,
            limiter: None,
            default_budget: None,
            spend: SpendPolicy::default(),
        }
    }

    /// An HTTP tenant: its scopes always gate access, its limits always apply.
    pub fn tenant(
        id: PrincipalId,
        name: &str,
        grants: Grants,
        tools: Option<Vec<String>>,
        limits: Limits,
        default_budget: Option<DefaultBudget>,
    ) -> Principal {
        Principal {
            id,
            caller: name.to_owned(),
            grants,
            enforce_scopes: true,
            grant_source: GrantSource::Tenant,
            tools,
            limiter: Some(Arc::new(Limiter::new(name, limits))),
            default_budget,
            spend: SpendPolicy::default(),
        }
    }

    /// The same principal (id, caller, tools, limits and their live state,
    /// default budget) with `grants` in place of its own: what one OAuth
    /// access token may do. The caller intersects `grants` with
    /// [`Principal::grants`] first; nothing here widens them.
    pub fn with_token_grants(&self, grants: Grants) -> Principal {
        Principal {
            id: self.id.clone(),
            caller: self.caller.clone(),
            grants,
            enforce_scopes: true,
            grant_source: GrantSource::Token,
            tools: self.tools.clone(),
            limiter: self.limiter.clone(),
            default_budget: self.default_budget.clone(),
            spend: self.spend,
        }
    }

    /// The same principal with this spend policy (`spend_cap`, ...).
    pub fn with_spend(mut self, spend: SpendPolicy) -> Principal {
        self.spend = spend;
        self
    }

    /// Its spend cap and how a completion's worst case is bounded.
    pub fn spend(&self) -> &SpendPolicy {
        &self.spend
    }

    pub fn id(&self) -> &PrincipalId {
        &self.id
    }

    /// The caller name of audit rows and denial texts.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// The operator's grants for this principal (before any `_meta` narrowing).
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Whether missing scopes refuse a call (stdio: the environment; HTTP: always).
    pub fn enforces_scopes(&self) -> bool {
        self.enforce_scopes
    }

    pub fn grant_source(&self) -> GrantSource {
        self.grant_source
    }

    /// The budget guard a new session of this principal starts with.
    pub fn default_budget(&self) -> Option<&DefaultBudget> {
        self.default_budget.as_ref()
    }

    /// The configured limits; `None` for the unlimited operator.
    pub fn limits(&self) -> Option<&Limits> {
        self.limiter.as_deref().map(Limiter::limits)
    }

    /// Whether the tool allow-list (not the scopes) lets this principal call `tool`.
    pub fn may_call(&self, tool: &str) -> bool {
        self.tools.as_ref().is_none_or(|list| list.iter().any(|t| t == tool))
    }

    /// Whether `tools/list` shows this tool. A tenant sees only what it can
    /// use (allow-list and scopes); the operator sees every tool, as the
    /// original server lists them whatever the scopes.
    pub fn lists(&self, tool: &str, scopes: &[Scope]) -> bool {
        match self.grant_source {
            GrantSource::Tenant | GrantSource::Token => {
                self.may_call(tool) && scopes.iter().all(|s| self.grants.allows(*s))
            }
            GrantSource::Env | GrantSource::None => self.may_call(tool),
        }
    }

    /// Takes one call from the rate limit and one concurrency slot (held
    /// until the permit drops), or says why not and when to retry.
    pub fn admit_call(&self) -> Result<CallPermit, String> {
        match &self.limiter {
            None => Ok(CallPermit::unlimited()),
            Some(limiter) => limiter.admit_call(),
        }
    }

    /// Counts the start of a session (`initialize`) under the rate limit.
    pub fn admit_session_start(&self) -> Result<(), String> {
        match &self.limiter {
            None => Ok(()),
            Some(limiter) => limiter.take_rate_token(),
        }
    }

    /// [`Principal::admit_call`] with the rate token from the principal's
    /// bucket in the state store, shared by every node using that store
    /// (the concurrency slot stays per node).
    pub async fn admit_call_in(&self, store: &Store) -> Result<CallPermit, String> {
        match &self.limiter {
            None => Ok(CallPermit::unlimited()),
            Some(limiter) => limiter.admit_call_shared(store, self.id.as_str()).await,
        }
    }

    /// [`Principal::admit_session_start`] against the shared bucket.
    pub async fn admit_session_start_in(&self, store: &Store) -> Result<(), String> {
        match &self.limiter {
            None => Ok(()),
            Some(limiter) => limiter.take_shared_token(store, self.id.as_str()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_kind_and_refuse_odd_names() {
        assert_eq!(PrincipalId::operator("local").unwrap().as_str(), "operator:local");
        assert_eq!(PrincipalId::tenant("local").unwrap().as_str(), "tenant:local");
        assert_ne!(PrincipalId::operator("a").unwrap(), PrincipalId::tenant("a").unwrap());
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(PrincipalId::operator(bad).is_err(), "{bad}");
        }
        let err = PrincipalId::tenant("a b").unwrap_err().to_string();
        assert_eq!(err, "tenant id \"a b\" must be 1-64 characters of A-Z a-z 0-9 _ . -");
    }

    #[test]
    fn the_operator_is_anonymous_unlimited_and_lists_everything() {
        let id = PrincipalId::operator(DEFAULT_OPERATOR).unwrap();
        let open = Principal::operator(id.clone(), Grants::parse("read:health"), false);
        assert_eq!(open.caller(), "anonymous");
        assert!(open.grants().allows(Scope::WriteCombos), "enforcement off grants every declared scope");
        assert_eq!(open.grant_source(), GrantSource::Env);
        let none = Principal::operator(id.clone(), Grants::parse(""), true);
        assert_eq!(none.grant_source(), GrantSource::None);
        assert!(none.lists("omniroute_switch_combo", &[Scope::WriteCombos]));
        for _ in 0..1000 {
            drop(none.admit_call().unwrap());
        }
        assert!(none.limits().is_none());
    }

    #[test]
    fn a_tenant_lists_only_what_it_may_use() {
        let limits = Limits { max_concurrent: 1, rate_per_minute: 10, max_sessions: 2 };
        let t = Principal::tenant(
            PrincipalId::tenant("acme").unwrap(),
            "acme",
            Grants::parse("read:*"),
            Some(vec!["omniroute_get_health".into(), "omniroute_switch_combo".into()]),
            limits,
            None,
        );
        assert!(t.enforces_scopes());
        assert!(t.lists("omniroute_get_health", &[Scope::ReadHealth]));
        assert!(!t.lists("omniroute_list_combos", &[Scope::ReadCombos]), "not on the allow-list");
        assert!(!t.lists("omniroute_switch_combo", &[Scope::WriteCombos]), "scope not granted");
        assert!(t.may_call("omniroute_switch_combo"));
    }
}
