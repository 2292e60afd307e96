//! The gateway's HTTP/1.1 server: its own thread and runtime, one task per connection, and a
//! per-connection kill switch so an override can drop a connection without answering.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;
use tower_service::Service;

use super::routes::{self, Shared};

/// Put into each request's extensions; `kill()` ends the connection that carried the request.
#[derive(Clone)]
pub(crate) struct ConnKiller(Arc<Notify>);

impl ConnKiller {
    pub(crate) fn kill(&self) {
        self.0.notify_one();
    }
}

/// Stops the server (and joins its thread) when dropped.
pub(crate) struct ServerHandle {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn spawn(shared: Arc<Shared>) -> (SocketAddr, ServerHandle) {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("fake gateway: bind 127.0.0.1:0");
    listener
        .set_nonblocking(true)
        .expect("fake gateway: non-blocking listener");
    let addr = listener.local_addr().expect("fake gateway: local address");
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let router = routes::router(shared);
    let thread = std::thread::Builder::new()
        .name(format!("fake-gateway-{}", addr.port()))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake gateway: tokio runtime");
            runtime.block_on(async move {
                let listener =
                    TcpListener::from_std(listener).expect("fake gateway: tokio listener");
                accept_loop(listener, router, shutdown_rx).await;
            });
        })
        .expect("fake gateway: spawn thread");
    // The socket is already listening, so the gateway is ready as soon as `spawn` returns.
    (
        addr,
        ServerHandle {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        },
    )
}

async fn accept_loop(listener: TcpListener, router: Router, mut shutdown: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the JoinSet aborts the open connections.
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let killer = ConnKiller(Arc::clone(&kill));
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(killer.clone());
        let mut router = router.clone();
        async move { router.call(request.map(axum::body::Body::new)).await }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = kill.notified() => {}
    }
}
