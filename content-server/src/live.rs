//! Live channels: an MPEG-TS input (UDP unicast or multicast, RTP, SRT, or an HTTP pull) read
//! by GStreamer, split at random access points as it arrives (`ts::Splitter`), each segment
//! encrypted once and kept for the last [`LIVE_KEPT`] segments. While the input is lost (or
//! before it ever came) the channel airs the slate, encrypted like any segment, so boxes keep
//! playing and show "No signal"; the input is reopened until it comes back.
//!
//! Sequence numbers: a looped channel's come from the wall clock, but a live one's count
//! segments as they air. A segment's number is its AES-CTR IV under the channel's epoch key,
//! so no number may ever be used twice for a channel: they are handed out in blocks of
//! [`SEQUENCE_BLOCK`] by the database (`Store::reserve_live_sequences`, one atomic
//! statement), which holds across restarts, clock steps, inputs faster than real time and
//! instances ingesting the same input. A restart leaves the rest of its block unused.

use crate::routes::AppState;
use crate::ts::{InputStatus, Segment, Splitter};
use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use stb_protocol::SegmentCipher;
use stb_server_common::now_ms;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Segments kept per live channel (about a minute), for boxes a little behind and the edge.
pub const LIVE_KEPT: usize = 60;
/// GOPs shorter than this are merged into one segment.
pub const MIN_SEGMENT_MS: u64 = 500;
/// A GOP larger than this is dropped (an input flooding without keyframes cannot exhaust
/// memory): 16 MB is 8 s at 16 Mbit/s.
pub const MAX_SEGMENT_BYTES: usize = 16 << 20;
/// The most bytes of segments kept per live channel (fewer than [`LIVE_KEPT`] segments then).
pub const MAX_KEPT_BYTES: usize = 64 << 20;
/// Sequence numbers taken from the database at a time (about an hour of 1 s segments).
pub const SEQUENCE_BLOCK: u64 = 4096;
/// Where a live channel's numbers start: far above any looped channel's (those count
/// seconds since 1970), so a channel number moved from a file to an input cannot meet its
/// old numbers either.
pub const FIRST_SEQUENCE: u64 = 1 << 44;
/// A GOP longer than this is taken for a timestamp jump (a looped source, an encoder
/// restart): its duration is then the previous one's.
pub const MAX_GOP_MS: u64 = 10_000;
/// The shortest silence that counts as a lost input (`input_loss_ms` below is refused).
pub const MIN_INPUT_LOSS_MS: u64 = 200;
/// How long a bad input state must last before it is reported (the first GOP takes a while).
const REPORT_AFTER: Duration = Duration::from_secs(3);
/// Waits between attempts to reopen a failed input.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A live input, as written in the channel manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `udp://GROUP-OR-ADDRESS:PORT`: raw TS in datagrams (a multicast group is joined).
    Udp(String),
    /// `rtp://GROUP-OR-ADDRESS:PORT`: TS in RTP (RFC 2250), reordered by a jitter buffer.
    Rtp(String),
    /// `srt://HOST:PORT[?mode=listener|caller&...]`.
    Srt(String),
    /// `http(s)://...`: a TS stream pulled over HTTP.
    Http(String),
}

impl Input {
    /// Parses a manifest's `input`.
    pub fn parse(uri: &str) -> Result<Self> {
        let (scheme, rest) = uri
            .split_once("://")
            .with_context(|| format!("input {uri:?} is not a URI"))?;
        if rest.is_empty() {
            bail!("input {uri:?} names no address");
        }
        Ok(match scheme {
            "udp" => Input::Udp(uri.into()),
            "rtp" => Input::Rtp(uri.into()),
            "srt" => Input::Srt(uri.into()),
            "http" | "https" => Input::Http(uri.into()),
            _ => bail!("input {uri:?}: the scheme must be udp, rtp, srt, http or https"),
        })
    }

