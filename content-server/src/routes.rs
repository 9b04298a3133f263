//! HTTP handlers. Enrollment listens with server-authenticated TLS; everything else requires a
//! client certificate issued by the operator CA, checked against the database on every request
//! (so a revocation or suspension takes effect at once, without a restart).

use crate::ca::OperatorCa;
use crate::catalogue::{Catalogue, Source};
use crate::codes;
use crate::config::Config;
use crate::guide::GuideFeed;
use crate::keys::OperatorKeys;
use crate::packager::{self, Packager};
use crate::store::{CodeRefusal, Status, Store, Subscriber};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use stb_protocol::content_api::{
    ChannelGuide, ChannelInfo, ChannelList, EnrollRequest, EnrollResponse, Favourites, Guide,
    LiveEdge, NowNext, OnAir,
};
use stb_protocol::{License, LicenseKey};
use stb_server_common::listener::ConnInfo;
use stb_server_common::now_ms;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Shared state.
#[derive(Debug)]
pub struct AppState {
    /// Configuration.
    pub config: Config,
    /// Database.
    pub store: Store,
    /// Operator keys.
    pub keys: OperatorKeys,
    /// Operator CA.
    pub ca: OperatorCa,
    /// Channels.
    pub catalogue: Catalogue,
    /// The programme guide.
    pub guide: GuideFeed,
    /// Encrypt-once segments.
    pub packager: Packager,
    /// Keys shared with the edge.
    pub edge: crate::edge::EdgeKeys,
    /// The subscribers' lockers on disk.
    pub locker: crate::locker::Locker,
    crl: Mutex<Option<(i64, Bytes)>>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(
        config: Config,
        store: Store,
        keys: OperatorKeys,
        ca: OperatorCa,
        catalogue: Catalogue,
        guide: GuideFeed,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            edge: keys.edge_keys(),
            guide,
            locker: crate::locker::Locker::new(config.locker_dir()),
            config,
            store,
            keys,
            ca,
            catalogue,
            packager: Packager::default(),
            crl: Mutex::new(None),
            stopping,
        }
    }

    /// Fires when the server stops.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.clone()
    }

    fn lock_crl(&self) -> std::sync::MutexGuard<'_, Option<(i64, Bytes)>> {
        self.crl.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Errors and what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Certificate unknown to the database.
    #[error("certificate not issued by this operator")]
    UnknownCertificate,
    /// Certificate or subscriber revoked.
    #[error("subscription revoked")]
    Revoked,
    /// Subscriber suspended.
    #[error("subscription suspended, contact the operator")]
    Suspended,
    /// Channel outside the subscription.
    #[error("channel {0} is not in your subscription")]
    NotEntitled(u16),
    /// No such channel.
    #[error("no such channel")]
    NoChannel,
    /// Segment not live yet or too old.
    #[error("segment not available")]
    NoSegment,
    /// Enrollment code problems.
    #[error("{0}")]
    Code(&'static str),
    /// A segment asked for on the edge's route without the edge's key.
    #[error("not the operator's edge")]
    NotEdge,
    /// Too many failed enrollments.
    #[error("too many failed enrollment attempts, retry later")]
    TooManyAttempts,
    /// Internal failure, logged.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::UnknownCertificate | AppError::Revoked | AppError::Suspended => {
                StatusCode::FORBIDDEN
            }
            AppError::NotEntitled(_) | AppError::NotEdge => StatusCode::FORBIDDEN,
            AppError::NoChannel | AppError::NoSegment => StatusCode::NOT_FOUND,
            AppError::Code(_) => StatusCode::FORBIDDEN,
            AppError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// Routes behind mutual TLS (and the locker's, `crate::locker::router`, which the server
/// gives a longer request timeout).
pub fn content_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/channels", get(channels))
        .route("/v1/guide", get(guide))
        .route("/v1/guide/now", get(guide_now))
        .route(
            "/v1/favourites",
            axum::routing::put(put_favourites).layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/v1/license", get(license))
        .route("/v1/channels/{number}/live", get(live))
        .route("/v1/channels/{number}/segments/{sequence}", get(segment))
        .route("/v1/channels/{number}/stream", get(stream))
        .with_state(state.clone())
        .merge(crate::parental::router(state))
}

/// Routes behind server-authenticated TLS.
pub fn enroll_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/crl", get(crl))
        .route(
            "/v1/edge/v1/channels/{number}/segments/{sequence}",
            get(edge_segment),
        )
        .route("/healthz", get(health))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Result<&'static str, AppError> {
    state.store.ping().await?;
    Ok("ok\n")
}

