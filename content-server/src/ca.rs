//! The operator certificate authority: subscriber certificates from CSRs, the server's own TLS
//! certificate, and what `init` writes to disk.

use crate::store::CrlEntry;
use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// A certificate issued to a subscriber.
#[derive(Debug, Clone)]
pub struct Issued {
    /// PEM.
    pub pem: String,
    /// DER.
    pub der: Vec<u8>,
    /// Serial number, lowercase hex (as `stb_server_common::tls::PeerCert::serial_hex`).
    pub serial_hex: String,
    /// Expiry, Unix ms.
    pub not_after_ms: i64,
}

/// The loaded CA.
pub struct OperatorCa {
    issuer: Issuer<'static, KeyPair>,
    /// CA certificate, PEM.
    pub cert_pem: String,
    /// CA certificate, DER.
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for OperatorCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorCa")
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = stb_protocol::random_array();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x10; // no leading zero byte, so the hex form is stable
    SerialNumber::from_slice(&bytes)
}

impl OperatorCa {
    /// Creates a new CA (P-256, 10 years) and writes `ca.crt` and `ca.key` (0600) in `dir`.
    pub fn create(dir: &Path, name: &str) -> Result<()> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        std::fs::create_dir_all(dir)?;
        stb_server_common::write_private(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
        std::fs::write(dir.join("ca.crt"), cert.pem())?;
        Ok(())
    }

    /// Loads `ca.crt` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cert_pem = std::fs::read_to_string(dir.join("ca.crt")).with_context(|| {
            format!(
                "reading {}/ca.crt (run `content-server init`)",
                dir.display()
            )
        })?;
        let key_pem = std::fs::read_to_string(dir.join("ca.key"))
            .with_context(|| format!("reading {}/ca.key", dir.display()))?;
        let key = KeyPair::from_pem(&key_pem).context("CA key")?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).context("CA certificate")?;
        let cert_der = stb_server_common::tls::load_certs(&dir.join("ca.crt"))?
            .remove(0)
            .as_ref()
            .to_vec();
        Ok(Self {
            issuer,
            cert_pem,
            cert_der,
        })
    }

    /// Issues the server's TLS certificate for `names` and returns (chain PEM, key PEM).
    pub fn server_certificate(&self, names: &[String]) -> Result<(String, String)> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "stb content server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(825);
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((
            format!("{}{}", cert.pem(), self.cert_pem),
            key.serialize_pem(),
        ))
    }

    /// Signs a subscriber's CSR. Only the public key is taken from it: the subject (CN = the
    /// subscriber's name), the validity and the extensions are the operator's.
    pub fn sign_csr(&self, csr_pem: &str, subscriber: &str, days: i64) -> Result<Issued> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).context("CSR")?;
        let now = OffsetDateTime::now_utc();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, subscriber);
        dn.push(DnType::OrganizationalUnitName, "STB subscribers");
        let serial = random_serial();
        let serial_hex = serial.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn;
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        params.serial_number = Some(serial);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.is_ca = IsCa::ExplicitNoCa;
        csr.params = params;
        let cert = csr.signed_by(&self.issuer)?;
        Ok(Issued {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            serial_hex,
            not_after_ms: (now + Duration::days(days)).unix_timestamp() * 1000,
        })
    }

    /// A CRL (DER) listing `entries`, valid from `now_ms` for `validity_secs`. Its number is
    /// the issue time in milliseconds, so it increases with every list.
    pub fn crl(&self, entries: &[CrlEntry], now_ms: i64, validity_secs: i64) -> Result<Vec<u8>> {
        let at = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .context("time out of range")
        };
        let now = at(now_ms)?;
        let revoked_certs = entries
            .iter()
            .map(|e| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(
                        &hex::decode(&e.serial_hex).context("certificate serial in database")?,
                    ),
                    revocation_time: at(e.since_ms)?,
                    reason_code: Some(if e.on_hold {
                        RevocationReason::CertificateHold
                    } else {
                        RevocationReason::CessationOfOperation
                    }),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::seconds(validity_secs.max(60)),
            crl_number: SerialNumber::from_slice(&now_ms.max(1).to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.der().to_vec())
    }
}
