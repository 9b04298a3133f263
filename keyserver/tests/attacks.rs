//! Regression tests for what an attack on the key server found (issue 18), each named after
//! what it guards, against SQLite and a real PostgreSQL.
#![allow(missing_docs)]

#[macro_use]
mod common;

use common::*;
use keyserver::monitor::{Alert, Monitor, Thresholds};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams};
use stb_protocol::*;
use std::time::Duration;

both_backends!(
    registration_does_not_tell_which_identifiers_exist,
    identifiers_per_subscriber_are_bounded,
    revoked_and_suspended_certificates_do_not_register,
    slow_guesses_between_genuine_logins_lock,
    counter_rows_are_pruned_alike_and_their_rate_is_capped,
    only_the_protocol_media_type_is_accepted,
);

fn audit_alerts(server: &Server) -> Vec<Alert> {
    let log = std::fs::read_to_string(server.config.audit_log_path()).expect("audit log");
    let mut monitor = Monitor::new(Thresholds::default());
    log.lines()
        .map(|l| serde_json::from_str(l).expect("audit line"))
        .flat_map(|ev| monitor.feed(&ev))
        .collect()
}

/// Another subscriber's identifier got 403 "belongs to another subscriber", a free one 201:
/// any certificate holder could list identifiers. No design can hide a taken identifier from
/// someone who must pick a free one, so the answer is bounded: a subscriber gets a few "not
/// available" answers per window, then every registration of it is refused alike (taken or
/// free), and the monitor raises an alert.
async fn registration_does_not_tell_which_identifiers_exist(db: Db) {
    let (_dir, pki, server) = setup(db, |c| c.limits.max_taken_per_subscriber = 3).await;
    let owner = pki.client("owner");
    for n in ["taken0", "taken1", "taken2", "taken3"] {
        assert_eq!(server.register(&owner, n, 1).await.status, 201);
    }
    let prober = pki.client("prober");
    for n in ["taken0", "taken1", "taken2"] {
        let reply = server.register(&prober, n, 2).await;
        assert_eq!(reply.status, 403);
        assert_eq!(
            reply.body,
            b"this identifier is not available, choose another\n"
        );
    }
    // Budget spent: taken and free identifiers get the same answer.
    let taken = server.register(&prober, "taken3", 2).await;
    let free = server.register(&prober, "free-one", 2).await;
    assert_eq!((taken.status, free.status), (429, 429));
    assert_eq!(taken.body, free.body);
    // Successful registrations do not spend it; the owner still registers.
    assert_eq!(server.register(&owner, "taken4", 1).await.status, 201);
    let alerts = audit_alerts(&server);
    assert!(
        alerts
            .iter()
            .any(|a| matches!(a, Alert::RegistrationProbing { count: 3, .. })),
        "{alerts:?}"
    );
}

async fn identifiers_per_subscriber_are_bounded(db: Db) {
    let (_dir, pki, server) = setup(db, |c| c.limits.max_identifiers_per_subscriber = 2).await;
    let sub = pki.client("family");
    assert_eq!(server.register(&sub, "mum", 1).await.status, 201);
    assert_eq!(server.register(&sub, "dad", 1).await.status, 201);
    let third = server.register(&sub, "kid", 1).await;
    assert_eq!(third.status, 403);
    assert_eq!(
        third.body,
        b"this subscription holds 2 identifiers already\n"
    );
    // Changing a password is not a new identifier.
    assert_eq!(server.register(&sub, "mum", 5).await.status, 200);
    // At the cap, a taken identifier gets the same answer as a free one.
    let other = pki.client("neighbour");
    assert_eq!(server.register(&other, "taken", 1).await.status, 201);
    let taken = server.register(&sub, "taken", 1).await;
    assert_eq!((taken.status, &taken.body), (third.status, &third.body));
    assert_eq!(
        server
            .running
            .state
            .store
            .count_accounts()
            .await
            .expect("count"),
        3
    );
}

