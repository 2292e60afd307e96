//! What every `/mcp` request passes before rmcp sees it: DNS-rebinding
//! checks (Host, Origin), the bearer token resolved to its tenant's
//! principal, session ownership, and for `initialize` the tenant's rate
//! limit and session cap.

use super::{Shared, refuse, refuse_with_challenge};
use crate::auth::Principal;
use crate::auth::oauth::metadata::Challenge;
use crate::auth::oauth::verify::looks_like_jwt;
use crate::auth::oauth::{OAuth, Refusal, TokenGrant};
use crate::auth::tenants::Tenants;
use crate::capability::Scope;
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
pub(super) const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

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
    let host = host.unwrap_or_default();
    let token = bearer(headers).map(str::to_owned);
    let tenants = shared.tenants.current();
    let (principal, grant) = match authenticate(&tenants, &host, token.as_deref()).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    if let Some(reason) = shared.revocations.reason(principal.id()) {
        tracing::info!(caller = %principal.caller(), "refused a revoked principal");
        return revoked(&tenants, &host, &reason);
    }
    let headers = request.headers();
    let session_id = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut pending_start = None;
    match &session_id {
        Some(id) if shared.sessions.owner(id).is_some_and(|owner| &owner != principal.id()) => {
            tracing::warn!(tenant = %principal.caller(), "refused a request for another tenant's MCP session");
            return refuse(StatusCode::FORBIDDEN, "This MCP session belongs to another tenant; initialize your own session");
        }
        // An OAuth token's `tools/call`s are looked at for step-up, in a session or not.
        Some(_) if grant.is_none() || request.method() != Method::POST => {}
        _ if request.method() == Method::POST => {
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
            let peek = Peek::of(&body);
            if let Some(grant) = &grant
                && let Some(oauth) = tenants.oauth()
                && let Some(refusal) = step_up(&shared, oauth, &host, grant, &peek)
            {
                return refusal;
            }
            if session_id.is_none() && peek.method.as_deref() == Some("initialize") {
                match admit_session(&shared, &principal).await {
                    Ok(pending) => pending_start = Some(pending),
                    Err(message) => return refuse(StatusCode::TOO_MANY_REQUESTS, message),
                }
            }
            request = Request::from_parts(parts, Body::from(body));
        }
        _ => {}
    }
    request.extensions_mut().insert::<Arc<Principal>>(principal);
    let gone = (request.method() == Method::POST).then(|| super::disconnect::watch(&mut request));
    let response = next.run(request).await;
    // By now rmcp has bound the new session (if it made one) to its tenant.
    drop(pending_start);
    match gone {
        Some(gone) => gone.wrap(response),
        None => response,
    }
}

/// 401 for a principal revoked in the state store (`tenants revoke`): its
/// credentials are valid but the operator withdrew them on every node.
fn revoked(tenants: &Tenants, host: &str, reason: &str) -> Response {
    let message = format!("Revoked credentials: the operator revoked this principal ({reason}); ask them to restore it or issue new credentials");
    match tenants.oauth() {
        Some(oauth) => {
            let resource = oauth.resource(host);
            let challenge = Challenge { resource: &resource, error: Some("invalid_token"), description: Some(message.clone()), scopes: oauth.requestable() };
            refuse_with_challenge(StatusCode::UNAUTHORIZED, message, &challenge.header())
        }
        None => refuse(StatusCode::UNAUTHORIZED, message),
    }
}

