//! Parental control. The subscriber's age limit comes with the channel list; a channel whose
//! programme on air is rated above it (or whose guide is out of date, or whose rating this
//! box does not know) does not play: the box asks for the parental PIN, which the content
//! server checks (and locks after five wrong ones). The PIN unlocks that programme only, until
//! it ends, standby or logout; a recording of a programme above the limit asks for it again.
//! MENU > Parental control sets the limit (the PIN first, or a new PIN twice the first time).

use super::{Alert, AlertAction, ChannelInfo, Effect, Model, RecordingItem};
use crate::remote::Action;
use crate::session::PinRefusal;
use stb_protocol::content_api::{Programme, rating_age};
use zeroize::Zeroizing;

/// The limits offered, in the order LEFT/RIGHT step through them (None: no lock).
const LIMITS: [Option<u8>; 5] = [None, Some(7), Some(12), Some(16), Some(18)];

/// The panel's title when a programme is locked.
const LOCKED: &str = "Locked programme";
/// The panel's title in the menu.
const SETTINGS: &str = "Parental control";

/// A PIN on its way to the content server: wiped when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// The digits, for the request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// The session's parental control.
#[derive(Debug, Default)]
pub(super) struct Parental {
    /// Programmes rated above this age are locked.
    pub(super) limit: Option<u8>,
    /// Whether the subscriber has a PIN.
    pub(super) pin_set: bool,
    /// The programme the PIN was typed for (channel, start): it plays until it ends.
    unlocked: Option<(u16, i64)>,
    /// Numbers the requests: an answer to an older one (given up with BACK) is ignored.
    asked: u64,
    panel: Option<PinPanel>,
}

#[derive(Debug)]
struct PinPanel {
    purpose: Purpose,
    digits: Pin,
    /// A new PIN typed once, waiting for the second time.
    first: Option<Pin>,
    /// Settings: the limit chosen.
    limit: Option<u8>,
    /// Unlock: why (the rating).
    about: String,
    /// What went wrong last (wrong PIN, the two differ).
    message: String,
    /// The request sent to the content server and not answered yet.
    waiting: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    /// Watch this channel's programme (channel, the programme's start).
    Unlock(u16, i64),
    /// Play this recording.
    Recording(Box<RecordingItem>),
    Settings,
}

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

/// Whether a rating is above `limit`; a rating this box cannot read counts as above (a lock
/// fails closed).
fn above(limit: u8, rating: Option<&str>) -> Option<String> {
    let r = rating.map(str::trim).filter(|r| !r.is_empty())?;
    match rating_age(r) {
        Some(age) if age <= limit => None,
        Some(age) => Some(format!("This programme is rated {age}.")),
        None => Some(format!(
            "This programme's rating ({r}) is not one this box knows."
        )),
    }
}

impl Model {
    /// Why `channel`'s programme is locked now, if it is: the programme on air by the clock
    /// (the guide's now, else its next), locked above the limit; with a limit set and the
    /// guide's programmes past, locked until the guide catches up.
    pub(super) fn locked_programme(&self, channel: &ChannelInfo) -> Option<(i64, String)> {
        let limit = self.parental.limit?;
        let covers = |p: &&Programme| p.airs_at(self.now_ms);
        let on_air = channel
            .now
            .as_ref()
            .filter(covers)
            .or(channel.next.as_ref().filter(covers));
        let (start, why) = match on_air {
            Some(p) => (p.start_ms, above(limit, p.rating.as_deref())?),
            // A guide that has programmes but none now: out of date (a failed poll, or just
            // after standby). Nothing to go by for a channel with no guide at all.
            None if channel.now.is_some() => (
                0,
                "What is on now is not known yet (the guide is out of date).".to_owned(),
            ),
            None => return None,
        };
        (self.parental.unlocked != Some((channel.number, start))).then_some((start, why))
    }

    /// Whether a programme with this rating has its title hidden (guide, list, banner,
    /// recordings): above the limit, typed PIN or not.
    pub fn rating_locked(&self, rating: Option<&str>) -> bool {
        self.parental
            .limit
            .is_some_and(|limit| above(limit, rating).is_some())
    }

