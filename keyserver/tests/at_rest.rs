//! What a copy of the key server's database gives away (nothing useful without the KEK), the
//! refusal to start without the right KEK, a rotation while serving, and the upgrade of rows
//! an older version stored in clear. Both backends.
#![allow(missing_docs)]

#[macro_use]
mod common;

use common::*;
use hmac::{Hmac, KeyInit, Mac};
use keyserver::kek::{Field, Kek};
use sha2::{Digest, Sha256};
use sqlx::Row;
use stb_protocol::*;

both_backends!(
    a_database_copy_gives_nothing,
    a_wrong_or_missing_kek_is_refused,
    rotation_while_serving,
    clear_rows_of_an_older_version_are_wrapped,
);

/// These tests recover one identifier several times in a row.
fn no_spacing(config: &mut keyserver::config::Config) {
    config.limits.min_spacing_secs = 0;
}

/// Every stored value an attacker with a copy of the database sees (the SQLite files too).
async fn database_copy(server: &Server) -> Vec<Vec<u8>> {
    let pool = &server.running.state.store.db().pool;
    let mut values = Vec::new();
    for (sql, columns) in [
        (
            "SELECT identifier, verifier, sealed, identifier_sealed, subject_name FROM accounts",
            5,
        ),
        (
            "SELECT identifier, pending_session, pending_tag FROM guesses",
            3,
        ),
        ("SELECT name, value FROM meta", 2),
    ] {
        for row in sqlx::query(sql).fetch_all(pool).await.expect("select") {
            for i in 0..columns {
                let value = row
                    .try_get::<Vec<u8>, _>(i)
                    .or_else(|_| row.try_get::<String, _>(i).map(String::into_bytes))
                    .unwrap_or_default();
                values.push(value);
            }
        }
    }
    for file in ["keyserver.db", "keyserver.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.dir.join(file)) {
            values.push(bytes);
        }
    }
    values
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn a_database_copy_gives_nothing(db: Db) {
    let (_dir, pki, server) = setup(db, no_spacing).await;
    // The subscriber's name is stored in clear (it is the certificate's subject): make it
    // unlike the identifiers so that the scan below looks for the identifiers only.
    let alice = pki.client("subscriber-17");
    assert_eq!(server.register(&alice, "alice", 1).await.status, 201);
    assert_eq!(server.register(&alice, "bobby", 2).await.status, 201);
    let client = server.client(None);
    assert!(matches!(
        recover(&client, &server.url(""), keys("alice", 1)).await,
        Recovery::Recovered { .. }
    ));
    assert!(matches!(
        recover(&client, &server.url(""), keys("carol", 3)).await,
        Recovery::WrongPassword { .. }
    ));
    let copy = database_copy(&server).await;

    // No identifier, no VP, nothing of the personal data, no secret in clear.
    for (id, kp) in [("alice", 1), ("bobby", 2), ("carol", 3)] {
        let vp = keys(id, kp).verifier().expose().to_vec();
        for value in &copy {
            assert!(!contains(value, id.as_bytes()), "{id} stored in clear");
            assert!(!contains(value, &vp), "VP of {id} stored in clear");
            assert!(
                !contains(value, &alice.cert_der[..64]),
                "personal data in clear"
            );
        }
    }
    // What the attacker can compute from the copy does not name an account either: the row
    // keys are neither hashes of the identifier nor keyed by any stored value.
    let pool = &server.running.state.store.db().pool;
    let keys_in_db: Vec<String> = sqlx::query("SELECT identifier FROM accounts")
        .fetch_all(pool)
        .await
        .expect("select")
        .iter()
        .map(|r| r.try_get(0).expect("text"))
        .collect();
    assert_eq!(keys_in_db.len(), 2);
    let stored: Vec<Vec<u8>> = sqlx::query("SELECT value FROM meta")
        .fetch_all(pool)
        .await
        .expect("select")
        .iter()
        .map(|r| r.try_get(0).expect("blob"))
        .collect();
    for value in &stored {
        assert_ne!(value.len(), 32, "a server secret stored in clear");
    }
    for id in ["alice", "bobby"] {
        let mut candidates = vec![hex::encode(Sha256::digest(id))];
        for key in &stored {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
            mac.update(id.as_bytes());
            candidates.push(hex::encode(mac.finalize().into_bytes()));
        }
        for key in &keys_in_db {
            assert!(key.starts_with("h:"));
            assert!(!candidates.iter().any(|c| key.ends_with(c.as_str())));
        }
    }
    server.running.shutdown().await;
}

