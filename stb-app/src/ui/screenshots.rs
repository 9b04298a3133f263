//! `stb-app screenshots`: every screen rendered to PNG with Slint's software renderer, from
//! the real model and view code driven by remote actions. The channel list is a sample shaped
//! like the test channels; the picture is a frame decoded from a channel file when given.

use super::AppWindow;
use super::controller::to_image;
use super::model::{
    About, Effect, LoggedIn, MENU, MenuEntry, Model, Next, SessionRules, Timer, TrackKind,
};
use super::view::render;
use crate::feed::FeedState;
use crate::frame::Frame;
use crate::keyserver_client::LoginError;
use crate::player::Player;
use crate::remote::Action;
use anyhow::{Context, Result};
use slint::ComponentHandle;
use slint::platform::software_renderer::{
    MinimalSoftwareWindow, PremultipliedRgbaColor, RepaintBufferType,
};
use slint::platform::{Platform, WindowAdapter};
use stb_protocol::content_api::{ChannelGuide, ChannelInfo, Guide, Programme};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

struct Offscreen {
    window: Rc<MinimalSoftwareWindow>,
}

impl Platform for Offscreen {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, slint::PlatformError> {
        Ok(self.window.clone())
    }
}

/// A sample channel list like the test channels' (programmes placed around `now_ms`).
pub fn sample_channels(now_ms: i64) -> Vec<ChannelInfo> {
    let hour = 3_600_000;
    let at = |title: &str, from: i64, to: i64| {
        Programme::titled(title, now_ms + from * hour / 4, now_ms + to * hour / 4)
    };
    let ch = |number, name: &str, entitled, now: Programme, next: Programme| ChannelInfo {
        number,
        name: name.into(),
        entitled,
        now: Some(now),
        next: Some(next),
    };
    vec![
        ch(
            1,
            "News 24",
            true,
            Programme {
                description: Some(
                    "The day's stories from around the world, with live reports and the \
                     markets at the close."
                        .into(),
                ),
                ..at("World Headlines", -1, 3)
            },
            at("Business Today", 3, 5),
        ),
        ch(
            2,
            "Sport Live",
            true,
            at("Match of the Day", -3, 5),
            at("Tennis: Semi-Finals", 5, 17),
        ),
        ch(
            3,
            "Cinema Classics",
            false,
            at("The Silent Harbour (1952)", -2, 5),
            at("Night Train to Lisbon", 5, 14),
        ),
        ch(
            4,
            "Kids Cartoons",
            true,
            at("Cartoon Morning", -1, 1),
            at("Science Explorers", 1, 3),
        ),
    ]
}

/// A sample guide for `channels` around `now_ms`: programmes of 30 to 120 minutes from three
/// hours before to nine after, with synopses, genres and ratings like the test listing's.
pub fn sample_guide(channels: &[u16], now_ms: i64) -> Guide {
    const SHOWS: [(&str, i64, &str, &str, Option<&str>); 8] = [
        (
            "World Headlines",
            30,
            "News",
            "The main stories from around the world.",
            None,
        ),
        (
            "Match of the Day",
            90,
            "Sports",
            "The goals and the talking points of the weekend.",
            None,
        ),
        (
            "The Silent Harbour",
            120,
            "Movie",
            "A lighthouse keeper finds a stranger on the rocks, and the village starts to talk.",
            Some("12"),
        ),
        (
            "Cartoon Morning",
            60,
            "Children",
            "Cartoons to start the day.",
            Some("U"),
        ),
        (
            "Planet Oceans",
            60,
            "Documentary",
            "Life below the waves, from the reef to the deep.",
            None,
        ),
        (
            "Business Today",
            30,
            "News",
            "Markets, companies and the economy.",
            None,
        ),
        (
            "Night Train to Lisbon",
            120,
            "Movie",
            "A teacher leaves everything for a book.",
            Some("12"),
        ),
        (
            "Science Explorers",
            30,
            "Children",
            "Experiments to try at home.",
            Some("U"),
        ),
    ];
    let hour = 3_600_000;
    let first = now_ms - now_ms.rem_euclid(hour / 2) - 3 * hour;
    let channels = channels
        .iter()
        .map(|&number| {
            let mut start = first + i64::from(number % 3) * hour / 4 - hour / 2;
            let mut programmes = vec![];
            let mut i = usize::from(number);
            while start < now_ms + 9 * hour {
                let (title, minutes, category, about, rating) = SHOWS[i % SHOWS.len()];
                let end = start + minutes * 60_000;
                programmes.push(Programme {
                    subtitle: (category == "News").then(|| "Evening edition".to_owned()),
                    description: Some(about.to_owned()),
                    categories: vec![category.to_owned()],
                    rating: rating.map(str::to_owned),
                    ..Programme::titled(title, start, end)
                });
                start = end;
                i += 3;
            }
            ChannelGuide { number, programmes }
        })
        .collect();
    Guide { channels }
}

