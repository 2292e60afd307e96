//! Who a verified token acts as: the tenant an `[[oauth.map]]` entry names
//! for its subject or client, else (under the issuer's `default_scopes`
//! policy) a principal of its own per subject, with that policy's limits.
//! Per-subject principals are kept so their rate and concurrency limits hold
//! across the tokens one subject presents.

use super::config::{IssuerConfig, MappingConfig, OAuthConfig};
use super::introspect::{self, Introspector};
use super::jwks::{KeySet, KeySource};
use super::verify::{IssuerVerifier, VerifiedToken};
use super::{ConfigError, Refusal, secs};
use crate::auth::tenants::TenantTable;
use crate::auth::{
    DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_SESSIONS, DEFAULT_RATE_PER_MINUTE, Limits, Principal, PrincipalId, subject_label,
};
use crate::capability::{Grants, Scope};
use jsonwebtoken::Algorithm;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per-subject principals kept at most; past it the map starts afresh (their
/// limits' counters restart), so a flood of subjects cannot grow memory.
const MAX_SUBJECTS: usize = 10_000;

/// The verifier of one `[[oauth.issuer]]`, its fields checked.
pub(super) fn verifier(c: &IssuerConfig, http: reqwest::Client) -> Result<IssuerVerifier, ConfigError> {
    let who = format!("[[oauth.issuer]] \"{}\"", c.name);
    PrincipalId::oauth_subject(&c.name, "x").map_err(|e| ConfigError(format!("{who}: name: {e}")))?;
    let url = url::Url::parse(&c.issuer)
        .map_err(|e| ConfigError(format!("{who}: issuer \"{}\" is not a URL ({e})", c.issuer)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError(format!("{who}: issuer must be an http(s) URL")));
    }
    let source = match &c.jwks_uri {
        Some(uri) => {
            url::Url::parse(uri).map_err(|e| ConfigError(format!("{who}: jwks_uri \"{uri}\" is not a URL ({e})")))?;
            KeySource::Uri(uri.clone())
        }
        None => KeySource::Discover { issuer: c.issuer.clone() },
    };
    if c.algorithms.is_empty() {
        return Err(ConfigError(format!("{who}: algorithms is empty; list e.g. [\"RS256\"]")));
    }
    let mut algorithms = Vec::new();
    for name in &c.algorithms {
        let alg: Algorithm = name.parse().map_err(|_| {
            ConfigError(format!("{who}: algorithm \"{name}\" is unknown (RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA)"))
        })?;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(ConfigError(format!(
                "{who}: {name} is refused: HMAC keys are shared secrets, never published in a JWKS; use an asymmetric algorithm"
            )));
        }
        algorithms.push(alg);
    }
    if c.leeway_s > 300 {
        return Err(ConfigError(format!("{who}: leeway_s {} is over 300 s; clock skew should be seconds", c.leeway_s)));
    }
    let introspection = introspector(c, &who, http.clone())?;
    Ok(IssuerVerifier {
        name: c.name.clone(),
        issuer: c.issuer.clone(),
        algorithms,
        leeway_s: c.leeway_s,
        keys: KeySet::new(source, secs(c.jwks_min_refresh_s), http),
        introspection,
    })
}

