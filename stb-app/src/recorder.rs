//! Recording a channel into the subscriber's locker while the viewer goes on watching.
//!
//! A recording reads the channel with a feeder of its own (a second stream from the content
//! server, or the edge), so zapping away does not end it and the picture on screen never
//! waits for it: the player's path is untouched. Each decrypted segment is sealed under KL
//! and uploaded as it comes; the recording ends when its programme ends in the guide, when
//! the viewer stops it, or at logout, and is then entered in the locker's index.

use crate::feed::{FeedError, FeedState, Sink, now_ms};
use crate::locker::{LockerError, NewFile};
use crate::session::Session;
use stb_protocol::locker::{Entry, Kind, Recording as RecordingInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};

/// Segments (about a second each) that may wait for the upload; beyond that, segments are
/// dropped from the recording (the upload is too slow) rather than held in memory.
const QUEUE: usize = 120;

/// What to record.
#[derive(Debug, Clone)]
pub struct Order {
    /// Channel number.
    pub channel: u16,
    /// Channel name.
    pub channel_name: String,
    /// The programme's title (the guide's, or the channel's name without one).
    pub title: String,
    /// When to stop by itself (the programme's end, Unix ms), if known.
    pub until_ms: Option<i64>,
    /// The programme's age rating, kept with the recording.
    pub rating: Option<String>,
}

/// How a recording went.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Plaintext bytes recorded.
    pub bytes: u64,
    /// Segments left out because the upload fell behind.
    pub dropped: u64,
}

/// A recording under way. Dropped, it stops at once (nothing saved) and lets go of the
/// session: its task and its feeder are aborted.
#[derive(Debug)]
pub struct Recorder {
    /// What it records.
    pub order: Order,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<Entry, LockerError>>>,
    feeder: Option<tokio::task::JoinHandle<()>>,
    progress: Arc<Counters>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        if let Some(feeder) = &self.feeder {
            feeder.abort();
        }
    }
}

#[derive(Debug)]
struct Counters {
    bytes: AtomicU64,
    dropped: AtomicU64,
    started: std::time::Instant,
    /// `[ms, offset]` of segment starts, one every [`MARK_EVERY`] at most: seek points.
    marks: std::sync::Mutex<Vec<[u64; 2]>>,
}

/// The spacing of seek marks (a recording's index entry grows by about 20 bytes per mark).
const MARK_EVERY: Duration = Duration::from_secs(5);

/// The feeder's end: segments go to the upload through a bounded queue, never waiting.
struct Tap {
    tx: mpsc::Sender<Vec<u8>>,
    counters: Arc<Counters>,
}

