//! The box against the real key server and content server on loopback: registration, login,
//! decoding two channels, zapping, refusals, a content-server restart mid-play, logout.
#![allow(missing_docs)]

mod common;

use common::{PASSWORD, stack};
use stb_app::feed::FeedState;
use stb_app::player::Player;
use stb_protocol::Password;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_play_zap_refusals_restart_logout() {
    let (mut stack, code) = stack().await;
    let cfg = stack.box_config.clone();

    // Registration: a weak password is refused with a reason, a good one registers.
    let data = stb_app::register::enroll(&cfg, &code)
        .await
        .expect("enroll");
    assert_eq!(data.account, "Alice Martin");
    let weak = stb_app::register::register(
        &cfg,
        data.clone(),
        "alice",
        Password::from("password!!"),
        Password::from("password!!"),
    )
    .await;
    assert!(
        weak.expect_err("weak")
            .to_string()
            .starts_with("too easy to guess")
    );
    stb_app::register::register(
        &cfg,
        data,
        "alice",
        Password::from(PASSWORD),
        Password::from(PASSWORD),
    )
    .await
    .expect("register");

    // Wrong password.
    let bad = stb_app::headless::run(
        &cfg,
        "alice",
        Password::from("Sofa-remote#2026?"),
        &[1],
        Duration::from_secs(1),
        None,
    )
    .await
    .expect("run");
    assert_eq!(
        bad.login_error.as_deref(),
        Some("wrong identifier or password")
    );

    // Spacing: the key server wants 10 s between attempts on one identifier.
    tokio::time::sleep(Duration::from_millis(10_200)).await;

    // Login, play 1 and 2 (zap), try 3 (not in "basic"), log out.
    let report = stb_app::headless::run(
        &cfg,
        "Alice",
        Password::from(PASSWORD),
        &[1, 2, 3],
        Duration::from_secs(3),
        Some(&stack.data_dir.join("../snapshot.png")),
    )
    .await
    .expect("run");
    assert_eq!(report.login_error, None, "{report:?}");
    eprintln!("{}", serde_json::to_string_pretty(&report).expect("json"));
    assert_eq!(report.account.as_deref(), Some("Alice Martin"));
    for ch in &report.channels[..2] {
        assert!(ch.entitled);
        assert!(
            ch.stats.video_frames >= 25,
            "channel {}: {:?}",
            ch.number,
            ch.stats
        );
        assert!(
            ch.stats.audio_buffers > 0,
            "channel {}: {:?}",
            ch.number,
            ch.stats
        );
        assert!(ch.stats.first_frame_ms.is_some());
    }
    let three = &report.channels[2];
    assert!(!three.entitled);
    assert_eq!(three.stats.video_frames, 0);
    assert!(
        three
            .stats
            .errors
            .iter()
            .any(|e| e.contains("not in your subscription")),
        "{three:?}"
    );
    assert!(report.logged_out);
    let png = std::fs::read(stack.data_dir.join("../snapshot.png")).expect("snapshot written");
    assert_eq!(&png[1..4], b"PNG");
    // The box keeps nothing on disk.
    assert_eq!(std::fs::read_dir(&stack.data_dir).expect("dir").count(), 0);

    // Content server restarted in the middle of playback: the feed reconnects by itself.
    tokio::time::sleep(Duration::from_millis(10_200)).await;
    let session = Arc::new(
        stb_app::session::login(&cfg, "alice", Password::from(PASSWORD))
            .await
            .expect("login"),
    );
    assert!(session.key_count() >= 2);
    let player = Arc::new(Player::new("fakesink", "fakesink").expect("player"));
    player.zap().expect("zap");
    let (state, mut changes) = tokio::sync::watch::channel(FeedState::Starting);
    let feeder = tokio::spawn(stb_app::feed::feed(
        session.clone(),
        player.clone(),
        4,
        state,
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(player.stats().snapshot().video_frames > 0);
    // The feeder pushes each change of its state.
    assert_eq!(*changes.borrow_and_update(), FeedState::Playing);
    stack.content.take().expect("running").shutdown().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(changes.has_changed().expect("feeder running"));
    assert_eq!(*changes.borrow_and_update(), FeedState::Reconnecting);
    let before = player.stats().snapshot().video_frames;
    stack.content = Some(
        content_server::server::start(&stack.content_config)
            .await
            .expect("restart"),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(*changes.borrow(), FeedState::Playing);
    let after = player.stats().snapshot();
    assert!(
        after.video_frames > before + 25,
        "no frames after the restart: {before} -> {after:?}"
    );
    assert!(
        after
            .errors
            .iter()
            .any(|e| e.contains("retrying") || e.contains("reconnecting")),
        "{after:?}"
    );
    feeder.abort();
    let _ = feeder.await;
    drop(player);
    let session = Arc::try_unwrap(session).expect("only owner");
    session.logout();
    let _ = &stack.keyserver;
}
