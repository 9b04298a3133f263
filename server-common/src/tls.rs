//! TLS: loading PEM files, rustls server configurations (aws-lc-rs), a self-signed key pair
//! for first starts, and the fields of a client certificate the servers act on.

use anyhow::{Context, Result};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider of the whole workspace (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The servers' provider: AES-128-GCM with SHA-256 first. Clients (rustls, curl) list
/// AES-256-GCM with SHA-384 first, whose handshake hashes run without the SHA extensions
/// that SHA-256 has on x86 and ARMv8 (3-4 % of the key server's CPU per recovery) and
/// whose bulk encryption is slower for the content server's segments; AES-128 matches the
/// 128-bit strength of the key exchange (X25519, P-256) anyway. The servers choose.
fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider};
    let mut provider = default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != cipher_suite::TLS13_AES_128_GCM_SHA256.suite());
    Arc::new(provider)
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// Reads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading private key from {}", path.display()))
}

/// Whether and how a server asks for client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Server authentication only.
    None,
    /// A certificate is verified against these roots when the client sends one; clients
    /// without one are admitted (the handler decides).
    Optional(Vec<CertificateDer<'static>>),
    /// The handshake fails without a certificate chaining to these roots.
    Required(Vec<CertificateDer<'static>>),
}

/// Server configuration from a certificate chain and key, with the given client auth.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(server_provider())
        .with_safe_default_protocol_versions()?;
    let roots = |certs: Vec<CertificateDer<'static>>| -> Result<Arc<RootCertStore>> {
        let mut store = RootCertStore::empty();
        for cert in certs {
            store.add(cert).context("client CA certificate")?;
        }
        Ok(Arc::new(store))
    };
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(certs) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(certs)?, provider())
                .allow_unauthenticated()
                .build()?,
        ),
        ClientAuth::Required(certs) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(certs)?, provider()).build()?,
        ),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("server key pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    Ok(config)
}

/// A self-signed certificate for `names` (DNS names or IP addresses) and its key, as PEM.
pub fn self_signed(names: &[String]) -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "stb keyserver");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What the servers need to know of a (verified) client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// Subject name, DER: what ownership is bound to.
    pub subject_der: Vec<u8>,
    /// Subject name, readable (RFC 4514 style).
    pub subject: String,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Serial number: lowercase hex of its DER content bytes.
    pub serial_hex: String,
}

/// Parses a client certificate.
pub fn peer_cert(cert: &CertificateDer<'_>) -> Result<PeerCert> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| anyhow::anyhow!("client certificate does not parse: {e}"))?;
    let subject = parsed.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(PeerCert {
        subject_der: subject.as_raw().to_vec(),
        subject: subject.to_string(),
        common_name,
        serial_hex: parsed
            .tbs_certificate
            .raw_serial_as_string()
            .replace(':', ""),
    })
}
