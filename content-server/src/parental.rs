//! Parental control: `PUT /v1/parental` sets the subscriber's PIN and the age above which
//! programmes are locked; `POST /v1/parental/check` tells the box whether a PIN typed is
//! the PIN. The box learns the limit with the channel list and keeps nothing; the PIN is
//! stored as a keyed hash (`OperatorKeys::pin_tag`), and five wrong PINs in a row lock the
//! checks for 15 minutes, so a 4-digit PIN cannot be found by trying them all.

use crate::routes::{AppError, AppState, authenticate};
use crate::store::{Parental, PinAttempt};
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use stb_protocol::content_api::{ParentalSettings, PinCheck, pin_is_valid};
use stb_server_common::listener::ConnInfo;
use stb_server_common::now_ms;
use std::sync::Arc;

/// Wrong PINs in a row before the checks lock.
pub const MAX_PIN_FAILURES: u32 = 5;
/// How long they stay locked, ms.
pub const PIN_LOCK_MS: i64 = 15 * 60 * 1000;
/// The highest age limit (ratings go to 18; 21 in a few places).
const MAX_AGE: u8 = 21;

/// The routes (behind mutual TLS).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/parental", put(set))
        .route("/v1/parental/check", post(check))
        .layer(DefaultBodyLimit::max(1024))
        .with_state(state)
}

/// Why a PIN was not taken.
#[derive(Debug)]
enum Refusal {
    App(AppError),
    /// Not the PIN; this many tries before the lock.
    Wrong(u32),
    /// Locked until then (Unix ms).
    Locked(i64),
    NoPin,
}

impl From<AppError> for Refusal {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Self {
        Self::App(AppError::Internal(e))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::App(e) => e.into_response(),
            Self::Wrong(left) => (
                StatusCode::FORBIDDEN,
                format!("wrong PIN, {left} tries left before a 15-minute lock\n"),
            )
                .into_response(),
            Self::Locked(until_ms) => {
                let secs = ((until_ms - now_ms()).max(0) as u64).div_ceil(1000);
                (
                    StatusCode::LOCKED,
                    [(header::RETRY_AFTER, secs.to_string())],
                    format!(
                        "too many wrong PINs, try again in {} min\n",
                        secs.div_ceil(60)
                    ),
                )
                    .into_response()
            }
            Self::NoPin => (StatusCode::NOT_FOUND, "no parental PIN is set\n").into_response(),
        }
    }
}

/// Sets the PIN (the first time) or, with the PIN, changes the limit and the PIN.
async fn set(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    body: Result<Json<ParentalSettings>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, Refusal> {
    let sub = authenticate(&state, &conn).await?;
    let Json(wanted) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let new_pin = wanted.new_pin.as_deref().unwrap_or(&wanted.pin);
    well_formed(&[&wanted.pin, new_pin])?;
    if wanted.max_age.is_some_and(|a| a > MAX_AGE) {
        return Err(AppError::BadRequest(format!("max_age is at most {MAX_AGE}")).into());
    }
    if state.store.parental(&sub.name).await?.is_some() {
        verify(&state, &sub.name, &wanted.pin).await?;
    }
    let parental = Parental {
        pin_tag: state.keys.pin_tag(&sub.name, new_pin),
        max_age: wanted.max_age,
    };
    state
        .store
        .set_parental(&sub.name, &parental, now_ms())
        .await?;
    tracing::info!(subscriber = %sub.name, max_age = ?wanted.max_age, "parental control set");
    Ok(StatusCode::NO_CONTENT)
}

/// 204 when the PIN is right.
async fn check(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    body: Result<Json<PinCheck>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, Refusal> {
    let sub = authenticate(&state, &conn).await?;
    let Json(typed) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    well_formed(&[&typed.pin])?;
    verify(&state, &sub.name, &typed.pin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 400 unless every PIN given is four digits.
fn well_formed(pins: &[&str]) -> Result<(), Refusal> {
    if pins.iter().all(|pin| pin_is_valid(pin)) {
        return Ok(());
    }
    Err(AppError::BadRequest("a PIN is four digits".into()).into())
}

/// Counts the attempt, then compares; the attempt that completes a series of wrong PINs has
/// locked the checks already (the store does it in the same statement).
async fn verify(state: &AppState, subscriber: &str, pin: &str) -> Result<(), Refusal> {
    let attempt = state
        .store
        .pin_attempt(subscriber, now_ms(), MAX_PIN_FAILURES, PIN_LOCK_MS)
        .await?;
    let (parental, failures, locked_until_ms) = match attempt {
        PinAttempt::NoPin => return Err(Refusal::NoPin),
        PinAttempt::Locked(until) => return Err(Refusal::Locked(until)),
        PinAttempt::Counted {
            parental,
            failures,
            locked_until_ms,
        } => (parental, failures, locked_until_ms),
    };
    if state.keys.pin_matches(subscriber, pin, &parental.pin_tag) {
        state.store.pin_accepted(subscriber).await?;
        return Ok(());
    }
    if locked_until_ms > 0 {
        tracing::warn!(%subscriber, "parental PIN locked after {failures} wrong PINs");
        return Err(Refusal::Locked(locked_until_ms));
    }
    Err(Refusal::Wrong(MAX_PIN_FAILURES.saturating_sub(failures)))
}