impl Sink for Tap {
    fn push(&self, ts: Vec<u8>) -> Result<(), FeedError> {
        let len = ts.len() as u64;
        match self.tx.try_send(ts) {
            Ok(()) => {
                // Every segment starts with a whole GOP: its offset is a place to seek to.
                let offset = self.counters.bytes.fetch_add(len, Ordering::Relaxed);
                let ms = self.counters.started.elapsed().as_millis() as u64;
                let mut marks = self
                    .counters
                    .marks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let due = marks
                    .last()
                    .is_none_or(|m| ms >= m[0] + MARK_EVERY.as_millis() as u64);
                if due {
                    marks.push([ms, offset]);
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.counters.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("recording: the upload is behind, segments are left out");
                }
            }
            // The recording is ending: the feeder is stopped right after.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
        Ok(())
    }

    fn error(&self, what: String) {
        tracing::warn!(%what, "recording");
    }
}

impl Recorder {
    /// Starts recording (the session must have a locker).
    pub fn start(session: Arc<Session>, order: Order) -> Result<Self, LockerError> {
        session.locker()?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let counters = Arc::new(Counters {
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            started: std::time::Instant::now(),
            marks: std::sync::Mutex::default(),
        });
        let marks = counters.clone();
        let tap = Arc::new(Tap {
            tx,
            counters: counters.clone(),
        });
        let (stop, stopped) = oneshot::channel();
        let (state, _) = watch::channel(FeedState::Starting);
        let feeder = tokio::spawn(crate::feed::feed(
            session.clone(),
            tap,
            order.channel,
            state,
        ));
        let stop_feeder = feeder.abort_handle();
        let started_ms = now_ms();
        let until = order.until_ms;
        let job = order.clone();
        let task = tokio::spawn(async move {
            let locker = session.locker()?;
            let (mut writer, mut reader) = tokio::io::duplex(1 << 20);
            let pump = async move {
                let deadline = async {
                    match until {
                        Some(ms) => tokio::time::sleep(ms_from_now(ms)).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::pin!(deadline, stopped);
                loop {
                    let segment = tokio::select! {
                        s = rx.recv() => s,
                        _ = &mut stopped => None,
                        () = &mut deadline => None,
                    };
                    let Some(segment) = segment else { break };
                    // A stalled upload must not keep STOP from being heard.
                    tokio::select! {
                        written = writer.write_all(&segment) => if written.is_err() { break },
                        _ = &mut stopped => break,
                    }
                }
                stop_feeder.abort();
                // What was queued when it stopped still goes in (the upload ending closes
                // the pipe, so this cannot wait on a failed one).
                rx.close();
                while let Some(segment) = rx.recv().await {
                    if writer.write_all(&segment).await.is_err() {
                        break;
                    }
                }
                let _ = writer.shutdown().await;
            };
            // The reader goes with the upload: when it ends, failed or not, writes fail.
            let upload = async move { locker.upload(&mut reader).await };
            let (_, uploaded) = tokio::join!(pump, upload);
            let (object, size) = uploaded?;
            let ended_ms = now_ms();
            let file = NewFile {
                name: recording_name(&job, started_ms),
                kind: Kind::Recording,
                recording: Some(RecordingInfo {
                    channel: job.channel,
                    channel_name: job.channel_name.clone(),
                    title: job.title.clone(),
                    start_ms: started_ms,
                    duration_ms: (ended_ms - started_ms).max(0) as u64,
                    rating: job.rating.clone(),
                    marks: std::mem::take(
                        &mut *marks.marks.lock().unwrap_or_else(|e| e.into_inner()),
                    ),
                }),
                replace: false,
            };
            locker.enter(file, object, size).await
        });
        Ok(Self {
            order,
            stop: Some(stop),
            task: Some(task),
            feeder: Some(feeder),
            progress: counters,
        })
    }

    /// Bytes recorded and segments left out so far.
    pub fn progress(&self) -> Progress {
        Progress {
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            dropped: self.progress.dropped.load(Ordering::Relaxed),
        }
    }

    /// Records until `stop` fires (or its sender drops) or the programme ends, then saves
    /// within `save_limit` (else gives up, keeping nothing). When it returns, the recording's
    /// tasks have ended and hold nothing of the session.
    pub async fn until_stopped(
        mut self,
        stop: oneshot::Receiver<()>,
        save_limit: Duration,
    ) -> Result<Entry, LockerError> {
        let Some(task) = self.task.as_mut() else {
            return Err(LockerError::Unreachable("the recording stopped".into()));
        };
        tokio::select! {
            ended = task => {
                self.task = None;
                self.end_feeder().await;
                return ended.unwrap_or_else(|e| {
                    Err(LockerError::Unreachable(format!("the recording stopped: {e}")))
                });
            }
            _ = stop => {}
        }
        match tokio::time::timeout(save_limit, self.finish()).await {
            Ok(result) => result,
            Err(_) => Err(LockerError::Unreachable(
                "the recording could not be saved in time".into(),
            )),
        }
    }

    /// Ends the recording: what was recorded is uploaded and entered in the index.
    pub async fn finish(mut self) -> Result<Entry, LockerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.as_mut() {
            Some(task) => match task.await {
                Ok(result) => result,
                Err(e) => Err(LockerError::Unreachable(format!(
                    "the recording stopped: {e}"
                ))),
            },
            None => Err(LockerError::Unreachable("the recording stopped".into())),
        };
        self.task = None;
        self.end_feeder().await;
        result
    }

    async fn end_feeder(&mut self) {
        if let Some(feeder) = self.feeder.take() {
            feeder.abort();
            let _ = feeder.await;
        }
    }
}

/// `Recordings/<title> - <channel> <date time>.ts` (local time, to the minute).
fn recording_name(order: &Order, started_ms: i64) -> String {
    use chrono::TimeZone;
    let when = chrono::Local
        .timestamp_millis_opt(started_ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H.%M.%S").to_string())
        .unwrap_or_default();
    let clean = |s: &str| s.replace('/', "-");
    format!(
        "Recordings/{} - {} {when}.ts",
        clean(&order.title),
        clean(&order.channel_name)
    )
}

fn ms_from_now(at_ms: i64) -> Duration {
    Duration::from_millis((at_ms - now_ms()).max(0) as u64)
}