/// The subscriber behind the connection's certificate, if in good standing.
pub(crate) async fn authenticate(
    state: &AppState,
    conn: &ConnInfo,
) -> Result<Subscriber, AppError> {
    // The TLS layer requires a certificate chaining to the CA; this adds revocation/status.
    let peer = conn.client.as_ref().ok_or(AppError::UnknownCertificate)?;
    let owner = state
        .store
        .cert_owner(&peer.serial_hex)
        .await?
        .ok_or(AppError::UnknownCertificate)?;
    match (owner.revoked, owner.subscriber.status) {
        (true, _) | (_, Status::Revoked) => Err(AppError::Revoked),
        (_, Status::Suspended) => Err(AppError::Suspended),
        (false, Status::Active) => Ok(owner.subscriber),
    }
}

fn entitled_channel<'a>(
    state: &'a AppState,
    sub: &Subscriber,
    number: u16,
) -> Result<&'a crate::catalogue::Channel, AppError> {
    let ch = state
        .catalogue
        .channels
        .get(&number)
        .ok_or(AppError::NoChannel)?;
    if !ch.in_package(&sub.package) {
        return Err(AppError::NotEntitled(number));
    }
    Ok(ch)
}

async fn channels(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
) -> Result<Json<ChannelList>, AppError> {
    let sub = authenticate(&state, &conn).await?;
    let now = now_ms();
    let guide = state.guide.guide();
    let channels = state
        .catalogue
        .channels
        .values()
        .map(|c| {
            let (now, next) = guide.now_next(c.number, now);
            ChannelInfo {
                number: c.number,
                name: c.name.clone(),
                entitled: c.in_package(&sub.package),
                now: now.cloned(),
                next: next.cloned(),
            }
        })
        .collect();
    // Channels the operator has since removed are left out (the box would show nothing for
    // them, and a list naming them is refused when stored).
    let mut favourites = state.store.favourites(&sub.name).await?;
    favourites.retain(|n| state.catalogue.channels.contains_key(n));
    let parental = state.store.parental(&sub.name).await?;
    Ok(Json(ChannelList {
        account: sub.name,
        package: sub.package,
        channels,
        favourites,
        parental_age: parental.as_ref().and_then(|p| p.max_age),
        parental_pin: parental.is_some(),
    }))
}

/// The most favourites one subscriber keeps.
const MAX_FAVOURITES: usize = 1000;

/// Replaces the subscriber's favourites: channels of the catalogue, each once, in the order
/// given (entitled or not: a favourite may be outside the package, like any channel shown).
async fn put_favourites(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    body: Result<Json<Favourites>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Favourites>, AppError> {
    let sub = authenticate(&state, &conn).await?;
    let Json(wanted) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    if wanted.channels.len() > MAX_FAVOURITES {
        return Err(AppError::BadRequest(format!(
            "at most {MAX_FAVOURITES} favourites"
        )));
    }
    let mut channels = Vec::with_capacity(wanted.channels.len());
    for n in wanted.channels {
        if !state.catalogue.channels.contains_key(&n) {
            return Err(AppError::BadRequest(format!("no channel {n}")));
        }
        if !channels.contains(&n) {
            channels.push(n);
        }
    }
    state
        .store
        .set_favourites(&sub.name, &channels, now_ms())
        .await?;
    Ok(Json(Favourites { channels }))
}

/// The longest range one guide request may ask for: a week ahead and the day behind.
const GUIDE_MAX_RANGE_MS: i64 = 8 * 86_400_000;
/// The most channels one guide request may name.
const GUIDE_MAX_CHANNELS: usize = 1000;

/// `GET /v1/guide` parameters.
#[derive(Debug, serde::Deserialize)]
struct GuideQuery {
    /// Comma-separated channel numbers; every channel when absent.
    channels: Option<String>,
    /// Range start, Unix ms.
    from: i64,
    /// Range end, Unix ms.
    to: i64,
}

/// Programmes of some channels over a range. The same for every subscriber (the guide shows
/// channels outside the subscription too), so a cache may keep it, under the guide's version.
async fn guide(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    headers: axum::http::HeaderMap,
    query: Result<axum::extract::Query<GuideQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    authenticate(&state, &conn).await?;
    let axum::extract::Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let span = query.to.checked_sub(query.from);
    if span.is_none_or(|d| d <= 0 || d > GUIDE_MAX_RANGE_MS) {
        return Err(AppError::BadRequest(format!(
            "the range must be from < to, at most {} days",
            GUIDE_MAX_RANGE_MS / 86_400_000
        )));
    }
    let numbers: Vec<u16> = match query.channels.as_deref() {
        None => state.catalogue.channels.keys().copied().collect(),
        Some(list) => list
            .split(',')
            .map(|n| n.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .map_err(|_| AppError::BadRequest("channels: comma-separated numbers".into()))?,
    };
    if query.channels.is_some() && numbers.len() > GUIDE_MAX_CHANNELS {
        return Err(AppError::BadRequest(format!(
            "at most {GUIDE_MAX_CHANNELS} channels per request"
        )));
    }
    let guide = state.guide.guide();
    let etag = format!("\"{}\"", guide.version());
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "public, max-age=300".to_owned()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let channels = numbers
        .into_iter()
        .filter(|n| state.catalogue.channels.contains_key(n))
        .map(|number| ChannelGuide {
            number,
            programmes: guide.range(number, query.from, query.to).to_vec(),
        })
        .collect();
    Ok((cache, Json(Guide { channels })).into_response())
}

/// Now and next on every channel, cacheable until the first of them changes (at most a
/// minute, so a new guide file shows within a minute too).
async fn guide_now(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
) -> Result<Response, AppError> {
    authenticate(&state, &conn).await?;
    let now = now_ms();
    let guide = state.guide.guide();
    let channels = state
        .catalogue
        .channels
        .keys()
        .map(|&number| {
            let (now, next) = guide.now_next(number, now);
            NowNext {
                number,
                now: now.cloned(),
                next: next.cloned(),
            }
        })
        .collect();
    let fresh_secs = guide
        .next_change(now)
        .map_or(60, |at| ((at - now + 999) / 1000).clamp(1, 60));
    Ok((
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={fresh_secs}"),
        )],
        Json(OnAir { channels }),
    )
        .into_response())
}

