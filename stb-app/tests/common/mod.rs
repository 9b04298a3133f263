//! The real key server and content server in-process on loopback, with a subscriber waiting
//! to register (shared by the box tests).
#![allow(dead_code, unreachable_pub)]

use stb_app::config::BoxConfig;
use std::path::{Path, PathBuf};

pub struct Stack {
    pub _dir: tempfile::TempDir,
    pub content_config: content_server::config::Config,
    pub content: Option<content_server::server::Running>,
    pub keyserver: keyserver::server::Running,
    pub box_config: BoxConfig,
    pub data_dir: PathBuf,
}

pub const PASSWORD: &str = "Sofa-remote#2026!";

pub async fn stack() -> (Stack, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let port = stb_server_common::listener::free_loopback_port().expect("port");
    let content_config = content_server::config::Config {
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
        enroll_listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: root.join("content"),
        channels: Path::new(env!("CARGO_MANIFEST_DIR")).join("../media-fixtures/channels.toml"),
        public_url: format!("https://127.0.0.1:{port}"),
        ..Default::default()
    };
    content_server::admin::init(&content_config, &[])
        .await
        .expect("content init");
    let store = content_server::store::Store::open(&content_config.database_url())
        .await
        .expect("store");
    let keys =
        content_server::keys::OperatorKeys::load(&content_config.master_key_path()).expect("keys");
    let packages =
        content_server::catalogue::manifest_packages(&content_config.channels).expect("manifest");
    let (code, _) = content_server::admin::add_subscriber(
        &content_config,
        &store,
        &keys,
        &packages,
        "Alice Martin",
        "basic",
    )
    .await
    .expect("subscriber");
    let content = content_server::server::start(&content_config)
        .await
        .expect("content server");

    let ks_dir = root.join("keyserver");
    std::fs::create_dir_all(ks_dir.join("tls")).expect("mkdir");
    let (cert, key) = stb_server_common::tls::self_signed(&["127.0.0.1".into()]).expect("cert");
    std::fs::write(ks_dir.join("tls/server.crt"), &cert).expect("write");
    std::fs::write(ks_dir.join("tls/server.key"), key).expect("write");
    let ks_config = keyserver::config::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: None,
        data_dir: ks_dir.clone(),
        operator_ca: Some(content_config.ca_dir().join("ca.crt")),
        ..Default::default()
    };
    let keyserver = keyserver::server::start(&ks_config)
        .await
        .expect("keyserver");
    let box_config = BoxConfig {
        keyserver_url: format!("https://127.0.0.1:{}", keyserver.addr.port()),
        keyserver_ca: Some(ks_dir.join("tls/server.crt")),
        enroll_url: format!("https://127.0.0.1:{}", content.enroll_addr.port()),
        enroll_ca: Some(content_config.ca_dir().join("ca.crt")),
        video_sink: "fakesink".into(),
        audio_sink: "fakesink".into(),
        ..Default::default()
    };
    let data_dir = root.join("box");
    std::fs::create_dir_all(&data_dir).expect("box dir");
    (
        Stack {
            _dir: dir,
            content_config,
            content: Some(content),
            keyserver,
            box_config,
            data_dir,
        },
        code,
    )
}
