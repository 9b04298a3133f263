//! The player alone: the clear fixture pushed in pieces decodes into RGBA frames of the right
//! size, a zap restarts cleanly, and bytes that are not MPEG-TS (say, still encrypted) give
//! no picture.
#![allow(missing_docs)]

use stb_app::player::{Frame, Player};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../media-fixtures/").to_owned() + name)
        .expect("fixture")
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