/// The issuer's introspection settings, checked; `None` when it has none.
fn introspector(c: &IssuerConfig, who: &str, http: reqwest::Client) -> Result<Option<Introspector>, ConfigError> {
    let Some(endpoint) = &c.introspection_endpoint else {
        if c.introspection_client_id.is_some() || c.introspection_client_secret_env.is_some() {
            return Err(ConfigError(format!(
                "{who}: introspection_client_id / introspection_client_secret_env are set without introspection_endpoint"
            )));
        }
        return Ok(None);
    };
    let url = url::Url::parse(endpoint)
        .map_err(|e| ConfigError(format!("{who}: introspection_endpoint \"{endpoint}\" is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError(format!("{who}: introspection_endpoint must be an http(s) URL")));
    }
    let client_id = c.introspection_client_id.clone().filter(|id| !id.is_empty()).ok_or_else(|| {
        ConfigError(format!(
            "{who}: introspection_client_id is missing: name the client this server authenticates to the introspection endpoint as"
        ))
    })?;
    let var = c.introspection_client_secret_env.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| {
        ConfigError(format!(
            "{who}: introspection_client_secret_env is missing: name the environment variable that holds the client's secret"
        ))
    })?;
    let secret = std::env::var(var).ok().filter(|s| !s.is_empty()).ok_or_else(|| {
        ConfigError(format!("{who}: the environment variable {var} (introspection_client_secret_env) is not set or empty"))
    })?;
    let cache = secs(c.introspection_cache_s);
    if cache > introspect::MAX_CACHE {
        return Err(ConfigError(format!(
            "{who}: introspection_cache_s {} is over {} s; a revoked token must be refused within seconds",
            c.introspection_cache_s,
            introspect::MAX_CACHE.as_secs()
        )));
    }
    Ok(Some(Introspector::new(endpoint.clone(), client_id, secret, cache, http)))
}

struct Mapping {
    issuer: String,
    subject: Option<String>,
    client_id: Option<String>,
    tenant: Arc<Principal>,
}

/// An issuer's default policy for subjects no mapping names.
struct Policy {
    grants: Grants,
    limits: Limits,
    tools: Option<Vec<String>>,
    budget: Option<crate::auth::DefaultBudget>,
    spend: crate::state::SpendPolicy,
}

pub(super) struct Mappings {
    mappings: Vec<Mapping>,
    policies: HashMap<String, Policy>,
    subjects: Mutex<HashMap<PrincipalId, Arc<Principal>>>,
}

impl Mappings {
    pub(super) fn new(config: &OAuthConfig, tenants: &TenantTable) -> Result<Mappings, ConfigError> {
        let mut mappings = Vec::new();
        for (i, m) in config.map.iter().enumerate() {
            mappings.push(mapping(i, m, config, tenants)?);
        }
        let mut policies = HashMap::new();
        for c in &config.issuer {
            let Some(scopes) = &c.default_scopes else { continue };
            let who = format!("[[oauth.issuer]] \"{}\"", c.name);
            let grants = Grants::from_checked_patterns(scopes.iter().map(String::as_str))
                .map_err(|e| ConfigError(format!("{who}: default_scopes: {e}")))?;
            let limits = Limits {
                max_concurrent: c.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT),
                rate_per_minute: c.rate_per_minute.unwrap_or(DEFAULT_RATE_PER_MINUTE),
                max_sessions: c.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
            };
            if limits.max_concurrent == 0 || limits.rate_per_minute == 0 || limits.max_sessions == 0 {
                return Err(ConfigError(format!("{who}: max_concurrent, rate_per_minute and max_sessions must be at least 1")));
            }
            let spend = crate::state::SpendPolicy::from_settings(&who, c.spend_cap.as_ref(), c.unpriced_completion_usd, c.default_max_tokens)
                .map_err(|e| ConfigError(e.to_string()))?;
            policies.insert(c.name.clone(), Policy { grants, limits, tools: c.tools.clone(), budget: c.default_budget.clone(), spend });
        }
        Ok(Mappings { mappings, policies, subjects: Mutex::new(HashMap::new()) })
    }

    /// Every scope some mapping or policy allows.
    pub(super) fn requestable(&self) -> Vec<Scope> {
        let grants: Vec<&Grants> =
            self.mappings.iter().map(|m| m.tenant.grants()).chain(self.policies.values().map(|p| &p.grants)).collect();
        Scope::ALL.iter().copied().filter(|s| grants.iter().any(|g| g.allows(*s))).collect()
    }

    /// The principal a verified token of `issuer` acts as, and what the
    /// operator allows it.
    pub(super) fn resolve(&self, issuer: &str, token: &VerifiedToken) -> Result<(Arc<Principal>, Grants), Refusal> {
        let hit = self.mappings.iter().find(|m| {
            m.issuer == issuer
                && m.subject.as_ref().is_none_or(|s| token.subject.as_ref() == Some(s))
                && m.client_id.as_ref().is_none_or(|c| token.client_id.as_ref() == Some(c))
        });
        if let Some(m) = hit {
            return Ok((m.tenant.clone(), m.tenant.grants().clone()));
        }
        let who = || {
            format!(
                "the token's subject {:?} (client {:?}) of issuer \"{issuer}\" is mapped to no tenant",
                token.subject.as_deref().unwrap_or("(none)"),
                token.client_id.as_deref().unwrap_or("(none)")
            )
        };
        let Some(policy) = self.policies.get(issuer) else {
            return Err(Refusal::NotMapped(format!(
                "{}; add an [[oauth.map]] entry for it, or default_scopes to the issuer",
                who()
            )));
        };
        let Some(subject) = token.subject.as_deref().filter(|s| !s.is_empty()) else {
            return Err(Refusal::NotMapped(format!("{}, and it has no sub for a per-subject principal", who())));
        };
        let id = PrincipalId::oauth_subject(issuer, subject).map_err(|e| Refusal::NotMapped(e.to_string()))?;
        let mut subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = subjects.get(&id) {
            return Ok((p.clone(), policy.grants.clone()));
        }
        if subjects.len() >= MAX_SUBJECTS {
            tracing::warn!("{MAX_SUBJECTS} OAuth subjects seen; their per-subject limits start afresh");
            subjects.clear();
        }
        let caller = format!("{issuer}:{}", subject_label(subject));
        let principal = Arc::new(Principal::tenant(
            id.clone(),
            &caller,
            policy.grants.clone(),
            policy.tools.clone(),
            policy.limits,
            policy.budget.clone(),
        ).with_spend(policy.spend));
        subjects.insert(id, principal.clone());
        Ok((principal, policy.grants.clone()))
    }
}

fn mapping(i: usize, m: &MappingConfig, config: &OAuthConfig, tenants: &TenantTable) -> Result<Mapping, ConfigError> {
    let who = format!("[[oauth.map]] #{} (tenant \"{}\")", i + 1, m.tenant);
    if !config.issuer.iter().any(|c| c.name == m.issuer) {
        let names: Vec<&str> = config.issuer.iter().map(|c| c.name.as_str()).collect();
        return Err(ConfigError(format!(
            "{who}: issuer \"{}\" is no [[oauth.issuer]] name (names: {})",
            m.issuer,
            names.join(", ")
        )));
    }
    let tenant = tenants
        .get(&m.tenant)
        .cloned()
        .ok_or_else(|| ConfigError(format!("{who}: no [[tenant]] has id \"{}\"", m.tenant)))?;
    Ok(Mapping { issuer: m.issuer.clone(), subject: m.subject.clone(), client_id: m.client_id.clone(), tenant })
}
