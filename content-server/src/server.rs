//! Start-up: load the catalogue, keys and CA, open the database, bind both TLS listeners.

use crate::ca::OperatorCa;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::keys::OperatorKeys;
use crate::routes::{AppState, content_router, enroll_router};
use crate::store::Store;
use anyhow::{Context, Result};
use stb_server_common::gate::Gate;
use stb_server_common::listener::TlsService;
use stb_server_common::tls::{self, ClientAuth};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Mutual-TLS listener.
    pub addr: SocketAddr,
    /// Enrollment listener.
    pub enroll_addr: SocketAddr,
    /// Shared state.
    pub state: Arc<AppState>,
    listeners: stb_server_common::listener::Listeners,
}

impl Running {
    /// Stops accepting and waits for requests in flight (live streams end at once).
    pub async fn shutdown(self) {
        self.listeners.shutdown().await;
    }
}

/// Loads everything and starts serving.
pub async fn start(config: &Config) -> Result<Running> {
    let catalogue = Catalogue::load(&config.channels)?;
    let keys = OperatorKeys::load(&config.master_key_path())?;
    let ca = OperatorCa::load(&config.ca_dir())?;
    let store = Store::open(&config.database_url()).await?;
    let (cert_path, key_path) = config.tls_paths();
    let chain =
        tls::load_certs(&cert_path).context("server certificate (run `content-server init`)")?;
    let key = tls::load_key(&key_path)?;
    let ca_roots = tls::load_certs(&config.ca_dir().join("ca.crt"))?;
    let mtls = tls::server_config(
        chain.clone(),
        key.clone_key(),
        ClientAuth::Required(ca_roots),
    )?;
    let server_only = tls::server_config(chain, key, ClientAuth::None)?;
    let (mut listeners, stop_rx) = stb_server_common::listener::Listeners::new();
    let state = Arc::new(AppState::new(
        config.clone(),
        store,
        keys,
        ca,
        catalogue,
        stop_rx.clone(),
    ));

    let content = stb_server_common::listener::bind(config.listen)
        .with_context(|| format!("binding {}", config.listen))?;
    let enroll = stb_server_common::listener::bind(config.enroll_listen)
        .with_context(|| format!("binding {}", config.enroll_listen))?;
    let (addr, enroll_addr) = (content.local_addr()?, enroll.local_addr()?);
    // Each listener has its own caps: a flood of the open enrollment port must not take
    // the places of boxes on the mutual-TLS port.
    let limits = config.connections;
    // Both listeners, enrollment and licenses included, answer 408 past the timeout.
    let request_timeout = Duration::from_secs(config.request_timeout_secs.max(1));
    let service = |config: rustls::ServerConfig, app: axum::Router| TlsService {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        app: stb_server_common::listener::request_layers(app, request_timeout),
        limits,
        gate: Gate::within_open_files(&limits, 2),
        observer: Arc::new(()),
    };
    listeners.spawn(stb_server_common::listener::accept_tls(
        content,
        service(mtls, content_router(state.clone())),
        stop_rx.clone(),
    ));
    listeners.spawn(stb_server_common::listener::accept_tls(
        enroll,
        service(server_only, enroll_router(state.clone())),
        stop_rx.clone(),
    ));
    listeners.spawn(prune_attempt_windows(state.clone(), stop_rx));
    tracing::info!(%addr, %enroll_addr, channels = state.catalogue.channels.len(), "content server listening");
    Ok(Running {
        addr,
        enroll_addr,
        state,
        listeners,
    })
}

/// Deletes enrollment budgets whose window has ended, every ten minutes: each guessed code
/// leaves one, so they would otherwise pile up.
async fn prune_attempt_windows(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let before = stb_server_common::now_ms() - state.config.enroll_window_secs * 1000;
        match state.store.db().prune_attempts(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned ended enrollment budgets"),
            Err(e) => tracing::warn!(error = %e, "pruning enrollment budgets failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
