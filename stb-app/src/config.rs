//! Box configuration: where the key server and the enrollment desk are, what to trust, which
//! sinks to use. No subscriber data ever goes here.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `/etc/stb-app/config.toml`, or defaults for one machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoxConfig {
    /// Key server base URL.
    pub keyserver_url: String,
    /// PEM certificate(s) to trust for the key server.
    pub keyserver_ca: Option<PathBuf>,
    /// Content server enrollment base URL (first-run registration only).
    pub enroll_url: String,
    /// PEM certificate(s) to trust for enrollment (the operator CA).
    pub enroll_ca: Option<PathBuf>,
    /// `fakesink`, `autovideosink`, `kmssink`, or `appsink` (frames to the UI).
    pub video_sink: String,
    /// `fakesink` or `autoaudiosink`.
    pub audio_sink: String,
    /// Log out after this long without a key press (seconds, 0 = never).
    pub inactivity_timeout_secs: u64,
    /// Log out after this long in standby (seconds, 0 = never).
    pub standby_logout_secs: u64,
    /// POWER logs out instead of going to standby: a box shared by strangers (hotel room).
    pub hotel: bool,
    /// Keymap file (`KEY_*` names to actions); the built-in one when absent.
    pub keymap: Option<PathBuf>,
    /// Remote devices to read (evdev nodes, or FIFOs of raw input events); empty = every
    /// device that has remote keys, found automatically and again after a replug.
    pub input_devices: Vec<PathBuf>,
}

impl Default for BoxConfig {
    fn default() -> Self {
        Self {
            keyserver_url: "https://127.0.0.1:8444".into(),
            keyserver_ca: None,
            enroll_url: "https://127.0.0.1:8445".into(),
            enroll_ca: None,
            video_sink: "autovideosink".into(),
            audio_sink: "autoaudiosink".into(),
            inactivity_timeout_secs: 4 * 3600,
            standby_logout_secs: 4 * 3600,
            hotel: false,
            keymap: None,
            input_devices: vec![],
        }
    }
}

impl BoxConfig {
    /// When the UI's session ends by itself, and what POWER does.
    pub fn session_rules(&self) -> crate::ui::model::SessionRules {
        let secs = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        crate::ui::model::SessionRules {
            inactivity: secs(self.inactivity_timeout_secs),
            standby: secs(self.standby_logout_secs),
            power_logs_out: self.hotel,
        }
    }

    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// aws-lc (the TLS provider) seeds its random generator on first use: that took about 80 ms
/// here, and a login's first ClientHello waited for it. Done at start on a thread of its own,
/// it is over long before a viewer has typed a password. Dropping the guard waits for the
/// thread: a process that exits while aws-lc is still seeding runs its exit handlers under the
/// seeding thread's feet, and a short command (`screenshots`) once died of SIGABRT that way.
#[must_use = "dropping the guard waits for the warm-up"]
pub fn warm_up_tls() -> TlsWarmUp {
    TlsWarmUp(Some(std::thread::spawn(|| {
        let mut byte = [0u8; 1];
        let _ = aws_lc_rs::rand::fill(&mut byte);
    })))
}

/// The TLS warm-up thread; joined on drop (see [`warm_up_tls`]).
pub struct TlsWarmUp(Option<std::thread::JoinHandle<()>>);

impl Drop for TlsWarmUp {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// A reqwest client that trusts only the certificates in `ca_pem` (or the PEM file at `path`).
pub(crate) fn client_trusting(
    ca: Option<&Path>,
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client> {
    // Idle connections are dropped before the servers close them (an idle HTTP/1.1
    // connection after their header timeout, 10 s by default), so a request never goes out
    // on a connection being closed (a POST is not retried).
    let mut builder = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(20));
    if let Some(path) = ca {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem)?);
    }
    if let Some(id) = identity {
        builder = builder.identity(id);
    }
    Ok(builder.build()?)
}
