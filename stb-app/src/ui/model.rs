//! What the box shows and what each key does, without Slint, GStreamer or the network:
//! events in (actions, typed characters, results of work, timers), effects out (log in,
//! play, arm a timer). The Slint adapter draws [`Model`] and carries out the [`Effect`]s;
//! the unit tests drive it directly.

use super::keyboard::{Keyboard, Press, Special};
use crate::keyserver_client::LoginError;
use crate::remote::Action;
use stb_protocol::content_api::ChannelInfo;
use stb_protocol::password::{PolicyViolation, check_policy, strength};
use stb_protocol::{Identifier, Password};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long digits typed on the player wait for the next digit.
pub const NUMBER_ENTRY: Duration = Duration::from_millis(2000);
/// How long the info banner stays after a zap.
pub const BANNER: Duration = Duration::from_secs(5);
/// How long the volume bar stays.
pub const VOLUME_BAR: Duration = Duration::from_secs(3);
/// Step of Vol+/Vol-, in percent.
pub const VOLUME_STEP: u8 = 5;
const MAX_IDENTIFIER: usize = 64;
const MAX_PASSWORD: usize = 128;
const MAX_CODE: usize = 14;

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
    /// Stop playing, drop the session and every secret in it.
    Logout,
    /// Set the audio volume (0-100) and mute.
    Volume {
        /// Percent.
        level: u8,
        /// Muted.
        muted: bool,
    },
    /// Arm (or re-arm) a timer.
    Arm(Timer, Duration),
    /// Cancel a timer.
    Cancel(Timer),
}

/// A modal message: OK or Back dismisses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Headline.
    pub title: String,
    /// What to do about it.
    pub detail: String,
    /// Seconds left before the next login attempt is allowed (retry countdown).
    pub countdown: Option<u64>,
}

impl Alert {
    fn new(title: &str, detail: impl Into<String>) -> Self {
        Self {
            title: title.to_owned(),
            detail: detail.into(),
            countdown: None,
        }
    }
}

/// What the player reports about the channel being fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Pictures are coming.
    Playing,
    /// The connection was lost; the feeder retries.
    Reconnecting,
    /// The operator refused the channel, with its reason.
    Refused(String),
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
}

/// A text field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldView {
    /// Label.
    pub label: String,
    /// Value as shown (masked for passwords).
    pub text: String,
    /// The field typing goes to.
    pub active: bool,
}

/// The form screens (login and the wizard) as drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormView {
    /// Headline.
    pub title: String,
    /// One line under the headline.
    pub subtitle: String,
    /// Fields.
    pub fields: Vec<FieldView>,
    /// Password strength 0-4, when a new password is being typed.
    pub strength: Option<u8>,
    /// Live advice or a validation error.
    pub message: String,
    /// Label of the keyboard's Done key.
    pub done_label: String,
    /// Remote hints.
    pub hint: String,
}

#[derive(Default)]
struct Form {
    identifier: String,
    password: Zeroizing<String>,
    confirmation: Zeroizing<String>,
    code: String,
    message: String,
}

/// Everything on screen.
pub struct Model {
    screen: Screen,
    keyboard: Keyboard,
    form: Form,
    /// Login field: false = identifier, true = password.
    on_password: bool,
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
    menu: Option<usize>,
    inactivity: Option<Duration>,
}

/// Entries of the small menu.
pub const MENU: [&str; 3] = ["Channel list", "Log out", "Close"];

