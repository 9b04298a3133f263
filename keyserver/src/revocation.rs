//! The standing of subscriber certificates, from the operator's certificate revocation list.
//!
//! Why a CRL and not a query to the content server per registration: the CRL is the
//! operator CA's own signed statement (RFC 5280), so the key server needs no new trust, no
//! new protocol and no online dependency on every request: it keeps the last good list and
//! fetches a new one every `crl_refresh_secs`. Suspension is the standard `certificateHold`
//! reason (lifted by dropping the entry), revocation any other reason. A list older than its
//! own `nextUpdate` is not trusted: registration then fails closed (503) until a fresh one
//! arrives; recoveries never depend on it.

use anyhow::{Context, Result, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::ReasonCode;

/// What the list says of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Not listed.
    Good,
    /// Listed on hold: the subscriber is suspended.
    Suspended,
    /// Listed for good.
    Revoked,
    /// No list in force (none fetched yet, or past its `nextUpdate`).
    Unknown(&'static str),
}

/// Where the list comes from.
#[derive(Debug, Clone)]
enum Source {
    Url(String),
    File(PathBuf),
}

#[derive(Debug)]
struct Loaded {
    /// Serial (lowercase hex of its DER content bytes, as `PeerCert::serial_hex`) -> on hold.
    listed: HashMap<String, bool>,
    this_update: i64,
    next_update: i64,
}

/// The operator CRL in force, refreshed from its source.
#[derive(Debug)]
pub struct Revocation {
    source: Source,
    ca_der: Vec<u8>,
    http: reqwest::Client,
    current: RwLock<Option<Loaded>>,
}

impl Revocation {
    /// A list from `source` (`https://...` or a file path) signed by the CA `ca` (PEM file
    /// content, first certificate). Nothing is loaded until [`Revocation::refresh`].
    pub fn new(source: &str, ca: &[CertificateDer<'static>]) -> Result<Self> {
        let ca_der = ca.first().context("operator CA")?.as_ref().to_vec();
        let roots = ca
            .iter()
            .map(|c| reqwest::Certificate::from_der(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let source = if source.starts_with("https://") || source.starts_with("http://") {
            Source::Url(source.to_owned())
        } else {
            Source::File(PathBuf::from(source))
        };
        Ok(Self {
            source,
            ca_der,
            http: reqwest::Client::builder()
                .tls_certs_only(roots)
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            current: RwLock::new(None),
        })
    }

    /// Fetches the list and puts it in force if it is signed by the operator CA and not
    /// older than the one in force (a replayed old list cannot lift a revocation).
    pub async fn refresh(&self, now_ms: i64) -> Result<()> {
        let bytes = match &self.source {
            Source::Url(url) => {
                let reply = self.http.get(url).send().await?.error_for_status()?;
                reply.bytes().await?.to_vec()
            }
            Source::File(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("reading {}", path.display()))?,
        };
        let loaded = self.parse(&bytes, now_ms)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.as_ref()
            && loaded.this_update < old.this_update
        {
            bail!("the operator CRL offered is older than the one in force");
        }
        tracing::debug!(
            listed = loaded.listed.len(),
            next_update = loaded.next_update,
            "operator CRL in force"
        );
        *current = Some(loaded);
        Ok(())
    }

    fn parse(&self, bytes: &[u8], now_ms: i64) -> Result<Loaded> {
        let der = if bytes.starts_with(b"-----BEGIN") {
            CertificateRevocationListDer::from_pem_slice(bytes)
                .context("operator CRL: bad PEM")?
                .as_ref()
                .to_vec()
        } else {
            bytes.to_vec()
        };
        let (_, crl) = x509_parser::parse_x509_crl(&der)
            .map_err(|e| anyhow::anyhow!("operator CRL does not parse: {e}"))?;
        let (_, ca) = X509Certificate::from_der(&self.ca_der)
            .map_err(|e| anyhow::anyhow!("operator CA does not parse: {e}"))?;
        anyhow::ensure!(
            crl.issuer() == ca.subject(),
            "the CRL is not issued by the operator CA"
        );
        crl.verify_signature(ca.public_key())
            .map_err(|e| anyhow::anyhow!("operator CRL signature: {e}"))?;
        let this_update = crl.last_update().timestamp() * 1000;
        let next_update = crl
            .next_update()
            .context("operator CRL without nextUpdate")?
            .timestamp()
            * 1000;
        anyhow::ensure!(next_update > now_ms, "operator CRL is out of date");
        let listed = crl
            .iter_revoked_certificates()
            .map(|entry| {
                let hold = entry
                    .reason_code()
                    .is_some_and(|(_, r)| r == ReasonCode::CertificateHold);
                (hex::encode(entry.raw_serial()), hold)
            })
            .collect();
        Ok(Loaded {
            listed,
            this_update,
            next_update,
        })
    }

    /// Whether a list was ever put in force.
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The standing of the certificate with serial `serial_hex` at `now_ms`.
    pub fn standing(&self, serial_hex: &str, now_ms: i64) -> Standing {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        match current.as_ref() {
            None => Standing::Unknown("no revocation list from the operator yet"),
            Some(list) if list.next_update <= now_ms => {
                Standing::Unknown("the operator's revocation list is out of date")
            }
            Some(list) => match list.listed.get(serial_hex) {
                None => Standing::Good,
                Some(true) => Standing::Suspended,
                Some(false) => Standing::Revoked,
            },
        }
    }
}