async fn license(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
) -> Result<Response, AppError> {
    let sub = authenticate(&state, &conn).await?;
    let ks = state.keys.open_ks(&sub.name, &sub.ks_sealed)?;
    let wrap = LicenseKey::from_ks(&ks);
    let now = now_ms();
    let current = state.config.epoch_of(now);
    let mut entries = Vec::new();
    for ch in state
        .catalogue
        .channels
        .values()
        .filter(|c| c.in_package(&sub.package))
    {
        for epoch in [current, current + 1] {
            let key = state.keys.channel_key(ch.number, epoch);
            let validity = state.config.epoch_validity(epoch);
            entries.push(wrap.wrap(
                ch.number,
                epoch,
                validity,
                &key,
                stb_protocol::random_array(),
            ));
        }
    }
    let license = License {
        account: sub.name,
        issued_at: (now / 1000) as u64,
        entries,
    };
    let body = license.encode().map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

async fn live(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(number): Path<u16>,
) -> Result<Json<LiveEdge>, AppError> {
    let sub = authenticate(&state, &conn).await?;
    let now = now_ms();
    let (sequence, start_ms, duration_ms) = match &entitled_channel(&state, &sub, number)?.source {
        Source::Looped(looped) => {
            let pos = looped.live_at(now);
            (pos.sequence, pos.start_ms, pos.duration_ms)
        }
        Source::Live(feed) => {
            let aired = feed.join().ok_or(AppError::NoSegment)?;
            (aired.sequence, aired.start_ms, aired.duration_ms)
        }
    };
    Ok(Json(LiveEdge {
        sequence,
        epoch: state.config.epoch_of(start_ms),
        start_ms,
        duration_ms,
        // IPv4 boxes reach a dual-stack listener as ::ffff:a.b.c.d; the edge sees a.b.c.d.
        edge: crate::edge::access(
            &state.config,
            &state.edge,
            number,
            conn.peer.ip().to_canonical(),
            now,
        ),
    }))
}

async fn segment(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path((number, sequence)): Path<(u16, u64)>,
) -> Result<Response, AppError> {
    let sub = authenticate(&state, &conn).await?;
    let channel = entitled_channel(&state, &sub, number)?;
    aired_segment(&state, channel, sequence)
}

/// A segment for the edge (on the enrollment listener): the edge proves itself with its key;
/// the boxes' entitlement was checked when the origin gave them their tokens.
async fn edge_segment(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Path((number, sequence)): Path<(u16, u64)>,
) -> Result<Response, AppError> {
    let presented = headers
        .get("x-edge-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !state.edge.is_origin_key(presented) {
        return Err(AppError::NotEdge);
    }
    let channel = state
        .catalogue
        .channels
        .get(&number)
        .ok_or(AppError::NoChannel)?;
    aired_segment(&state, channel, sequence)
}

/// Segment `sequence` of `channel`, if it has aired and is not too old.
fn aired_segment(
    state: &AppState,
    channel: &crate::catalogue::Channel,
    sequence: u64,
) -> Result<Response, AppError> {
    let bytes = match &channel.source {
        Source::Looped(looped) => {
            let live = looped.live_at(now_ms()).sequence;
            // Only what has been broadcast, and not too long ago.
            if sequence > live || sequence + packager::KEPT_BEHIND < live {
                return Err(AppError::NoSegment);
            }
            state
                .packager
                .segment(&state.config, &state.keys, channel.number, looped, sequence)
                .map_err(|e| AppError::Internal(e.into()))?
        }
        Source::Live(feed) => feed.get(sequence).ok_or(AppError::NoSegment)?.bytes,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            // Encrypted once for everyone: any cache may keep it.
            (header::CACHE_CONTROL, "public, max-age=600, immutable"),
        ],
        bytes,
    )
        .into_response())
}

