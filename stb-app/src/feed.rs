//! The feeder: reads a channel's live stream over mutual TLS, splits it into segments,
//! decrypts each with its channel key and pushes it into the player. A lost connection or a
//! server restart is retried with backoff and the same channel resumes by itself; a refusal
//! (not entitled, revoked) is reported and ends the feed.

use crate::channel_keys::KeyUnusable;
use crate::player::{Player, Stats};
use crate::session::{LicenseError, Session};
use futures_util::StreamExt;
use gstreamer as gst;
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
    /// The AES key could not be set up.
    #[error("key: {0}")]
    Cipher(#[source] stb_protocol::Error),
    /// The pipeline did not take the decrypted data.
    #[error("pipeline refused data: {0:?}")]
    Pipeline(gst::FlowError),
}

/// Runs until aborted (zap, stop) or refused; every change of its state goes to `state`.
pub async fn feed(
    session: Arc<Session>,
    player: Arc<Player>,
    channel: u16,
    state: watch::Sender<FeedState>,
) {
    let stats: Arc<Stats> = player.stats().clone();
    let url = format!("{}/v1/channels/{channel}/stream", session.content_url());
    let mut backoff = Duration::from_millis(250);
    loop {
        match session.http().get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                backoff = Duration::from_millis(250);
                let mut body = r.bytes_stream();
                let mut split = SegmentSplitter::default();
                loop {
                    match body.next().await {
                        Some(Ok(chunk)) => split.push(&chunk),
                        Some(Err(e)) => {
                            stats.error(FeedError::ConnectionLost(e).to_string());
                            publish(&state, FeedState::Reconnecting);
                            break;
                        }
                        None => {
                            stats.error(FeedError::StreamEnded.to_string());
                            publish(&state, FeedState::Reconnecting);
                            break;
                        }
                    }
                    match play_segments(&session, &player, &mut split).await {
                        Ok(0) => {}
                        Ok(_) => publish(&state, FeedState::Playing),
                        Err(e) => stats.error(e.to_string()),
                    }
                }
            }
            Ok(r) if r.status().is_client_error() => {
                let reason = r.text().await.unwrap_or_default().trim().to_owned();
                stats.error(FeedError::Refused(reason.clone()).to_string());
                publish(&state, FeedState::Refused(reason));
                return;
            }
            Ok(r) => {
                stats.error(FeedError::ServerError(r.status()).to_string());
                publish(&state, FeedState::Reconnecting);
            }
            Err(e) => {
                stats.error(FeedError::Unreachable(e).to_string());
                publish(&state, FeedState::Reconnecting);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
}

/// Decrypts and pushes every whole segment received so far and says how many. A segment
/// under a key the license does not hold (a new epoch began) triggers one license refresh;
/// one under a key outside its validity is dropped.
async fn play_segments(
    session: &Session,
    player: &Player,
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
                player.stats().error(e.to_string());
                continue;
            }
        };
        let cipher = SegmentCipher::new(&key).map_err(FeedError::Cipher)?;
        if let Err(e) = cipher.decrypt_segment(&header, &mut payload) {
            // The spec's rule: drop it and go on with the next (docs/protocol.md, segments).
            tracing::warn!(channel, sequence, error = %e, "segment refused");
            continue;
        }
        player.push(payload).map_err(FeedError::Pipeline)?;
        pushed += 1;
    }
    Ok(pushed)
}
