//! What a key means: Linux key codes (`KEY_*`) to box actions, from a TOML keymap.

use anyhow::{Context, Result, bail};
use evdev::{EventSummary, InputEvent, KeyCode};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

/// Something the person on the sofa asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// OK / select.
    Ok,
    /// Back / exit.
    Back,
    /// Delete the last character.
    Delete,
    /// A digit key, 0 to 9.
    Digit(u8),
    /// CH+.
    ChannelUp,
    /// CH-.
    ChannelDown,
    /// Back to the channel watched before.
    LastChannel,
    /// Vol+.
    VolumeUp,
    /// Vol-.
    VolumeDown,
    /// Mute on/off.
    Mute,
    /// Info banner.
    Info,
    /// The small menu (channel list, log out).
    Menu,
    /// The programme guide.
    Guide,
    /// Power: standby, or log out on a hotel box.
    Power,
    /// Adds the channel to the favourites, or takes it out.
    Favourite,
    /// Records the programme playing, or stops recording it.
    Record,
    /// Pauses live TV (time shift) or a recording, or plays on.
    PlayPause,
    /// Stops the recording under way, or the recording playing.
    Stop,
    /// Forward 30 s in a recording (or in paused live TV, towards live).
    FastForward,
    /// Back 30 s in a recording.
    Rewind,
    /// The channel's next sound track (language).
    Audio,
    /// The channel's next subtitles, or none.
    Subtitles,
}

impl Action {
    /// Whether holding the key down repeats the action (arrows, volume, channel, delete).
    pub fn repeats(self) -> bool {
        matches!(
            self,
            Self::Up
                | Self::Down
                | Self::Left
                | Self::Right
                | Self::Delete
                | Self::ChannelUp
                | Self::ChannelDown
                | Self::VolumeUp
                | Self::VolumeDown
                | Self::FastForward
                | Self::Rewind
        )
    }
}

impl FromStr for Action {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "up" => Self::Up,
            "down" => Self::Down,
            "left" => Self::Left,
            "right" => Self::Right,
            "ok" => Self::Ok,
            "back" => Self::Back,
            "delete" => Self::Delete,
            "channel-up" => Self::ChannelUp,
            "channel-down" => Self::ChannelDown,
            "last-channel" => Self::LastChannel,
            "volume-up" => Self::VolumeUp,
            "volume-down" => Self::VolumeDown,
            "mute" => Self::Mute,
            "info" => Self::Info,
            "menu" => Self::Menu,
            "guide" => Self::Guide,
            "power" => Self::Power,
            "favourite" => Self::Favourite,
            "record" => Self::Record,
            "play-pause" => Self::PlayPause,
            "stop" => Self::Stop,
            "fast-forward" => Self::FastForward,
            "rewind" => Self::Rewind,
            "audio" => Self::Audio,
            "subtitles" => Self::Subtitles,
            other => match other.strip_prefix("digit-").map(str::parse::<u8>) {
                Some(Ok(d)) if d <= 9 => Self::Digit(d),
                _ => bail!("unknown action {other:?}"),
            },
        })
    }
}

/// The built-in keymap (also shipped as `/etc/stb-app/keymap.toml`).
pub const DEFAULT_KEYMAP: &str = include_str!("../../keymap.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    keys: HashMap<String, String>,
}

/// Key codes to actions.
#[derive(Debug, Clone)]
pub struct Keymap {
    map: HashMap<KeyCode, Action>,
}

impl Default for Keymap {
    fn default() -> Self {
        Self::parse(DEFAULT_KEYMAP).unwrap_or_else(|e| panic!("the built-in keymap: {e:#}"))
    }
}

impl Keymap {
    /// Parses a keymap; an unknown key name or action is an error naming it.
    pub fn parse(text: &str) -> Result<Self> {
        let file: KeymapFile = toml::from_str(text).context("keymap")?;
        let mut map = HashMap::new();
        for (name, action) in file.keys {
            let code = KeyCode::from_str(&name)
                .map_err(|_| anyhow::anyhow!("unknown key name {name:?} in the keymap"))?;
            let action = action
                .parse()
                .with_context(|| format!("keymap entry {name}"))?;
            map.insert(code, action);
        }
        Ok(Self { map })
    }

    /// Reads a keymap file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The action of a key, if mapped.
    pub fn action(&self, code: KeyCode) -> Option<Action> {
        self.map.get(&code).copied()
    }

    /// The action an input event asks for: key presses, and auto-repeats of the keys that
    /// repeat. Releases, other event types and unmapped keys give nothing.
    pub fn event(&self, event: InputEvent) -> Option<Action> {
        let EventSummary::Key(_, code, value) = event.destructure() else {
            return None;
        };
        let action = self.action(code)?;
        match value {
            1 => Some(action),
            2 if action.repeats() => Some(action),
            _ => None,
        }
    }
}

/// Size of the kernel's `struct input_event` on this architecture (24 bytes on 64-bit).
pub const RAW_EVENT_SIZE: usize = std::mem::size_of::<libc::input_event>();