async fn stream(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Path(number): Path<u16>,
) -> Result<Response, AppError> {
    let sub = authenticate(&state, &conn).await?;
    let first = match &entitled_channel(&state, &sub, number)?.source {
        Source::Looped(looped) => looped.live_at(now_ms()).sequence,
        Source::Live(feed) => feed.join().ok_or(AppError::NoSegment)?.sequence,
    };
    // The segment on air goes out at once (a zap starts with a whole GOP), the next ones when
    // their time comes. Standing is re-checked before every segment: a revocation ends it.
    let body = futures_util::stream::unfold(
        (state, conn, first, true),
        move |(state, conn, seq, first_segment)| async move {
            let ch = state.catalogue.channels.get(&number)?;
            // A stream never ends by itself: on shutdown it ends so the server can stop
            // (the box reconnects to the next instance or after the restart).
            let mut stopping = state.stopping.clone();
            if *stopping.borrow() {
                return None;
            }
            let (seq, bytes) = match &ch.source {
                Source::Looped(looped) => {
                    let wait = looped.position(seq).start_ms - now_ms();
                    if !first_segment && wait > 0 {
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_millis(wait as u64)) => {}
                            _ = stopping.changed() => return None,
                        }
                    }
                    let bytes = state
                        .packager
                        .segment(&state.config, &state.keys, number, looped, seq)
                        .ok()?;
                    (seq, bytes)
                }
                Source::Live(feed) => {
                    let aired = feed.wait_for(seq, &mut stopping).await?;
                    (aired.sequence, aired.bytes)
                }
            };
            if !first_segment && authenticate(&state, &conn).await.is_err() {
                return None;
            }
            Some((
                Ok::<Bytes, std::convert::Infallible>(bytes),
                (state, conn, seq + 1, false),
            ))
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.stb.segments"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The budgets one enrollment attempt is counted against, narrowest first: parallel attempts
/// from one source are stopped by its own budget before they reserve a share of the wider ones.
fn enroll_budgets(config: &Config, peer: IpAddr) -> Vec<(&'static str, String, i64)> {
    let source = stb_server_common::gate::source_key(peer);
    let network = match source {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    };
    vec![
        (
            "enroll_peer",
            source.to_string(),
            config.enroll_max_failures,
        ),
        (
            "enroll_network",
            network,
            config.enroll_max_failures_per_network,
        ),
        (
            "enroll_global",
            "all".into(),
            config.enroll_max_failures_global,
        ),
    ]
}

/// Enrollment attempts are counted before they are evaluated, against each budget in one
/// atomic statement per budget, and given back when they succeed: parallel wrong codes cannot
/// overrun a budget, and new addresses do not add to a network's or the global one.
struct EnrollAttempt<'a> {
    state: &'a AppState,
    taken: Vec<(&'static str, String)>,
}

impl<'a> EnrollAttempt<'a> {
    async fn take(
        state: &'a AppState,
        budgets: Vec<(&'static str, String, i64)>,
        now: i64,
    ) -> Result<EnrollAttempt<'a>, AppError> {
        let mut attempt = EnrollAttempt {
            state,
            taken: Vec::new(),
        };
        attempt.add(budgets, now).await?;
        Ok(attempt)
    }

    async fn add(
        &mut self,
        budgets: Vec<(&'static str, String, i64)>,
        now: i64,
    ) -> Result<(), AppError> {
        let window = self.state.config.enroll_window_secs * 1000;
        for (scope, item, max) in budgets {
            let ok = self
                .state
                .store
                .db()
                .reserve_attempt(scope, &item, now, window, max)
                .await?;
            if !ok {
                tracing::warn!(scope, item = %item, "enrollment attempts over budget");
                self.give_back().await;
                return Err(AppError::TooManyAttempts);
            }
            self.taken.push((scope, item));
        }
        Ok(())
    }

    /// The attempt does not count (it worked, or the request was malformed). A failure to
    /// give it back is logged, not returned: the enrollment itself is done, the budget is
    /// only a little stricter until its window ends.
    async fn give_back(&mut self) {
        for (scope, item) in self.taken.drain(..) {
            if let Err(e) = self.state.store.db().refund_attempt(scope, &item).await {
                tracing::warn!(scope, error = %e, "could not give back an enrollment attempt");
            }
        }
    }
}

/// The CRL of the operator CA: certificates revoked, and those of suspended subscribers on
/// hold. Public (it names only serial numbers), fetched by the key server.
async fn crl(State(state): State<Arc<AppState>>) -> Result<Response, AppError> {
    let now = now_ms();
    // Made at most every `crl_cache_secs` (a database scan and a signature each time, on the
    // open enrollment port); a status change shows within that plus the key server's refresh.
    let reuse_ms = state.config.crl_cache_secs * 1000;
    let cached = state
        .lock_crl()
        .as_ref()
        .filter(|(made, _)| now - made < reuse_ms)
        .map(|(_, der)| der.clone());
    let der = match cached {
        Some(der) => der,
        None => {
            let listed = state.store.crl_entries(now).await?;
            let der = Bytes::from(
                state
                    .ca
                    .crl(&listed, now, state.config.crl_validity_secs)
                    .map_err(AppError::Internal)?,
            );
            *state.lock_crl() = Some((now, der.clone()));
            der
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/pkix-crl"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        der,
    )
        .into_response())
}

async fn enroll(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    Json(request): Json<EnrollRequest>,
) -> Result<Json<EnrollResponse>, AppError> {
    use base64::Engine;
    let now = now_ms();
    let mut attempt =
        EnrollAttempt::take(&state, enroll_budgets(&state.config, conn.peer.ip()), now).await?;
    let code = match codes::normalise(&request.code) {
        Ok(code) => code,
        Err(e) => {
            return Err(AppError::Code(match e {
                codes::CodeError::Length => "an enrollment code has 12 digits",
                codes::CodeError::Checksum => "this enrollment code is mistyped",
            }));
        }
    };
    let code_hash = state.keys.code_hash(&code);
    attempt
        .add(
            vec![(
                "enroll_code",
                hex::encode(&code_hash),
                state.config.enroll_max_failures_per_code,
            )],
            now,
        )
        .await?;
    // Refuse a bad CSR before the code is spent; a malformed request is no guess.
    if rcgen::CertificateSigningRequestParams::from_pem(&request.csr_pem).is_err() {
        attempt.give_back().await;
        return Err(AppError::BadRequest("the CSR does not parse".into()));
    }
    let days = state.config.certificate_days;
    let outcome = state
        .store
        .enroll(&code_hash, now, |sub| {
            state.ca.sign_csr(&request.csr_pem, &sub.name, days)
        })
        .await?;
    let (sub, issued) = match outcome {
        Ok(done) => done,
        Err(CodeRefusal::Unknown) => return Err(AppError::Code("unknown enrollment code")),
        Err(CodeRefusal::Used) => {
            return Err(AppError::Code("this enrollment code was already used"));
        }
        Err(CodeRefusal::Expired) => {
            return Err(AppError::Code("this enrollment code has expired"));
        }
    };
    attempt.give_back().await;
    let ks = state.keys.open_ks(&sub.name, &sub.ks_sealed)?;
    tracing::info!(subscriber = %sub.name, serial = %issued.serial_hex, "enrolled");
    Ok(Json(EnrollResponse {
        account: sub.name,
        certificate_pem: issued.pem,
        operator_ca_pem: state.ca.cert_pem.clone(),
        ks_base64: base64::engine::general_purpose::STANDARD
            .encode(ks.expose())
            .into(),
        content_server_url: state.config.public_url.clone(),
        keyserver_url: state.config.keyserver_url.clone(),
    }))
}
