//! HTTP handlers. Bodies are the binary messages of `docs/protocol.md`
//! (`application/octet-stream`); errors are a status and a short plain-text reason.

use crate::audit::AuditLog;
use crate::config::Limits;
use crate::elements::ElementCache;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::revocation::{Revocation, Standing};
use crate::store::{AttemptRules, PendingRow, Store, Upsert, tag_digest};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};
use stb_protocol::eke;
use stb_protocol::{Confirm, Identifier, RecoverRequest, RegisterRequest, ServerSecret};
use stb_server_common::listener::ConnInfo;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The protocol's media type: every request body must say it (docs/protocol.md).
pub const MEDIA_TYPE: &str = "application/octet-stream";

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
    pub metrics: Arc<Metrics>,
    /// Guess limits.
    pub limits: Limits,
    /// Whether an operator CA is configured (registration possible).
    pub registration_enabled: bool,
    /// The operator's revocation list, when configured.
    pub revocation: Option<Arc<Revocation>>,
    /// Recoveries per source.
    pub recover_rate: SourceRate,
    /// PwA and PwB of recently answered records.
    pub elements: ElementCache,
}

/// A per-source request rate (in memory, per instance): sources are IPv4 addresses or IPv6
/// /64s, as for connection caps.
#[derive(Debug)]
pub struct SourceRate(DefaultKeyedRateLimiter<IpAddr>);

impl SourceRate {
    /// `per_second` sustained, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self(DefaultKeyedRateLimiter::keyed(quota))
    }

    /// Takes one request from `peer`'s budget, or says in how many seconds there is one.
    pub fn check(&self, peer: IpAddr) -> Result<(), u64> {
        self.0
            .check_key(&stb_server_common::gate::source_key(peer))
            .map_err(|wait| {
                wait.wait_time_from(DefaultClock::default().now())
                    .as_secs()
                    .max(1)
            })
    }

    /// Forgets sources whose budget is full again (bounded memory).
    pub fn forget_idle(&self) {
        self.0.retain_recent();
    }
}

/// Every way a request can fail, and what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The body is not of the protocol's media type.
    #[error("request bodies must be application/octet-stream")]
    UnsupportedMediaType,
    /// The body is over the size limit.
    #[error("request body too large")]
    TooLarge,
    /// Malformed or unacceptable message.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Registration without a client certificate.
    #[error("a client certificate from the operator is required")]
    NoCertificate,
    /// The certificate's subscriber is revoked.
    #[error("this subscription is revoked")]
    Revoked,
    /// The certificate's subscriber is suspended.
    #[error("this subscription is suspended, contact the operator")]
    Suspended,
    /// The standing of the certificate cannot be checked now.
    #[error("registration is unavailable: {0}")]
    StandingUnknown(&'static str),
    /// The identifier is not available (held by another subscriber). Said the same way
    /// whoever holds it; the per-subscriber budget bounds how often it can be asked.
    #[error("this identifier is not available, choose another")]
    NotAvailable,
    /// The subscriber holds as many identifiers as it may.
    #[error("this subscription holds {0} identifiers already")]
    TooManyIdentifiers(u32),
    /// The subscriber tried too many identifiers that are not available.
    #[error("too many unavailable identifiers tried, retry later or contact the operator")]
    ProbingLimited,
    /// Too many requests from one source.
    #[error("too many requests, retry in {0} s")]
    RateLimited(u64),
    /// Inside the spacing window.
    #[error("too many attempts, retry in {0} s")]
    TooSoon(u64),
    /// Locked by the guess limit.
    #[error("this identifier is locked, call the operator")]
    Locked,
    /// Confirmation that does not match a pending exchange.
    #[error("confirmation refused")]
    BadConfirmation,
    /// A conditional registration named a record that is no longer the stored one.
    #[error("the record was replaced meanwhile")]
    RecordChanged,
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
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::BadRequest(_) | AppError::BadConfirmation => StatusCode::BAD_REQUEST,
            AppError::NoCertificate => StatusCode::UNAUTHORIZED,
            AppError::Revoked
            | AppError::Suspended
            | AppError::NotAvailable
            | AppError::TooManyIdentifiers(_) => StatusCode::FORBIDDEN,
            AppError::RecordChanged => StatusCode::PRECONDITION_FAILED,
            AppError::ProbingLimited | AppError::RateLimited(_) | AppError::TooSoon(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::Locked => StatusCode::LOCKED,
            AppError::StandingUnknown(_)
            | AppError::RegistrationDisabled
            | AppError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Label for metrics and the audit log.
    pub fn outcome(&self) -> &'static str {
        match self {
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::TooLarge => "too_large",
            AppError::BadRequest(_) => "bad_request",
            AppError::NoCertificate => "no_certificate",
            AppError::Revoked => "revoked",
            AppError::Suspended => "suspended",
            AppError::StandingUnknown(_) => "standing_unknown",
            AppError::NotAvailable => "other_subject",
            AppError::TooManyIdentifiers(_) => "too_many_identifiers",
            AppError::ProbingLimited => "probing_limited",
            AppError::RateLimited(_) => "rate_limited",
            AppError::TooSoon(_) => "too_soon",
            AppError::Locked => "locked",
            AppError::BadConfirmation => "rejected",
            AppError::RecordChanged => "record_changed",
            AppError::RegistrationDisabled => "disabled",
            AppError::Internal(_) => "internal_error",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooSoon(secs) | AppError::RateLimited(secs) => Some(*secs),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let mut response = (self.status(), format!("{self}\n")).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The request body, if it says the protocol's media type and fits the size limit.
fn protocol_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, AppError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case(MEDIA_TYPE)) {
        return Err(AppError::UnsupportedMediaType);
    }
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge,
        _ => AppError::BadRequest(e.body_text()),
    })
}

