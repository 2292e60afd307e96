//! What every `/mcp` request passes before rmcp sees it: DNS-rebinding
//! checks (Host, Origin), the bearer token resolved to its tenant's
//! principal, session ownership, and for `initialize` the tenant's rate
//! limit and session cap.

use super::{Shared, refuse};
use crate::auth::Principal;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;

/// The largest request body rmcp accepts; the guard reads no more than this
/// when it looks for `initialize`.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Splits `name[:port]` / `[v6][:port]` into (name, port).
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some((host, tail)) = authority.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return (host, tail.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

fn host_allowed(shared: &Shared, host: &str) -> bool {
    let (name, _) = split_authority(host);
    is_loopback_host(name)
        || shared
            .allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || (!a.contains(':') && a.eq_ignore_ascii_case(name)))
}

fn origin_allowed(shared: &Shared, origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else { return false };
    let Some(host) = url.host_str() else { return false };
    let normalized = url.origin().ascii_serialization();
    (matches!(url.scheme(), "http" | "https") && is_loopback_host(host))
        || shared.allowed_origins.iter().any(|a| {
            a.trim_end_matches('/').eq_ignore_ascii_case(&normalized) || a.trim_end_matches('/').eq_ignore_ascii_case(origin)
        })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// DNS-rebinding checks, authentication, session ownership and session
/// admission, before rmcp.
pub(super) async fn guard(State(shared): State<Arc<Shared>>, mut request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match &host {
        Some(h) if host_allowed(&shared, h) => {}
        Some(h) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("Host \"{h}\" is not allowed (DNS rebinding protection); start the server with --allowed-host {h} to serve it"),
            );
        }
        None => return refuse(StatusCode::FORBIDDEN, "a Host header is required"),
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(&shared, origin) {
            return refuse(
                StatusCode::FORBIDDEN,
                format!("Origin \"{origin}\" is not allowed (DNS rebinding protection); start the server with --allowed-origin {origin} to serve it"),
            );
        }
    }
    let Some(token) = bearer(headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Missing bearer token: send \"Authorization: Bearer <token>\" with a token from `omniroute-mcp tenants add`",
        );
    };
    let Some(principal) = shared.tenants.authenticate(token) else {
        return refuse(StatusCode::UNAUTHORIZED, "Invalid bearer token: it matches no tenant of this server");
    };
    let session_id = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut pending_start = None;
    match &session_id {
        Some(id) if shared.sessions.owner(id).is_some_and(|owner| &owner != principal.id()) => {
            tracing::warn!(tenant = %principal.caller(), "refused a request for another tenant's MCP session");
            return refuse(StatusCode::FORBIDDEN, "This MCP session belongs to another tenant; initialize your own session");
        }
        Some(_) => {}
        None if request.method() == Method::POST => {
            let (parts, body) = request.into_parts();
            let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                Ok(body) => body,
                Err(_) => {
                    return refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("The request body is over {} MiB or could not be read", MAX_BODY_BYTES / (1024 * 1024)),
                    );
                }
            };
            if is_initialize(&body) {
                match admit_session(&shared, &principal) {
                    Ok(pending) => pending_start = Some(pending),
                    Err(message) => return refuse(StatusCode::TOO_MANY_REQUESTS, message),
                }
            }
            request = Request::from_parts(parts, Body::from(body));
        }
        None => {}
    }
    request.extensions_mut().insert::<Arc<Principal>>(principal);
    let response = next.run(request).await;
    // By now rmcp has bound the new session (if it made one) to its tenant.
    drop(pending_start);
    response
}

/// An `initialize` counts under the tenant's rate limit and needs a free
/// session slot.
fn admit_session(shared: &Arc<Shared>, principal: &Arc<Principal>) -> Result<super::sessions::PendingStart, String> {
    principal.admit_session_start()?;
    shared.sessions.reserve(principal, shared.session_idle)
}

/// Whether a JSON-RPC body is an `initialize` request (the only one that
/// starts a session). Other fields are skipped, not materialised.
fn is_initialize(body: &Bytes) -> bool {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow)]
        method: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Peek<'_>>(body).is_ok_and(|p| p.method.as_deref() == Some("initialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(split_authority("127.0.0.1:8931"), ("127.0.0.1", Some("8931")));
        assert_eq!(split_authority("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_authority("localhost"), ("localhost", None));
        assert!(is_loopback_host("::1") && is_loopback_host("LOCALHOST") && !is_loopback_host("evil.example"));
    }

    #[test]
    fn finds_initialize_only() {
        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#;
        assert!(is_initialize(&Bytes::from_static(init)));
        for other in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#[..],
            br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            b"not json",
        ] {
            assert!(!is_initialize(&Bytes::copy_from_slice(other)), "{}", String::from_utf8_lossy(other));
        }
    }
}
