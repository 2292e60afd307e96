//! Verifies one JWT access token: its `alg` on the issuer's allow-list
//! (never `none`, never HMAC), its signature against the issuer's JWKS,
//! `iss`, `aud` (this server's resource URL, RFC 8707) and `exp`/`nbf`
//! within the allowed skew. What it yields is the token's identity and
//! scopes, not yet a principal ([`super::principals`] decides that).

use super::jwks::{KeyError, KeySet};
use crate::capability::Scope;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Why a token is refused (`error="invalid_token"`, except [`TokenError::Keys`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not a JWT (three base64url parts)")]
    NotJwt,
    #[error("tokens signed with alg \"none\" are never accepted")]
    AlgNone,
    #[error("the token's alg \"{alg}\" is not accepted for issuer {issuer} (allowed: {allowed})")]
    AlgNotAllowed { alg: String, issuer: String, allowed: String },
    #[error("the token's issuer \"{0}\" is not a configured authorization server")]
    UnknownIssuer(String),
    #[error("{0}")]
    Key(KeyError),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's audience is not this server's resource {0}")]
    WrongAudience(String),
    #[error("the token's signature does not verify against the issuer's key")]
    BadSignature,
    #[error("the token lacks the required claim {0}")]
    MissingClaim(String),
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// RFC 7662: the authorization server says the (opaque) token is not active.
    #[error("the token is not active: the authorization server revoked it, it expired, or it never issued it")]
    Inactive,
    /// The introspection endpoint could not answer (answered 503, not 401).
    #[error("cannot introspect the token at {endpoint}: {reason}")]
    IntrospectionUnavailable { endpoint: String, reason: String },
}

impl TokenError {
    /// Whether the fault is ours or the authorization server's, not the
    /// token's (the JWKS cannot be fetched): answered 503, not 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokenError::Key(KeyError::Unavailable { .. }) | TokenError::IntrospectionUnavailable { .. })
    }
}

/// The verifying half of one `[[oauth.issuer]]`.
pub struct IssuerVerifier {
    pub name: String,
    pub issuer: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway_s: u64,
    pub keys: KeySet,
    /// Set when opaque tokens of this issuer are checked by introspection.
    pub introspection: Option<super::introspect::Introspector>,
}

/// A verified token's identity and scopes.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub subject: Option<String>,
    pub client_id: Option<String>,
    /// Our scopes among the token's (`scope` or `scp`); other names are ignored.
    pub scopes: Vec<Scope>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    scope: Option<ScopeClaim>,
    #[serde(default)]
    scp: Option<ScopeClaim>,
    client_id: Option<String>,
    azp: Option<String>,
}

/// `scope` is a space-separated string (RFC 9068); some IdPs send an array (`scp`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    fn names(&self) -> Vec<&str> {
        match self {
            ScopeClaim::Text(s) => s.split_whitespace().collect(),
            ScopeClaim::List(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Our scopes among those the claims name (other names are ignored), each once.
pub(super) fn scopes_of<'a>(claims: impl IntoIterator<Item = &'a Option<ScopeClaim>>) -> Vec<Scope> {
    let mut scopes = Vec::new();
    for claim in claims.into_iter().flatten() {
        for name in claim.names() {
            if let Ok(scope) = name.parse::<Scope>()
                && !scopes.contains(&scope)
            {
                scopes.push(scope);
            }
        }
    }
    scopes
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawIssuer {
    iss: Option<String>,
}

fn b64_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The unverified `iss` of a JWT (to pick the issuer whose keys verify it).
pub fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::NotJwt);
    };
    let raw: RawIssuer = b64_json(payload).ok_or(TokenError::NotJwt)?;
    raw.iss.ok_or_else(|| TokenError::MissingClaim("iss".to_owned()))
}

/// Whether a bearer token has the shape of a JWT (so it is worth verifying).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("ey")
}

impl IssuerVerifier {
    /// Verifies `token` for `audience` (this server's resource URL).
    pub async fn verify(&self, token: &str, audience: &str) -> Result<VerifiedToken, TokenError> {
        let header_part = token.split('.').next().ok_or(TokenError::NotJwt)?;
        let header: RawHeader = b64_json(header_part).ok_or(TokenError::NotJwt)?;
        let alg_name = header.alg.unwrap_or_default();
        if alg_name.eq_ignore_ascii_case("none") || alg_name.is_empty() {
            return Err(TokenError::AlgNone);
        }
        let alg = alg_name
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| TokenError::AlgNotAllowed {
                alg: alg_name.clone(),
                issuer: self.name.clone(),
                allowed: self.algorithms.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", "),
            })?;
        let jwk = self.keys.key(header.kid.as_deref()).await.map_err(TokenError::Key)?;
        if let Some(key_alg) = jwk.common.key_algorithm
            && format!("{key_alg:?}") != format!("{alg:?}")
        {
            return Err(TokenError::Invalid(format!("the key {} is for {key_alg:?}, the token says {alg:?}", header.kid.unwrap_or_default())));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| TokenError::Invalid(format!("the issuer's key cannot be used: {e}")))?;
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_s;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        // A trailing slash is the same resource (clients differ on it).
        let trimmed = audience.trim_end_matches('/');
        validation.set_audience(&[trimmed.to_owned(), format!("{trimmed}/")]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.into_kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAudience => TokenError::WrongAudience(audience.to_owned()),
            ErrorKind::InvalidIssuer => TokenError::UnknownIssuer(self.issuer.clone()),
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c),
            other => TokenError::Invalid(format!("{other:?}")),
        })?;
        let claims = data.claims;
        let scopes = scopes_of([&claims.scope, &claims.scp]);
        Ok(VerifiedToken { subject: claims.sub, client_id: claims.client_id.or(claims.azp), scopes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn reads_the_unverified_issuer_and_shape() {
        let t = format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(r#"{"iss":"https://as.example"}"#));
        assert_eq!(unverified_issuer(&t).unwrap(), "https://as.example");
        assert!(looks_like_jwt(&t));
        assert!(matches!(unverified_issuer("a.b"), Err(TokenError::NotJwt)));
        assert!(!looks_like_jwt("omr_0123"));
    }

    #[tokio::test]
    async fn alg_none_and_hmac_are_refused_before_any_key_lookup() {
        let verifier = IssuerVerifier {
            name: "as".into(),
            issuer: "https://as.example".into(),
            algorithms: vec![Algorithm::RS256],
            leeway_s: 30,
            // A closed port: a key lookup would fail with Unavailable, not the errors below.
            keys: KeySet::new(
                super::super::jwks::KeySource::Uri("http://127.0.0.1:9/jwks".into()),
                std::time::Duration::from_secs(30),
                reqwest::Client::new(),
            ),
            introspection: None,
        };
        let claims = b64(r#"{"iss":"https://as.example","aud":"x","exp":9999999999}"#);
        let none = format!("{}.{claims}.", b64(r#"{"alg":"none"}"#));
        assert!(matches!(verifier.verify(&none, "x").await, Err(TokenError::AlgNone)));
        let hs = format!("{}.{claims}.c2ln", b64(r#"{"alg":"HS256","kid":"k"}"#));
        let err = verifier.verify(&hs, "x").await.unwrap_err();
        assert!(matches!(err, TokenError::AlgNotAllowed { .. }), "{err}");
        assert_eq!(verifier.keys.fetches(), 0);
    }
}
