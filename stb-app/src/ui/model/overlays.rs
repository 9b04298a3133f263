//! What shows over any screen: alerts, the small menu, the volume bar and the feeder's
//! status line.

use super::{Effect, Model, Screen, Timer, TrackKind, VOLUME_BAR, VOLUME_STEP, capitalise};
use crate::feed::FeedState;
use crate::remote::Action;

/// A modal message: OK or BACK dismisses it, unless OK has something to do (then BACK
/// dismisses and OK does it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Headline.
    pub title: String,
    /// What to do about it.
    pub detail: String,
    /// Seconds left before the next login attempt is allowed (retry countdown).
    pub countdown: Option<u64>,
    /// What OK does besides closing the alert.
    pub on_ok: Option<AlertAction>,
}

/// What OK on an alert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// The menu's Log out, confirmed.
    LogOut,
    /// The login again with what was typed (the service was unreachable, or busy).
    RetryLogin,
    /// The registration again with what was typed.
    RetryRegistration,
    /// Delete the recording the alert names.
    DeleteRecording,
    /// The parental PIN panel (it takes the keys itself).
    Pin,
}

impl Alert {
    pub(super) fn new(title: &str, detail: impl Into<String>) -> Self {
        Self {
            title: title.to_owned(),
            detail: detail.into(),
            countdown: None,
            on_ok: None,
        }
    }

    pub(super) fn with(mut self, on_ok: AlertAction) -> Self {
        self.on_ok = Some(on_ok);
        self
    }

    /// The labels of its OK and BACK buttons (BACK: empty when it does what OK does).
    pub fn buttons(&self) -> (&'static str, &'static str) {
        match self.on_ok {
            None => ("OK", ""),
            Some(AlertAction::LogOut) => ("OK  Log out", "Keep watching"),
            Some(AlertAction::RetryLogin | AlertAction::RetryRegistration) => {
                ("OK  Try again", "Change")
            }
            Some(AlertAction::DeleteRecording) => ("OK  Delete", "Keep it"),
            Some(AlertAction::Pin) => ("OK  Confirm", "Cancel"),
        }
    }
}

/// An entry of the small menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuEntry {
    /// The channel list.
    ChannelList,
    /// The locker's recordings and pictures.
    Recordings,
    /// Log out (asks first).
    LogOut,
    /// The box's identity and whether the servers answer.
    About,
    /// The channel's next sound track.
    SoundTrack,
    /// The channel's next subtitles, or none.
    Subtitles,
    /// The parental PIN and age limit.
    ParentalControl,
    /// Close the menu.
    Close,
}

impl MenuEntry {
    /// What the menu shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::ChannelList => "Channel list",
            Self::Recordings => "Recordings",
            Self::LogOut => "Log out",
            Self::About => "About this box",
            Self::SoundTrack => "Sound track",
            Self::Subtitles => "Subtitles",
            Self::ParentalControl => "Parental control",
            Self::Close => "Close",
        }
    }
}

/// The small menu, top to bottom.
pub const MENU: [MenuEntry; 8] = [
    MenuEntry::ChannelList,
    MenuEntry::Recordings,
    MenuEntry::LogOut,
    MenuEntry::About,
    MenuEntry::SoundTrack,
    MenuEntry::Subtitles,
    MenuEntry::ParentalControl,
    MenuEntry::Close,
];

/// The title of the "About this box" panel (an alert whose text the checks fill in).
const ABOUT: &str = "About this box";

/// What "About this box" shows: the box's identity and whether the servers answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct About {
    /// stb-app's version.
    pub version: String,
    /// The serial number of the box's certificate (its identity at the operator), hex.
    pub serial: String,
    /// The box's address towards the content server.
    pub address: String,
    /// The key server: its answer time in ms, or what went wrong.
    pub keyserver: Result<u64, String>,
    /// The content server, over the box's mutual TLS.
    pub content: Result<u64, String>,
}

impl About {
    fn describe(&self) -> String {
        let server = |r: &Result<u64, String>| match r {
            Ok(ms) => format!("answers ({ms} ms)"),
            Err(e) => format!("does not answer: {e}"),
        };
        format!(
            "Version {}\nCertificate {}\nAddress {}\nKey server {}\nContent server {}",
            self.version,
            self.serial,
            self.address,
            server(&self.keyserver),
            server(&self.content)
        )
    }
}

impl Model {
    pub(super) fn volume_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
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

