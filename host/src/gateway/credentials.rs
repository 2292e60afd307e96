//! Which credential goes on which route (docs/gateway.md#route-classes-and-authentication, docs/architecture.md#gateway-credentials). Components never see these.

use crate::capability::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use std::fmt;

/// The gateway's three route classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// `/v1/*`, `/api/v1/*`: Bearer API key.
    ClientApi,
    /// The public health and login-status GETs: no credentials at all.
    Public,
    /// Every other `/api/*` path: the dashboard session cookie.
    Management,
}

/// Classifies a normalised path as the gateway does.
pub fn route_class(method: Method, path: &str) -> RouteClass {
    if path.starts_with("/v1/") || path == "/v1" || path.starts_with("/api/v1/") {
        RouteClass::ClientApi
    } else if method == Method::Get
        && (path == "/api/monitoring/health" || path == "/api/settings/require-login")
    {
        RouteClass::Public
    } else {
        RouteClass::Management
    }
}

/// Secrets the host holds for the gateway. `Debug` never prints them.
#[derive(Clone, Default)]
pub struct Credentials {
    api_key: Option<HeaderValue>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A credential that cannot be put in an HTTP header.
#[derive(Debug, thiserror::Error)]
#[error("OMNIROUTE_API_KEY contains characters that are not allowed in an HTTP header")]
pub struct InvalidCredential;

impl Credentials {
    /// `api_key`: the Bearer key for client routes (`OMNIROUTE_API_KEY`); empty means none.
    pub fn new(api_key: Option<&str>) -> Result<Self, InvalidCredential> {
        let api_key = match api_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| InvalidCredential)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self { api_key })
    }

    /// Adds what the route class calls for.
    pub fn apply(&self, class: RouteClass, headers: &mut HeaderMap) {
        if class == RouteClass::ClientApi {
            if let Some(key) = &self.api_key {
                headers.insert(AUTHORIZATION, key.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(route_class(Method::Post, "/v1/chat/completions"), RouteClass::ClientApi);
        assert_eq!(route_class(Method::Get, "/api/v1/models"), RouteClass::ClientApi);
        assert_eq!(route_class(Method::Get, "/api/monitoring/health"), RouteClass::Public);
        assert_eq!(route_class(Method::Post, "/api/monitoring/health"), RouteClass::Management);
        assert_eq!(route_class(Method::Get, "/api/combos"), RouteClass::Management);
    }

    #[test]
    fn bearer_only_on_client_routes_and_never_printed() {
        let creds = Credentials::new(Some("sk-secret")).unwrap();
        assert!(!format!("{creds:?}").contains("sk-secret"));
        let mut h = HeaderMap::new();
        creds.apply(RouteClass::Management, &mut h);
        creds.apply(RouteClass::Public, &mut h);
        assert!(h.is_empty());
        creds.apply(RouteClass::ClientApi, &mut h);
        assert_eq!(h.get(AUTHORIZATION).unwrap(), "Bearer sk-secret");
        assert!(Credentials::new(Some("  ")).unwrap().api_key.is_none());
    }
}
