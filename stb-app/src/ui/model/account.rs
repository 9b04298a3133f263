//! The account on screen: the login's result (first channel or why not), logout and its
//! reasons (Power, the menu, inactivity).

use super::form::Form;
use super::overlays::{Alert, retry_alert};
use super::{Effect, LoggedIn, Model, Screen, Timer, capitalise};
use crate::keyserver_client::LoginError;
use std::time::Duration;

impl Model {
    pub(super) fn logout(&mut self, fx: &mut Vec<Effect>, title: &str, detail: &str) {
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
                    ),
                    LoginError::Protocol(what) => Alert::new(
                        "Service error",
                        format!("Unexpected answer from {what}. Try again later."),
                    ),
                    LoginError::Configuration(_) | LoginError::Identity(_) => Alert::new(
                        "Cannot log in on this box",
                        format!("{}. Call your operator.", capitalise(&e.to_string())),
                    ),
                    LoginError::KeyDerivation | LoginError::Interrupted => Alert::new(
                        "Cannot log in right now",
                        format!("{}. Try again.", capitalise(&e.to_string())),
                    ),
                });
            }
        }
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
}
