//! The player alone: the clear fixture pushed in pieces decodes into RGBA frames of the right
//! size, a zap restarts cleanly, and bytes that are not MPEG-TS (say, still encrypted) give
//! no picture.
#![allow(missing_docs)]

use stb_app::player::{Frame, Next, Player, Track};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../media-fixtures/").to_owned() + name)
        .expect("fixture")
}

/// Two seconds of a live input as an encoder would send it (320x180, another size than the
/// slate's), with AAC sound or without.
fn live_input(sound: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live.ts");
    let mut gst = std::process::Command::new("gst-launch-1.0");
    gst.args([
        "-q",
        "-e",
        "videotestsrc",
        "num-buffers=50",
        "pattern=ball",
        "!",
    ])
    .args(["video/x-raw,width=320,height=180,framerate=25/1", "!"])
    .args([
        "x264enc",
        "tune=zerolatency",
        "speed-preset=ultrafast",
        "key-int-max=25",
    ])
    .args(["!", "h264parse", "config-interval=-1", "!", "queue", "!"])
    .args(["mpegtsmux", "name=mux", "alignment=7", "!", "filesink"])
    .arg(format!("location={}", live.display()));
    if sound {
        gst.args([
            "audiotestsrc",
            "num-buffers=94",
            "samplesperbuffer=1024",
            "!",
        ])
        .args([
            "audio/x-raw,rate=48000,channels=2",
            "!",
            "voaacenc",
            "!",
            "aacparse",
        ])
        .args(["!", "queue", "!", "mux."]);
    }
    assert!(gst.status().expect("gst-launch-1.0").success());
    std::fs::read(&live).expect("live")
}

/// Each track's language and whether it is the one playing.
fn listed(tracks: Vec<Track>) -> Vec<(String, bool)> {
    tracks
        .into_iter()
        .map(|t| (t.language.unwrap_or_default(), t.selected))
        .collect()
}

async fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn decodes_into_rgba_frames_and_zaps() {
    let frames = Arc::new(AtomicU64::new(0));
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (f, s) = (frames.clone(), sizes.clone());
    let handler = Arc::new(move |frame: Frame| {
        f.fetch_add(1, Ordering::SeqCst);
        let mut sizes = s.lock().expect("lock");
        if sizes.len() < 3 {
            sizes.push((frame.width, frame.height, frame.stride, frame.rgba.len()));
        }
    });
    // appsink syncs on the clock: feed a few seconds and wait.
    let player = Player::with_frames("appsink", "fakesink", Some(handler)).expect("player");
    player.zap().expect("zap");
    for chunk in fixture("ch1.ts")[..188 * 2000].chunks(188 * 100) {
        player.push(chunk.to_vec()).expect("push");
    }
    assert!(
        wait_for(|| frames.load(Ordering::SeqCst) >= 10).await,
        "{:?}",
        player.stats().snapshot()
    );
    let first = sizes.lock().expect("lock")[0];
    assert_eq!((first.0, first.1), (640, 360));
    assert_eq!(first.3, first.2 * 360);

    // Zap to another channel: counters restart and frames come again.
    player.zap().expect("zap");
    assert_eq!(player.stats().snapshot().video_frames, 0);
    for chunk in fixture("ch2.ts")[..188 * 2000].chunks(188 * 100) {
        player.push(chunk.to_vec()).expect("push");
    }
    assert!(wait_for(|| player.stats().snapshot().video_frames > 0).await);
    assert!(player.stats().snapshot().first_frame_ms.is_some());
}

#[tokio::test]
async fn undecrypted_bytes_give_no_picture() {
    let player = Player::new("fakesink", "fakesink").expect("player");
    player.zap().expect("zap");
    // Still encrypted: not MPEG-TS at all.
    let mut noise = vec![0u8; 188 * 500];
    for (i, b) in noise.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0];
    }
    player.push(noise).expect("push");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = player.stats().snapshot();
    assert_eq!(
        (
            stats.video_frames,
            stats.audio_buffers,
            stats.first_frame_ms
        ),
        (0, 0, None)
    );
}