    /// Before `number` plays: if its programme is locked, nothing plays and the PIN is
    /// asked for. True: locked.
    pub(super) fn lock_if_needed(&mut self, number: u16, fx: &mut Vec<Effect>) -> bool {
        let Some((start, about)) = self.channel(number).and_then(|c| self.locked_programme(c))
        else {
            return false;
        };
        fx.push(Effect::StopPlaying);
        self.tuning = false;
        self.back_to_live();
        self.open_panel(Purpose::Unlock(number, start), about);
        true
    }

    /// While a live channel plays, whatever is on screen: a programme change (the guide's
    /// now moved on, the clock passed its end) may lock it.
    pub(super) fn recheck_parental(&mut self, fx: &mut Vec<Effect>) {
        if self.standby || self.playback.is_some() {
            return;
        }
        // The lock panel of the channel chosen, not yet answered: the guide may have caught
        // up (after standby, a failed poll) or moved on to a programme within the limit.
        match self
            .parental
            .panel
            .as_ref()
            .map(|p| (&p.purpose, p.waiting))
        {
            Some((&Purpose::Unlock(number, _), None)) => {
                let free = self
                    .channel(number)
                    .is_some_and(|c| self.locked_programme(c).is_none());
                if free && self.current == Some(number) {
                    self.close_pin_panel();
                    fx.push(Effect::Play(number));
                    self.tuning = true;
                }
                return;
            }
            Some((Purpose::Settings, _)) | None => {}
            Some(_) => return,
        }
        if let Some(number) = self.current {
            self.lock_if_needed(number, fx);
        }
    }

    /// A recording above the limit asks for the PIN before it plays. True: asked.
    pub(super) fn lock_recording(&mut self, item: &RecordingItem) -> bool {
        let rating = item.entry.recording.as_ref().and_then(|r| r.rating.clone());
        let Some(about) = self
            .parental
            .limit
            .and_then(|limit| above(limit, rating.as_deref()))
        else {
            return false;
        };
        self.open_panel(Purpose::Recording(Box::new(item.clone())), about);
        true
    }

    /// Whether the programme playing may be recorded (not while it is locked).
    pub(super) fn may_record(&self) -> bool {
        self.current()
            .is_none_or(|c| self.locked_programme(c).is_none())
    }

    fn open_panel(&mut self, purpose: Purpose, about: String) {
        self.parental.panel = Some(PinPanel {
            limit: self.parental.limit,
            purpose,
            digits: Pin(Zeroizing::default()),
            first: None,
            about,
            message: String::new(),
            waiting: None,
        });
        self.show_pin_panel();
    }

    /// MENU > Parental control.
    pub(super) fn open_parental_settings(&mut self) {
        self.open_panel(Purpose::Settings, String::new());
    }

    /// Whether the PIN panel takes the keys.
    pub(super) fn pin_panel_open(&self) -> bool {
        self.parental.panel.is_some()
    }

    /// Standby: the PIN is asked for again after it, as after a logout.
    pub(super) fn relock(&mut self) {
        self.parental.unlocked = None;
        self.parental.panel = None;
    }

