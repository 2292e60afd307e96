//! A client that drops the connection of its POST before the answer has
//! been streamed in full cancels what the POST started: each POST carries a
//! [`ClientGone`] token in its extensions (the MCP handler stops the call
//! when it fires), and an SSE response body is wrapped so that dropping it
//! before its end (hyper drops it when the connection closes) fires it.
//! Legacy sessions need this: rmcp keeps their request running for a
//! resumption that a disconnected client never makes. A call run as a task
//! does not watch the token.

use crate::mcp::ClientGone;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The token of one POST, until its response is wrapped: dropped before
/// that (the client went away while no response had started), it fires.
pub(super) struct Watch(DropGuard);

/// Gives `request` a [`ClientGone`] token.
pub(super) fn watch(request: &mut Request) -> Watch {
    let token = CancellationToken::new();
    request.extensions_mut().insert(ClientGone(token.clone()));
    Watch(token.drop_guard())
}

impl Watch {
    /// An SSE response (a `tools/call` streaming its progress, then its
    /// answer) cancels the token if its body is dropped before the end;
    /// any other response is already complete and never cancels it.
    pub(super) fn wrap(self, response: Response) -> Response {
        let sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            drop(self.0.disarm());
            return response;
        }
        let (parts, body) = response.into_parts();
        let watched = Watched { inner: body.into_data_stream(), guard: Some(self.0) };
        Response::from_parts(parts, Body::from_stream(watched))
    }
}

/// The response body; its guard is disarmed when the body ends.
struct Watched {
    inner: BodyDataStream,
    guard: Option<DropGuard>,
}

impl Stream for Watched {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = next
            && let Some(guard) = self.guard.take()
        {
            drop(guard.disarm());
        }
        next
    }
}