    /// The URI as configured.
    pub fn uri(&self) -> &str {
        match self {
            Input::Udp(u) | Input::Rtp(u) | Input::Srt(u) | Input::Http(u) => u,
        }
    }

    /// A GStreamer pipeline delivering the TS bytes to the returned appsink.
    fn pipeline(&self) -> Result<(gst::Pipeline, gst_app::AppSink)> {
        let make = |factory: &str| {
            gst::ElementFactory::make(factory).build().with_context(|| {
                format!("GStreamer element {factory} is missing (install its plugin package)")
            })
        };
        let sink = gst_app::AppSink::builder()
            .sync(false)
            // Bounded: a flood is dropped here rather than queued without end (the splitter
            // resynchronises on what follows).
            .max_buffers(2000)
            .drop(true)
            .build();
        let mut chain = Vec::new();
        match self {
            Input::Udp(uri) | Input::Rtp(uri) => {
                let udp_uri = uri.replacen("rtp://", "udp://", 1);
                let src = make("udpsrc")?;
                src.set_property("uri", udp_uri.as_str());
                src.set_property("buffer-size", 4i32 << 20);
                chain.push(src);
                if matches!(self, Input::Rtp(_)) {
                    let caps = gst::Caps::builder("application/x-rtp")
                        .field("media", "video")
                        .field("clock-rate", 90_000i32)
                        .field("encoding-name", "MP2T")
                        .build();
                    chain[0].set_property("caps", &caps);
                    let jitter = make("rtpjitterbuffer")?;
                    jitter.set_property("latency", 200u32);
                    chain.push(jitter);
                    chain.push(make("rtpmp2tdepay")?);
                }
            }
            Input::Srt(uri) => {
                let src = make("srtsrc")?;
                src.set_property("uri", uri.as_str());
                chain.push(src);
            }
            Input::Http(url) => {
                let src = make("souphttpsrc")?;
                src.set_property("location", url.as_str());
                src.set_property("is-live", true);
                chain.push(src);
            }
        }
        chain.push(sink.clone().upcast());
        let pipeline = gst::Pipeline::new();
        pipeline.add_many(&chain)?;
        gst::Element::link_many(&chain)?;
        Ok((pipeline, sink))
    }
}