/// Opens the guide on `model`, presses `actions`, and answers every request on the way with
/// [`sample_guide`].
fn with_guide(model: &mut Model, actions: &[Action]) {
    let now = chrono::Utc::now().timestamp_millis();
    model.set_now(now);
    for action in std::iter::once(Action::Guide).chain(actions.iter().copied()) {
        for e in model.action(action) {
            if let Effect::FetchGuide {
                channels,
                from_ms,
                to_ms,
            } = e
            {
                let guide = sample_guide(&channels, now);
                model.guide_done(&channels, (from_ms, to_ms), Ok(guide));
            }
        }
    }
}

/// Decodes the first picture of an MPEG-TS file (unencrypted, like `media-fixtures/ch1.ts`).
pub fn first_frame(ts: &Path) -> Result<Frame> {
    let (player, frames) = play(ts)?;
    let mut frame = frames
        .recv_timeout(Duration::from_secs(10))
        .context("no picture decoded")?;
    while let Ok(f) = frames.recv_timeout(Duration::from_millis(1500)) {
        frame = f;
    }
    drop(player);
    Ok(frame)
}

/// The picture 3.2 s into a channel file with its first subtitles shown (channel 3's first
/// cue runs from 1 s to 4.5 s).
pub fn subtitled_frame(ts: &Path) -> Result<Frame> {
    let (player, frames) = play(ts)?;
    let since = std::time::Instant::now();
    while player.subtitle_tracks().is_empty() {
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(10),
            "{} has no subtitles",
            ts.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    player.next_subtitles();
    let frame = frames
        .iter()
        .nth(80)
        .context("the channel ended before 3.2 s")?;
    Ok(frame)
}

/// A player fed with the first seconds of `ts`, its pictures coming out of the receiver.
fn play(ts: &Path) -> Result<(Player, std::sync::mpsc::Receiver<Frame>)> {
    let bytes = std::fs::read(ts).with_context(|| format!("reading {}", ts.display()))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let player = Player::with_frames(
        "appsink",
        "fakesink",
        Some(std::sync::Arc::new(move |f| {
            let _ = tx.try_send(f);
        })),
    )?;
    for chunk in bytes.chunks(188 * 1024).take(8) {
        player
            .push(chunk.to_vec())
            .map_err(|e| anyhow::anyhow!("pipeline refused data: {e:?}"))?;
    }
    Ok((player, rx))
}

/// Renders every screen at `sizes` into `out` as `<name>-<w>x<h>.png`; returns the files.
/// `only` limits the screens by name (empty: all).
pub fn render_all(
    out: &Path,
    video: Option<&Path>,
    subtitled: Option<&Path>,
    sizes: &[(u32, u32)],
    only: &[String],
) -> Result<Vec<String>> {
    std::fs::create_dir_all(out)?;
    let (window, ui) = offscreen()?;
    let picture = video.map(first_frame).transpose()?.map(|f| to_image(&f));
    let subtitled = subtitled
        .map(subtitled_frame)
        .transpose()?
        .map(|f| to_image(&f));
    let mut written = vec![];
    for &(w, h) in sizes {
        window.set_size(slint::PhysicalSize::new(w, h));
        for (name, model, backdrop) in scenes() {
            if !only.is_empty() && !only.iter().any(|o| o == name) {
                continue;
            }
            let video = match backdrop {
                Backdrop::Channel => picture.clone(),
                Backdrop::Subtitled if subtitled.is_none() => continue,
                Backdrop::Subtitled => subtitled.clone(),
                Backdrop::None | Backdrop::LockerPicture => None,
            };
            render(&model, &ui);
            ui.set_video(video.unwrap_or_default());
            ui.set_picture(match backdrop {
                Backdrop::LockerPicture => picture.clone().unwrap_or_default(),
                _ => slint::Image::default(),
            });
            let file = format!("{name}-{w}x{h}.png");
            save(&window, w, h, &out.join(&file))?;
            written.push(file);
        }
    }
    Ok(written)
}

/// The window drawn off screen, with a full repaint on every frame (the picture changes
/// every frame anyway while video plays).
fn offscreen() -> Result<(Rc<MinimalSoftwareWindow>, AppWindow)> {
    let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
    slint::platform::set_platform(Box::new(Offscreen {
        window: window.clone(),
    }))
    .map_err(|e| anyhow::anyhow!("Slint platform: {e}"))?;
    let ui = AppWindow::new()?;
    ui.show()?;
    Ok((window, ui))
}

/// Frame times of scrolling the 200-channel list over playing video: each frame moves the
/// highlight one row, copies a new picture in (as the controller does for each decoded
/// frame) and draws the whole window with the software renderer, as the box does.
pub fn bench_list_scroll(
    video: Option<&Path>,
    (w, h): (u32, u32),
    frames: usize,
) -> Result<Vec<Duration>> {
    let (window, ui) = offscreen()?;
    window.set_size(slint::PhysicalSize::new(w, h));
    let picture = video.map(first_frame).transpose()?;
    let mut model = watching_with(many_channels());
    press(&mut model, &[Action::Back]);
    let mut pixels = vec![PremultipliedRgbaColor::default(); (w * h) as usize];
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let started = std::time::Instant::now();
        model.action(Action::Down);
        render(&model, &ui);
        if let Some(frame) = &picture {
            ui.set_video(to_image(frame));
        }
        draw(&window, w, &mut pixels);
        times.push(started.elapsed());
    }
    Ok(times)
}

