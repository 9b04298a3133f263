//! The key server over real TLS on loopback, against SQLite and a real PostgreSQL.
#![allow(missing_docs)]

#[macro_use]
mod common;

use common::*;
use stb_protocol::*;

both_backends!(
    register_recover_confirm,
    wrong_password_counts_and_confirmation_is_refused,
    a_confirmation_counts_once_and_only_with_its_tag,
    spacing_and_lock_then_unlock,
    unknown_identifier_is_indistinguishable,
    other_subject_cannot_overwrite,
    a_conditional_replacement_replaces_only_the_record_it_names,
    registration_needs_an_operator_certificate,
    bad_input_is_refused_and_stores_nothing,
);

async fn register_recover_confirm(db: Db) {
    let (_dir, pki, server) = setup(db, |_| {}).await;
    let alice = pki.client("alice-subscriber");
    let reply = register(
        &server.server_cert_pem,
        &server.url("/v1/register"),
        &alice,
        &keys("alice", 1),
    )
    .await;
    assert_eq!(reply.status, 201);

    let client = server.client(None);
    let Recovery::Recovered { data, confirm } =
        recover(&client, &server.url(""), keys("alice", 1)).await
    else {
        panic!("recovery failed");
    };
    assert_eq!(*data, personal_data(&alice));
    let reply = post(&client, &server.url("/v1/confirm"), confirm.encode())
        .await
        .expect("confirm");
    assert_eq!(reply.status, 204);
    // Single use.
    let reply = post(&client, &server.url("/v1/confirm"), confirm.encode())
        .await
        .expect("confirm");
    assert_eq!(reply.status, 400);
    let id = Identifier::parse("alice").expect("id");
    let state = server
        .running
        .state
        .store
        .guess_state(&id)
        .await
        .expect("db")
        .expect("row");
    assert_eq!((state.failures, state.locked), (0, false));

    // Metrics and the audit log saw it, without the identifier in clear.
    let admin = server.running.admin_addr.expect("admin");
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"keyserver_requests_total{endpoint="confirm",outcome="confirmed"} 1"#),
        "{metrics}"
    );
    let audit = std::fs::read_to_string(server.config.audit_log_path()).expect("audit");
    assert_eq!(audit.lines().count(), 4);
    assert!(!audit.contains("alice"));
}

async fn wrong_password_counts_and_confirmation_is_refused(db: Db) {
    let (_dir, pki, server) = setup(db, |c| c.limits.min_spacing_secs = 0).await;
    let owner = pki.client("bob");
    register(
        &server.server_cert_pem,
        &server.url("/v1/register"),
        &owner,
        &keys("bob", 1),
    )
    .await;
    let client = server.client(None);
    for n in 1..=3 {
        let Recovery::WrongPassword { .. } =
            recover(&client, &server.url(""), keys("bob", 9)).await
        else {
            panic!("wrong password was not refused");
        };
        let id = Identifier::parse("bob").expect("id");
        let state = server
            .running
            .state
            .store
            .guess_state(&id)
            .await
            .expect("db")
            .expect("row");
        assert_eq!(state.failures, n);
    }
    // A made-up confirmation is refused and resets nothing.
    let fake = Confirm {
        suite: Suite::V1,
        identifier: Identifier::parse("bob").expect("id"),
        session_id: [0; 32],
        tag: [0; 32],
    };
    assert_eq!(
        post(&client, &server.url("/v1/confirm"), fake.encode())
            .await
            .expect("post")
            .status,
        400
    );
    // The right password still works and its confirmation resets the counter.
    let Recovery::Recovered { confirm, .. } =
        recover(&client, &server.url(""), keys("bob", 1)).await
    else {
        panic!("right password refused");
    };
    assert_eq!(
        post(&client, &server.url("/v1/confirm"), confirm.encode())
            .await
            .expect("post")
            .status,
        204
    );
}

/// The confirmation is checked in one statement against a hash of the expected tag: a wrong
/// tag or exchange is refused and consumes nothing, the genuine one counts once, and an expired
/// one is refused and changes nothing either.
async fn a_confirmation_counts_once_and_only_with_its_tag(db: Db) {
    let (_dir, server, client, confirm) = recovered_dora(db, |_| {}).await;
    let mut wrong_tag = confirm.clone();
    wrong_tag.tag[31] ^= 1;
    let mut other_exchange = confirm.clone();
    other_exchange.session_id[0] ^= 1;
    for refused in [wrong_tag, other_exchange] {
        assert_eq!(confirm_status(&client, &server, &refused).await, 400);
    }
    assert_eq!(dora_failures(&server).await, 1, "refusals change nothing");
    assert_eq!(confirm_status(&client, &server, &confirm).await, 204);
    assert_eq!(dora_failures(&server).await, 0);
    let again = confirm_status(&client, &server, &confirm).await;
    assert_eq!(again, 400, "a confirmation counts once");

    let (_dir, server, client, confirm) =
        recovered_dora(db, |c| c.limits.confirm_ttl_secs = 0).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(confirm_status(&client, &server, &confirm).await, 400);
    assert_eq!(
        dora_failures(&server).await,
        1,
        "an expired one changes nothing"
    );
}

