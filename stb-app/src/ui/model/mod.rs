//! What the box shows and what each key does, without Slint, GStreamer or the network:
//! events in (actions, typed characters, results of work, timers), effects out (log in,
//! play, arm a timer). The Slint adapter draws [`Model`] and carries out the [`Effect`]s;
//! the unit tests drive it directly.
//!
//! One file per flow: `form` (login and the registration wizard), `zap` (channel list,
//! player, tuning), `guide` (the programme grid), `overlays` (alerts, menu, volume, feed
//! status) and `account` (the login's result, standby, logout, inactivity).

mod account;
mod form;
mod guide;
mod overlays;
mod parental;
mod recordings;
mod tracks;
mod zap;

pub use form::{FieldView, FormView};
pub use guide::{GUIDE_ROWS, GUIDE_SPAN_MS, GuideRowView, GuideView};
pub use overlays::{About, Alert, AlertAction, MENU, MenuEntry};
pub use parental::Pin;
pub use recordings::{LivePause, Playback, RecordingItem, RecordingOn, RecordingsList, SEEK_MS};
pub use tracks::{Next, TrackKind, language_name};
pub use zap::{BANNER, NUMBER_ENTRY};

use super::keyboard::Keyboard;
use crate::remote::Action;
use form::Form;
use guide::GuideGrid;
use overlays::retry_alert;
use stb_protocol::Password;
use stb_protocol::content_api::ChannelInfo;
use std::time::Duration;

/// How long the volume bar stays.
pub const VOLUME_BAR: Duration = Duration::from_secs(3);
/// How long the stream may stay away before the picture gives way to a "No signal" screen.
pub const NO_SIGNAL: Duration = Duration::from_secs(5);
/// Step of Vol+/Vol-, in percent.
pub const VOLUME_STEP: u8 = 5;

/// The screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Identifier and password.
    Login,
    /// First-run registration wizard.
    Register(Step),
    /// The channel list.
    Channels,
    /// Full-screen video.
    Player,
    /// The programme guide over the picture.
    Guide,
    /// The recordings in the subscriber's locker.
    Recordings,
    /// A recording playing, full screen.
    Playback,
    /// A picture from the locker, full screen.
    Picture,
}

/// Registration wizard steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The enrollment code from the operator.
    Code,
    /// The identifier to choose.
    Identifier,
    /// The new password.
    Password,
    /// The password again.
    Confirm,
}

/// Timers the model asks for; each fires [`Model::timer`] once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Number entry on the player ends and the channel is tuned.
    NumberEntry,
    /// The info banner hides.
    Banner,
    /// The volume bar hides.
    VolumeBar,
    /// One second of a retry countdown went by.
    Countdown,
    /// No key for the configured time: log out.
    Inactivity,
    /// In standby for the configured time: log out.
    Standby,
    /// The stream has been away for [`NO_SIGNAL`].
    NoSignal,
    /// A notice (recording saved) goes away.
    Notice,
}

