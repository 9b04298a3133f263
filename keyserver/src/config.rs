//! Configuration: a TOML file (for deployments) with command-line and environment overrides.
//! Every field has a default that works on one machine with no set-up.

use anyhow::Result;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration of one keyserver instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTPS listener for boxes.
    pub listen: SocketAddr,
    /// Plain-HTTP listener for `/metrics` and `/healthz` (keep it on a private address).
    pub admin_listen: Option<SocketAddr>,
    /// Directory for the SQLite database, the TLS key pair and the audit log.
    pub data_dir: PathBuf,
    /// `sqlite://PATH`, `postgres://...`, or empty for `DATA_DIR/keyserver.db`.
    pub database: String,
    /// Server certificate chain (PEM); default `DATA_DIR/tls/server.crt`.
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM); default `DATA_DIR/tls/server.key`.
    pub tls_key: Option<PathBuf>,
    /// Operator CA (PEM) that subscriber certificates chain to. Without it, registration is
    /// refused.
    pub operator_ca: Option<PathBuf>,
    /// Audit log (JSON lines); default `DATA_DIR/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// Guess limits.
    pub limits: Limits,
}

/// Guess limits and request bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Minimum seconds between two evaluated recoveries of one identifier.
    pub min_spacing_secs: u64,
    /// Consecutive unconfirmed recoveries that lock an identifier.
    pub max_failures: u32,
    /// Seconds a confirmation is accepted after its response.
    pub confirm_ttl_secs: u64,
    /// Whole-request timeout in seconds.
    pub request_timeout_secs: u64,
    /// TLS handshake timeout in seconds.
    pub handshake_timeout_secs: u64,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_spacing_secs: 10,
            max_failures: 10,
            confirm_ttl_secs: 120,
            request_timeout_secs: 10,
            handshake_timeout_secs: 10,
            max_body_bytes: 16 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            data_dir: PathBuf::from("keyserver-data"),
            database: String::new(),
            tls_cert: None,
            tls_key: None,
            operator_ca: None,
            audit_log: None,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        stb_service::load_toml(path)
    }

    /// The database URL to connect to.
    pub fn database_url(&self) -> String {
        stb_service::db::url_or_sqlite(&self.database, &self.data_dir, "keyserver.db")
    }

    /// Server certificate path.
    pub fn tls_cert_path(&self) -> PathBuf {
        self.tls_cert
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls/server.crt"))
    }

    /// Server key path.
    pub fn tls_key_path(&self) -> PathBuf {
        self.tls_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls/server.key"))
    }

    /// Audit log path.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.jsonl"))
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_secs)
    }
}
