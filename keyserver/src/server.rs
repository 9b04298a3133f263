//! The network side: a TLS accept loop feeding hyper with the axum router, a plain-HTTP admin
//! listener, and graceful shutdown (stop accepting, let requests in flight finish).

use crate::audit::AuditLog;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::service::{AppState, ConnInfo, admin_router, router};
use crate::store::Store;
use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use stb_protocol::ServerSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Address of the TLS listener.
    pub addr: SocketAddr,
    /// Address of the admin listener, if any.
    pub admin_addr: Option<SocketAddr>,
    /// Shared state (store, metrics), for tests and the CLI.
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, waits for requests in flight (at most 30 s), and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Opens the database, loads the keys, binds the listeners and starts serving.
pub async fn start(config: &Config) -> Result<Running> {
    let store = Store::open(&config.database_url()).await?;
    let secret = store
        .secret("fake_record_secret", &stb_protocol::random_array())
        .await?;
    let audit_key = store
        .secret("audit_id_key", &stb_protocol::random_array())
        .await?;
    let chain = crate::tls::load_certs(&config.tls_cert_path())
        .context("server certificate (run `keyserver init` first)")?;
    let key = crate::tls::load_key(&config.tls_key_path())?;
    let operator_roots = match &config.operator_ca {
        Some(path) => Some(crate::tls::load_certs(path).context("operator CA")?),
        None => None,
    };
    let state = Arc::new(AppState {
        store,
        secret: ServerSecret::from_bytes(secret),
        audit: AuditLog::open(&config.audit_log_path(), audit_key)?,
        metrics: Metrics::default(),
        limits: config.limits.clone(),
        registration_enabled: operator_roots.is_some(),
    });
    let tls = crate::tls::server_config(chain, key, operator_roots)?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let (stop, stop_rx) = watch::channel(false);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let app = router(state.clone()).layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        config.request_timeout(),
    ));
    let handshake_timeout = Duration::from_secs(config.limits.handshake_timeout_secs);
    let mut tasks = vec![tokio::spawn(accept_tls(
        listener,
        acceptor,
        app,
        state.clone(),
        handshake_timeout,
        stop_rx.clone(),
    ))];

    let mut admin_addr = None;
    if let Some(admin) = config.admin_listen {
        let listener = TcpListener::bind(admin)
            .await
            .with_context(|| format!("binding admin {admin}"))?;
        admin_addr = Some(listener.local_addr()?);
        let app = admin_router(state.clone());
        let mut stop_rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "admin listener failed");
            }
        }));
    }
    tracing::info!(%addr, ?admin_addr, backend = ?state.store.backend(), "keyserver listening");
    Ok(Running {
        addr,
        admin_addr,
        state,
        stop,
        tasks,
    })
}

async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    state: Arc<AppState>,
    handshake_timeout: Duration,
    mut stop: watch::Receiver<bool>,
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
        let acceptor = acceptor.clone();
        let app = app.clone();
        let state = state.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    state.metrics.tls_failure();
                    return;
                }
                Err(_) => {
                    state.metrics.tls_failure();
                    return;
                }
            };
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|c| c.clone().into_owned());
            let info = ConnInfo { peer, client_cert };
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
