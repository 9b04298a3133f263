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
    /// Logged out and every secret dropped.
    pub logged_out: bool,
}

/// Plays `channels` for `dwell` each. With `snapshot`, the picture on screen at the end of
/// the first channel is saved there as PNG (the video goes to an appsink for that).
pub async fn run(
    config: &BoxConfig,
    identifier: &str,
    password: Password,
    channels: &[u16],
    dwell: Duration,
    snapshot: Option<&std::path::Path>,
) -> anyhow::Result<Report> {
    let mut report = Report {
        account: None,
        login_error: None,
        login: None,
        login_to_first_frame_ms: None,
        channels: vec![],
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
    for &number in channels {
        player.zap()?;
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
