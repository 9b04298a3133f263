//! The feeder: reads a channel's live stream over mutual TLS, splits it into segments,
//! decrypts each with its channel key and pushes it into the player. A lost connection or a
//! server restart is retried with backoff and the same channel resumes by itself; a refusal
//! (not entitled, revoked) is reported and ends the feed.

use crate::channel_keys::KeyUnusable;
use crate::player::Player;
use crate::session::{LicenseError, Session};
use futures_util::StreamExt;
use gstreamer as gst;
use stb_protocol::content_api::LiveEdge;
use stb_protocol::{DecodeError, SegmentCipher, SegmentSplitter};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

/// Where the feeder stands with the channel being played. The feeder publishes each change on
/// a `watch` channel; the UI's overlays follow it (no polling).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub enum FeedState {
    /// Connecting to the channel.
    #[default]
    Starting,
    /// Segments are flowing.
    Playing,
    /// The connection was lost or the server is away; retrying with backoff.
    Reconnecting,
    /// The operator refused the channel (not entitled, revoked), with its reason.
    Refused(String),
}

/// Publishes `new` if it differs from the last state (receivers wake on changes only).
fn publish(state: &watch::Sender<FeedState>, new: FeedState) {
    state.send_if_modified(|current| {
        let changed = *current != new;
        *current = new;
        changed
    });
}

