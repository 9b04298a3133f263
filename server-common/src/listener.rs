//! The TLS accept loop: admission within the connection caps, the rustls handshake with a
//! timeout, then hyper (HTTP/1.1 and HTTP/2) serving an axum router, each request carrying a
//! [`ConnInfo`] extension with the peer's address and verified certificate. Connections that
//! send no request head in time, or move no byte for the idle time, are closed. On the stop
//! signal it stops accepting and lets requests in flight finish (at most 30 s).

use crate::activity::{Activity, Tracked};
use crate::gate::{ConnectionLimits, Gate, Refusal};
use crate::tls::PeerCert;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
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

/// What a server wants to count about its connections (metrics). Every method does nothing
/// unless overridden.
pub trait ConnObserver: Send + Sync + 'static {
    /// A handshake failed or timed out.
    fn tls_failure(&self) {}
    /// A connection was turned away by a cap.
    fn refused(&self, _why: Refusal) {}
    /// The number of open connections changed.
    fn open_connections(&self, _open: usize) {}
}

/// No metrics.
impl ConnObserver for () {}

/// Everything one TLS listener serves with.
#[derive(Clone)]
pub struct TlsService {
    /// TLS configuration.
    pub acceptor: TlsAcceptor,
    /// The routes.
    pub app: axum::Router,
    /// Time limits (caps are in `gate`).
    pub limits: ConnectionLimits,
    /// Admission.
    pub gate: Arc<Gate>,
    /// Metrics hooks.
    pub observer: Arc<dyn ConnObserver>,
}

/// How long a connection may take to finish once asked to close (idle or stopping).
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long the server waits for requests in flight when it stops.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Serves on `listener` until `stop` turns true.
pub async fn accept_tls(
    listener: TcpListener,
    service: TlsService,
    mut stop: watch::Receiver<bool>,
) {
    let mut accept_errors = AcceptBackoff::default();
    let mut refusals = RefusalLog::default();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(accept_errors.failed(&e)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        accept_errors.succeeded();
        let admission = match service.gate.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(why) => {
                // Closed before the handshake: it costs the server nothing more.
                service.observer.refused(why);
                refusals.note(why, service.gate.max());
                continue;
            }
        };
        service.observer.open_connections(service.gate.open());
        let (service, stop) = (service.clone(), stop.clone());
        tokio::spawn(async move {
            serve_connection(tcp, peer, &service, stop).await;
            drop(admission);
            service.observer.open_connections(service.gate.open());
        });
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, service.gate.drained())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; closing them");
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    service: &TlsService,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let limits = service.limits;
    let started = Instant::now();
    let activity = Activity::new();
    let tcp = Tracked::new(tcp, activity.clone());
    let tls = match tokio::time::timeout(limits.handshake_timeout(), service.acceptor.accept(tcp))
        .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            service.observer.tls_failure();
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            service.observer.tls_failure();
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
    let requested = Arc::new(AtomicBool::new(false));
    let seen = requested.clone();
    let app = service
        .app
        .clone()
        .map_request(move |mut req: axum::http::Request<Incoming>| {
            seen.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(info.clone());
            req
        });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(16 * 1024);
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    // One timer per connection, set to the next instant something may be due (the first
    // request's deadline, the idle deadline, the end of a grace): an idle keep-alive
    // connection wakes once per idle timeout, not every second (a server holding thousands of
    // boxes' connections spent its CPU waking them).
    let first_request_by = started + limits.handshake_timeout() + limits.header_timeout();
    let next_check = || -> Instant {
        let now = Instant::now();
        if !requested.load(Ordering::Relaxed) && now < first_request_by {
            return first_request_by;
        }
        now + limits
            .idle_timeout()
            .saturating_sub(activity.idle_for())
            .max(Duration::from_millis(10))
    };
    let timer = tokio::time::sleep_until(next_check().into());
    tokio::pin!(timer);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                let deadline = Instant::now() + STOP_GRACE;
                closing = Some(deadline);
                timer.as_mut().reset(deadline.into());
            }
            () = &mut timer => {
                if let Some(deadline) = closing {
                    if Instant::now() >= deadline {
                        return;
                    }
                    timer.as_mut().reset(deadline.into());
                    continue;
                }
                // HTTP/1.1 heads after the first are hyper's header_read_timeout; the first
                // one is checked here for both protocols (HTTP/2 has no head timeout).
                let why = if !requested.load(Ordering::Relaxed) && Instant::now() >= first_request_by
                {
                    "no request in time"
                } else if activity.idle_for() >= limits.idle_timeout() {
                    "idle"
                } else {
                    timer.as_mut().reset(next_check().into());
                    continue;
                };
                tracing::debug!(%peer, why, "closing connection");
                conn.as_mut().graceful_shutdown();
                let deadline = Instant::now() + CLOSE_GRACE;
                closing = Some(deadline);
                timer.as_mut().reset(deadline.into());
            }
        }
    }
}

/// Accept failures: exponential back-off (10 ms to 1 s), one log line when they start and
/// one when they end, instead of a line every few milliseconds.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u64,
    since: Option<Instant>,
}

impl AcceptBackoff {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(error = %e, "accept failed; backing off until it works again");
            self.since = Some(Instant::now());
        }
        self.failures += 1;
        let exp = self.failures.min(8) as u32 - 1;
        Duration::from_millis(10 * 2u64.pow(exp)).min(Duration::from_secs(1))
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            let secs = self.since.map_or(0.0, |s| s.elapsed().as_secs_f64());
            tracing::warn!(failures = self.failures, secs, "accepting again");
            *self = Self::default();
        }
    }
}