/// Work for the adapter.
#[derive(Debug)]
pub enum Effect {
    /// Derive the keys and run the EKE; answer with [`Model::login_done`].
    Login {
        /// As typed.
        identifier: String,
        /// Moved out of the form: the model keeps no copy.
        password: Password,
    },
    /// Enroll with the code and register; answer with [`Model::register_done`].
    Register {
        /// 12 digits.
        code: String,
        /// As typed.
        identifier: String,
        /// The new password.
        password: Password,
        /// Its second entry.
        confirmation: Password,
    },
    /// Flush the picture (black) and play this channel.
    Play(u16),
    /// Store the subscriber's favourites (all of them, in order) on the content server.
    SaveFavourites(Vec<u16>),
    /// Find what "About this box" shows; answer with [`Model::about_done`] and this number.
    About(u64),
    /// Fetch these channels' programmes over `[from_ms, to_ms)`; answer with
    /// [`Model::guide_done`].
    FetchGuide {
        /// Channel numbers.
        channels: Vec<u16>,
        /// Unix ms.
        from_ms: i64,
        /// Unix ms.
        to_ms: i64,
    },
    /// Abandon the login or registration running (BACK on the busy screen): its result, and
    /// whatever it derived, is dropped unseen.
    CancelWork,
    /// Stop playing, drop the session and every secret in it.
    Logout,
    /// Stop playing (picture and sound off, stream closed); the session stays in memory.
    Standby,
    /// Set the audio volume (0-100) and mute.
    Volume {
        /// Percent.
        level: u8,
        /// Muted.
        muted: bool,
    },
    /// Record this programme into the locker; answer with [`Model::recording_started`], then
    /// [`Model::recording_done`] when it ends.
    Record(crate::recorder::Order),
    /// End the recording under way (it is saved; [`Model::recording_done`] follows).
    StopRecording,
    /// Pause live TV (its data waits in memory) or play on.
    PauseLive(bool),
    /// Play the channel's next sound track or show its next subtitles (or none); answer
    /// with [`Model::track_done`].
    NextTrack(TrackKind),
    /// Stop the channel playing (its programme is locked); the session goes on.
    StopPlaying,
    /// Ask the content server whether this is the parental PIN; answer with
    /// [`Model::parental_pin_checked`] and this request's number.
    CheckParentalPin(u64, parental::Pin),
    /// Set the parental PIN (the first time) or, with it, the age limit; answer with
    /// [`Model::parental_set`] and `id`.
    SetParental {
        /// The request's number.
        id: u64,
        /// The PIN.
        pin: parental::Pin,
        /// Lock programmes rated above this age (None: nothing).
        max_age: Option<u8>,
    },
    /// Read the locker's recordings; answer with [`Model::recordings_done`].
    ListRecordings,
    /// Play this recording in place of the channel; positions come to
    /// [`Model::playback_position`].
    PlayRecording(stb_protocol::locker::Entry),
    /// Pause the recording playing, or play on.
    PausePlayback(bool),
    /// Jump in the recording playing by this many ms.
    Seek(i64),
    /// Stop the recording playing.
    StopPlayback,
    /// Delete this recording or picture (by its name in the locker).
    DeleteRecording(String),
    /// Fetch, check and decode this picture and show it full screen; a failure goes to
    /// [`Model::picture_failed`].
    ShowPicture(stb_protocol::locker::Entry),
    /// Take the picture off the screen (nothing of it stays in the window).
    HidePicture,
    /// Arm (or re-arm) a timer.
    Arm(Timer, Duration),
    /// Cancel a timer.
    Cancel(Timer),
}

/// The account and channels after a login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// Subscriber's name.
    pub account: String,
    /// Package name.
    pub package: String,
    /// Channels, in number order.
    pub channels: Vec<ChannelInfo>,
    /// The subscriber's favourite channels, in their order (kept by the content server).
    pub favourites: Vec<u16>,
    /// Parental control's age limit (None: nothing locked).
    pub parental_age: Option<u8>,
    /// Whether the subscriber has a parental PIN.
    pub parental_pin: bool,
}

/// When a session ends by itself, and what POWER does. The default: never by itself, and
/// POWER is standby.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionRules {
    /// No key for this long logs out (None: never).
    pub inactivity: Option<Duration>,
    /// Standby for this long logs out (None: never).
    pub standby: Option<Duration>,
    /// POWER logs out instead of going to standby (a hotel room's box).
    pub power_logs_out: bool,
}

/// Everything on screen.
pub struct Model {
    screen: Screen,
    keyboard: Keyboard,
    form: Form,
    /// Login field: false = identifier, true = password.
    on_password: bool,
    /// Password fields show what was typed (INFO toggles).
    show_password: bool,
    busy: Option<String>,
    alert: Option<Alert>,
    retry_until_countdown: u64,
    account: Option<LoggedIn>,
    selected: usize,
    current: Option<u16>,
    last: Option<u16>,
    entry: String,
    banner: bool,
    volume: u8,
    muted: bool,
    volume_bar: bool,
    status: Option<String>,
    /// The stream stayed away: the "No signal" screen is up.
    no_signal: bool,
    /// The channel list and CH+/CH- show only the favourites.
    favourites_only: bool,
    /// A channel was tuned and its first picture has not come.
    tuning: bool,
    /// Counts "About this box" requests: an answer to an earlier one is not shown.
    about_id: u64,
    menu: Option<usize>,
    parental: parental::Parental,
    standby: bool,
    rules: SessionRules,
    guide: GuideGrid,
    /// Where BACK from the guide goes.
    guide_return: Screen,
    /// The recording under way.
    recording: Option<RecordingOn>,
    /// Live TV paused (time shift).
    live_pause: LivePause,
    /// The Recordings screen.
    recordings: RecordingsList,
    /// Where BACK from the Recordings screen goes.
    recordings_return: Screen,
    /// The recording playing.
    playback: Option<Playback>,
    /// The picture shown.
    picture: Option<RecordingItem>,
    /// A recording replaced the channel in the player (BACK tunes the channel again).
    played_recording: bool,
    /// The recording a "Delete?" alert is about.
    deleting: Option<String>,
    /// A passing notice (recording saved).
    notice: Option<String>,
    /// The wall clock, Unix ms (the adapter sets it before each event).
    now_ms: i64,
}

