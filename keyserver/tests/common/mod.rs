//! Test harness: an operator PKI, key servers on loopback over real TLS, SQLite or a real
//! PostgreSQL (the cluster from scripts/pg-test-cluster.sh, started on demand).

#![allow(dead_code, unreachable_pub, missing_docs, unused_macros)]

use keyserver::config::Config;
use keyserver::server::Running;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use stb_protocol::eke::RecoverResponse;
use stb_protocol::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Runs an async test body once per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Db::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Db::Postgres).await })*
        }
    };
}

/// A fresh operator PKI and a key server on a fresh database of `db`, configured by `tweak`.
pub async fn setup(db: Db, tweak: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Pki, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new("Test Operator CA");
    let database = database_for(db).await;
    let server = start(dir.path(), &pki, database, tweak).await;
    (dir, pki, server)
}

pub struct Pki {
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

pub struct ClientId {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self {
            ca: CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    pub fn client(&self, subject: &str) -> ClientId {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, subject);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        ClientId {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// URL of the shared PostgreSQL test cluster, started once per test binary.
pub fn postgres_base_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("STB_TEST_POSTGRES_URL") {
            return url;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-cluster.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg("start")
            .output()
            .expect("run pg-test-cluster.sh");
        assert!(
            out.status.success(),
            "PostgreSQL test cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    })
}

/// A fresh database on the test cluster.
pub async fn fresh_postgres_db() -> String {
    sqlx::any::install_default_drivers();
    let base = postgres_base_url();
    let name = format!("ks_{}", hex::encode(random_array::<6>()));
    let pool = sqlx::AnyPool::connect(base)
        .await
        .expect("connect to postgres");
    let sql = format!("CREATE DATABASE {name}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let (prefix, _) = base.rsplit_once('/').expect("url with database");
    format!("{prefix}/{name}")
}

pub struct Server {
    pub running: Running,
    pub config: Config,
    pub dir: PathBuf,
    pub server_cert_pem: String,
}

/// Writes TLS files and the operator CA into `dir` and returns a config for it.
pub fn config_in(dir: &Path, pki: &Pki, database: String) -> (Config, String) {
    let (cert, key) =
        stb_server_common::tls::self_signed(&["127.0.0.1".into(), "localhost".into()])
            .expect("self-signed");
    std::fs::create_dir_all(dir.join("tls")).expect("mkdir");
    std::fs::write(dir.join("tls/server.crt"), &cert).expect("write cert");
    std::fs::write(dir.join("tls/server.key"), key).expect("write key");
    std::fs::write(dir.join("operator-ca.pem"), pki.ca_pem()).expect("write ca");
    let kek = dir.join("secrets/kek.key");
    if !kek.exists() {
        keyserver::kek::Kek::create(&kek).expect("KEK");
    }
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: Some("127.0.0.1:0".parse().expect("addr")),
        data_dir: dir.to_owned(),
        database,
        operator_ca: Some(dir.join("operator-ca.pem")),
        ..Config::default()
    };
    // Tests recover many times from one address; the rate test sets its own.
    let mut config = config;
    config.limits.recover_rate_per_source = 1000.0;
    config.limits.recover_burst_per_source = 1000;
    (config, cert)
}

pub async fn database_for(db: Db) -> String {
    match db {
        Db::Sqlite => String::new(),
        Db::Postgres => fresh_postgres_db().await,
    }
}

pub async fn start(
    dir: &Path,
    pki: &Pki,
    database: String,
    tweak: impl FnOnce(&mut Config),
) -> Server {
    let (mut config, server_cert_pem) = config_in(dir, pki, database);
    tweak(&mut config);
    let running = keyserver::server::start(&config)
        .await
        .expect("server starts");
    Server {
        running,
        config,
        dir: dir.to_owned(),
        server_cert_pem,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.running.addr.port())
    }

    pub fn client(&self, id: Option<&ClientId>) -> reqwest::Client {
        client_for(&self.server_cert_pem, id)
    }

    /// Registers identifier `id` with the key `[kp; 32]` under `owner`'s certificate.
    pub async fn register(&self, owner: &ClientId, id: &str, kp: u8) -> Reply {
        register(
            &self.server_cert_pem,
            &self.url("/v1/register"),
            owner,
            &keys(id, kp),
        )
        .await
    }
}

pub fn client_for(server_cert_pem: &str, id: Option<&ClientId>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(
            [reqwest::Certificate::from_pem(server_cert_pem.as_bytes()).expect("cert")],
        );
    if let Some(id) = id {
        let pem = format!("{}{}", id.cert_pem, id.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<Reply, reqwest::Error> {
    let r = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, keyserver::routes::MEDIA_TYPE)
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok(Reply {
        status,
        retry_after,
        body: r.bytes().await?.to_vec(),
    })
}

pub fn keys(id: &str, kp: u8) -> PasswordKeys {
    let id = Identifier::parse(id).expect("id");
    PasswordKeys::from_kp(Suite::V1, &id, &SecretArray::new([kp; 32]))
}

pub fn personal_data(client: &ClientId) -> PersonalData {
    PersonalData {
        account: "Test Subscriber".into(),
        certificate_der: client.cert_der.clone(),
        private_key_pkcs8: SecretVec::new(vec![1; 138]),
        ks: SecretArray::new([2; 32]),
        content_server_url: "https://127.0.0.1:8443".into(),
        operator_ca_der: vec![3; 300],
        keyserver_url: "https://127.0.0.1:8444".into(),
        locker_key: None,
    }
}

pub async fn register(
    server_cert: &str,
    url: &str,
    owner: &ClientId,
    keys: &PasswordKeys,
) -> Reply {
    let req = RegisterRequest::new(keys, &personal_data(owner), random_array()).expect("register");
    post(&client_for(server_cert, Some(owner)), url, req.encode())
        .await
        .expect("register request")
}

pub enum Recovery {
    Recovered {
        data: Box<PersonalData>,
        confirm: Confirm,
    },
    WrongPassword {
        response_len: usize,
    },
    Refused(Reply),
}

/// One recovery as a box does it (without the confirmation).
pub async fn recover(client: &reqwest::Client, base: &str, keys: PasswordKeys) -> Recovery {
    let (state, request) = ClientRecovery::start(keys, &mut os_rng()).expect("start");
    let reply = post(client, &format!("{base}/v1/recover"), request.encode())
        .await
        .expect("recover");
    if reply.status != 200 {
        return Recovery::Refused(reply);
    }
    let response = RecoverResponse::decode(&reply.body).expect("response decodes");
    match state.finish(&response) {
        Ok((data, confirm)) => Recovery::Recovered {
            data: Box::new(data),
            confirm,
        },
        Err(Error::AuthenticationFailed) => Recovery::WrongPassword {
            response_len: reply.body.len(),
        },
        Err(e) => panic!("unexpected client error {e}"),
    }
}
