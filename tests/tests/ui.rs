//! The box's UI end to end under Slint's testing backend with mock time: the real key server
//! and content server binaries on loopback (the harness), the real player decoding into the
//! window, and a person's keys. Register through the wizard, a wrong password, log in, watch,
//! zap by number, CH+, last channel, the guide, a channel outside the package, the content server
//! killed and restarted (the status line follows the feeder), log out. One test: the backend
//! can be set up once per process.
#![allow(missing_docs)]

use i_slint_backend_testing::{ElementHandle, ElementQuery, mock_elapsed_time};
use slint::platform::{Key, WindowEvent};
use slint::{ComponentHandle, Model as _};
use stb_app::config::BoxConfig;
use stb_app::player::Player;
use stb_app::ui::controller::{Controller, FrameSlot, Shared};
use stb_app::ui::model::{MENU, MenuEntry, Screen};
use stb_app::ui::{AppWindow, DrawnScreen};
use stb_e2e::{PASSWORD, Stack};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// MENU (F2), down to `entry`, OK.
fn choose(ui: &AppWindow, entry: MenuEntry) {
    key(ui, Key::F2);
    for _ in 0..MENU.iter().position(|&e| e == entry).unwrap_or(0) {
        key(ui, Key::DownArrow);
    }
    key(ui, Key::Return);
}

fn send(ui: &AppWindow, text: &str) {
    for c in text.chars() {
        let text: slint::SharedString = c.into();
        ui.window()
            .dispatch_event(WindowEvent::KeyPressed { text: text.clone() });
        ui.window()
            .dispatch_event(WindowEvent::KeyReleased { text });
    }
}

fn key(ui: &AppWindow, k: Key) {
    send(ui, &char::from(k).to_string());
}

/// Whether a text with exactly this content is on screen.
fn shows(ui: &AppWindow, text: &str) -> bool {
    ElementHandle::find_by_accessible_label(ui, text)
        .next()
        .is_some()
}

fn shows_containing(ui: &AppWindow, part: &str) -> bool {
    ElementQuery::from_root(ui)
        .match_predicate({
            let part = part.to_owned();
            move |e| e.accessible_label().is_some_and(|l| l.contains(&part))
        })
        .find_first()
        .is_some()
}

/// The box's player, for what a failed wait reports.
static PLAYER: OnceLock<Arc<Player>> = OnceLock::new();

/// Lets background work (login, registration, frames) reach the UI thread until `done`,
/// without moving the mock clock.
fn pump_until(ui: &AppWindow, what: &str, done: impl Fn(&AppWindow) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(ui) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; screen {:?} alert {:?} {:?} busy {:?} status {:?} \
             notice {:?}; player {:?}, {:?} bytes waiting in its source",
            ui.get_screen(),
            ui.get_alert_title(),
            ui.get_alert_detail(),
            ui.get_busy(),
            ui.get_status(),
            ui.get_notice(),
            PLAYER.get().map(|p| p.stats().snapshot()),
            PLAYER.get().map(|p| p.queued_bytes()),
        );
        slint::run_event_loop().expect("event loop");
    }
}

fn video_width(ui: &AppWindow) -> u32 {
    ui.get_video().size().width
}

fn screen(c: &Shared) -> Screen {
    c.borrow().model().screen()
}

/// Waits for the retry countdown's alert, checks it counts, lets it run out and closes it.
fn wait_out_the_countdown(ui: &AppWindow) {
    pump_until(ui, "the retry time", |ui| shows(ui, "Too many attempts"));
    let seconds: u64 = ui
        .get_alert_detail()
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("seconds in the message");
    assert!((1..=10).contains(&seconds), "{seconds} s");
    mock_elapsed_time(Duration::from_millis(1000));
    assert!(shows(
        ui,
        &format!("You can try again in {} s.", seconds - 1)
    ));
    key(ui, Key::Return);
    std::thread::sleep(Duration::from_secs(seconds));
    for _ in 1..seconds {
        mock_elapsed_time(Duration::from_millis(1000));
    }
}