    pub(super) fn menu_action(&mut self, i: usize, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::Up => self.menu = Some((i + MENU.len() - 1) % MENU.len()),
            Action::Down => self.menu = Some((i + 1) % MENU.len()),
            Action::Back | Action::Menu => self.menu = None,
            Action::Ok => {
                self.menu = None;
                match MENU[i % MENU.len()] {
                    MenuEntry::ChannelList => {
                        self.screen = Screen::Channels;
                        self.select_current();
                    }
                    MenuEntry::Recordings => self.open_recordings(fx),
                    MenuEntry::LogOut => self.ask_logout(),
                    MenuEntry::About => {
                        self.alert = Some(Alert::new(ABOUT, "Checking the servers\u{2026}"));
                        self.about_id += 1;
                        fx.push(Effect::About(self.about_id));
                    }
                    MenuEntry::SoundTrack => self.next_track(TrackKind::Sound, fx),
                    MenuEntry::Subtitles => self.next_track(TrackKind::Subtitles, fx),
                    MenuEntry::ParentalControl => self.open_parental_settings(),
                    MenuEntry::Close => {}
                }
            }
            _ => {}
        }
    }

    /// What "About this box" request `id` found; shown if its panel is still the one open.
    pub fn about_done(&mut self, id: u64, about: About) -> Vec<Effect> {
        if id != self.about_id {
            return vec![];
        }
        if let Some(alert) = self.alert.as_mut().filter(|a| a.title == ABOUT) {
            alert.detail = about.describe();
        }
        vec![]
    }

    /// The feeder's state for the channel playing.
    pub fn feed(&mut self, feed: FeedState) -> Vec<Effect> {
        // In standby the feeder is stopped: a state it sent on the way out shows nothing.
        if self.account.is_none() || self.standby {
            return vec![];
        }
        match feed {
            FeedState::Starting => {}
            FeedState::Playing => {
                (self.status, self.no_signal, self.tuning) = (None, false, false);
            }
            FeedState::Reconnecting => {
                let away_since_now = self.status.is_none();
                self.status = Some("Connection lost \u{2014} reconnecting\u{2026}".into());
                if away_since_now {
                    return vec![Effect::Arm(Timer::NoSignal, super::NO_SIGNAL)];
                }
            }
            FeedState::Refused(reason) => {
                (self.status, self.no_signal, self.tuning) = (None, false, false);
                if self.alert.is_none() {
                    self.alert = Some(Alert::new("Channel not available", capitalise(&reason)));
                }
            }
        }
        vec![]
    }
}

pub(super) fn retry_alert(seconds: u64) -> Alert {
    Alert {
        title: "Too many attempts".into(),
        detail: if seconds > 0 {
            format!("You can try again in {seconds} s.")
        } else {
            "You can try again now.".into()
        },
        countdown: Some(seconds),
        on_ok: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use crate::feed::FeedState;

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
    fn feed_states_show_and_clear() {
        let (mut m, _) = logged_in();
        let fx = m.feed(FeedState::Reconnecting);
        assert!(m.status().is_some_and(|s| s.contains("reconnecting")));
        assert!(matches!(fx[..], [Effect::Arm(Timer::NoSignal, _)]));
        // Still away when the timer fires: the "No signal" screen.
        assert!(m.feed(FeedState::Reconnecting).is_empty(), "armed once");
        m.timer(Timer::NoSignal);
        assert!(m.no_signal());
        m.feed(FeedState::Playing);
        assert!(m.status().is_none() && !m.no_signal());
        // Back before the timer: no screen.
        m.feed(FeedState::Reconnecting);
        m.feed(FeedState::Playing);
        m.timer(Timer::NoSignal);
        assert!(!m.no_signal());
        // A zap clears it too.
        m.feed(FeedState::Reconnecting);
        m.timer(Timer::NoSignal);
        m.action(Action::ChannelUp);
        assert!(!m.no_signal());
        m.feed(FeedState::Refused("not entitled to channel 1".into()));
        assert_eq!(
            m.alert().map(|a| a.detail.as_str()),
            Some("Not entitled to channel 1")
        );
    }

    #[test]
    fn about_this_box_shows_identity_and_the_servers() {
        let (mut m, _) = logged_in();
        m.action(Action::Menu);
        m.action(Action::Down);
        m.action(Action::Down);
        m.action(Action::Down);
        let fx = m.action(Action::Ok);
        let Some(id) = fx.iter().find_map(|e| match e {
            Effect::About(id) => Some(*id),
            _ => None,
        }) else {
            panic!("no About effect: {fx:?}")
        };
        assert_eq!(m.alert().map(|a| a.title.as_str()), Some("About this box"));
        let sample = |serial: &str| About {
            version: "0.1.0".into(),
            serial: serial.into(),
            address: "192.0.2.2".into(),
            keyserver: Ok(12),
            content: Err("connection refused".into()),
        };
        m.about_done(
            id,
            About {
                version: "0.1.0".into(),
                serial: "3f9a".into(),
                address: "192.0.2.2".into(),
                keyserver: Ok(12),
                content: Err("connection refused".into()),
            },
        );
        let detail = &m.alert().expect("panel").detail;
        assert!(
            detail.contains("Certificate 3f9a") && detail.contains("Key server answers (12 ms)")
        );
        assert!(detail.contains("Content server does not answer: connection refused"));
        // Closed and opened again: the first request's late answer is not shown in the second.
        m.action(Action::Ok);
        m.action(Action::Menu);
        for _ in 0..3 {
            m.action(Action::Down);
        }
        m.action(Action::Ok);
        m.about_done(id, sample("old"));
        assert!(!m.alert().expect("panel").detail.contains("old"));
        m.about_done(id + 1, sample("new"));
        assert!(m.alert().expect("panel").detail.contains("Certificate new"));
    }
}