fn draw(window: &MinimalSoftwareWindow, w: u32, pixels: &mut [PremultipliedRgbaColor]) {
    slint::platform::update_timers_and_animations();
    window.request_redraw();
    window.draw_if_needed(|renderer| {
        renderer.render(pixels, w as usize);
    });
}

fn save(window: &MinimalSoftwareWindow, w: u32, h: u32, path: &Path) -> Result<()> {
    let mut pixels = vec![PremultipliedRgbaColor::default(); (w * h) as usize];
    draw(window, w, &mut pixels);
    // The screens are opaque: premultiplied and straight RGBA are the same bytes.
    let rgba = pixels
        .iter()
        .flat_map(|p| [p.red, p.green, p.blue, p.alpha])
        .collect();
    let frame = Frame {
        width: w,
        height: h,
        stride: w as usize * 4,
        rgba,
    };
    crate::frame::save_png(&frame, path)
}

/// From a fresh keyboard (every new field starts there): down to the wide row, right to Done.
const DONE: [Action; 9] = [
    Action::Down,
    Action::Down,
    Action::Down,
    Action::Down,
    Action::Down,
    Action::Right,
    Action::Right,
    Action::Right,
    Action::Ok,
];

fn press(model: &mut Model, actions: &[Action]) {
    for &a in actions {
        model.action(a);
    }
}

/// MENU, down to `entry`, OK.
fn choose(model: &mut Model, entry: MenuEntry) {
    model.action(Action::Menu);
    for _ in 0..MENU.iter().position(|&e| e == entry).unwrap_or(0) {
        model.action(Action::Down);
    }
    model.action(Action::Ok);
}

