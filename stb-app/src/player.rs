//! The player: one GStreamer pipeline for the whole session,
//! `appsrc (live MPEG-TS) ! tsdemux ! h264parse ! decoder ! dvbsuboverlay ! videoconvert !
//! video sink` plus `aacparse ! avdec_aac ! audioconvert ! audioresample ! audio sink` and the
//! subtitles the viewer turned on into the overlay, fed with segments that
//! the box decrypts itself. A zap takes the pipeline to READY (which flushes every element and
//! resets the demuxer) and back to PLAYING, then the new channel's data flows in: no playbin,
//! no buffering beyond the decoders' own.

use anyhow::{Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::frame::Frame;
use crate::sync::lock;
use crate::tracks::{Kind, Tracks};
pub use crate::tracks::{Next, Track};

/// What the pipeline has done since the last zap.
#[derive(Debug, Default)]
pub struct Stats {
    zaps: AtomicU64,
    video_frames: AtomicU64,
    audio_buffers: AtomicU64,
    zapped_at: Mutex<Option<Instant>>,
    first_frame: Mutex<Option<Duration>>,
    errors: Mutex<Vec<String>>,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatsSnapshot {
    /// Flushes so far (zaps, stops): the other counts restart at each.
    pub zaps: u64,
    /// Decoded video frames.
    pub video_frames: u64,
    /// Decoded audio buffers.
    pub audio_buffers: u64,
    /// From the zap to the first decoded frame, ms.
    pub first_frame_ms: Option<u64>,
    /// Errors reported by the pipeline or the feeder.
    pub errors: Vec<String>,
}

impl Stats {
    fn reset(&self) {
        self.zaps.fetch_add(1, Ordering::SeqCst);
        self.video_frames.store(0, Ordering::SeqCst);
        self.audio_buffers.store(0, Ordering::SeqCst);
        *lock(&self.first_frame) = None;
        lock(&self.errors).clear();
        *lock(&self.zapped_at) = Some(Instant::now());
    }

    fn frame(&self) {
        if self.video_frames.fetch_add(1, Ordering::SeqCst) == 0 {
            let since = lock(&self.zapped_at).map(|t| t.elapsed());
            *lock(&self.first_frame) = since;
        }
    }

    /// Records an error for the report and the UI.
    pub fn error(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(%message, "player error");
        let mut errors = lock(&self.errors);
        if errors.len() < 50 && !errors.contains(&message) {
            errors.push(message);
        }
    }

    /// Decoded video frames since the last zap (without copying the rest).
    pub fn video_frames(&self) -> u64 {
        self.video_frames.load(Ordering::SeqCst)
    }

    /// Current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            zaps: self.zaps.load(Ordering::SeqCst),
            video_frames: self.video_frames.load(Ordering::SeqCst),
            audio_buffers: self.audio_buffers.load(Ordering::SeqCst),
            first_frame_ms: lock(&self.first_frame).map(|d| d.as_millis() as u64),
            errors: lock(&self.errors).clone(),
        }
    }
}

/// Receives frames from the streaming thread (the UI moves them to its own thread).
pub type FrameHandler = Arc<dyn Fn(Frame) + Send + Sync>;

/// The pipeline.
#[derive(Debug)]
pub struct Player {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    volume: gst::Element,
    stats: Arc<Stats>,
    /// Zaps one at a time: two flushes interleaved (READY, READY, PLAYING, PLAYING from
    /// zaps on different threads) could let one channel's data into the other's start.
    zapping: Mutex<()>,
    /// Paused or playing, as last asked. Applied under `zapping` by whichever thread comes
    /// last, so a pause and a play sent to two blocking threads cannot end in the wrong
    /// order (a lock is not first come, first served).
    paused: AtomicBool,
    sound: Arc<Tracks>,
    subtitles: Arc<Tracks>,
}

fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory).build().with_context(|| {
        format!("GStreamer element {factory} is missing (install the gstreamer1.0 plugins)")
    })
}

/// The time-shift buffer: while live TV is paused its data waits in the source's queue, in
/// memory, up to this much (several minutes at a few Mbit/s); beyond it the oldest is
/// dropped. A flush (zap, logout) empties it.
pub const TIMESHIFT_BYTES: u64 = 96 << 20;

