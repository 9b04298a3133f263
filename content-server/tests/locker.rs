//! The subscriber's locker over real mutual TLS: uploads in parts, resumption, commits that
//! are all or nothing across kills and restarts, range reads, quotas, the index's
//! compare-and-swap, and subscribers kept apart.
#![allow(missing_docs)]

mod common;

use common::{Box_, Operator, fresh_postgres, operator, operator_with};
use content_server::locker::{Summary, UploadState};
use content_server::store::LockerObject;
use reqwest::{Client, StatusCode};

/// One box of a subscriber: its mutual-TLS client and the locker's URL.
struct Subscriber {
    http: Client,
    base: String,
}

/// A subscriber `name` with one enrolled box.
async fn subscriber(op: &Operator, name: &str) -> Subscriber {
    let b: Box_ = op
        .enroll(&op.add(name, "basic").await)
        .await
        .expect("enroll");
    Subscriber {
        http: op.client(Some(&b.identity_pem)),
        base: op.url("/v1/locker"),
    }
}

fn new_id() -> String {
    hex::encode(stb_protocol::random_array::<16>())
}

/// Bytes that differ at every offset that matters to a range test.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed)
        .collect()
}

async fn text(r: reqwest::Response) -> (u16, String) {
    (r.status().as_u16(), r.text().await.expect("body"))
}

impl Subscriber {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The same box, against the server `op` runs now (a restart moves its port).
    fn again(&self, op: &Operator) -> Subscriber {
        Subscriber {
            http: self.http.clone(),
            base: op.url("/v1/locker"),
        }
    }

    async fn summary(&self) -> Summary {
        let r = self.http.get(self.url("")).send().await.expect("summary");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    async fn start(&self, object: &str) -> UploadState {
        let r = self
            .http
            .post(self.url("/uploads"))
            .json(&serde_json::json!({ "object": object }))
            .send()
            .await
            .expect("start");
        assert_eq!(r.status(), 201);
        r.json().await.expect("json")
    }

    async fn patch(&self, upload: &str, offset: u64, bytes: &[u8]) -> reqwest::Response {
        self.http
            .patch(self.url(&format!("/uploads/{upload}")))
            .header("upload-offset", offset.to_string())
            .body(bytes.to_vec())
            .send()
            .await
            .expect("patch")
    }

    /// PATCH that must be taken: the count after it.
    async fn append(&self, upload: &str, offset: u64, bytes: &[u8]) -> u64 {
        let r = self.patch(upload, offset, bytes).await;
        assert_eq!(r.status(), 200);
        let state: UploadState = r.json().await.expect("json");
        assert_eq!(state.received, offset + bytes.len() as u64);
        state.received
    }

    async fn state(&self, upload: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/uploads/{upload}")))
            .send()
            .await
            .expect("state")
    }

    async fn received(&self, upload: &str) -> u64 {
        let r = self.state(upload).await;
        assert_eq!(r.status(), 200);
        r.json::<UploadState>().await.expect("json").received
    }

    async fn commit(&self, upload: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/uploads/{upload}/commit")))
            .send()
            .await
            .expect("commit")
    }

    /// Uploads `bytes` as `object` in one request and commits.
    async fn put_object(&self, object: &str, bytes: &[u8]) -> LockerObject {
        let upload = self.start(object).await.upload;
        self.append(&upload, 0, bytes).await;
        let r = self.commit(&upload).await;
        assert_eq!(r.status(), 201);
        r.json().await.expect("json")
    }

    async fn get_object(&self, id: &str, range: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(&format!("/objects/{id}")));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send().await.expect("get object")
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .send()
            .await
            .expect("delete")
    }

    async fn get_index(&self) -> (u16, Option<u64>, Vec<u8>) {
        let r = self
            .http
            .get(self.url("/index"))
            .send()
            .await
            .expect("index");
        let status = r.status().as_u16();
        let version = etag(&r);
        (status, version, r.bytes().await.expect("body").to_vec())
    }

