//! Start-up: load the catalogue, keys and CA, open the database, bind both TLS listeners.

use crate::ca::OperatorCa;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::guide::{GuideFeed, Refresh, test_listing};
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
    inputs: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and waits for requests in flight (live streams end at once).
    pub async fn shutdown(self) {
        self.listeners.shutdown().await;
        // The live inputs' threads see the same stop and end within a tenth of a second.
        let inputs = self.inputs;
        let _ =
            tokio::task::spawn_blocking(move || inputs.into_iter().for_each(|t| drop(t.join())))
                .await;
    }
}

/// Loads everything and starts serving.
pub async fn start(config: &Config) -> Result<Running> {
    let catalogue = Catalogue::load(&config.channels)?;
    let guide = GuideFeed::new(&config.guide_path(), catalogue.xmltv_ids()?);
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
        guide,
        stop_rx.clone(),
    ));
    state
        .locker
        .prepare()
        .with_context(|| format!("creating the locker in {}", config.locker_dir().display()))?;
    // The guide is in force before the first box asks; a bad file only means an empty guide.
    refresh_guide(&state, true).await;

    let content = stb_server_common::listener::bind(config.listen)
        .with_context(|| format!("binding {}", config.listen))?;
    let enroll = stb_server_common::listener::bind(config.enroll_listen)
        .with_context(|| format!("binding {}", config.enroll_listen))?;
    let (addr, enroll_addr) = (content.local_addr()?, enroll.local_addr()?);
    // Once the ports are ours (no thread to stop if they are not); the slates are on air
    // before the first box is answered.
    let inputs = crate::live::start(&state).await?;
    // Each listener has its own caps: a flood of the open enrollment port must not take
    // the places of boxes on the mutual-TLS port.
    let limits = config.connections;
    // Both listeners, enrollment and licenses included, answer 408 past the timeout.
    let request_timeout = Duration::from_secs(config.request_timeout_secs.max(1));
    let layers = stb_server_common::listener::request_layers;
    let service = |config: rustls::ServerConfig, app: axum::Router| TlsService {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        app,
        limits,
        gate: Gate::within_open_files(&limits, 2),
        observer: Arc::new(()),
    };
    listeners.spawn(stb_server_common::listener::accept_tls(
        content,
        // The locker's uploads carry up to 16 MiB each: their own, longer, timeout.
        service(
            mtls,
            layers(content_router(state.clone()), request_timeout).merge(layers(
                crate::locker::router(state.clone()),
                Duration::from_secs(config.locker_request_timeout_secs.max(1)),
            )),
        ),
        stop_rx.clone(),
    ));
    listeners.spawn(stb_server_common::listener::accept_tls(
        enroll,
        service(
            server_only,
            layers(enroll_router(state.clone()), request_timeout),
        ),
        stop_rx.clone(),
    ));
    listeners.spawn(follow_guide(state.clone(), stop_rx.clone()));
    listeners.spawn(prune_attempt_windows(state.clone(), stop_rx.clone()));
    listeners.spawn(sweep_locker(state.clone(), stop_rx));
    tracing::info!(%addr, %enroll_addr, channels = state.catalogue.channels.len(), "content server listening");
    Ok(Running {
        addr,
        enroll_addr,
        state,
        listeners,
        inputs,
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

/// Sweeps the locker at start and every hour: uploads idle for `locker_upload_idle_secs`, and
/// files without rows (left by a crash or a kill between a file and its row).
async fn sweep_locker(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match crate::locker::sweep(&state, stb_server_common::now_ms()).await {
            Ok(swept) if swept == crate::locker::Swept::default() => {}
            Ok(swept) => tracing::info!(?swept, "locker swept"),
            Err(e) => tracing::warn!(error = %e, "sweeping the locker failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How often the test guide is written again, so it always reaches `test_guide_days` ahead.
const TEST_GUIDE_REWRITE: Duration = Duration::from_secs(6 * 3600);

/// Writes the test guide (when configured and `rewrite`), then takes the guide file if it
/// changed. Problems are logged: boxes keep the guide in force.
pub async fn refresh_guide(state: &Arc<AppState>, rewrite: bool) {
    let state = state.clone();
    let work = tokio::task::spawn_blocking(move || {
        let config = &state.config;
        let channels = state.catalogue.test_channels();
        if rewrite && config.test_guide_days > 0 && !channels.is_empty() {
            let path = config.guide_path();
            let days = config.test_guide_days;
            match test_listing::write(&path, &channels, stb_server_common::now_ms(), days) {
                Ok(()) => tracing::info!(path = %path.display(), days, "test guide written"),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot write the test guide")
                }
            }
        }
        let started = std::time::Instant::now();
        match state.guide.refresh() {
            Ok(Refresh::Unchanged) => {}
            Ok(Refresh::Loaded {
                channels,
                programmes,
            }) => tracing::info!(
                channels,
                programmes,
                ms = started.elapsed().as_millis() as u64,
                version = state.guide.guide().version(),
                "guide loaded"
            ),
            Err(e) => tracing::error!(error = %e, "guide not loaded"),
        }
    });
    if let Err(e) = work.await {
        tracing::error!(error = %e, "guide refresh failed");
    }
}

/// Looks at the guide file every `guide_refresh_secs` and rewrites the test guide every 6 h.
async fn follow_guide(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = Duration::from_secs(state.config.guide_refresh_secs.max(1));
    let mut written = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let rewrite = written.elapsed() >= TEST_GUIDE_REWRITE;
        if rewrite {
            written = tokio::time::Instant::now();
        }
        refresh_guide(&state, rewrite).await;
    }
}