fn bad(e: impl std::fmt::Display) -> AppError {
    AppError::BadRequest(e.to_string())
}

fn binary(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, MEDIA_TYPE)], body).into_response()
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

/// Who a request is about, for the audit log.
#[derive(Debug, Default)]
struct Subject<'a> {
    id: Option<Identifier>,
    certificate: Option<&'a [u8]>,
}

/// Runs a handler body, then counts and audits its outcome.
async fn observed<F>(
    state: &AppState,
    endpoint: &'static str,
    who: Subject<'_>,
    peer: SocketAddr,
    f: F,
) -> Result<Response, AppError>
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
    if let Some(id) = &who.id {
        state
            .audit
            .record(endpoint, id, Some(peer.ip()), who.certificate, outcome);
    }
    result.map(|(response, _)| response)
}

/// Audit scope of the per-subscriber budget of "not available" answers.
const PROBE_SCOPE: &str = "register_taken";

async fn register(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let peer_cert = conn.client.clone();
    let request =
        protocol_body(&headers, body).and_then(|body| RegisterRequest::decode(&body).map_err(bad));
    let who = Subject {
        id: request.as_ref().ok().map(|r| r.identifier.clone()),
        certificate: peer_cert.as_ref().map(|c| c.subject_der.as_slice()),
    };
    let work = async {
        if !state.registration_enabled {
            return Err(AppError::RegistrationDisabled);
        }
        let cert = peer_cert.as_ref().ok_or(AppError::NoCertificate)?;
        let request = request?;
        let replaces = if_match(&headers)?;
        let now = now_ms();
        if let Some(revocation) = &state.revocation {
            match revocation.standing(&cert.serial_hex, now) {
                Standing::Good => {}
                Standing::Suspended => return Err(AppError::Suspended),
                Standing::Revoked => return Err(AppError::Revoked),
                Standing::Unknown(why) => return Err(AppError::StandingUnknown(why)),
            }
        }
        // The budget is taken before the identifier is looked at, and given back unless
        // the answer is "not available": once it is spent every registration of this
        // subscriber is refused alike, so the refusal itself says nothing of the identifier.
        let limits = &state.limits;
        let subject_key = hex::encode(Sha256::digest(&cert.subject_der));
        if !state
            .store
            .db()
            .reserve_attempt(
                PROBE_SCOPE,
                &subject_key,
                now,
                (limits.probe_window_secs * 1000) as i64,
                i64::from(limits.max_taken_per_subscriber),
            )
            .await?
        {
            return Err(AppError::ProbingLimited);
        }
        let outcome = match replaces {
            Some(replaces) => {
                state
                    .store
                    .replace_account(
                        &request.identifier,
                        &request.record,
                        &cert.subject_der,
                        &cert.subject,
                        now,
                        &replaces,
                    )
                    .await
            }
            None => {
                state
                    .store
                    .upsert_account(
                        &request.identifier,
                        &request.record,
                        &cert.subject_der,
                        &cert.subject,
                        now,
                        limits.max_identifiers_per_subscriber,
                    )
                    .await
            }
        };
        if !matches!(outcome, Ok(Upsert::OtherSubject))
            && let Err(e) = state
                .store
                .db()
                .refund_attempt(PROBE_SCOPE, &subject_key)
                .await
        {
            // The registration itself is done (or failed on its own): the budget is only a
            // little stricter for a while.
            tracing::warn!(error = %e, "could not give back a registration attempt");
        }
        match outcome? {
            Upsert::Created => Ok((StatusCode::CREATED.into_response(), "created")),
            Upsert::Replaced => Ok((StatusCode::OK.into_response(), "replaced")),
            Upsert::OtherSubject => Err(AppError::NotAvailable),
            Upsert::TooMany => Err(AppError::TooManyIdentifiers(
                limits.max_identifiers_per_subscriber,
            )),
            Upsert::Changed => Err(AppError::RecordChanged),
        }
    };
    observed(&state, "register", who, conn.peer, work).await
}

