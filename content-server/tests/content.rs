//! The content server over real TLS on loopback: enrollment, mutual TLS, entitlements,
//! revocation, licenses, and segments that GStreamer decodes once decrypted.
#![allow(missing_docs)]

mod common;

use common::{
    Box_, Operator, fresh_postgres, gst_decodes, operator, operator_with, segment_key,
    stream_headers,
};

use base64::Engine;
use content_server::config::Config;
use content_server::keys::OperatorKeys;
use content_server::routes::{ChannelList, Guide, LiveEdge, OnAir};
use content_server::store::Status;
use stb_protocol::{License, SegmentCipher, SegmentHeader};
use std::net::IpAddr;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_codes_are_single_use_expire_and_are_limited() {
    let op = operator(None).await;
    let code = op.add("alice", "basic").await;
    let alice = op.enroll(&code).await.expect("good code enrolls");
    assert_eq!(alice.enrolled.account, "alice");
    assert!(alice.enrolled.certificate_pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&alice.enrolled.ks_base64)
            .expect("b64")
            .len(),
        32
    );

    let (status, reason) = op.enroll(&code).await.err().expect("reused code refused");
    assert_eq!(
        (status, reason.trim()),
        (403, "this enrollment code was already used")
    );

    // Expired: a code whose expiry has passed.
    let stale = content_server::codes::generate();
    op.store
        .add_code("alice", &op.keys.code_hash(&stale), 1_000)
        .await
        .expect("add code");
    let (status, reason) = op.enroll(&stale).await.err().expect("expired refused");
    assert_eq!(
        (status, reason.trim()),
        (403, "this enrollment code has expired")
    );

    // Wrong (well-formed) and mistyped codes.
    let (status, reason) = op
        .enroll(&content_server::codes::generate())
        .await
        .err()
        .expect("wrong code");
    assert_eq!((status, reason.trim()), (403, "unknown enrollment code"));
    let mut typo = code.clone().into_bytes();
    typo[0] = if typo[0] == b'9' { b'0' } else { typo[0] + 1 };
    let (status, _) = op
        .enroll(&String::from_utf8(typo).expect("ascii"))
        .await
        .err()
        .expect("typo");
    assert_eq!(status, 403);

    let _ = op.enroll("0000-0000-0000").await.err().expect("wrong code");
    // Five failures from this address (limit set to 5): even a good code now waits.
    let fresh = op.add("bob", "basic").await;
    let (status, _) = op.enroll(&fresh).await.err().expect("paused");
    assert_eq!(status, 429);
}

/// Statuses of enrollments of `code` from `source`, `n` at once.
async fn enroll_many(op: &Operator, codes: &[String], source: &str) -> Vec<u16> {
    let source: IpAddr = source.parse().expect("ip");
    futures_util::future::join_all(codes.iter().map(|c| op.enroll_from(c, Some(source))))
        .await
        .into_iter()
        .map(|r| r.err().map_or(200, |(status, _)| status))
        .collect()
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

/// Checking and counting failures were separate steps: 40 parallel wrong codes got 11-15
/// evaluated (limit 10), and each new source address got 10 more. Attempts are now counted
/// atomically against the address, its network, the code and a global budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_budgets_hold_under_parallel_and_distributed_guessing() {
    let op = operator_with(None, |c| {
        c.enroll_max_failures = 10;
        c.enroll_max_failures_per_network = 15;
        c.enroll_max_failures_per_code = 3;
        c.enroll_max_failures_global = 25;
    })
    .await;
    let wrong =
        |n: usize| -> Vec<String> { (0..n).map(|_| content_server::codes::generate()).collect() };
    // 40 at once from one address: exactly its budget is evaluated.
    let s = enroll_many(&op, &wrong(40), "127.0.0.1").await;
    assert_eq!((count(&s, 403), count(&s, 429)), (10, 30), "{s:?}");
    // A new address in the same /24 gets what is left of the network's budget.
    let mut s = vec![];
    for code in wrong(10) {
        s.extend(enroll_many(&op, &[code], "127.0.0.2").await);
    }
    assert_eq!((count(&s, 403), count(&s, 429)), (5, 5), "{s:?}");
    // One used code, tried again from another network: its own budget.
    let used = op.add("carol", "basic").await;
    op.enroll_from(&used, Some("127.0.1.1".parse().expect("ip")))
        .await
        .expect("enrolls");
    let s = enroll_many(&op, &vec![used.clone(); 5], "127.0.1.2").await;
    assert_eq!((count(&s, 403), count(&s, 429)), (3, 2), "{s:?}");
    // Everywhere together: the global budget (25) pauses enrollment for all.
    let mut s = vec![];
    for (i, code) in wrong(20).into_iter().enumerate() {
        s.extend(enroll_many(&op, &[code], &format!("127.0.{}.1", 2 + i / 10)).await);
    }
    assert_eq!((count(&s, 403), count(&s, 429)), (7, 13), "{s:?}");
    let good = op.add("dave", "basic").await;
    let s = enroll_many(&op, &[good], "127.0.9.1").await;
    assert_eq!(s, vec![429]);
}