/// Writes the operator's CRL listing `revoked` and `held` (DER serials) to `path`.
fn write_crl(pki: &Pki, path: &std::path::Path, revoked: &[&ClientId], held: &[&ClientId]) {
    let now = time::OffsetDateTime::now_utc();
    let entry = |c: &&ClientId, reason| {
        let (_, cert) = x509_parser::parse_x509_certificate(&c.cert_der).expect("cert");
        RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(cert.raw_serial()),
            revocation_time: now,
            reason_code: Some(reason),
            invalidity_date: None,
        }
    };
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::hours(1),
        crl_number: rcgen::SerialNumber::from_slice(
            &(now.unix_timestamp_nanos() as u64).to_be_bytes(),
        ),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|c| entry(c, RevocationReason::CessationOfOperation))
            .chain(
                held.iter()
                    .map(|c| entry(c, RevocationReason::CertificateHold)),
            )
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&pki.ca).expect("crl");
    std::fs::write(path, crl.pem().expect("pem")).expect("write crl");
}

/// Revoked and suspended subscribers' certificates got 201 from registration.
async fn revoked_and_suspended_certificates_do_not_register(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let crl = dir.path().join("crl.pem");
    let pki = Pki::new("Test Operator CA");
    let (good, gone, held) = (pki.client("good"), pki.client("gone"), pki.client("held"));
    write_crl(&pki, &crl, &[&gone], &[&held]);
    let crl_path = crl.display().to_string();
    let database = database_for(db).await;
    let server = start(dir.path(), &pki, database, |c| {
        c.operator_crl = Some(crl_path);
        c.limits.crl_refresh_secs = 1;
    })
    .await;
    // The first list is fetched at start, in the background.
    let mut first = server.register(&good, "good", 1).await;
    for _ in 0..50 {
        if first.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        first = server.register(&good, "good", 1).await;
    }
    assert_eq!(first.status, 201);
    let revoked = server.register(&gone, "gone", 1).await;
    assert_eq!(
        (revoked.status, revoked.body.as_slice()),
        (403, b"this subscription is revoked\n".as_slice())
    );
    let suspended = server.register(&held, "held", 1).await;
    assert_eq!(
        (suspended.status, suspended.body.as_slice()),
        (
            403,
            b"this subscription is suspended, contact the operator\n".as_slice()
        )
    );
    // Resumed: the hold is lifted in the next list, taken at the next refresh.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_crl(&pki, &crl, &[&gone], &[]);
    let mut resumed = server.register(&held, "held", 1).await;
    for _ in 0..30 {
        if resumed.status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        resumed = server.register(&held, "held", 1).await;
    }
    assert_eq!(resumed.status, 201);
    // A list signed by someone else is not taken: the last good one stays in force.
    write_crl(&Pki::new("Forger"), &crl, &[], &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.register(&gone, "gone", 1).await.status, 403);
}

async fn confirm(client: &reqwest::Client, server: &Server, confirm: &Confirm) -> u16 {
    post(client, &server.url("/v1/confirm"), confirm.encode())
        .await
        .expect("confirm")
        .status
}

/// A genuine login reset the failure count: 27 wrong guesses passed with no lock, 9 between
/// each of the owner's logins. The long-window count is not reset by a success.
async fn slow_guesses_between_genuine_logins_lock(db: Db) {
    let (_dir, pki, server) = setup(db, |c| {
        c.limits.min_spacing_secs = 0;
        c.limits.max_failures = 10;
        c.limits.max_failures_long = 20;
    })
    .await;
    let owner = pki.client("owner");
    assert_eq!(server.register(&owner, "victim", 1).await.status, 201);
    let client = server.client(None);
    let base = server.url("");
    let mut wrong = 0;
    'rounds: for _ in 0..3 {
        for _ in 0..9 {
            match recover(&client, &base, keys("victim", 9)).await {
                Recovery::WrongPassword { .. } => wrong += 1,
                Recovery::Refused(r) if r.status == 423 => break 'rounds,
                _ => panic!("unexpected answer"),
            }
        }
        match recover(&client, &base, keys("victim", 1)).await {
            Recovery::Recovered { confirm: c, .. } => {
                assert_eq!(confirm(&client, &server, &c).await, 204)
            }
            Recovery::Refused(r) if r.status == 423 => break 'rounds,
            _ => panic!("unexpected answer"),
        }
    }
    assert!(wrong <= 20, "{wrong} wrong guesses passed");
    assert!(matches!(
        recover(&client, &base, keys("victim", 1)).await,
        Recovery::Refused(Reply { status: 423, .. })
    ));
    let alerts = audit_alerts(&server);
    let slow = alerts
        .iter()
        .filter(|a| matches!(a, Alert::SlowGuessing { .. }))
        .count();
    assert_eq!(slow, 1, "{alerts:?}");
}