fn type_text(model: &mut Model, text: &str) {
    for c in text.chars() {
        model.typed(c);
    }
}

/// Types `text` into the field and presses the keyboard's Done key.
fn fill(model: &mut Model, text: &str) {
    type_text(model, text);
    press(model, &DONE);
}

/// Logged in, the first channel playing, the banner gone.
fn watching() -> Model {
    watching_with(sample_channels(chrono::Utc::now().timestamp_millis()))
}

fn watching_with(channels: Vec<ChannelInfo>) -> Model {
    let mut m = Model::new(SessionRules::default());
    fill(&mut m, "ada.lovelace");
    fill(&mut m, "Sofa-Remote#2026!");
    m.login_done(Ok(LoggedIn {
        account: "Ada Lovelace".into(),
        package: "basic".into(),
        channels,
        favourites: vec![4, 2],
        parental_age: None,
        parental_pin: false,
    }));
    m
}

/// A catalogue of 200 channels made from the sample ones (numbers 1-200).
fn many_channels() -> Vec<ChannelInfo> {
    let sample = sample_channels(chrono::Utc::now().timestamp_millis());
    (1..=200u16)
        .map(|number| {
            let base = &sample[usize::from(number - 1) % sample.len()];
            ChannelInfo {
                number,
                name: if number as usize <= sample.len() {
                    base.name.clone()
                } else {
                    format!("{} {}", base.name, number)
                },
                ..base.clone()
            }
        })
        .collect()
}

/// What fills the screen under the UI.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backdrop {
    /// Nothing (black).
    None,
    /// The channel's picture (`--video`).
    Channel,
    /// A picture with subtitles shown (`--subtitles`); without one the screen is skipped.
    Subtitled,
    /// The locker's picture screen, with the channel's picture standing in for a photo.
    LockerPicture,
}