/// Decodes one raw `struct input_event` record (native endianness) as the kernel writes it.
pub fn decode_raw(record: &[u8; RAW_EVENT_SIZE]) -> InputEvent {
    let tail = &record[RAW_EVENT_SIZE - 8..];
    let type_ = u16::from_ne_bytes([tail[0], tail[1]]);
    let code = u16::from_ne_bytes([tail[2], tail[3]]);
    let value = i32::from_ne_bytes([tail[4], tail[5], tail[6], tail[7]]);
    InputEvent::new(type_, code, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record laid out as `struct input_event`: timeval, type, code, value.
    fn raw(type_: u16, code: u16, value: i32) -> [u8; RAW_EVENT_SIZE] {
        let mut r = [0u8; RAW_EVENT_SIZE];
        r[..8].copy_from_slice(&1_700_000_000i64.to_ne_bytes()[..8]);
        let tail = RAW_EVENT_SIZE - 8;
        r[tail..tail + 2].copy_from_slice(&type_.to_ne_bytes());
        r[tail + 2..tail + 4].copy_from_slice(&code.to_ne_bytes());
        r[tail + 4..].copy_from_slice(&value.to_ne_bytes());
        r
    }

    const EV_SYN: u16 = 0;
    const EV_KEY: u16 = 1;
    const EV_MSC: u16 = 4;

    #[test]
    fn raw_records_map_to_actions() {
        let map = Keymap::default();
        let act = |t, c, v| map.event(decode_raw(&raw(t, c, v)));
        // Codes above 255, the ones Slint's own key path drops.
        assert_eq!(act(EV_KEY, 352, 1), Some(Action::Ok)); // KEY_OK
        assert_eq!(act(EV_KEY, 402, 1), Some(Action::ChannelUp)); // KEY_CHANNELUP
        assert_eq!(act(EV_KEY, 403, 1), Some(Action::ChannelDown));
        assert_eq!(act(EV_KEY, 358, 1), Some(Action::Info)); // KEY_INFO
        assert_eq!(act(EV_KEY, 0x200 + 7, 1), Some(Action::Digit(7))); // KEY_NUMERIC_7
        assert_eq!(act(EV_KEY, 158, 1), Some(Action::Back)); // KEY_BACK
        assert_eq!(act(EV_KEY, 116, 1), Some(Action::Power)); // KEY_POWER
        assert_eq!(act(EV_KEY, 113, 1), Some(Action::Mute));
        assert_eq!(act(EV_KEY, 2, 1), Some(Action::Digit(1))); // KEY_1
        // Release, the scan code that precedes a press, and the report separator: nothing.
        assert_eq!(act(EV_KEY, 352, 0), None);
        assert_eq!(act(EV_MSC, 4, 0x40), None);
        assert_eq!(act(EV_SYN, 0, 0), None);
        // Auto-repeat moves the highlight and the volume, never presses OK or Power twice.
        assert_eq!(act(EV_KEY, 103, 2), Some(Action::Up)); // KEY_UP
        assert_eq!(act(EV_KEY, 115, 2), Some(Action::VolumeUp));
        assert_eq!(act(EV_KEY, 352, 2), None);
        assert_eq!(act(EV_KEY, 116, 2), None);
        // An unmapped key.
        assert_eq!(act(EV_KEY, 30, 1), None); // KEY_A
    }

    #[test]
    fn a_stream_of_records_decodes_in_order() {
        // What an IR receiver writes for one OK press: MSC scan, KEY down, SYN, KEY up, SYN.
        let stream: Vec<u8> = [
            raw(EV_MSC, 4, 0x1c),
            raw(EV_KEY, 352, 1),
            raw(EV_SYN, 0, 0),
            raw(EV_KEY, 352, 0),
            raw(EV_SYN, 0, 0),
        ]
        .concat();
        let map = Keymap::default();
        let actions: Vec<Action> = stream
            .chunks_exact(RAW_EVENT_SIZE)
            .filter_map(|c| c.try_into().ok().map(decode_raw))
            .filter_map(|e| map.event(e))
            .collect();
        assert_eq!(actions, vec![Action::Ok]);
    }

    #[test]
    fn keymap_files_are_checked() {
        let map = Keymap::parse("[keys]\nKEY_RED = \"power\"\nKEY_F1 = \"digit-5\"\n")
            .expect("valid keymap");
        assert_eq!(map.action(KeyCode::KEY_RED), Some(Action::Power));
        assert_eq!(map.action(KeyCode::KEY_F1), Some(Action::Digit(5)));
        assert_eq!(map.action(KeyCode::KEY_OK), None);
        let err = Keymap::parse("[keys]\nKEY_NOPE = \"ok\"\n").expect_err("bad key");
        assert!(format!("{err:#}").contains("KEY_NOPE"));
        let err = Keymap::parse("[keys]\nKEY_OK = \"dance\"\n").expect_err("bad action");
        assert!(format!("{err:#}").contains("dance"));
        assert!(Keymap::parse("[keys]\nKEY_OK = \"digit-10\"\n").is_err());
    }
}
