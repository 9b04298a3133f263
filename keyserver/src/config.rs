//! Configuration: a TOML file (for deployments) with command-line and environment overrides.
//! Every field has a default that works on one machine with no set-up.

use crate::kek::{Kek, Keyring};
use anyhow::Result;
use serde::Deserialize;
use stb_server_common::gate::ConnectionLimits;
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
    /// The operator's certificate revocation list: an `https://` URL (the content server's
    /// `/v1/crl`, fetched trusting `operator_ca`) or a file. With it, registrations from
    /// revoked or suspended subscribers are refused; without it, standing is not checked.
    pub operator_crl: Option<String>,
    /// Audit log (JSON lines); default `DATA_DIR/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// The key-encryption key (32 bytes, mode 0600) that wraps VP, the sealed records and
    /// the server secrets in the database; keep it out of the database's backups. Default:
    /// the systemd credential `kek` (`LoadCredential=kek:...`) when the service has one,
    /// else `DATA_DIR/secrets/kek.key`.
    pub kek_file: Option<PathBuf>,
    /// Further KEKs that only unwrap, during a rotation (docs/keyserver.md).
    pub extra_kek_files: Vec<PathBuf>,
    /// Guess limits.
    pub limits: Limits,
    /// Connection time limits and caps.
    pub connections: ConnectionLimits,
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
    /// Unconfirmed recoveries within `long_window_secs` that lock an identifier. Unlike
    /// `max_failures`, a successful login does not reset this count, so guesses interleaved
    /// with the owner's logins are bounded too.
    pub max_failures_long: u32,
    /// The long window, seconds; also how long an idle counter row is kept.
    pub long_window_secs: u64,
    /// How often counter rows idle for longer than the long window are deleted, seconds.
    pub prune_interval_secs: u64,
    /// Recoveries per second one source (IPv4 address or IPv6 /64) may start, sustained.
    pub recover_rate_per_source: f64,
    /// Recoveries one source may start in a burst.
    pub recover_burst_per_source: u32,
    /// Identifiers one subscriber (certificate subject) may hold.
    pub max_identifiers_per_subscriber: u32,
    /// Registrations of identifiers held by someone else that one subscriber may attempt
    /// within `probe_window_secs`, before registration is refused to it for the window.
    pub max_taken_per_subscriber: u32,
    /// That window, seconds.
    pub probe_window_secs: u64,
    /// How often the operator CRL is fetched again, seconds.
    pub crl_refresh_secs: u64,
    /// Whole-request timeout in seconds.
    pub request_timeout_secs: u64,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_spacing_secs: 10,
            max_failures: 10,
            confirm_ttl_secs: 120,
            max_failures_long: 20,
            long_window_secs: 86_400,
            prune_interval_secs: 600,
            recover_rate_per_source: 2.0,
            recover_burst_per_source: 30,
            max_identifiers_per_subscriber: 5,
            max_taken_per_subscriber: 10,
            probe_window_secs: 86_400,
            crl_refresh_secs: 60,
            request_timeout_secs: 10,
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
            operator_crl: None,
            audit_log: None,
            kek_file: None,
            extra_kek_files: Vec::new(),
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        stb_server_common::load_toml(path)
    }

    /// The database URL to connect to.
    pub fn database_url(&self) -> String {
        stb_server_common::db::url_or_sqlite(&self.database, &self.data_dir, "keyserver.db")
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

    /// Where the KEK is read from.
    pub fn kek_path(&self) -> PathBuf {
        if let Some(path) = &self.kek_file {
            return path.clone();
        }
        match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if Path::new(&dir).join("kek").exists() => Path::new(&dir).join("kek"),
            _ => self.data_dir.join("secrets/kek.key"),
        }
    }

    /// Loads the KEK and the extra ones.
    pub fn keyring(&self) -> Result<Keyring> {
        let current = Kek::load(&self.kek_path())?;
        let others = self
            .extra_kek_files
            .iter()
            .map(|p| Kek::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::new(current, others))
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_secs)
    }
}