impl Model {
    /// The login screen.
    pub fn new(rules: SessionRules) -> Self {
        Self {
            screen: Screen::Login,
            keyboard: Keyboard::default(),
            form: Form::default(),
            on_password: false,
            show_password: false,
            busy: None,
            alert: None,
            retry_until_countdown: 0,
            account: None,
            selected: 0,
            current: None,
            last: None,
            entry: String::new(),
            banner: false,
            volume: 70,
            muted: false,
            volume_bar: false,
            status: None,
            no_signal: false,
            favourites_only: false,
            tuning: false,
            about_id: 0,
            menu: None,
            parental: parental::Parental::default(),
            standby: false,
            rules,
            guide: GuideGrid::default(),
            guide_return: Screen::Player,
            recording: None,
            live_pause: LivePause::default(),
            recordings: RecordingsList::default(),
            recordings_return: Screen::Player,
            playback: None,
            picture: None,
            played_recording: false,
            deleting: None,
            notice: None,
            now_ms: 0,
        }
    }

    // ----- what is on screen -----

    /// Current screen.
    pub fn screen(&self) -> Screen {
        self.screen
    }
    /// Busy text (login or registration running), if any.
    pub fn busy(&self) -> Option<&str> {
        self.busy.as_deref()
    }
    /// The modal message, if any.
    pub fn alert(&self) -> Option<&Alert> {
        self.alert.as_ref()
    }
    /// Whether the stream stayed away long enough for the "No signal" screen.
    pub fn no_signal(&self) -> bool {
        self.no_signal && self.screen == Screen::Player
    }

    /// Non-modal status line (reconnecting), if any.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }
    /// The logged-in account.
    pub fn account(&self) -> Option<&LoggedIn> {
        self.account.as_ref()
    }
    /// Channels (empty before login).
    pub fn channels(&self) -> &[ChannelInfo] {
        self.account.as_ref().map_or(&[], |a| &a.channels)
    }
    /// The subscriber's favourite channels, in their order.
    pub fn favourites(&self) -> &[u16] {
        self.account.as_ref().map_or(&[], |a| &a.favourites)
    }

    /// Whether a channel is tuning on the picture screen (black until its first picture: a
    /// spinner).
    pub fn tuning(&self) -> bool {
        self.tuning && self.screen == Screen::Player && !self.standby && !self.no_signal
    }

    /// Whether the list shows only the favourites.
    pub fn favourites_only(&self) -> bool {
        self.favourites_only
    }

    /// The channels the list shows: all of them in number order, or the favourites in
    /// theirs.
    pub fn listed(&self) -> Vec<&ChannelInfo> {
        if self.favourites_only {
            self.favourites()
                .iter()
                .filter_map(|&n| self.channel(n))
                .collect()
        } else {
            self.channels().iter().collect()
        }
    }

