//! Parental control. The subscriber's age limit comes with the channel list; a channel whose
//! programme on air is rated above it does not play: the box asks for the parental PIN,
//! which the content server checks (and locks after five wrong ones). Once the PIN is typed,
//! nothing is locked until standby or logout. MENU > Parental control sets the limit (the
//! PIN first, or a new PIN twice the first time).

use super::{Alert, AlertAction, ChannelInfo, Effect, Model, Screen};
use crate::remote::Action;
use stb_protocol::content_api::rating_age;
use zeroize::Zeroizing;

/// The limits offered, in the order LEFT/RIGHT step through them (None: no lock).
const LIMITS: [Option<u8>; 5] = [None, Some(7), Some(12), Some(16), Some(18)];

/// The panel's title when a programme is locked.
const LOCKED: &str = "Locked programme";
/// The panel's title in the menu.
const SETTINGS: &str = "Parental control";

/// The session's parental control.
#[derive(Debug, Default)]
pub(super) struct Parental {
    /// Programmes rated above this age are locked.
    pub(super) limit: Option<u8>,
    /// Whether the subscriber has a PIN.
    pub(super) pin_set: bool,
    /// The PIN was typed this session: nothing is locked until standby or logout.
    unlocked: bool,
    panel: Option<PinPanel>,
}

#[derive(Debug)]
struct PinPanel {
    purpose: Purpose,
    digits: Zeroizing<String>,
    /// A new PIN typed once, waiting for the second time.
    first: Option<Zeroizing<String>>,
    /// Settings: the limit chosen.
    limit: Option<u8>,
    /// Unlock: the programme and its rating.
    about: String,
    /// What went wrong last (wrong PIN, the two differ).
    message: String,
    /// Sent to the content server, no answer yet.
    waiting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Watch this channel's programme.
    Unlock(u16),
    Settings,
}

/// A PIN for the content server; wiped when dropped.
pub type Pin = Zeroizing<String>;

impl Parental {
    /// A fresh session's settings.
    pub(super) fn new(limit: Option<u8>, pin_set: bool) -> Self {
        Self {
            limit,
            pin_set,
            ..Self::default()
        }
    }
}

impl Model {
    /// The age and title of `channel`'s programme on air if parental control locks it now.
    pub(super) fn locked_programme(&self, channel: &ChannelInfo) -> Option<(u8, String)> {
        let limit = self.parental.limit?;
        if self.parental.unlocked {
            return None;
        }
        let now = channel.now.as_ref()?;
        let age = rating_age(now.rating.as_deref()?)?;
        (age > limit).then(|| (age, now.title.clone()))
    }

    /// Whether a programme with this rating is hidden in the guide and on the banner.
    pub fn rating_locked(&self, rating: Option<&str>) -> bool {
        match (self.parental.limit, rating.and_then(rating_age)) {
            (Some(limit), Some(age)) => !self.parental.unlocked && age > limit,
            _ => false,
        }
    }

    /// Before `number` plays: if its programme is locked, nothing plays and the PIN is
    /// asked for. True: locked.
    pub(super) fn lock_if_needed(&mut self, number: u16, fx: &mut Vec<Effect>) -> bool {
        let Some((age, title)) = self.channel(number).and_then(|c| self.locked_programme(c)) else {
            return false;
        };
        fx.push(Effect::StopPlaying);
        self.tuning = false;
        self.parental.panel = Some(PinPanel {
            purpose: Purpose::Unlock(number),
            digits: Zeroizing::default(),
            first: None,
            limit: None,
            about: format!("\"{title}\" is rated {age}."),
            message: String::new(),
            waiting: false,
        });
        self.show_pin_panel();
        true
    }

    /// A programme change on the channel playing (the guide's now moved on).
    pub(super) fn recheck_parental(&mut self, fx: &mut Vec<Effect>) {
        if self.standby || self.parental.panel.is_some() || self.screen != Screen::Player {
            return;
        }
        if let Some(number) = self.current {
            self.lock_if_needed(number, fx);
        }
    }