#[test]
fn register_login_watch_zap_logout_with_the_remote() {
    i_slint_backend_testing::init_integration_test_with_mock_time();
    // The event loop returns every 20 ms so the test can look at the screen.
    let ticking = Arc::new(AtomicBool::new(true));
    std::thread::spawn({
        let ticking = ticking.clone();
        move || {
            while ticking.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let _ = slint::invoke_from_event_loop(|| {
                    let _ = slint::quit_event_loop();
                });
            }
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (mut stack, code) = Stack::start("Alice Martin", "basic", &[]).expect("stack");
    // Typed as the subscriber reads it from the desk's letter, without the dashes.
    let code: String = code.chars().filter(char::is_ascii_digit).collect();
    let config = BoxConfig::load(&stack.dir.path().join("box.toml")).expect("box config");
    let ui = AppWindow::new().expect("window");
    ui.show().expect("show");
    let frames = Arc::new(FrameSlot::default());
    let player = Arc::new(
        Player::with_frames("appsink", "fakesink", Some(frames.handler(ui.as_weak())))
            .expect("player"),
    );
    let _ = PLAYER.set(player.clone());
    let c = Controller::attach(&ui, config, rt.handle().clone(), player, frames);
    assert!(shows(&ui, "Welcome"));

    // First run: the registration wizard, from MENU on the login screen.
    key(&ui, Key::F2);
    assert!(shows(&ui, "Register this box"));
    send(&ui, &code[..11]);
    send(&ui, if code.ends_with('0') { "1" } else { "0" }); // a typo in the check digit
    key(&ui, Key::Return);
    assert!(
        shows_containing(&ui, "mistyped"),
        "the check digit catches a typo"
    );
    key(&ui, Key::Backspace);
    send(&ui, &code[11..]);
    key(&ui, Key::Return);
    assert!(shows(&ui, "Step 2 of 4: choose your identifier"));
    send(&ui, "alice");
    key(&ui, Key::Return);
    send(&ui, "password");
    assert!(shows_containing(&ui, "Use at least"), "live policy advice");
    for _ in 0.."password".len() {
        key(&ui, Key::Backspace);
    }
    send(&ui, PASSWORD);
    assert!(shows(&ui, "Good password"));
    key(&ui, Key::Return);
    send(&ui, "Sofa");
    key(&ui, Key::Return);
    assert!(shows(&ui, "The two passwords differ"));
    send(&ui, &PASSWORD[4..]);
    assert!(shows(&ui, "The two passwords match"));
    key(&ui, Key::Return);
    assert!(shows_containing(&ui, "Registering"));
    // Registered, the box logs in at once with what was typed.
    pump_until(&ui, "the login after registering", |ui| {
        shows_containing(ui, "Box registered. Logging in")
    });
    pump_until(&ui, "the login", |ui| {
        ui.get_screen() == DrawnScreen::Player
    });
    assert!(shows(&ui, "News 24"), "banner on the first channel");
    pump_until(&ui, "pictures of channel 1", |ui| video_width(ui) > 0);
    assert_eq!(video_width(&ui), 640);
    mock_elapsed_time(Duration::from_millis(5100));
    assert!(!shows(&ui, "News 24"), "the banner hides after 5 s");

    // Number zap: "2" waits for a second digit, then tunes; black until the new pictures.
    send(&ui, "2");
    assert!(shows(&ui, "2-"));
    mock_elapsed_time(Duration::from_millis(1900));
    assert!(shows(&ui, "2-") && !shows(&ui, "Sport Live"));
    mock_elapsed_time(Duration::from_millis(200));
    assert!(shows(&ui, "Sport Live") && !shows(&ui, "2-"));
    assert_eq!(
        video_width(&ui),
        0,
        "black, not the old channel, while the zap is in flight"
    );
    pump_until(&ui, "pictures of channel 2", |ui| video_width(ui) > 0);

    // CH+ skips channel 3 (not in the basic package); last channel goes back.
    key(&ui, Key::PageUp);
    assert!(shows(&ui, "Kids Cartoons"));
    key(&ui, Key::F3);
    assert!(shows(&ui, "Sport Live"));
    pump_until(&ui, "pictures after last-channel", |ui| video_width(ui) > 0);

    // The guide, from the test listing the server wrote: opened on the channel playing,
    // the programme on air described; Right goes to the next one; OK on another row watches
    // that channel; last channel comes back.
    send(&ui, "g");
    assert_eq!(ui.get_screen(), DrawnScreen::Guide);
    pump_until(&ui, "the guide's programmes", |ui| {
        !ui.get_guide_title().is_empty()
    });
    assert!(shows(&ui, "\u{25b6} Sport Live") && shows(&ui, &ui.get_guide_title()));
    assert!(!ui.get_guide_description().is_empty() && !ui.get_guide_about().is_empty());
    let on_air = ui.get_guide_when();
    key(&ui, Key::RightArrow);
    assert_ne!(ui.get_guide_when(), on_air, "the next programme");
    key(&ui, Key::DownArrow);
    key(&ui, Key::DownArrow);
    key(&ui, Key::Return);
    assert_eq!(ui.get_screen(), DrawnScreen::Player);
    assert!(shows(&ui, "Kids Cartoons"));
    key(&ui, Key::F3);
    assert!(shows(&ui, "Sport Live"));
    pump_until(&ui, "pictures of channel 2 after the guide", |ui| {
        video_width(ui) > 0
    });

    // Channel 3 by number: refused with the reason, channel 2 keeps playing.
    send(&ui, "3");
    key(&ui, Key::Return);
    assert!(shows(&ui, "Not in your subscription"));
    key(&ui, Key::Return);
    assert_eq!(c.borrow().model().current().map(|ch| ch.number), Some(2));

    // Volume and mute.
    send(&ui, "-");
    assert!(shows(&ui, "VOL") && shows(&ui, "65"));
    send(&ui, "m");
    assert!(shows(&ui, "MUTE"));
    mock_elapsed_time(Duration::from_millis(3100));
    assert!(shows(&ui, "MUTE"), "mute stays shown while muted");

    // The content server dies mid-play: the status line says so as soon as the feeder
    // does, and goes when the pictures come back.
    stack.content.as_mut().expect("content server").kill();
    pump_until(&ui, "the reconnecting line", |ui| {
        ui.get_status().contains("reconnecting")
    });
    stack.start_content().expect("restart");
    pump_until(&ui, "the status line to clear", |ui| {
        ui.get_status().is_empty()
    });
    assert_eq!(c.borrow().model().current().map(|ch| ch.number), Some(2));

    // POWER is standby: dark, the stream closed, the session kept in memory; POWER again
    // plays channel 2 without a password.
    key(&ui, Key::F12);
    assert!(ui.get_standby() && video_width(&ui) == 0);
    assert!(c.borrow().model().account().is_some());
    key(&ui, Key::F12);
    assert!(!ui.get_standby() && shows(&ui, "Sport Live"));
    pump_until(&ui, "pictures of channel 2 after standby", |ui| {
        video_width(ui) > 0
    });

    // The channel list, then log out from the menu, which asks once: every secret goes
    // with the session.
    key(&ui, Key::Escape);
    assert!(shows(&ui, "Channels") && shows(&ui, "locked") && shows(&ui, "2 / 4"));
    // The picture goes on under the list.
    assert!(video_width(&ui) > 0);
    // FAV ('f') on channel 2: starred, stored by the content server (checked after the next
    // login); RIGHT shows the favourites alone, LEFT every channel again.
    send(&ui, "f");
    assert_eq!(c.borrow().model().favourites(), [2]);
    key(&ui, Key::RightArrow);
    assert!(shows(&ui, "1 / 1") && shows(&ui, "Sport Live"));
    key(&ui, Key::LeftArrow);
    assert!(shows(&ui, "2 / 4"));

    // MENU > About this box: the certificate, and both servers checked for real.
    choose(&ui, MenuEntry::About);
    pump_until(&ui, "the servers checked", |ui| {
        let detail = ui.get_alert_detail();
        detail.contains("Key server answers") && detail.contains("Content server answers")
    });
    assert!(ui.get_alert_detail().contains("Certificate "));
    key(&ui, Key::Return);
    choose(&ui, MenuEntry::LogOut);
    assert!(shows(&ui, "Log out?") && c.borrow().model().account().is_some());
    key(&ui, Key::Return);
    assert!(shows(&ui, "Logged out"));
    assert_eq!(screen(&c), Screen::Login);
    assert_eq!(video_width(&ui), 0);
    assert!(c.borrow().model().account().is_none());
    key(&ui, Key::Return);

    // Logging in again at once: the key server wants attempts spaced; the box counts down,
    // and keeps what was typed for the next try.
    send(&ui, "alice");
    key(&ui, Key::Return);
    send(&ui, "Wrong-password#1");
    key(&ui, Key::Return);
    assert!(
        shows_containing(&ui, "Checking your password"),
        "busy while Argon2id and the EKE run"
    );
    wait_out_the_countdown(&ui);
    key(&ui, Key::Return);
    pump_until(&ui, "the refusal", |ui| {
        shows(ui, "Wrong identifier or password")
    });
    key(&ui, Key::Return);
    assert_eq!(c.borrow().model().account().map(|_| ()), None);
    for _ in 0.."Wrong-password#1".len() {
        key(&ui, Key::Backspace);
    }
    send(&ui, PASSWORD);
    key(&ui, Key::Return);
    wait_out_the_countdown(&ui);
    key(&ui, Key::Return);
    pump_until(&ui, "the login again", |ui| {
        ui.get_screen() == DrawnScreen::Player
    });
    // The favourites came back from the content server: the box kept nothing.
    assert_eq!(c.borrow().model().favourites(), [2]);

    // RECORD ('r') on the channel playing: a second stream from the content server is
    // sealed under the locker key and uploaded while the picture goes on; STOP ('s') saves
    // it into the locker's index.
    assert_eq!(screen(&c), Screen::Player);
    send(&ui, "r");
    pump_until(&ui, "the recording running", |ui| {
        ui.get_recording().starts_with("REC")
    });
    let frames_before = c.borrow().player_stats().video_frames;
    std::thread::sleep(Duration::from_secs(4));
    pump_until(&ui, "pictures while recording", |_| {
        c.borrow().player_stats().video_frames > frames_before + 50
    });
    send(&ui, "s");
    pump_until(&ui, "the recording saved", |ui| {
        ui.get_notice().starts_with("Recorded")
    });
    assert_eq!(ui.get_recording(), "");
    // MENU > Recordings lists it; OK plays it in place of the channel, with its bar.
    choose(&ui, MenuEntry::Recordings);
    pump_until(&ui, "the recordings listed", |ui| {
        ui.get_recordings_note() == "" && ui.get_recording_rows().row_count() == 1
    });
    assert!(shows(&ui, "Recordings") && shows_containing(&ui, "1 / 1"));
    key(&ui, Key::Return);
    assert_eq!(screen(&c), Screen::Playback);
    pump_until(&ui, "pictures of the recording", |ui| video_width(ui) > 0);
    pump_until(&ui, "the recording's position moving", |ui| {
        ui.get_playback().position != "0:00"
    });
    // BACK: the list (where the end of a short recording also leads), BACK again: the
    // channel, live.
    if screen(&c) == Screen::Playback {
        key(&ui, Key::Escape);
    }
    assert_eq!(screen(&c), Screen::Recordings);
    let zaps = c.borrow().player_stats().zaps;
    key(&ui, Key::Escape);
    assert_eq!(screen(&c), Screen::Player);
    pump_until(&ui, "the channel again", |ui| video_width(ui) > 0);
    // PLAY/PAUSE ('p') holds live TV: no new picture while paused; PLAY plays on behind
    // live; FF ('.') comes back to live (a zap: pictures again). A zap restarts the count:
    // pictures are counted after it (the recording's count, or the count before a zap
    // still on its way, would satisfy the wait too early).
    pump_until(&ui, "pictures of the channel", |_| {
        let stats = c.borrow().player_stats();
        stats.zaps > zaps && stats.video_frames > 10
    });
    send(&ui, "p");
    assert!(
        ui.get_time_shift().starts_with("PAUSED"),
        "{}",
        ui.get_time_shift()
    );
    std::thread::sleep(Duration::from_millis(500));
    let held = c.borrow().player_stats().video_frames;
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        c.borrow().player_stats().video_frames <= held + 1,
        "pictures went on while paused"
    );
    // PLAY plays on behind live: pictures again.
    send(&ui, "p");
    assert!(
        ui.get_time_shift().starts_with('-'),
        "{}",
        ui.get_time_shift()
    );
    let resumed = c.borrow().player_stats().video_frames;
    pump_until(&ui, "pictures after the pause", |_| {
        c.borrow().player_stats().video_frames > resumed + 25
    });
    let zaps = c.borrow().player_stats().zaps;
    send(&ui, ".");
    assert_eq!(ui.get_time_shift(), "");
    pump_until(&ui, "live again", |_| {
        let stats = c.borrow().player_stats();
        stats.zaps > zaps && stats.video_frames > 10
    });
    // AUDIO ('a') plays the next sound track and says which: this channel has one.
    send(&ui, "a");
    pump_until(&ui, "the sound track named", |ui| {
        ui.get_notice() == "Sound: English (the only track on this channel)"
    });
    // SUBTITLE ('t') shows the next subtitles; this channel has none (channel 3 has two,
    // the player's tests show them drawn).
    send(&ui, "t");
    pump_until(&ui, "no subtitles said", |ui| {
        ui.get_notice() == "No subtitles on this channel"
    });

    // MENU > Parental control: the limit with RIGHT, a first PIN typed twice, stored by the
    // content server; the next change needs that PIN, and a wrong one gets the server's
    // count of tries left.
    choose(&ui, MenuEntry::ParentalControl);
    assert_eq!(ui.get_alert_title(), "Parental control");
    key(&ui, Key::RightArrow);
    key(&ui, Key::RightArrow);
    assert!(
        ui.get_alert_detail().contains("above 12"),
        "{}",
        ui.get_alert_detail()
    );
    send(&ui, "4420");
    key(&ui, Key::Return);
    assert!(ui.get_alert_detail().contains("Type the new PIN again"));
    send(&ui, "4420");
    key(&ui, Key::Return);
    pump_until(&ui, "parental control saved", |ui| {
        ui.get_notice() == "Parental control: programmes rated above 12 are locked"
    });
    assert_eq!(ui.get_alert_title(), "");
    choose(&ui, MenuEntry::ParentalControl);
    key(&ui, Key::LeftArrow);
    send(&ui, "1111");
    key(&ui, Key::Return);
    pump_until(&ui, "the wrong PIN refused", |ui| {
        ui.get_alert_detail()
            .starts_with("Wrong PIN, 4 tries left before a 15-minute lock")
    });
    send(&ui, "4420");
    key(&ui, Key::Return);
    pump_until(&ui, "the limit changed", |ui| {
        ui.get_notice() == "Parental control: programmes rated above 7 are locked"
    });

    ticking.store(false, Ordering::Relaxed);
    drop(c);
    drop(stack);
}
