//! The stdio side of [`crate::mcp::tasks_2025`]: the newline-delimited
//! JSON-RPC streams between the client and rmcp, adapted for a client that
//! negotiates MCP 2025-11-25 tasks.
//!
//! Inbound, a line that may concern tasks (a cheap byte scan) is parsed and,
//! in a 2025-11-25 session, renamed for our handler; every other line passes
//! as it is. Outbound, only the `initialize` answer is touched (the tasks
//! capability added); once it has gone by, writes go straight through.

use crate::mcp::tasks_2025;
use serde_json::Value;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the two halves learn about the session.
#[derive(Debug, Default)]
struct Shared {
    /// The session asked for (and, once answered, agreed on) 2025-11-25.
    legacy: bool,
    /// The id of the 2025-11-25 `initialize` whose answer is still to come.
    pending_initialize: Option<Value>,
}

type State = Arc<Mutex<Shared>>;

fn lock(state: &State) -> std::sync::MutexGuard<'_, Shared> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wraps stdin and stdout for rmcp.
pub fn wrap<R, W>(reader: R, writer: W) -> (Inbound<R>, Outbound<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let state = State::default();
    (
        Inbound { inner: reader, state: state.clone(), pending: Vec::new(), ready: Vec::new(), ready_at: 0, eof: false },
        Outbound { inner: writer, state, line: Vec::new(), out: Vec::new(), out_at: 0 },
    )
}

/// The client's requests, lines adapted.
pub struct Inbound<R> {
    inner: R,
    state: State,
    /// Bytes read but not yet a whole line.
    pending: Vec<u8>,
    /// Adapted bytes for rmcp.
    ready: Vec<u8>,
    ready_at: usize,
    eof: bool,
}

impl<R> Inbound<R> {
    /// Adapts one whole line (with its newline) into `ready`.
    fn adapt(&mut self, line: &[u8]) {
        if !tasks_2025::may_concern(line) {
            self.ready.extend_from_slice(line);
            return;
        }
        let Ok(mut message) = serde_json::from_slice::<Value>(line) else {
            self.ready.extend_from_slice(line);
            return;
        };
        let mut state = lock(&self.state);
        if let Some(id) = tasks_2025::initialize_id(&message) {
            state.legacy = true;
            state.pending_initialize = Some(id);
        }
        if tasks_2025::route_inbound(&mut message, state.legacy) {
            drop(state);
            self.ready.extend_from_slice(message.to_string().as_bytes());
            self.ready.push(b'\n');
        } else {
            self.ready.extend_from_slice(line);
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Inbound<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    this.ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(end) = this.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = this.pending.drain(..=end).collect();
                this.adapt(&line);
                continue;
            }
            if this.eof {
                // A last line without a newline goes as it is.
                let rest = std::mem::take(&mut this.pending);
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready = rest;
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.pending.extend_from_slice(read.filled());
            }
        }
    }
}

/// rmcp's answers, the 2025-11-25 `initialize` answer completed.
pub struct Outbound<W> {
    inner: W,
    state: State,
    /// Bytes of a line not yet whole, held while an `initialize` answer is due.
    line: Vec<u8>,
    /// Bytes to write before anything else.
    out: Vec<u8>,
    out_at: usize,
}

impl<W: AsyncWrite + Unpin> Outbound<W> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.out.clear();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Moves whole held lines to `out`, completing the `initialize` answer.
    fn release_lines(&mut self) {
        while let Some(end) = self.line.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.line.drain(..=end).collect();
            let id = lock(&self.state).pending_initialize.clone();
            let adapted = id.and_then(|id| {
                let mut message: Value = serde_json::from_slice(&line).ok()?;
                if message.get("id") != Some(&id) {
                    return None;
                }
                let mut state = lock(&self.state);
                state.pending_initialize = None;
                if !tasks_2025::advertise(&mut message, &id) {
                    // The server agreed on another revision.
                    state.legacy = false;
                    return None;
                }
                Some(message.to_string() + "\n")
            });
            match adapted {
                Some(text) => self.out.extend_from_slice(text.as_bytes()),
                None => self.out.extend_from_slice(&line),
            }
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Outbound<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        let holding = !this.line.is_empty() || lock(&this.state).pending_initialize.is_some();
        if !holding {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.line.extend_from_slice(buf);
        this.release_lines();
        if lock(&this.state).pending_initialize.is_none() && !this.line.is_empty() {
            // The answer went by; the rest of a partial line follows it.
            let rest = std::mem::take(&mut this.line);
            this.out.extend_from_slice(&rest);
        }
        let _ = this.drain(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let rest = std::mem::take(&mut self.line);
        self.out.extend_from_slice(&rest);
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    #[tokio::test]
    async fn a_2025_11_25_session_is_adapted_both_ways_and_others_pass_untouched() {
        let input = concat!(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/list"}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            "\n",
        );
        let (client_out, mut client_in) = tokio::io::duplex(4096);
        let (inbound, outbound) = wrap(input.as_bytes(), client_out);
        let mut lines = BufReader::new(inbound).lines();
        let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(first["method"], "initialize");
        let second: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert!(tasks_2025::is_ours(second["method"].as_str().unwrap()), "{second}");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);

        let mut outbound = outbound;
        // The answer arrives in two writes; a later message passes untouched.
        let answer = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;
        outbound.write_all(&answer.as_bytes()[..20]).await.unwrap();
        outbound.write_all(format!("{}\n", &answer[20..]).as_bytes()).await.unwrap();
        outbound.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n").await.unwrap();
        outbound.flush().await.unwrap();
        drop(outbound);
        let mut written = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut client_in, &mut written).await.unwrap();
        let mut written = written.lines();
        let init: Value = serde_json::from_str(written.next().unwrap()).unwrap();
        assert_eq!(init["result"]["capabilities"]["tasks"]["list"], serde_json::json!({}));
        assert_eq!(written.next().unwrap(), r#"{"jsonrpc":"2.0","id":2,"result":{}}"#);
    }

    #[tokio::test]
    async fn another_revision_is_never_renamed() {
        let input = concat!(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/list"}"#,
            "\n",
        );
        let (inbound, _outbound) = wrap(input.as_bytes(), tokio::io::sink());
        let mut lines = BufReader::new(inbound).lines();
        lines.next_line().await.unwrap();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), r#"{"jsonrpc":"2.0","id":1,"method":"tasks/list"}"#);
    }
}
