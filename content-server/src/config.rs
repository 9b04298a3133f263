//! Configuration: TOML file plus command-line overrides; defaults run on one machine.

use anyhow::Result;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The content server's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Mutual-TLS listener: channel list, licenses, segments, streams.
    pub listen: SocketAddr,
    /// Server-authenticated TLS listener: enrollment.
    pub enroll_listen: SocketAddr,
    /// Data directory: CA, TLS key pair, master key, SQLite database.
    pub data_dir: PathBuf,
    /// `sqlite://PATH`, `postgres://...`, or empty for `DATA_DIR/content.db`.
    pub database: String,
    /// Channel manifest (TOML); fixture files are relative to it.
    pub channels: PathBuf,
    /// XMLTV guide file, re-read when it changes; empty for `DATA_DIR/guide.xml`.
    pub guide: PathBuf,
    /// How often the guide file is checked for a change, seconds.
    pub guide_refresh_secs: u64,
    /// Days ahead of the test guide the server writes to `guide` for the manifest's channels
    /// that have a genre (rewritten every 6 hours); 0 when the operator supplies the guide.
    pub test_guide_days: u32,
    /// URL boxes use to reach this server (goes into their personal data).
    pub public_url: String,
    /// Key server URL handed to boxes at enrollment.
    pub keyserver_url: String,
    /// The HTTP cache boxes fetch segments from (its `https://` URL and port); empty:
    /// boxes stream from this server.
    pub edge_url: String,
    /// How long a box's segment token for the edge is valid, seconds: a revocation reaches
    /// the edge within this.
    pub edge_token_secs: u64,
    /// How long a live input may send nothing before its channel airs the slate, ms.
    pub input_loss_ms: u64,
    /// Channel key epoch length, seconds.
    pub epoch_secs: u64,
    /// Subscriber certificate validity, days.
    pub certificate_days: i64,
    /// Enrollment code validity, hours.
    pub code_ttl_hours: i64,
    /// Failed enrollments per address within the window before a pause.
    pub enroll_max_failures: i64,
    /// Failed enrollments per network (IPv4 /24, IPv6 /48) within the window.
    pub enroll_max_failures_per_network: i64,
    /// Failed attempts on one code (used, expired) within the window.
    pub enroll_max_failures_per_code: i64,
    /// Failed enrollments from everywhere within the window, before enrollment pauses for
    /// all (a distributed code guess; the operator is alerted by the log).
    pub enroll_max_failures_global: i64,
    /// Length of that window, seconds.
    pub enroll_window_secs: i64,
    /// Validity of the revocation list served at `/v1/crl`, seconds: a key server that
    /// cannot fetch a newer one stops accepting registrations after this.
    pub crl_validity_secs: i64,
    /// How long a CRL once made is served again, seconds.
    pub crl_cache_secs: i64,
    /// Whole-request timeout (time to the response head; streams then run on), seconds.
    pub request_timeout_secs: u64,
    /// Connection time limits and caps, per listener.
    pub connections: stb_server_common::gate::ConnectionLimits,
    /// Where the subscribers' locker objects live on disk; empty for `DATA_DIR/locker`.
    pub locker_dir: PathBuf,
    /// Every subscriber's locker quota, MiB, unless the operator set another for them
    /// (`subscriber quota`).
    pub locker_quota_mb: u64,
    /// An unfinished locker upload untouched this long, seconds, is deleted by the sweep.
    pub locker_upload_idle_secs: u64,
    /// Whole-request timeout of the locker's requests, seconds: an upload request carries up
    /// to 16 MiB, which a box's uplink may take minutes to send (stalled connections are
    /// still closed by `connections.idle_timeout_secs`).
    pub locker_request_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            enroll_listen: SocketAddr::from(([127, 0, 0, 1], 8445)),
            data_dir: PathBuf::from("content-data"),
            database: String::new(),
            channels: PathBuf::from("media-fixtures/channels.toml"),
            guide: PathBuf::new(),
            guide_refresh_secs: 60,
            test_guide_days: 7,
            public_url: "https://127.0.0.1:8443".into(),
            keyserver_url: "https://127.0.0.1:8444".into(),
            edge_url: String::new(),
            edge_token_secs: 60,
            input_loss_ms: 2000,
            epoch_secs: 3600,
            certificate_days: 365,
            code_ttl_hours: 72,
            enroll_max_failures: 10,
            enroll_max_failures_per_network: 30,
            enroll_max_failures_per_code: 5,
            enroll_max_failures_global: 500,
            enroll_window_secs: 900,
            crl_validity_secs: 3600,
            crl_cache_secs: 10,
            request_timeout_secs: 10,
            // Boxes of a hotel or a carrier-grade NAT share one address, and each playing box
            // holds a connection here: a larger share per source than the key server's.
            connections: stb_server_common::gate::ConnectionLimits {
                max_connections_per_source: 1024,
                ..stb_server_common::gate::ConnectionLimits::default()
            },
            locker_dir: PathBuf::new(),
            locker_quota_mb: 10_240,
            locker_upload_idle_secs: 86_400,
            locker_request_timeout_secs: 300,
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        stb_server_common::load_toml(path)
    }

    /// Database URL.
    pub fn database_url(&self) -> String {
        stb_server_common::db::url_or_sqlite(&self.database, &self.data_dir, "content.db")
    }

    /// The XMLTV guide file.
    pub fn guide_path(&self) -> PathBuf {
        if self.guide.as_os_str().is_empty() {
            self.data_dir.join("guide.xml")
        } else {
            self.guide.clone()
        }
    }

    /// The locker's directory.
    pub fn locker_dir(&self) -> PathBuf {
        if self.locker_dir.as_os_str().is_empty() {
            self.data_dir.join("locker")
        } else {
            self.locker_dir.clone()
        }
    }

    /// The locker quota of a subscriber without one of their own, bytes.
    pub fn locker_quota_bytes(&self) -> u64 {
        self.locker_quota_mb.saturating_mul(1 << 20)
    }

    /// CA directory.
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir.join("ca")
    }

    /// Master key file.
    pub fn master_key_path(&self) -> PathBuf {
        self.data_dir.join("secrets/master.key")
    }

    /// TLS chain and key.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.data_dir.join("tls/server.crt"),
            self.data_dir.join("tls/server.key"),
        )
    }

    /// Epoch of a wall-clock instant.
    pub fn epoch_of(&self, ms: i64) -> u32 {
        (ms.max(0) as u64 / (self.epoch_secs.max(1) * 1000)) as u32
    }

    /// Validity of an epoch, Unix seconds `[start, end)`.
    pub fn epoch_validity(&self, epoch: u32) -> (u64, u64) {
        let len = self.epoch_secs.max(1);
        (u64::from(epoch) * len, (u64::from(epoch) + 1) * len)
    }
}