/// tsdemux's added latency, ms: none (segments arrive whole, a second ahead of their time).
const DEMUX_LATENCY_MS: i32 = 0;

/// A hardware H.264 decoder when the platform has one, else libav's.
fn video_decoder() -> Result<gst::Element> {
    for hw in ["v4l2slh264dec", "v4l2h264dec"] {
        if let Some(dec) = gst::ElementFactory::find(hw).and_then(|f| f.create().build().ok()) {
            return Ok(dec);
        }
    }
    let dec = make("avdec_h264")?;
    // Slice threads decode a frame as soon as it arrives; frame threads hold frames back.
    dec.set_property_from_str("thread-type", "slice");
    Ok(dec)
}

/// The elements the player keeps or instruments after building.
struct Pipeline {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    demux: gst::Element,
    vparse: gst::Element,
    vdec: gst::Element,
    overlay: gst::Element,
    aqueue: gst::Element,
    adec: gst::Element,
    volume: gst::Element,
}

/// Builds and links the elements (nothing runs yet).
fn create_pipeline(
    video_sink: &str,
    audio_sink: &str,
    frames: Option<FrameHandler>,
) -> Result<Pipeline> {
    gst::init()?;
    let pipeline = gst::Pipeline::new();
    let caps = gst::Caps::builder("video/mpegts")
        .field("systemstream", true)
        .field("packetsize", 188i32)
        .build();
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .is_live(true)
        .format(gst::Format::Bytes)
        .max_bytes(TIMESHIFT_BYTES)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build();
    let demux = make("tsdemux")?;
    // tsdemux holds live data back 700 ms by default to smooth packet-by-packet arrival.
    // Segments reach the box whole, so that only delayed every zap's first picture on a
    // synchronised sink (the UI: 762 ms at 700, 162 ms at 100, 62 ms at 0, still 25
    // pictures/s; BENCHMARKS.md).
    demux.set_property("latency", DEMUX_LATENCY_MS);
    let vparse = make("h264parse")?;
    let vdec = video_decoder()?;
    // Draws the subtitles on the decoded pictures; with none linked (or none on screen) the
    // pictures pass as they are. It never waits for subtitles: a sparse stream cannot hold
    // the picture back.
    let overlay = make("dvbsuboverlay")?;
    let vconv = make("videoconvert")?;
    let vqueue = make("queue")?;
    let vsink = match (video_sink, frames) {
        ("appsink", Some(handler)) => rgba_appsink(handler).upcast(),
        ("appsink", None) => anyhow::bail!("the appsink video sink needs a frame handler"),
        (factory, _) => make(factory)?,
    };
    let aqueue = make("queue")?;
    let aparse = make("aacparse")?;
    let adec = make("avdec_aac")?;
    let aconv = make("audioconvert")?;
    let ares = make("audioresample")?;
    let volume = make("volume")?;
    let asink = make(audio_sink)?;
    if video_sink == "fakesink" {
        vsink.set_property("sync", false);
    }
    if audio_sink == "fakesink" {
        asink.set_property("sync", false);
    }
    // A channel may have no sound (a live input without audio): a sink waiting for its
    // first buffer would hold the pipeline in PAUSED and the picture would stop once the
    // video queue is full. No sink takes part in the state change, including those that
    // autoaudiosink and autovideosink create inside themselves.
    pipeline.connect_deep_element_added(|_, _, element| not_async(element));
    for sink in [&vsink, &asink] {
        not_async(sink);
    }
    pipeline.add_many([
        appsrc.upcast_ref(),
        &demux,
        &vparse,
        &vdec,
        &overlay,
        &vconv,
        &vqueue,
        &vsink,
        &aqueue,
        &aparse,
        &adec,
        &aconv,
        &ares,
        &volume,
        &asink,
    ])?;
    appsrc.link(&demux)?;
    gst::Element::link_many([&vparse, &vdec, &overlay, &vconv, &vqueue, &vsink])?;
    gst::Element::link_many([&aqueue, &aparse, &adec, &aconv, &ares, &volume, &asink])?;
    Ok(Pipeline {
        pipeline,
        appsrc,
        demux,
        vparse,
        vdec,
        overlay,
        aqueue,
        adec,
        volume,
    })
}