/// A segment on air.
#[derive(Debug, Clone)]
pub struct Aired {
    /// Its sequence number.
    pub sequence: u64,
    /// When it was published, Unix ms (it is served from then on).
    pub start_ms: i64,
    /// Its duration, ms: the next one is due about then.
    pub duration_ms: u64,
    /// `header || ciphertext`, as served.
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
struct Ring {
    kept: VecDeque<Aired>,
    bytes: usize,
}

/// A live channel's last segments, encrypted once, and a signal when one is added.
#[derive(Debug)]
pub struct LiveFeed {
    /// Where it comes from.
    pub input: Input,
    slate: Arc<[Segment]>,
    ring: Mutex<Ring>,
    published: watch::Sender<u64>,
    /// The input's state as last reported.
    status: Mutex<InputStatus>,
}

impl LiveFeed {
    /// A feed with nothing aired yet.
    pub fn new(input: Input, slate: Arc<[Segment]>) -> Self {
        Self {
            input,
            slate,
            ring: Mutex::new(Ring::default()),
            published: watch::channel(0).0,
            status: Mutex::new(InputStatus::Waiting),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The input's state, as last reported to the operator.
    pub fn status(&self) -> InputStatus {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest segment, if any has aired.
    pub fn latest(&self) -> Option<Aired> {
        self.lock().kept.back().cloned()
    }

    /// Where a viewer joins: the segment before the newest (the newest if it is the only
    /// one). A live segment airs when it is complete, so the next one comes only when its
    /// first picture is due: starting a segment back gives the box a segment of margin, as a
    /// looped channel's segment on air does (it is whole from its first instant).
    pub fn join(&self) -> Option<Aired> {
        let ring = self.lock();
        ring.kept
            .len()
            .checked_sub(2)
            .and_then(|i| ring.kept.get(i))
            .or(ring.kept.back())
            .cloned()
    }

    /// Segment `sequence`, if it has aired and is still kept.
    pub fn get(&self, sequence: u64) -> Option<Aired> {
        let ring = self.lock();
        let first = ring.kept.front()?.sequence;
        ring.kept
            .get(usize::try_from(sequence.checked_sub(first)?).ok()?)
            .cloned()
    }

    /// Segment `sequence` once it airs; the newest one instead if `sequence` is no longer kept
    /// (a viewer that fell behind catches up). `None` if `stopping` fires first.
    pub async fn wait_for(
        &self,
        sequence: u64,
        stopping: &mut watch::Receiver<bool>,
    ) -> Option<Aired> {
        let mut published = self.published.subscribe();
        loop {
            {
                let ring = self.lock();
                let (first, last) = (ring.kept.front()?.sequence, ring.kept.back()?.sequence);
                if sequence < first {
                    return ring.kept.back().cloned();
                }
                if sequence <= last {
                    return ring.kept.get((sequence - first) as usize).cloned();
                }
            }
            tokio::select! {
                changed = published.changed() => changed.ok()?,
                _ = stopping.changed() => return None,
            }
        }
    }

    /// Airs `segment` as `sequence`, encrypted under the current epoch's key of `channel`
    /// (outside the lock: viewers are not held up by a large GOP's encryption).
    fn publish(
        &self,
        state: &AppState,
        channel: u16,
        sequence: u64,
        segment: &Segment,
    ) -> Result<()> {
        let now = now_ms();
        let epoch = state.config.epoch_of(now);
        let cipher = SegmentCipher::new(&state.keys.channel_key(channel, epoch))?;
        let bytes =
            Bytes::from(cipher.encrypt_segment(channel, epoch, sequence, segment.data.clone())?);
        let mut ring = self.lock();
        ring.bytes += bytes.len();
        ring.kept.push_back(Aired {
            sequence,
            start_ms: now,
            duration_ms: segment.duration_ms,
            bytes,
        });
        while ring.kept.len() > LIVE_KEPT || (ring.bytes > MAX_KEPT_BYTES && ring.kept.len() > 2) {
            if let Some(old) = ring.kept.pop_front() {
                ring.bytes -= old.bytes.len();
            }
        }
        drop(ring);
        self.published.send_replace(sequence);
        Ok(())
    }
}

/// Starts reading every live channel's input, each on its own thread (GStreamer's streaming
/// threads do the network work; this one splits, encrypts, and airs the slate when needed).
/// Each channel's slate is on air when this returns.
pub async fn start(state: &Arc<AppState>) -> Result<Vec<std::thread::JoinHandle<()>>> {
    let live: Vec<u16> = state
        .catalogue
        .channels
        .values()
        .filter(|c| c.looped().is_none())
        .map(|c| c.number)
        .collect();
    if live.is_empty() {
        return Ok(Vec::new());
    }
    if state.config.input_loss_ms < MIN_INPUT_LOSS_MS {
        bail!("input_loss_ms must be at least {MIN_INPUT_LOSS_MS}");
    }
    gst::init().context("live inputs need GStreamer")?;
    let mut threads = Vec::with_capacity(live.len());
    for number in live {
        let first = state
            .store
            .reserve_live_sequences(number, SEQUENCE_BLOCK, FIRST_SEQUENCE)
            .await
            .with_context(|| format!("sequence numbers for live channel {number}"))?;
        let crate::catalogue::Source::Live(feed) = &state.catalogue.channels[&number].source else {
            continue;
        };
        let mut ingest = Ingest::new(state.clone(), number, feed.clone(), first);
        // Boxes tuning in before the input's first GOP (or while it never comes) see it.
        ingest.watch_signal();
        threads.push(
            std::thread::Builder::new()
                .name(format!("live-{number}"))
                .spawn(move || ingest.run())
                .context("starting a live input thread")?,
        );
    }
    Ok(threads)
}

/// One live channel's reader.
struct Ingest {
    state: Arc<AppState>,
    number: u16,
    feed: Arc<LiveFeed>,
    /// The database's handle for the next block of sequence numbers.
    runtime: tokio::runtime::Handle,
    /// Sequence numbers of the block in hand: `next..end`.
    next: u64,
    end: u64,
    splitter: Splitter,
    /// The input's pipeline while it is open.
    open: Option<(gst::Pipeline, gst_app::AppSink)>,
    retry_at: Instant,
    retry_wait: Duration,
    last_data: Option<Instant>,
    /// When the input's last segment aired (or the reader started).
    last_segment: Instant,
    /// `Some(next due, index)` while the slate airs.
    slate_due: Option<(Instant, usize)>,
    /// The input's state, since when, and what the operator was last told.
    status: (InputStatus, Instant),
    reported: Option<InputStatus>,
}

impl Ingest {
    fn new(state: Arc<AppState>, number: u16, feed: Arc<LiveFeed>, first: u64) -> Self {
        let now = Instant::now();
        Self {
            state,
            number,
            feed,
            runtime: tokio::runtime::Handle::current(),
            next: first,
            end: first + SEQUENCE_BLOCK,
            splitter: Splitter::new(MIN_SEGMENT_MS, MAX_GOP_MS, MAX_SEGMENT_BYTES),
            open: None,
            retry_at: now,
            retry_wait: RETRY_MIN,
            last_data: None,
            last_segment: now,
            slate_due: Some((now, 0)),
            status: (InputStatus::Waiting, now),
            reported: None,
        }
    }

    fn run(mut self) {
        let input = self.feed.input.uri().to_owned();
        tracing::info!(channel = self.number, input = %input, "reading live input");
        let stopping = self.state.stopping();
        // Stops when told, or when the server that started it is gone.
        while !*stopping.borrow() && stopping.has_changed().is_ok() {
            self.step(&input);
        }
        self.close();
    }

    /// Waits for input for at most 100 ms, airs what it completes, and keeps the slate and
    /// the input's pipeline going.
    fn step(&mut self, input: &str) {
        let now = Instant::now();
        if self.open.is_none() && now >= self.retry_at {
            match self.feed.input.pipeline() {
                Ok((pipeline, sink)) => match pipeline.set_state(gst::State::Playing) {
                    Ok(_) => self.open = Some((pipeline, sink)),
                    Err(e) => {
                        let _ = pipeline.set_state(gst::State::Null);
                        tracing::error!(channel = self.number, input, error = %e, "could not open the live input");
                        self.retry_later();
                    }
                },
                Err(e) => {
                    tracing::error!(
                        channel = self.number,
                        input,
                        error = format!("{e:#}"),
                        "live input failed"
                    );
                    self.retry_later();
                }
            }
        }
        let (mut failed, mut segments) = (None, Vec::new());
        if let Some((pipeline, sink)) = &self.open {
            let sample = sink.try_pull_sample(gst::ClockTime::from_mseconds(100));
            if let Some(map) = sample
                .as_ref()
                .and_then(|s| s.buffer())
                .and_then(|b| b.map_readable().ok())
            {
                segments = self.splitter.push(map.as_slice());
                (self.last_data, self.retry_wait) = (Some(Instant::now()), RETRY_MIN);
            }
            if let Some(msg) = pipeline
                .bus()
                .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]))
            {
                failed = Some(match msg.view() {
                    gst::MessageView::Error(e) => e.error().to_string(),
                    _ => "the input ended".to_owned(),
                });
            }
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
        for segment in segments {
            if self.slate_due.take().is_some() {
                tracing::info!(channel = self.number, "live input on air");
            }
            self.last_segment = Instant::now();
            self.air(&segment);
        }
        if let Some(why) = failed {
            tracing::warn!(
                channel = self.number,
                input,
                why,
                "live input stopped; reopening"
            );
            self.close();
            self.retry_later();
        }
        self.watch_signal();
        self.report();
    }

    /// The input is lost when nothing came for `input_loss_ms`, or when what comes gives no
    /// segment for five times that (at least [`MAX_GOP_MS`]: garbage, no keyframe): what was
    /// received of a GOP airs if the input went silent, then the slate until the input's next
    /// whole GOP.
    fn watch_signal(&mut self) {
        let now = Instant::now();
        let loss = Duration::from_millis(self.state.config.input_loss_ms);
        let stall = (loss * 5).max(Duration::from_millis(MAX_GOP_MS));
        if self.slate_due.is_none() {
            if self.last_data.is_none_or(|t| now - t >= loss) {
                tracing::warn!(channel = self.number, "live input lost: airing the slate");
                if let Some(partial) = self.splitter.flush() {
                    self.air(&partial);
                }
                self.splitter.reset();
                self.slate_due = Some((now, 0));
            } else if now - self.last_segment >= stall {
                tracing::warn!(
                    channel = self.number,
                    secs = stall.as_secs(),
                    problem = self.splitter.status().describe(),
                    "live input gives no segment: airing the slate"
                );
                self.splitter.reset();
                self.slate_due = Some((now, 0));
            }
        }
        if let Some((due, index)) = self.slate_due
            && now >= due
        {
            let slate = self.feed.slate.clone();
            let segment = &slate[index % slate.len()];
            self.air(segment);
            // On time, or from now if this thread was held up (never a burst to catch up).
            let step = Duration::from_millis(segment.duration_ms);
            self.slate_due = Some(((due + step).max(now), index + 1));
        }
    }

    /// Airs a segment under the next sequence number (a new block from the database when
    /// this one is used up; if the database does not answer, the segment is not aired).
    fn air(&mut self, segment: &Segment) {
        if self.next == self.end {
            let reserved = self
                .runtime
                .block_on(self.state.store.reserve_live_sequences(
                    self.number,
                    SEQUENCE_BLOCK,
                    FIRST_SEQUENCE,
                ));
            match reserved {
                Ok(first) => (self.next, self.end) = (first, first + SEQUENCE_BLOCK),
                Err(e) => {
                    tracing::error!(channel = self.number, error = %e, "no sequence numbers: segment not aired");
                    return;
                }
            }
        }
        let sequence = self.next;
        self.next += 1;
        if let Err(e) = self
            .feed
            .publish(&self.state, self.number, sequence, segment)
        {
            tracing::error!(channel = self.number, error = %e, "could not encrypt a live segment");
        }
    }

    /// Tells the operator when the input goes bad for longer than [`REPORT_AFTER`], and when
    /// it is good again.
    fn report(&mut self) {
        let now = Instant::now();
        let status = self.splitter.status();
        if status != self.status.0 {
            self.status = (status, now);
        }
        if self.reported == Some(status)
            || (status != InputStatus::Ok && now - self.status.1 < REPORT_AFTER)
        {
            return;
        }
        if status == InputStatus::Ok {
            tracing::info!(channel = self.number, "live input ok");
        } else {
            tracing::warn!(
                channel = self.number,
                problem = status.describe(),
                "live input unusable"
            );
        }
        self.reported = Some(status);
        *self.feed.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }

    fn retry_later(&mut self) {
        self.retry_at = Instant::now() + self.retry_wait;
        self.retry_wait = (self.retry_wait * 2).min(RETRY_MAX);
    }

    /// Closes the input; what it sends next is a new stream (a reconnection must not splice
    /// the old connection's partial packet or GOP onto it).
    fn close(&mut self) {
        if let Some((pipeline, _)) = self.open.take() {
            let _ = pipeline.set_state(gst::State::Null);
        }
        self.splitter.reset();
    }
}
