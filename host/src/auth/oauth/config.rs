//! The `[oauth]` table of the tenants file, as written: which authorization
//! servers issue access tokens for this server, and which tenant (or which
//! default policy) each token's subject or client gets. [`super::OAuth::new`]
//! checks it against the tenants and turns it into the verifier.

use crate::auth::DefaultBudget;
use serde::Deserialize;

/// `[oauth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// This server's resource URL, `https://host[:port]/mcp` as clients
    /// reach it: the audience tokens must carry (RFC 8707) and the `resource`
    /// of the protected-resource metadata (RFC 9728). When absent it is
    /// `http://<Host header>/mcp` per request, which only suits loopback
    /// use; behind TLS or a proxy set it.
    pub resource: Option<String>,
    /// The authorization servers whose tokens are accepted.
    #[serde(default)]
    pub issuer: Vec<IssuerConfig>,
    /// Which tenant a token's subject or client acts as.
    #[serde(default)]
    pub map: Vec<MappingConfig>,
}

/// One `[[oauth.issuer]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// A short name (1-64 of A-Z a-z 0-9 _ . -) for ids, logs and `[[oauth.map]]`.
    pub name: String,
    /// The `iss` its tokens carry, exactly (its authorization-server URL).
    pub issuer: String,
    /// Its JWKS; default: `jwks_uri` of `<issuer>/.well-known/openid-configuration`,
    /// else of `/.well-known/oauth-authorization-server` (RFC 8414).
    pub jwks_uri: Option<String>,
    /// Accepted signature algorithms; `none` and the HMAC family never are.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
    /// A token with an unknown `kid` refetches the JWKS at most once per this
    /// many seconds, so forged `kid`s cannot hammer the authorization server.
    #[serde(default = "default_min_refresh")]
    pub jwks_min_refresh_s: u64,
    /// Per-subject policy for subjects no `[[oauth.map]]` names: each
    /// subject becomes its own principal with these scopes (the token's
    /// scopes narrow them further). Absent: unmapped tokens are refused.
    pub default_scopes: Option<Vec<String>>,
    /// Limits of each per-subject principal (defaults as for tenants).
    pub max_concurrent: Option<u32>,
    pub rate_per_minute: Option<u32>,
    pub max_sessions: Option<u32>,
    /// Tools each per-subject principal may see and call (default: all its scopes allow).
    pub tools: Option<Vec<String>>,
    pub default_budget: Option<DefaultBudget>,
    /// Each per-subject principal's spend cap, as for tenants.
    pub spend_cap: Option<crate::state::SpendCapConfig>,
    pub unpriced_completion_usd: Option<f64>,
    pub default_max_tokens: Option<u32>,
    /// RFC 7662 token introspection endpoint: when set, bearer tokens that
    /// are not JWTs (opaque tokens) are checked there.
    pub introspection_endpoint: Option<String>,
    /// The client id this server authenticates to the introspection
    /// endpoint with (HTTP Basic); required with `introspection_endpoint`.
    pub introspection_client_id: Option<String>,
    /// The name of the environment variable holding that client's secret
    /// (secrets stay out of the file); required with `introspection_endpoint`.
    pub introspection_client_secret_env: Option<String>,
    /// How long an introspection answer is reused, in seconds (at most 60):
    /// a revoked token is refused within this time.
    #[serde(default = "default_introspection_cache")]
    pub introspection_cache_s: u64,
}

/// One `[[oauth.map]]`: tokens of `issuer` whose `sub` (and/or client id)
/// match act as `tenant`. The first matching entry wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// The `name` of an `[[oauth.issuer]]`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: Option<String>,
    /// The token's `client_id` (RFC 9068), else `azp`.
    pub client_id: Option<String>,
    /// The `id` of a `[[tenant]]`, whose scopes bound what the token may do.
    pub tenant: String,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "PS256", "ES256", "EdDSA"].map(str::to_owned).to_vec()
}
fn default_leeway() -> u64 {
    30
}
fn default_min_refresh() -> u64 {
    30
}
fn default_introspection_cache() -> u64 {
    5
}
