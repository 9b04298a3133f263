//! The account on screen: the login's result (first channel or why not), standby, logout
//! and its reasons (the menu, inactivity, a long standby, POWER on a hotel box).

use super::overlays::{Alert, AlertAction, retry_alert};
use super::{BANNER, Effect, LoggedIn, Model, Screen, Timer, capitalise};
use crate::keyserver_client::LoginError;
use stb_protocol::content_api::OnAir;
use std::time::Duration;

/// Timers that run only while a session is on screen.
const SESSION_TIMERS: [Timer; 5] = [
    Timer::Inactivity,
    Timer::Banner,
    Timer::NumberEntry,
    Timer::VolumeBar,
    Timer::NoSignal,
];

impl Model {
    pub(super) fn logout(&mut self, fx: &mut Vec<Effect>, title: &str, detail: &str) {
        fx.push(Effect::Logout);
        for t in SESSION_TIMERS {
            fx.push(Effect::Cancel(t));
        }
        fx.push(Effect::Cancel(Timer::Standby));
        let (rules, volume, muted) = (self.rules, self.volume, self.muted);
        *self = Self::new(rules);
        self.volume = volume;
        self.muted = muted;
        self.alert = Some(Alert::new(title, detail));
    }

    /// A logout the viewer asked for (the menu, confirmed; POWER on a hotel box).
    pub(super) fn log_out_at_once(&mut self, fx: &mut Vec<Effect>) {
        self.logout(
            fx,
            "Logged out",
            "Every key of your account was erased from this box.",
        );
    }

    /// The UI is closing: the session ends (standby would keep its keys in a process that is
    /// going away).
    pub fn shutdown(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.account.is_some() {
            self.log_out_at_once(&mut fx);
        }
        fx
    }

    /// The menu's Log out: asks once (OK logs out, BACK keeps watching).
    pub(super) fn ask_logout(&mut self) {
        self.alert = Some(
            Alert::new(
                "Log out?",
                "Every key of your account will be erased from this box. To watch again you \
                 will type your password.",
            )
            .with(AlertAction::LogOut),
        );
    }

    /// POWER while logged in: picture and sound off, the stream closed, the session's keys
    /// kept in memory (never on disk) for the next POWER, at most for the standby limit.
    pub(super) fn enter_standby(&mut self, fx: &mut Vec<Effect>) {
        self.standby = true;
        fx.push(Effect::Standby);
        for t in SESSION_TIMERS {
            fx.push(Effect::Cancel(t));
        }
        if let Some(limit) = self.standby_limit() {
            fx.push(Effect::Arm(Timer::Standby, limit));
        }
        (self.menu, self.alert, self.status) = (None, None, None);
        (self.banner, self.volume_bar, self.no_signal) = (false, false, false);
        self.tuning = false;
        self.entry.clear();
        // The stream closes: no time shift is kept, and a recording playing ends (the
        // channel plays on POWER). A recording under way goes on in standby.
        self.back_to_live();
        self.end_playback();
        self.relock();
    }

