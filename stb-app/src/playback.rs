//! Playing a recording from the locker: range reads of just the chunks needed, each opened
//! and checked, pushed into the same player as live TV, paced by what the player has not yet
//! taken. Pause holds the pipeline; a seek flushes it and reads on from the new place (the
//! picture comes back at the next segment boundary of the recording, within a second).

use crate::locker::LockerError;
use crate::player::Player;
use crate::session::Session;
use stb_protocol::locker::Entry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Plaintext read per request (16 chunks).
const READ: u64 = 1 << 20;
/// The player is given no more than this ahead of what it has taken.
const LEAD: u64 = 4 << 20;
/// TS packets are 188 bytes: a seek lands on a packet boundary.
const PACKET: u64 = 188;
/// No new picture for this long after the last byte: the recording has ended.
const END_QUIET: Duration = Duration::from_secs(1);

/// What the viewer does to the playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Pause (true) or play on.
    Pause(bool),
    /// Jump by this many ms (negative: back), clamped to the recording.
    Seek(i64),
}

/// Where the playback is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Position, ms.
    pub ms: u64,
    /// Length, ms.
    pub total_ms: u64,
    /// Paused.
    pub paused: bool,
    /// Played to the end.
    pub ended: bool,
}

/// Plays `entry` until it ends (then waits for a seek back) or the task is aborted.
/// `position` follows it (about every 250 ms).
pub async fn play(
    session: Arc<Session>,
    player: Arc<Player>,
    entry: Entry,
    mut control: mpsc::UnboundedReceiver<Control>,
    position: watch::Sender<Position>,
) -> Result<(), LockerError> {
    let locker = session.locker()?;
    let size = entry.size;
    let total_ms = entry.recording.as_ref().map_or(0, |r| r.duration_ms);
    // Bytes to ms and back by the recording's seek marks (segment starts: a seek lands on
    // a whole GOP), else by its mean rate.
    // The end is a mark too: positions after the last segment mark move on to it.
    let info = entry.recording.clone().map(|mut r| {
        if !r.marks.is_empty() {
            r.marks.push([total_ms, size]);
        }
        r
    });
    let to_ms = |bytes: u64| {
        info.as_ref()
            .and_then(|r| r.time_at(bytes))
            .unwrap_or_else(|| {
                (u128::from(bytes) * u128::from(total_ms) / u128::from(size.max(1))) as u64
            })
    };
    let to_bytes = |ms: u64| {
        info.as_ref()
            .and_then(|r| r.offset_at(ms))
            .unwrap_or_else(|| {
                let b = (u128::from(ms) * u128::from(size) / u128::from(total_ms.max(1))) as u64;
                b - b % PACKET
            })
    };
    let mut offset = 0u64;
    let mut paused = false;
    // The end: every byte given to the player, and no new picture for a while (the data
    // waits in the decoders and the sink long after the source's queue is empty).
    let mut frames = (0u64, std::time::Instant::now());
    loop {
        let queued = player.queued_bytes();
        let at = to_ms(offset.saturating_sub(queued));
        let decoded = player.stats().video_frames();
        if decoded != frames.0 || paused || offset < size {
            frames = (decoded, std::time::Instant::now());
        }
        let ended = offset >= size && queued == 0 && frames.1.elapsed() > END_QUIET;
        position.send_replace(Position {
            ms: if ended { total_ms } else { at },
            total_ms,
            paused,
            ended,
        });
        let busy = paused || ended || queued > LEAD || offset >= size;
        let next = if busy {
            match tokio::time::timeout(Duration::from_millis(250), control.recv()).await {
                Ok(Some(c)) => Some(c),
                Ok(None) => return Ok(()),
                Err(_) => None,
            }
        } else {
            control.try_recv().ok()
        };
        match next {
            Some(Control::Pause(p)) => {
                paused = p;
                pipeline(&player, move |player| player.pause(p)).await;
                continue;
            }
            Some(Control::Seek(delta)) => {
                let target = at.saturating_add_signed(delta).min(total_ms);
                offset = to_bytes(target).min(size - size % PACKET);
                pipeline(&player, |player| player.zap()).await;
                frames = (0, std::time::Instant::now());
                if paused {
                    pipeline(&player, |player| player.pause(true)).await;
                }
                continue;
            }
            None if busy => continue,
            None => {}
        }
        let bytes = locker.read_range(&entry, offset..offset + READ).await?;
        offset += bytes.len() as u64;
        if bytes.is_empty() {
            offset = size;
            continue;
        }
        if let Err(e) = player.push(bytes) {
            tracing::warn!(error = ?e, "recording: the player refused data");
        }
    }
}

/// A state change of the pipeline, off the async threads (it waits for its threads).
async fn pipeline(
    player: &Arc<Player>,
    change: impl FnOnce(&Player) -> anyhow::Result<()> + Send + 'static,
) {
    let player = player.clone();
    match tokio::task::spawn_blocking(move || change(&player)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "recording playback"),
        Err(e) => tracing::warn!(error = %e, "recording playback"),
    }
}
