//! The three programs together on loopback, as DESIGN.md's flows describe them.
#![allow(missing_docs)]

use serde_json::Value;
use stb_e2e::{PASSWORD, Stack, run};
use std::time::Duration;

fn frames(report: &Value, i: usize) -> u64 {
    report["channels"][i]["video_frames"].as_u64().unwrap_or(0)
}

fn errors(report: &Value, i: usize) -> String {
    report["channels"][i]["errors"].to_string()
}

#[test]
fn enroll_register_login_play_zap_refusal_logout() {
    let (stack, code) = Stack::start("Alice Martin", "basic", &[]).expect("stack");
    let out = stack.register(&code, "alice").expect("register");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The code is single use.
    let again = stack.register(&code, "alice2").expect("register");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already used"));

    let report = stack
        .headless("alice", PASSWORD, "1,2,4,3", 2.5)
        .expect("headless");
    assert_eq!(report["account"], "Alice Martin", "{report}");
    for i in 0..3 {
        assert!(frames(&report, i) >= 25, "channel {i}: {report}");
        assert!(report["channels"][i]["audio_buffers"].as_u64().unwrap_or(0) > 0);
        assert!(report["channels"][i]["first_frame_ms"].is_u64());
    }
    assert_eq!(frames(&report, 3), 0);
    assert!(
        errors(&report, 3).contains("not in your subscription"),
        "{report}"
    );
    assert_eq!(report["logged_out"], true);
}

#[test]
fn wrong_password_retry_time_lock_and_operator_unlock() {
    let (stack, code) = Stack::start(
        "Bob",
        "basic",
        &["--min-spacing-secs", "2", "--max-failures", "3"],
    )
    .expect("stack");
    assert!(
        stack
            .register(&code, "bob")
            .expect("register")
            .status
            .success()
    );
    let wrong = "Sofa-Remote#2026?";
    let r = stack.headless("bob", wrong, "1", 0.5).expect("headless");
    assert_eq!(r["login_error"], "wrong identifier or password");
    // At once again: refused with the time to wait.
    let r = stack.headless("bob", PASSWORD, "1", 0.5).expect("headless");
    assert!(
        r["login_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("too many attempts: try again in"),
        "{r}"
    );
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(2100));
        let r = stack.headless("bob", wrong, "1", 0.5).expect("headless");
        assert_eq!(r["login_error"], "wrong identifier or password");
    }
    std::thread::sleep(Duration::from_millis(2100));
    let r = stack.headless("bob", PASSWORD, "1", 0.5).expect("headless");
    assert_eq!(
        r["login_error"],
        "this account is locked: call the operator"
    );
    run(stack.key_cmd().args(["accounts", "unlock", "bob"])).expect("unlock");
    let r = stack.headless("bob", PASSWORD, "1", 1.5).expect("headless");
    assert_eq!(r["login_error"], Value::Null, "{r}");
    assert!(frames(&r, 0) > 0);
}

#[test]
fn revoked_subscriber_is_refused() {
    let (stack, code) = Stack::start("Carol", "premium", &[]).expect("stack");
    assert!(
        stack
            .register(&code, "carol")
            .expect("register")
            .status
            .success()
    );
    let r = stack
        .headless("carol", PASSWORD, "3", 1.5)
        .expect("headless");
    assert!(frames(&r, 0) > 0, "{r}");
    run(stack.content_cmd().args(["subscriber", "revoke", "Carol"])).expect("revoke");
    std::thread::sleep(Duration::from_millis(10_100)); // key-server spacing
    let r = stack
        .headless("carol", PASSWORD, "3", 1.0)
        .expect("headless");
    assert_eq!(r["login_error"], "subscription revoked", "{r}");
}

#[test]
fn content_server_killed_and_restarted_mid_play() {
    let (mut stack, code) = Stack::start("Dave", "basic", &[]).expect("stack");
    assert!(
        stack
            .register(&code, "dave")
            .expect("register")
            .status
            .success()
    );
    let child = stack
        .stb_app(
            &[
                "headless",
                "--identifier",
                "dave",
                "--channels",
                "1",
                "--dwell-secs",
                "12",
            ],
            &format!("{PASSWORD}\n"),
        )
        .expect("headless");
    std::thread::sleep(Duration::from_secs(4));
    stack.content.as_mut().expect("content").kill(); // SIGKILL
    std::thread::sleep(Duration::from_secs(1));
    stack.start_content().expect("restart");
    let out = child.wait_with_output().expect("report");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    // 12 s of a live channel with a ~1.5 s gap: clearly more than the 4 s before the kill.
    assert!(frames(&report, 0) > 25 * 7, "{report}");
    assert!(
        errors(&report, 0).contains("retrying") || errors(&report, 0).contains("reconnecting"),
        "{report}"
    );
}

#[test]
fn keyserver_killed_during_registration_then_retry() {
    let (mut stack, code) = Stack::start("Erin", "basic", &[]).expect("stack");
    // Enroll once (the code is single use), then kill the key server while the box derives
    // its keys and uploads: the upload fails or lands whole, never half.
    let child = stack
        .stb_app(
            &["register", "--code", &code, "--identifier", "erin"],
            &format!("{PASSWORD}\n{PASSWORD}\n"),
        )
        .expect("register");
    std::thread::sleep(Duration::from_millis(120));
    stack.keyserver.as_mut().expect("keyserver").kill();
    let first = child.wait_with_output().expect("register");
    stack.start_keyserver().expect("restart");
    let show = stack
        .key_cmd()
        .args(["accounts", "show", "erin"])
        .output()
        .expect("show");
    if first.status.success() {
        assert!(show.status.success(), "acknowledged registration lost");
    } else {
        // No partial account: either absent, or complete (it must then recover below).
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(
            stderr.contains("key server") || stderr.contains("refused"),
            "{stderr}"
        );
    }
    // The box retries with a new code from the desk.
    let code = stack.new_code("Erin").expect("code");
    let retry = stack.register(&code, "erin").expect("register");
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    let r = stack
        .headless("erin", PASSWORD, "2", 1.5)
        .expect("headless");
    assert_eq!(r["login_error"], Value::Null, "{r}");
    assert!(frames(&r, 0) > 0);
}