/// `If-Match: "<hex SHA-256 of SEALED>"` on a registration: replace only that record.
fn if_match(headers: &HeaderMap) -> Result<Option<[u8; 32]>, AppError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let malformed = || AppError::BadRequest("If-Match must be a quoted SHA-256 in hex".into());
    let text = value.to_str().map_err(|_| malformed())?;
    let hex_digest = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(malformed)?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| malformed())?;
    Ok(Some(digest))
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

fn attempt_rules(limits: &Limits) -> AttemptRules {
    AttemptRules {
        spacing_ms: (limits.min_spacing_secs * 1000) as i64,
        max_failures: limits.max_failures,
        long_window_ms: (limits.long_window_secs * 1000) as i64,
        max_failures_long: limits.max_failures_long,
    }
}

async fn recover(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let request =
        protocol_body(&headers, body).and_then(|body| RecoverRequest::decode(&body).map_err(bad));
    let who = Subject {
        id: request.as_ref().ok().map(|r| r.identifier.clone()),
        certificate: None,
    };
    let work = async {
        let request = request?;
        // Before any database work: each new identifier costs a counter row.
        state
            .recover_rate
            .check(conn.peer.ip())
            .map_err(AppError::RateLimited)?;
        let limits = &state.limits;
        let now = now_ms();
        // Limits first: a refused attempt costs no EKE work.
        let view = state.store.recovery_view(&request.identifier).await?;
        if let Some(guess) = &view.guess {
            check_limits(guess, limits, now)?;
        }
        let (response, pending) = eke::answer_using(
            &request,
            view.record.as_ref(),
            &state.secret,
            |verifier| state.elements.get(&view.row_key, verifier),
            &mut stb_protocol::os_rng(),
        )
        .map_err(bad)?;
        let row = PendingRow {
            suite: request.suite.id(),
            session_id: pending.session_id,
            tag_digest: tag_digest(pending.expected_tag.expose()),
            expires_ms: now + (limits.confirm_ttl_secs * 1000) as i64,
        };
        // Counted and committed before the response leaves; the statement re-checks the
        // limits in case another instance counted an attempt since the read above.
        let counted = state
            .store
            .record_attempt(&request.identifier, now, attempt_rules(limits), &row)
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
            state.audit.record(
                "lock",
                &request.identifier,
                Some(conn.peer.ip()),
                None,
                "locked",
            );
        }
        Ok((binary(StatusCode::OK, response.encode()), "answered"))
    };
    observed(&state, "recover", who, conn.peer, work).await
}

async fn confirm(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let message =
        protocol_body(&headers, body).and_then(|body| Confirm::decode(&body).map_err(bad));
    let who = Subject {
        id: message.as_ref().ok().map(|m| m.identifier.clone()),
        certificate: None,
    };
    let work = async {
        let message = message?;
        let confirmed = state
            .store
            .confirm(
                &message.identifier,
                message.suite.id(),
                &message.session_id,
                &message.tag,
                now_ms(),
            )
            .await?;
        if !confirmed {
            return Err(AppError::BadConfirmation);
        }
        Ok((StatusCode::NO_CONTENT.into_response(), "confirmed"))
    };
    observed(&state, "confirm", who, conn.peer, work).await
}