/// Every unknown identifier added a counter row forever (1,500 rows in 3 s from one
/// connection). Recoveries per source are rate-limited, and idle rows are pruned by a rule
/// that does not look at whether the identifier exists.
async fn counter_rows_are_pruned_alike_and_their_rate_is_capped(db: Db) {
    let (_dir, pki, server) = setup(db, |c| {
        c.limits.recover_rate_per_source = 1.0;
        c.limits.recover_burst_per_source = 5;
        c.limits.max_failures = 3;
    })
    .await;
    let owner = pki.client("owner");
    assert_eq!(server.register(&owner, "known", 1).await.status, 201);
    let client = server.client(None);
    let base = server.url("");
    let mut statuses = vec![];
    for i in 0..12 {
        let id = if i == 0 {
            "known".to_owned()
        } else {
            format!("nobody{i}")
        };
        statuses.push(match recover(&client, &base, keys(&id, 9)).await {
            Recovery::WrongPassword { .. } => 200,
            Recovery::Refused(r) => {
                if r.status == 429 {
                    assert!(r.retry_after.is_some());
                }
                r.status
            }
            Recovery::Recovered { .. } => panic!("recovered with a wrong key"),
        });
    }
    let answered = statuses.iter().filter(|&&s| s == 200).count();
    assert!((5..=6).contains(&answered), "{statuses:?}");
    assert!(statuses.iter().all(|&s| s == 200 || s == 429));
    let store = &server.running.state.store;
    let rows = store.count_guess_rows().await.expect("rows");
    assert_eq!(rows as usize, answered);
    // A locked row stays until the operator acts; idle ones go, known and unknown alike.
    let locked = Identifier::parse("nobody-locked").expect("id");
    let rules = keyserver::store::AttemptRules {
        spacing_ms: 0,
        max_failures: 1,
        long_window_ms: 1,
        max_failures_long: 100,
    };
    let pending = keyserver::store::PendingRow {
        suite: 1,
        session_id: [1; 32],
        tag_digest: [2; 32],
        expires_ms: 0,
    };
    store
        .record_attempt(&locked, 1, rules, &pending)
        .await
        .expect("attempt");
    let far = keyserver::now_ms() + 10 * 86_400_000;
    let pruned = store
        .prune(far, far - 1000, far - 1000)
        .await
        .expect("prune");
    assert_eq!(pruned as usize, answered);
    assert_eq!(store.count_guess_rows().await.expect("rows"), 1);
}

/// The key server ignored Content-Type: text/plain, JSON and none were all accepted.
async fn only_the_protocol_media_type_is_accepted(db: Db) {
    let (_dir, pki, server) = setup(db, |_| {}).await;
    let owner = pki.client("owner");
    let client = server.client(Some(&owner));
    let body = RegisterRequest::new(&keys("typed", 1), &personal_data(&owner), [0; 16])
        .expect("req")
        .encode();
    for media_type in [Some("text/plain"), Some("application/json"), None] {
        for path in ["/v1/register", "/v1/recover", "/v1/confirm"] {
            let mut request = client.post(server.url(path)).body(body.clone());
            if let Some(t) = media_type {
                request = request.header("content-type", t);
            }
            let reply = request.send().await.expect("post");
            assert_eq!(reply.status(), 415, "{path} {media_type:?}");
            assert_eq!(
                reply.text().await.expect("body"),
                "request bodies must be application/octet-stream\n"
            );
        }
    }
    assert_eq!(
        server
            .running
            .state
            .store
            .count_accounts()
            .await
            .expect("count"),
        0
    );
    // Errors, 413 included, are one line ending in a newline.
    let reply = client
        .post(server.url("/v1/recover"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 20 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(reply.status(), 413);
    assert_eq!(
        reply.text().await.expect("body"),
        "request body too large\n"
    );
}
