//! The channel list and the player: moving through the list, tuning by number, CH+/CH-,
//! last channel, and the rules that refuse a channel outside the package.

use super::overlays::Alert;
use super::{Effect, Model, Screen, Timer};
use crate::remote::Action;
use std::time::Duration;

/// How long digits typed on the player wait for the next digit.
pub const NUMBER_ENTRY: Duration = Duration::from_millis(2000);
/// How long the info banner stays after a zap.
pub const BANNER: Duration = Duration::from_secs(5);

impl Model {
    pub(super) fn list_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let n = self.channels().len();
        match action {
            Action::Up if n > 0 => self.selected = (self.selected + n - 1) % n,
            Action::Down if n > 0 => self.selected = (self.selected + 1) % n,
            Action::Ok if !self.entry.is_empty() => {
                fx.push(Effect::Cancel(Timer::NumberEntry));
                self.tune_entry(fx);
            }
            Action::Ok => {
                if let Some(c) = self.channels().get(self.selected) {
                    let number = c.number;
                    self.tune(number, fx);
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
            Action::Menu => self.open_menu(fx),
            Action::Guide => self.open_guide(fx),
            Action::VolumeUp | Action::VolumeDown | Action::Mute => self.volume_action(action, fx),
            _ => {}
        }
    }

    /// CH+/CH-: the next channel in the subscription, in list order, wrapping.
    pub(super) fn step_channel(&mut self, dir: i32, fx: &mut Vec<Effect>) {
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
    /// above the number when there is none (the list is in number order).
    pub(super) fn jump_to_entry(&mut self) {
        let entry = std::mem::take(&mut self.entry);
        let Ok(n) = entry.parse::<u16>() else { return };
        let channels = self.channels();
        if let Some(i) = channels
            .iter()
            .position(|c| c.number >= n)
            .or(channels.len().checked_sub(1))
        {
            self.selected = i;
        }
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
        self.banner = true;
        (self.status, self.no_signal) = (None, false);
        fx.push(Effect::Arm(Timer::Banner, BANNER));
        if self.current != Some(number) {
            self.last = self.current;
            self.current = Some(number);
            fx.push(Effect::Play(number));
        }
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
}
