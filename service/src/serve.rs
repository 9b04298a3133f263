//! The TLS accept loop: rustls handshake with a timeout, then hyper (HTTP/1.1 and HTTP/2)
//! serving an axum router, each request carrying a [`ConnInfo`] extension with the peer's
//! address and verified certificate. Stops accepting on the stop signal and lets requests in
//! flight finish (at most 30 s).

use crate::tls::PeerCert;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// What the TLS layer knows about a connection; handlers take it as `Extension<ConnInfo>`.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Peer address.
    pub peer: SocketAddr,
    /// Leaf client certificate, already verified against the configured roots, parsed once
    /// per connection (not per request).
    pub client: Option<Arc<PeerCert>>,
}

/// Called when a handshake fails or times out (metrics).
pub type OnTlsFailure = Arc<dyn Fn() + Send + Sync>;

/// Serves `app` on `listener` until `stop` turns true.
pub async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    handshake_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    on_tls_failure: OnTlsFailure,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), graceful.watcher());
        let on_tls_failure = on_tls_failure.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    on_tls_failure();
                    return;
                }
                Err(_) => {
                    on_tls_failure();
                    return;
                }
            };
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first());
            let client = match leaf.map(crate::tls::peer_cert).transpose() {
                Ok(client) => client.map(Arc::new),
                Err(e) => {
                    // Verified by rustls but not parsed by x509-parser: refuse the connection.
                    tracing::warn!(%peer, error = %e, "client certificate does not parse");
                    return;
                }
            };
            let info = ConnInfo { peer, client };
            let service = app.map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(info.clone());
                req
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; closing them");
    }
}

/// Binds a listener with a deep accept queue: after a restart every box reconnects at once,
/// and the default queue of std (128) overflows, which costs each dropped client a 1 s SYN
/// retransmission.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The listener tasks of a server and the switch that stops them.
#[derive(Debug)]
pub struct Listeners {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Listeners {
    /// A stop switch (hand its receiver to every listener) and no task yet.
    pub fn new() -> (Self, watch::Receiver<bool>) {
        let (stop, rx) = watch::channel(false);
        (
            Self {
                stop,
                tasks: Vec::new(),
            },
            rx,
        )
    }

    /// Adds a listener task.
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    /// Stops accepting and waits for the listeners to finish their requests in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// A TCP port free on 127.0.0.1 right now (for tools and tests that start servers).
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
