//! Headless mode: log in, play a list of channels for a dwell time each, log out, and report
//! as JSON what was decoded and how fast. Used by the end-to-end tests and the zap benchmark.

use crate::config::BoxConfig;
use crate::frame::{Frame, save_png};
use crate::keyserver_client::KeyServer;
use crate::player::{FrameHandler, Player, StatsSnapshot};
use crate::session::{LoginTimings, login};
use serde::Serialize;
use stb_protocol::Password;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One channel's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelReport {
    /// Channel number.
    pub number: u16,
    /// In the subscription, as the channel list says.
    pub entitled: bool,
    /// Decoder output and errors.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Account name after login.
    pub account: Option<String>,
    /// Login error, if the login failed.
    pub login_error: Option<String>,
    /// Login step timings.
    pub login: Option<LoginTimings>,
    /// From the end of the login (keys recovered, content session open) to the first frame of
    /// the first channel, ms.
    pub login_to_first_frame_ms: Option<u64>,
    /// Per channel, in the order played.
    pub channels: Vec<ChannelReport>,
    /// With `--record`: the first channel recorded into the locker while it played, then
    /// played back (it stays in the locker); with `--play-recording`: that recording played.
    pub recording: Option<RecordingReport>,
    /// Logged out and every secret dropped.
    pub logged_out: bool,
}

/// What recording the first channel and playing it back did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecordingReport {
    /// Its name in the locker.
    pub name: Option<String>,
    /// Plaintext bytes recorded (sealed and uploaded as they came).
    pub bytes: u64,
    /// Segments left out because the upload fell behind.
    pub dropped_segments: u64,
    /// Its length, ms.
    pub duration_ms: u64,
    /// From STOP to the recording in the locker's index, ms.
    pub save_ms: u64,
    /// From "play" to the recording's first decoded frame, ms.
    pub open_ms: Option<u64>,
    /// From a 3 s seek back to the first frame after it, ms.
    pub seek_ms: Option<u64>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// What a headless run does after its login.
#[derive(Debug, Clone, Default)]
pub struct Plan<'a> {
    /// Channels to play, in order.
    pub channels: &'a [u16],
    /// How long on each.
    pub dwell: Duration,
    /// Save the picture at the end of the first channel here, as PNG (the video then goes
    /// to an appsink).
    pub snapshot: Option<&'a std::path::Path>,
    /// Record the first channel into the locker while it plays, then play it back.
    pub record: bool,
    /// Play this recording of the locker after the channels.
    pub play_recording: Option<&'a str>,
}

/// Logs in, carries out `plan`, logs out.
pub async fn run(
    config: &BoxConfig,
    identifier: &str,
    password: Password,
    plan: &Plan<'_>,
) -> anyhow::Result<Report> {
    let Plan {
        channels,
        dwell,
        snapshot,
        record,
        play_recording,
    } = *plan;
    let mut report = Report {
        account: None,
        login_error: None,
        login: None,
        login_to_first_frame_ms: None,
        channels: vec![],
        recording: None,
        logged_out: false,
    };
    // The pipeline is built while Argon2id runs: GStreamer set-up is ~0.1 s of the login.
    let (mut video, audio) = (config.video_sink.clone(), config.audio_sink.clone());
    let latest: Arc<std::sync::Mutex<Option<Frame>>> = Arc::default();
    let handler: Option<FrameHandler> = snapshot.map(|_| {
        video = "appsink".to_owned();
        let latest = latest.clone();
        Arc::new(move |frame: Frame| {
            *latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(frame)
        }) as FrameHandler
    });
    let player = tokio::task::spawn_blocking(move || Player::with_frames(&video, &audio, handler));
    let session = match async {
        let keyserver = KeyServer::for_login(config)?;
        login(&keyserver, identifier, password).await
    }
    .await
    {
        Ok(s) => Arc::new(s),
        Err(e) => {
            report.login_error = Some(e.to_string());
            return Ok(report);
        }
    };
    let logged_in = Instant::now();
    report.account = Some(session.account().to_owned());
    report.login = Some(session.timings);
    let player = Arc::new(player.await??);
    let pipeline_ready_ms = logged_in.elapsed().as_millis() as u64;
    let mut recorded = None;
    for &number in channels {
        player.zap()?;
        let recorder = if record && report.channels.is_empty() {
            let order = crate::recorder::Order {
                channel: number,
                channel_name: format!("Channel {number}"),
                title: "Headless recording".into(),
                until_ms: None,
                rating: None,
            };
            Some(crate::recorder::Recorder::start(session.clone(), order))
        } else {
            None
        };
        // The report reads the player's stats; nobody follows the state here.
        let (state, _) = tokio::sync::watch::channel(crate::feed::FeedState::Starting);
        let feeder = tokio::spawn(crate::feed::feed(
            session.clone(),
            player.clone(),
            number,
            state,
        ));
        tokio::time::sleep(dwell).await;
        feeder.abort();
        let _ = feeder.await;
        if let Some(recorder) = recorder {
            recorded = Some(finish_recording(recorder).await);
        }
        let stats = player.stats().snapshot();
        let first_channel = report.channels.is_empty();
        let frame = latest.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(path), Some(frame), true) = (snapshot, frame, first_channel) {
            save_png(&frame, path)?;
        }
        if report.login_to_first_frame_ms.is_none() {
            report.login_to_first_frame_ms = stats.first_frame_ms.map(|ff| pipeline_ready_ms + ff);
        }
        let entitled = session
            .channels
            .channels
            .iter()
            .any(|c| c.number == number && c.entitled);
        report.channels.push(ChannelReport {
            number,
            entitled,
            stats,
        });
    }
    if let Some(name) = play_recording {
        let mut rec = RecordingReport {
            name: Some(name.to_owned()),
            ..RecordingReport::default()
        };
        let played = async {
            let entry = session.locker()?.entry(name).await?;
            rec.bytes = entry.size;
            rec.duration_ms = entry.recording.as_ref().map_or(0, |r| r.duration_ms);
            play_back(&session, &player, entry, &mut rec).await
        };
        if let Err(e) = played.await {
            rec.error = Some(e.to_string());
        }
        report.recording = Some(rec);
    }
    if let Some((mut rec, entry)) = recorded {
        if let Some(entry) = entry
            && let Err(e) = play_back(&session, &player, entry, &mut rec).await
        {
            rec.error = Some(e.to_string());
        }
        report.recording = Some(rec);
    }
    drop(player);
    match Arc::try_unwrap(session) {
        Ok(session) => {
            session.logout();
            report.logged_out = true;
        }
        Err(_) => report.logged_out = false,
    }
    Ok(report)
}

