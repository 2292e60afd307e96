//! OAuth 2.1 for the HTTP transport: this server as an OAuth resource server.
//!
//! Access tokens (JWTs) from the authorization servers of the tenants file's
//! `[oauth]` table are verified against their JWKS ([`verify`], [`jwks`]),
//! opaque ones by RFC 7662 introspection where configured ([`introspect`]);
//! the token's subject or client is mapped to a tenant, or under an issuer's
//! default policy to a principal of its own ([`principals`]); the token's
//! scopes only narrow what the operator allows that principal. Clients find
//! the authorization server through the protected-resource metadata
//! (RFC 9728) that [`metadata`] writes, named by every 401's
//! `WWW-Authenticate` challenge. Static tenant tokens keep working beside it.

pub mod config;
pub mod introspect;
pub mod jwks;
pub mod metadata;
mod principals;
pub mod verify;

use crate::auth::Principal;
use crate::auth::tenants::TenantTable;
use crate::capability::{Grants, Scope};
pub use config::OAuthConfig;
use principals::Mappings;
use std::sync::Arc;
use std::time::Duration;
use verify::{IssuerVerifier, TokenError};

/// An `[oauth]` table that cannot be used, naming the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[oauth]: {0}")]
pub struct ConfigError(pub String);

/// The resource server: verifiers of every configured issuer and the
/// mapping of their tokens to principals.
pub struct OAuth {
    resource: Option<String>,
    issuers: Vec<Arc<IssuerVerifier>>,
    mappings: Mappings,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("resource", &self.resource)
            .field("issuers", &self.issuers.iter().map(|i| i.issuer.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// Why an authenticated OAuth request is refused.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// 401 `invalid_token` (503 when the keys cannot be fetched).
    Token(TokenError),
    /// 403: a valid token whose subject/client the operator maps to no tenant
    /// and whose issuer has no default policy.
    NotMapped(String),
    /// 403 `insufficient_scope`: the token grants none of the scopes the
    /// operator allows; `wanted` is what to ask the authorization server for.
    NoScope { wanted: Vec<Scope> },
}

/// A request authenticated by an OAuth token.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The principal with the token's scopes (within the operator's allowance).
    pub principal: Arc<Principal>,
    /// What the operator allows this principal: scopes outside the token but
    /// in here can be had by asking the authorization server (step-up).
    pub allowed: Grants,
}

impl OAuth {
    /// Checks `config` against the tenants it maps to.
    pub fn new(config: OAuthConfig, tenants: &TenantTable) -> Result<OAuth, ConfigError> {
        let resource = match config.resource.clone() {
            None => None,
            Some(r) => {
                let url = url::Url::parse(&r).map_err(|e| {
                    ConfigError(format!("resource \"{r}\" is not a URL ({e}); write it as https://host[:port]/mcp"))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() || url.query().is_some() {
                    return Err(ConfigError(format!(
                        "resource \"{r}\" must be an http(s) URL without query or fragment, as clients reach /mcp"
                    )));
                }
                Some(r.trim_end_matches('/').to_owned())
            }
        };
        if config.issuer.is_empty() {
            return Err(ConfigError("no [[oauth.issuer]]: name the authorization server whose tokens are accepted".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(jwks::FETCH_TIMEOUT)
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client for JWKS requests: {e}")))?;
        let mut issuers = Vec::new();
        for c in &config.issuer {
            issuers.push(Arc::new(principals::verifier(c, http.clone())?));
        }
        for (i, a) in issuers.iter().enumerate() {
            if issuers[..i].iter().any(|b| b.name == a.name) {
                return Err(ConfigError(format!("two [[oauth.issuer]] are named \"{}\"", a.name)));
            }
            if issuers[..i].iter().any(|b| b.issuer == a.issuer) {
                return Err(ConfigError(format!("two [[oauth.issuer]] have issuer \"{}\"", a.issuer)));
            }
        }
        let mappings = Mappings::new(&config, tenants)?;
        Ok(OAuth { resource, issuers, mappings })
    }

    /// The resource URL for a request that arrived with this `Host`.
    pub fn resource(&self, host: &str) -> String {
        match &self.resource {
            Some(r) => r.clone(),
            None => format!("http://{host}/mcp"),
        }
    }

    /// The issuer URLs, for `authorization_servers`.
    pub fn issuer_urls(&self) -> Vec<String> {
        self.issuers.iter().map(|i| i.issuer.clone()).collect()
    }

    /// Every scope the operator allows any OAuth principal: what a client
    /// without a token should ask for.
    pub fn requestable(&self) -> Vec<Scope> {
        self.mappings.requestable()
    }

    /// Whether some issuer checks opaque (non-JWT) tokens by introspection.
    pub fn introspects(&self) -> bool {
        self.issuers.iter().any(|i| i.introspection.is_some())
    }

    /// Verifies a bearer token for `resource` and resolves its principal:
    /// a JWT against its issuer's keys, any other token by introspection.
    pub async fn authenticate(&self, token: &str, resource: &str) -> Result<TokenGrant, Refusal> {
        let (issuer, verified) = if verify::looks_like_jwt(token) || !self.introspects() {
            let iss = verify::unverified_issuer(token).map_err(Refusal::Token)?;
            let issuer = self
                .issuers
                .iter()
                .find(|i| i.issuer == iss)
                .ok_or(Refusal::Token(TokenError::UnknownIssuer(iss)))?;
            (issuer, issuer.verify(token, resource).await.map_err(Refusal::Token)?)
        } else {
            self.introspect(token, resource).await.map_err(Refusal::Token)?
        };
        let (base, allowed) = self.mappings.resolve(&issuer.name, &verified)?;
        let granted: Vec<&str> = Scope::ALL
            .iter()
            .filter(|s| allowed.allows(**s) && verified.scopes.contains(s))
            .map(|s| s.as_str())
            .collect();
        if granted.is_empty() {
            let wanted = Scope::ALL.iter().copied().filter(|s| allowed.allows(*s)).collect();
            return Err(Refusal::NoScope { wanted });
        }
        let principal = Arc::new(base.with_token_grants(Grants::from_patterns(granted)));
        Ok(TokenGrant { principal, allowed })
    }

    /// An opaque token, asked of each issuer that introspects (in the
    /// file's order) until one calls it active for this resource.
    async fn introspect(&self, token: &str, resource: &str) -> Result<(&Arc<IssuerVerifier>, verify::VerifiedToken), TokenError> {
        let mut refusal = None;
        for issuer in &self.issuers {
            let Some(introspection) = &issuer.introspection else { continue };
            let expect = introspect::Expect { issuer: &issuer.issuer, audience: resource, leeway_s: issuer.leeway_s };
            match introspection.check(token, &expect).await {
                Ok(verified) => return Ok((issuer, verified)),
                // An outage is said over an inactive answer elsewhere: the token may be good.
                Err(e) if e.is_unavailable() || refusal.is_none() => refusal = Some(e),
                Err(_) => {}
            }
        }
        Err(refusal.unwrap_or(TokenError::NotJwt))
    }

    /// Introspection requests sent so far, by issuer name (issuers that introspect).
    pub fn introspections(&self) -> Vec<(String, u64)> {
        self.issuers.iter().filter_map(|i| Some((i.name.clone(), i.introspection.as_ref()?.requests()))).collect()
    }

    /// Fetches every issuer's keys once in the background, so a wrong
    /// `jwks_uri` shows in the log at startup rather than at the first client.
    pub fn warm_up(self: &Arc<Self>) {
        for issuer in &self.issuers {
            let issuer = issuer.clone();
            tokio::spawn(async move {
                match issuer.keys.key(None).await {
                    Ok(_) => {}
                    Err(jwks::KeyError::Ambiguous(keys)) if keys > 0 => {}
                    Err(e) => tracing::warn!(issuer = %issuer.issuer, "OAuth issuer {}: {e}", issuer.name),
                }
            });
        }
    }

    /// The JWKS fetches of each issuer so far, by name (refresh bound).
    pub fn jwks_fetches(&self) -> Vec<(String, u64)> {
        self.issuers.iter().map(|i| (i.name.clone(), i.keys.fetches())).collect()
    }
}

/// The JWKS refresh bound, as a duration.
fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
