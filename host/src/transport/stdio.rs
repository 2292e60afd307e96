//! MCP over stdio: one session for the process, one principal (the
//! operator, from the environment), and the byte streams underneath.
//!
//! Tokio's `stdin()` and `stdout()` read and write on a helper thread, so
//! every JSON-RPC message would cross threads twice. IDEs start MCP servers
//! with pipes or socket pairs, which can be driven non-blocking on the
//! runtime's own reactor instead; a terminal or a regular file falls back to
//! tokio's blocking wrappers.
//!
//! On Windows, clients start the server with anonymous pipes (`CreatePipe`),
//! which cannot do overlapped I/O, so there is no reactor to put them on:
//! both streams always use tokio's helper-thread wrappers there.

use crate::app::App;
use crate::auth::Principal;
use crate::call::{CallService, Caller};
use crate::config::Settings;
use crate::mcp::{McpHandler, ResolveCaller};
use crate::tasks::Tasks;
use crate::session::Session;
use anyhow::Context;
use rmcp::ServiceExt;
use rmcp::service::{RequestContext, RoleServer};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Serves MCP on stdin/stdout until stdin closes. Refuses to start with no
/// tool at all (an IDE would show an empty server with no hint why).
pub async fn serve(settings: &Settings) -> anyhow::Result<()> {
    crate::gateway::probe::spawn(settings.base_url.clone());
    let app = App::start(settings).await?;
    let registry = app.registry();
    if registry.tools().is_empty() {
        let reasons: Vec<String> = registry
            .refused()
            .iter()
            .map(|r| format!("{}: {}", r.path.display(), r.reason))
            .collect();
        anyhow::bail!(
            "no tool could be loaded from {}; refusing to serve an empty server.{}{}",
            super::join_paths(&settings.tools_dirs),
            if reasons.is_empty() { "" } else { "\n  " },
            reasons.join("\n  ")
        );
    }
    let principal = operator(settings);
    tracing::info!(
        tools = registry.tools().len(),
        refused = registry.refused().len(),
        gateway = %settings.base_url,
        principal = %principal.id(),
        "omniroute-mcp serving MCP over stdio"
    );
    drop(registry);
    app.watch_plugins();
    let caller = Caller { principal: Arc::new(principal), session: Arc::new(Session::legacy(format!("stdio-{}", std::process::id()))) };
    let service = Arc::new(CallService::new(app));
    let tasks = Tasks::new(service.clone());
    let ((reader, reader_mode), (writer, writer_mode)) = streams();
    tracing::debug!(stdin = ?reader_mode, stdout = ?writer_mode, "stdio streams");
    let running = McpHandler::new(service.clone(), tasks.clone(), Arc::new(Operator(caller)))
        .serve(super::tasks_2025::wrap(reader, writer))
        .await
        .context("MCP initialization over stdio failed")?;
    // Until the client closes stdin, or SIGTERM/SIGINT.
    let ended = tokio::select! {
        ended = running.waiting() => ended.map(drop).context("MCP stdio session ended with an error"),
        () = super::http::wait_for_signal() => {
            tracing::info!("signal received; stopping");
            Ok(())
        }
    };
    // Tasks the client started get the shutdown grace period to finish
    // (their results stay readable through a shared store), then are
    // recorded as cancelled.
    tasks.drain(super::http::SHUTDOWN_GRACE).await;
    service.app().audit().close().await;
    ended?;
    Ok(())
}

/// The operator, resolved once from the environment: `OMNIROUTE_MCP_PRINCIPAL`,
/// `OMNIROUTE_MCP_SCOPES` and `OMNIROUTE_MCP_ENFORCE_SCOPES`.
pub fn operator(settings: &Settings) -> Principal {
    Principal::operator(settings.operator.clone(), settings.scopes.clone(), settings.enforce_scopes).with_spend(settings.operator_spend)
}

/// Every request of a stdio session comes from the operator, over the
/// process's one session.
struct Operator(Caller);

impl ResolveCaller for Operator {
    fn resolve(&self, _context: &RequestContext<RoleServer>) -> Result<Caller, rmcp::ErrorData> {
        Ok(self.0.clone())
    }
}

/// Where JSON-RPC requests come from.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// Where JSON-RPC answers go.
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// How a stream is driven, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A pipe or socket on the runtime's reactor.
    NonBlocking,
    /// Tokio's blocking wrapper (a terminal or a file).
    HelperThread,
}

/// Stdin and stdout as async streams, with how each is driven.
pub fn streams() -> ((Reader, Mode), (Writer, Mode)) {
    let (reader, writer) = reactor::streams();
    (
        reader.map_or_else(|| (Box::new(tokio::io::stdin()) as Reader, Mode::HelperThread), |r| (r, Mode::NonBlocking)),
        writer.map_or_else(|| (Box::new(tokio::io::stdout()) as Writer, Mode::HelperThread), |w| (w, Mode::NonBlocking)),
    )
}

/// Stdin and stdout on the runtime's reactor, when they are pipes or sockets.
#[cfg(unix)]
mod reactor {
    use super::{Reader, Writer};
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt;

    pub(super) fn streams() -> (Option<Reader>, Option<Writer>) {
        let reader = match duplicate(std::io::stdin().as_fd()).and_then(nonblocking) {
            Some(Stream::Pipe(file)) => tokio::net::unix::pipe::Receiver::from_file(file).ok().map(|r| Box::new(r) as Reader),
            Some(Stream::Socket(socket)) => Some(Box::new(socket) as Reader),
            None => None,
        };
        let writer = match duplicate(std::io::stdout().as_fd()).and_then(nonblocking) {
            Some(Stream::Pipe(file)) => tokio::net::unix::pipe::Sender::from_file(file).ok().map(|w| Box::new(w) as Writer),
            Some(Stream::Socket(socket)) => Some(Box::new(socket) as Writer),
            None => None,
        };
        (reader, writer)
    }

    enum Stream {
        Pipe(std::fs::File),
        Socket(tokio::net::UnixStream),
    }

    fn duplicate(fd: std::os::fd::BorrowedFd<'_>) -> Option<OwnedFd> {
        fd.try_clone_to_owned().ok()
    }

    /// A pipe (tokio sets it non-blocking when it takes it) or a stream socket
    /// (set non-blocking here); anything else is `None`.
    fn nonblocking(fd: OwnedFd) -> Option<Stream> {
        let file = std::fs::File::from(fd);
        let kind = file.metadata().ok()?.file_type();
        if kind.is_fifo() {
            return Some(Stream::Pipe(file));
        }
        if kind.is_socket() {
            let socket = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
            socket.set_nonblocking(true).ok()?;
            return tokio::net::UnixStream::from_std(socket).ok().map(Stream::Socket);
        }
        None
    }
}

/// Windows: anonymous pipes cannot be registered with the reactor (no
/// overlapped I/O), so both streams use the helper-thread wrappers.
#[cfg(not(unix))]
mod reactor {
    use super::{Reader, Writer};

    pub(super) fn streams() -> (Option<Reader>, Option<Writer>) {
        (None, None)
    }
}
