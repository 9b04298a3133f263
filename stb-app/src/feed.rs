//! The feeder: reads a channel's live stream over mutual TLS, splits it into segments,
//! decrypts each with its channel key and pushes it into the player. A lost connection or a
//! server restart is retried with backoff and the same channel resumes by itself; a refusal
//! (not entitled, revoked) is reported and ends the feed.

use crate::player::{FeedState, Player, Stats};
use crate::session::Session;
use futures_util::StreamExt;
use stb_protocol::{SegmentCipher, SegmentSplitter};
use std::sync::Arc;
use std::time::Duration;

/// Runs until aborted (zap, stop) or refused.
pub async fn feed(session: Arc<Session>, player: Arc<Player>, channel: u16) {
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
                            stats.error(format!("connection lost, reconnecting: {e}"));
                            stats.set_feed(FeedState::Reconnecting);
                            break;
                        }
                        None => {
                            stats.error("stream ended, reconnecting");
                            stats.set_feed(FeedState::Reconnecting);
                            break;
                        }
                    }
                    match play_segments(&session, &player, &mut split).await {
                        Ok(0) => {}
                        Ok(_) => stats.set_feed(FeedState::Playing),
                        Err(e) => stats.error(e),
                    }
                }
            }
            Ok(r) if r.status().is_client_error() => {
                let reason = r.text().await.unwrap_or_default();
                stats.error(format!("refused: {}", reason.trim()));
                stats.set_feed(FeedState::Refused(reason.trim().to_owned()));
                return;
            }
            Ok(r) => {
                stats.error(format!("content server answered {}, retrying", r.status()));
                stats.set_feed(FeedState::Reconnecting);
            }
            Err(e) => {
                stats.error(format!("content server unreachable, retrying: {e}"));
                stats.set_feed(FeedState::Reconnecting);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
}

/// Decrypts and pushes every whole segment received so far and says how many. A segment
/// under a key the license does not hold (a new epoch began) triggers one license refresh.
async fn play_segments(
    session: &Session,
    player: &Player,
    split: &mut SegmentSplitter,
) -> Result<usize, String> {
    let mut pushed = 0;
    while let Some((header, mut payload)) = split
        .next_segment()
        .map_err(|e| format!("bad segment header: {e}"))?
    {
        let key = match session.key(&header.key_id) {
            Some(key) => key,
            None => {
                session
                    .refresh_license()
                    .await
                    .map_err(|e| format!("license refresh failed: {e}"))?;
                session.key(&header.key_id).ok_or_else(|| {
                    format!(
                        "no key for segment {} of channel {} in the license",
                        header.sequence, header.channel
                    )
                })?
            }
        };
        let cipher = SegmentCipher::new(&key).map_err(|e| format!("key: {e}"))?;
        if let Err(e) = cipher.decrypt_segment(&header, &mut payload) {
            // The spec's rule: drop it and go on with the next (docs/protocol.md, segments).
            tracing::warn!(
                channel = header.channel,
                sequence = header.sequence,
                error = %e,
                "segment refused"
            );
            continue;
        }
        player.push(payload).map_err(|e| e.to_string())?;
        pushed += 1;
    }
    Ok(pushed)
}