/// A server configured by `config` where "dora" registered and recovered once (not yet
/// confirmed): the server, a client and the confirmation to send.
async fn recovered_dora(
    db: Db,
    config: impl FnOnce(&mut keyserver::config::Config),
) -> (tempfile::TempDir, Server, reqwest::Client, Confirm) {
    let (dir, pki, server) = setup(db, |c| {
        c.limits.min_spacing_secs = 0;
        config(c);
    })
    .await;
    register(
        &server.server_cert_pem,
        &server.url("/v1/register"),
        &pki.client("dora"),
        &keys("dora", 1),
    )
    .await;
    let client = server.client(None);
    let Recovery::Recovered { confirm, .. } =
        recover(&client, &server.url(""), keys("dora", 1)).await
    else {
        panic!("right password refused");
    };
    (dir, server, client, confirm)
}

async fn confirm_status(client: &reqwest::Client, server: &Server, confirm: &Confirm) -> u16 {
    let url = server.url("/v1/confirm");
    post(client, &url, confirm.encode())
        .await
        .expect("post")
        .status
}

async fn dora_failures(server: &Server) -> u32 {
    let id = Identifier::parse("dora").expect("id");
    let state = server.running.state.store.guess_state(&id).await;
    state.expect("db").expect("row").failures
}

async fn spacing_and_lock_then_unlock(db: Db) {
    let (_dir, pki, server) = setup(db, |c| c.limits.max_failures = 3).await;
    let owner = pki.client("carol");
    register(
        &server.server_cert_pem,
        &server.url("/v1/register"),
        &owner,
        &keys("carol", 1),
    )
    .await;
    let client = server.client(None);
    assert!(matches!(
        recover(&client, &server.url(""), keys("carol", 9)).await,
        Recovery::WrongPassword { .. }
    ));
    // Inside the 10 s window: refused, not evaluated, with a Retry-After.
    let Recovery::Refused(reply) = recover(&client, &server.url(""), keys("carol", 1)).await else {
        panic!("second attempt inside the window was evaluated");
    };
    assert_eq!(reply.status, 429);
    assert!(
        matches!(reply.retry_after, Some(1..=10)),
        "{:?}",
        reply.retry_after
    );
    let id = Identifier::parse("carol").expect("id");
    assert_eq!(
        server
            .running
            .state
            .store
            .guess_state(&id)
            .await
            .expect("db")
            .expect("row")
            .failures,
        1
    );

    // Lock: drive the counter with spacing off on a second instance over the same database.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let database = if server.config.database.is_empty() {
        server.config.database_url()
    } else {
        server.config.database.clone()
    };
    // Instances on one database share its key-encryption key.
    let kek = server.config.kek_path();
    let fast = start(dir2.path(), &pki, database, |c| {
        c.kek_file = Some(kek);
        c.limits.min_spacing_secs = 0;
        c.limits.max_failures = 3;
    })
    .await;
    let fast_client = fast.client(None);
    for _ in 0..2 {
        assert!(matches!(
            recover(&fast_client, &fast.url(""), keys("carol", 9)).await,
            Recovery::WrongPassword { .. }
        ));
    }
    let Recovery::Refused(reply) = recover(&fast_client, &fast.url(""), keys("carol", 1)).await
    else {
        panic!("locked identifier was evaluated");
    };
    assert_eq!(reply.status, 423);
    assert!(String::from_utf8_lossy(&reply.body).contains("locked"));
    assert!(
        server
            .running
            .state
            .store
            .unlock(&id)
            .await
            .expect("unlock")
    );
    assert!(matches!(
        recover(&fast_client, &fast.url(""), keys("carol", 1)).await,
        Recovery::Recovered { .. }
    ));
}

async fn unknown_identifier_is_indistinguishable(db: Db) {
    let (_dir, pki, server) = setup(db, |_| {}).await;
    let owner = pki.client("dave");
    register(
        &server.server_cert_pem,
        &server.url("/v1/register"),
        &owner,
        &keys("dave", 1),
    )
    .await;
    let client = server.client(None);
    let Recovery::WrongPassword {
        response_len: known,
    } = recover(&client, &server.url(""), keys("dave", 2)).await
    else {
        panic!("expected a wrong-password answer");
    };
    let Recovery::WrongPassword {
        response_len: unknown,
    } = recover(&client, &server.url(""), keys("nobody", 2)).await
    else {
        panic!("unknown identifier answered differently");
    };
    assert_eq!(known, unknown);
    // The same spacing rule applies to both.
    for id in ["dave", "nobody"] {
        let Recovery::Refused(reply) = recover(&client, &server.url(""), keys(id, 2)).await else {
            panic!("{id}: no spacing");
        };
        assert_eq!(reply.status, 429, "{id}");
    }
}

