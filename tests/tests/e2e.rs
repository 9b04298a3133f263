//! The three programs together on loopback, as DESIGN.md's flows describe them.
#![allow(missing_docs)]

use serde_json::Value;
use stb_e2e::{PASSWORD, Stack, run};
use std::path::PathBuf;
use std::process::Command;
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

/// What the box's own end-to-end test covered beyond the test above: the password policy at
/// the desk's command, the identifier typed in another case, and the picture saved.
#[test]
fn weak_password_refused_identifier_normalised_picture_saved() {
    let (stack, code) = Stack::start("Alice Martin", "basic", &[]).expect("stack");
    let weak = stack
        .stb_app(
            &["register", "--code", &code, "--identifier", "alice"],
            "password!!\npassword!!\n",
        )
        .expect("register")
        .wait_with_output()
        .expect("register");
    assert!(!weak.status.success());
    let stderr = String::from_utf8_lossy(&weak.stderr);
    assert!(stderr.contains("too easy to guess"), "{stderr}");
    // The policy is checked before the code is spent: the same code still registers.
    let out = stack.register(&code, "alice").expect("register");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let snapshot = stack.dir.path().join("snapshot.png");
    let child = stack
        .stb_app(
            &[
                "headless",
                "--identifier",
                "Alice",
                "--channels",
                "1",
                "--dwell-secs",
                "2.5",
                "--snapshot",
                snapshot.to_str().expect("path"),
            ],
            &format!("{PASSWORD}\n"),
        )
        .expect("headless");
    let out = child.wait_with_output().expect("report");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("report: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(report["account"], "Alice Martin", "{report}");
    assert!(frames(&report, 0) >= 25, "{report}");
    let png = std::fs::read(&snapshot).expect("snapshot written");
    assert_eq!(&png[1..4], b"PNG");
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

/// A box enrolled by hand (openssl key and CSR, curl): what a subscriber keeps after the
/// enrollment, to register with the key server later.
struct HandEnrolled {
    cert: PathBuf,
    key: PathBuf,
}

fn enroll_by_hand(stack: &Stack, code: &str) -> HandEnrolled {
    let dir = stack.dir.path();
    let (key, csr, cert) = (
        dir.join("hand.key"),
        dir.join("hand.csr"),
        dir.join("hand.crt"),
    );
    run(Command::new("openssl")
        .args([
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
        ])
        .arg(&key))
    .expect("key");
    run(Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=box", "-key"])
        .arg(&key)
        .arg("-out")
        .arg(&csr))
    .expect("csr");
    let body = serde_json::json!({
        "code": code,
        "csr_pem": std::fs::read_to_string(&csr).expect("csr"),
    });
    let out = run(Command::new("curl")
        .args([
            "-sf",
            "-H",
            "content-type: application/json",
            "--data-binary",
        ])
        .arg(body.to_string())
        .arg("--cacert")
        .arg(dir.join("content/ca/ca.crt"))
        .arg(format!("https://127.0.0.1:{}/v1/enroll", stack.enroll_port)))
    .expect("enroll");
    let enrolled: Value = serde_json::from_slice(&out.stdout).expect("json");
    std::fs::write(&cert, enrolled["certificate_pem"].as_str().expect("pem")).expect("write");
    HandEnrolled { cert, key }
}

/// Status and body of a registration of `identifier` with that certificate.
fn register_by_hand(stack: &Stack, id: &HandEnrolled, identifier: &str) -> (u16, String) {
    use stb_protocol::*;
    let n = Identifier::parse(identifier).expect("identifier");
    let keys = PasswordKeys::from_kp(Suite::V1, &n, &SecretArray::new([7; 32]));
    let data = PersonalData {
        account: "Dora".into(),
        certificate_der: vec![1; 300],
        private_key_pkcs8: SecretVec::new(vec![2; 138]),
        ks: SecretArray::new([3; 32]),
        content_server_url: "https://127.0.0.1:1".into(),
        operator_ca_der: vec![4; 300],
        keyserver_url: "https://127.0.0.1:2".into(),
        locker_key: None,
    };
    let request = RegisterRequest::new(&keys, &data, random_array()).expect("request");
    let body = stack.dir.path().join("register.bin");
    std::fs::write(&body, request.encode()).expect("write");
    let out = run(Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            "content-type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg("--cacert")
        .arg(stack.dir.path().join("keyserver/tls/server.crt"))
        .arg("--cert")
        .arg(&id.cert)
        .arg("--key")
        .arg(&id.key)
        .arg(format!("https://127.0.0.1:{}/v1/register", stack.key_port)))
    .expect("register");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.parse().expect("status"), body.trim().to_owned())
}

/// Waits (the content server makes its CRL at most every 10 s, the key server fetches it every
/// second here) for `identifier`'s
/// registration to get one of `statuses` (until then it may be created or replaced).
fn register_until(stack: &Stack, id: &HandEnrolled, identifier: &str, statuses: &[u16]) -> String {
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = register_by_hand(stack, id, identifier);
        if statuses.contains(&last.0) {
            return last.1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("registration of {identifier}: wanted {statuses:?}, got {last:?}");
}

/// After the operator revoked or suspended a subscriber, its certificate still got 201 from
/// the key server's registration. The key server now follows the operator's CRL.
#[test]
fn suspended_and_revoked_certificates_cannot_register() {
    let (stack, code) = Stack::start("Dora", "basic", &[]).expect("stack");
    let id = enroll_by_hand(&stack, &code);
    assert_eq!(register_by_hand(&stack, &id, "dora").0, 201);
    run(stack.content_cmd().args(["subscriber", "suspend", "Dora"])).expect("suspend");
    let body = register_until(&stack, &id, "dora-two", &[403]);
    assert_eq!(body, "this subscription is suspended, contact the operator");
    run(stack.content_cmd().args(["subscriber", "resume", "Dora"])).expect("resume");
    register_until(&stack, &id, "dora-two", &[200, 201]);
    run(stack.content_cmd().args(["subscriber", "revoke", "Dora"])).expect("revoke");
    let body = register_until(&stack, &id, "dora-three", &[403]);
    assert_eq!(body, "this subscription is revoked");
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

/// The operator runs an edge (nginx, set up by `content-server edge nginx`): the box takes
/// each segment from it with the origin's token, and plays.
#[test]
fn the_box_plays_through_the_operators_edge() {
    let edge_port = stb_server_common::listener::free_loopback_port().expect("port");
    let edge_url = format!("https://127.0.0.1:{edge_port}");
    let (stack, code) =
        Stack::start_with("Erin", "basic", &[], &["--edge-url", &edge_url], &[]).expect("stack");
    let edge = stack.start_edge(edge_port).expect("edge");
    let out = stack.register(&code, "erin").expect("register");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stack
        .headless("erin", PASSWORD, "1,2", 2.5)
        .expect("headless");
    for i in 0..2 {
        assert!(frames(&report, i) >= 25, "channel {i}: {report}");
        assert!(!errors(&report, i).contains("edge"), "{report}");
    }
    let served = edge.access_log();
    for channel in [1, 2] {
        let from_edge = served
            .lines()
            .filter(|l| {
                l.contains(" 200 ") && l.contains(&format!("/v1/channels/{channel}/segments/"))
            })
            .count();
        assert!(
            from_edge >= 2,
            "channel {channel} through the edge:\n{served}"
        );
    }
}

/// The edge named by the origin is down: the box streams from the origin instead, and says
/// why in its report.
#[test]
fn the_box_streams_from_the_origin_when_the_edge_is_down() {
    // A port held bound and not listening: nothing can answer there, not even the box's own
    // connection meeting itself.
    let held = tokio::net::TcpSocket::new_v4().expect("socket");
    held.bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let dead = held.local_addr().expect("addr").port();
    let edge_url = format!("https://127.0.0.1:{dead}");
    let (stack, code) =
        Stack::start_with("Finn", "basic", &[], &["--edge-url", &edge_url], &[]).expect("stack");
    let out = stack.register(&code, "finn").expect("register");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stack
        .headless("finn", PASSWORD, "1", 2.5)
        .expect("headless");
    assert!(frames(&report, 0) >= 25, "{report}");
    assert!(errors(&report, 0).contains("edge failed"), "{report}");
}

/// An encoder process, stopped when dropped (also when a test fails).
struct Encoder(std::process::Child);

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A live channel (an encoder sending MPEG-TS over UDP to the operator): the box shows the
/// slate before the input comes, then the input, and the slate again when the encoder stops,
/// without a restart. The encoder sends no sound and the slate has (silent) sound: that is how
/// the report tells them apart.
#[test]
fn the_box_plays_a_live_input_and_the_slate_when_it_stops() {
    let fixtures = std::fs::canonicalize(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../media-fixtures"),
    )
    .expect("fixtures");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("channels.toml");
    std::fs::write(
        &manifest,
        format!(
            "slate = {slate:?}\n\n[[channel]]\nnumber = 1\nname = \"News 24\"\nfile = {ch1:?}\n\
             packages = [\"basic\"]\n\n[[channel]]\nnumber = 5\nname = \"Studio\"\n\
             input = \"udp://127.0.0.1:{port}\"\npackages = [\"basic\"]\n",
            slate = fixtures.join("slate.ts").display().to_string(),
            ch1 = fixtures.join("ch1.ts").display().to_string(),
        ),
    )
    .expect("manifest");
    let (stack, code) =
        // Three logins in a row: the key server's spacing between attempts shortened.
        Stack::start_with_channels(
            "Gus",
            "basic",
            &["--min-spacing-secs", "1"],
            &[],
            &[],
            &manifest,
        )
        .expect("stack");
    let out = stack.register(&code, "gus").expect("register");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No encoder yet: the slate, picture and sound.
    let report = stack.headless("gus", PASSWORD, "5", 2.5).expect("headless");
    assert!(frames(&report, 0) >= 25, "{report}");
    assert!(
        report["channels"][0]["audio_buffers"].as_u64() > Some(0),
        "{report}"
    );

    let encoder = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "is-live=true", "pattern=ball", "!"])
        .args(["video/x-raw,width=320,height=180,framerate=25/1", "!"])
        .args([
            "x264enc",
            "tune=zerolatency",
            "speed-preset=ultrafast",
            "bitrate=300",
        ])
        .args([
            "key-int-max=25",
            "!",
            "h264parse",
            "config-interval=-1",
            "!",
        ])
        .args(["mpegtsmux", "alignment=7", "!", "udpsink", "host=127.0.0.1"])
        .arg(format!("port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gst-launch-1.0");
    let encoder = Encoder(encoder);
    let log = stack.dir.path().join("content.log");
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("live input ok")
    {
        assert!(std::time::Instant::now() < until, "the input never came");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Two GOPs later every segment on air is the encoder's: pictures, no sound.
    std::thread::sleep(Duration::from_secs(2));
    let report = stack.headless("gus", PASSWORD, "5", 2.5).expect("headless");
    assert!(frames(&report, 0) >= 25, "{report}");
    assert_eq!(report["channels"][0]["audio_buffers"], 0, "{report}");

    // The encoder stops while the box plays: the picture goes on, onto the slate.
    std::thread::sleep(Duration::from_millis(1100));
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        drop(encoder);
    });
    let report = stack.headless("gus", PASSWORD, "5", 7.0).expect("headless");
    stopper.join().expect("stopper");
    assert!(frames(&report, 0) >= 100, "{report}");
    assert!(
        report["channels"][0]["audio_buffers"].as_u64() > Some(0),
        "{report}"
    );
    assert_eq!(errors(&report, 0), "[]", "{report}");
}