impl Model {
    /// The login screen; `inactivity` logs out after that long without a key (None: never).
    pub fn new(inactivity: Option<Duration>) -> Self {
        Self {
            screen: Screen::Login,
            keyboard: Keyboard::default(),
            form: Form::default(),
            on_password: false,
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
            menu: None,
            inactivity,
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
    /// The on-screen keyboard.
    pub fn keyboard(&self) -> &Keyboard {
        &self.keyboard
    }

    fn channel(&self, number: u16) -> Option<&ChannelInfo> {
        self.channels().iter().find(|c| c.number == number)
    }

    /// The form of the login or wizard screen.
    pub fn form(&self) -> Option<FormView> {
        let mask = |s: &str| "\u{2022}".repeat(s.chars().count());
        let field = |label: &str, text: String, active: bool| FieldView {
            label: label.to_owned(),
            text,
            active,
        };
        let nav = "Arrows move \u{00b7} OK types \u{00b7} Digits type digits \u{00b7} BACK erases";
        let f = &self.form;
        Some(match self.screen {
            Screen::Login => FormView {
                title: "Welcome".into(),
                subtitle: "Log in with your identifier and password".into(),
                fields: vec![
                    field("Identifier", f.identifier.clone(), !self.on_password),
                    field("Password", mask(&f.password), self.on_password),
                ],
                strength: None,
                message: f.message.clone(),
                done_label: if self.on_password { "Log in" } else { "Next" }.into(),
                hint: format!("{nav} \u{00b7} MENU registers this box"),
            },
            Screen::Register(step) => {
                let (subtitle, fields, done) = match step {
                    Step::Code => (
                        "Step 1 of 4: the 12-digit code from your operator",
                        vec![field("Enrollment code", f.code.clone(), true)],
                        "Next",
                    ),
                    Step::Identifier => (
                        "Step 2 of 4: choose your identifier",
                        vec![field("Identifier", f.identifier.clone(), true)],
                        "Next",
                    ),
                    Step::Password => (
                        "Step 3 of 4: choose a password",
                        vec![field("Password", mask(&f.password), true)],
                        "Next",
                    ),
                    Step::Confirm => (
                        "Step 4 of 4: the password again",
                        vec![
                            field("Password", mask(&f.password), false),
                            field("Again", mask(&f.confirmation), true),
                        ],
                        "Register",
                    ),
                };
                FormView {
                    title: "Register this box".into(),
                    subtitle: subtitle.into(),
                    fields,
                    strength: matches!(step, Step::Password | Step::Confirm)
                        .then(|| self.password_strength()),
                    message: f.message.clone(),
                    done_label: done.into(),
                    hint: format!("{nav} (on an empty field: the step before)"),
                }
            }
            _ => return None,
        })
    }

    fn identifier(&self) -> Option<Identifier> {
        Identifier::parse(&self.form.identifier).ok()
    }

    fn password_strength(&self) -> u8 {
        if self.form.password.is_empty() {
            return 0;
        }
        let password = Password::new(self.form.password.to_string());
        strength(&password, self.identifier().as_ref())
    }

    /// The first policy rule the new password breaks, checked against itself (not yet the
    /// confirmation).
    fn policy_advice(&self) -> Option<String> {
        let id = self.identifier()?;
        let password = Password::new(self.form.password.to_string());
        let same = Password::new(self.form.password.to_string());
        check_policy(&password, &same, &id)
            .err()
            .map(|e| e.to_string())
    }

    // ----- input -----

    /// A remote or keyboard action. Returns the work to do.
    pub fn action(&mut self, action: Action) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.account.is_some()
            && let Some(after) = self.inactivity
        {
            fx.push(Effect::Arm(Timer::Inactivity, after));
        }
        if self.busy.is_some() {
            return fx;
        }
        if action == Action::Power {
            if self.account.is_some() {
                self.logout(
                    &mut fx,
                    "Logged out",
                    "Every key of your account was erased from this box.",
                );
            }
            return fx;
        }
        if self.alert.is_some() {
            // The retry countdown goes on behind: the next attempt checks it.
            if matches!(action, Action::Ok | Action::Back) {
                self.alert = None;
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

    fn active_text(&mut self) -> (&mut String, usize) {
        let f = &mut self.form;
        match self.screen {
            Screen::Login if self.on_password => (&mut f.password, MAX_PASSWORD),
            Screen::Register(Step::Code) => (&mut f.code, MAX_CODE),
            Screen::Register(Step::Password) => (&mut f.password, MAX_PASSWORD),
            Screen::Register(Step::Confirm) => (&mut f.confirmation, MAX_PASSWORD),
            _ => (&mut f.identifier, MAX_IDENTIFIER),
        }
    }

    fn type_char(&mut self, c: char) {
        let (text, max) = self.active_text();
        if text.chars().count() < max {
            text.push(c);
        }
        self.refresh_advice();
    }

    fn delete_char(&mut self) -> bool {
        let (text, _) = self.active_text();
        let deleted = text.pop().is_some();
        self.refresh_advice();
        deleted
    }

    /// The live message under the wizard's password fields.
    fn refresh_advice(&mut self) {
        self.form.message = match self.screen {
            Screen::Register(Step::Password) if !self.form.password.is_empty() => self
                .policy_advice()
                .map_or_else(|| "Good password".into(), |r| capitalise(&r)),
            Screen::Register(Step::Confirm) if !self.form.confirmation.is_empty() => {
                if self.form.confirmation.as_str() == self.form.password.as_str() {
                    "The two passwords match".into()
                } else if self
                    .form
                    .password
                    .starts_with(self.form.confirmation.as_str())
                {
                    String::new()
                } else {
                    PolicyViolation::Mismatch.to_string()
                }
            }
            Screen::Register(_) | Screen::Login => String::new(),
            _ => return,
        };
    }

    fn form_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::Up => self.keyboard.up(),
            Action::Down => self.keyboard.down(),
            Action::Left => self.keyboard.left(),
            Action::Right => self.keyboard.right(),
            Action::Digit(d) => self.type_char(char::from(b'0' + d)),
            Action::Delete => {
                self.delete_char();
            }
            // BACK erases; on an empty field it goes to the field or step before.
            Action::Back if !self.delete_char() => self.form_back(),
            Action::Ok => match self.keyboard.press() {
                Press::Char(c) => self.type_char(c),
                Press::Special(Special::Space) => self.type_char(' '),
                Press::Special(Special::Delete) => {
                    self.delete_char();
                }
                Press::Special(Special::Shift) => {}
                Press::Special(Special::Done) => self.form_done(fx),
            },
            Action::Menu if self.screen == Screen::Login => {
                self.form = Form::default();
                self.enter(Screen::Register(Step::Code));
            }
            _ => {}
        }
    }

    fn enter(&mut self, screen: Screen) {
        self.screen = screen;
        self.keyboard.reset();
        self.refresh_advice();
    }

    /// BACK on an empty field: the previous field or step.
    fn form_back(&mut self) {
        match self.screen {
            Screen::Login => self.on_password = false,
            Screen::Register(Step::Code) => {
                self.form = Form::default();
                self.enter(Screen::Login);
            }
            Screen::Register(Step::Identifier) => self.enter(Screen::Register(Step::Code)),
            Screen::Register(Step::Password) => self.enter(Screen::Register(Step::Identifier)),
            Screen::Register(Step::Confirm) => self.enter(Screen::Register(Step::Password)),
            _ => {}
        }
    }

    fn form_done(&mut self, fx: &mut Vec<Effect>) {
        match self.screen {
            Screen::Login if !self.on_password => {
                self.on_password = true;
                self.keyboard.reset();
            }
            Screen::Login => self.submit_login(fx),
            Screen::Register(Step::Code) => {
                match stb_protocol::enrollment_code::normalise(&self.form.code) {
                    Ok(code) => {
                        self.form.code = stb_protocol::enrollment_code::display(&code);
                        self.enter(Screen::Register(Step::Identifier));
                    }
                    Err(e) => self.form.message = capitalise(&e.to_string()),
                }
            }
            Screen::Register(Step::Identifier) => match Identifier::parse(&self.form.identifier) {
                Ok(_) => self.enter(Screen::Register(Step::Password)),
                Err(e) => self.form.message = capitalise(&e.to_string()),
            },
            Screen::Register(Step::Password) => match self.policy_advice() {
                None => {
                    self.form.confirmation = Zeroizing::default();
                    self.enter(Screen::Register(Step::Confirm));
                }
                Some(reason) => self.form.message = capitalise(&reason),
            },
            Screen::Register(Step::Confirm) => {
                if self.form.confirmation.as_str() != self.form.password.as_str() {
                    self.form.message = capitalise(&PolicyViolation::Mismatch.to_string());
                    return;
                }
                let form = std::mem::take(&mut self.form);
                self.form.identifier = form.identifier.clone();
                self.busy = Some("Registering this box\u{2026}".into());
                fx.push(Effect::Register {
                    code: form.code.replace('-', ""),
                    identifier: form.identifier,
                    password: Password::new(form.password.to_string()),
                    confirmation: Password::new(form.confirmation.to_string()),
                });
            }
            _ => {}
        }
    }

    fn submit_login(&mut self, fx: &mut Vec<Effect>) {
        if self.retry_until_countdown > 0 {
            self.alert = Some(retry_alert(self.retry_until_countdown));
            return;
        }
        if self.form.identifier.trim().is_empty() {
            self.on_password = false;
            self.form.message = "Type your identifier first".into();
            return;
        }
        let password = Password::new(std::mem::take(&mut *self.form.password));
        self.form.message.clear();
        self.busy = Some("Checking your password\u{2026}".into());
        fx.push(Effect::Login {
            identifier: self.form.identifier.clone(),
            password,
        });
    }

    fn list_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let n = self.channels().len();
        match action {
            Action::Up if n > 0 => self.selected = (self.selected + n - 1) % n,
            Action::Down if n > 0 => self.selected = (self.selected + 1) % n,
            Action::Ok => {
                if let Some(c) = self.channels().get(self.selected) {
                    let number = c.number;
                    self.tune(number, fx);
                }
            }
            Action::Back if self.current.is_some() => self.screen = Screen::Player,
            Action::Digit(_) | Action::ChannelUp | Action::ChannelDown | Action::LastChannel => {
                self.screen = Screen::Player;
                self.player_action(action, fx);
            }
            Action::Menu => self.menu = Some(0),
            Action::VolumeUp | Action::VolumeDown | Action::Mute => self.volume_action(action, fx),
            _ => {}
        }
    }

    fn player_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::Digit(d) => {
                if self.entry.len() >= 3 {
                    self.entry.clear();
                }
                self.entry.push(char::from(b'0' + d));
                fx.push(Effect::Arm(Timer::NumberEntry, NUMBER_ENTRY));
            }
            Action::Ok if !self.entry.is_empty() => {
                fx.push(Effect::Cancel(Timer::NumberEntry));
                self.tune_entry(fx);
            }
            Action::Back if !self.entry.is_empty() => {
                self.entry.clear();
                fx.push(Effect::Cancel(Timer::NumberEntry));
            }
            Action::Ok | Action::Back => {
                self.screen = Screen::Channels;
                self.banner = false;
                if let Some(i) = self
                    .current
                    .and_then(|n| self.channels().iter().position(|c| c.number == n))
                {
                    self.selected = i;
                }
            }
            Action::ChannelUp | Action::Up => self.step_channel(1, fx),
            Action::ChannelDown | Action::Down => self.step_channel(-1, fx),
            Action::LastChannel => {
                if let Some(last) = self.last {
                    self.tune(last, fx);
                }
            }
            Action::Info => {
                self.banner = !self.banner;
                if self.banner {
                    fx.push(Effect::Arm(Timer::Banner, BANNER));
                }
            }
            Action::Menu => self.menu = Some(0),
            Action::VolumeUp | Action::VolumeDown | Action::Mute => self.volume_action(action, fx),
            _ => {}
        }
    }

    fn volume_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::VolumeUp => {
                self.volume = self.volume.saturating_add(VOLUME_STEP).min(100);
                self.muted = false;
            }
            Action::VolumeDown => self.volume = self.volume.saturating_sub(VOLUME_STEP),
            _ => self.muted = !self.muted,
        }
        self.volume_bar = true;
        fx.push(Effect::Volume {
            level: self.volume,
            muted: self.muted,
        });
        fx.push(Effect::Arm(Timer::VolumeBar, VOLUME_BAR));
    }

    fn menu_action(&mut self, i: usize, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::Up => self.menu = Some((i + MENU.len() - 1) % MENU.len()),
            Action::Down => self.menu = Some((i + 1) % MENU.len()),
            Action::Back | Action::Menu => self.menu = None,
            Action::Ok => {
                self.menu = None;
                match i {
                    0 => self.screen = Screen::Channels,
                    1 => self.logout(
                        fx,
                        "Logged out",
                        "Every key of your account was erased from this box.",
                    ),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// CH+/CH-: the next channel in the subscription, in list order, wrapping.
    fn step_channel(&mut self, dir: i32, fx: &mut Vec<Effect>) {
        let entitled: Vec<u16> = self
            .channels()
            .iter()
            .filter(|c| c.entitled)
            .map(|c| c.number)
            .collect();
        if entitled.is_empty() {
            return;
        }
        let n = entitled.len() as i32;
        let at = self
            .current
            .and_then(|c| entitled.iter().position(|&x| x == c))
            .map_or(if dir > 0 { -1 } else { 0 }, |i| i as i32);
        let next = entitled[((at + dir).rem_euclid(n)) as usize];
        self.tune(next, fx);
    }

    fn tune_entry(&mut self, fx: &mut Vec<Effect>) {
        let entry = std::mem::take(&mut self.entry);
        match entry.parse::<u16>() {
            Ok(n) if self.channel(n).is_some() => self.tune(n, fx),
            _ => {
                self.alert = Some(Alert::new(
                    "No such channel",
                    format!("There is no channel {entry}."),
                ))
            }
        }
    }

    /// Plays `number`, or says why not.
    fn tune(&mut self, number: u16, fx: &mut Vec<Effect>) {
        let Some(channel) = self.channel(number) else {
            return;
        };
        if !channel.entitled {
            self.alert = Some(Alert::new(
                "Not in your subscription",
                format!(
                    "{} {} is not part of your package.",
                    channel.number, channel.name
                ),
            ));
            return;
        }
        self.screen = Screen::Player;
        self.banner = true;
        self.status = None;
        fx.push(Effect::Arm(Timer::Banner, BANNER));
        if self.current != Some(number) {
            self.last = self.current;
            self.current = Some(number);
            fx.push(Effect::Play(number));
        }
    }

    fn logout(&mut self, fx: &mut Vec<Effect>, title: &str, detail: &str) {
        fx.push(Effect::Logout);
        for t in [
            Timer::Inactivity,
            Timer::Banner,
            Timer::NumberEntry,
            Timer::VolumeBar,
        ] {
            fx.push(Effect::Cancel(t));
        }
        let (inactivity, volume, muted) = (self.inactivity, self.volume, self.muted);
        *self = Self::new(inactivity);
        self.volume = volume;
        self.muted = muted;
        self.alert = Some(Alert::new(title, detail));
    }

    // ----- results of work -----

    /// The login finished.
    pub fn login_done(&mut self, result: Result<LoggedIn, LoginError>) -> Vec<Effect> {
        self.busy = None;
        let mut fx = Vec::new();
        match result {
            Ok(account) => {
                self.form = Form::default();
                self.on_password = false;
                self.account = Some(account);
                if let Some(after) = self.inactivity {
                    fx.push(Effect::Arm(Timer::Inactivity, after));
                }
                match self
                    .channels()
                    .iter()
                    .find(|c| c.entitled)
                    .map(|c| c.number)
                {
                    Some(first) => self.tune(first, &mut fx),
                    None => {
                        self.screen = Screen::Channels;
                        self.alert = Some(Alert::new(
                            "No channels",
                            "Your subscription has no channels yet. Call your operator.",
                        ));
                    }
                }
            }
            Err(e) => {
                self.on_password = true;
                self.keyboard.reset();
                self.alert = Some(match e {
                    LoginError::WrongCredentials => Alert::new(
                        "Wrong identifier or password",
                        "Check both and try again. After several wrong tries the account locks.",
                    ),
                    LoginError::RetryIn(s) => {
                        self.retry_until_countdown = s;
                        fx.push(Effect::Arm(Timer::Countdown, Duration::from_secs(1)));
                        retry_alert(s)
                    }
                    LoginError::Locked => Alert::new(
                        "Account locked",
                        "Too many wrong passwords. Call your operator to unlock it.",
                    ),
                    LoginError::BadIdentifier(reason) => {
                        self.on_password = false;
                        Alert::new("Check your identifier", capitalise(&reason))
                    }
                    LoginError::Refused(reason) => {
                        Alert::new("Access refused", capitalise(&reason))
                    }
                    LoginError::Unreachable(what) => Alert::new(
                        "Cannot reach the service",
                        format!(
                            "{} does not answer. Check the network cable, then try again.",
                            capitalise(&what)
                        ),
                    ),
                    LoginError::Protocol(what) => Alert::new(
                        "Service error",
                        format!("Unexpected answer from {what}. Try again later."),
                    ),
                });
            }
        }
        fx
    }

    /// The registration finished: `Ok(account)` or the reason it failed.
    pub fn register_done(&mut self, result: Result<String, String>) -> Vec<Effect> {
        self.busy = None;
        match result {
            Ok(account) => {
                let identifier = std::mem::take(&mut self.form.identifier);
                self.form = Form::default();
                self.form.identifier = identifier;
                self.on_password = true;
                self.enter(Screen::Login);
                self.alert = Some(Alert::new(
                    "Box registered",
                    format!("Welcome, {account}. Log in with your identifier and new password."),
                ));
            }
            Err(reason) => {
                self.enter(Screen::Register(Step::Code));
                self.alert = Some(Alert::new("Registration failed", capitalise(&reason)));
            }
        }
        vec![]
    }

    /// The feeder's state for the channel playing.
    pub fn feed(&mut self, feed: Feed) -> Vec<Effect> {
        if self.account.is_none() {
            return vec![];
        }
        match feed {
            Feed::Playing => self.status = None,
            Feed::Reconnecting => {
                self.status = Some("Connection lost \u{2014} reconnecting\u{2026}".into())
            }
            Feed::Refused(reason) => {
                self.status = None;
                if self.alert.is_none() {
                    self.alert = Some(Alert::new("Channel not available", capitalise(&reason)));
                }
            }
        }
        vec![]
    }

    /// A timer fired.
    pub fn timer(&mut self, timer: Timer) -> Vec<Effect> {
        let mut fx = Vec::new();
        match timer {
            Timer::NumberEntry if !self.entry.is_empty() => self.tune_entry(&mut fx),
            Timer::Banner => self.banner = false,
            Timer::VolumeBar => self.volume_bar = false,
            Timer::Countdown => {
                self.retry_until_countdown = self.retry_until_countdown.saturating_sub(1);
                if let Some(alert) = self.alert.as_mut().filter(|a| a.countdown.is_some()) {
                    *alert = retry_alert(self.retry_until_countdown);
                }
                if self.retry_until_countdown > 0 {
                    fx.push(Effect::Arm(Timer::Countdown, Duration::from_secs(1)));
                }
            }
            Timer::Inactivity if self.account.is_some() => {
                let hours = self.inactivity.map_or(0, |d| d.as_secs() / 3600);
                let detail = if hours >= 1 {
                    format!(
                        "No key was pressed for {hours} h. Every key of your account was erased."
                    )
                } else {
                    "No key was pressed for a while. Every key of your account was erased.".into()
                };
                self.logout(&mut fx, "Logged out", &detail);
            }
            _ => {}
        }
        fx
    }
}

fn retry_alert(seconds: u64) -> Alert {
    Alert {
        title: "Too many attempts".into(),
        detail: if seconds > 0 {
            format!("You can try again in {seconds} s.")
        } else {
            "You can try again now.".into()
        },
        countdown: Some(seconds),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels() -> Vec<ChannelInfo> {
        let p = |t: &str| stb_protocol::content_api::Programme {
            title: t.into(),
            start_ms: 0,
            end_ms: 1,
        };
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

    fn logged_in() -> (Model, Vec<Effect>) {
        let mut m = Model::new(Some(Duration::from_secs(3600)));
        let fx = m.login_done(Ok(LoggedIn {
            account: "Alice".into(),
            package: "basic".into(),
            channels: channels(),
        }));
        (m, fx)
    }

    fn plays(fx: &[Effect]) -> Vec<u16> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Play(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    fn armed(fx: &[Effect], timer: Timer) -> bool {
        fx.iter()
            .any(|e| matches!(e, Effect::Arm(t, _) if *t == timer))
    }

    #[test]
    fn login_moves_the_password_out_and_keeps_no_copy() {
        let mut m = Model::new(None);
        for c in "alice".chars() {
            m.typed(c);
        }
        m.done();
        for c in "Secret#1".chars() {
            m.typed(c);
        }
        let form = m.form().expect("form");
        assert_eq!(form.fields[1].text, "\u{2022}".repeat(8), "masked");
        let fx = m.done();
        match &fx[..] {
            [
                Effect::Login {
                    identifier,
                    password,
                },
            ] => {
                assert_eq!(identifier, "alice");
                assert_eq!(password.expose(), "Secret#1");
            }
            other => panic!("expected a login, got {other:?}"),
        }
        assert!(m.form.password.is_empty());
        assert!(m.busy().is_some());
        // Keys do nothing while busy.
        assert!(m.action(Action::Ok).is_empty());
    }

    #[test]
    fn first_channel_plays_after_login_with_the_banner() {
        let (m, fx) = logged_in();
        assert_eq!(plays(&fx), vec![1]);
        assert!(armed(&fx, Timer::Banner) && armed(&fx, Timer::Inactivity));
        assert_eq!(m.screen(), Screen::Player);
        assert!(m.banner());
    }

    #[test]
    fn number_entry_tunes_on_timeout_or_ok() {
        let (mut m, _) = logged_in();
        let fx = m.action(Action::Digit(4));
        assert!(armed(&fx, Timer::NumberEntry));
        assert_eq!(m.entry(), "4");
        assert_eq!(plays(&m.timer(Timer::NumberEntry)), vec![4]);
        assert_eq!(m.entry(), "");
        m.action(Action::Digit(0));
        m.action(Action::Digit(2));
        assert_eq!(plays(&m.action(Action::Ok)), vec![2]);
        // A number with no channel: said so, nothing tuned.
        m.action(Action::Digit(9));
        assert!(plays(&m.timer(Timer::NumberEntry)).is_empty());
        assert_eq!(m.alert().map(|a| a.title.as_str()), Some("No such channel"));
    }

    #[test]
    fn channel_up_down_skip_locked_channels_and_wrap() {
        let (mut m, _) = logged_in();
        assert_eq!(plays(&m.action(Action::ChannelUp)), vec![2]);
        assert_eq!(
            plays(&m.action(Action::ChannelUp)),
            vec![4],
            "3 is not subscribed"
        );
        assert_eq!(plays(&m.action(Action::ChannelUp)), vec![1], "wraps");
        assert_eq!(plays(&m.action(Action::ChannelDown)), vec![4]);
        assert_eq!(plays(&m.action(Action::LastChannel)), vec![1]);
        assert_eq!(plays(&m.action(Action::LastChannel)), vec![4]);
    }

    #[test]
    fn locked_channel_is_refused_and_playback_continues() {
        let (mut m, _) = logged_in();
        m.action(Action::Back); // channel list
        assert_eq!(m.screen(), Screen::Channels);
        m.action(Action::Down);
        m.action(Action::Down);
        assert!(plays(&m.action(Action::Ok)).is_empty());
        assert_eq!(
            m.alert().map(|a| a.title.as_str()),
            Some("Not in your subscription")
        );
        assert_eq!(m.current().map(|c| c.number), Some(1));
        m.action(Action::Ok);
        assert!(m.alert().is_none());
    }

    #[test]
    fn volume_and_mute() {
        let (mut m, _) = logged_in();
        let fx = m.action(Action::VolumeDown);
        assert!(matches!(
            fx[1],
            Effect::Volume {
                level: 65,
                muted: false
            }
        ));
        m.action(Action::Mute);
        assert_eq!(m.volume(), (65, true, true));
        m.timer(Timer::VolumeBar);
        assert_eq!(m.volume(), (65, true, false));
        m.action(Action::VolumeUp);
        assert_eq!(m.volume(), (70, false, true), "Vol+ unmutes");
    }

    #[test]
    fn retry_countdown_blocks_the_next_attempt_until_it_ends() {
        let mut m = Model::new(None);
        for c in "alice".chars() {
            m.typed(c);
        }
        m.done();
        m.typed('x');
        m.done();
        let fx = m.login_done(Err(LoginError::RetryIn(2)));
        assert!(armed(&fx, Timer::Countdown));
        assert_eq!(m.alert().and_then(|a| a.countdown), Some(2));
        m.action(Action::Back);
        m.typed('y');
        assert!(m.done().is_empty(), "no attempt while the countdown runs");
        assert_eq!(m.alert().and_then(|a| a.countdown), Some(2));
        assert!(armed(&m.timer(Timer::Countdown), Timer::Countdown));
        assert!(!armed(&m.timer(Timer::Countdown), Timer::Countdown));
        assert_eq!(
            m.alert().map(|a| a.detail.as_str()),
            Some("You can try again now.")
        );
        m.action(Action::Ok);
        m.typed('z');
        assert!(matches!(m.done()[..], [Effect::Login { .. }]));
    }

    #[test]
    fn power_menu_and_inactivity_log_out() {
        for how in 0..3 {
            let (mut m, _) = logged_in();
            let fx = match how {
                0 => m.action(Action::Power),
                1 => {
                    m.action(Action::Menu);
                    m.action(Action::Down);
                    m.action(Action::Ok)
                }
                _ => m.timer(Timer::Inactivity),
            };
            assert!(fx.iter().any(|e| matches!(e, Effect::Logout)), "case {how}");
            assert_eq!(m.screen(), Screen::Login);
            assert!(m.account().is_none() && m.channels().is_empty());
            assert_eq!(m.alert().map(|a| a.title.as_str()), Some("Logged out"));
        }
    }

    #[test]
    fn feed_states_show_and_clear() {
        let (mut m, _) = logged_in();
        m.feed(Feed::Reconnecting);
        assert!(m.status().is_some_and(|s| s.contains("reconnecting")));
        m.feed(Feed::Playing);
        assert!(m.status().is_none());
        m.feed(Feed::Refused("not entitled to channel 1".into()));
        assert_eq!(
            m.alert().map(|a| a.detail.as_str()),
            Some("Not entitled to channel 1")
        );
    }

    #[test]
    fn wizard_checks_each_step_before_the_next() {
        let mut m = Model::new(None);
        m.action(Action::Menu);
        assert_eq!(m.screen(), Screen::Register(Step::Code));
        for d in [1, 2, 3] {
            m.action(Action::Digit(d));
        }
        m.done();
        assert_eq!(
            m.form().map(|f| f.message),
            Some("An enrollment code has 12 digits".into())
        );
        for _ in 0..3 {
            m.action(Action::Back);
        }
        for _ in 0..12 {
            m.action(Action::Digit(0));
        }
        m.done();
        assert_eq!(m.screen(), Screen::Register(Step::Identifier));
        m.done();
        assert_eq!(
            m.screen(),
            Screen::Register(Step::Identifier),
            "empty identifier"
        );
        for c in "bob".chars() {
            m.typed(c);
        }
        m.done();
        for c in "bob-bob-bob!!".chars() {
            m.typed(c);
        }
        m.done();
        assert_eq!(m.screen(), Screen::Register(Step::Password));
        assert!(m.form().is_some_and(|f| f.message.contains("identifier")));
        for _ in 0.."bob-bob-bob!!".len() {
            m.action(Action::Delete);
        }
        for c in "Sofa-Remote#2026!".chars() {
            m.typed(c);
        }
        assert!(m.form().is_some_and(|f| f.strength >= Some(3)));
        m.done();
        for c in "Sofa-Remote#2026!".chars() {
            m.typed(c);
        }
        let fx = m.done();
        match &fx[..] {
            [
                Effect::Register {
                    code, identifier, ..
                },
            ] => {
                assert_eq!(code, "000000000000");
                assert_eq!(identifier, "bob");
            }
            other => panic!("expected a registration, got {other:?}"),
        }
        m.register_done(Err("this enrollment code was already used".into()));
        assert_eq!(m.screen(), Screen::Register(Step::Code));
        assert!(m.form.password.is_empty() && m.form.confirmation.is_empty());
    }
}
