//! `GET /.well-known/oauth-protected-resource` and its path-suffixed form
//! for `/mcp` (RFC 9728): where an OAuth client learns which authorization
//! server issues tokens for this server, and which scopes exist.

use super::Shared;
use crate::auth::oauth::metadata;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

pub(super) const PATH: &str = metadata::WELL_KNOWN;
pub(super) const PATH_FOR_MCP: &str = "/.well-known/oauth-protected-resource/mcp";

/// The metadata, or a JSON 404 that says OAuth is off (never an HTML page, so
/// a client's discovery fails with a reason).
pub(super) async fn metadata(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let tenants = shared.tenants.current();
    let Some(oauth) = tenants.oauth() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": "Not Found",
                "message": "this server accepts no OAuth access tokens (its tenants file has no [oauth] table); \
                            send a tenant's static token as \"Authorization: Bearer <token>\"",
            })),
        )
            .into_response();
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let resource = oauth.resource(host);
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        Json(metadata::document(&resource, &oauth.issuer_urls())),
    )
        .into_response()
}