async fn other_subject_cannot_overwrite(db: Db) {
    let (_dir, pki, server) = setup(db, |c| c.limits.min_spacing_secs = 0).await;
    let url = server.url("/v1/register");
    let erin = pki.client("erin");
    let mallory = pki.client("mallory");
    assert_eq!(
        register(&server.server_cert_pem, &url, &erin, &keys("erin", 1))
            .await
            .status,
        201
    );
    assert_eq!(
        register(&server.server_cert_pem, &url, &mallory, &keys("erin", 7))
            .await
            .status,
        403
    );
    let client = server.client(None);
    assert!(matches!(
        recover(&client, &server.url(""), keys("erin", 1)).await,
        Recovery::Recovered { .. }
    ));
    // The owner may change the password.
    assert_eq!(
        register(&server.server_cert_pem, &url, &erin, &keys("erin", 4))
            .await
            .status,
        200
    );
    assert!(matches!(
        recover(&client, &server.url(""), keys("erin", 1)).await,
        Recovery::WrongPassword { .. }
    ));
    assert!(matches!(
        recover(&client, &server.url(""), keys("erin", 4)).await,
        Recovery::Recovered { .. }
    ));
}

async fn registration_needs_an_operator_certificate(db: Db) {
    let (_dir, _pki, server) = setup(db, |_| {}).await;
    let req = RegisterRequest::new(
        &keys("frank", 1),
        &personal_data(&Pki::new("x").client("frank")),
        [0; 16],
    )
    .expect("request");
    // No certificate: refused by the endpoint.
    let reply = post(
        &server.client(None),
        &server.url("/v1/register"),
        req.encode(),
    )
    .await
    .expect("post");
    assert_eq!(reply.status, 401);
    // A certificate from another CA: the TLS handshake itself fails.
    let stranger = Pki::new("Some Other CA").client("frank");
    assert!(
        post(
            &server.client(Some(&stranger)),
            &server.url("/v1/register"),
            req.encode()
        )
        .await
        .is_err()
    );
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
}

async fn bad_input_is_refused_and_stores_nothing(db: Db) {
    let (_dir, pki, server) = setup(db, |_| {}).await;
    let owner = pki.client("grace");
    let client = server.client(Some(&owner));
    let good = RegisterRequest::new(&keys("grace", 1), &personal_data(&owner), [0; 16])
        .expect("req")
        .encode();
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        good[..good.len() - 1].to_vec(),
        [good.clone(), vec![0]].concat(),
    ];
    let mut bad_version = good.clone();
    bad_version[0] = 9;
    cases.push(bad_version);
    for body in cases {
        for path in ["/v1/register", "/v1/recover", "/v1/confirm"] {
            let reply = post(&client, &server.url(path), body.clone())
                .await
                .expect("post");
            assert_eq!(reply.status, 400, "{path}");
            assert!(reply.body.len() < 100);
        }
    }
    // Oversized: refused with 413, or the server closes while the client still writes (the
    // 413 then races the broken pipe). Either way nothing is stored.
    let huge = vec![1u8; 1 << 20];
    if let Ok(reply) = post(&client, &server.url("/v1/register"), huge).await {
        assert_eq!(reply.status, 413);
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
}

