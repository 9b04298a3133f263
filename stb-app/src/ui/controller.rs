//! The adapter between the model and the world: it carries out the model's effects (login,
//! registration and zaps on the tokio runtime, results posted back to the UI thread; Slint
//! timers), moves decoded frames into the window, follows the feeder's state as it changes
//! and feeds every key back into the model. It lives on the UI thread and never blocks it.

use super::AppWindow;
use super::model::{Effect, LoggedIn, Model, Timer, TrackKind};
use super::view::{WindowKey, render, window_key};
use crate::config::BoxConfig;
use crate::feed::FeedState;
use crate::frame::Frame;
use crate::keyserver_client::{KeyServer, LoginError};
use crate::player::{FrameHandler, Player};
use crate::session::{Session, login};
use crate::sync::lock;
use slint::{ComponentHandle, Image, Rgba8Pixel, SharedPixelBuffer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bounds on the wait between two polls of now/next: the server's `max-age` says until the
/// next programme change; not more often than this even when programmes are short...
const GUIDE_POLL_MIN: Duration = Duration::from_secs(5);
/// ...and at least this often, so a new guide file reaches the screen.
const GUIDE_POLL_MAX: Duration = Duration::from_secs(300);
/// Wait after a failed poll.
const GUIDE_RETRY: Duration = Duration::from_secs(30);

/// How long a logout waits for the recording under way to be saved before it wipes the
/// session's keys anyway.
const RECORDING_SAVE: Duration = Duration::from_secs(15);

/// How often the clock on screen is refreshed.
const CLOCK: Duration = Duration::from_millis(500);

/// The latest decoded frame, waiting for the UI thread. Only one is ever queued: a slow
/// screen drops frames instead of falling behind the sound.
#[derive(Default)]
pub struct FrameSlot {
    frame: Mutex<Option<Frame>>,
    scheduled: AtomicBool,
    /// Set from a zap's start to its flush: frames of the old channel still on their way
    /// are dropped, so the screen stays black.
    holding: AtomicBool,
    zapped_at: Mutex<Option<std::time::Instant>>,
    /// Pictures put on screen since the zap, and when the current window of 125 began
    /// (debug log of the rate: a smooth channel shows 25/s).
    shown: Mutex<(u64, Option<std::time::Instant>)>,
}

impl FrameSlot {
    fn take(&self) -> Option<Frame> {
        lock(&self.frame).take()
    }

    /// A zap or logout began: drops the waiting frame and every frame until [`Self::flushed`].
    fn hold(&self) {
        self.holding.store(true, Ordering::Release);
        self.take();
    }

    /// After a flush: drops the waiting frame, shows frames again; the next picture is timed
    /// from `since`.
    fn flushed(&self, since: Option<std::time::Instant>) {
        self.take();
        self.holding.store(false, Ordering::Release);
        // The picture rate is counted per channel: a window never spans a zap.
        *lock(&self.shown) = (0, None);
        *lock(&self.zapped_at) = since;
    }

    /// The picture is on screen: logs how long it took since the zap, once per zap.
    fn shown(&self) {
        if let Some(at) = lock(&self.zapped_at).take() {
            let ms = at.elapsed().as_millis() as u64;
            tracing::info!(ms, "zap: first picture on screen");
        }
        let mut shown = lock(&self.shown);
        shown.0 += 1;
        let since = *shown.1.get_or_insert_with(std::time::Instant::now);
        if shown.0.is_multiple_of(125) {
            let fps = 125.0 / since.elapsed().as_secs_f64();
            tracing::debug!(fps, total = shown.0, "pictures on screen");
            shown.1 = Some(std::time::Instant::now());
        }
    }

    /// A frame handler for [`Player::with_frames`] that shows the frames in `ui`.
    pub fn handler(self: &Arc<Self>, ui: slint::Weak<AppWindow>) -> FrameHandler {
        let slot = self.clone();
        Arc::new(move |frame: Frame| {
            if slot.holding.load(Ordering::Acquire) {
                return;
            }
            *lock(&slot.frame) = Some(frame);
            if !slot.scheduled.swap(true, Ordering::AcqRel) {
                let slot = slot.clone();
                // Without an event loop (the window closed) the frame is simply not shown.
                let _ = ui.upgrade_in_event_loop(move |ui| {
                    slot.scheduled.store(false, Ordering::Release);
                    if let Some(frame) = slot.take() {
                        ui.set_video(to_image(&frame));
                        slot.shown();
                    }
                });
            }
        })
    }
}

/// RGBA rows (with the decoder's stride) into a Slint image.
pub fn to_image(frame: &Frame) -> Image {
    let mut buffer = SharedPixelBuffer::<Rgba8Pixel>::new(frame.width, frame.height);
    let row = frame.width as usize * 4;
    for (dst, src) in buffer
        .make_mut_bytes()
        .chunks_exact_mut(row)
        .zip(frame.rows())
    {
        dst[..src.len()].copy_from_slice(src);
    }
    Image::from_rgba8(buffer)
}

/// Everything the UI thread holds.
pub struct Controller {
    model: Model,
    ui: slint::Weak<AppWindow>,
    config: BoxConfig,
    /// Made at the first login and kept: its TLS session cache lets later logins resume.
    keyserver: Option<KeyServer>,
    rt: tokio::runtime::Handle,
    player: Arc<Player>,
    frames: Arc<FrameSlot>,
    session: Option<Arc<Session>>,
    /// The zap in flight or the feeder of the channel playing (on the runtime).
    feeder: Option<tokio::task::JoinHandle<()>>,
    /// Follows `/v1/guide/now` for the list and the banner while a channel can be watched
    /// (not in standby). Holds the session: a logout awaits its end before wiping it.
    guide: Option<tokio::task::JoinHandle<()>>,
    /// Guide grid requests in flight (they hold the session too; a logout aborts them).
    guide_fetches: Vec<tokio::task::AbortHandle>,
    /// Favourites being stored and "About this box" checks: they hold the session, so a
    /// logout aborts them and waits for their end before the session's keys are wiped.
    side_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Standby's stop and flush: the next play waits for it, so a quick POWER POWER cannot
    /// flush the pipeline under the resumed channel.
    stopping: Option<tokio::task::JoinHandle<()>>,
    /// Counts zaps: a state change of an earlier channel's feeder is not shown.
    zaps: u64,
    /// The recording under way: what stops it, and its task (it holds the session: a logout
    /// stops it and waits, a while, for it to be saved before the keys are wiped).
    recording: Option<(
        u64,
        Option<tokio::sync::oneshot::Sender<()>>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The recording playing: its controls (the feeder slot holds its task).
    playback: Option<tokio::sync::mpsc::UnboundedSender<crate::playback::Control>>,
    /// Counts pictures asked for: one that arrives after the next was asked is not shown.
    pictures: u64,
    /// Counts recordings: the result of an earlier one (another session's) is not shown.
    recordings: u64,
    /// Counts reads of the locker's list: an answer overtaken by a newer read, a deletion or
    /// a logout is not shown.
    lists: u64,
    /// The logout under way (the window closing waits for it: a recording is saved).
    logging_out: Option<tokio::task::JoinHandle<()>>,
    /// The login or registration running, and its number: a result of earlier (cancelled)
    /// work is dropped unseen.
    work: Option<tokio::task::AbortHandle>,
    works: u64,
    timers: HashMap<Timer, slint::Timer>,
    clock: slint::Timer,
    me: std::rc::Weak<RefCell<Controller>>,
}

/// A shared handle to the controller (UI thread only).
pub type Shared = Rc<RefCell<Controller>>;

impl Controller {
    /// Wires `ui` to a new controller: window keys, the frame path, the clock.
    pub fn attach(
        ui: &AppWindow,
        config: BoxConfig,
        rt: tokio::runtime::Handle,
        player: Arc<Player>,
        frames: Arc<FrameSlot>,
    ) -> Shared {
        let rules = config.session_rules();
        let this = Rc::new_cyclic(|me| {
            RefCell::new(Self {
                model: Model::new(rules),
                ui: ui.as_weak(),
                config,
                keyserver: None,
                rt,
                player,
                frames,
                session: None,
                feeder: None,
                guide: None,
                guide_fetches: Vec::new(),
                side_tasks: Vec::new(),
                stopping: None,
                zaps: 0,
                recording: None,
                playback: None,
                pictures: 0,
                recordings: 0,
                lists: 0,
                logging_out: None,
                work: None,
                works: 0,
                timers: HashMap::new(),
                clock: slint::Timer::default(),
                me: me.clone(),
            })
        });
        let weak = Rc::downgrade(&this);
        ui.on_key(move |text| {
            let Some(this) = weak.upgrade() else { return };
            let wants_text = this.borrow().model.wants_text();
            match window_key(&text, wants_text) {
                Some(WindowKey::Action(a)) => dispatch(&this, |m| m.action(a)),
                Some(WindowKey::Char(c)) => dispatch(&this, |m| m.typed(c)),
                Some(WindowKey::Done) => dispatch(&this, Model::done),
                None => {}
            }
        });
        let weak = ui.as_weak();
        this.borrow()
            .clock
            .start(slint::TimerMode::Repeated, CLOCK, move || {
                if let Some(ui) = weak.upgrade() {
                    ui.set_clock(super::view::clock().into());
                }
            });
        render(&this.borrow().model, ui);
        this
    }

    fn keyserver(&mut self) -> Result<KeyServer, LoginError> {
        if let Some(keyserver) = &self.keyserver {
            return Ok(keyserver.clone());
        }
        let keyserver = KeyServer::for_login(&self.config)?;
        self.keyserver = Some(keyserver.clone());
        Ok(keyserver)
    }

    /// The model, for tests and screenshots.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What the player decoded since the last zap (tests).
    pub fn player_stats(&self) -> crate::player::StatsSnapshot {
        self.player.stats().snapshot()
    }

    fn execute(&mut self, effect: Effect) {
        match effect {
            Effect::Login {
                identifier,
                password,
            } => {
                let keyserver = self.keyserver();
                let task = self
                    .rt
                    .spawn(async move { login(&keyserver?, &identifier, password).await });
                self.spawn_work(task, |this, result| {
                    let result = result.unwrap_or(Err(LoginError::Interrupted));
                    let view = result.map(|session| {
                        let session = Arc::new(session);
                        let view = LoggedIn {
                            account: session.channels.account.clone(),
                            package: session.channels.package.clone(),
                            channels: session.channels.channels.clone(),
                            favourites: session.channels.favourites.clone(),
                            parental_age: session.channels.parental_age,
                            parental_pin: session.channels.parental_pin,
                        };
                        let mut c = this.borrow_mut();
                        c.session = Some(session.clone());
                        c.follow_guide();
                        // Objects a box left unnamed (stopped between upload and index).
                        c.side_task(async move {
                            if let Ok(locker) = session.locker()
                                && let Err(e) = locker.tidy().await
                            {
                                tracing::debug!(error = %e, "locker tidy-up");
                            }
                        });
                        view
                    });
                    dispatch(this, |m| m.login_done(view));
                });
            }
            Effect::Register {
                code,
                identifier,
                password,
                confirmation,
            } => {
                let config = self.config.clone();
                let task = self.rt.spawn(async move {
                    crate::register::enroll_and_register(
                        &config,
                        &code,
                        &identifier,
                        password,
                        confirmation,
                    )
                    .await
                });
                self.spawn_work(task, |this, result| {
                    // A task that did not finish (runtime shutting down) made no keys.
                    let result = result.unwrap_or_else(|e| {
                        Err(crate::register::RegisterError::Keys(e.to_string()))
                    });
                    dispatch(this, |m| m.register_done(result));
                });
            }
            Effect::CancelWork => {
                // The task stops at its next await; Argon2id already running on a blocking
                // thread finishes there and its output is dropped (wiped) unseen.
                if let Some(work) = self.work.take() {
                    work.abort();
                }
                self.works += 1;
            }
            Effect::Play(number) => self.play(number),
            Effect::About(id) => {
                let Some(session) = self.session.clone() else {
                    return;
                };
                let keyserver = self.keyserver.clone();
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.side_task(async move {
                    let keyserver = async {
                        match keyserver {
                            Some(k) => k.health().await,
                            None => Err("not asked yet".into()),
                        }
                    };
                    // The address needs the host resolved: off the async threads, and
                    // without the session.
                    let url = session.content_url().to_owned();
                    let address =
                        tokio::task::spawn_blocking(move || crate::session::local_address(&url));
                    let (keyserver, content, address) =
                        tokio::join!(keyserver, session.content_health(), address);
                    let _ = tx.send(crate::ui::model::About {
                        version: env!("CARGO_PKG_VERSION").into(),
                        serial: session.certificate_serial(),
                        address: address.unwrap_or_else(|_| "unknown".into()),
                        keyserver,
                        content,
                    });
                });
                let me = self.me.clone();
                self.spawn_local(async move {
                    if let Ok(about) = rx.await
                        && let Some(this) = me.upgrade()
                    {
                        dispatch(&this, |m| m.about_done(id, about));
                    }
                });
            }
            Effect::SaveFavourites(channels) => {
                let Some(session) = self.session.clone() else {
                    return;
                };
                // The list on screen is already changed; a failure leaves it so for this
                // session, and the next change stores the whole list again.
                let version = session.next_favourites_version();
                self.side_task(async move {
                    if let Err(e) = session.save_favourites(version, &channels).await {
                        tracing::warn!(error = format!("{e:#}"), "favourites not stored");
                    }
                });
            }
            Effect::FetchGuide {
                channels,
                from_ms,
                to_ms,
            } => {
                let Some(session) = self.session.clone() else {
                    return;
                };
                let asked = channels.clone();
                let task = self.rt.spawn(async move {
                    let guide = session.guide(&channels, from_ms, to_ms).await;
                    guide.map_err(|e| format!("{e:#}"))
                });
                self.guide_fetches.retain(|t| !t.is_finished());
                self.guide_fetches.push(task.abort_handle());
                self.answer(task, move |m, result| {
                    let result = result.unwrap_or_else(|e| Err(e.to_string()));
                    m.guide_done(&asked, (from_ms, to_ms), result)
                });
            }
            Effect::Record(order) => self.record(order),
            Effect::StopRecording => {
                if let Some(stop) = self.recording.as_mut().and_then(|(_, stop, _)| stop.take()) {
                    let _ = stop.send(());
                }
            }
            Effect::PauseLive(paused) | Effect::PausePlayback(paused) => {
                if let Some(controls) = &self.playback {
                    let _ = controls.send(crate::playback::Control::Pause(paused));
                } else {
                    // Recorded here, in the order of the keys; applied on a blocking thread.
                    self.player.set_paused(paused);
                    let player = self.player.clone();
                    self.rt.spawn_blocking(move || {
                        if let Err(e) = player.apply_pause() {
                            tracing::warn!(error = format!("{e:#}"), "pause");
                        }
                    });
                }
            }
            Effect::NextTrack(kind) => {
                let player = self.player.clone();
                let task = self.rt.spawn_blocking(move || match kind {
                    TrackKind::Sound => player.next_audio_track(),
                    TrackKind::Subtitles => player.next_subtitles(),
                });
                self.answer(task, move |m, next| {
                    m.track_done(kind, next.unwrap_or(crate::tracks::Next::NoTracks))
                });
            }
            Effect::Seek(ms) => {
                if let Some(controls) = &self.playback {
                    let _ = controls.send(crate::playback::Control::Seek(ms));
                }
            }
            Effect::ListRecordings => self.list_recordings(),
            Effect::ShowPicture(entry) => self.show_picture(entry),
            Effect::HidePicture => {
                self.pictures += 1;
                if let Some(ui) = self.ui.upgrade() {
                    ui.set_picture(Image::default());
                }
            }
            Effect::PlayRecording(entry) => self.play_recording(entry),
            Effect::StopPlayback => {
                self.playback = None;
                let stopped = self.stop_playing();
                self.stopping = Some(self.rt.spawn(stopped));
            }
            Effect::DeleteRecording(name) => {
                self.lists += 1;
                let Some(session) = self.session.clone() else {
                    return;
                };
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.side_task(async move {
                    let result = match session.locker() {
                        Ok(locker) => locker.remove(&name).await,
                        Err(e) => Err(e),
                    };
                    let _ = tx.send(result.map_err(|e| e.to_string()));
                });
                let me = self.me.clone();
                self.spawn_local(async move {
                    if let Ok(Err(why)) = rx.await
                        && let Some(this) = me.upgrade()
                    {
                        dispatch(&this, |m| m.delete_failed(why));
                    }
                });
            }
            Effect::Logout => {
                self.playback = None;
                self.lists += 1;
                // A recording is stopped and saved first (it holds the session).
                let recording = self.recording.take().map(|(_, stop, task)| {
                    if let Some(stop) = stop {
                        let _ = stop.send(());
                    }
                    task
                });
                let stopped = self.stop_playing();
                // The next subscriber starts with the channels' own sound and no subtitles.
                self.player.forget_track_choices();
                // Nothing of the subscriber's pictures stays in the window.
                self.pictures += 1;
                if let Some(ui) = self.ui.upgrade() {
                    ui.set_picture(Image::default());
                }
                let guide = self.guide.take();
                for fetch in self.guide_fetches.drain(..) {
                    fetch.abort();
                }
                let side_tasks: Vec<_> = self.side_tasks.drain(..).collect();
                for task in &side_tasks {
                    task.abort();
                }
                let session = self.session.take();
                self.logging_out = Some(self.rt.spawn(async move {
                    // Picture and sound stop at once; the recording is then saved (it gives
                    // up after RECORDING_SAVE) before the keys go.
                    stopped.await;
                    if let Some(task) = recording {
                        let _ = task.await;
                    }
                    stop(guide).await;
                    // Aborted and awaited: their hold on the session is gone once they end.
                    for task in side_tasks {
                        let _ = task.await;
                    }
                    // The feeder held the only other reference: D, KS, KR, KL and the
                    // channel keys are wiped as this one drops. An aborted task lets go of
                    // it when the runtime drops its future: wait for that a little.
                    let mut session = session;
                    for _ in 0..40 {
                        match session.map(Arc::try_unwrap) {
                            Some(Ok(session)) => return session.logout(),
                            Some(Err(still_held)) => session = Some(still_held),
                            None => return,
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    tracing::error!("a task still holds the session after logout");
                }));
            }
            Effect::StopPlaying => {
                let stopped = self.stop_playing();
                self.stopping = Some(self.rt.spawn(stopped));
                // Locked: the guide must go on (after standby it was stopped), as it is what
                // may lift the lock.
                self.follow_guide();
            }
            Effect::CheckParentalPin(id, pin) => {
                let Some(session) = self.session.clone() else {
                    return;
                };
                let task = self
                    .rt
                    .spawn(async move { session.check_parental_pin(pin.expose()).await });
                self.answer(task, move |m, result| {
                    m.parental_pin_checked(id, result.unwrap_or_else(|e| Err(e.to_string().into())))
                });
            }
            Effect::SetParental { id, pin, max_age } => {
                let Some(session) = self.session.clone() else {
                    return;
                };
                let task = self
                    .rt
                    .spawn(async move { session.set_parental(pin.expose(), max_age).await });
                self.answer(task, move |m, result| {
                    m.parental_set(id, result.unwrap_or_else(|e| Err(e.to_string().into())))
                });
            }
            Effect::Standby => {
                if let Some(guide) = self.guide.take() {
                    guide.abort();
                }
                let stopped = self.stop_playing();
                self.stopping = Some(self.rt.spawn(stopped));
            }
            Effect::Volume { level, muted } => {
                self.player.set_volume(f64::from(level) / 100.0, muted);
            }
            Effect::Arm(timer, after) => {
                let me = self.me.clone();
                self.timers.entry(timer).or_default().start(
                    slint::TimerMode::SingleShot,
                    after,
                    move || {
                        if let Some(this) = me.upgrade() {
                            dispatch(&this, |m| m.timer(timer));
                        }
                    },
                );
            }
            Effect::Cancel(timer) => {
                if let Some(t) = self.timers.get(&timer) {
                    t.stop();
                }
            }
        }
    }

    /// Follows a login or registration spawned on the runtime: numbers it, and when it ends
    /// hands its result to `done` on the UI thread, unless it was cancelled meanwhile (then
    /// the result, a session included, drops unseen and its keys are wiped).
    fn spawn_work<T: Send + 'static>(
        &mut self,
        task: tokio::task::JoinHandle<T>,
        done: impl FnOnce(&Shared, Result<T, tokio::task::JoinError>) + 'static,
    ) {
        self.works += 1;
        self.work = Some(task.abort_handle());
        let (me, work) = (self.me.clone(), self.works);
        self.spawn_local(async move {
            let result = task.await;
            let Some(this) = me.upgrade() else { return };
            {
                let mut c = this.borrow_mut();
                if c.works != work {
                    return;
                }
                c.work = None;
            }
            done(&this, result);
        });
    }

    /// When `task` (on the runtime) ends, its result goes to the model on the UI thread.
    fn answer<T: Send + 'static>(
        &self,
        task: tokio::task::JoinHandle<T>,
        to_model: impl FnOnce(&mut Model, Result<T, tokio::task::JoinError>) -> Vec<Effect> + 'static,
    ) {
        let me = self.me.clone();
        self.spawn_local(async move {
            let result = task.await;
            if let Some(this) = me.upgrade() {
                dispatch(&this, |m| to_model(m, result));
            }
        });
    }

    /// Runs session work on the runtime, remembered for the logout.
    fn side_task(&mut self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.side_tasks.retain(|t| !t.is_finished());
        self.side_tasks.push(self.rt.spawn(fut));
    }

    fn spawn_local(&self, fut: impl std::future::Future<Output = ()> + 'static) {
        if let Err(e) = slint::spawn_local(fut) {
            tracing::error!(error = %e, "no event loop for background work");
        }
    }

    /// Black at once; the returned future stops the feeder (the stream is closed) and
    /// flushes the pipeline (no picture, no sound). Runs on the runtime.
    fn stop_playing(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.zaps += 1;
        // A zap, standby or a recording played ends live TV's pause.
        self.player.set_paused(false);
        self.clear_picture();
        let feeder = self.feeder.take();
        let player = self.player.clone();
        // A stop still under way is awaited first: the next zap awaits only the newest.
        let earlier = self.stopping.take();
        async move {
            if let Some(earlier) = earlier {
                let _ = earlier.await;
            }
            stop(feeder).await;
            if let Err(e) = flush(player).await {
                tracing::warn!(error = %e, "flushing the player");
            }
        }
    }

    /// Black at once, and no frame shown until the flush that follows is done.
    fn clear_picture(&self) {
        self.frames.hold();
        if let Some(ui) = self.ui.upgrade() {
            ui.set_video(Image::default());
        }
    }

    /// Polls what is on now and next as long as the server says the answer holds, and
    /// hands each answer to the model on the UI thread. Starts once per session (again after
    /// standby); a failed poll is retried in 30 s, the box plays on regardless.
    fn follow_guide(&mut self) {
        if self.guide.as_ref().is_some_and(|g| !g.is_finished()) {
            return;
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.guide = Some(self.rt.spawn(async move {
            loop {
                let wait = match session.on_air().await {
                    Ok((on_air, fresh)) => {
                        if tx.send(on_air).is_err() {
                            return;
                        }
                        fresh.clamp(GUIDE_POLL_MIN, GUIDE_POLL_MAX)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "now/next not fetched");
                        GUIDE_RETRY
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }));
        let me = self.me.clone();
        self.spawn_local(async move {
            // Ends when the poller ends or is aborted (its sender drops).
            while let Some(on_air) = rx.recv().await {
                let Some(this) = me.upgrade() else { return };
                dispatch(&this, |m| m.on_air(on_air));
            }
        });
    }

    /// A zap ([`Controller::replace_feeder`]) to channel `number`; its feeder's state
    /// changes come back to the UI thread as they happen.
    fn play(&mut self, number: u16) {
        self.playback = None;
        self.follow_guide();
        let (state, mut changes) = tokio::sync::watch::channel(FeedState::Starting);
        let session = self.session.clone();
        let zap = self.replace_feeder(move |player| async move {
            if let Some(session) = session {
                crate::feed::feed(session, player, number, state).await;
            }
        });
        let me = self.me.clone();
        self.spawn_local(async move {
            // Ends when the feeder ends or is aborted (its sender drops).
            while changes.changed().await.is_ok() {
                let state = changes.borrow_and_update().clone();
                let Some(this) = me.upgrade() else { return };
                if this.borrow().zaps != zap {
                    return;
                }
                if state != FeedState::Starting {
                    dispatch(&this, |m| m.feed(state));
                }
            }
        });
    }

    /// Puts `run` in the feeder's place (a channel, a recording): black at once; on the
    /// runtime the old feeder stops (awaited, so none of its data reaches the new one), the
    /// pipeline flushes on a blocking thread, then `run` feeds the player. Returns the zap's
    /// number.
    fn replace_feeder<F>(&mut self, run: impl FnOnce(Arc<Player>) -> F + Send + 'static) -> u64
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let started = std::time::Instant::now();
        self.zaps += 1;
        // A zap, standby or a recording played ends live TV's pause.
        self.player.set_paused(false);
        self.clear_picture();
        let old = self.feeder.take();
        let stopping = self.stopping.take();
        let (player, frames, ui) = (self.player.clone(), self.frames.clone(), self.ui.clone());
        self.feeder = Some(self.rt.spawn(async move {
            if let Some(stopping) = stopping {
                let _ = stopping.await;
            }
            stop(old).await;
            if let Err(e) = flush(player.clone()).await {
                player.stats().error(format!("zap: {e}"));
            }
            // After the flush no frame of the old feeder can arrive; one shown meanwhile
            // is cleared (this runs before any frame of the new one is posted).
            frames.flushed(Some(started));
            let _ = ui.upgrade_in_event_loop(|ui| ui.set_video(Image::default()));
            run(player).await;
        }));
        self.zaps
    }
}

impl Controller {
    /// Starts recording; the model hears when it started and when it was saved.
    fn record(&mut self, order: crate::recorder::Order) {
        let me = self.me.clone();
        let Some(session) = self.session.clone() else {
            return;
        };
        let started = {
            let _runtime = self.rt.enter();
            crate::recorder::Recorder::start(session, order)
        };
        let recorder = match started {
            Ok(recorder) => recorder,
            Err(e) => {
                let why = e.to_string();
                self.spawn_local(async move {
                    if let Some(this) = me.upgrade() {
                        dispatch(&this, |m| m.recording_started(Err(why)));
                    }
                });
                return;
            }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (done, saved) = tokio::sync::oneshot::channel();
        let task = self.rt.spawn(async move {
            let result = recorder.until_stopped(stopped, RECORDING_SAVE).await;
            let _ = done.send(result.map_err(|e| e.to_string()));
        });
        self.recordings += 1;
        let id = self.recordings;
        self.recording = Some((id, Some(stop), task));
        self.spawn_local(async move {
            if let Some(this) = me.upgrade() {
                dispatch(&this, |m| m.recording_started(Ok(())));
            }
            let result = saved
                .await
                .unwrap_or_else(|_| Err("the recording was interrupted".into()));
            let Some(this) = me.upgrade() else { return };
            // A logout took it (and a new session may record meanwhile): not this one's.
            let current = this.borrow().recording.as_ref().map(|r| r.0);
            if current == Some(id) {
                this.borrow_mut().recording = None;
                dispatch(&this, |m| m.recording_done(result));
            }
        });
    }

    /// Reads the locker's index for the Recordings screen.
    fn list_recordings(&mut self) {
        let Some(session) = self.session.clone() else {
            return;
        };
        self.lists += 1;
        let asked = self.lists;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.side_task(async move {
            let result = match session.locker() {
                Ok(locker) => locker.index().await.map(|(_, index)| {
                    index
                        .entries
                        .into_iter()
                        .filter(|e| {
                            use stb_protocol::locker::Kind;
                            matches!(e.kind, Kind::Recording | Kind::Picture)
                        })
                        .collect()
                }),
                Err(e) => Err(e),
            };
            let _ = tx.send(result.map_err(|e| e.to_string()));
        });
        let me = self.me.clone();
        self.spawn_local(async move {
            if let Ok(result) = rx.await
                && let Some(this) = me.upgrade()
                && this.borrow().lists == asked
            {
                dispatch(&this, |m| m.recordings_done(result));
            }
        });
    }

    /// Fetches a picture from the locker (every chunk checked), decodes it in memory and
    /// shows it; nothing of it is written anywhere, and its bytes are wiped once drawn.
    fn show_picture(&mut self, entry: stb_protocol::locker::Entry) {
        self.pictures += 1;
        let asked = self.pictures;
        if let Some(ui) = self.ui.upgrade() {
            ui.set_picture(Image::default());
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.side_task(async move {
            let _ = tx.send(fetch_picture(&session, &entry).await);
        });
        let me = self.me.clone();
        self.spawn_local(async move {
            let Ok(result) = rx.await else { return };
            let Some(this) = me.upgrade() else { return };
            if this.borrow().pictures != asked {
                return;
            }
            match result {
                Ok(picture) => {
                    let mut buffer =
                        SharedPixelBuffer::<Rgba8Pixel>::new(picture.width, picture.height);
                    buffer.make_mut_bytes().copy_from_slice(&picture.rgba);
                    if let Some(ui) = this.borrow().ui.upgrade() {
                        ui.set_picture(Image::from_rgba8(buffer));
                    }
                }
                Err(why) => dispatch(&this, |m| m.picture_failed(why)),
            }
        });
    }

    /// Plays a recording in place of the channel: the feeder's slot runs the playback, so a
    /// zap or a logout stops it as it stops a channel.
    fn play_recording(&mut self, entry: stb_protocol::locker::Entry) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let (controls, control_rx) = tokio::sync::mpsc::unbounded_channel();
        self.playback = Some(controls);
        let (position, mut positions) =
            tokio::sync::watch::channel(crate::playback::Position::default());
        let (failed, failure) = tokio::sync::oneshot::channel();
        let zap = self.replace_feeder(move |player| async move {
            if let Err(e) =
                crate::playback::play(session, player, entry, control_rx, position).await
            {
                let _ = failed.send(e.to_string());
            }
        });
        let me = self.me.clone();
        self.spawn_local(async move {
            while positions.changed().await.is_ok() {
                let at = *positions.borrow_and_update();
                let Some(this) = me.upgrade() else { return };
                if this.borrow().zaps != zap {
                    return;
                }
                dispatch(&this, |m| m.playback_position(at));
            }
            if let Ok(why) = failure.await
                && let Some(this) = me.upgrade()
                && this.borrow().zaps == zap
            {
                dispatch(&this, |m| m.playback_failed(why));
            }
        });
    }
}

/// The largest picture shown (stored bytes) and its largest side.
const PICTURE_MAX_BYTES: u64 = 64 << 20;
const PICTURE_MAX_SIDE: u32 = 4096;
const PICTURE_MAX_ALLOC: u64 = 128 << 20;

/// A decoded picture, wiped when dropped.
struct Picture {
    width: u32,
    height: u32,
    rgba: zeroize::Zeroizing<Vec<u8>>,
}

async fn fetch_picture(
    session: &Session,
    entry: &stb_protocol::locker::Entry,
) -> Result<Picture, String> {
    if entry.size > PICTURE_MAX_BYTES {
        return Err(format!(
            "it is {} MB; the box shows pictures up to {} MB",
            entry.size.div_ceil(1 << 20),
            PICTURE_MAX_BYTES >> 20
        ));
    }
    let locker = session.locker().map_err(|e| e.to_string())?;
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(entry.size as usize));
    // The object of the entry checked above: its size is bound by its chunks.
    locker
        .get_entry(entry, &mut *bytes)
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| e.to_string())?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(PICTURE_MAX_SIDE);
        limits.max_image_height = Some(PICTURE_MAX_SIDE);
        // A small file can claim a huge picture: the decoder may not take more than this.
        limits.max_alloc = Some(PICTURE_MAX_ALLOC);
        reader.limits(limits);
        let decoded = reader
            .decode()
            .map_err(|e| format!("it is not a picture the box can read ({e})"))?
            .into_rgba8();
        let (width, height) = decoded.dimensions();
        Ok(Picture {
            width,
            height,
            rgba: zeroize::Zeroizing::new(decoded.into_raw()),
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Aborts a feeder (or a zap in flight) and waits until it has stopped.
async fn stop(feeder: Option<tokio::task::JoinHandle<()>>) {
    if let Some(feeder) = feeder {
        feeder.abort();
        let _ = feeder.await;
    }
}

/// Flushes the pipeline off the async threads: a state change waits for the streaming
/// threads.
async fn flush(player: Arc<Player>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || player.zap()).await?
}

/// Runs `f` on the model, carries out its effects and redraws.
pub fn dispatch(this: &Shared, f: impl FnOnce(&mut Model) -> Vec<Effect>) {
    let mut c = this.borrow_mut();
    c.model.set_now(chrono::Utc::now().timestamp_millis());
    let effects = f(&mut c.model);
    for effect in effects {
        c.execute(effect);
    }
    if let Some(ui) = c.ui.upgrade() {
        render(&c.model, &ui);
    }
}

/// The `ui` command: the window (winit on a desktop, linuxkms on the box, as `SLINT_BACKEND`
/// says), the remote, and the player, until the window closes.
pub fn run(
    config: BoxConfig,
    rt: &tokio::runtime::Runtime,
    size: Option<(u32, u32)>,
) -> anyhow::Result<()> {
    let keymap = match &config.keymap {
        Some(path) if path.exists() => crate::remote::Keymap::load(path)?,
        _ => crate::remote::Keymap::default(),
    };
    let ui = AppWindow::new().map_err(|e| {
        anyhow::anyhow!(
            "cannot open the screen ({e}; SLINT_BACKEND={}): the box needs a KMS device \
             (/dev/dri/card*) readable by its user; on a desktop use SLINT_BACKEND=winit",
            std::env::var("SLINT_BACKEND").unwrap_or_else(|_| "auto".into())
        )
    })?;
    if let Some((w, h)) = size {
        ui.window()
            .set_size(slint::LogicalSize::new(w as f32, h as f32));
    }
    let frames = Arc::new(FrameSlot::default());
    let player = Arc::new(Player::with_frames(
        "appsink",
        &config.audio_sink,
        Some(frames.handler(ui.as_weak())),
    )?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    crate::remote::devices::spawn(
        config.input_devices.clone(),
        keymap,
        Arc::new(move |a| {
            let _ = tx.send(a);
        }),
    )?;
    let this = Controller::attach(&ui, config, rt.handle().clone(), player, frames);
    let weak = Rc::downgrade(&this);
    slint::spawn_local(async move {
        while let Some(action) = rx.recv().await {
            match weak.upgrade() {
                Some(this) => dispatch(&this, |m| m.action(action)),
                None => break,
            }
        }
    })?;
    ui.run()?;
    // Window closed: the session ends, whatever POWER means on this box; a recording under
    // way is saved first (bounded), then every key is wiped, before the runtime goes.
    dispatch(&this, Model::shutdown);
    if let Some(logout) = this.borrow_mut().logging_out.take() {
        let _ = rt.block_on(tokio::time::timeout(RECORDING_SAVE * 2, logout));
    }
    Ok(())
}
