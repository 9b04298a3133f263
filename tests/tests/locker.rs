//! The subscriber's locker end to end: `stb-app locker` from a desktop against the real key
//! server and content server, and what the operator's side holds afterwards.
#![allow(missing_docs)]

use stb_e2e::{PASSWORD, Stack};
use std::path::Path;
use std::process::Output;

/// A stack whose key server lets logins follow each other at once (every command here is a
/// login), and the enrollment code of its subscriber "Lena Sommer".
fn stack() -> (Stack, String) {
    Stack::start("Lena Sommer", "basic", &["--min-spacing-secs", "0"]).expect("stack")
}

/// [`stack`] with the subscriber registered as `lena` by the desk's command.
fn lena() -> Stack {
    let (stack, code) = stack();
    let out = stack.register(&code, "lena").expect("register");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stack
}

/// A headless box of `lena` on channel 1 with `args`; its JSON report.
fn headless(stack: &Stack, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["headless", "--identifier", "lena", "--channels", "1"];
    all.extend_from_slice(args);
    let out = stack
        .stb_app(&all, &format!("{PASSWORD}\n"))
        .expect("stb-app")
        .wait_with_output()
        .expect("output");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn locker(stack: &Stack, args: &[&str]) -> Output {
    let mut all = vec!["locker", "--identifier", "lena"];
    all.extend_from_slice(args);
    stack
        .stb_app(&all, &format!("{PASSWORD}\n"))
        .expect("stb-app")
        .wait_with_output()
        .expect("stb-app output")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Pseudo-random bytes (a fixed xorshift): plaintext that cannot appear by chance.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn files_put_from_a_desktop_come_back_on_another_login_and_the_server_sees_no_name() {
    let stack = lena();
    let work = tempfile::tempdir().expect("tmp");
    let holiday = noise(300_000, 7);
    let source = work.path().join("Holiday-in-Lisbon.jpg");
    std::fs::write(&source, &holiday).expect("write");
    let notes = work.path().join("notes.txt");
    std::fs::write(&notes, b"Secret plans for the sofa\n").expect("write");

    let stored = ok(&locker(
        &stack,
        &[
            "put",
            source.to_str().expect("path"),
            "--name",
            "Pictures/Holiday-in-Lisbon.jpg",
        ],
    ));
    assert!(
        stored.contains("stored Pictures/Holiday-in-Lisbon.jpg (300000 bytes"),
        "{stored}"
    );
    ok(&locker(&stack, &["put", notes.to_str().expect("path")]));
    // The same name again is refused unless replaced.
    let again = locker(&stack, &["put", notes.to_str().expect("path")]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("in the locker already"));

    let listing = ok(&locker(&stack, &["ls"]));
    assert!(
        listing.contains("picture    Pictures/Holiday-in-Lisbon.jpg"),
        "{listing}"
    );
    assert!(listing.contains("notes.txt"), "{listing}");
    assert!(listing.contains("2 files"), "{listing}");

    // Another login (a new process: nothing kept) reads it back whole.
    let back = work.path().join("back.jpg");
    ok(&locker(
        &stack,
        &[
            "get",
            "Pictures/Holiday-in-Lisbon.jpg",
            back.to_str().expect("path"),
        ],
    ));
    assert_eq!(std::fs::read(&back).expect("read"), holiday);

    ok(&locker(&stack, &["mv", "notes.txt", "Documents/plans.txt"]));
    let out = locker(&stack, &["get", "Documents/plans.txt", "-"]);
    assert_eq!(ok(&out), "Secret plans for the sofa\n");
    let missing = locker(&stack, &["get", "notes.txt", "-"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file in the locker"));

    // The operator's side: database and object files hold no name and no plaintext.
    let content = stack.dir.path().join("content");
    let all = files(&content);
    assert!(
        all.iter().any(|p| p.to_string_lossy().contains("locker")),
        "{all:?}"
    );
    for path in &all {
        let bytes = std::fs::read(path).unwrap_or_default();
        for needle in [
            &b"Holiday-in-Lisbon"[..],
            b"plans.txt",
            b"Documents",
            b"Secret plans",
            &holiday[1000..1032],
        ] {
            assert!(
                !contains(&bytes, needle),
                "{} holds {:?}",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }

    ok(&locker(&stack, &["rm", "Pictures/Holiday-in-Lisbon.jpg"]));
    let listing = ok(&locker(&stack, &["ls"]));
    assert!(listing.contains("1 files"), "{listing}");
    assert!(!listing.contains("Holiday"), "{listing}");
}

/// A record made before the locker (D without KL) gains KL at its next login, once: two
/// boxes logging in at the same moment end up with the same locker.
#[test]
fn an_old_record_gains_one_locker_key_even_with_two_boxes_at_once() {
    let (stack, code) = stack();
    let config =
        stb_app::config::BoxConfig::load(&stack.dir.path().join("box.toml")).expect("box config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // What a box made before the locker registered: D of type 0x10.
        let mut data = stb_app::register::enroll(&config, &code)
            .await
            .expect("enroll");
        data.locker_key = None;
        stb_app::register::register(
            &config,
            data,
            "lena",
            stb_protocol::Password::from(PASSWORD),
            stb_protocol::Password::from(PASSWORD),
        )
        .await
        .expect("register");
    });
    let work = tempfile::tempdir().expect("tmp");
    let mut boxes = Vec::new();
    for i in 0..2 {
        let file = work.path().join(format!("from-box-{i}.txt"));
        std::fs::write(&file, format!("written by box {i}\n")).expect("write");
        boxes.push(
            stack
                .stb_app(
                    &[
                        "locker",
                        "--identifier",
                        "lena",
                        "put",
                        file.to_str().expect("path"),
                    ],
                    &format!("{PASSWORD}\n"),
                )
                .expect("stb-app"),
        );
    }
    let outcomes: Vec<Output> = boxes
        .into_iter()
        .map(|b| b.wait_with_output().expect("output"))
        .collect();
    // At least one box got the locker; one that lost the race says so and stores nothing.
    let stored: Vec<&Output> = outcomes.iter().filter(|o| o.status.success()).collect();
    assert!(!stored.is_empty(), "{:?}", outcomes);
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("no locker key yet"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The next login has the KL that stood, and reads what was stored under it.
    let listing = ok(&locker(&stack, &["ls"]));
    assert!(
        listing.contains(&format!("{} files", stored.len())),
        "{listing}"
    );
    let name = if listing.contains("from-box-0.txt") {
        "from-box-0.txt"
    } else {
        "from-box-1.txt"
    };
    let text = ok(&locker(&stack, &["get", name, "-"]));
    assert!(text.starts_with("written by box"), "{text}");
}

/// A recording made on one box while it plays (the headless box's `--record`: saved, played
/// back, open and seek timed) is listed from a desktop and plays on another box after
/// logging in there (each a process of its own: nothing kept between them).
#[test]
fn a_recording_made_while_watching_plays_back_on_another_login() {
    let stack = lena();
    let report = headless(&stack, &["--dwell-secs", "6", "--record"]);
    let rec = &report["recording"];
    assert!(rec["error"].is_null(), "{report}");
    assert!(rec["bytes"].as_u64().unwrap_or(0) > 100_000, "{report}");
    assert_eq!(rec["dropped_segments"], 0, "{report}");
    assert!(
        rec["open_ms"].is_u64() && rec["seek_ms"].is_u64(),
        "{report}"
    );
    assert!(
        report["channels"][0]["video_frames"].as_u64().unwrap_or(0) >= 100,
        "{report}"
    );
    let name = rec["name"]
        .as_str()
        .expect("the recording's name")
        .to_owned();
    assert!(
        name.starts_with("Recordings/Headless recording - Channel 1 "),
        "{name}"
    );

    let listing = ok(&locker(&stack, &["ls"]));
    assert!(listing.contains(&format!("recording  {name}")), "{listing}");

    let report = headless(&stack, &["--dwell-secs", "0.5", "--play-recording", &name]);
    let played = &report["recording"];
    assert!(played["error"].is_null(), "{report}");
    assert!(
        played["open_ms"].is_u64() && played["seek_ms"].is_u64(),
        "{report}"
    );
    assert_eq!(report["logged_out"], true, "{report}");
}

/// A byte changed in an object file or in the stored index (by the operator, a broken disk, or
/// anyone with the server's files) is refused by the box with a clear message, and nothing
/// of the changed object is written out.
#[test]
fn a_flipped_byte_in_an_object_or_the_index_is_refused() {
    let stack = lena();
    let work = tempfile::tempdir().expect("tmp");
    let source = work.path().join("letter.txt");
    std::fs::write(&source, noise(200_000, 3)).expect("write");
    ok(&locker(&stack, &["put", source.to_str().expect("path")]));
    let content = stack.dir.path().join("content");
    let objects: Vec<_> = files(&content.join("locker"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("objects"))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let mut bytes = std::fs::read(&objects[0]).expect("object");
    bytes[100_000] ^= 0x01;
    std::fs::write(&objects[0], &bytes).expect("flip");
    let out_file = work.path().join("back.txt");
    let refused = locker(
        &stack,
        &["get", "letter.txt", out_file.to_str().expect("path")],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("does not check out"), "{stderr}");
    assert!(!out_file.exists() && !work.path().join("back.txt.part").exists());
    bytes[100_000] ^= 0x01;
    std::fs::write(&objects[0], &bytes).expect("unflip");
    ok(&locker(
        &stack,
        &["get", "letter.txt", out_file.to_str().expect("path")],
    ));

    // The index, changed in the database: listing refuses it.
    let db = content.join("content.db");
    let sqlite = |sql: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3 (Debian package sqlite3)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let mut index = sqlite("SELECT hex(body) FROM locker_index").into_bytes();
    index[80] = if index[80] == b'0' { b'1' } else { b'0' };
    let index = String::from_utf8(index).expect("hex");
    sqlite(&format!("UPDATE locker_index SET body = X'{index}'"));
    let refused = locker(&stack, &["ls"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("index does not check out"), "{stderr}");
}

/// A recording whose upload is refused (the locker is full) ends with a clear error instead of
/// hanging, the channel plays on, and the logout still wipes the session.
#[test]
fn a_full_locker_ends_the_recording_with_a_clear_error() {
    let stack = lena();
    stb_e2e::run(
        stack
            .content_cmd()
            .args(["subscriber", "quota", "Lena Sommer", "0"]),
    )
    .expect("quota");
    let report = headless(&stack, &["--dwell-secs", "4", "--record"]);
    let error = report["recording"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("full"), "{report}");
    assert!(
        report["channels"][0]["video_frames"].as_u64().unwrap_or(0) >= 50,
        "{report}"
    );
    assert_eq!(report["logged_out"], true, "{report}");
}

/// A desktop killed in the middle of an upload (SIGKILL) leaves no file in the locker: the
/// next login lists nothing, and the next upload of the same file works.
#[test]
fn a_box_killed_mid_upload_leaves_no_file() {
    let stack = lena();
    let work = tempfile::tempdir().expect("tmp");
    // A FIFO as the file: the upload reads what is written and waits for more.
    let fifo = work.path().join("endless.bin");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let mut upload = stack
        .stb_app(
            &[
                "locker",
                "--identifier",
                "lena",
                "put",
                fifo.to_str().expect("path"),
            ],
            &format!("{PASSWORD}\n"),
        )
        .expect("stb-app");
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("fifo");
    use std::io::Write;
    writer.write_all(&noise(12 << 20, 5)).expect("write");
    // Enough for several pieces to reach the server, then the box dies.
    std::thread::sleep(std::time::Duration::from_secs(3));
    upload.kill().expect("SIGKILL");
    let _ = upload.wait();
    drop(writer);
    let listing = ok(&locker(&stack, &["ls"]));
    assert!(listing.contains("0 files"), "{listing}");
    let file = work.path().join("endless.bin.copy");
    std::fs::write(&file, noise(1 << 20, 5)).expect("write");
    ok(&locker(
        &stack,
        &["put", file.to_str().expect("path"), "--name", "endless.bin"],
    ));
    let listing = ok(&locker(&stack, &["ls"]));
    assert!(
        listing.contains("1 files") && listing.contains("endless.bin"),
        "{listing}"
    );
}