/// Refused connections are logged at most every 10 s, with how many there were.
#[derive(Debug, Default)]
struct RefusalLog {
    count: u64,
    last: Option<Instant>,
}

impl RefusalLog {
    fn note(&mut self, why: Refusal, cap: usize) {
        self.count += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(
                refused = self.count,
                reason = why.as_str(),
                cap,
                "connection cap reached; refusing connections"
            );
            self.count = 0;
            self.last = Some(Instant::now());
        }
    }
}

/// The layers every router of these servers is served with, innermost first: the request
/// timeout (`408` when no response head is ready in `request_timeout`; a streaming body then
/// runs on), one line of text for errors without a body, and a span per request. The span
/// names the method, the path and the peer, never the query or the body (enrollment codes and
/// registrations travel there); responses are logged at debug level with their latency,
/// server errors as warnings.
pub fn request_layers(app: axum::Router, request_timeout: Duration) -> axum::Router {
    use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<_>| {
            let span = tracing::info_span!(
                "request",
                method = %req.method(),
                path = req.uri().path(),
                peer = tracing::field::Empty,
            );
            if let Some(conn) = req.extensions().get::<ConnInfo>() {
                span.record("peer", tracing::field::display(conn.peer));
            }
            span
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
        .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN));
    app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        request_timeout,
    ))
    .layer(axum::middleware::map_response(plain_errors))
    .layer(trace)
}

/// Gives error responses without a body (404 and 405 from routing, 408 from the request
/// timeout) the one line of text every other error of these servers carries.
async fn plain_errors(response: axum::response::Response) -> axum::response::Response {
    use axum::body::HttpBody;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.body().size_hint().exact() != Some(0)
    {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let text = status.canonical_reason().unwrap_or("error").to_lowercase();
    axum::response::Response::from_parts(parts, axum::body::Body::from(format!("{text}\n")))
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

/// A TCP port free on 127.0.0.1 right now, for tools and tests that start a server process
/// on it. Chosen at random below the kernel's ephemeral range (Linux's
/// `ip_local_port_range`, 32768-60999 by default): a port from that range, once freed here,
/// can be taken as the source port of any outgoing connection before the server binds it
/// ("Address already in use" in a CI run, with other tests connecting meanwhile).
pub fn free_loopback_port() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, RandomState};
    const FIRST: u16 = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(FIRST).max(1);
    // RandomState's keys are random per process and change per instance.
    let random = RandomState::new();
    for attempt in 0u32..200 {
        let port = FIRST + (random.hash_one(attempt) % u64::from(span)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Why a server process did not come up (see [`wait_for_server`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum NotListening {
    /// The process ended first (a bad configuration, a port in use...).
    Exited(std::process::ExitStatus),
    /// Nothing accepted connections in time.
    TimedOut {
        /// Where it should listen.
        addr: SocketAddr,
        /// How long it was given.
        within: Duration,
    },
    /// The process could not be checked.
    Io(std::io::Error),
}

impl std::fmt::Display for NotListening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "the server exited before it listened ({status})"),
            Self::TimedOut { addr, within } => {
                write!(f, "nothing listened on {addr} within {within:?}")
            }
            Self::Io(e) => write!(f, "checking the server process: {e}"),
        }
    }
}

impl std::error::Error for NotListening {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Waits until `child`, a server just started, accepts TCP connections on `addr`: both
/// servers bind only once their database, keys and certificates are loaded, so a connection
/// means it serves. Fails at once when the process exits, instead of waiting out `within`.
/// Blocking (tools and tests call it before their load starts).
pub fn wait_for_server(
    child: &mut std::process::Child,
    addr: SocketAddr,
    within: Duration,
) -> Result<(), NotListening> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().map_err(NotListening::Io)? {
            return Err(NotListening::Exited(status));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotListening::TimedOut { addr, within });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A loopback address where nothing listens and nothing else can: the port stays bound
    /// (not listening) while the socket lives. A port that was only free a moment ago can be
    /// taken by a parallel test or by the kernel's choice of source port for our own connect,
    /// which then meets itself (TCP simultaneous open) and looks like a listening server.
    fn refusing_address() -> (tokio::net::TcpSocket, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        (socket, addr)
    }

    #[test]
    fn a_listening_server_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let found = wait_for_server(&mut child, addr, Duration::from_secs(5));
        let _ = child.kill();
        let _ = child.wait();
        found.expect("listening");
    }

    #[test]
    fn a_server_that_exits_is_reported_at_once() {
        let (_reserved, addr) = refusing_address();
        let mut child = Command::new("false").spawn().expect("false");
        let started = Instant::now();
        let result = wait_for_server(&mut child, addr, Duration::from_secs(30));
        assert!(matches!(result, Err(NotListening::Exited(s)) if !s.success()));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_silent_server_times_out() {
        let (_reserved, addr) = refusing_address();
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let result = wait_for_server(&mut child, addr, Duration::from_millis(300));
        let _ = child.kill();
        let _ = child.wait();
        assert!(matches!(result, Err(NotListening::TimedOut { .. })));
    }

    async fn answer(app: axum::Router, path: &str) -> (axum::http::StatusCode, String) {
        let response = app
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_slow_handler_gets_408_and_bodiless_errors_get_a_line() {
        let app = axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let app = request_layers(app, Duration::from_millis(100));
        assert_eq!(
            answer(app.clone(), "/slow?code=123456789012").await,
            (
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "request timeout\n".into()
            )
        );
        assert_eq!(
            answer(app, "/nowhere").await,
            (axum::http::StatusCode::NOT_FOUND, "not found\n".into())
        );
    }
}