/// Each screen: name, the model in that state, what shows under it.
fn scenes() -> Vec<(&'static str, Model, Backdrop)> {
    use Action::{Back, Digit, Down, Menu, Right, Up, VolumeDown};
    let then = |mut m: Model, f: &dyn Fn(&mut Model)| {
        f(&mut m);
        m
    };
    let login = || {
        then(Model::new(SessionRules::default()), &|m| {
            fill(m, "ada.lovelace")
        })
    };
    let wizard = || then(Model::new(SessionRules::default()), &|m| press(m, &[Menu]));
    let to_password = |m: &mut Model| {
        fill(m, "000000000000");
        fill(m, "ada.lovelace");
    };
    let submit_registration = |m: &mut Model| {
        to_password(m);
        fill(m, "Sofa-Remote#2026!");
        fill(m, "Sofa-Remote#2026!");
    };
    let quiet = || {
        then(watching(), &|m| {
            m.timer(Timer::Banner);
        })
    };
    let mut scenes = vec![
        (
            "login",
            then(login(), &|m| {
                press(m, &[Up, Up, Right]);
                type_text(m, "Sofa-Re");
            }),
            Backdrop::None,
        ),
        (
            "login-busy",
            then(login(), &|m| fill(m, "Sofa-Remote#2026!")),
            Backdrop::None,
        ),
    ];
    for (name, error) in [
        ("login-wrong-password", LoginError::WrongCredentials),
        ("login-retry", LoginError::RetryIn(27)),
        ("login-locked", LoginError::Locked),
        (
            "login-unreachable",
            LoginError::Unreachable("the key server".into()),
        ),
    ] {
        let mut m = login();
        fill(&mut m, "guess");
        m.login_done(Err(error));
        scenes.push((name, m, Backdrop::None));
    }
    scenes.extend([
        (
            "register-code",
            then(wizard(), &|m| {
                for d in [4, 1, 7, 2, 0, 9, 3] {
                    m.action(Digit(d));
                }
            }),
            Backdrop::None,
        ),
        (
            "register-password",
            then(wizard(), &|m| {
                to_password(m);
                type_text(m, "sunshine1");
            }),
            Backdrop::None,
        ),
        (
            "register-confirm",
            then(wizard(), &|m| {
                to_password(m);
                fill(m, "Sofa-Remote#2026!");
                type_text(m, "Sofa-Remote#2026!");
            }),
            Backdrop::None,
        ),
        (
            "register-done",
            then(wizard(), &|m| {
                submit_registration(m);
                m.register_done(Ok("Ada Lovelace".into()));
            }),
            Backdrop::None,
        ),
        (
            "register-failed",
            then(wizard(), &|m| {
                submit_registration(m);
                m.register_done(Err(crate::register::RegisterError::EnrollmentRefused(
                    "this enrollment code was already used".into(),
                )));
            }),
            Backdrop::None,
        ),
        (
            "channels",
            then(watching(), &|m| press(m, &[Back, Down, Down])),
            Backdrop::Channel,
        ),
        (
            "channels-favourites",
            then(watching(), &|m| press(m, &[Back, Right, Down])),
            Backdrop::Channel,
        ),
        (
            "channels-long",
            then(watching_with(many_channels()), &|m| {
                press(m, &[Back, Digit(5), Digit(7)]);
                m.timer(Timer::NumberEntry);
            }),
            Backdrop::Channel,
        ),
        ("player-banner", watching(), Backdrop::Channel),
        (
            "player-subtitles",
            then(quiet(), &|m| {
                press(m, &[Action::Subtitles]);
                let english = Next::Playing {
                    language: Some("en".into()),
                    number: 1,
                    of: 2,
                };
                m.track_done(TrackKind::Subtitles, english);
            }),
            Backdrop::Subtitled,
        ),
        (
            "player-number",
            then(quiet(), &|m| press(m, &[Digit(2)])),
            Backdrop::Channel,
        ),
        (
            "player-volume",
            then(quiet(), &|m| press(m, &[VolumeDown, VolumeDown])),
            Backdrop::Channel,
        ),
        (
            "player-not-subscribed",
            then(quiet(), &|m| press(m, &[Digit(3), Action::Ok])),
            Backdrop::Channel,
        ),
        (
            "player-reconnecting",
            then(quiet(), &|m| {
                m.feed(FeedState::Reconnecting);
            }),
            Backdrop::Channel,
        ),
        // Just after a zap: black until the first picture, the spinner turning.
        ("player-tuning", quiet(), Backdrop::None),
        (
            "player-no-signal",
            then(quiet(), &|m| {
                m.feed(FeedState::Reconnecting);
                m.timer(Timer::NoSignal);
            }),
            Backdrop::Channel,
        ),
        (
            "guide",
            then(quiet(), &|m| with_guide(m, &[Down, Right])),
            Backdrop::Channel,
        ),
        (
            "guide-long",
            then(watching_with(many_channels()), &|m| {
                m.timer(Timer::Banner);
                with_guide(
                    m,
                    &[
                        Action::ChannelDown,
                        Action::ChannelDown,
                        Down,
                        Right,
                        Right,
                        Right,
                    ],
                );
            }),
            Backdrop::Channel,
        ),
        (
            "guide-loading",
            then(quiet(), &|m| {
                m.set_now(chrono::Utc::now().timestamp_millis());
                m.action(Action::Guide);
            }),
            Backdrop::Channel,
        ),
        (
            "menu",
            then(quiet(), &|m| press(m, &[Menu, Down])),
            Backdrop::Channel,
        ),
        (
            "about",
            then(quiet(), &|m| {
                choose(m, MenuEntry::About);
                // The answer to this model's first request.
                m.about_done(
                    1,
                    About {
                        version: env!("CARGO_PKG_VERSION").into(),
                        serial: "5c1e0f3a9b27d4e8a1f06c3b7d9e2a41".into(),
                        address: "192.168.1.42".into(),
                        keyserver: Ok(9),
                        content: Ok(6),
                    },
                );
            }),
            Backdrop::Channel,
        ),
        (
            "logout-confirm",
            then(quiet(), &|m| choose(m, MenuEntry::LogOut)),
            Backdrop::Channel,
        ),
        (
            "player-recording",
            then(quiet(), &|m| {
                m.set_now(chrono::Utc::now().timestamp_millis());
                press(m, &[Action::Record]);
                m.recording_started(Ok(()));
                m.timer(Timer::Banner);
            }),
            Backdrop::Channel,
        ),
        (
            "player-paused",
            then(quiet(), &|m| {
                let now = chrono::Utc::now().timestamp_millis();
                m.set_now(now - 150_000);
                press(m, &[Action::PlayPause]);
                m.set_now(now);
                m.timer(Timer::Banner);
            }),
            Backdrop::Channel,
        ),
        ("recordings", in_locker(&[]), Backdrop::Channel),
        (
            "recordings-pictures",
            in_locker(&[Right, Down]),
            Backdrop::Channel,
        ),
        (
            "recording-playback",
            then(in_locker(&[Down, Action::Ok]), &|m| {
                m.playback_position(crate::playback::Position {
                    ms: 754_000,
                    total_ms: 2_700_000,
                    paused: true,
                    ended: false,
                });
            }),
            Backdrop::Channel,
        ),
        (
            "picture",
            in_locker(&[Right, Action::Ok]),
            Backdrop::LockerPicture,
        ),
        (
            "parental-settings",
            then(quiet(), &|m| {
                choose(m, MenuEntry::ParentalControl);
                press(m, &[Right, Right, Digit(4), Digit(4)]);
            }),
            Backdrop::Channel,
        ),
        (
            "player-locked",
            then(quiet(), &|m| {
                // Parental control set as a subscriber would (limit 12, PIN typed twice),
                // then a film rated 18 starts on the channel playing.
                choose(m, MenuEntry::ParentalControl);
                press(m, &[Right, Right]);
                for _ in 0..2 {
                    press(m, &[Digit(4), Digit(4), Digit(2), Digit(0), Action::Ok]);
                }
                m.parental_set(1, Ok(()));
                m.timer(Timer::Notice);
                let now = chrono::Utc::now().timestamp_millis();
                let mut film = Programme::titled("Midnight Heist", now - 600_000, now + 5_400_000);
                film.rating = Some("18".into());
                if let Some(number) = m.current().map(|c| c.number) {
                    m.on_air(stb_protocol::content_api::OnAir {
                        channels: vec![stb_protocol::content_api::NowNext {
                            number,
                            now: Some(film.clone()),
                            next: None,
                        }],
                    });
                }
                press(m, &[Digit(1), Digit(2)]);
            }),
            Backdrop::None,
        ),
    ]);
    scenes
}