    async fn put_index(&self, if_match: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        let mut request = self.http.put(self.url("/index")).body(body);
        if let Some(v) = if_match {
            request = request.header("if-match", v);
        }
        request.send().await.expect("put index")
    }
}

fn etag(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get("etag")?
        .to_str()
        .ok()?
        .trim_matches('"')
        .parse()
        .ok()
}

fn header<'r>(r: &'r reqwest::Response, name: &str) -> &'r str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii")
}

/// The files left in the locker's staging directory.
fn staging_files(op: &Operator) -> Vec<String> {
    let dir = op.config.locker_dir().join("staging");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("staging dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn object_file(op: &Operator, subscriber: &str, id: &str) -> std::path::PathBuf {
    op.running.state.locker.object_path(subscriber, id)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < until,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Upload in three requests, commit, list, read whole and by ranges, delete.
async fn upload_commit_read_delete(op: &Operator, name: &str) {
    let alice = subscriber(op, name).await;
    let object = new_id();
    let bytes = pattern(300_005, 1);
    let started = alice.start(&object).await;
    assert_eq!(
        (started.object.as_str(), started.received),
        (object.as_str(), 0)
    );
    assert!(content_server::locker::is_id(&started.upload));
    let upload = started.upload;
    let mut at = 0;
    for part in [
        &bytes[..100_000],
        &bytes[100_000..300_000],
        &bytes[300_000..],
    ] {
        at = alice.append(&upload, at, part).await;
    }
    assert_eq!(alice.received(&upload).await, 300_005);
    // Unfinished: counted, not listed.
    let before = alice.summary().await;
    assert!(before.objects.is_empty());
    assert_eq!(before.used_bytes, 300_005);
    assert_eq!(before.quota_bytes, 10_240 << 20);

    // A second upload of the same object id (the first is not committed yet).
    let rival = alice.start(&object).await.upload;
    alice.append(&rival, 0, b"other bytes").await;

    let r = alice.commit(&upload).await;
    assert_eq!(r.status(), 201);
    let committed: LockerObject = r.json().await.expect("json");
    // The rival's commit comes second: refused, and the object keeps the first's bytes.
    assert_eq!(
        text(alice.commit(&rival).await).await,
        (409, "object exists\n".into())
    );
    assert_eq!(
        alice.delete(&format!("/uploads/{rival}")).await.status(),
        204
    );
    assert_eq!(
        (committed.id.as_str(), committed.size),
        (object.as_str(), 300_005)
    );
    let listed = alice.summary().await;
    assert_eq!(listed.objects, [committed]);
    assert_eq!(listed.used_bytes, 300_005);
    // The upload is gone; the object's id is taken.
    assert_eq!(alice.state(&upload).await.status(), 404);
    assert_eq!(alice.commit(&upload).await.status(), 404);
    let again = alice
        .http
        .post(alice.url("/uploads"))
        .json(&serde_json::json!({ "object": object }))
        .send()
        .await
        .expect("again");
    assert_eq!(text(again).await, (409, "object exists\n".into()));

    let whole = alice.get_object(&object, None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.content_length(), Some(300_005));
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    assert_eq!(header(&whole, "cache-control"), "private, no-store");
    assert_eq!(header(&whole, "content-type"), "application/octet-stream");
    assert!(whole.bytes().await.expect("bytes") == bytes);

    for (asked, from, to) in [
        ("bytes=10-19", 10, 20),
        ("bytes=299990-", 299_990, 300_005),
        ("bytes=-7", 299_998, 300_005),
        ("bytes=65584-131167", 65_584, 131_168),
        ("bytes=300000-999999", 300_000, 300_005),
    ] {
        let r = alice.get_object(&object, Some(asked)).await;
        assert_eq!(r.status(), 206, "{asked}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes {from}-{}/300005", to - 1)
        );
        assert_eq!(r.content_length(), Some((to - from) as u64));
        assert!(
            r.bytes().await.expect("bytes") == bytes[from..to],
            "{asked}"
        );
    }
    for asked in ["bytes=300005-", "bytes=400000-400001", "bytes=-0"] {
        let r = alice.get_object(&object, Some(asked)).await;
        assert_eq!(r.status(), 416, "{asked}");
        assert_eq!(header(&r, "content-range"), "bytes */300005");
    }

    assert!(object_file(op, name, &object).exists());
    assert!(staging_files(op).is_empty());
    assert_eq!(
        alice.delete(&format!("/objects/{object}")).await.status(),
        204
    );
    assert_eq!(alice.get_object(&object, None).await.status(), 404);
    assert_eq!(
        alice.delete(&format!("/objects/{object}")).await.status(),
        404
    );
    assert!(!object_file(op, name, &object).exists());
    assert_eq!(alice.summary().await.used_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_in_parts_commit_list_read_ranges_and_delete() {
    let op = operator(None).await;
    upload_commit_read_delete(&op, "alice").await;
    // The directory names no subscriber.
    let dirs: Vec<String> = std::fs::read_dir(op.config.locker_dir().join("objects"))
        .expect("objects")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(dirs.iter().all(|d| !d.contains("alice")), "{dirs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_mismatch_answers_409_with_where_to_resume() {
    let op = operator(None).await;
    let alice = subscriber(&op, "alice").await;
    let bytes = pattern(40, 2);
    let object = new_id();
    let upload = alice.start(&object).await.upload;
    alice.append(&upload, 0, &bytes[..10]).await;
    // A retry of a request that was taken, and a jump ahead: where to resume from.
    for offset in [0, 5, 20] {
        let r = alice.patch(&upload, offset, &bytes[10..20]).await;
        assert_eq!(r.status(), 409, "offset {offset}");
        let state: UploadState = r.json().await.expect("json");
        assert_eq!(state.received, 10);
        assert_eq!(state.upload, upload);
    }
    let r = alice
        .http
        .patch(alice.url(&format!("/uploads/{upload}")))
        .body(bytes[10..20].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 400, "no Upload-Offset");
    // Two requests at once from the same offset (a retry racing the original): one is
    // taken, the other told where the upload is now.
    let (a, b) = tokio::join!(
        alice.patch(&upload, 10, &bytes[10..20]),
        alice.patch(&upload, 10, &bytes[10..20])
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(alice.received(&upload).await, 20);

    // The server was killed after writing bytes it never acknowledged: they are dropped.
    let staging = op.config.locker_dir().join("staging").join(&upload);
    let mut on_disk = std::fs::read(&staging).expect("staging");
    on_disk.extend_from_slice(b"never acknowledged");
    std::fs::write(&staging, &on_disk).expect("write");
    alice.append(&upload, 20, &bytes[20..30]).await;
    assert_eq!(std::fs::metadata(&staging).expect("meta").len(), 30);

    // The disk lost acknowledged bytes: the smaller is trusted, the box told where to resume.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&staging)
        .expect("open")
        .set_len(25)
        .expect("cut");
    let r = alice.patch(&upload, 30, &bytes[30..]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<UploadState>().await.expect("json").received, 25);
    alice.append(&upload, 25, &bytes[25..]).await;

    assert_eq!(alice.commit(&upload).await.status(), 201);
    let read = alice.get_object(&object, None).await;
    assert!(read.bytes().await.expect("bytes") == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upload_leaves_no_object_and_is_swept_after_a_restart() {
    let mut op = operator(None).await;
    let alice = subscriber(&op, "alice").await;
    let object = new_id();
    let upload = alice.start(&object).await.upload;
    alice.append(&upload, 0, &pattern(1000, 3)).await;

    // The box dies in the middle of a request: its bytes are not appended.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(axum::body::Bytes::from(pattern(64 << 10, 4)))
    });
    let then_hang = futures_util::stream::once(async move {
        let _ = rx.await;
        Ok::<_, std::io::Error>(axum::body::Bytes::new())
    });
    let request = alice
        .http
        .patch(alice.url(&format!("/uploads/{upload}")))
        .header("upload-offset", "1000")
        .body(reqwest::Body::wrap_stream(futures_util::StreamExt::chain(
            first, then_hang,
        )))
        .send();
    let killed = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    killed.abort();
    drop(tx);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(alice.received(&upload).await, 1000);
    assert!(alice.summary().await.objects.is_empty());

    // The server dies too, at the worst moments: a commit that placed its file but listed
    // nothing (another upload of this subscriber), a staging file whose upload row never
    // made it, and bytes written to this upload but never acknowledged.
    let crashed = alice.start(&new_id()).await;
    alice.append(&crashed.upload, 0, b"half committed").await;
    let half = object_file(&op, "alice", &crashed.object);
    std::fs::create_dir_all(half.parent().expect("dir")).expect("mkdir");
    std::fs::hard_link(
        op.config.locker_dir().join("staging").join(&crashed.upload),
        &half,
    )
    .expect("link");
    let orphan_object = object_file(&op, "alice", &new_id());
    std::fs::write(&orphan_object, b"no row").expect("orphan object");
    let orphan_staging = op.config.locker_dir().join("staging").join(new_id());
    std::fs::write(&orphan_staging, b"no row").expect("orphan staging");
    let staging = op.config.locker_dir().join("staging").join(&upload);
    let mut on_disk = std::fs::read(&staging).expect("staging");
    on_disk.extend_from_slice(&[0xee; 4096]);
    std::fs::write(&staging, &on_disk).expect("write");

    op.restart().await;
    // The start's sweep: files without rows go, uploads (and a placed file of one) stay.
    eventually("the start's sweep", || {
        !orphan_object.exists() && !orphan_staging.exists()
    })
    .await;
    assert!(half.exists());
    let listed = alice.again(&op).summary().await;
    assert!(listed.objects.is_empty(), "{:?}", listed.objects);
    assert_eq!(listed.used_bytes, 1000 + 14);

    // The half-done commit completes when retried; the killed upload resumes where the
    // server acknowledged.
    let alice = alice.again(&op);
    assert_eq!(alice.commit(&crashed.upload).await.status(), 201);
    assert!(
        alice
            .get_object(&crashed.object, None)
            .await
            .bytes()
            .await
            .expect("bytes")
            == b"half committed"[..]
    );
    assert_eq!(alice.received(&upload).await, 1000);
    alice.append(&upload, 1000, b"more").await;
    assert_eq!(std::fs::metadata(&staging).expect("meta").len(), 1004);

    // A day later nobody came back for it: the sweep deletes the upload and its file.
    let later = stb_server_common::now_ms() + 86_400_000 + 1000;
    let swept = content_server::locker::sweep(&op.running.state, later)
        .await
        .expect("sweep");
    assert_eq!(swept.idle_uploads, 1);
    assert_eq!(alice.state(&upload).await.status(), 404);
    assert!(staging_files(&op).is_empty());
    let listed = alice.summary().await;
    assert_eq!(listed.objects.len(), 1);
    assert_eq!(listed.used_bytes, 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_quota_a_write_gets_507_and_nothing_is_appended() {
    let op = operator(None).await;
    let alice = subscriber(&op, "alice").await;
    assert!(
        op.store
            .set_locker_quota("alice", Some(1000))
            .await
            .expect("quota")
    );
    let upload = alice.start(&new_id()).await.upload;
    alice.append(&upload, 0, &pattern(600, 5)).await;
    let r = alice.patch(&upload, 600, &pattern(401, 6)).await;
    assert_eq!(
        text(r).await,
        (507, "the locker is full (quota 1000 bytes)\n".into())
    );
    assert_eq!(alice.received(&upload).await, 600);
    let staging = op.config.locker_dir().join("staging").join(&upload);
    assert_eq!(std::fs::metadata(&staging).expect("meta").len(), 600);
    // The index counts too; an index that does not grow is taken even when full.
    alice.append(&upload, 600, &pattern(390, 6)).await;
    let r = alice.put_index(Some("\"0\""), vec![1; 11]).await;
    assert_eq!(r.status(), 507);
    assert_eq!(
        alice.put_index(Some("\"0\""), vec![1; 10]).await.status(),
        200
    );
    assert_eq!(
        alice.put_index(Some("\"1\""), vec![2; 10]).await.status(),
        200
    );
    assert_eq!(alice.commit(&upload).await.status(), 201);
    let summary = alice.summary().await;
    assert_eq!((summary.quota_bytes, summary.used_bytes), (1000, 1000));

    // The operator's command line: a quota in MiB, shown in the list, and back to default.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_content-server"))
            .arg("--data-dir")
            .arg(&op.config.data_dir)
            .args(args)
            .output()
            .expect("content-server");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let said = cli(&["subscriber", "quota", "alice", "2"]);
    assert!(said.contains("locker quota 2.0 MiB"), "{said}");
    assert_eq!(alice.summary().await.quota_bytes, 2 << 20);
    let list = cli(&["subscriber", "list"]);
    assert!(list.contains("locker 0.0 MiB of 2.0 MiB"), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(cli(&["subscriber", "list", "--json"]).trim()).expect("json");
    assert_eq!(json["locker_used_bytes"], 1000);
    assert_eq!(json["locker_quota_bytes"], 2 << 20);
    cli(&["subscriber", "quota", "alice", "default"]);
    assert_eq!(alice.summary().await.quota_bytes, 10_240 << 20);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_content-server"))
        .arg("--data-dir")
        .arg(&op.config.data_dir)
        .args(["subscriber", "quota", "nobody", "1"])
        .output()
        .expect("content-server");
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_their_limits_get_413() {
    let op = operator(None).await;
    let alice = subscriber(&op, "alice").await;
    let upload = alice.start(&new_id()).await.upload;
    let r = alice.patch(&upload, 0, &vec![0; (16 << 20) + 1]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(alice.received(&upload).await, 0);
    let r = alice.put_index(Some("\"0\""), vec![0; (4 << 20) + 1]).await;
    assert_eq!(r.status(), 413);
    // The limits themselves are taken.
    alice.append(&upload, 0, &vec![7; 16 << 20]).await;
    assert_eq!(
        alice
            .put_index(Some("\"0\""), vec![0; 4 << 20])
            .await
            .status(),
        200
    );
}

/// Two writers from the same version: one stores, the other is told, reads and stores on
/// top; then many at once, each retrying: nothing lost.
async fn index_compare_and_swap(op: &Operator, name: &str) {
    let alice = subscriber(op, name).await;
    let (status, version, body) = alice.get_index().await;
    assert_eq!(
        (status, version, body.as_slice()),
        (404, Some(0), &b"the locker has no index yet\n"[..])
    );
    let r = alice.put_index(None, b"a".to_vec()).await;
    assert_eq!(text(r).await, (428, "If-Match required\n".into()));
    for bad in ["1", "W/\"0\"", "\"x\"", "\"\""] {
        let r = alice.put_index(Some(bad), b"a".to_vec()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }

    let r = alice.put_index(Some("\"0\""), b"a".to_vec()).await;
    assert_eq!((r.status().as_u16(), etag(&r)), (200, Some(1)));
    assert_eq!(alice.get_index().await, (200, Some(1), b"a".to_vec()));
    // A second "first" index is refused.
    let r = alice.put_index(Some("\"0\""), b"z".to_vec()).await;
    assert_eq!((r.status().as_u16(), etag(&r)), (412, Some(1)));

    let b = alice.put_index(Some("\"1\""), b"a,b".to_vec()).await;
    assert_eq!((b.status().as_u16(), etag(&b)), (200, Some(2)));
    let c = alice.put_index(Some("\"1\""), b"a,c".to_vec()).await;
    assert_eq!(etag(&c), Some(2));
    assert_eq!(text(c).await, (412, "the index changed\n".into()));
    let (_, version, mut body) = alice.get_index().await;
    assert_eq!(version, Some(2));
    body.extend_from_slice(b",c");
    let r = alice.put_index(Some("\"2\""), body).await;
    assert_eq!((r.status().as_u16(), etag(&r)), (200, Some(3)));
    assert_eq!(alice.get_index().await.2, b"a,b,c");

    let writers = (0..8).map(|w| {
        let alice = &alice;
        async move {
            loop {
                let (_, version, mut body) = alice.get_index().await;
                let version = version.expect("version");
                body.extend_from_slice(format!(",w{w}").as_bytes());
                let r = alice.put_index(Some(&format!("\"{version}\"")), body).await;
                match r.status() {
                    StatusCode::OK => return,
                    StatusCode::PRECONDITION_FAILED => continue,
                    other => panic!("writer {w}: {other}"),
                }
            }
        }
    });
    futures_util::future::join_all(writers).await;
    let (_, version, body) = alice.get_index().await;
    assert_eq!(version, Some(11));
    let body = String::from_utf8(body).expect("utf8");
    for w in 0..8 {
        assert!(body.split(',').any(|e| e == format!("w{w}")), "{body}");
    }
    let summary = alice.summary().await;
    assert_eq!(summary.index_version, 11);
    assert_eq!(summary.used_bytes, body.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_writes_are_compare_and_swap() {
    let op = operator(None).await;
    index_compare_and_swap(&op, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_subscriber_cannot_reach_someone_elses_objects_or_uploads() {
    let op = operator(None).await;
    let alice = subscriber(&op, "alice").await;
    let bob = subscriber(&op, "bob").await;
    let object = new_id();
    let stored = alice.put_object(&object, b"alice's").await;
    let unfinished = alice.start(&new_id()).await;
    alice.append(&unfinished.upload, 0, b"half").await;
    assert_eq!(
        alice
            .put_index(Some("\"0\""), b"alice's index".to_vec())
            .await
            .status(),
        200
    );

    let u = &unfinished.upload;
    assert_eq!(bob.get_object(&object, None).await.status(), 404);
    assert_eq!(
        bob.get_object(&object, Some("bytes=0-1")).await.status(),
        404
    );
    assert_eq!(
        bob.delete(&format!("/objects/{object}")).await.status(),
        404
    );
    assert_eq!(bob.state(u).await.status(), 404);
    assert_eq!(bob.patch(u, 4, b"bob's").await.status(), 404);
    assert_eq!(bob.commit(u).await.status(), 404);
    assert_eq!(bob.delete(&format!("/uploads/{u}")).await.status(), 404);
    let summary = bob.summary().await;
    assert!(summary.objects.is_empty());
    assert_eq!((summary.used_bytes, summary.index_version), (0, 0));
    assert_eq!(bob.get_index().await.0, 404);
    // Bob's ids are his own: the same object id is a new object for him.
    bob.put_object(&object, b"bob's").await;

    assert_eq!(alice.summary().await.objects, [stored]);
    assert_eq!(alice.received(u).await, 4);
    let read = alice.get_object(&object, None).await;
    assert!(read.bytes().await.expect("bytes") == b"alice's"[..]);
    assert_eq!(alice.get_index().await.2, b"alice's index");

    // An upload given up: gone, and so is its file.
    assert_eq!(alice.delete(&format!("/uploads/{u}")).await.status(), 204);
    assert_eq!(alice.state(u).await.status(), 404);
    assert!(staging_files(&op).is_empty());

    // Standing is checked as everywhere else.
    op.store
        .set_status("alice", content_server::store::Status::Suspended)
        .await
        .expect("suspend");
    let r = alice.http.get(alice.url("")).send().await.expect("get");
    assert_eq!(
        text(r).await,
        (403, "subscription suspended, contact the operator\n".into())
    );
    assert_eq!(alice.get_object(&object, None).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_get_400_and_uploads_are_limited() {
    let op = operator(None).await;
    let alice = subscriber(&op, "alice").await;
    for object in [
        serde_json::json!("0123456789ABCDEF0123456789abcdef"),
        serde_json::json!("0123456789abcdef"),
        serde_json::json!("../../../../../../../../etc/passwd"),
        serde_json::json!(12),
    ] {
        let r = alice
            .http
            .post(alice.url("/uploads"))
            .json(&serde_json::json!({ "object": object }))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "{object}");
    }
    let r = alice
        .http
        .post(alice.url("/uploads"))
        .body("not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    for path in [
        "/objects/xyz",
        "/objects/0123456789ABCDEF0123456789abcdef",
        "/objects/..%2F..%2F..%2Fcontent.db",
        "/uploads/short",
        "/uploads/..%2Fobjects/commit",
    ] {
        let r = alice.http.get(alice.url(path)).send().await.expect("get");
        let status = r.status();
        let (_, body) = text(r).await;
        assert!(
            status == 400 || path.ends_with("/commit"),
            "{path}: {status}"
        );
        assert!(body.ends_with('\n'), "{path}: {body:?}");
    }
    assert_eq!(alice.delete("/objects/nope").await.status(), 400);
    assert_eq!(alice.patch("nope", 0, b"x").await.status(), 400);

    let mut uploads = Vec::new();
    for _ in 0..16 {
        uploads.push(alice.start(&new_id()).await.upload);
    }
    let r = alice
        .http
        .post(alice.url("/uploads"))
        .json(&serde_json::json!({ "object": new_id() }))
        .send()
        .await
        .expect("post");
    assert_eq!(text(r).await, (429, "too many unfinished uploads\n".into()));
    assert_eq!(
        alice
            .delete(&format!("/uploads/{}", uploads[0]))
            .await
            .status(),
        204
    );
    alice.start(&new_id()).await;
}

/// A small tmpfs, unmounted when dropped (also when the test fails).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// `None` where the test may not mount (not root).
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_507_and_the_upload_stays_where_it_was() {
    // A 1 MiB tmpfs as the locker's disk: only where the test may mount (root).
    let Some(disk) = Tmpfs::mount("1m") else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let dir = disk.0.path().to_owned();
    let op = operator_with(None, |c| c.locker_dir = dir.clone()).await;
    let alice = subscriber(&op, "alice").await;
    let upload = alice.start(&new_id()).await.upload;
    alice.append(&upload, 0, &pattern(512 << 10, 7)).await;
    let r = alice.patch(&upload, 512 << 10, &pattern(1 << 20, 8)).await;
    assert_eq!(
        text(r).await,
        (507, "the server's storage is full\n".into())
    );
    assert_eq!(alice.received(&upload).await, 512 << 10);
    let staging = dir.join("staging").join(&upload);
    assert_eq!(std::fs::metadata(&staging).expect("meta").len(), 512 << 10);
    // The space given back is usable: the upload goes on.
    alice
        .append(&upload, 512 << 10, &pattern(256 << 10, 9))
        .await;
    assert_eq!(alice.commit(&upload).await.status(), 201);
    op.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_locker_objects_and_index() {
    let op = operator(Some(fresh_postgres().await)).await;
    assert_eq!(op.store.backend(), content_server::store::Backend::Postgres);
    upload_commit_read_delete(&op, "alice").await;
    index_compare_and_swap(&op, "carol").await;
}