/// A live channel alternates between its input and the content server's slate, which differ
/// in size, streams (the slate has sound, this input none) and timestamps: the picture goes on
/// from the zap and through each change, as tsdemux announces a new program and the player
/// links its pads again.
#[tokio::test]
async fn slate_and_live_input_follow_each_other() {
    let live = live_input(false);
    // The sound's sink as on the box: it must not hold the picture while no sound comes.
    let player = Player::new("fakesink", "autoaudiosink").expect("player");
    player.zap().expect("zap");
    let mut expected = 0;
    for (name, part) in [
        ("input without sound", live.clone()),
        ("slate", fixture("slate.ts")),
        ("input again", live),
        ("slate again", fixture("slate.ts")),
    ] {
        let before = player.stats().snapshot().video_frames;
        for chunk in part.chunks(188 * 7) {
            player.push(chunk.to_vec()).expect("push");
        }
        // 2 s of 25 fps each; a GOP boundary may hold back a frame or two.
        expected += 45;
        assert!(
            wait_for(|| player.stats().snapshot().video_frames >= expected).await,
            "{name}: {} frames after {before}: {:?}",
            player.stats().snapshot().video_frames,
            player.stats().snapshot()
        );
    }
}

/// Time shift: paused, a live channel's data waits in the source and no picture comes; played
/// on, pictures come again at once (behind live). Fed in real time, as the feeder does, with
/// the box's sound sink.
#[tokio::test]
async fn pause_holds_live_tv_and_play_goes_on_behind_live() {
    let frames = Arc::new(AtomicU64::new(0));
    let f = frames.clone();
    let handler = Arc::new(move |_: Frame| {
        f.fetch_add(1, Ordering::SeqCst);
    });
    let player =
        Arc::new(Player::with_frames("appsink", "autoaudiosink", Some(handler)).expect("player"));
    player.zap().expect("zap");
    let ts = fixture("ch1.ts");
    // The 24 s fixture looped as the content server does (its timestamps start again), a
    // second of it every second from 20 s on, in a thread of its own: the loop point passes
    // while paused.
    let per_second = ts.len() / 24 / 188 * 188;
    let looped: Vec<u8> = [&ts[..], &ts[..]].concat();
    let feeding = {
        let player = player.clone();
        std::thread::spawn(move || {
            for second in looped.chunks(per_second).skip(20).take(12) {
                player.push(second.to_vec()).expect("push");
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    assert!(wait_for(|| frames.load(Ordering::SeqCst) >= 25).await);
    player.pause(true).expect("pause");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = frames.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        frames.load(Ordering::SeqCst) <= held + 1,
        "pictures while paused"
    );
    assert!(player.queued_bytes() > 0, "live data waits in the source");
    player.pause(false).expect("play");
    let resumed = frames.load(Ordering::SeqCst);
    assert!(
        wait_for(|| frames.load(Ordering::SeqCst) >= resumed + 50).await,
        "{} pictures in 5 s after PLAY: {:?}",
        frames.load(Ordering::SeqCst) - resumed,
        player.stats().snapshot()
    );
    feeding.join().expect("feeder");
}

/// Channel 3 speaks English and French: both tracks are listed with their language, the
/// first plays; the next track plays French, and French stays the choice after a zap.
#[tokio::test]
async fn sound_tracks_are_listed_and_chosen_across_zaps() {
    let player = Player::new("fakesink", "fakesink").expect("player");
    let languages = |player: &Player| listed(player.audio_tracks());
    let feed = |player: &Player| {
        player.zap().expect("zap");
        for chunk in fixture("ch3.ts")[..188 * 3000].chunks(188 * 100) {
            player.push(chunk.to_vec()).expect("push");
        }
    };
    feed(&player);
    assert!(wait_for(|| player.audio_tracks().len() == 2).await);
    assert_eq!(
        languages(&player),
        [("en".to_owned(), true), ("fr".to_owned(), false)]
    );
    assert!(wait_for(|| player.stats().snapshot().audio_buffers > 0).await);

    let chosen = player.next_audio_track();
    assert!(
        matches!(&chosen, Next::Playing { language: Some(l), number: 2, of: 2 } if l == "fr"),
        "{chosen:?}"
    );
    let before = player.stats().snapshot().audio_buffers;
    for chunk in fixture("ch3.ts")[188 * 3000..188 * 6000].chunks(188 * 100) {
        player.push(chunk.to_vec()).expect("push");
    }
    assert!(
        wait_for(|| player.stats().snapshot().audio_buffers > before + 10).await,
        "sound goes on after the change"
    );

    // Another channel with English only plays it; back on channel 3, French again.
    player.zap().expect("zap");
    for chunk in fixture("ch1.ts")[..188 * 3000].chunks(188 * 100) {
        player.push(chunk.to_vec()).expect("push");
    }
    assert!(wait_for(|| player.audio_tracks().len() == 1).await);
    assert_eq!(languages(&player), [("en".to_owned(), true)]);
    feed(&player);
    assert!(wait_for(|| player.audio_tracks().len() == 2).await);
    assert_eq!(
        languages(&player),
        [("en".to_owned(), false), ("fr".to_owned(), true)]
    );
}

/// A program change keeps the sound: tsdemux adds the new program's pads before it removes
/// the old ones, and the sound follows to the new program (a live input with sound, the
/// server's slate, the input again).
#[tokio::test]
async fn sound_follows_a_program_change() {
    let live = live_input(true);
    let player = Player::new("fakesink", "fakesink").expect("player");
    player.zap().expect("zap");
    for (name, part) in [
        ("input", live.clone()),
        ("slate", fixture("slate.ts")),
        ("input again", live),
    ] {
        let before = player.stats().snapshot().audio_buffers;
        for chunk in part.chunks(188 * 7) {
            player.push(chunk.to_vec()).expect("push");
        }
        assert!(
            wait_for(|| player.stats().snapshot().audio_buffers >= before + 40).await,
            "{name}: {:?}",
            player.stats().snapshot()
        );
    }
}

/// How much of the band where channel 3's subtitles appear is covered by their box: the
/// box lets a quarter of the picture through, so the pinwheel's white stripes turn dark
/// grey under it (pure black and white without it).
fn subtitle_box(frame: &Frame) -> bool {
    let band = frame.rows().skip(264).take(20);
    let (mut grey, mut all) = (0, 0);
    for row in band {
        for pixel in row[4 * 220..4 * 420].chunks(4) {
            all += 1;
            if (40..=110).contains(&pixel[0]) {
                grey += 1;
            }
        }
    }
    grey * 5 > all
}

/// Channel 3 carries DVB subtitles in English and French: both are listed, none shown
/// until chosen; the subtitle key's order is English, French, off; the choice holds across
/// zaps, and a channel without subtitles says so.
#[tokio::test]
async fn subtitles_are_listed_drawn_on_the_picture_and_turned_off() {
    let (frames, boxed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (f, b) = (frames.clone(), boxed.clone());
    let handler = Arc::new(move |frame: Frame| {
        f.fetch_add(1, Ordering::SeqCst);
        if subtitle_box(&frame) {
            b.fetch_add(1, Ordering::SeqCst);
        }
    });
    let player = Player::with_frames("appsink", "fakesink", Some(handler)).expect("player");
    let play = |name: &str| {
        player.zap().expect("zap");
        player.push(fixture(name)).expect("push");
    };
    let shown = |player: &Player| listed(player.subtitle_tracks());
    play("ch3.ts");
    assert!(wait_for(|| player.subtitle_tracks().len() == 2).await);
    assert_eq!(
        shown(&player),
        [("en".to_owned(), false), ("fr".to_owned(), false)]
    );
    // The first cue runs from 1 s to 4.5 s: off, it is not drawn.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(frames.load(Ordering::SeqCst) > 50);
    assert_eq!(boxed.load(Ordering::SeqCst), 0, "subtitles drawn while off");

    let next = player.next_subtitles();
    assert_eq!(
        next,
        Next::Playing {
            language: Some("en".into()),
            number: 1,
            of: 2
        }
    );
    assert!(
        wait_for(|| boxed.load(Ordering::SeqCst) > 5).await,
        "no subtitles drawn within 5 s of turning them on"
    );
    assert!(matches!(
        player.next_subtitles(),
        Next::Playing { number: 2, .. }
    ));
    assert_eq!(player.next_subtitles(), Next::Off { of: 2 });
    // Pictures already drawn wait in the video queue (up to a second of them).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = boxed.load(Ordering::SeqCst);
    // Cues are at most a second apart: two seconds off would show one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        boxed.load(Ordering::SeqCst),
        before,
        "subtitles drawn after off"
    );

    // English chosen again holds across zaps; channel 1 has none.
    player.next_subtitles();
    play("ch1.ts");
    assert!(wait_for(|| player.stats().snapshot().video_frames > 0).await);
    assert!(player.subtitle_tracks().is_empty());
    assert_eq!(player.next_subtitles(), Next::NoTracks);
    play("ch3.ts");
    assert!(wait_for(|| player.subtitle_tracks().len() == 2).await);
    assert_eq!(
        shown(&player),
        [("en".to_owned(), true), ("fr".to_owned(), false)]
    );

    // Logout: the next subscriber starts without them, now and after a zap.
    player.forget_track_choices();
    let none = [("en".to_owned(), false), ("fr".to_owned(), false)];
    assert_eq!(shown(&player), none);
    play("ch3.ts");
    assert!(wait_for(|| player.subtitle_tracks().len() == 2).await);
    assert_eq!(shown(&player), none);
}