async fn a_wrong_or_missing_kek_is_refused(db: Db) {
    let (_dir, pki, server) = setup(db, no_spacing).await;
    let alice = pki.client("alice-subscriber");
    assert_eq!(server.register(&alice, "alice", 1).await.status, 201);
    let Server {
        running,
        config,
        dir,
        server_cert_pem: _,
    } = server;
    running.shutdown().await;
    let kek = config.kek_path();
    let right = std::fs::read(&kek).expect("kek");

    std::fs::remove_file(&kek).expect("rm");
    let Err(err) = keyserver::server::start(&config).await else {
        panic!("started without the right KEK");
    };
    assert!(
        format!("{err:#}").contains("no key-encryption key"),
        "{err:#}"
    );

    Kek::create(&kek).expect("another key");
    let Err(err) = keyserver::server::start(&config).await else {
        panic!("started without the right KEK");
    };
    let msg = format!("{err:#}");
    assert!(msg.contains("does not open this database"), "{msg}");

    std::fs::remove_file(&kek).expect("rm");
    stb_server_common::write_private(&kek, &right).expect("restore");
    let server = start(&dir, &pki, config.database.clone(), no_spacing).await;
    assert!(matches!(
        recover(&server.client(None), &server.url(""), keys("alice", 1)).await,
        Recovery::Recovered { .. }
    ));
    server.running.shutdown().await;
}

async fn rotation_while_serving(db: Db) {
    let (_dir, pki, old_only) = setup(db, no_spacing).await;
    let alice = pki.client("alice-subscriber");
    assert_eq!(old_only.register(&alice, "alice", 1).await.status, 201);
    let old = old_only.config.kek_path();
    let new = old_only.dir.join("secrets/kek-2.key");
    Kek::create(&new).expect("new key");
    let (dir, database) = (old_only.dir.clone(), old_only.config.database.clone());

    // Step 1: every instance learns the new key (the old one still writes); step 2: one
    // instance writes with the new key while another still writes with the old one.
    let (o, n) = (old.clone(), new.clone());
    let reads_both = start(&dir, &pki, database.clone(), move |c| {
        no_spacing(c);
        c.extra_kek_files = vec![n];
    })
    .await;
    let writes_new = start(&dir, &pki, database.clone(), move |c| {
        no_spacing(c);
        c.kek_file = Some(new.clone());
        c.extra_kek_files = vec![o];
    })
    .await;
    assert_eq!(writes_new.register(&alice, "dave.r", 4).await.status, 201);
    for server in [&reads_both, &writes_new] {
        for (id, kp) in [("alice", 1), ("dave.r", 4)] {
            assert!(
                matches!(
                    recover(&server.client(None), &server.url(""), keys(id, kp)).await,
                    Recovery::Recovered { .. }
                ),
                "{id}"
            );
        }
    }

    // Step 3: re-wrap while serving; then only the new key is in use.
    let store = &writes_new.running.state.store;
    assert!(store.rewrap().await.expect("rewrap") > 0);
    let usage = store.kek_usage().await.expect("usage");
    let new_id = writes_new.config.keyring().expect("ring").current_id();
    assert_eq!(usage.keys().collect::<Vec<_>>(), vec![&new_id], "{usage:?}");

    // Step 4: the old key can go; alone, it no longer opens the database.
    for server in [old_only, reads_both, writes_new] {
        server.running.shutdown().await;
    }
    let new_again = dir.join("secrets/kek-2.key");
    let only_new = start(&dir, &pki, database.clone(), move |c| {
        no_spacing(c);
        c.kek_file = Some(new_again);
    })
    .await;
    assert!(matches!(
        recover(&only_new.client(None), &only_new.url(""), keys("alice", 1)).await,
        Recovery::Recovered { .. }
    ));
    let config = only_new.config.clone();
    only_new.running.shutdown().await;
    let mut with_old = config;
    with_old.kek_file = Some(old);
    assert!(keyserver::server::start(&with_old).await.is_err());
}