    /// Highlighted row of the channel list.
    pub fn selected(&self) -> usize {
        self.selected
    }
    /// The channel playing.
    pub fn current(&self) -> Option<&ChannelInfo> {
        self.current.and_then(|n| self.channel(n))
    }
    /// Digits typed so far on the player.
    pub fn entry(&self) -> &str {
        &self.entry
    }
    /// Whether the info banner shows.
    pub fn banner(&self) -> bool {
        self.banner
    }
    /// Volume percent, mute, and whether the volume bar shows.
    pub fn volume(&self) -> (u8, bool, bool) {
        (self.volume, self.muted, self.volume_bar)
    }
    /// The menu's highlighted entry, when the menu is open.
    pub fn menu(&self) -> Option<usize> {
        self.menu
    }
    /// Whether the box is in standby (the screen is dark).
    pub fn standby(&self) -> bool {
        self.standby
    }
    /// Whether the alert asks to confirm a logout (OK logs out, BACK keeps watching).
    pub fn confirming_logout(&self) -> bool {
        self.alert
            .as_ref()
            .is_some_and(|a| a.on_ok == Some(AlertAction::LogOut))
    }
    /// The on-screen keyboard.
    pub fn keyboard(&self) -> &Keyboard {
        &self.keyboard
    }

    fn channel(&self, number: u16) -> Option<&ChannelInfo> {
        self.channels().iter().find(|c| c.number == number)
    }

    // ----- input -----

    /// The wall clock, Unix ms: the guide places its grid by it.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    /// A remote or keyboard action. Returns the work to do.
    pub fn action(&mut self, action: Action) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.standby {
            // Only POWER wakes the box: a key pressed by mistake in the dark does nothing.
            if action == Action::Power {
                self.resume(&mut fx);
            }
            return fx;
        }
        if action == Action::Power && self.busy.is_none() {
            if self.account.is_some() {
                if self.rules.power_logs_out {
                    self.log_out_at_once(&mut fx);
                } else {
                    self.enter_standby(&mut fx);
                }
            }
            return fx;
        }
        if self.account.is_some()
            && let Some(after) = self.rules.inactivity
        {
            fx.push(Effect::Arm(Timer::Inactivity, after));
        }
        if self.busy.is_some() {
            if action == Action::Back {
                self.cancel_work(&mut fx);
            }
            return fx;
        }
        if self.pin_panel_open() {
            self.pin_action(action, &mut fx);
            return fx;
        }
        if let Some(alert) = &self.alert {
            // The retry countdown goes on behind: the next attempt checks it.
            match (action, alert.on_ok) {
                (Action::Ok, on_ok) => {
                    self.alert = None;
                    match on_ok {
                        Some(AlertAction::LogOut) => self.log_out_at_once(&mut fx),
                        Some(AlertAction::RetryLogin) => self.submit_login(&mut fx),
                        Some(AlertAction::RetryRegistration) => self.submit_registration(&mut fx),
                        Some(AlertAction::DeleteRecording) => self.delete_confirmed(&mut fx),
                        Some(AlertAction::Pin) | None => {}
                    }
                }
                (Action::Back, _) => {
                    self.alert = None;
                    self.deleting = None;
                }
                _ => {}
            }
            return fx;
        }
        if let Some(i) = self.menu {
            self.menu_action(i, action, &mut fx);
            return fx;
        }
        match self.screen {
            Screen::Login | Screen::Register(_) => self.form_action(action, &mut fx),
            Screen::Channels => self.list_action(action, &mut fx),
            Screen::Player => self.player_action(action, &mut fx),
            Screen::Guide => self.guide_action(action, &mut fx),
            Screen::Recordings => self.recordings_action(action, &mut fx),
            Screen::Playback => self.playback_action(action, &mut fx),
            Screen::Picture => self.picture_action(action, &mut fx),
        }
        fx
    }

    /// A character typed on a real keyboard (desktop or USB); forms only.
    pub fn typed(&mut self, c: char) -> Vec<Effect> {
        if self.busy.is_none()
            && self.alert.is_none()
            && matches!(self.screen, Screen::Login | Screen::Register(_))
            && !c.is_control()
        {
            self.type_char(c);
        }
        vec![]
    }

    /// Enter on a real keyboard in a form: the same as the on-screen Done key.
    pub fn done(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.busy.is_none() && self.wants_text() {
            self.form_done(&mut fx);
        }
        fx
    }

    /// Whether typed characters go to a form now (else the adapter maps keys to actions).
    pub fn wants_text(&self) -> bool {
        matches!(self.screen, Screen::Login | Screen::Register(_)) && self.alert.is_none()
    }

    /// A timer fired.
    pub fn timer(&mut self, timer: Timer) -> Vec<Effect> {
        let mut fx = Vec::new();
        match timer {
            Timer::NumberEntry if !self.entry.is_empty() => {
                if self.screen == Screen::Channels {
                    self.jump_to_entry();
                } else if self.screen == Screen::Guide {
                    self.guide_jump_to_entry();
                } else {
                    self.tune_entry(&mut fx);
                }
            }
            Timer::Banner => self.banner = false,
            // Still away (a key or a good segment since would have cleared the status).
            Timer::NoSignal => self.no_signal = self.status.is_some() && !self.standby,
            Timer::VolumeBar => self.volume_bar = false,
            Timer::Notice => self.notice_timer(),
            Timer::Countdown => {
                self.retry_until_countdown = self.retry_until_countdown.saturating_sub(1);
                if let Some(alert) = self.alert.as_mut().filter(|a| a.countdown.is_some()) {
                    *alert = retry_alert(self.retry_until_countdown);
                }
                if self.retry_until_countdown > 0 {
                    fx.push(Effect::Arm(Timer::Countdown, Duration::from_secs(1)));
                }
            }
            Timer::Inactivity if self.account.is_some() && !self.standby => {
                let detail = lasted("No key was pressed", self.rules.inactivity);
                self.logout(&mut fx, "Logged out", &detail);
            }
            Timer::Standby if self.standby => {
                let detail = lasted("The box was in standby", self.standby_limit());
                self.logout(&mut fx, "Logged out", &detail);
            }
            _ => {}
        }
        fx
    }
}

