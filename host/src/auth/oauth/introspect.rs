//! Opaque access tokens, checked by RFC 7662 token introspection at the
//! issuer's `introspection_endpoint`, authenticated as this server's own
//! client (HTTP Basic). An answer is reused for a few seconds at most
//! (`introspection_cache_s`, and never past the token's `exp`), so a token
//! the authorization server revoked is refused within that time on every
//! node, while a burst of requests with one token costs one introspection.
//!
//! An active answer must name this server's resource in `aud` (RFC 8707; a
//! token meant for another API is not ours), and its `iss`, `exp` and `nbf`
//! are checked when present. What it yields is the same [`VerifiedToken`]
//! a JWT yields, so mappings and scope narrowing are the same for both.

use super::verify::{ScopeClaim, TokenError, VerifiedToken, scopes_of};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest an operator may let an answer be reused: a revoked token
/// must stop working within seconds, not minutes.
pub const MAX_CACHE: Duration = Duration::from_secs(60);

/// Answers kept at most; past it expired ones are dropped, then all.
const MAX_CACHED: usize = 10_000;

/// One issuer's introspection endpoint and this server's credentials for it.
pub struct Introspector {
    endpoint: String,
    client_id: String,
    secret: String,
    cache_for: Duration,
    http: reqwest::Client,
    /// Answers by SHA-256 of the token (tokens themselves are not kept).
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("cache_for", &self.cache_for)
            .finish()
    }
}

struct Cached {
    answer: Result<VerifiedToken, TokenError>,
    until: Instant,
}

/// An RFC 7662 answer: only the members the checks and the mapping use.
#[derive(Deserialize)]
struct Answer {
    active: bool,
    scope: Option<ScopeClaim>,
    client_id: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    iss: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

/// `aud` is a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, resource: &str) -> bool {
        let wanted = resource.trim_end_matches('/');
        let same = |a: &String| a.trim_end_matches('/') == wanted;
        match self {
            Audience::One(a) => same(a),
            Audience::Many(list) => list.iter().any(same),
        }
    }
}

/// What the checks of an active answer need besides the answer.
pub struct Expect<'a> {
    /// The issuer URL (`iss`, when the answer names one).
    pub issuer: &'a str,
    /// This server's resource URL (`aud`).
    pub audience: &'a str,
    /// Allowed clock skew on `exp`/`nbf`, seconds.
    pub leeway_s: u64,
}

impl Introspector {
    /// An introspector for `endpoint`, authenticating as `client_id`:`secret`.
    pub fn new(endpoint: String, client_id: String, secret: String, cache_for: Duration, http: reqwest::Client) -> Self {
        Self { endpoint, client_id, secret, cache_for, http, cache: Mutex::new(HashMap::new()), requests: AtomicU64::new(0) }
    }

    /// Introspection requests sent so far (the cache's effect, for tests and logs).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The token's identity and scopes, from the cache or the endpoint.
    pub async fn check(&self, token: &str, expect: &Expect<'_>) -> Result<VerifiedToken, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.lock().get(&key).filter(|c| c.until > Instant::now()) {
            return hit.answer.clone();
        }
        let (answer, exp) = match self.ask(token).await {
            Ok(answer) => {
                let exp = answer.exp;
                (judge(answer, expect), exp)
            }
            // Not cached: the next request asks again.
            Err(e) => return Err(e),
        };
        let mut until = Instant::now() + self.cache_for;
        if let (Ok(_), Some(exp)) = (&answer, exp) {
            // Never past the token's own expiry.
            let left = u64::try_from(exp - now_s()).unwrap_or(0);
            until = until.min(Instant::now() + Duration::from_secs(left));
        }
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, Cached { answer: answer.clone(), until });
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        // Single inserts and lookups: a panic elsewhere leaves nothing half done.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn ask(&self, token: &str) -> Result<Answer, TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let unavailable = |reason: String| TokenError::IntrospectionUnavailable { endpoint: self.endpoint.clone(), reason };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let response = self
            .http
            .post(&self.endpoint)
            .basic_auth(&self.client_id, Some(&self.secret))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| unavailable(format!("{e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(unavailable(format!(
                "it answered {status} to this server's client \"{}\": check introspection_client_id and the secret in \
                 introspection_client_secret_env",
                self.client_id
            )));
        }
        if !status.is_success() {
            return Err(unavailable(format!("it answered {status}")));
        }
        response.json::<Answer>().await.map_err(|e| unavailable(format!("its answer is not an RFC 7662 JSON object: {e}")))
    }
}

/// The checks of one answer (see the module doc).
fn judge(answer: Answer, expect: &Expect<'_>) -> Result<VerifiedToken, TokenError> {
    if !answer.active {
        return Err(TokenError::Inactive);
    }
    if let Some(iss) = &answer.iss
        && iss.trim_end_matches('/') != expect.issuer.trim_end_matches('/')
    {
        return Err(TokenError::UnknownIssuer(iss.clone()));
    }
    match &answer.aud {
        None => return Err(TokenError::MissingClaim("aud".to_owned())),
        Some(aud) if !aud.contains(expect.audience) => return Err(TokenError::WrongAudience(expect.audience.to_owned())),
        Some(_) => {}
    }
    let now = now_s();
    let leeway = i64::try_from(expect.leeway_s).unwrap_or(0);
    if answer.exp.is_some_and(|exp| now > exp.saturating_add(leeway)) {
        return Err(TokenError::Expired);
    }
    if answer.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(TokenError::NotYetValid);
    }
    Ok(VerifiedToken { subject: answer.sub, client_id: answer.client_id, scopes: scopes_of([&answer.scope]) })
}

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: serde_json::Value) -> Answer {
        serde_json::from_value(json).unwrap()
    }

    const EXPECT: Expect<'static> = Expect { issuer: "https://as.example", audience: "https://mcp.example/mcp", leeway_s: 30 };

    #[test]
    fn an_active_answer_for_this_resource_yields_its_identity_and_our_scopes() {
        let ok = judge(
            answer(serde_json::json!({"active": true, "sub": "alice", "client_id": "vscode", "iss": "https://as.example/",
                "aud": ["other", "https://mcp.example/mcp/"], "scope": "read:health openid read:combos", "exp": now_s() + 60})),
            &EXPECT,
        )
        .unwrap();
        assert_eq!(ok.subject.as_deref(), Some("alice"));
        assert_eq!(ok.client_id.as_deref(), Some("vscode"));
        let names: Vec<&str> = ok.scopes.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["read:health", "read:combos"]);
    }

    #[test]
    fn inactive_foreign_expired_and_unaddressed_answers_are_refused() {
        let cases = [
            (serde_json::json!({"active": false}), "not active"),
            (serde_json::json!({"active": true, "aud": "https://mcp.example/mcp", "iss": "https://evil.example"}), "issuer"),
            (serde_json::json!({"active": true, "aud": "https://other.example/mcp"}), "audience"),
            (serde_json::json!({"active": true}), "aud"),
            (serde_json::json!({"active": true, "aud": "https://mcp.example/mcp", "exp": now_s() - 120}), "expired"),
            (serde_json::json!({"active": true, "aud": "https://mcp.example/mcp", "nbf": now_s() + 120}), "not valid yet"),
        ];
        for (json, expected) in cases {
            let err = judge(answer(json.clone()), &EXPECT).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
