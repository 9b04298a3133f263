//! The audit log: one JSON object per line, never a secret. Identifiers appear only as a keyed
//! hash (HMAC-SHA256 under a key derived from the server secret, 16 bytes in hex), so the log
//! can be shipped to a monitoring system without listing who the subscribers are.

use anyhow::{Context, Result};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use stb_protocol::Identifier;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// Unix time in milliseconds.
    pub ts_ms: i64,
    /// `register`, `recover`, `confirm`, `lock`, `unlock`, `delete`.
    pub event: String,
    /// Keyed hash of the identifier.
    pub id: String,
    /// Peer address (absent for operator commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    /// Keyed hash of the client certificate's subject (registrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What happened, e.g. `answered`, `too_soon`, `locked`, `confirmed`, `rejected`.
    pub outcome: String,
}

/// Appends events to the log file.
#[derive(Debug)]
pub struct AuditLog {
    file: Mutex<File>,
    key: [u8; 32],
}

impl AuditLog {
    /// Opens (creating) the log for appending; `key` hashes identifiers.
    pub fn open(path: &Path, key: [u8; 32]) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening audit log {}", path.display()))?;
        Ok(Self {
            file: Mutex::new(file),
            key,
        })
    }

    /// The keyed hash of an identifier as it appears in the log.
    pub fn id_hash(&self, id: &Identifier) -> String {
        self.keyed_hash(id.as_bytes())
    }

    fn keyed_hash(&self, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(bytes);
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Writes one event as one `write` of one line (atomic for O_APPEND files). A failure to
    /// write is logged, not fatal: refusing service would help an attacker fill the disk.
    /// `subject` is the DER subject of the client certificate, logged as a keyed hash.
    pub fn record(
        &self,
        event: &str,
        id: &Identifier,
        peer: Option<IpAddr>,
        subject: Option<&[u8]>,
        outcome: &str,
    ) {
        let ev = Event {
            ts_ms: crate::now_ms(),
            event: event.to_owned(),
            id: self.id_hash(id),
            peer,
            subject: subject.map(|s| self.keyed_hash(s)),
            outcome: outcome.to_owned(),
        };
        let mut line = serde_json::to_string(&ev).unwrap_or_default();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::error!(target: "audit", error = %e, "audit log write failed");
        }
    }
}