/// Why a session ended by itself: `what` "for N h" (or "for a while" under an hour).
fn lasted(what: &str, d: Option<Duration>) -> String {
    match d.map(|d| d.as_secs() / 3600).filter(|&h| h >= 1) {
        Some(h) => format!("{what} for {h} h. Every key of your account was erased."),
        None => format!("{what} for a while. Every key of your account was erased."),
    }
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod testing {
    //! What the flows' tests share: a logged-in model and effect filters.
    use super::*;

    pub(super) fn channels() -> Vec<ChannelInfo> {
        let p = |t: &str| Some(stb_protocol::content_api::Programme::titled(t, 0, 1));
        [(1, true), (2, true), (3, false), (4, true)]
            .into_iter()
            .map(|(number, entitled)| ChannelInfo {
                number,
                name: format!("Channel {number}"),
                entitled,
                now: p("now"),
                next: p("next"),
            })
            .collect()
    }

    /// One hour of inactivity or standby; POWER logs out with `hotel`.
    pub(super) fn rules(hotel: bool) -> SessionRules {
        SessionRules {
            inactivity: Some(Duration::from_secs(3600)),
            standby: Some(Duration::from_secs(3600)),
            power_logs_out: hotel,
        }
    }

    /// Types `identifier` and `password` as on a keyboard and submits the login.
    pub(super) fn submit(m: &mut Model, identifier: &str, password: &str) -> Vec<Effect> {
        for c in identifier.chars() {
            m.typed(c);
        }
        m.done();
        for c in password.chars() {
            m.typed(c);
        }
        m.done()
    }

    /// The identifier and password of the one login in `fx`.
    pub(super) fn login_of(fx: &[Effect]) -> (&str, &str) {
        match fx {
            [
                Effect::Login {
                    identifier,
                    password,
                },
            ] => (identifier, password.expose()),
            other => panic!("expected a login, got {other:?}"),
        }
    }

    pub(super) fn logged_in() -> (Model, Vec<Effect>) {
        logged_in_with(rules(false))
    }

    pub(super) fn logged_in_with(rules: SessionRules) -> (Model, Vec<Effect>) {
        let mut m = Model::new(rules);
        submit(&mut m, "alice", "Secret#1");
        let fx = m.login_done(Ok(LoggedIn {
            favourites: vec![],
            parental_age: None,
            parental_pin: false,
            account: "Alice".into(),
            package: "basic".into(),
            channels: channels(),
        }));
        (m, fx)
    }

    pub(super) fn plays(fx: &[Effect]) -> Vec<u16> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Play(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    pub(super) fn armed(fx: &[Effect], timer: Timer) -> bool {
        fx.iter()
            .any(|e| matches!(e, Effect::Arm(t, _) if *t == timer))
    }
}
