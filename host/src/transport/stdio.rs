//! The byte streams of the stdio transport.
//!
//! Tokio's `stdin()` and `stdout()` read and write on a helper thread, so
//! every JSON-RPC message would cross threads twice. IDEs start MCP servers
//! with pipes or socket pairs, which can be driven non-blocking on the
//! runtime's own reactor instead; a terminal or a regular file falls back to
//! tokio's blocking wrappers.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use tokio::io::{AsyncRead, AsyncWrite};

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
    (
        reader.map_or_else(|| (Box::new(tokio::io::stdin()) as Reader, Mode::HelperThread), |r| (r, Mode::NonBlocking)),
        writer.map_or_else(|| (Box::new(tokio::io::stdout()) as Writer, Mode::HelperThread), |w| (w, Mode::NonBlocking)),
    )
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