/// MENU > Recordings with a sample locker: three recordings and two pictures.
fn in_locker(actions: &[Action]) -> Model {
    use stb_protocol::locker::{Entry, Kind, ObjectId, Recording};
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    let recording = |title: &str, channel: &str, ago: i64, minutes: u64| Entry {
        object: ObjectId::random(),
        name: format!("Recordings/{title}.ts"),
        size: minutes * 60 * 250_000,
        modified_ms: now - ago,
        kind: Kind::Recording,
        recording: Some(Recording {
            channel: 1,
            channel_name: channel.into(),
            title: title.into(),
            start_ms: now - ago,
            duration_ms: minutes * 60_000,
            rating: None,
            marks: vec![],
        }),
    };
    let picture = |name: &str, ago: i64, size: u64| Entry {
        object: ObjectId::random(),
        name: format!("Pictures/{name}"),
        size,
        modified_ms: now - ago,
        kind: Kind::Picture,
        recording: None,
    };
    let mut m = watching();
    m.timer(Timer::Banner);
    choose(&mut m, MenuEntry::Recordings);
    m.recordings_done(Ok(vec![
        recording("World Headlines", "News 24", 2 * 3_600_000, 30),
        recording("Match of the Day", "Sport Live", day, 90),
        recording("Planet Oceans", "News 24", 3 * day, 60),
        picture("Holiday in Lisbon.jpg", 5 * day, 2_400_000),
        picture("Grandma's 90th.png", 9 * day, 5_100_000),
    ]));
    press(&mut m, actions);
    m
}
