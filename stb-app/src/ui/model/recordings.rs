//! Recording, pausing live TV, and the locker's screen: RECORD records the programme playing
//! into the subscriber's locker while the viewer keeps watching; PLAY/PAUSE holds live TV
//! (the time shift) and plays on behind live; the locker's screen has two tabs, Recordings
//! (played with pause, seek, fast-forward and rewind) and Pictures (shown full screen,
//! LEFT/RIGHT for the one before or after), and deletes either.

use super::overlays::{Alert, AlertAction};
use super::{Effect, Model, Screen, Timer};
use crate::playback::Position;
use crate::remote::Action;
use stb_protocol::locker::{Entry, Kind};
use std::time::Duration;

/// How far FF/RW and LEFT/RIGHT jump in a recording.
pub const SEEK_MS: i64 = 30_000;
/// How long a notice (recording saved, recording failed) stays.
pub(super) const NOTICE: Duration = Duration::from_secs(5);

/// The recording under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingOn {
    /// Channel number.
    pub channel: u16,
    /// What is recorded.
    pub title: String,
    /// Whether the box confirmed it started.
    pub started: bool,
}

/// One row of the Recordings screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingItem {
    /// The locker's entry.
    pub entry: Entry,
}

impl RecordingItem {
    /// Title (a picture's: its file name).
    pub fn title(&self) -> &str {
        match &self.entry.recording {
            Some(r) => &r.title,
            None => self
                .entry
                .name
                .rsplit('/')
                .next()
                .unwrap_or(&self.entry.name),
        }
    }
    /// Whether it is a picture.
    pub fn is_picture(&self) -> bool {
        self.entry.kind == Kind::Picture
    }
    /// Channel name.
    pub fn channel(&self) -> &str {
        self.entry
            .recording
            .as_ref()
            .map_or("", |r| r.channel_name.as_str())
    }
    /// When it started, Unix ms.
    pub fn start_ms(&self) -> i64 {
        self.entry
            .recording
            .as_ref()
            .map_or(self.entry.modified_ms, |r| r.start_ms)
    }
    /// Length in ms.
    pub fn duration_ms(&self) -> u64 {
        self.entry.recording.as_ref().map_or(0, |r| r.duration_ms)
    }
}

/// The locker screen's state.
#[derive(Debug, Clone, Default)]
pub struct RecordingsList {
    /// The tab shown: recordings (false) or pictures (true).
    pub pictures: bool,
    /// The rows of the tab shown, newest first.
    pub items: Vec<RecordingItem>,
    /// Highlighted row.
    pub selected: usize,
    /// Still loading (or the error that stopped it).
    pub loading: Option<String>,
    /// Everything listed (both tabs).
    all: Vec<Entry>,
}

impl RecordingsList {
    /// Fills `items` with the tab's entries, newest first.
    fn show_tab(&mut self) {
        let kind = if self.pictures {
            Kind::Picture
        } else {
            Kind::Recording
        };
        let mut items: Vec<RecordingItem> = self
            .all
            .iter()
            .filter(|e| e.kind == kind)
            .map(|entry| RecordingItem {
                entry: entry.clone(),
            })
            .collect();
        items.sort_by_key(|i| std::cmp::Reverse(i.start_ms()));
        self.selected = self.selected.min(items.len().saturating_sub(1));
        self.items = items;
    }
}

/// The recording playing.
#[derive(Debug, Clone)]
pub struct Playback {
    /// What plays.
    pub item: RecordingItem,
    /// Where it is.
    pub position: Position,
}

/// Live TV paused: since when, and how far behind live it plays now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LivePause {
    /// Paused since (Unix ms), while paused.
    pub since_ms: Option<i64>,
    /// How far behind live the picture is (the pauses' total since the last zap), ms.
    pub behind_ms: i64,
}

impl Model {
    // ----- what is on screen -----

    /// The recording under way, if any.
    pub fn recording(&self) -> Option<&RecordingOn> {
        self.recording.as_ref()
    }
    /// Live TV's pause state.
    pub fn live_pause(&self) -> LivePause {
        self.live_pause
    }
    /// How far behind live the picture is now, ms (growing while paused).
    pub fn behind_live_ms(&self) -> i64 {
        self.live_pause.behind_ms
            + self
                .live_pause
                .since_ms
                .map_or(0, |since| (self.now_ms - since).max(0))
    }
    /// The Recordings screen.
    pub fn recordings(&self) -> &RecordingsList {
        &self.recordings
    }
    /// The recording playing, if any.
    pub fn playback(&self) -> Option<&Playback> {
        self.playback.as_ref()
    }
    /// The picture shown full screen (or loading), if any.
    pub fn picture(&self) -> Option<&RecordingItem> {
        self.picture.as_ref()
    }
    /// The passing notice, if any.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    // ----- input -----

