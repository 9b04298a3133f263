//! HTTP handlers. Bodies are the binary messages of `docs/protocol.md`
//! (`application/octet-stream`); errors are a status and a short plain-text reason.

use crate::audit::AuditLog;
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::store::{PendingRow, Store, Upsert};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use stb_protocol::eke::{self, PendingConfirmation};
use stb_protocol::{
    Confirm, Identifier, RecoverRequest, RegisterRequest, SecretArray, ServerSecret,
};
use stb_service::serve::ConnInfo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    /// Database.
    pub store: Store,
    /// Secret for fake records.
    pub secret: ServerSecret,
    /// Audit log.
    pub audit: AuditLog,
    /// Metrics.
    pub metrics: Metrics,
    /// Guess limits.
    pub limits: Limits,
    /// Whether an operator CA is configured (registration possible).
    pub registration_enabled: bool,
}

/// Every way a request can fail, and what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or unacceptable message.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Registration without a client certificate.
    #[error("a client certificate from the operator is required")]
    NoCertificate,
    /// The identifier belongs to another subscriber.
    #[error("this identifier belongs to another subscriber")]
    OtherSubject,
    /// Inside the spacing window.
    #[error("too many attempts, retry in {0} s")]
    TooSoon(u64),
    /// Locked by the guess limit.
    #[error("this identifier is locked, call the operator")]
    Locked,
    /// Confirmation that does not match a pending exchange.
    #[error("confirmation refused")]
    BadConfirmation,
    /// Registration switched off.
    #[error("registration is not configured on this server")]
    RegistrationDisabled,
    /// Anything internal: logged in full, reported as a bare 500/503.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NoCertificate => StatusCode::UNAUTHORIZED,
            AppError::OtherSubject => StatusCode::FORBIDDEN,
            AppError::TooSoon(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Locked => StatusCode::LOCKED,
            AppError::BadConfirmation => StatusCode::BAD_REQUEST,
            AppError::RegistrationDisabled => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Label for metrics and the audit log.
    pub fn outcome(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::NoCertificate => "no_certificate",
            AppError::OtherSubject => "other_subject",
            AppError::TooSoon(_) => "too_soon",
            AppError::Locked => "locked",
            AppError::BadConfirmation => "rejected",
            AppError::RegistrationDisabled => "disabled",
            AppError::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let mut response = (self.status(), format!("{self}\n")).into_response();
        if let AppError::TooSoon(secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn bad(e: impl std::fmt::Display) -> AppError {
    AppError::BadRequest(e.to_string())
}

fn binary(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response()
}

/// The public router (served over TLS).
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/register", post(register))
        .route("/v1/recover", post(recover))
        .route("/v1/confirm", post(confirm))
        .route("/healthz", get(health))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The admin router (metrics, health), plain HTTP on a private address.
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Result<&'static str, AppError> {
    state.store.ping().await?;
    Ok("ok\n")
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Runs a handler body, then counts and audits its outcome.
async fn observed<F>(
    state: &AppState,
    endpoint: &'static str,
    id: Option<&Identifier>,
    peer: SocketAddr,
    f: F,
) -> Result<(Response, &'static str), AppError>
where
    F: Future<Output = Result<(Response, &'static str), AppError>>,
{
    let start = Instant::now();
    let result = f.await;
    let outcome = match &result {
        Ok((_, outcome)) => *outcome,
        Err(e) => e.outcome(),
    };
    state
        .metrics
        .request(endpoint, outcome, start.elapsed().as_secs_f64());
    if let Some(id) = id {
        state.audit.record(endpoint, id, Some(peer.ip()), outcome);
    }
    result
}

async fn register(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Result<Response, AppError> {
    let request = RegisterRequest::decode(&body).map_err(bad);
    let id = request.as_ref().ok().map(|r| r.identifier.clone());
    let work = async {
        if !state.registration_enabled {
            return Err(AppError::RegistrationDisabled);
        }
        let peer = conn.client.as_ref().ok_or(AppError::NoCertificate)?;
        let request = request?;
        let outcome = state
            .store
            .upsert_account(
                &request.identifier,
                &request.record,
                &peer.subject_der,
                &peer.subject,
                now_ms(),
            )
            .await?;
        match outcome {
            Upsert::Created => Ok((StatusCode::CREATED.into_response(), "created")),
            Upsert::Replaced => Ok((StatusCode::OK.into_response(), "replaced")),
            Upsert::OtherSubject => Err(AppError::OtherSubject),
        }
    };
    observed(&state, "register", id.as_ref(), conn.peer, work)
        .await
        .map(|(r, _)| r)
}

/// Refuses an attempt inside the spacing window or on a locked identifier.
fn check_limits(
    state: &crate::store::GuessState,
    limits: &Limits,
    now: i64,
) -> Result<(), AppError> {
    if state.locked {
        return Err(AppError::Locked);
    }
    let spacing_ms = (limits.min_spacing_secs * 1000) as i64;
    let wait_ms = state.last_attempt_ms + spacing_ms - now;
    if wait_ms > 0 {
        return Err(AppError::TooSoon((wait_ms as u64).div_ceil(1000)));
    }
    Ok(())
}

async fn recover(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Result<Response, AppError> {
    let request = RecoverRequest::decode(&body).map_err(bad);
    let id = request.as_ref().ok().map(|r| r.identifier.clone());
    let work = async {
        let request = request?;
        let limits = &state.limits;
        let now = now_ms();
        // Cheap read first: a refused attempt costs no EKE work.
        if let Some(guess) = state.store.guess_state(&request.identifier).await? {
            check_limits(&guess, limits, now)?;
        }
        let record = state.store.record(&request.identifier).await?;
        let (response, pending) = eke::answer(
            &request,
            record.as_ref(),
            &state.secret,
            &mut stb_protocol::os_rng(),
        )
        .map_err(bad)?;
        let row = PendingRow {
            suite: request.suite.id(),
            session_id: pending.session_id,
            tag: *pending.expected_tag.expose(),
            expires_ms: now + (limits.confirm_ttl_secs * 1000) as i64,
        };
        // Counted and committed before the response leaves; the statement re-checks the
        // limits in case another instance counted an attempt since the read above.
        let spacing_ms = (limits.min_spacing_secs * 1000) as i64;
        let counted = state
            .store
            .record_attempt(
                &request.identifier,
                now,
                spacing_ms,
                limits.max_failures,
                &row,
            )
            .await?;
        let Some(guess) = counted else {
            let current = state
                .store
                .guess_state(&request.identifier)
                .await?
                .unwrap_or_default();
            check_limits(&current, limits, now)?;
            return Err(AppError::TooSoon(1));
        };
        if guess.locked {
            state.metrics.lock();
            state
                .audit
                .record("lock", &request.identifier, Some(conn.peer.ip()), "locked");
        }
        Ok((binary(StatusCode::OK, response.encode()), "answered"))
    };
    observed(&state, "recover", id.as_ref(), conn.peer, work)
        .await
        .map(|(r, _)| r)
}

async fn confirm(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    body: Bytes,
) -> Result<Response, AppError> {
    let message = Confirm::decode(&body).map_err(bad);
    let id = message.as_ref().ok().map(|m| m.identifier.clone());
    let work = async {
        let message = message?;
        let row = state
            .store
            .pending(&message.identifier)
            .await?
            .ok_or(AppError::BadConfirmation)?;
        if row.expires_ms < now_ms() {
            return Err(AppError::BadConfirmation);
        }
        let pending = PendingConfirmation {
            suite: stb_protocol::Suite::from_id(row.suite)
                .map_err(|_| AppError::BadConfirmation)?,
            identifier: message.identifier.clone(),
            session_id: row.session_id,
            expected_tag: SecretArray::new(row.tag),
        };
        if !pending.verify(&message) {
            return Err(AppError::BadConfirmation);
        }
        if !state
            .store
            .confirm(&message.identifier, &row.session_id)
            .await?
        {
            return Err(AppError::BadConfirmation);
        }
        Ok((StatusCode::NO_CONTENT.into_response(), "confirmed"))
    };
    observed(&state, "confirm", id.as_ref(), conn.peer, work)
        .await
        .map(|(r, _)| r)
}
