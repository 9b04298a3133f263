//! The harness of the content server's tests: an operator's server on loopback with a fresh
//! data directory, and boxes enrolled in it.
#![allow(dead_code)]

use content_server::catalogue::manifest_packages;
use content_server::config::Config;
use content_server::keys::OperatorKeys;
use content_server::routes::{EnrollRequest, EnrollResponse};
use content_server::server::Running;
use content_server::store::Store;
use std::net::IpAddr;
use std::path::Path;

pub(crate) struct Operator {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) config: Config,
    pub(crate) running: Running,
    pub(crate) store: Store,
    pub(crate) keys: OperatorKeys,
    pub(crate) ca_pem: String,
}

pub(crate) struct Box_ {
    pub(crate) identity_pem: String,
    pub(crate) enrolled: EnrollResponse,
}

pub(crate) fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../media-fixtures/channels.toml")
}

pub(crate) async fn operator(database: Option<String>) -> Operator {
    operator_with(database, |_| {}).await
}

pub(crate) async fn operator_with(
    database: Option<String>,
    tweak: impl FnOnce(&mut Config),
) -> Operator {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        enroll_listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_owned(),
        database: database.unwrap_or_default(),
        channels: fixtures(),
        enroll_max_failures: 5,
        ..Config::default()
    };
    tweak(&mut config);
    content_server::admin::init(&config, &[])
        .await
        .expect("init");
    let running = content_server::server::start(&config).await.expect("start");
    let store = Store::open(&config.database_url()).await.expect("store");
    let keys = OperatorKeys::load(&config.master_key_path()).expect("keys");
    let ca_pem = std::fs::read_to_string(config.ca_dir().join("ca.crt")).expect("ca");
    Operator {
        _dir: dir,
        config,
        running,
        store,
        keys,
        ca_pem,
    }
}

impl Operator {
    pub(crate) async fn add(&self, name: &str, package: &str) -> String {
        let packages = manifest_packages(&self.config.channels).expect("manifest");
        let (code, _) = content_server::admin::add_subscriber(
            &self.config,
            &self.store,
            &self.keys,
            &packages,
            name,
            package,
        )
        .await
        .expect("add subscriber");
        content_server::codes::display(&code)
    }

    pub(crate) fn client(&self, identity: Option<&str>) -> reqwest::Client {
        self.client_from(identity, None)
    }

    /// A client whose connections come from `source` (any 127.x.y.z is loopback).
    pub(crate) fn client_from(
        &self,
        identity: Option<&str>,
        source: Option<IpAddr>,
    ) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .local_address(source)
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca")]);
        if let Some(id) = identity {
            b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).expect("identity"));
        }
        b.build().expect("client")
    }

    /// Starts a new instance on the same data directory and database (new ports), then stops
    /// the old one: a restart, finding what the old one left on disk and in the database.
    pub(crate) async fn restart(&mut self) {
        let fresh = content_server::server::start(&self.config)
            .await
            .expect("restart");
        std::mem::replace(&mut self.running, fresh).shutdown().await;
    }

    pub(crate) fn enroll_url(&self) -> String {
        format!(
            "https://127.0.0.1:{}/v1/enroll",
            self.running.enroll_addr.port()
        )
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.running.addr.port())
    }

    /// Enrolls like a box: fresh P-256 key, CSR, code.
    pub(crate) async fn enroll(&self, code: &str) -> Result<Box_, (u16, String)> {
        self.enroll_from(code, None).await
    }

    /// Enrolls from the source address `source`.
    pub(crate) async fn enroll_from(
        &self,
        code: &str,
        source: Option<IpAddr>,
    ) -> Result<Box_, (u16, String)> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("csr");
        let body = EnrollRequest {
            code: code.into(),
            csr_pem: csr.pem().expect("pem"),
        };
        let r = self
            .client_from(None, source)
            .post(self.enroll_url())
            .json(&body)
            .send()
            .await
            .expect("enroll request");
        let status = r.status().as_u16();
        if status != 200 {
            return Err((status, r.text().await.unwrap_or_default()));
        }
        let enrolled: EnrollResponse = r.json().await.expect("json");
        Ok(Box_ {
            identity_pem: format!("{}{}", enrolled.certificate_pem, key.serialize_pem()),
            enrolled,
        })
    }

    pub(crate) async fn get(&self, b: &Box_, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .client(Some(&b.identity_pem))
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
    }
}

pub(crate) fn gst_decodes(ts: &[u8]) -> bool {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), ts).expect("write");
    // Bounded: on some random (encrypted) inputs tsdemux finds no stream and gst-launch waits
    // forever instead of failing; a hang counts as "does not decode".
    let status = std::process::Command::new("timeout")
        .args(["10", "gst-launch-1.0", "-q", "filesrc"])
        .arg(format!("location={}", file.path().display()))
        .args([
            "!",
            "tsdemux",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "video/x-raw",
            "!",
            "fakesink",
        ])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("gst-launch-1.0 runs (apt-get install gstreamer1.0-tools)");
    status.success()
}

/// The key of a segment with `header`, unwrapped from `license` with the box's KS, as a box
/// does.
pub(crate) fn segment_key(
    b: &Box_,
    license: &stb_protocol::License,
    header: &stb_protocol::SegmentHeader,
) -> stb_protocol::ChannelKey {
    use base64::Engine;
    let ks: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(&b.enrolled.ks_base64)
        .expect("b64")
        .try_into()
        .expect("32 bytes");
    let entry = license
        .entries
        .iter()
        .find(|e| e.channel == header.channel && e.key_id == header.key_id)
        .expect("the license has the segment's key");
    stb_protocol::LicenseKey::from_ks(&stb_protocol::SecretArray::new(ks))
        .unwrap(entry)
        .expect("unwrap")
}

/// The headers of the first `count` segments `/v1/channels/N/stream` sends, within 10 s.
pub(crate) async fn stream_headers(
    op: &Operator,
    b: &Box_,
    channel: u16,
    count: usize,
) -> Vec<stb_protocol::SegmentHeader> {
    use futures_util::StreamExt;
    let r = op
        .client(Some(&b.identity_pem))
        .get(op.url(&format!("/v1/channels/{channel}/stream")))
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut split = stb_protocol::SegmentSplitter::default();
    let mut headers = Vec::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while headers.len() < count {
        let chunk = tokio::time::timeout_at(until, body.next())
            .await
            .unwrap_or_else(|_| panic!("channel {channel}: only {} streamed", headers.len()));
        split.push(&chunk.expect("more").expect("chunk"));
        while let Some((h, _)) = split.next_segment().expect("valid segment") {
            headers.push(h);
        }
    }
    headers
}

/// A new, empty database on the test PostgreSQL cluster.
pub(crate) async fn fresh_postgres() -> String {
    let url = std::env::var("STB_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-cluster.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg("start")
            .output()
            .expect("pg cluster");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    });
    sqlx::any::install_default_drivers();
    let name = format!("cs_{}", hex::encode(stb_protocol::random_array::<6>()));
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create db");
    let (prefix, _) = url.rsplit_once('/').expect("url");
    format!("{prefix}/{name}")
}