/// What went wrong with a channel's stream (recorded in the player's report; the UI shows
/// the [`FeedState`] that follows from it).
#[derive(Debug, Error)]
pub enum FeedError {
    /// The connection broke mid-stream.
    #[error("connection lost, reconnecting: {0}")]
    ConnectionLost(#[source] reqwest::Error),
    /// The server closed the stream.
    #[error("stream ended, reconnecting")]
    StreamEnded,
    /// The content server answered with a server error.
    #[error("content server answered {0}, retrying")]
    ServerError(reqwest::StatusCode),
    /// The content server could not be reached.
    #[error("content server unreachable, retrying: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The operator refused the channel, with its reason.
    #[error("refused: {0}")]
    Refused(String),
    /// A segment header that cannot be right: the rest of the stream is unusable.
    #[error("bad segment header: {0}")]
    Header(#[source] DecodeError),
    /// A segment under an unknown key, and the license refresh failed.
    #[error("license refresh failed: {0}")]
    License(#[source] LicenseError),
    /// A segment under a key the refreshed license still does not hold.
    #[error("no key for segment {sequence} of channel {channel} in the license")]
    NoKey {
        /// Channel.
        channel: u16,
        /// Segment.
        sequence: u64,
    },
    /// The segment's key is held but not valid now: the segment is dropped.
    #[error("segment {sequence} of channel {channel} dropped: {why}")]
    KeyNotValid {
        /// Channel.
        channel: u16,
        /// Segment.
        sequence: u64,
        /// Its validity against the box's clock.
        why: KeyUnusable,
    },
    /// The edge failed (unreachable, or it refused a fresh token): the box streams from the
    /// origin for a while.
    #[error("edge failed, streaming from the content server: {0}")]
    Edge(String),
    /// The AES key could not be set up.
    #[error("key: {0}")]
    Cipher(#[source] stb_protocol::Error),
    /// The pipeline did not take the decrypted data.
    #[error("pipeline refused data: {0:?}")]
    Pipeline(gst::FlowError),
}

/// Where decrypted segments go: the player, or a recording.
pub trait Sink: Send + Sync + 'static {
    /// Takes one decrypted segment (MPEG-TS from a GOP boundary).
    fn push(&self, ts: Vec<u8>) -> Result<(), FeedError>;
    /// Notes a problem (the player's report; a recording's log).
    fn error(&self, what: String);
}

impl Sink for Player {
    fn push(&self, ts: Vec<u8>) -> Result<(), FeedError> {
        Player::push(self, ts).map_err(FeedError::Pipeline)
    }

    fn error(&self, what: String) {
        self.stats().error(what);
    }
}

/// How long before its token expires the box asks the origin for a new one.
const TOKEN_RENEWAL_MS: i64 = 10_000;
/// After the edge failed, how long the box streams from the origin before trying it again.
const EDGE_PAUSE: Duration = Duration::from_secs(60);
/// First wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// The longest a segment fetch from the edge may take before the edge counts as failed.
const EDGE_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs until aborted (zap, stop) or refused; every change of its state goes to `state`.
/// The origin says where the segments come from: its edge (an HTTP cache, with a token for
/// this channel and this box) or its own stream. When the edge fails the box streams from
/// the origin for a while, then tries the edge again.
pub async fn feed<S: Sink>(
    session: Arc<Session>,
    player: Arc<S>,
    channel: u16,
    state: watch::Sender<FeedState>,
) {
    let player = &*player;
    let mut backoff = FIRST_BACKOFF;
    let mut edge_failed: Option<tokio::time::Instant> = None;
    loop {
        let edge_paused = edge_failed.is_some_and(|at| at.elapsed() < EDGE_PAUSE);
        let result = match origin_live(&session, channel).await {
            Ok(live) if live.edge.is_some() && !edge_paused => {
                let r = from_edge(&session, player, channel, live, &state, &mut backoff).await;
                if let Err(e @ FeedError::Edge(_)) = &r {
                    // Not the origin's fault: stream from it at once.
                    player.error(e.to_string());
                    edge_failed = Some(tokio::time::Instant::now());
                    continue;
                }
                r
            }
            Ok(live) => {
                // While the edge is paused, the stream runs until the pause ends.
                let until = live.edge.and(edge_failed).map(|at| at + EDGE_PAUSE);
                from_stream(&session, player, channel, &state, &mut backoff, until).await
            }
            Err(e) => Err(e),
        };
        match result {
            // Back to the origin's word at once: the edge again, or a resync.
            Ok(()) => continue,
            Err(FeedError::Refused(reason)) => {
                player.error(FeedError::Refused(reason.clone()).to_string());
                publish(&state, FeedState::Refused(reason));
                return;
            }
            Err(e) => player.error(e.to_string()),
        }
        publish(&state, FeedState::Reconnecting);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// `GET path` on the content server: a refusal (4xx) carries the operator's reason.
async fn origin_get(session: &Session, path: &str) -> Result<reqwest::Response, FeedError> {
    let url = format!("{}{path}", session.content_url());
    let r = session
        .http()
        .get(&url)
        .send()
        .await
        .map_err(FeedError::Unreachable)?;
    let status = r.status();
    if status.is_client_error() {
        return Err(FeedError::Refused(
            r.text().await.unwrap_or_default().trim().to_owned(),
        ));
    }
    if !status.is_success() {
        return Err(FeedError::ServerError(status));
    }
    Ok(r)
}

/// Where the channel is on air, and where to fetch it (`GET /v1/channels/N/live`).
async fn origin_live(session: &Session, channel: u16) -> Result<LiveEdge, FeedError> {
    origin_get(session, &format!("/v1/channels/{channel}/live"))
        .await?
        .json()
        .await
        .map_err(FeedError::ConnectionLost)
}

/// Reads the origin's stream of the channel until it breaks, or until `until` (the end of a
/// pause of the edge: then it returns `Ok`).
async fn from_stream(
    session: &Session,
    player: &impl Sink,
    channel: u16,
    state: &watch::Sender<FeedState>,
    backoff: &mut Duration,
    until: Option<tokio::time::Instant>,
) -> Result<(), FeedError> {
    let r = origin_get(session, &format!("/v1/channels/{channel}/stream")).await?;
    let mut body = r.bytes_stream();
    let mut split = SegmentSplitter::default();
    let pause_over = async {
        match until {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(pause_over);
    loop {
        let next = tokio::select! {
            next = body.next() => next,
            () = &mut pause_over => return Ok(()),
        };
        match next {
            Some(Ok(chunk)) => split.push(&chunk),
            Some(Err(e)) => return Err(FeedError::ConnectionLost(e)),
            None => return Err(FeedError::StreamEnded),
        }
        match play_segments(session, player, &mut split).await {
            Ok(0) => {}
            Ok(_) => {
                *backoff = FIRST_BACKOFF;
                publish(state, FeedState::Playing);
            }
            Err(e) => player.error(e.to_string()),
        }
    }
}

/// Fetches each segment from the edge as it goes on air, renewing the token from the origin
/// before it expires (a refusal there ends the feed: revoked, suspended, not entitled). Fails
/// with [`FeedError::Edge`] when the edge is unreachable or refuses a fresh token; returns when
/// the origin stops naming an edge.
async fn from_edge(
    session: &Session,
    player: &impl Sink,
    channel: u16,
    live: LiveEdge,
    state: &watch::Sender<FeedState>,
    backoff: &mut Duration,
) -> Result<(), FeedError> {
    let Some(mut access) = live.edge else {
        return Ok(());
    };
    let step_ms = live.duration_ms.max(100) as i64;
    let (mut next, mut due_ms) = (live.sequence, live.start_ms);
    let mut renewed_ms = now_ms();
    let mut early = 0;
    loop {
        if access.expires_ms - now_ms() < TOKEN_RENEWAL_MS {
            let fresh = origin_live(session, channel).await?;
            let Some(a) = fresh.edge else { return Ok(()) };
            (access, renewed_ms) = (a, now_ms());
        }
        let wait = due_ms - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let url = format!("{}{next}?{}", access.segments_url, access.query);
        // Errors without the URL: it holds the token.
        let edge_error = |e: reqwest::Error| FeedError::Edge(e.without_url().to_string());
        let r = session
            .http()
            .get(&url)
            .timeout(EDGE_FETCH_TIMEOUT)
            .send()
            .await
            .map_err(edge_error)?;
        match r.status().as_u16() {
            200 => {
                let bytes = r.bytes().await.map_err(edge_error)?;
                let mut split = SegmentSplitter::default();
                split.push(&bytes);
                match play_segments(session, player, &mut split).await {
                    Ok(0) => {}
                    Ok(_) => {
                        *backoff = FIRST_BACKOFF;
                        publish(state, FeedState::Playing);
                    }
                    Err(e) => player.error(e.to_string()),
                }
                (next, due_ms, early) = (next + 1, due_ms + step_ms, 0);
            }
            // Not on air yet: this segment is shorter than the last, or the clocks differ.
            404 if early < 20 => {
                early += 1;
                due_ms = now_ms() + step_ms / 5;
            }
            // Far off the live edge: start again where the origin says it is.
            404 => return Ok(()),
            403 if now_ms() - renewed_ms > 1000 => access.expires_ms = 0,
            403 => return Err(FeedError::Edge("a fresh token was refused".into())),
            _ => return Err(FeedError::Edge(format!("answered {}", r.status()))),
        }
    }
}

/// Unix ms, on the box's clock (the origin's times are compared with it).
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Decrypts and pushes every whole segment received so far and says how many. A segment
/// under a key the license does not hold (a new epoch began) triggers one license refresh;
/// one under a key outside its validity is dropped.
async fn play_segments(
    session: &Session,
    player: &impl Sink,
    split: &mut SegmentSplitter,
) -> Result<usize, FeedError> {
    let mut pushed = 0;
    while let Some((header, mut payload)) = split.next_segment().map_err(FeedError::Header)? {
        let (channel, sequence) = (header.channel, header.sequence);
        let key = match session.key(&header.key_id) {
            Err(KeyUnusable::Missing) => {
                session
                    .refresh_license()
                    .await
                    .map_err(FeedError::License)?;
                session.key(&header.key_id)
            }
            found => found,
        };
        let key = match key {
            Ok(key) => key,
            Err(KeyUnusable::Missing) => return Err(FeedError::NoKey { channel, sequence }),
            Err(why) => {
                // Not a reason to stop: the next segments may be under a valid key.
                let e = FeedError::KeyNotValid {
                    channel,
                    sequence,
                    why,
                };
                tracing::warn!(error = %e, "segment refused");
                player.error(e.to_string());
                continue;
            }
        };
        let cipher = SegmentCipher::new(&key).map_err(FeedError::Cipher)?;
        if let Err(e) = cipher.decrypt_segment(&header, &mut payload) {
            // The spec's rule: drop it and go on with the next (docs/protocol.md, segments).
            tracing::warn!(channel, sequence, error = %e, "segment refused");
            continue;
        }
        player.push(payload)?;
        pushed += 1;
    }
    Ok(pushed)
}