/// The CRL the key server fetches: revoked certificates for good, suspended ones on hold,
/// signed by the operator CA; a resumed subscriber leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_lists_revoked_and_suspended_certificates() {
    use rustls_pki_types::pem::PemObject;
    use x509_parser::x509::ReasonCode;
    let op = operator_with(None, |c| c.crl_cache_secs = 0).await;
    let mut serials = vec![];
    for name in ["erin", "frank", "gina"] {
        let code = op.add(name, "basic").await;
        let b = op.enroll(&code).await.expect("enroll");
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(b.enrolled.certificate_pem.as_bytes())
                .expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("cert");
        serials.push(hex::encode(cert.raw_serial()));
    }
    op.store
        .set_status("frank", Status::Revoked)
        .await
        .expect("revoke");
    op.store
        .set_status("gina", Status::Suspended)
        .await
        .expect("suspend");
    let fetch = || async {
        let r = op
            .client(None)
            .get(format!(
                "https://127.0.0.1:{}/v1/crl",
                op.running.enroll_addr.port()
            ))
            .send()
            .await
            .expect("crl");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pkix-crl");
        r.bytes().await.expect("body").to_vec()
    };
    let der = fetch().await;
    let (_, crl) = x509_parser::parse_x509_crl(&der).expect("parses");
    let ca_der =
        rustls_pki_types::CertificateDer::from_pem_slice(op.ca_pem.as_bytes()).expect("ca");
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der.as_ref()).expect("ca");
    crl.verify_signature(ca.public_key())
        .expect("signed by the CA");
    let listed: Vec<(String, Option<ReasonCode>)> = crl
        .iter_revoked_certificates()
        .map(|e| (hex::encode(e.raw_serial()), e.reason_code().map(|(_, r)| r)))
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&(serials[1].clone(), Some(ReasonCode::CessationOfOperation))));
    assert!(listed.contains(&(serials[2].clone(), Some(ReasonCode::CertificateHold))));
    op.store
        .set_status("gina", Status::Active)
        .await
        .expect("resume");
    let der = fetch().await;
    let (_, crl) = x509_parser::parse_x509_crl(&der).expect("parses");
    assert_eq!(crl.iter_revoked_certificates().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_channel_list_entitlements_and_revocation() {
    let op = operator(None).await;
    let alice = op
        .enroll(&op.add("alice", "basic").await)
        .await
        .expect("enroll");

    let (status, body) = op.get(&alice, "/v1/channels").await;
    assert_eq!(status, 200);
    let list: ChannelList = serde_json::from_slice(&body).expect("json");
    assert_eq!(list.account, "alice");
    let entitled: Vec<(u16, bool)> = list
        .channels
        .iter()
        .map(|c| (c.number, c.entitled))
        .collect();
    assert_eq!(entitled, vec![(1, true), (2, true), (3, false), (4, true)]);
    assert!(list.channels.iter().all(|c| {
        let (now, next) = (c.now.as_ref().expect("now"), c.next.as_ref().expect("next"));
        now.end_ms == next.start_ms && !now.title.is_empty()
    }));

    // No certificate: the handshake fails, no byte of content.
    assert!(
        op.client(None)
            .get(op.url("/v1/channels"))
            .send()
            .await
            .is_err()
    );
    // A certificate from another CA: the handshake fails too.
    let stranger_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let stranger = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("p")
        .self_signed(&stranger_key)
        .expect("cert");
    let identity = format!("{}{}", stranger.pem(), stranger_key.serialize_pem());
    assert!(
        op.client(Some(&identity))
            .get(op.url("/v1/channels"))
            .send()
            .await
            .is_err()
    );

    // Not entitled.
    for path in [
        "/v1/channels/3/stream",
        "/v1/channels/3/live",
        "/v1/channels/3/segments/1",
    ] {
        let (status, body) = op.get(&alice, path).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(
            String::from_utf8_lossy(&body).trim(),
            "channel 3 is not in your subscription"
        );
    }

    // Suspension and revocation take effect on the next request, without a restart.
    op.store
        .set_status("alice", Status::Suspended)
        .await
        .expect("suspend");
    assert_eq!(op.get(&alice, "/v1/license").await.0, 403);
    op.store
        .set_status("alice", Status::Active)
        .await
        .expect("resume");
    assert_eq!(op.get(&alice, "/v1/license").await.0, 200);
    op.store
        .set_status("alice", Status::Revoked)
        .await
        .expect("revoke");
    let (status, body) = op.get(&alice, "/v1/channels").await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).trim()),
        (403, "subscription revoked")
    );
    op.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_of_the_test_listing_then_of_the_operators_file() {
    let op = operator(None).await;
    let alice = op
        .enroll(&op.add("alice", "kids").await)
        .await
        .expect("enroll");
    let now = stb_server_common::now_ms();
    let hour = 3_600_000;
    let range = |from: i64, to: i64| format!("/v1/guide?channels=1,3,99&from={from}&to={to}");

    // The test listing the server wrote: every channel, outside the subscription too.
    let response = op
        .client(Some(&alice.identity_pem))
        .get(op.url(&range(now, now + 3 * hour)))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].clone();
    let guide: Guide = response.json().await.expect("json");
    let numbers: Vec<u16> = guide.channels.iter().map(|c| c.number).collect();
    assert_eq!(numbers, [1, 3], "unknown channels are left out");
    for c in &guide.channels {
        let (first, last) = (&c.programmes[0], &c.programmes[c.programmes.len() - 1]);
        assert!(
            first.start_ms <= now && last.end_ms >= now + 3 * hour,
            "covers the range"
        );
        assert!(c.programmes.iter().all(|p| p.description.is_some()));
    }
    // A week ahead.
    let (status, body) = op
        .get(&alice, &range(now + 6 * 24 * hour, now + 7 * 24 * hour))
        .await;
    assert_eq!(status, 200);
    let week: Guide = serde_json::from_slice(&body).expect("json");
    assert!(week.channels.iter().all(|c| !c.programmes.is_empty()));
    // Unchanged: 304 on the ETag.
    let again = op
        .client(Some(&alice.identity_pem))
        .get(op.url(&range(now, now + 3 * hour)))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 304);
    // Bad requests.
    for bad in [
        format!("/v1/guide?from={now}"),
        range(now, now - 1),
        range(now, now + 9 * 24 * hour),
        range(i64::MIN, i64::MAX),
        format!("/v1/guide?channels=one&from={now}&to={}", now + hour),
    ] {
        assert_eq!(op.get(&alice, &bad).await.0, 400, "{bad}");
    }

    // The operator's own file replaces the test listing; a broken one changes nothing.
    let path = op.config.guide_path();
    let listing_version = op.running.state.guide.guide().version().to_owned();
    std::fs::write(&path, "<tv><programme channel=\"news24.stb.test\">").expect("write");
    content_server::server::refresh_guide(&op.running.state, false).await;
    assert_eq!(op.running.state.guide.guide().version(), listing_version);
    let stamp = content_server::guide::test_listing::xmltv_time;
    std::fs::write(
        &path,
        format!(
            "<tv><programme channel=\"news24.stb.test\" start=\"{}\" stop=\"{}\"><title>Operator News</title><rating><value>PG</value></rating></programme>\
             <programme channel=\"news24.stb.test\" start=\"{}\"><title>Late Edition</title></programme>\
             <programme channel=\"news24.stb.test\" start=\"{}\"><title>Close</title></programme></tv>",
            stamp(now - hour),
            stamp(now + hour),
            stamp(now + hour),
            stamp(now + 2 * hour),
        ),
    )
    .expect("write");
    content_server::server::refresh_guide(&op.running.state, false).await;
    let response = op
        .client(Some(&alice.identity_pem))
        .get(op.url("/v1/guide/now"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let max_age: i64 = response.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .trim_start_matches("public, max-age=")
        .parse()
        .expect("max-age");
    assert!((1..=60).contains(&max_age), "{max_age}");
    let on_air: OnAir = response.json().await.expect("json");
    let news = &on_air.channels[0];
    assert_eq!(
        news.now.as_ref().map(|p| p.title.as_str()),
        Some("Operator News")
    );
    assert_eq!(
        news.now.as_ref().and_then(|p| p.rating.as_deref()),
        Some("PG")
    );
    assert_eq!(
        news.next.as_ref().map(|p| p.title.as_str()),
        Some("Late Edition")
    );
    assert!(
        on_air.channels[1].now.is_none(),
        "the operator's file lists one channel"
    );
    let (_, body) = op.get(&alice, "/v1/channels").await;
    let list: ChannelList = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        list.channels[0].now.as_ref().map(|p| p.title.as_str()),
        Some("Operator News")
    );
    assert!(list.channels[1].now.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn favourites_follow_the_subscriber_and_bad_lists_are_refused() {
    let op = operator(None).await;
    let alice = op
        .enroll(&op.add("alice", "basic").await)
        .await
        .expect("enroll");
    let bob = op
        .enroll(&op.add("bob", "premium").await)
        .await
        .expect("enroll");
    let list = |b: &Box_| {
        let (op, b) = (&op, b.identity_pem.clone());
        async move {
            let r = op
                .client(Some(&b))
                .get(op.url("/v1/channels"))
                .send()
                .await
                .expect("list");
            r.json::<ChannelList>().await.expect("json").favourites
        }
    };
    let put = |b: &Box_, body: &'static str| {
        let (op, b) = (&op, b.identity_pem.clone());
        async move {
            let r = op
                .client(Some(&b))
                .put(op.url("/v1/favourites"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("put");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    assert!(list(&alice).await.is_empty());
    // Kept in the order given, each once; a channel outside the package may be a favourite.
    let (status, body) = put(&alice, r#"{"channels":[4,3,4,1]}"#).await;
    assert_eq!((status, body.as_str()), (200, r#"{"channels":[4,3,1]}"#));
    assert_eq!(list(&alice).await, [4, 3, 1]);
    assert!(list(&bob).await.is_empty(), "each subscriber has their own");
    // Refused, and the stored list stays: an unknown channel, not JSON, not a list.
    for bad in [
        r#"{"channels":[4,99]}"#,
        "favourites",
        r#"{"channels":"4"}"#,
    ] {
        let (status, body) = put(&alice, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.ends_with('\n'));
    }
    assert_eq!(list(&alice).await, [4, 3, 1]);
    assert_eq!(put(&alice, r#"{"channels":[]}"#).await.0, 200);
    assert!(list(&alice).await.is_empty());
    // Without a certificate, no TLS session at all.
    assert!(
        op.client(None)
            .put(op.url("/v1/favourites"))
            .body(r#"{"channels":[1]}"#)
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_key_decrypts_a_segment_that_gstreamer_decodes() {
    let op = operator(None).await;
    let alice = op
        .enroll(&op.add("alice", "basic").await)
        .await
        .expect("enroll");
    let (status, body) = op.get(&alice, "/v1/license").await;
    assert_eq!(status, 200);
    let license = License::decode(&body).expect("license");
    // Channels 1, 2, 4, current and next epoch each; none of channel 3.
    assert_eq!(license.entries.len(), 6);
    assert!(license.entries.iter().all(|e| e.channel != 3));

    let (_, live) = op.get(&alice, "/v1/channels/1/live").await;
    let live: LiveEdge = serde_json::from_slice(&live).expect("live");
    let (status, segment) = op
        .get(
            &alice,
            &format!("/v1/channels/1/segments/{}", live.sequence),
        )
        .await;
    assert_eq!(status, 200);
    let header = SegmentHeader::decode(&segment).expect("header");
    assert_eq!(
        (header.channel, header.sequence, header.epoch),
        (1, live.sequence, live.epoch)
    );
    // A segment from the future is not served.
    assert_eq!(
        op.get(
            &alice,
            &format!("/v1/channels/1/segments/{}", live.sequence + 5)
        )
        .await
        .0,
        404
    );

    let key = segment_key(&alice, &license, &header);
    let payload = &segment[stb_protocol::segment::HEADER_LEN..];
    assert!(
        !gst_decodes(payload),
        "the encrypted segment must not decode"
    );
    let mut clear = payload.to_vec();
    SegmentCipher::new(&key)
        .expect("cipher")
        .apply_keystream_at(&header.iv, 0, &mut clear)
        .expect("ctr");
    assert!(gst_decodes(&clear), "the decrypted segment must decode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_starts_with_the_live_segment_then_follows_in_order() {
    let op = operator(None).await;
    let alice = op
        .enroll(&op.add("alice", "basic").await)
        .await
        .expect("enroll");
    let headers = stream_headers(&op, &alice, 2, 2).await;
    assert_eq!(headers[0].channel, 2);
    assert_eq!(headers[1].sequence, headers[0].sequence + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_enrolls_and_serves() {
    let op = operator(Some(fresh_postgres().await)).await;
    assert_eq!(op.store.backend(), content_server::store::Backend::Postgres);
    let carol = op
        .enroll(&op.add("carol", "premium").await)
        .await
        .expect("enroll");
    let (status, body) = op.get(&carol, "/v1/channels").await;
    assert_eq!(status, 200);
    let list: ChannelList = serde_json::from_slice(&body).expect("json");
    assert!(list.channels.iter().all(|c| c.entitled));
    // Live channels' sequence blocks: a floor for the first, never overlapping after.
    let floor = content_server::live::FIRST_SEQUENCE;
    let first = op
        .store
        .reserve_live_sequences(9, 100, floor)
        .await
        .expect("block");
    let second = op
        .store
        .reserve_live_sequences(9, 100, floor)
        .await
        .expect("block");
    let other = op
        .store
        .reserve_live_sequences(10, 5, floor)
        .await
        .expect("block");
    assert_eq!((first, second, other), (floor, floor + 100, floor));
    // Favourites: stored, replaced, kept in order.
    op.store
        .set_favourites("carol", &[3, 1], 1)
        .await
        .expect("store");
    op.store
        .set_favourites("carol", &[2, 4, 1], 2)
        .await
        .expect("replace");
    assert_eq!(op.store.favourites("carol").await.expect("read"), [2, 4, 1]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_one_postgres_serve_the_same_subscribers_and_bytes() {
    let a = operator(Some(fresh_postgres().await)).await;
    // A second instance as an operator scales out: the same secrets (a copy of the first's
    // data directory: CA, master key, TLS), the same database, its own listeners.
    let dir_b = tempfile::tempdir().expect("tempdir");
    for part in ["ca", "secrets", "tls"] {
        copy_dir(&a.config.data_dir.join(part), &dir_b.path().join(part));
    }
    let config_b = Config {
        data_dir: dir_b.path().to_owned(),
        ..a.config.clone()
    };
    let b = content_server::server::start(&config_b)
        .await
        .expect("second instance");
    let url_b = |path: &str| format!("https://127.0.0.1:{}{path}", b.addr.port());

    // Added and enrolled through the first, served by the second.
    let dave = a
        .enroll(&a.add("dave", "basic").await)
        .await
        .expect("enroll");
    let client = a.client(Some(&dave.identity_pem));
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.expect("request");
            (r.status().as_u16(), r.bytes().await.expect("body"))
        }
    };
    assert_eq!(get(url_b("/v1/channels")).await.0, 200);

    // The same segment from either instance, byte for byte: encrypt-once is deterministic, so
    // a cache in front may fetch from any of them.
    let (_, live) = get(a.url("/v1/channels/1/live")).await;
    let live: LiveEdge = serde_json::from_slice(&live).expect("json");
    let path = format!("/v1/channels/1/segments/{}", live.sequence);
    let (from_a, from_b) = (get(a.url(&path)).await, get(url_b(&path)).await);
    assert_eq!((from_a.0, from_b.0), (200, 200));
    assert_eq!(from_a.1, from_b.1);
    // Their licenses unwrap the same keys (one master key).
    let (_, license_a) = get(a.url("/v1/license")).await;
    let (_, license_b) = get(url_b("/v1/license")).await;
    let (la, lb) = (
        License::decode(&license_a).expect("license"),
        License::decode(&license_b).expect("license"),
    );
    assert!(
        la.entries
            .iter()
            .all(|e| lb.entries.iter().any(|f| f.key_id == e.key_id))
    );
    // One guide: the same version, so the same ETag behind a cache.
    let range = format!(
        "/v1/guide?channels=1&from={}&to={}",
        live.start_ms,
        live.start_ms + 1
    );
    let etag = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.expect("request");
            r.headers()["etag"].clone()
        }
    };
    assert_eq!(etag(a.url(&range)).await, etag(url_b(&range)).await);

    // Suspended through the first: the second refuses at its next request.
    a.store
        .set_status("dave", Status::Suspended)
        .await
        .expect("suspend");
    assert_eq!(get(url_b("/v1/channels")).await.0, 403);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_and_license_time_out_when_the_database_stalls() {
    let database = fresh_postgres().await;
    let op = operator_with(Some(database.clone()), |c| c.request_timeout_secs = 1).await;
    let dave = op
        .enroll(&op.add("dave", "basic").await)
        .await
        .expect("enroll");
    let code = op.add("erin", "basic").await;
    // Another session holds the tables both routes need: their queries wait, the box must not.
    let pool = sqlx::AnyPool::connect(&database).await.expect("connect");
    let mut stall = pool.begin().await.expect("begin");
    sqlx::raw_sql(
        "LOCK TABLE certificates, attempt_windows, enrollment_codes IN ACCESS EXCLUSIVE MODE",
    )
    .execute(&mut *stall)
    .await
    .expect("lock");
    let started = std::time::Instant::now();
    let (license, body) = op.get(&dave, "/v1/license").await;
    assert_eq!((license, body), (408, b"request timeout\n".to_vec()));
    assert_eq!(op.enroll(&code).await.err().map(|(s, _)| s), Some(408));
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    stall.rollback().await.expect("rollback");
    assert_eq!(op.get(&dave, "/v1/license").await.0, 200);
    assert!(op.enroll(&code).await.is_ok(), "the code was not spent");
}

/// nginx with its JavaScript module as the edge, configured as `content-server edge nginx`
/// writes it; killed when dropped.
struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("edge/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master takes its workers down with it.
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start_edge(op: &Operator, port: u16) -> Nginx {
    let dir = tempfile::tempdir().expect("tempdir");
    // nginx's workers (www-data) keep their cache under it.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let keys = OperatorKeys::load(&op.config.master_key_path()).expect("keys");
    let (cert, key) = op.config.tls_paths();
    let site = content_server::edge::EdgeSite {
        listen: format!("127.0.0.1:{port}"),
        cert,
        key,
        cache_dir: dir.path().join("cache"),
        // By a name in its certificate: nginx does not check IP addresses in certificates.
        origin: format!("https://localhost:{}", op.running.enroll_addr.port()),
        origin_ca: op.config.ca_dir().join("ca.crt"),
    };
    let conf_dir = dir.path().join("edge");
    content_server::edge::write_nginx_files(&keys.edge_keys(), &site, &conf_dir).expect("site");
    let child = content_server::edge::start_nginx(
        Path::new("/usr/sbin/nginx"),
        &conf_dir,
        format!("127.0.0.1:{port}").parse().expect("addr"),
    )
    .expect("nginx (scripts/install-deps.sh installs it)");
    Nginx { child, _dir: dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_serves_entitled_boxes_by_token_and_refuses_the_rest() {
    let edge_port = stb_server_common::listener::free_loopback_port().expect("port");
    let op = operator_with(None, |c| {
        c.edge_url = format!("https://127.0.0.1:{edge_port}");
        c.edge_token_secs = 30;
    })
    .await;
    let edge = start_edge(&op, edge_port);
    let alice = op
        .enroll(&op.add("alice", "basic").await)
        .await
        .expect("enroll");
    let client = op.client(Some(&alice.identity_pem));
    // The edge asks no certificate: a box reaches it with its token alone.
    let anyone = op.client(None);
    let get = |client: &reqwest::Client, url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.expect("request");
            let cache = r
                .headers()
                .get("x-cache-status")
                .map(|v| v.to_str().expect("ascii").to_owned());
            (r.status().as_u16(), cache, r.bytes().await.expect("body"))
        }
    };

    // The origin hands the live edge with a token for this channel and this box.
    let (status, _, body) = get(&client, op.url("/v1/channels/1/live")).await;
    assert_eq!(status, 200);
    let live: LiveEdge = serde_json::from_slice(&body).expect("json");
    let access = live.edge.expect("the origin names its edge");
    assert!(access.segments_url.ends_with("/v1/channels/1/segments/"));
    let now = stb_server_common::now_ms();
    assert!(access.expires_ms > now && access.expires_ms <= now + 31_000);
    let signed = |seq: u64, query: &str| format!("{}{seq}?{query}", access.segments_url);

    // The same bytes as from the origin; the second box's request is a cache hit.
    let (status, cache, from_edge) = get(&anyone, signed(live.sequence, &access.query)).await;
    assert_eq!(
        (status, cache.as_deref()),
        (200, Some("MISS")),
        "{}",
        edge.log()
    );
    let (_, _, from_origin) = get(
        &client,
        op.url(&format!("/v1/channels/1/segments/{}", live.sequence)),
    )
    .await;
    assert_eq!(from_edge, from_origin);
    let (status, cache, _) = get(&anyone, signed(live.sequence, &access.query)).await;
    assert_eq!((status, cache.as_deref()), (200, Some("HIT")));

    // Refused by the edge itself: tampered, another channel, expired, another machine.
    let tampered = access.query.replace("t=", "t=A");
    assert_eq!(get(&anyone, signed(live.sequence, &tampered)).await.0, 403);
    let other_channel = access.segments_url.replace("/channels/1/", "/channels/2/");
    let (_, _, live2) = get(&client, op.url("/v1/channels/2/live")).await;
    let live2: LiveEdge = serde_json::from_slice(&live2).expect("json");
    assert_eq!(
        get(
            &anyone,
            format!("{other_channel}{}?{}", live2.sequence, access.query)
        )
        .await
        .0,
        403,
        "a token for channel 1 does not open channel 2"
    );
    let keys = OperatorKeys::load(&op.config.master_key_path()).expect("keys");
    let past = now / 1000 - 1;
    let expired = format!(
        "e={past}&t={}",
        keys.edge_keys()
            .token(1, past, "127.0.0.1".parse().expect("ip"))
    );
    assert_eq!(get(&anyone, signed(live.sequence, &expired)).await.0, 403);
    let elsewhere = op.client_from(None, Some("127.0.0.2".parse().expect("ip")));
    assert_eq!(
        get(&elsewhere, signed(live.sequence, &access.query))
            .await
            .0,
        403,
        "a URL copied to another machine"
    );
    assert_eq!(get(&anyone, signed(live.sequence, "")).await.0, 403);

    // No token for a channel outside the package, nor for a suspended subscriber.
    assert_eq!(get(&client, op.url("/v1/channels/3/live")).await.0, 403);
    // The origin's edge route wants the edge's key.
    let direct = format!(
        "https://127.0.0.1:{}/v1/edge/v1/channels/1/segments/{}",
        op.running.enroll_addr.port(),
        live.sequence
    );
    assert_eq!(get(&anyone, direct).await.0, 403);
    // A segment not on air yet is not served (nor cached).
    assert_eq!(
        get(&anyone, signed(live.sequence + 50, &access.query))
            .await
            .0,
        404
    );
    op.store
        .set_status("alice", Status::Suspended)
        .await
        .expect("suspend");
    assert_eq!(get(&client, op.url("/v1/channels/1/live")).await.0, 403);
}
