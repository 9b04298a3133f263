//! Finding and reading the remote: evdev devices picked by their keys (or named in the
//! configuration), grabbed so that no other reader (libinput under Slint's linuxkms backend)
//! sees the same press twice, and picked up again after an unplug. A configured path that is
//! a FIFO or a plain file is read as raw `struct input_event` records: a LIRC/CEC bridge or a
//! test can drive the box that way. A FIFO is opened for reading and writing, so it never reads
//! end-of-file between two writers: were the reader to close on end-of-file, a writer that
//! opened just before the close would lose what it wrote with the pipe.

use super::keymap::{Action, Keymap, RAW_EVENT_SIZE, decode_raw};
use crate::sync::lock;
use evdev::KeyCode;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where actions go (the UI thread's queue).
pub type ActionSink = Arc<dyn Fn(Action) + Send + Sync>;

/// Keys only a remote has: a device with one of them (and no full keyboard) is a remote.
const REMOTE_KEYS: [KeyCode; 6] = [
    KeyCode::KEY_OK,
    KeyCode::KEY_CHANNELUP,
    KeyCode::KEY_CHANNELDOWN,
    KeyCode::KEY_INFO,
    KeyCode::KEY_EPG,
    KeyCode::KEY_NUMERIC_0,
];

/// How often the device list is checked for replugged or new remotes.
const RESCAN: Duration = Duration::from_secs(2);

/// Whether a device with these keys is picked automatically. Full keyboards are left to the
/// window system (Slint's winit or libinput path), which also gives their letters.
fn is_remote(keys: &evdev::AttributeSetRef<KeyCode>) -> bool {
    let remote = REMOTE_KEYS.iter().any(|k| keys.contains(*k));
    let keyboard = [KeyCode::KEY_A, KeyCode::KEY_Z, KeyCode::KEY_SPACE]
        .iter()
        .all(|k| keys.contains(*k));
    remote && !keyboard
}

/// Starts the watcher thread. `configured` empty means: pick remotes automatically.
pub fn spawn(configured: Vec<PathBuf>, keymap: Keymap, sink: ActionSink) -> std::io::Result<()> {
    let open: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
    let keymap = Arc::new(keymap);
    std::thread::Builder::new()
        .name("remote-watch".into())
        .spawn(move || {
            loop {
                for path in candidates(&configured) {
                    if lock(&open).contains(&path) {
                        continue;
                    }
                    if let Some(reader) = Reader::open(&path, !configured.is_empty()) {
                        lock(&open).insert(path.clone());
                        let (open, keymap, sink) = (open.clone(), keymap.clone(), sink.clone());
                        let spawned = std::thread::Builder::new()
                            .name("remote-read".into())
                            .spawn(move || {
                                reader.run(&keymap, &sink);
                                // Unplugged (or a recorded file ended): the next scan reopens.
                                lock(&open).remove(&path);
                            });
                        if let Err(e) = spawned {
                            tracing::warn!(error = %e, "cannot start a remote reader");
                        }
                    }
                }
                std::thread::sleep(RESCAN);
            }
        })?;
    Ok(())
}

fn candidates(configured: &[PathBuf]) -> Vec<PathBuf> {
    if !configured.is_empty() {
        return configured.iter().filter(|p| p.exists()).cloned().collect();
    }
    let Ok(dir) = std::fs::read_dir("/dev/input") else {
        return vec![];
    };
    let mut found: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("event"))
        })
        .collect();
    found.sort();
    found
}

enum Reader {
    Device(Box<evdev::Device>, PathBuf),
    Raw(std::fs::File, PathBuf),
}

impl Reader {
    /// Opens `path` if it is a remote (or was named in the configuration).
    fn open(path: &Path, configured: bool) -> Option<Self> {
        let is_char_device = {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
        };
        if !is_char_device {
            // A FIFO or a recorded file of raw events; only when configured.
            if !configured {
                return None;
            }
            let fifo = {
                use std::os::unix::fs::FileTypeExt;
                std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
            };
            return match std::fs::OpenOptions::new()
                .read(true)
                .write(fifo)
                .open(path)
            {
                Ok(f) => Some(Self::Raw(f, path.to_owned())),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open raw event source");
                    None
                }
            };
        }
        let mut device = match evdev::Device::open(path) {
            Ok(d) => d,
            Err(e) => {
                if configured {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open input device");
                }
                return None;
            }
        };
        let wanted = configured || device.supported_keys().is_some_and(is_remote);
        if !wanted {
            return None;
        }
        if let Err(e) = device.grab() {
            tracing::warn!(path = %path.display(), error = %e, "cannot grab the remote; other readers will see its keys too");
        }
        tracing::info!(path = %path.display(), name = device.name().unwrap_or("?"), "remote control");
        Some(Self::Device(Box::new(device), path.to_owned()))
    }

    fn run(self, keymap: &Keymap, sink: &ActionSink) {
        match self {
            Self::Device(mut device, path) => loop {
                match device.fetch_events() {
                    Ok(events) => events.filter_map(|e| keymap.event(e)).for_each(|a| sink(a)),
                    Err(e) => {
                        tracing::info!(path = %path.display(), error = %e, "remote gone");
                        return;
                    }
                }
            },
            Self::Raw(mut file, path) => {
                let mut record = [0u8; RAW_EVENT_SIZE];
                while file.read_exact(&mut record).is_ok() {
                    if let Some(action) = keymap.event(decode_raw(&record)) {
                        sink(action);
                    }
                }
                tracing::debug!(path = %path.display(), "raw event source closed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_are_told_from_keyboards() {
        let mut remote = evdev::AttributeSet::<KeyCode>::new();
        for k in [KeyCode::KEY_OK, KeyCode::KEY_UP, KeyCode::KEY_1] {
            remote.insert(k);
        }
        assert!(is_remote(&remote));
        let mut keyboard = remote.clone();
        for k in [KeyCode::KEY_A, KeyCode::KEY_Z, KeyCode::KEY_SPACE] {
            keyboard.insert(k);
        }
        assert!(!is_remote(&keyboard));
        let mut mouse = evdev::AttributeSet::<KeyCode>::new();
        mouse.insert(KeyCode::BTN_LEFT);
        assert!(!is_remote(&mouse));
    }

    #[test]
    fn a_fifo_of_raw_records_drives_the_box_across_writers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("remote");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .expect("mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        spawn(
            vec![fifo.clone()],
            Keymap::default(),
            Arc::new(move |a| {
                let _ = lock(&tx).send(a);
            }),
        )
        .expect("watcher");
        let press = |code: u16| {
            let mut r = [0u8; RAW_EVENT_SIZE];
            let tail = RAW_EVENT_SIZE - 8;
            r[tail..tail + 2].copy_from_slice(&1u16.to_ne_bytes());
            r[tail + 2..tail + 4].copy_from_slice(&code.to_ne_bytes());
            r[tail + 4..].copy_from_slice(&1i32.to_ne_bytes());
            r
        };
        // First writer: KEY_CHANNELUP then KEY_OK, then it goes away (a bridge restarting).
        std::fs::write(&fifo, [press(402), press(352)].concat()).expect("write");
        let got = |rx: &std::sync::mpsc::Receiver<Action>| {
            rx.recv_timeout(Duration::from_secs(10)).expect("an action")
        };
        assert_eq!(got(&rx), Action::ChannelUp);
        assert_eq!(got(&rx), Action::Ok);
        // A new writer: nothing it writes is lost, however soon it comes.
        std::fs::write(&fifo, press(113)).expect("write again");
        assert_eq!(got(&rx), Action::Mute);
    }
}
