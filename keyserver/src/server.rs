//! Start-up: open the database, load keys, bind the TLS listener (stb-server-common's accept loop)
//! and the plain-HTTP admin listener; graceful shutdown on request.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::elements::ElementCache;
use crate::metrics::Metrics;
use crate::revocation::Revocation;
use crate::routes::{AppState, SourceRate, admin_router, router};
use anyhow::{Context, Result};
use stb_protocol::ServerSecret;
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
    /// Address of the TLS listener.
    pub addr: SocketAddr,
    /// Address of the admin listener, if any.
    pub admin_addr: Option<SocketAddr>,
    /// Shared state (store, metrics), for tests and the CLI.
    pub state: Arc<AppState>,
    listeners: stb_server_common::listener::Listeners,
}

impl Running {
    /// Stops accepting, waits for requests in flight (at most 30 s), and returns.
    pub async fn shutdown(self) {
        self.listeners.shutdown().await;
    }
}

/// Opens the database, loads the keys, binds the listeners and starts serving.
pub async fn start(config: &Config) -> Result<Running> {
    let store = crate::admin::open_store(config).await?;
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
    let revocation = match (&config.operator_crl, &operator_roots) {
        (Some(source), Some(roots)) => Some(Arc::new(Revocation::new(source, roots)?)),
        (Some(_), None) => anyhow::bail!("operator_crl needs operator_ca"),
        (None, Some(_)) => {
            tracing::warn!(
                "operator_ca without operator_crl: registrations of revoked or suspended \
                 subscribers are not refused"
            );
            None
        }
        (None, None) => None,
    };
    if let Some(revocation) = &revocation
        && let Err(e) = revocation.refresh(crate::now_ms()).await
    {
        // Not fatal: recoveries do not need it, and the list is fetched again every second
        // until it comes; registrations wait for it (503).
        tracing::warn!(error = %format!("{e:#}"), "operator CRL not available at start");
    }
    let limits = &config.limits;
    let state = Arc::new(AppState {
        store,
        secret: ServerSecret::from_bytes(secret),
        audit: AuditLog::open(&config.audit_log_path(), audit_key)?,
        metrics: Arc::new(Metrics::default()),
        limits: limits.clone(),
        registration_enabled: operator_roots.is_some(),
        revocation: revocation.clone(),
        recover_rate: SourceRate::new(
            limits.recover_rate_per_source,
            limits.recover_burst_per_source,
        ),
        elements: ElementCache::new(crate::elements::DEFAULT_CAPACITY),
    });
    let client_auth = operator_roots.map_or(ClientAuth::None, ClientAuth::Optional);
    let mut tls_config = tls::server_config(chain, key, client_auth)?;
    // A box that logs in again resumes its TLS session from a ticket instead of a full
    // handshake: it skips verifying the certificate chain (the server saves little: its
    // signature is cheap next to the EKE, BENCHMARKS.md). Stateless tickets work for any
    // number of boxes, where rustls' default session cache holds 256; their keys live in
    // memory only and rustls rotates them (a ticket lasts at most 12 hours).
    tls_config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    // One ticket per connection (rustls sends two): a box needs one for its next login, and
    // the resumed connection hands it the next. Each ticket is an encryption and a write.
    tls_config.send_tls13_tickets = 1;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config));

    let (mut listeners, stop_rx) = stb_server_common::listener::Listeners::new();
    let listener = stb_server_common::listener::bind(config.listen)
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let app = stb_server_common::listener::request_layers(
        router(state.clone()),
        config.request_timeout(),
    );
    let gate = Gate::within_open_files(&config.connections, 1);
    state.metrics.connections_max(gate.max());
    let service = TlsService {
        acceptor,
        app,
        limits: config.connections,
        gate,
        observer: state.metrics.clone(),
    };
    listeners.spawn(stb_server_common::listener::accept_tls(
        listener,
        service,
        stop_rx.clone(),
    ));
    listeners.spawn(housekeeping(
        state.clone(),
        revocation,
        Duration::from_secs(limits.crl_refresh_secs.max(1)),
        stop_rx.clone(),
    ));

    let mut admin_addr = None;
    if let Some(admin) = config.admin_listen {
        let listener = stb_server_common::listener::bind(admin)
            .with_context(|| format!("binding admin {admin}"))?;
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

/// Background work of one instance: fetching the operator CRL (every `crl_every`, every
/// second while none is in force), pruning idle counter rows and the per-source rate table.
async fn housekeeping(
    state: Arc<AppState>,
    revocation: Option<Arc<Revocation>>,
    crl_every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let limits = state.limits.clone();
    let prune_every = Duration::from_secs(limits.prune_interval_secs.max(1));
    let mut next_prune = tokio::time::Instant::now();
    // `start` fetched the first list; if that failed, keep trying every second.
    let mut crl_failing = revocation.as_ref().is_some_and(|r| !r.is_loaded());
    let mut next_crl = tokio::time::Instant::now();
    if !crl_failing {
        next_crl += crl_every;
    }
    loop {
        let now = tokio::time::Instant::now();
        if let Some(revocation) = &revocation
            && now >= next_crl
        {
            match revocation.refresh(crate::now_ms()).await {
                Ok(()) => {
                    if crl_failing {
                        tracing::info!("operator CRL fetched again");
                    }
                    crl_failing = false;
                    next_crl = now + crl_every;
                }
                Err(e) => {
                    if !crl_failing {
                        tracing::warn!(error = %format!("{e:#}"), "operator CRL refresh failed");
                    }
                    crl_failing = true;
                    next_crl = now + crl_every.min(Duration::from_secs(1));
                }
            }
        }
        if now >= next_prune {
            let now_ms = crate::now_ms();
            let idle_since = now_ms - (limits.long_window_secs * 1000) as i64;
            let windows_before = now_ms - (limits.probe_window_secs * 1000) as i64;
            match state.store.prune(now_ms, idle_since, windows_before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned idle guess counters"),
                Err(e) => tracing::warn!(error = %e, "pruning guess counters failed"),
            }
            state.recover_rate.forget_idle();
            next_prune = now + prune_every;
        }
        let wake = if revocation.is_some() {
            next_crl.min(next_prune)
        } else {
            next_prune
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