/// The principal behind the request's bearer token: a tenant's static token,
/// else an OAuth access token; or the refusal, with its challenge.
async fn authenticate(
    tenants: &Tenants,
    host: &str,
    token: Option<&str>,
) -> Result<(Arc<Principal>, Option<TokenGrant>), Box<Response>> {
    let oauth = tenants.oauth();
    let resource = oauth.map(|o| o.resource(host)).unwrap_or_default();
    let challenge = |error: Option<&'static str>, description: Option<String>, scopes: Vec<Scope>| {
        Challenge { resource: &resource, error, description, scopes }.header()
    };
    let Some(token) = token else {
        return Err(Box::new(match oauth {
            Some(o) => refuse_with_challenge(
                StatusCode::UNAUTHORIZED,
                "Missing bearer token: send \"Authorization: Bearer <token>\" with an access token from the \
                 authorization server named in this server's protected-resource metadata, or a tenant token",
                &challenge(None, None, o.requestable()),
            ),
            None => refuse(
                StatusCode::UNAUTHORIZED,
                "Missing bearer token: send \"Authorization: Bearer <token>\" with a token from `omniroute-mcp tenants add`",
            ),
        }));
    };
    if let Some(principal) = tenants.authenticate(token) {
        return Ok((principal, None));
    }
    let Some(oauth) = oauth else {
        return Err(Box::new(refuse(StatusCode::UNAUTHORIZED, "Invalid bearer token: it matches no tenant of this server")));
    };
    if !looks_like_jwt(token) && !oauth.introspects() {
        let message = "Invalid bearer token: it matches no tenant of this server and is not a JWT access token";
        return Err(Box::new(refuse_with_challenge(
            StatusCode::UNAUTHORIZED,
            message,
            &challenge(Some("invalid_token"), Some(message.to_owned()), oauth.requestable()),
        )));
    }
    match oauth.authenticate(token, &resource).await {
        Ok(grant) => Ok((grant.principal.clone(), Some(grant))),
        Err(Refusal::Token(e)) if e.is_unavailable() => {
            tracing::error!("cannot verify an OAuth access token: {e}");
            Err(Box::new(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "The authorization server's keys or introspection endpoint cannot be used, so no access token can be verified; retry later",
            )))
        }
        Err(Refusal::Token(e)) => {
            tracing::info!("refused an OAuth access token: {e}");
            let message = format!("Invalid access token: {e}");
            Err(Box::new(refuse_with_challenge(
                StatusCode::UNAUTHORIZED,
                message.clone(),
                &challenge(Some("invalid_token"), Some(message), oauth.requestable()),
            )))
        }
        Err(Refusal::NotMapped(why)) => {
            tracing::info!("refused an OAuth access token: {why}");
            Err(Box::new(refuse(StatusCode::FORBIDDEN, format!("This server does not serve this access token's holder: {why}"))))
        }
        Err(Refusal::NoScope { wanted }) => {
            let names: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
            let message = format!(
                "Insufficient scope: the access token carries none of the scopes this server allows its holder ({})",
                names.join(" ")
            );
            Err(Box::new(refuse_with_challenge(
                StatusCode::FORBIDDEN,
                message.clone(),
                &challenge(Some("insufficient_scope"), Some(message), wanted),
            )))
        }
    }
}

/// A `tools/call` whose tool needs scopes the access token lacks but the
/// operator allows its holder: 403 `insufficient_scope` naming them, so the
/// client can ask the authorization server for them (step-up). Scopes the
/// operator does not allow are refused in band, as for static tokens.
fn step_up(shared: &Shared, oauth: &OAuth, host: &str, grant: &TokenGrant, peek: &Peek<'_>) -> Option<Response> {
    let name = peek.tool.as_deref()?;
    let registry = shared.service.app().registry();
    let tool = registry.get(name)?;
    if !grant.principal.may_call(name) {
        return None;
    }
    let missing: Vec<Scope> = tool.scopes.iter().copied().filter(|s| !grant.principal.grants().allows(*s)).collect();
    if missing.is_empty() || !missing.iter().all(|s| grant.allowed.allows(*s)) {
        return None;
    }
    let resource = oauth.resource(host);
    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    let message = format!(
        "Insufficient scope: the tool {name} needs {}, which this access token lacks; ask the authorization server for it",
        names.join(" ")
    );
    tracing::info!(caller = %grant.principal.caller(), tool = name, "step-up needed: {}", names.join(" "));
    let challenge = Challenge { resource: &resource, error: Some("insufficient_scope"), description: Some(message.clone()), scopes: missing };
    Some(refuse_with_challenge(StatusCode::FORBIDDEN, message, &challenge.header()))
}

/// An `initialize` counts under the tenant's rate limit (the bucket in the
/// state store every node shares) and needs a free session slot.
async fn admit_session(shared: &Arc<Shared>, principal: &Arc<Principal>) -> Result<super::sessions::PendingStart, String> {
    principal.admit_session_start_in(shared.service.app().state()).await?;
    shared.sessions.reserve(principal, shared.session_idle)
}

/// The parts of a JSON-RPC body the guard looks at: the method (`initialize`
/// starts a session) and a `tools/call`'s tool name (OAuth step-up). Other
/// fields are skipped, not materialised.
#[derive(Default)]
struct Peek<'a> {
    method: Option<Cow<'a, str>>,
    tool: Option<Cow<'a, str>>,
}

impl<'a> Peek<'a> {
    fn of(body: &'a Bytes) -> Peek<'a> {
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            name: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct Message<'a> {
            #[serde(borrow)]
            method: Option<Cow<'a, str>>,
            #[serde(borrow)]
            params: Option<Params<'a>>,
        }
        match serde_json::from_slice::<Message<'_>>(body) {
            Ok(m) => {
                let tool = if m.method.as_deref() == Some("tools/call") { m.params.and_then(|p| p.name) } else { None };
                Peek { method: m.method, tool }
            }
            Err(_) => Peek::default(),
        }
    }
}

/// Whether a JSON-RPC body is an `initialize` request (the only one that
/// starts a session).
#[cfg(test)]
fn is_initialize(body: &Bytes) -> bool {
    Peek::of(body).method.as_deref() == Some("initialize")
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