    /// MENU > Parental control.
    pub(super) fn open_parental_settings(&mut self) {
        self.parental.panel = Some(PinPanel {
            purpose: Purpose::Settings,
            digits: Zeroizing::default(),
            first: None,
            limit: self.parental.limit,
            about: String::new(),
            message: String::new(),
            waiting: false,
        });
        self.show_pin_panel();
    }

    /// Whether the PIN panel takes the keys.
    pub(super) fn pin_panel_open(&self) -> bool {
        self.parental.panel.is_some()
    }

    /// Standby: the PIN is asked for again after it, as after a logout.
    pub(super) fn relock(&mut self) {
        self.parental.unlocked = false;
        self.parental.panel = None;
    }

    pub(super) fn pin_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let pin_set = self.parental.pin_set;
        let Some(panel) = self.parental.panel.as_mut() else {
            return;
        };
        if panel.waiting {
            // BACK gives up waiting; the answer is then ignored.
            if action == Action::Back {
                self.close_pin_panel();
            }
            return;
        }
        match action {
            Action::Digit(d) if panel.digits.len() < 4 => {
                panel.digits.push(char::from(b'0' + d));
                panel.message.clear();
            }
            Action::Delete => {
                panel.digits.pop();
            }
            Action::Left | Action::Right
                if panel.purpose == Purpose::Settings && panel.first.is_none() =>
            {
                let i = LIMITS.iter().position(|l| *l == panel.limit).unwrap_or(0);
                let step = if action == Action::Right {
                    1
                } else {
                    LIMITS.len() - 1
                };
                panel.limit = LIMITS[(i + step) % LIMITS.len()];
            }
            Action::Ok if panel.digits.len() < 4 => {
                panel.message = "Type the four digits of the PIN.".into();
            }
            Action::Ok => {
                let digits = std::mem::take(&mut panel.digits);
                match panel.purpose {
                    Purpose::Unlock(_) => {
                        panel.waiting = true;
                        fx.push(Effect::CheckParentalPin(digits));
                    }
                    Purpose::Settings if pin_set => {
                        panel.waiting = true;
                        fx.push(Effect::SetParental {
                            pin: digits,
                            max_age: panel.limit,
                        });
                    }
                    // The first PIN: typed twice, so a slip does not set one nobody knows.
                    Purpose::Settings => match panel.first.take() {
                        None => {
                            panel.first = Some(digits);
                            panel.message = "Type the new PIN again.".into();
                        }
                        Some(first) if first == digits => {
                            panel.waiting = true;
                            fx.push(Effect::SetParental {
                                pin: digits,
                                max_age: panel.limit,
                            });
                        }
                        Some(_) => {
                            panel.message = "The two PINs differ. Choose a new PIN.".into();
                        }
                    },
                }
            }
            Action::Back => {
                let locked = matches!(panel.purpose, Purpose::Unlock(_));
                self.close_pin_panel();
                if locked {
                    // Nothing plays: the list, to choose another channel.
                    self.screen = Screen::Channels;
                    self.banner = false;
                    self.select_current();
                }
                return;
            }
            _ => return,
        }
        self.show_pin_panel();
    }

    /// The content server's answer to [`Effect::CheckParentalPin`].
    pub fn parental_pin_checked(&mut self, result: Result<(), String>) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(panel) = self.parental.panel.as_mut().filter(|p| p.waiting) else {
            return fx;
        };
        panel.waiting = false;
        match (result, panel.purpose) {
            (Ok(()), Purpose::Unlock(number)) => {
                self.parental.unlocked = true;
                self.close_pin_panel();
                if self.current == Some(number) && !self.standby {
                    fx.push(Effect::Play(number));
                    self.tuning = true;
                }
            }
            (Err(why), _) => {
                panel.message = why;
                self.show_pin_panel();
            }
            (Ok(()), Purpose::Settings) => {}
        }
        fx
    }

    /// The content server's answer to [`Effect::SetParental`].
    pub fn parental_set(&mut self, result: Result<(), String>) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(panel) = self.parental.panel.as_mut().filter(|p| p.waiting) else {
            return fx;
        };
        panel.waiting = false;
        match result {
            Ok(()) => {
                let limit = panel.limit;
                (self.parental.limit, self.parental.pin_set) = (limit, true);
                // It applies at once, to whoever holds the remote next.
                self.parental.unlocked = false;
                self.close_pin_panel();
                let text = match limit {
                    Some(age) => {
                        format!("Parental control: programmes rated above {age} are locked")
                    }
                    None => "Parental control: nothing is locked".to_owned(),
                };
                self.show_notice(text, &mut fx);
                self.recheck_parental(&mut fx);
            }
            Err(why) => {
                panel.message = why;
                self.show_pin_panel();
            }
        }
        fx
    }

    fn close_pin_panel(&mut self) {
        self.parental.panel = None;
        self.alert = None;
    }

    /// The panel as an alert: what it is for, the limit, the PIN as dots, what went wrong.
    fn show_pin_panel(&mut self) {
        let Some(panel) = &self.parental.panel else {
            return;
        };
        let dots: String = (0..4)
            .map(|i| {
                if i < panel.digits.len() {
                    '\u{2022}'
                } else {
                    '_'
                }
            })
            .flat_map(|c| [c, ' '])
            .collect();
        let pin_line = if panel.waiting {
            "Checking the PIN\u{2026}".to_owned()
        } else {
            format!("PIN  {}", dots.trim_end())
        };
        let (title, mut detail) = match panel.purpose {
            Purpose::Unlock(_) => (
                LOCKED,
                format!(
                    "{} Type the parental PIN with the digit keys to watch it.",
                    panel.about
                ),
            ),
            Purpose::Settings => {
                let limit = match panel.limit {
                    Some(age) => format!("above {age}"),
                    None => "none (nothing is locked)".to_owned(),
                };
                let ask = match (self.parental.pin_set, &panel.first) {
                    (true, _) => "Type your parental PIN to save.",
                    (false, None) => "Choose a 4-digit parental PIN.",
                    (false, Some(_)) => "Type the new PIN again.",
                };
                (
                    SETTINGS,
                    format!("Lock programmes rated: {limit} (LEFT/RIGHT change it)\n{ask}"),
                )
            }
        };
        detail = format!("{detail}\n{pin_line}");
        if !panel.message.is_empty() {
            detail = format!("{}\n{detail}", panel.message);
        }
        let mut alert = Alert::new(title, detail).with(AlertAction::Pin);
        alert.title = title.to_owned();
        self.alert = Some(alert);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::{LOCKED, Parental};
    use stb_protocol::content_api::{NowNext, OnAir, Programme};

    fn rated(m: &mut Model, channel: u16, rating: &str) {
        let mut p = Programme::titled("Late film", 0, i64::MAX);
        p.rating = Some(rating.into());
        m.on_air(OnAir {
            channels: vec![NowNext {
                number: channel,
                now: Some(p),
                next: None,
            }],
        });
    }

    fn pin_sent(fx: &[Effect]) -> Option<String> {
        fx.iter().find_map(|e| match e {
            Effect::CheckParentalPin(pin) => Some(pin.to_string()),
            _ => None,
        })
    }

    #[test]
    fn a_programme_above_the_limit_plays_only_after_the_pin() {
        let (mut m, _) = logged_in();
        m.parental = Parental::new(Some(12), true);
        rated(&mut m, 2, "18");
        let fx = m.action(Action::ChannelUp);
        assert!(plays(&fx).is_empty(), "nothing of channel 2 plays");
        assert!(fx.iter().any(|e| matches!(e, Effect::StopPlaying)));
        let alert = m.alert().expect("panel");
        assert_eq!(alert.title, LOCKED);
        assert!(
            alert.detail.contains("\"Late film\" is rated 18."),
            "{}",
            alert.detail
        );
        for d in [1, 2, 3] {
            m.action(Action::Digit(d));
        }
        m.action(Action::Ok);
        assert!(m.alert().expect("panel").detail.contains("four digits"));
        let fx = m.action(Action::Digit(4));
        assert!(pin_sent(&fx).is_none());
        let fx = m.action(Action::Ok);
        assert_eq!(pin_sent(&fx).as_deref(), Some("1234"));
        // Wrong: the server's words, the digits cleared.
        m.parental_pin_checked(Err("Wrong PIN, 4 tries left before a 15-minute lock".into()));
        assert!(
            m.alert()
                .expect("panel")
                .detail
                .starts_with("Wrong PIN, 4 tries left")
        );
        for d in [1, 2, 3, 5] {
            m.action(Action::Digit(d));
        }
        m.action(Action::Ok);
        let fx = m.parental_pin_checked(Ok(()));
        assert_eq!(plays(&fx), vec![2]);
        assert!(m.alert().is_none());
        // Unlocked for the session: a rated channel plays at once...
        rated(&mut m, 4, "18");
        assert_eq!(plays(&m.action(Action::ChannelUp)), vec![4]);
        // ...until standby.
        m.action(Action::Power);
        let fx = m.action(Action::Power);
        assert!(plays(&fx).is_empty());
        assert_eq!(m.alert().expect("panel").title, LOCKED);
    }

    #[test]
    fn back_on_a_locked_programme_goes_to_the_list_and_programme_changes_lock() {
        let (mut m, _) = logged_in();
        m.parental = Parental::new(Some(16), true);
        rated(&mut m, 2, "12");
        assert_eq!(plays(&m.action(Action::ChannelUp)), vec![2]);
        // The film starts on the channel playing: it stops.
        rated(&mut m, 2, "-18");
        assert_eq!(m.alert().expect("panel").title, LOCKED);
        m.action(Action::Back);
        assert!(m.alert().is_none());
        assert_eq!(m.screen(), Screen::Channels);
    }

    #[test]
    fn the_first_pin_is_typed_twice_and_the_limit_chosen_with_left_right() {
        let (mut m, _) = logged_in();
        m.open_parental_settings();
        assert!(
            m.alert()
                .expect("panel")
                .detail
                .contains("none (nothing is locked)")
        );
        m.action(Action::Right);
        m.action(Action::Right);
        assert!(m.alert().expect("panel").detail.contains("above 12"));
        for d in [4, 4, 2, 0] {
            m.action(Action::Digit(d));
        }
        assert!(
            m.action(Action::Ok)
                .iter()
                .all(|e| !matches!(e, Effect::SetParental { .. }))
        );
        for d in [4, 4, 2, 1] {
            m.action(Action::Digit(d));
        }
        m.action(Action::Ok);
        assert!(
            m.alert()
                .expect("panel")
                .detail
                .contains("The two PINs differ")
        );
        for pin in [[4, 4, 2, 0], [4, 4, 2, 0]] {
            for d in pin {
                m.action(Action::Digit(d));
            }
            let fx = m.action(Action::Ok);
            if let Some(Effect::SetParental { pin, max_age }) =
                fx.iter().find(|e| matches!(e, Effect::SetParental { .. }))
            {
                assert_eq!((pin.as_str(), *max_age), ("4420", Some(12)));
            }
        }
        m.parental_set(Ok(()));
        assert_eq!(m.parental.limit, Some(12));
        assert_eq!(
            m.notice(),
            Some("Parental control: programmes rated above 12 are locked")
        );
        // From now on the PIN is asked for once.
        m.open_parental_settings();
        assert!(
            m.alert()
                .expect("panel")
                .detail
                .contains("Type your parental PIN to save.")
        );
    }
}
