//! SIGKILL in the middle of registrations and recoveries: nothing acknowledged is lost,
//! nothing is half-written, counters survive the restart. Runs the real `keyserver` binary.
#![allow(missing_docs)]

mod common;

use common::*;
use stb_protocol::Identifier;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn spawn(dir: &Path, database: &str, port: u16) -> Child {
    // One owner registers many identifiers from one address.
    let config = dir.join("crash.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_identifiers_per_subscriber = 1000\n\
         recover_rate_per_source = 1000.0\nrecover_burst_per_source = 1000\n",
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyserver"));
    cmd.arg("--config").arg(config);
    cmd.arg("--data-dir").arg(dir);
    if !database.is_empty() {
        cmd.arg("--database").arg(database);
    }
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        "none",
    ])
    .arg("--operator-ca")
    .arg(dir.join("operator-ca.pem"))
    .args(["--min-spacing-secs", "0", "--max-failures", "1000"])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd.spawn().expect("spawn keyserver")
}

fn wait_started(child: &mut Child, port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    tokio::task::block_in_place(|| {
        stb_server_common::listener::wait_for_server(child, addr, Duration::from_secs(10))
    })
    .expect("keyserver did not start");
}

async fn kill_mid_flight(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("Crash Test CA");
    let database = database_for(db).await;
    let (config, server_cert) = config_in(dir.path(), &pki, database.clone());
    let port = stb_server_common::listener::free_loopback_port().expect("port");
    let base = format!("https://127.0.0.1:{port}");
    let client = client_for(&server_cert, None);
    let mut child = spawn(dir.path(), &database, port);
    wait_started(&mut child, port);

    // Phase 1: acknowledged registrations and counted wrong guesses.
    let owner = pki.client("crash-owner");
    for i in 0..12 {
        let reply = register(
            &server_cert,
            &format!("{base}/v1/register"),
            &owner,
            &keys(&format!("acked{i}"), 1),
        )
        .await;
        assert_eq!(reply.status, 201);
    }
    for i in 0..6 {
        assert!(matches!(
            recover(&client, &base, keys(&format!("acked{i}"), 9)).await,
            Recovery::WrongPassword { .. }
        ));
    }

    // Phase 2: a storm of registrations and recoveries, killed once some are acknowledged.
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut storm = Vec::new();
    for i in 0..60 {
        let (cert, base, acks) = (server_cert.clone(), base.clone(), acks.clone());
        let owner = ClientId {
            cert_pem: owner.cert_pem.clone(),
            key_pem: owner.key_pem.clone(),
            cert_der: owner.cert_der.clone(),
        };
        storm.push(tokio::spawn(async move {
            // Staggered so that the kill falls in the middle of the storm.
            tokio::time::sleep(Duration::from_millis(5 * i)).await;
            if i % 2 == 0 {
                let id = format!("storm{i}");
                let req = stb_protocol::RegisterRequest::new(
                    &keys(&id, 1),
                    &personal_data(&owner),
                    [0; 16],
                )
                .expect("req");
                let url = format!("{base}/v1/register");
                let acked = post(&client_for(&cert, Some(&owner)), &url, req.encode())
                    .await
                    .is_ok_and(|r| r.status == 201);
                if acked {
                    acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                (id, acked)
            } else {
                let keys = keys(&format!("acked{}", i % 12), 9);
                let (_, request) =
                    stb_protocol::ClientRecovery::start(keys, &mut stb_protocol::os_rng())
                        .expect("start");
                let _ = post(
                    &client_for(&cert, None),
                    &format!("{base}/v1/recover"),
                    request.encode(),
                )
                .await;
                (String::new(), false)
            }
        }));
    }
    for _ in 0..400 {
        if acks.load(std::sync::atomic::Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
    child.wait().expect("reap");
    let mut acked_storm = Vec::new();
    for t in storm {
        if let (id, true) = t.await.expect("storm task") {
            acked_storm.push(id);
        }
    }
    assert!(
        acked_storm.len() >= 3 && acked_storm.len() < 30,
        "kill did not land mid-storm"
    );
    eprintln!(
        "{} of 30 storm registrations acknowledged before the kill",
        acked_storm.len()
    );
    // Restart on the same data and check.
    let mut child = spawn(dir.path(), &database, port);
    wait_started(&mut child, port);
    let store =
        keyserver::store::Store::open(&config.database_url(), config.keyring().expect("KEK"))
            .await
            .expect("open");
    for i in 0..12 {
        let id = Identifier::parse(&format!("acked{i}")).expect("id");
        assert!(
            store.record(&id).await.expect("readable").is_some(),
            "acked{i} lost"
        );
    }
    for i in 0..6 {
        let id = Identifier::parse(&format!("acked{i}")).expect("id");
        assert!(
            store
                .guess_state(&id)
                .await
                .expect("db")
                .expect("row")
                .failures
                >= 1,
            "counter of acked{i} lost"
        );
    }
    for id in &acked_storm {
        let id = Identifier::parse(id).expect("id");
        assert!(
            store.record(&id).await.expect("readable").is_some(),
            "{id} acknowledged but lost"
        );
    }
    // Every stored account decodes whole: nothing half-written.
    for row in store.list(None).await.expect("list") {
        let id = Identifier::parse(&row.identifier).expect("id");
        assert!(store.record(&id).await.expect("record decodes").is_some());
    }
    // And the service works: a killed registration can be retried.
    let reply = register(
        &server_cert,
        &format!("{base}/v1/register"),
        &owner,
        &keys("storm0", 1),
    )
    .await;
    assert!(
        reply.status == 201 || reply.status == 200,
        "re-registration after the restart answered {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    assert!(matches!(
        recover(&client, &base, keys("acked0", 1)).await,
        Recovery::Recovered { .. }
    ));
    child.kill().expect("kill");
    child.wait().expect("reap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_sqlite() {
    kill_mid_flight(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_postgres() {
    kill_mid_flight(Db::Postgres).await;
}