async fn clear_rows_of_an_older_version_are_wrapped(db: Db) {
    let (_dir, pki, server) = setup(db, no_spacing).await;
    let alice = pki.client("alice-subscriber");
    assert_eq!(server.register(&alice, "erin", 5).await.status, 201);
    assert!(matches!(
        recover(&server.client(None), &server.url(""), keys("erin", 6)).await,
        Recovery::WrongPassword { .. }
    ));
    // Rewrite the database as the version before the KEK stored it.
    let ring = server.config.keyring().expect("ring");
    let pool = server.running.state.store.db().pool.clone();
    let row = sqlx::query("SELECT identifier, verifier, sealed FROM accounts")
        .fetch_one(&pool)
        .await
        .expect("row");
    let key: String = row.try_get(0).expect("key");
    let vp = ring
        .unwrap(
            Field::Verifier,
            key.as_bytes(),
            &row.try_get::<Vec<u8>, _>(1).expect("vp"),
        )
        .expect("opens");
    let sealed = ring
        .unwrap(
            Field::Sealed,
            key.as_bytes(),
            &row.try_get::<Vec<u8>, _>(2).expect("s"),
        )
        .expect("opens");
    sqlx::query(
        "UPDATE accounts SET identifier = 'erin', verifier = $1, sealed = $2, \
         identifier_sealed = NULL",
    )
    .bind(vp.expose().to_vec())
    .bind(sealed.expose().to_vec())
    .execute(&pool)
    .await
    .expect("clear account");
    sqlx::query("UPDATE guesses SET identifier = 'erin'")
        .execute(&pool)
        .await
        .expect("clear counter");
    sqlx::query("DELETE FROM meta WHERE name IN ('kek_check', 'identifier_key')")
        .execute(&pool)
        .await
        .expect("meta");
    for name in ["fake_record_secret", "audit_id_key"] {
        let value: Vec<u8> = sqlx::query("SELECT value FROM meta WHERE name = $1")
            .bind(name)
            .fetch_one(&pool)
            .await
            .expect("secret")
            .try_get(0)
            .expect("blob");
        let clear = ring
            .unwrap(Field::Secret, name.as_bytes(), &value)
            .expect("opens");
        sqlx::query("UPDATE meta SET value = $1 WHERE name = $2")
            .bind(clear.expose().to_vec())
            .bind(name)
            .execute(&pool)
            .await
            .expect("clear secret");
    }
    let Server {
        running,
        config,
        dir,
        ..
    } = server;
    running.shutdown().await;

    let server = start(&dir, &pki, config.database.clone(), no_spacing).await;
    assert!(matches!(
        recover(&server.client(None), &server.url(""), keys("erin", 5)).await,
        Recovery::Recovered { .. }
    ));
    let id = Identifier::parse("erin").expect("id");
    let state = server
        .running
        .state
        .store
        .guess_state(&id)
        .await
        .expect("db");
    assert!(state.is_some(), "the counter followed the account");
    let vp = keys("erin", 5).verifier().expose().to_vec();
    for value in database_copy(&server).await {
        assert!(!contains(&value, b"erin"));
        assert!(!contains(&value, &vp));
    }
    server.running.shutdown().await;
}
