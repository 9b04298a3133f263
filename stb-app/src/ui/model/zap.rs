//! The channel list and the player: moving through the list, tuning by number, CH+/CH-,
//! last channel, favourites, and the rules that refuse a channel outside the package.

use super::overlays::Alert;
use super::{Effect, Model, Screen, Timer, TrackKind};
use crate::remote::Action;
use stb_protocol::content_api::ChannelInfo;
use std::time::Duration;

/// How long digits typed on the player wait for the next digit.
pub const NUMBER_ENTRY: Duration = Duration::from_millis(2000);
/// How long the info banner stays after a zap.
pub const BANNER: Duration = Duration::from_secs(5);

impl Model {
    pub(super) fn list_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let n = self.listed().len();
        match action {
            Action::Up if n > 0 => self.selected = (self.selected + n - 1) % n,
            Action::Down if n > 0 => self.selected = (self.selected + 1) % n,
            Action::Ok if !self.entry.is_empty() => {
                fx.push(Effect::Cancel(Timer::NumberEntry));
                self.tune_entry(fx);
            }
            Action::Ok => {
                if let Some(number) = self.listed().get(self.selected).map(|c| c.number) {
                    self.tune(number, fx);
                }
            }
            // Left and right switch between every channel and the favourites.
            Action::Left | Action::Right => {
                self.favourites_only = !self.favourites_only;
                self.select_current();
            }
            Action::Favourite => {
                if let Some(number) = self.listed().get(self.selected).map(|c| c.number) {
                    self.toggle_favourite(number, fx);
                    // The row may have left the favourites shown: stay in the list.
                    self.selected = self.selected.min(self.listed().len().saturating_sub(1));
                }
            }
            Action::Back if !self.entry.is_empty() => self.cancel_entry(fx),
            Action::Back if self.current.is_some() => self.screen = Screen::Player,
            Action::Digit(d) => self.type_digit(d, fx),
            Action::ChannelUp | Action::ChannelDown | Action::LastChannel => {
                // A number half typed on the list would otherwise tune when its timer ends.
                if !self.entry.is_empty() {
                    self.cancel_entry(fx);
                }
                self.screen = Screen::Player;
                self.player_action(action, fx);
            }
            Action::Menu => self.open_menu(fx),
            Action::Guide => self.open_guide(fx),
            Action::Audio => self.next_track(TrackKind::Sound, fx),
            Action::Subtitles => self.next_track(TrackKind::Subtitles, fx),
            Action::VolumeUp | Action::VolumeDown | Action::Mute => self.volume_action(action, fx),
            _ => {}
        }
    }

    /// The menu, with no number half typed behind it (its timer would tune under the menu).
    pub(super) fn open_menu(&mut self, fx: &mut Vec<Effect>) {
        if !self.entry.is_empty() {
            self.cancel_entry(fx);
        }
        self.menu = Some(0);
    }

    pub(super) fn player_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::Digit(d) => self.type_digit(d, fx),
            Action::Ok if !self.entry.is_empty() => {
                fx.push(Effect::Cancel(Timer::NumberEntry));
                self.tune_entry(fx);
            }
            Action::Back if !self.entry.is_empty() => self.cancel_entry(fx),
            Action::Ok | Action::Back => {
                self.screen = Screen::Channels;
                self.banner = false;
                self.select_current();
            }
            Action::Favourite => {
                if let Some(number) = self.current {
                    self.toggle_favourite(number, fx);
                    self.banner = true;
                    fx.push(Effect::Arm(Timer::Banner, BANNER));
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
            Action::Menu => self.open_menu(fx),
            Action::Guide => self.open_guide(fx),
            Action::Audio => self.next_track(TrackKind::Sound, fx),
            Action::Subtitles => self.next_track(TrackKind::Subtitles, fx),
            Action::VolumeUp | Action::VolumeDown | Action::Mute => self.volume_action(action, fx),
            Action::Record
            | Action::PlayPause
            | Action::Stop
            | Action::FastForward
            | Action::Rewind => self.live_media_action(action, fx),
            _ => {}
        }
    }

    /// The highlight on the channel playing, if the list shows it; else on the first row.
    pub(super) fn select_current(&mut self) {
        let listed = self.listed();
        self.selected = self
            .current
            .and_then(|n| listed.iter().position(|c| c.number == n))
            .unwrap_or(0);
    }

    /// Adds `number` to the favourites (at the end) or takes it out, and has the list stored.
    fn toggle_favourite(&mut self, number: u16, fx: &mut Vec<Effect>) {
        let Some(account) = self.account.as_mut() else {
            return;
        };
        match account.favourites.iter().position(|&n| n == number) {
            Some(i) => {
                account.favourites.remove(i);
            }
            None => account.favourites.push(number),
        }
        fx.push(Effect::SaveFavourites(account.favourites.clone()));
    }

    /// CH+/CH-: the next channel in the subscription, in list order (the favourites' when the
    /// list shows them and one is watchable), wrapping.
    pub(super) fn step_channel(&mut self, dir: i32, fx: &mut Vec<Effect>) {
        let watchable = |listed: Vec<&ChannelInfo>| -> Vec<u16> {
            listed
                .into_iter()
                .filter(|c| c.entitled)
                .map(|c| c.number)
                .collect()
        };
        let mut entitled = watchable(self.listed());
        if entitled.is_empty() {
            entitled = watchable(self.channels().iter().collect());
        }
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

    /// A digit of a channel number (at most 3; a 4th starts again); the entry ends after
    /// [`NUMBER_ENTRY`] without a digit, or with OK.
    pub(super) fn type_digit(&mut self, d: u8, fx: &mut Vec<Effect>) {
        if self.entry.len() >= 3 {
            self.entry.clear();
        }
        self.entry.push(char::from(b'0' + d));
        fx.push(Effect::Arm(Timer::NumberEntry, NUMBER_ENTRY));
    }

    fn cancel_entry(&mut self, fx: &mut Vec<Effect>) {
        self.entry.clear();
        fx.push(Effect::Cancel(Timer::NumberEntry));
    }

    /// Digits typed on the list moved the highlight to that channel, or to the first one
    /// above the number when there is none (the list is in number order; the favourites'
    /// list keeps its own order, so a number not among them shows every channel).
    pub(super) fn jump_to_entry(&mut self) {
        let entry = std::mem::take(&mut self.entry);
        let Ok(n) = entry.parse::<u16>() else { return };
        if self.favourites_only {
            // A favourite by its number; any other number is looked for among all channels.
            match self.listed().iter().position(|c| c.number == n) {
                Some(i) => return self.selected = i,
                None => self.favourites_only = false,
            }
        }
        if let Some(i) = self.row_of_number(n) {
            self.selected = i;
        }
    }

    /// The row of channel `n` among all channels, or of the first one above it, or the last.
    pub(super) fn row_of_number(&self, n: u16) -> Option<usize> {
        let channels = self.channels();
        channels
            .iter()
            .position(|c| c.number >= n)
            .or(channels.len().checked_sub(1))
    }

    pub(super) fn tune_entry(&mut self, fx: &mut Vec<Effect>) {
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
    pub(super) fn tune(&mut self, number: u16, fx: &mut Vec<Effect>) {
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
        if self.lock_if_needed(number, fx) {
            if self.current != Some(number) {
                self.last = self.current;
                self.current = Some(number);
            }
            (self.status, self.no_signal) = (None, false);
            return;
        }
        self.banner = true;
        (self.status, self.no_signal) = (None, false);
        fx.push(Effect::Cancel(Timer::NoSignal));
        fx.push(Effect::Arm(Timer::Banner, BANNER));
        // The same channel is tuned again to come back to live, or after a recording
        // played in its place.
        let played_recording = std::mem::take(&mut self.played_recording);
        let again = self.behind_live_ms() > 0 || played_recording;
        if self.current != Some(number) || again {
            if self.current != Some(number) {
                self.last = self.current;
                self.current = Some(number);
            }
            fx.push(Effect::Play(number));
            self.tuning = true;
        }
        self.back_to_live();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

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
    fn digits_on_the_list_move_the_highlight_and_ok_tunes() {
        let (mut m, _) = logged_in();
        m.action(Action::Back);
        assert_eq!(m.screen(), Screen::Channels);
        m.action(Action::Digit(4));
        assert_eq!((m.entry(), m.screen()), ("4", Screen::Channels));
        m.timer(Timer::NumberEntry);
        assert_eq!(
            (m.selected(), m.entry()),
            (3, ""),
            "channel 4 is the 4th row"
        );
        m.action(Action::Digit(9));
        m.timer(Timer::NumberEntry);
        assert_eq!(m.selected(), 3, "past the end: the last row");
        m.action(Action::Digit(2));
        let fx = m.action(Action::Ok);
        assert_eq!(plays(&fx), vec![2]);
        assert_eq!(m.screen(), Screen::Player);
        m.action(Action::Back);
        m.action(Action::Digit(1));
        let fx = m.action(Action::ChannelUp);
        assert_eq!(
            (plays(&fx), m.entry()),
            (vec![4], ""),
            "CH+ drops the half-typed number"
        );
        m.action(Action::Digit(1));
        m.action(Action::Menu);
        assert_eq!((m.entry(), m.menu()), ("", Some(0)), "so does MENU");
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

    fn saved(fx: &[Effect]) -> Option<Vec<u16>> {
        fx.iter().find_map(|e| match e {
            Effect::SaveFavourites(list) => Some(list.clone()),
            _ => None,
        })
    }

    #[test]
    fn favourites_are_toggled_stored_listed_and_zapped_through() {
        let (mut m, _) = logged_in();
        assert_eq!(m.current().map(|c| c.number), Some(1));
        // FAV on the picture: the channel playing joins the favourites, stored at once.
        assert_eq!(saved(&m.action(Action::Favourite)), Some(vec![1]));
        // On the list, FAV on channel 4, then RIGHT: only the favourites, in their order.
        m.action(Action::Back);
        for _ in 0..3 {
            m.action(Action::Down);
        }
        assert_eq!(saved(&m.action(Action::Favourite)), Some(vec![1, 4]));
        m.action(Action::Right);
        assert!(m.favourites_only());
        let listed: Vec<u16> = m.listed().iter().map(|c| c.number).collect();
        assert_eq!(listed, [1, 4]);
        assert_eq!(m.selected(), 0, "the highlight on the channel playing");
        // CH+ goes through the favourites only.
        let fx = m.action(Action::ChannelUp);
        assert_eq!(plays(&fx), [4]);
        let fx = m.action(Action::ChannelUp);
        assert_eq!(plays(&fx), [1]);
        // FAV again on the list takes a channel out; the highlight stays in the list.
        m.action(Action::Back);
        m.action(Action::Down);
        assert_eq!(saved(&m.action(Action::Favourite)), Some(vec![1]));
        assert_eq!(m.selected(), 0);
        // A number not among the favourites is looked for among all channels.
        m.action(Action::Digit(3));
        m.timer(Timer::NumberEntry);
        assert!(!m.favourites_only());
        assert_eq!(m.listed()[m.selected()].number, 3);
        // LEFT/RIGHT with no favourite at all: an empty list, nothing tunes.
        m.action(Action::Ok);
        let (mut m, _) = logged_in();
        m.action(Action::Back);
        m.action(Action::Left);
        assert!(m.favourites_only() && m.listed().is_empty());
        assert!(plays(&m.action(Action::Ok)).is_empty());
        assert!(saved(&m.action(Action::Favourite)).is_none());
    }

    /// The highlighted row of the guide, by channel number.
    fn guide_on(m: &Model) -> Option<u16> {
        let view = m.guide_view()?;
        view.rows.iter().find(|r| r.highlighted).map(|r| r.number)
    }

    #[test]
    fn favourites_list_with_the_guide_the_menu_and_removed_channels() {
        let mut m = Model::new(rules(false));
        submit(&mut m, "alice", "Secret#1");
        // 99 left the catalogue since it was stored: dropped at login.
        m.login_done(Ok(LoggedIn {
            favourites: vec![4, 99, 1],
            parental_age: None,
            parental_pin: false,
            account: "Alice".into(),
            package: "basic".into(),
            channels: channels(),
        }));
        assert_eq!(m.favourites(), [4, 1]);
        // The guide from the favourites list opens on the highlighted channel.
        m.action(Action::Back);
        m.action(Action::Right);
        assert_eq!(m.listed()[m.selected()].number, 1);
        m.action(Action::Up);
        assert_eq!(m.listed()[m.selected()].number, 4);
        m.action(Action::Guide);
        assert_eq!(guide_on(&m), Some(4));
        // Digits in the guide go to that channel among all, the list's mode untouched.
        m.action(Action::Digit(2));
        m.timer(Timer::NumberEntry);
        assert_eq!(guide_on(&m), Some(2));
        assert!(m.favourites_only());
        m.action(Action::Back);
        // FAV on the picture takes the channel playing (1) out; MENU > Channel list keeps
        // the highlight inside the shorter list.
        m.action(Action::Back);
        assert_eq!(m.current().map(|c| c.number), Some(1));
        m.action(Action::Favourite);
        assert_eq!(m.favourites(), [4]);
        m.action(Action::Menu);
        m.action(Action::Ok);
        assert!(m.selected() < m.listed().len());
    }

    #[test]
    fn no_signal_and_the_spinner_end_with_standby_and_a_zap() {
        let (mut m, _) = logged_in();
        assert!(m.tuning(), "a spinner until the first picture");
        m.feed(crate::feed::FeedState::Playing);
        assert!(!m.tuning());
        m.feed(crate::feed::FeedState::Reconnecting);
        m.timer(Timer::NoSignal);
        assert!(m.no_signal());
        m.action(Action::Power);
        m.action(Action::Power);
        assert!(!m.no_signal(), "standby and back: no stale screen");
        assert!(m.tuning());
        m.feed(crate::feed::FeedState::Refused("not entitled".into()));
        assert!(!m.tuning(), "no spinner behind a refusal");
    }
}