    pub(super) fn pin_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let pin_set = self.parental.pin_set;
        let Some(panel) = self.parental.panel.as_mut() else {
            return;
        };
        if panel.waiting.is_some() {
            // BACK gives up waiting; the answer is then ignored.
            if action == Action::Back {
                self.leave_pin_panel();
            }
            return;
        }
        match action {
            Action::Digit(d) if panel.digits.0.len() < 4 => {
                panel.digits.0.push(char::from(b'0' + d));
                panel.message.clear();
            }
            Action::Delete => {
                panel.digits.0.pop();
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
            Action::Ok if panel.digits.0.len() < 4 => {
                panel.message = "Type the four digits of the PIN.".into();
            }
            Action::Ok => {
                let digits = std::mem::replace(&mut panel.digits, Pin(Zeroizing::default()));
                self.parental.asked += 1;
                let id = self.parental.asked;
                match &panel.purpose {
                    Purpose::Unlock(..) | Purpose::Recording(_) => {
                        panel.waiting = Some(id);
                        fx.push(Effect::CheckParentalPin(id, digits));
                    }
                    Purpose::Settings if pin_set => {
                        panel.waiting = Some(id);
                        fx.push(Effect::SetParental {
                            id,
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
                            panel.waiting = Some(id);
                            fx.push(Effect::SetParental {
                                id,
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
                self.leave_pin_panel();
                return;
            }
            _ => return,
        }
        self.show_pin_panel();
    }

    /// BACK: a locked channel leaves the picture for the list (nothing plays); a locked
    /// recording stays in the list.
    fn leave_pin_panel(&mut self) {
        let locked_channel = self
            .parental
            .panel
            .as_ref()
            .is_some_and(|p| matches!(p.purpose, Purpose::Unlock(..)));
        self.close_pin_panel();
        if locked_channel {
            self.screen = super::Screen::Channels;
            self.banner = false;
            self.select_current();
        }
    }

    /// The panel waiting for the answer to request `id`, if it still is.
    fn waiting_for(&mut self, id: u64) -> Option<&mut PinPanel> {
        self.parental
            .panel
            .as_mut()
            .filter(|p| p.waiting == Some(id))
    }

    /// The content server's answer to [`Effect::CheckParentalPin`] number `id`.
    pub fn parental_pin_checked(&mut self, id: u64, result: Result<(), PinRefusal>) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(panel) = self.waiting_for(id) else {
            return fx;
        };
        panel.waiting = None;
        if let Err(why) = result {
            panel.message = why.message;
            self.show_pin_panel();
            return fx;
        }
        let purpose = panel.purpose.clone();
        self.close_pin_panel();
        match purpose {
            Purpose::Unlock(number, start) => {
                self.parental.unlocked = Some((number, start));
                if self.current == Some(number) && !self.standby {
                    fx.push(Effect::Play(number));
                    self.tuning = true;
                }
            }
            Purpose::Recording(item) => self.start_playback(*item, &mut fx),
            Purpose::Settings => {}
        }
        fx
    }

    /// The content server's answer to [`Effect::SetParental`] number `id`.
    pub fn parental_set(&mut self, id: u64, result: Result<(), PinRefusal>) -> Vec<Effect> {
        let mut fx = Vec::new();
        let pin_set = self.parental.pin_set;
        let Some(panel) = self.waiting_for(id) else {
            return fx;
        };
        panel.waiting = None;
        match result {
            Ok(()) => {
                let limit = panel.limit;
                (self.parental.limit, self.parental.pin_set) = (limit, true);
                // It applies at once, to whoever holds the remote next.
                self.parental.unlocked = None;
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
            // A PIN set meanwhile from another box: this one asks for it from now on.
            Err(why) if !pin_set && why.wrong_pin => {
                panel.message = "A parental PIN is already set for your account: type it.".into();
                self.parental.pin_set = true;
                self.show_pin_panel();
            }
            Err(why) => {
                panel.message = why.message;
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
        let typed = panel.digits.0.len();
        let dots: Vec<&str> = (0..4)
            .map(|i| if i < typed { "\u{2022}" } else { "_" })
            .collect();
        let pin_line = if panel.waiting.is_some() {
            "Checking the PIN\u{2026}".to_owned()
        } else {
            format!("PIN  {}", dots.join(" "))
        };
        let (title, detail) = match panel.purpose {
            Purpose::Unlock(..) | Purpose::Recording(_) => (
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
        let mut detail = format!("{detail}\n{pin_line}");
        if !panel.message.is_empty() {
            detail = format!("{}\n{detail}", panel.message);
        }
        self.alert = Some(Alert::new(title, detail).with(AlertAction::Pin));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::{LOCKED, Parental};
    use stb_protocol::content_api::{NowNext, OnAir, Programme};

    const NOW: i64 = 1_800_000_000_000;

    /// Channel 1 plays a programme for all ages; the guide is current.
    fn watching_with_limit(limit: u8) -> Model {
        let (mut m, _) = logged_in();
        m.set_now(NOW);
        m.parental = Parental::new(Some(limit), true);
        rated(&mut m, 1, "News", "U");
        m
    }

    fn rated(m: &mut Model, channel: u16, title: &str, rating: &str) -> Vec<Effect> {
        let mut p = Programme::titled(title, NOW - 60_000, NOW + 3_600_000);
        p.rating = Some(rating.into());
        m.on_air(OnAir {
            channels: vec![NowNext {
                number: channel,
                now: Some(p),
                next: None,
            }],
        })
    }

    fn pin_sent(fx: &[Effect]) -> Option<(u64, String)> {
        fx.iter().find_map(|e| match e {
            Effect::CheckParentalPin(id, pin) => Some((*id, pin.expose().to_owned())),
            _ => None,
        })
    }

    fn type_pin(m: &mut Model, pin: [u8; 4]) -> Vec<Effect> {
        for d in pin {
            m.action(Action::Digit(d));
        }
        m.action(Action::Ok)
    }

    #[test]
    fn a_programme_above_the_limit_plays_only_after_the_pin() {
        let mut m = watching_with_limit(12);
        rated(&mut m, 2, "Late film", "18");
        let fx = m.action(Action::ChannelUp);
        assert!(plays(&fx).is_empty(), "nothing of channel 2 plays");
        assert!(fx.iter().any(|e| matches!(e, Effect::StopPlaying)));
        let alert = m.alert().expect("panel");
        assert_eq!(alert.title, LOCKED);
        assert!(
            alert.detail.starts_with("This programme is rated 18."),
            "{}",
            alert.detail
        );
        assert!(
            !alert.detail.contains("Late film"),
            "the title stays hidden"
        );
        for d in [1, 2, 3] {
            m.action(Action::Digit(d));
        }
        m.action(Action::Ok);
        assert!(m.alert().expect("panel").detail.contains("four digits"));
        let fx = m.action(Action::Digit(4));
        assert!(pin_sent(&fx).is_none());
        let (id, pin) = pin_sent(&m.action(Action::Ok)).expect("sent");
        assert_eq!(pin, "1234");
        // Wrong: the server's words, the digits cleared.
        m.parental_pin_checked(
            id,
            Err("Wrong PIN, 4 tries left before a 15-minute lock".into()),
        );
        assert!(
            m.alert()
                .expect("panel")
                .detail
                .starts_with("Wrong PIN, 4 tries left")
        );
        let (id, _) = pin_sent(&type_pin(&mut m, [1, 2, 3, 5])).expect("sent");
        let fx = m.parental_pin_checked(id, Ok(()));
        assert_eq!(plays(&fx), vec![2]);
        assert!(m.alert().is_none());
        // That programme only: another rated channel asks again...
        rated(&mut m, 4, "Other film", "18");
        assert!(plays(&m.action(Action::ChannelUp)).is_empty());
        assert_eq!(m.alert().expect("panel").title, LOCKED);
        m.action(Action::Back);
        // ...and standby forgets the unlock: POWER wakes to the panel, not the picture.
        m.action(Action::Power);
        assert_eq!(m.parental.unlocked, None);
        let fx = m.action(Action::Power);
        assert!(plays(&fx).is_empty());
        assert_eq!(m.alert().expect("panel").title, LOCKED);
    }

    #[test]
    fn programme_changes_lock_on_any_screen_and_stale_guides_lock() {
        let mut m = watching_with_limit(16);
        rated(&mut m, 2, "Quiz", "12");
        assert_eq!(plays(&m.action(Action::ChannelUp)), vec![2]);
        // The viewer is on the channel list (the picture plays under it) with the menu's
        // parental settings open when the film starts: it stops all the same.
        m.action(Action::Ok);
        assert_eq!(m.screen(), Screen::Channels);
        m.open_parental_settings();
        let fx = rated(&mut m, 2, "Night film", "-18");
        assert!(fx.iter().any(|e| matches!(e, Effect::StopPlaying)));
        assert_eq!(m.alert().expect("panel").title, LOCKED);
        m.action(Action::Back);
        assert!(m.alert().is_none());
        assert_eq!(m.screen(), Screen::Channels);
        // A guide whose programmes are all past (channel 1's test guide ended long ago):
        // the channel playing locks until it catches up.
        let (mut m, _) = logged_in();
        m.parental = Parental::new(Some(16), true);
        m.set_now(NOW);
        let fx = rated(&mut m, 2, "Quiz", "12");
        assert!(fx.iter().any(|e| matches!(e, Effect::StopPlaying)));
        assert!(m.alert().expect("panel").detail.contains("out of date"));
        // The guide catches up: the programme is within the limit, it plays by itself.
        let fx = rated(&mut m, 1, "News", "U");
        assert_eq!(plays(&fx), vec![1]);
        assert!(m.alert().is_none());
        // A rating this box cannot read is locked too.
        let mut m = watching_with_limit(16);
        rated(&mut m, 2, "Import", "Z-99X");
        assert!(plays(&m.action(Action::ChannelUp)).is_empty());
    }

    #[test]
    fn a_locked_programme_is_not_recorded_and_recordings_above_the_limit_ask() {
        let mut m = watching_with_limit(12);
        rated(&mut m, 2, "Late film", "18");
        m.action(Action::ChannelUp);
        m.action(Action::Back);
        m.action(Action::Back);
        assert_eq!(m.screen(), Screen::Player);
        let fx = m.action(Action::Record);
        assert!(!fx.iter().any(|e| matches!(e, Effect::Record(_))));
        assert_eq!(m.alert().expect("refused").title, "Locked programme");
        m.action(Action::Ok);
        // A recording made of it (elsewhere, or before the limit) asks for the PIN.
        let entry = stb_protocol::locker::Entry {
            object: stb_protocol::locker::ObjectId::random(),
            name: "late-film.ts".into(),
            size: 1_000,
            modified_ms: NOW,
            kind: stb_protocol::locker::Kind::Recording,
            recording: Some(stb_protocol::locker::Recording {
                channel: 2,
                channel_name: "Channel 2".into(),
                title: "Late film".into(),
                start_ms: NOW,
                duration_ms: 60_000,
                rating: Some("18".into()),
                marks: vec![],
            }),
        };
        let item = RecordingItem { entry };
        assert!(m.lock_recording(&item));
        assert_eq!(m.alert().expect("panel").title, LOCKED);
        let (id, _) = pin_sent(&type_pin(&mut m, [4, 4, 2, 0])).expect("sent");
        let fx = m.parental_pin_checked(id, Ok(()));
        assert!(fx.iter().any(|e| matches!(e, Effect::PlayRecording(_))));
    }

    #[test]
    fn an_answer_to_a_request_given_up_is_ignored() {
        let mut m = watching_with_limit(12);
        m.open_parental_settings();
        m.action(Action::Left);
        let fx = type_pin(&mut m, [4, 4, 2, 0]);
        let Some(Effect::SetParental { id, .. }) = fx
            .into_iter()
            .find(|e| matches!(e, Effect::SetParental { .. }))
        else {
            panic!("no request");
        };
        // BACK while it is checked; a locked channel's panel opens; the late answer to the
        // settings must not land on it.
        m.action(Action::Back);
        rated(&mut m, 2, "Late film", "18");
        m.action(Action::ChannelUp);
        assert_eq!(m.alert().expect("panel").title, LOCKED);
        let (check, _) = pin_sent(&type_pin(&mut m, [0, 0, 0, 0])).expect("sent");
        assert!(m.parental_set(id, Ok(())).is_empty());
        assert_eq!(m.parental.limit, Some(12), "the limit is not changed by it");
        assert!(plays(&m.parental_pin_checked(check + 1, Ok(()))).is_empty());
        assert_eq!(m.alert().expect("panel").title, LOCKED);
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
        let fx = type_pin(&mut m, [4, 4, 2, 0]);
        assert!(fx.iter().all(|e| !matches!(e, Effect::SetParental { .. })));
        type_pin(&mut m, [4, 4, 2, 1]);
        assert!(
            m.alert()
                .expect("panel")
                .detail
                .contains("The two PINs differ")
        );
        type_pin(&mut m, [4, 4, 2, 0]);
        let fx = type_pin(&mut m, [4, 4, 2, 0]);
        let Some(Effect::SetParental { id, pin, max_age }) = fx
            .into_iter()
            .find(|e| matches!(e, Effect::SetParental { .. }))
        else {
            panic!("no request");
        };
        assert_eq!((pin.expose(), max_age), ("4420", Some(12)));
        assert_eq!(format!("{pin:?}"), "Pin(****)", "never printed");
        m.parental_set(id, Ok(()));
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
