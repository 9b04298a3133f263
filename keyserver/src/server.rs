//! Start-up: open the database, load keys, bind the TLS listener (stb-service's accept loop)
//! and the plain-HTTP admin listener; graceful shutdown on request.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::service::{AppState, admin_router, router};
use crate::store::Store;
use anyhow::{Context, Result};
use stb_protocol::ServerSecret;
use stb_service::tls::{self, ClientAuth};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
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
    listeners: stb_service::serve::Listeners,
}

impl Running {
    /// Stops accepting, waits for requests in flight (at most 30 s), and returns.
    pub async fn shutdown(self) {
        self.listeners.shutdown().await;
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
    let chain = tls::load_certs(&config.tls_cert_path())
        .context("server certificate (run `keyserver init` first)")?;
    let key = tls::load_key(&config.tls_key_path())?;
    let operator_roots = match &config.operator_ca {
        Some(path) => Some(tls::load_certs(path).context("operator CA")?),
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
    let client_auth = operator_roots.map_or(ClientAuth::None, ClientAuth::Optional);
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(chain, key, client_auth)?));

    let (mut listeners, stop_rx) = stb_service::serve::Listeners::new();
    let listener = stb_service::serve::bind(config.listen)
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let app = router(state.clone()).layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        config.request_timeout(),
    ));
    let handshake_timeout = Duration::from_secs(config.limits.handshake_timeout_secs);
    let metrics_state = state.clone();
    listeners.spawn(stb_service::serve::accept_tls(
        listener,
        acceptor,
        app,
        handshake_timeout,
        stop_rx.clone(),
        Arc::new(move || metrics_state.metrics.tls_failure()),
    ));

    let mut admin_addr = None;
    if let Some(admin) = config.admin_listen {
        let listener =
            stb_service::serve::bind(admin).with_context(|| format!("binding admin {admin}"))?;
        admin_addr = Some(listener.local_addr()?);
        let app = admin_router(state.clone());
        let mut stop_rx = stop_rx.clone();
        listeners.spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
    }
    tracing::info!(%addr, ?admin_addr, backend = ?state.store.backend(), "keyserver listening");
    Ok(Running {
        addr,
        admin_addr,
        state,
        listeners,
    })
}
