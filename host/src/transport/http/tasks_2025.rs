//! The Streamable HTTP side of [`crate::mcp::tasks_2025`]: a legacy
//! session's requests carry `MCP-Protocol-Version: 2025-11-25`, so those
//! that concern tasks are renamed for our handler before rmcp parses them;
//! the answer to an `initialize` asking for 2025-11-25 gets the tasks
//! capability on its way out. Every other request passes untouched (the body
//! of a request that cannot concern tasks is not parsed).

use crate::mcp::tasks_2025;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use std::time::Duration;

/// How long the `initialize` answer may take to arrive whole.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn adapt(request: Request<Body>, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let headers = request.headers();
    let version = headers.get("mcp-protocol-version").map(|v| v.to_str().unwrap_or_default());
    let legacy = version == Some(tasks_2025::VERSION);
    let in_session = headers.contains_key("mcp-session-id");
    // Only a 2025-11-25 session's requests (they name the revision in the
    // header) are renamed, and only a request that names no revision and no
    // session can be its `initialize`; the rest pass unread.
    if !legacy && (version.is_some() || in_session) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::guard::MAX_BODY_BYTES).await else {
        return super::refuse(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large or could not be read");
    };
    let mut initialize = None;
    let mut bytes = bytes;
    if tasks_2025::may_concern(&bytes)
        && let Ok(mut message) = serde_json::from_slice::<Value>(&bytes)
    {
        if !in_session {
            initialize = tasks_2025::initialize_id(&message);
        }
        if tasks_2025::route_inbound(&mut message, legacy) {
            bytes = Bytes::from(message.to_string());
        }
    }
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    match initialize {
        Some(id) => advertise(response, &id).await,
        None => response,
    }
}

/// The `initialize` answer with the tasks capability, whether rmcp sent it
/// as JSON or as an SSE event.
async fn advertise(response: Response, id: &Value) -> Response {
    let (mut parts, body) = response.into_parts();
    let sse = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/event-stream"));
    let text = match tokio::time::timeout(ANSWER_WAIT, read_answer(body, sse, id)).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => {
            tracing::warn!("cannot read the initialize answer to add the tasks capability: {e}");
            return Response::from_parts(parts, Body::empty());
        }
        Err(_) => {
            tracing::warn!("the initialize answer did not arrive within {ANSWER_WAIT:?}");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let text = if sse { rewrite_sse(&text, id) } else { rewrite_json(&text, id) };
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(length) = HeaderValue::from_str(&text.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, length);
    }
    Response::from_parts(parts, Body::from(text))
}

/// The body up to the event that answers `id` (SSE), or whole (JSON).
async fn read_answer(body: Body, sse: bool, id: &Value) -> Result<String, String> {
    use futures::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut text = String::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        text.push_str(&String::from_utf8_lossy(&chunk));
        if sse && sse_events(&text).any(|event| event_answers(event, id)) {
            break;
        }
    }
    Ok(text)
}

/// Whole events of an SSE text (each ends with a blank line).
fn sse_events(text: &str) -> impl Iterator<Item = &str> {
    let whole = text.rfind("\n\n").map_or("", |end| &text[..end + 2]);
    whole.split("\n\n").filter(|e| !e.is_empty())
}

fn event_data(event: &str) -> String {
    event.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect::<Vec<_>>().join("\n")
}

fn event_answers(event: &str, id: &Value) -> bool {
    serde_json::from_str::<Value>(&event_data(event)).is_ok_and(|m| m.get("id") == Some(id))
}

fn rewrite_json(text: &str, id: &Value) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(mut message) => {
            if tasks_2025::advertise(&mut message, id) { message.to_string() } else { text.to_owned() }
        }
        Err(_) => text.to_owned(),
    }
}

/// Rewrites the answering event's data; keeps the other events as they are.
fn rewrite_sse(text: &str, id: &Value) -> String {
    let mut out = String::with_capacity(text.len() + 96);
    for event in sse_events(text) {
        if event_answers(event, id) {
            let mut message: Value = serde_json::from_str(&event_data(event)).unwrap_or(Value::Null);
            tasks_2025::advertise(&mut message, id);
            for line in event.lines().filter(|l| !l.starts_with("data:")) {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("data: ");
            out.push_str(&message.to_string());
            out.push_str("\n\n");
        } else {
            out.push_str(event);
            out.push_str("\n\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_answering_sse_event_gets_the_capability_and_others_stay() {
        let id = json!(0);
        let text = "id: 0\nretry: 3000\ndata: \n\nevent: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{}}}\n\n";
        let out = rewrite_sse(text, &id);
        assert!(out.starts_with("id: 0\nretry: 3000\ndata: \n\n"), "{out}");
        let event = out.split("\n\n").nth(1).unwrap();
        assert!(event.starts_with("event: message\nid: 1\ndata: "), "{event}");
        let message: Value = serde_json::from_str(&event_data(event)).unwrap();
        assert_eq!(message["result"]["capabilities"]["tasks"]["cancel"], json!({}));
    }
}