/// Stops a recording and waits for it to be saved.
async fn finish_recording(
    recorder: Result<crate::recorder::Recorder, crate::locker::LockerError>,
) -> (RecordingReport, Option<stb_protocol::locker::Entry>) {
    let mut rec = RecordingReport::default();
    let recorder = match recorder {
        Ok(r) => r,
        Err(e) => {
            rec.error = Some(e.to_string());
            return (rec, None);
        }
    };
    let progress = recorder.progress();
    let stopped = Instant::now();
    let entry = recorder.finish().await;
    rec.save_ms = stopped.elapsed().as_millis() as u64;
    rec.dropped_segments = progress.dropped;
    match entry {
        Ok(entry) => {
            rec.name = Some(entry.name.clone());
            rec.bytes = entry.size;
            rec.duration_ms = entry.recording.as_ref().map_or(0, |r| r.duration_ms);
            (rec, Some(entry))
        }
        Err(e) => {
            rec.error = Some(e.to_string());
            (rec, None)
        }
    }
}

/// Plays the recording back as the Recordings screen does: time to its first frame, then
/// to the first frame after a seek.
async fn play_back(
    session: &Arc<crate::session::Session>,
    player: &Arc<Player>,
    entry: stb_protocol::locker::Entry,
    rec: &mut RecordingReport,
) -> anyhow::Result<()> {
    let first_frame = |player: &Arc<Player>| player.stats().snapshot().first_frame_ms;
    let wait_frame = async |player: &Arc<Player>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while first_frame(player).is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first_frame(player).is_some()
    };
    let opened = Instant::now();
    {
        let player = player.clone();
        tokio::task::spawn_blocking(move || player.zap()).await??;
    }
    let (controls, control_rx) = tokio::sync::mpsc::unbounded_channel();
    let (position, _) = tokio::sync::watch::channel(crate::playback::Position::default());
    let playing = tokio::spawn(crate::playback::play(
        session.clone(),
        player.clone(),
        entry,
        control_rx,
        position,
    ));
    if wait_frame(player).await {
        rec.open_ms = Some(opened.elapsed().as_millis() as u64);
        // Let it play a moment, then jump 3 s back (headless decodes as fast as it can: the
        // recording may be over by then).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sought = Instant::now();
        let _ = controls.send(crate::playback::Control::Seek(-3_000));
        // The seek flushes (the stats reset), then the first frame after it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while first_frame(player).is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if wait_frame(player).await {
            rec.seek_ms = Some(sought.elapsed().as_millis() as u64);
        }
    }
    playing.abort();
    let _ = playing.await;
    Ok(())
}