/// Makes a sink element (not a bin) complete state changes without waiting for data.
fn not_async(element: &gst::Element) {
    let is_sink = element
        .factory()
        .is_some_and(|f| f.metadata("klass").is_some_and(|k| k.contains("Sink")));
    if is_sink && element.has_property("async") {
        element.set_property("async", false);
    }
}

/// tsdemux makes its pads once it has seen the PMT, again after every reset (zap): each new
/// video pad replaces the old link to the video branch; sound and subtitle pads go to their
/// [`Tracks`], which link the viewer's choice.
fn link_demuxer_pads(p: &Pipeline) -> Result<(Arc<Tracks>, Arc<Tracks>)> {
    let vtarget = p.vparse.static_pad("sink").context("h264parse pad")?;
    let sound = Arc::new(Tracks::new(
        Kind::Sound,
        p.demux.clone(),
        p.aqueue.static_pad("sink").context("queue pad")?,
    ));
    let subtitles = Arc::new(Tracks::new(
        Kind::Subtitles,
        p.demux.clone(),
        p.overlay.static_pad("text_sink").context("overlay pad")?,
    ));
    let (s, t) = (sound.clone(), subtitles.clone());
    p.demux.connect_pad_added(move |_, pad| {
        let Some(caps) = pad.current_caps() else {
            return;
        };
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        if name.starts_with("video/x-h264") {
            crate::tracks::relink(pad, &vtarget);
        } else if Kind::Sound.carried_by(pad) {
            s.added(pad);
        } else if Kind::Subtitles.carried_by(pad) {
            t.added(pad);
        }
    });
    let (s, t) = (sound.clone(), subtitles.clone());
    p.demux.connect_pad_removed(move |_, _| {
        s.removed();
        t.removed();
    });
    Ok((sound, subtitles))
}