    /// RECORD, PLAY/PAUSE and STOP on the live picture (and on the channel list).
    pub(super) fn live_media_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        match action {
            Action::Record => match &self.recording {
                Some(r) if Some(r.channel) == self.current => self.stop_recording(fx),
                Some(r) => {
                    let detail = format!(
                        "This box is recording \"{}\" on channel {}. Press STOP to end it \
                         first.",
                        r.title, r.channel
                    );
                    self.alert = Some(Alert::new("Already recording", detail));
                }
                None if !self.may_record() => {
                    self.alert = Some(Alert::new(
                        "Locked programme",
                        "Type the parental PIN to watch it first; then it can be recorded.",
                    ));
                }
                None => self.start_recording(fx),
            },
            Action::Stop if self.recording.is_some() => self.stop_recording(fx),
            Action::PlayPause if self.current.is_some() => {
                let paused = match self.live_pause.since_ms.take() {
                    Some(since) => {
                        self.live_pause.behind_ms += (self.now_ms - since).max(0);
                        false
                    }
                    None => {
                        self.live_pause.since_ms = Some(self.now_ms);
                        true
                    }
                };
                self.banner = true;
                fx.push(Effect::PauseLive(paused));
                if !paused {
                    fx.push(Effect::Arm(Timer::Banner, super::BANNER));
                }
            }
            // Towards live: a zap to the same channel.
            Action::FastForward if self.behind_live_ms() > 0 => {
                if let Some(number) = self.current {
                    self.tune(number, fx);
                }
            }
            _ => {}
        }
    }

    /// A zap comes back to live: no pause, not behind.
    pub(super) fn back_to_live(&mut self) {
        self.live_pause = LivePause::default();
    }

    /// Standby: a recording playing or a picture shown ends; the channel's picture screen
    /// is what POWER wakes to.
    pub(super) fn end_playback(&mut self) {
        if self.playback.take().is_some() || self.picture.take().is_some() {
            self.played_recording = false;
            if matches!(
                self.screen,
                Screen::Playback | Screen::Picture | Screen::Recordings
            ) {
                self.screen = Screen::Player;
            }
        }
    }

    fn start_recording(&mut self, fx: &mut Vec<Effect>) {
        let Some(channel) = self.current() else {
            return;
        };
        let now = channel.now.as_ref().filter(|p| p.airs_at(self.now_ms));
        let title = now.map_or_else(|| channel.name.clone(), |p| p.title.clone());
        let order = crate::recorder::Order {
            channel: channel.number,
            channel_name: channel.name.clone(),
            title: title.clone(),
            until_ms: now.map(|p| p.end_ms),
            rating: now.and_then(|p| p.rating.clone()),
        };
        self.recording = Some(RecordingOn {
            channel: channel.number,
            title,
            started: false,
        });
        self.banner = true;
        fx.push(Effect::Arm(Timer::Banner, super::BANNER));
        fx.push(Effect::Record(order));
    }

    fn stop_recording(&mut self, fx: &mut Vec<Effect>) {
        if let Some(r) = &self.recording {
            self.show_notice(
                format!("Saving the recording of \"{}\"\u{2026}", r.title),
                fx,
            );
        }
        fx.push(Effect::StopRecording);
    }

    /// The recording started (or could not).
    pub fn recording_started(&mut self, result: Result<(), String>) -> Vec<Effect> {
        let mut fx = Vec::new();
        match result {
            Ok(()) => {
                if let Some(r) = self.recording.as_mut() {
                    r.started = true;
                }
            }
            Err(why) => {
                self.recording = None;
                self.alert = Some(Alert::new("Cannot record", why));
            }
        }
        fx.extend(self.refresh_list());
        fx
    }

    /// The recording ended (stopped, its programme over, or failed) and was saved, or not.
    pub fn recording_done(&mut self, result: Result<Entry, String>) -> Vec<Effect> {
        let mut fx = Vec::new();
        // After a logout there is nothing to tell.
        let Some(title) = self.recording.take().map(|r| r.title) else {
            return fx;
        };
        match result {
            Ok(entry) => {
                let minutes = entry
                    .recording
                    .as_ref()
                    .map_or(0, |r| r.duration_ms.div_ceil(60_000));
                self.show_notice(format!("Recorded \"{title}\" ({minutes} min)"), &mut fx);
                fx.extend(self.refresh_list());
            }
            Err(why) => {
                self.alert = Some(Alert::new(
                    "The recording was not saved",
                    format!("\"{title}\": {why}"),
                ));
            }
        }
        fx
    }

    pub(super) fn show_notice(&mut self, text: String, fx: &mut Vec<Effect>) {
        self.notice = Some(text);
        fx.push(Effect::Arm(Timer::Notice, NOTICE));
    }

    pub(super) fn notice_timer(&mut self) {
        self.notice = None;
    }

    /// MENU > Recordings.
    pub(super) fn open_recordings(&mut self, fx: &mut Vec<Effect>) {
        if self.playback.is_none() {
            self.recordings_return = self.screen;
        }
        self.screen = Screen::Recordings;
        self.recordings.loading = Some("Loading your recordings\u{2026}".into());
        fx.push(Effect::ListRecordings);
    }

    /// The list again, if it is on screen.
    fn refresh_list(&mut self) -> Vec<Effect> {
        match self.screen {
            Screen::Recordings => vec![Effect::ListRecordings],
            _ => vec![],
        }
    }

    /// What the locker holds (its recordings and pictures), or why it could not be read.
    pub fn recordings_done(&mut self, result: Result<Vec<Entry>, String>) -> Vec<Effect> {
        match result {
            Ok(entries) => {
                self.recordings.all = entries;
                self.recordings.show_tab();
                self.recordings.loading = None;
            }
            Err(why) => self.recordings.loading = Some(why),
        }
        vec![]
    }

    pub(super) fn recordings_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let n = self.recordings.items.len();
        let list = &mut self.recordings;
        match action {
            Action::Up if n > 0 => list.selected = (list.selected + n - 1) % n,
            Action::Down if n > 0 => list.selected = (list.selected + 1) % n,
            // Left and right switch between the recordings and the pictures.
            Action::Left | Action::Right => {
                list.pictures = !list.pictures;
                list.selected = 0;
                list.show_tab();
            }
            Action::Ok | Action::PlayPause => {
                if let Some(item) = list.items.get(list.selected).cloned() {
                    if item.is_picture() {
                        self.show_picture(item, fx);
                    } else if !self.lock_recording(&item) {
                        self.start_playback(item, fx);
                    }
                }
            }
            Action::Delete => {
                if let Some(item) = list.items.get(list.selected) {
                    self.deleting = Some(item.entry.name.clone());
                    let what = if item.is_picture() {
                        "Delete this picture?"
                    } else {
                        "Delete this recording?"
                    };
                    self.alert = Some(
                        Alert::new(
                            what,
                            format!(
                                "\"{}\" will be deleted from your locker, on every box.",
                                item.title()
                            ),
                        )
                        .with(AlertAction::DeleteRecording),
                    );
                }
            }
            Action::Back | Action::Stop => self.leave_recordings(fx),
            Action::Menu => self.open_menu(fx),
            Action::VolumeUp | Action::VolumeDown | Action::Mute => self.volume_action(action, fx),
            _ => {}
        }
    }

    /// OK on "Delete this recording?".
    pub(super) fn delete_confirmed(&mut self, fx: &mut Vec<Effect>) {
        if let Some(name) = self.deleting.take() {
            self.recordings.all.retain(|e| e.name != name);
            self.recordings.show_tab();
            fx.push(Effect::DeleteRecording(name));
        }
    }

    fn show_picture(&mut self, item: RecordingItem, fx: &mut Vec<Effect>) {
        fx.push(Effect::ShowPicture(item.entry.clone()));
        self.picture = Some(item);
        self.screen = Screen::Picture;
    }

    /// The picture could not be shown (unreadable, changed on the server, too large).
    pub fn picture_failed(&mut self, why: String) -> Vec<Effect> {
        if self.picture.take().is_some() {
            self.alert = Some(Alert::new("This picture cannot be shown", why));
            self.screen = Screen::Recordings;
        }
        vec![]
    }

    pub(super) fn picture_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let list = &mut self.recordings;
        match action {
            Action::Left | Action::Right | Action::Up | Action::Down if !list.items.is_empty() => {
                let n = list.items.len();
                let step = matches!(action, Action::Right | Action::Down);
                list.selected = if step {
                    (list.selected + 1) % n
                } else {
                    (list.selected + n - 1) % n
                };
                let item = list.items[list.selected].clone();
                self.show_picture(item, fx);
            }
            Action::Back | Action::Ok | Action::Stop => {
                self.picture = None;
                fx.push(Effect::HidePicture);
                self.screen = Screen::Recordings;
            }
            Action::VolumeUp | Action::VolumeDown | Action::Mute => self.volume_action(action, fx),
            _ => {}
        }
    }

    /// A deletion failed: the list comes back from the locker, and the viewer is told.
    pub fn delete_failed(&mut self, why: String) -> Vec<Effect> {
        self.alert = Some(Alert::new("The recording was not deleted", why));
        self.refresh_list()
    }

    /// BACK from the list: the channel playing again (or the channel list before any).
    fn leave_recordings(&mut self, fx: &mut Vec<Effect>) {
        match self.current {
            Some(number) => {
                self.screen = self.recordings_return;
                if self.screen == Screen::Recordings || self.screen == Screen::Playback {
                    self.screen = Screen::Player;
                }
                // The recording's playback replaced the channel in the player.
                if self.played_recording {
                    self.tune(number, fx);
                }
            }
            None => self.screen = Screen::Channels,
        }
    }

    pub(super) fn start_playback(&mut self, item: RecordingItem, fx: &mut Vec<Effect>) {
        let total_ms = item.duration_ms();
        fx.push(Effect::PlayRecording(item.entry.clone()));
        self.playback = Some(Playback {
            item,
            position: Position {
                total_ms,
                ..Position::default()
            },
        });
        self.played_recording = true;
        self.back_to_live();
        self.screen = Screen::Playback;
        self.banner = true;
        fx.push(Effect::Arm(Timer::Banner, super::BANNER));
    }

    pub(super) fn playback_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let Some(playback) = self.playback.as_mut() else {
            self.screen = Screen::Recordings;
            return;
        };
        match action {
            Action::PlayPause | Action::Ok => {
                let paused = !playback.position.paused;
                playback.position.paused = paused;
                fx.push(Effect::PausePlayback(paused));
            }
            Action::Right | Action::FastForward => fx.push(Effect::Seek(SEEK_MS)),
            Action::Left | Action::Rewind => fx.push(Effect::Seek(-SEEK_MS)),
            Action::Back | Action::Stop => {
                self.playback = None;
                fx.push(Effect::StopPlayback);
                self.screen = Screen::Recordings;
                fx.push(Effect::ListRecordings);
                return;
            }
            Action::Info => {}
            Action::VolumeUp | Action::VolumeDown | Action::Mute => {
                self.volume_action(action, fx);
                return;
            }
            _ => return,
        }
        self.banner = true;
        fx.push(Effect::Arm(Timer::Banner, super::BANNER));
    }

    /// Where the recording playing is; at its end, back to the list.
    pub fn playback_position(&mut self, position: Position) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(playback) = self.playback.as_mut() else {
            return fx;
        };
        playback.position = position;
        if position.ended && self.screen == Screen::Playback {
            self.playback = None;
            fx.push(Effect::StopPlayback);
            self.screen = Screen::Recordings;
            fx.push(Effect::ListRecordings);
        }
        fx
    }

    /// The recording could not be played.
    pub fn playback_failed(&mut self, why: String) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.playback.take().is_some() {
            self.alert = Some(Alert::new("This recording cannot be played", why));
            self.screen = Screen::Recordings;
            fx.push(Effect::ListRecordings);
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use stb_protocol::locker::{ObjectId, Recording};

    fn entry(title: &str, start_ms: i64) -> Entry {
        Entry {
            object: ObjectId::random(),
            name: format!("Recordings/{title}.ts"),
            size: 1000,
            modified_ms: start_ms,
            kind: Kind::Recording,
            recording: Some(Recording {
                channel: 1,
                channel_name: "Channel 1".into(),
                title: title.into(),
                start_ms,
                duration_ms: 600_000,
                rating: None,
                marks: vec![],
            }),
        }
    }

    #[test]
    fn record_toggles_on_the_channel_playing_and_saving_tells_the_viewer() {
        let (mut m, _) = logged_in();
        let fx = m.action(Action::Record);
        let order = fx.iter().find_map(|e| match e {
            Effect::Record(o) => Some(o.clone()),
            _ => None,
        });
        let order = order.expect("a recording starts");
        assert_eq!(order.channel, 1);
        assert_eq!(m.recording().map(|r| r.channel), Some(1));
        m.recording_started(Ok(()));
        // On another channel RECORD does not start a second one.
        m.action(Action::ChannelUp);
        m.action(Action::Record);
        assert_eq!(
            m.alert().map(|a| a.title.as_str()),
            Some("Already recording")
        );
        m.action(Action::Back);
        let fx = m.action(Action::Stop);
        assert!(fx.iter().any(|e| matches!(e, Effect::StopRecording)));
        m.recording_done(Ok(entry("now", 0)));
        assert!(m.recording().is_none());
        assert_eq!(m.notice(), Some("Recorded \"now\" (10 min)"));
    }

    #[test]
    fn a_recording_that_cannot_start_says_why() {
        let (mut m, _) = logged_in();
        m.action(Action::Record);
        m.recording_started(Err("this account has no locker key yet".into()));
        assert!(m.recording().is_none());
        assert_eq!(m.alert().map(|a| a.title.as_str()), Some("Cannot record"));
    }

    #[test]
    fn pausing_live_tv_plays_on_behind_live_until_a_zap() {
        let (mut m, _) = logged_in();
        m.set_now(1_000);
        let fx = m.action(Action::PlayPause);
        assert!(fx.iter().any(|e| matches!(e, Effect::PauseLive(true))));
        m.set_now(31_000);
        assert_eq!(m.behind_live_ms(), 30_000);
        let fx = m.action(Action::PlayPause);
        assert!(fx.iter().any(|e| matches!(e, Effect::PauseLive(false))));
        m.set_now(41_000);
        assert_eq!(m.behind_live_ms(), 30_000);
        // FF jumps back to live: the same channel tuned again.
        let fx = m.action(Action::FastForward);
        assert_eq!(plays(&fx), vec![1]);
        assert_eq!(m.behind_live_ms(), 0);
    }

    #[test]
    fn the_recordings_screen_plays_seeks_and_deletes() {
        let (mut m, _) = logged_in();
        m.action(Action::Menu);
        m.action(Action::Down);
        let fx = m.action(Action::Ok);
        assert!(fx.iter().any(|e| matches!(e, Effect::ListRecordings)));
        assert_eq!(m.screen(), Screen::Recordings);
        m.recordings_done(Ok(vec![entry("older", 1), entry("newer", 2)]));
        assert_eq!(m.recordings().items[0].title(), "newer");
        m.action(Action::Down);
        let fx = m.action(Action::Ok);
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::PlayRecording(e) if e.name == "Recordings/older.ts"))
        );
        assert_eq!(m.screen(), Screen::Playback);
        let fx = m.action(Action::Right);
        assert!(fx.iter().any(|e| matches!(e, Effect::Seek(30_000))));
        let fx = m.action(Action::Rewind);
        assert!(fx.iter().any(|e| matches!(e, Effect::Seek(-30_000))));
        let fx = m.action(Action::PlayPause);
        assert!(fx.iter().any(|e| matches!(e, Effect::PausePlayback(true))));
        // The end of the recording goes back to the list.
        m.playback_position(Position {
            ms: 600_000,
            total_ms: 600_000,
            paused: false,
            ended: true,
        });
        assert_eq!(m.screen(), Screen::Recordings);
        // Delete asks first.
        m.action(Action::Delete);
        assert!(m.alert().is_some());
        let fx = m.action(Action::Ok);
        assert!(fx.iter().any(|e| matches!(e, Effect::DeleteRecording(_))));
        assert_eq!(m.recordings().items.len(), 1);
        // RIGHT: the pictures; OK shows one full screen, RIGHT the next, BACK the list.
        let mut beach = entry("beach", 5);
        (beach.kind, beach.recording) = (Kind::Picture, None);
        beach.name = "Pictures/beach.jpg".into();
        let mut hill = beach.clone();
        hill.name = "Pictures/hill.png".into();
        m.recordings_done(Ok(vec![entry("older", 1), beach, hill]));
        m.action(Action::Right);
        assert_eq!(m.recordings().items.len(), 2);
        let fx = m.action(Action::Ok);
        assert!(fx.iter().any(|e| matches!(e, Effect::ShowPicture(_))));
        assert_eq!(m.screen(), Screen::Picture);
        let shown = m.picture().map(|p| p.title().to_owned());
        m.action(Action::Right);
        assert_ne!(m.picture().map(|p| p.title().to_owned()), shown);
        let fx = m.action(Action::Back);
        assert!(fx.iter().any(|e| matches!(e, Effect::HidePicture)));
        assert_eq!(m.screen(), Screen::Recordings);
        // BACK: the channel again (the recording had replaced it in the player).
        let fx = m.action(Action::Back);
        assert_eq!(plays(&fx), vec![1]);
        assert_eq!(m.screen(), Screen::Player);
    }
}