    /// How long standby may last. The inactivity rule sleeps in standby: the shorter of the
    /// two limits applies, so keys never stay longer than either says.
    pub(super) fn standby_limit(&self) -> Option<Duration> {
        match (self.rules.standby, self.rules.inactivity) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// POWER in standby: back to what was on screen, the channel playing again.
    pub(super) fn resume(&mut self, fx: &mut Vec<Effect>) {
        self.standby = false;
        fx.push(Effect::Cancel(Timer::Standby));
        if let Some(after) = self.rules.inactivity {
            fx.push(Effect::Arm(Timer::Inactivity, after));
        }
        if let Some(number) = self.current
            && !self.lock_if_needed(number, fx)
        {
            fx.push(Effect::Play(number));
            self.tuning = true;
            if self.screen == Screen::Player {
                self.banner = true;
                fx.push(Effect::Arm(Timer::Banner, BANNER));
            }
        }
    }

    /// The login finished.
    /// A result that comes after BACK cancelled the login is not shown.
    pub fn login_done(&mut self, result: Result<LoggedIn, LoginError>) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.busy.take().is_none() {
            return fx;
        }
        match result {
            Ok(mut account) => {
                self.clear_form();
                // Favourites of channels the operator no longer has are dropped (a list
                // naming them would be refused when stored).
                let channels = &account.channels;
                account
                    .favourites
                    .retain(|&n| channels.iter().any(|c| c.number == n));
                self.parental =
                    super::parental::Parental::new(account.parental_age, account.parental_pin);
                self.account = Some(account);
                if let Some(after) = self.rules.inactivity {
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
                self.alert = Some(match &e {
                    LoginError::WrongCredentials => Alert::new(
                        "Wrong identifier or password",
                        "Check both and try again. After several wrong tries the account locks.",
                    ),
                    LoginError::RetryIn(s) => {
                        self.retry_until_countdown = *s;
                        fx.push(Effect::Arm(Timer::Countdown, Duration::from_secs(1)));
                        retry_alert(*s)
                    }
                    LoginError::Locked => Alert::new(
                        "Account locked",
                        "Too many wrong passwords. Call your operator to unlock it.",
                    ),
                    LoginError::BadIdentifier(reason) => {
                        self.on_password = false;
                        Alert::new("Check your identifier", capitalise(reason))
                    }
                    LoginError::Refused(reason) => Alert::new("Access refused", capitalise(reason)),
                    LoginError::Unreachable(what) => Alert::new(
                        "Cannot reach the service",
                        format!(
                            "{} does not answer. Check the network cable, then try again.",
                            capitalise(what)
                        ),
                    )
                    .with(AlertAction::RetryLogin),
                    LoginError::Protocol(what) => Alert::new(
                        "Service error",
                        format!("Unexpected answer from {what}. Try again later."),
                    )
                    .with(AlertAction::RetryLogin),
                    LoginError::Configuration(_) | LoginError::Identity(_) => Alert::new(
                        "Cannot log in on this box",
                        format!("{}. Call your operator.", capitalise(&e.to_string())),
                    ),
                    LoginError::KeyDerivation | LoginError::Interrupted => Alert::new(
                        "Cannot log in right now",
                        format!("{}. Try again.", capitalise(&e.to_string())),
                    )
                    .with(AlertAction::RetryLogin),
                });
                if matches!(
                    e,
                    LoginError::Locked
                        | LoginError::Refused(_)
                        | LoginError::Configuration(_)
                        | LoginError::Identity(_)
                ) {
                    self.forget_password();
                }
            }
        }
        fx
    }

    /// What the guide says is on now and next: the list and the banner follow programme
    /// changes while the box plays.
    pub fn on_air(&mut self, on_air: OnAir) -> Vec<Effect> {
        if let Some(account) = &mut self.account {
            for update in on_air.channels {
                if let Some(c) = account
                    .channels
                    .iter_mut()
                    .find(|c| c.number == update.number)
                {
                    c.now = update.now;
                    c.next = update.next;
                }
            }
        }
        let mut fx = Vec::new();
        self.recheck_parental(&mut fx);
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn first_channel_plays_after_login_with_the_banner() {
        let (m, fx) = logged_in();
        assert_eq!(plays(&fx), vec![1]);
        assert!(armed(&fx, Timer::Banner) && armed(&fx, Timer::Inactivity));
        assert_eq!(m.screen(), Screen::Player);
        assert!(m.banner());
    }

    #[test]
    fn now_and_next_follow_the_guide() {
        use stb_protocol::content_api::{NowNext, OnAir, Programme};
        let (mut m, _) = logged_in();
        let before = m.channels()[1].now.clone();
        let fx = m.on_air(OnAir {
            channels: vec![
                NowNext {
                    number: 1,
                    now: Some(Programme::titled("Later News", 10, 20)),
                    next: None,
                },
                NowNext {
                    number: 99,
                    now: None,
                    next: None,
                },
            ],
        });
        assert!(fx.is_empty());
        let first = &m.channels()[0];
        assert_eq!(
            first.now.as_ref().map(|p| p.title.as_str()),
            Some("Later News")
        );
        assert!(first.next.is_none(), "the guide has nothing after it");
        assert_eq!(
            m.channels()[1].now,
            before,
            "channels not in the answer keep theirs"
        );
        assert_eq!(m.current().map(|c| c.number), Some(1));
    }

    #[test]
    fn menu_after_confirming_inactivity_and_hotel_power_log_out() {
        for how in 0..3 {
            let (mut m, _) = logged_in();
            let fx = match how {
                0 => {
                    m.action(Action::Menu);
                    m.action(Action::Down);
                    m.action(Action::Down);
                    m.action(Action::Ok);
                    assert!(m.confirming_logout() && m.account().is_some());
                    m.action(Action::Ok)
                }
                1 => m.timer(Timer::Inactivity),
                _ => {
                    m = logged_in_with(rules(true)).0;
                    m.action(Action::Power)
                }
            };
            assert!(fx.iter().any(|e| matches!(e, Effect::Logout)), "case {how}");
            assert_eq!(m.screen(), Screen::Login);
            assert!(m.account().is_none() && m.channels().is_empty());
            assert!(!m.standby() && !m.confirming_logout());
            assert_eq!(m.alert().map(|a| a.title.as_str()), Some("Logged out"));
        }
    }

    #[test]
    fn back_keeps_the_session_when_asked_to_log_out() {
        let (mut m, _) = logged_in();
        m.action(Action::Menu);
        m.action(Action::Down);
        m.action(Action::Ok);
        let fx = m.action(Action::Back);
        assert!(!fx.iter().any(|e| matches!(e, Effect::Logout)));
        assert!(m.account().is_some() && m.alert().is_none() && !m.confirming_logout());
        assert_eq!(m.current().map(|c| c.number), Some(1));
    }

    #[test]
    fn power_is_standby_and_power_again_plays_the_same_channel() {
        let (mut m, _) = logged_in();
        m.action(Action::ChannelUp);
        let fx = m.action(Action::Power);
        assert!(m.standby() && m.account().is_some());
        assert!(fx.iter().any(|e| matches!(e, Effect::Standby)));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Logout)));
        assert!(armed(&fx, Timer::Standby) && !armed(&fx, Timer::Inactivity));
        assert!(!m.banner());
        // In the dark only POWER counts, and the inactivity rule sleeps too.
        for a in [
            Action::Ok,
            Action::ChannelUp,
            Action::Menu,
            Action::Digit(3),
        ] {
            assert!(m.action(a).is_empty(), "{a:?}");
        }
        assert!(m.timer(Timer::Inactivity).is_empty() && m.standby());
        m.feed(crate::feed::FeedState::Refused("gone".into()));
        assert!(
            m.alert().is_none(),
            "a stopped feeder's last word shows nothing"
        );
        let fx = m.action(Action::Power);
        assert!(!m.standby());
        assert_eq!(plays(&fx), vec![2], "the channel playing before standby");
        assert!(armed(&fx, Timer::Inactivity) && m.banner());
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::Cancel(Timer::Standby)))
        );
        assert_eq!(m.screen(), Screen::Player);
    }

    #[test]
    fn closing_the_window_logs_out_even_in_standby() {
        for standby in [false, true] {
            let (mut m, _) = logged_in();
            if standby {
                m.action(Action::Power);
            }
            let fx = m.shutdown();
            assert!(fx.iter().any(|e| matches!(e, Effect::Logout)));
            assert!(plays(&fx).is_empty() && m.account().is_none() && !m.standby());
        }
    }

    #[test]
    fn a_long_standby_logs_out() {
        let (mut m, _) = logged_in();
        m.action(Action::Power);
        let fx = m.timer(Timer::Standby);
        assert!(fx.iter().any(|e| matches!(e, Effect::Logout)));
        assert!(m.account().is_none() && !m.standby());
        assert!(
            m.alert()
                .is_some_and(|a| a.detail.contains("standby for 1 h"))
        );
    }
}
