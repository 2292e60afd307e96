//! An authorization server's signing keys: its JWKS, fetched on first use,
//! kept for [`MAX_AGE`], refetched early when a token names a `kid` it does
//! not hold (key rotation) but at most once per `min_refresh`, so tokens
//! with made-up `kid`s cannot turn this server into a JWKS flood.

use jsonwebtoken::jwk::Jwk;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a fetched JWKS is used before it is fetched again, so a key the
/// authorization server withdrew stops verifying within this time.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// How long one JWKS or metadata request may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no key could be found for a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// The JWKS holds no key with this `kid` (after a refresh, or while refreshes are throttled).
    #[error("the authorization server's JWKS has no key with kid \"{0}\"")]
    UnknownKid(String),
    /// No `kid`, and not exactly one key to choose.
    #[error("the token names no kid and the authorization server's JWKS holds {0} keys")]
    Ambiguous(usize),
    /// The JWKS could not be fetched or read.
    #[error("cannot fetch the authorization server's keys from {uri}: {reason}")]
    Unavailable { uri: String, reason: String },
}

/// Where the keys are: a configured `jwks_uri`, or the issuer's metadata.
#[derive(Debug, Clone)]
pub enum KeySource {
    Uri(String),
    /// Discovered from `<issuer>/.well-known/openid-configuration`, then RFC 8414's
    /// `/.well-known/oauth-authorization-server`.
    Discover { issuer: String },
}

#[derive(Default)]
struct Cached {
    keys: Arc<Vec<Jwk>>,
    fetched: Option<Instant>,
    /// The last refetch an unknown `kid` caused.
    last_refresh: Option<Instant>,
    /// The discovered JWKS URL.
    uri: Option<String>,
}

/// One authorization server's key cache.
pub struct KeySet {
    source: KeySource,
    min_refresh: Duration,
    http: reqwest::Client,
    cached: Mutex<Cached>,
    fetches: std::sync::atomic::AtomicU64,
}

impl KeySet {
    pub fn new(source: KeySource, min_refresh: Duration, http: reqwest::Client) -> KeySet {
        KeySet { source, min_refresh, http, cached: Mutex::new(Cached::default()), fetches: Default::default() }
    }

    /// How many times the JWKS was fetched (logs and tests of the refresh bound).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key a token with this `kid` is verified with.
    pub async fn key(&self, kid: Option<&str>) -> Result<Jwk, KeyError> {
        let mut cached = self.cached.lock().await;
        let stale = cached.fetched.is_none_or(|t| t.elapsed() >= MAX_AGE);
        if stale {
            self.fetch(&mut cached).await?;
        }
        match pick(&cached.keys, kid) {
            Ok(key) => return Ok(key),
            Err(KeyError::UnknownKid(_)) if !stale => {}
            Err(e) => return Err(e),
        }
        // An unknown kid on a cached set: the server may have rotated its keys.
        let throttled = cached.last_refresh.is_some_and(|t| t.elapsed() < self.min_refresh);
        if throttled {
            return Err(KeyError::UnknownKid(kid.unwrap_or_default().to_owned()));
        }
        cached.last_refresh = Some(Instant::now());
        self.fetch(&mut cached).await?;
        pick(&cached.keys, kid)
    }

    async fn fetch(&self, cached: &mut Cached) -> Result<(), KeyError> {
        let uri = match (&self.source, &cached.uri) {
            (KeySource::Uri(uri), _) => uri.clone(),
            (KeySource::Discover { .. }, Some(uri)) => uri.clone(),
            (KeySource::Discover { issuer }, None) => {
                let uri = self.discover(issuer).await?;
                cached.uri = Some(uri.clone());
                uri
            }
        };
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unavailable = |reason: String| KeyError::Unavailable { uri: uri.clone(), reason };
        let body: serde_json::Value = get_json(&self.http, &uri).await.map_err(unavailable)?;
        let Some(list) = body.get("keys").and_then(|k| k.as_array()) else {
            return Err(unavailable("the answer has no \"keys\" array".to_owned()));
        };
        // Keys of a type or use this server cannot verify with are skipped, not fatal.
        let keys: Vec<Jwk> = list
            .iter()
            .filter(|k| k.get("use").and_then(|u| u.as_str()).is_none_or(|u| u == "sig"))
            .filter_map(|k| serde_json::from_value(k.clone()).ok())
            .collect();
        tracing::info!(jwks = %uri, keys = keys.len(), "fetched the authorization server's signing keys");
        cached.keys = Arc::new(keys);
        cached.fetched = Some(Instant::now());
        Ok(())
    }

    /// The `jwks_uri` of the issuer's metadata (OpenID Connect discovery, then RFC 8414).
    async fn discover(&self, issuer: &str) -> Result<String, KeyError> {
        let base = issuer.trim_end_matches('/');
        let mut reasons = Vec::new();
        let rfc8414 = match url::Url::parse(issuer) {
            Ok(u) => {
                let path = u.path().trim_end_matches('/');
                format!("{}/.well-known/oauth-authorization-server{path}", u.origin().ascii_serialization())
            }
            Err(e) => format!("(issuer is not a URL: {e})"),
        };
        for url in [format!("{base}/.well-known/openid-configuration"), rfc8414] {
            match get_json(&self.http, &url).await {
                Ok(meta) => match meta.get("jwks_uri").and_then(|j| j.as_str()) {
                    Some(jwks) => return Ok(jwks.to_owned()),
                    None => reasons.push(format!("{url}: no jwks_uri")),
                },
                Err(e) => reasons.push(format!("{url}: {e}")),
            }
        }
        Err(KeyError::Unavailable {
            uri: base.to_owned(),
            reason: format!("no metadata names its jwks_uri ({}); set jwks_uri in [[oauth.issuer]]", reasons.join("; ")),
        })
    }
}

fn pick(keys: &[Jwk], kid: Option<&str>) -> Result<Jwk, KeyError> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned()
            .ok_or_else(|| KeyError::UnknownKid(kid.to_owned())),
        None if keys.len() == 1 => Ok(keys[0].clone()),
        None => Err(KeyError::Ambiguous(keys.len())),
    }
}

/// GETs a JSON document, with the status in the error.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
}