/// Pad probes on the decoders' outputs count frames and audio buffers into `stats`.
fn count_decoded(p: &Pipeline, stats: &Arc<Stats>) -> Result<()> {
    let s = stats.clone();
    p.vdec.static_pad("src").context("decoder pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            s.frame();
            gst::PadProbeReturn::Ok
        },
    );
    let s = stats.clone();
    p.adec.static_pad("src").context("decoder pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            s.audio_buffers.fetch_add(1, Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// Errors on the bus go to the stats (and the report), never into the void. The thread ends
/// with the pipeline's end of stream or when the player (its stats) is gone.
fn watch_bus(pipeline: &gst::Pipeline, stats: std::sync::Weak<Stats>) -> Result<()> {
    let bus = pipeline.bus().context("pipeline bus")?;
    std::thread::Builder::new()
        .name("gst-bus".into())
        .spawn(move || {
            for msg in bus.iter_timed(gst::ClockTime::NONE) {
                let Some(stats) = stats.upgrade() else { break };
                match msg.view() {
                    gst::MessageView::Error(e) => {
                        stats.error(format!(
                            "{}: {}",
                            e.src().map(|s| s.name().to_string()).unwrap_or_default(),
                            e.error()
                        ));
                    }
                    gst::MessageView::Eos(_) => break,
                    _ => {}
                }
            }
        })?;
    Ok(())
}

impl Player {
    /// Builds the pipeline with the given sink factories (`fakesink` for tests).
    pub fn new(video_sink: &str, audio_sink: &str) -> Result<Self> {
        Self::with_frames(video_sink, audio_sink, None)
    }

    /// Like [`Player::new`]; with `video_sink` = `appsink`, every decoded frame goes to
    /// `frames` as RGBA (the UI's video path).
    pub fn with_frames(
        video_sink: &str,
        audio_sink: &str,
        frames: Option<FrameHandler>,
    ) -> Result<Self> {
        let p = create_pipeline(video_sink, audio_sink, frames)?;
        let (sound, subtitles) = link_demuxer_pads(&p)?;
        let stats = Arc::new(Stats::default());
        count_decoded(&p, &stats)?;
        watch_bus(&p.pipeline, Arc::downgrade(&stats))?;
        p.pipeline
            .set_state(gst::State::Playing)
            .context("starting the pipeline")?;
        Ok(Self {
            pipeline: p.pipeline,
            appsrc: p.appsrc,
            volume: p.volume,
            stats,
            zapping: Mutex::new(()),
            paused: AtomicBool::new(false),
            sound,
            subtitles,
        })
    }

    /// Statistics since the last zap.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Flushes everything for a new channel. The caller then feeds the new channel.
    pub fn zap(&self) -> Result<()> {
        let _one_at_a_time = lock(&self.zapping);
        self.resetting(true);
        let flushed = self.pipeline.set_state(gst::State::Ready);
        self.resetting(false);
        flushed.context("flushing the pipeline")?;
        self.stats.reset();
        self.pipeline
            .set_state(self.wanted_state())
            .context("restarting the pipeline")?;
        Ok(())
    }

    fn resetting(&self, on: bool) {
        self.sound.resetting(on);
        self.subtitles.resetting(on);
    }

    fn wanted_state(&self) -> gst::State {
        if self.paused.load(Ordering::SeqCst) {
            gst::State::Paused
        } else {
            gst::State::Playing
        }
    }

    /// Records a pause or a play in the order the viewer asked, without waiting; the next
    /// [`Player::apply_pause`] or zap applies the last one.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Audio volume (0.0 to 1.0) and mute.
    pub fn set_volume(&self, level: f64, muted: bool) {
        self.volume.set_property("volume", level.clamp(0.0, 1.0));
        self.volume.set_property("mute", muted);
    }

    /// Pauses (picture held, sound off) or plays on. Paused on a live channel, its data
    /// keeps coming into the source's queue, up to [`TIMESHIFT_BYTES`]: playing on resumes
    /// where it paused, behind live (a zap comes back to live).
    pub fn pause(&self, paused: bool) -> Result<()> {
        self.set_paused(paused);
        self.apply_pause()
    }

    /// Applies what [`Player::set_paused`] last recorded.
    pub fn apply_pause(&self) -> Result<()> {
        // In turn with zaps: a pause right after a zap is not undone by its restart.
        let _one_at_a_time = lock(&self.zapping);
        let state = self.wanted_state();
        self.pipeline
            .set_state(state)
            .with_context(|| format!("setting the pipeline to {state:?}"))?;
        Ok(())
    }

    /// The sound tracks of the channel playing.
    pub fn audio_tracks(&self) -> Vec<Track> {
        self.sound.list()
    }

    /// Plays the channel's next sound track; its language is preferred from now on, on
    /// every channel that has it.
    pub fn next_audio_track(&self) -> Next {
        self.sound.next()
    }

    /// Forgets the viewer's sound and subtitle choices (logout); subtitles go off.
    pub fn forget_track_choices(&self) {
        self.sound.forget();
        self.subtitles.forget();
    }

    /// The subtitle tracks of the channel playing (`selected`: shown).
    pub fn subtitle_tracks(&self) -> Vec<Track> {
        self.subtitles.list()
    }

    /// Shows the channel's next subtitles (after the last: none); the language, or "off",
    /// holds from now on, on every channel.
    pub fn next_subtitles(&self) -> Next {
        self.subtitles.next()
    }

    /// Bytes waiting in the source's queue (pushed, not yet taken by the demuxer).
    pub fn queued_bytes(&self) -> u64 {
        self.appsrc.current_level_bytes()
    }

    /// Pushes decrypted MPEG-TS bytes.
    pub fn push(&self, ts: Vec<u8>) -> Result<(), gst::FlowError> {
        self.appsrc
            .push_buffer(gst::Buffer::from_mut_slice(ts))
            .map(|_| ())
    }
}

fn rgba_appsink(handler: FrameHandler) -> gst_app::AppSink {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGBA")
        .build();
    gst_app::AppSink::builder()
        .caps(&caps)
        .sync(true)
        .max_buffers(2)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let s = caps.structure(0).ok_or(gst::FlowError::NotNegotiated)?;
                    let width = s
                        .get::<i32>("width")
                        .map_err(|_| gst::FlowError::NotNegotiated)?
                        as u32;
                    let height = s
                        .get::<i32>("height")
                        .map_err(|_| gst::FlowError::NotNegotiated)?
                        as u32;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let stride = map.len() / height.max(1) as usize;
                    handler(Frame {
                        width,
                        height,
                        stride,
                        rgba: map.as_slice().to_vec(),
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
}

impl Drop for Player {
    fn drop(&mut self) {
        self.resetting(true);
        let _ = self.appsrc.end_of_stream();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