/// SQLite: a recovery's statements run on the key server's own connections, which never
/// wait for a lock; while another process (an operator's command) holds the file's write
/// lock they go through sqlx, which waits for it, and the login goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_waits_out_another_process_holding_the_sqlite_lock() {
    let (_dir, pki, server) = setup(Db::Sqlite, |_| {}).await;
    let owner = pki.client("hana");
    let reply = register(
        &server.server_cert_pem,
        &server.url("/v1/register"),
        &owner,
        &keys("hana", 1),
    )
    .await;
    assert_eq!(reply.status, 201);
    let url = server.config.database_url();
    let path = url
        .strip_prefix("sqlite://")
        .expect("an SQLite file")
        .to_owned();
    // Another process's write transaction, held for 700 ms.
    let hold_lock = || {
        let other = rusqlite::Connection::open(&path).expect("open");
        other
            .execute_batch("BEGIN IMMEDIATE; UPDATE meta SET name = name WHERE 0")
            .expect("write lock");
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            other.execute_batch("COMMIT").expect("commit");
        })
    };
    let client = server.client(None);
    let started = std::time::Instant::now();
    let holder = hold_lock();
    let Recovery::Recovered { confirm, .. } =
        recover(&client, &server.url(""), keys("hana", 1)).await
    else {
        panic!("recovery failed while the lock was held");
    };
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(600),
        "the recovery did not meet the lock"
    );
    holder.join().expect("holder");
    let started = std::time::Instant::now();
    let holder = hold_lock();
    let reply = post(&client, &server.url("/v1/confirm"), confirm.encode())
        .await
        .expect("confirm");
    assert_eq!(reply.status, 204);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(600),
        "the confirmation did not meet the lock"
    );
    holder.join().expect("holder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_share_counters() {
    let pki = Pki::new("Test Operator CA");
    let database = fresh_postgres_db().await;
    let (d1, d2) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = start(d1.path(), &pki, database.clone(), |_| {}).await;
    let kek = a.config.kek_path();
    let b = start(d2.path(), &pki, database, |c| c.kek_file = Some(kek)).await;
    let owner = pki.client("heidi");
    assert_eq!(
        register(
            &a.server_cert_pem,
            &a.url("/v1/register"),
            &owner,
            &keys("heidi", 1)
        )
        .await
        .status,
        201
    );
    // Ten simultaneous attempts spread over both instances: exactly one is evaluated.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (client, url) = if i % 2 == 0 {
            (a.client(None), a.url(""))
        } else {
            (b.client(None), b.url(""))
        };
        tasks.push(tokio::spawn(async move {
            recover(&client, &url, keys("heidi", 9)).await
        }));
    }
    let mut evaluated = 0;
    for t in tasks {
        match t.await.expect("task") {
            Recovery::WrongPassword { .. } => evaluated += 1,
            Recovery::Refused(r) => assert_eq!(r.status, 429),
            Recovery::Recovered { .. } => panic!("wrong password recovered"),
        }
    }
    assert_eq!(evaluated, 1);
    let id = Identifier::parse("heidi").expect("id");
    assert_eq!(
        b.running
            .state
            .store
            .guess_state(&id)
            .await
            .expect("db")
            .expect("row")
            .failures,
        1
    );
}

/// Two boxes add a locker key to the same old record at once: the second, naming the record
/// both recovered, gets 412 and changes nothing; so does anyone naming another subject's.
async fn a_conditional_replacement_replaces_only_the_record_it_names(db: Db) {
    let (_dir, pki, server) = setup(db, |c| c.limits.min_spacing_secs = 0).await;
    let url = server.url("/v1/register");
    let gina = pki.client("gina");
    let keys = keys("gina", 3);
    let original = RegisterRequest::new(&keys, &personal_data(&gina), random_array()).expect("r");
    let named = format!("\"{}\"", hex::encode(original.record.sealed.digest()));
    let owner = server.client(Some(&gina));
    let conditional = |data: &PersonalData, if_match: &str| {
        let body = RegisterRequest::new(&keys, data, random_array())
            .expect("register")
            .encode();
        owner
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, keyserver::routes::MEDIA_TYPE)
            .header(reqwest::header::IF_MATCH, if_match.to_owned())
            .body(body)
            .send()
    };
    // No record yet: nothing to replace.
    let first = PersonalData {
        locker_key: Some(SecretArray::new([0x41; 32])),
        ..personal_data(&gina)
    };
    assert_eq!(
        conditional(&first, &named).await.expect("send").status(),
        412
    );
    let reply = post(&owner, &url, original.encode())
        .await
        .expect("register");
    assert_eq!(reply.status, 201);
    assert_eq!(
        conditional(&first, &named).await.expect("send").status(),
        200
    );
    let second = PersonalData {
        locker_key: Some(SecretArray::new([0x42; 32])),
        ..personal_data(&gina)
    };
    let refused = conditional(&second, &named).await.expect("send");
    assert_eq!(refused.status(), 412);
    assert_eq!(
        refused.text().await.expect("text"),
        "the record was replaced meanwhile\n"
    );
    assert_eq!(
        conditional(&second, "\"zz\"").await.expect("send").status(),
        400
    );
    let Recovery::Recovered { data, .. } =
        recover(&server.client(None), &server.url(""), keys.clone()).await
    else {
        panic!("recovery failed");
    };
    assert_eq!(*data, first, "the first replacement stands");
    // Another subject replaces nothing, whatever record it names.
    let mallory = pki.client("mallory");
    let stranger = server
        .client(Some(&mallory))
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, keyserver::routes::MEDIA_TYPE)
        .header(reqwest::header::IF_MATCH, named.clone())
        .body(
            RegisterRequest::new(&keys, &second, random_array())
                .expect("r")
                .encode(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(stranger.status(), 412);
}
