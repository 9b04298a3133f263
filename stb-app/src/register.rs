//! Registration, the origin document's registration application: enrollment code -> key pair
//! made on the box -> CSR -> certificate A and KS from the operator -> password (policy,
//! entered twice) -> D sealed under KP -> upload to the key server -> everything erased.

use crate::config::{BoxConfig, client_trusting};
use crate::keyserver_client::KeyServer;
use crate::session::identity;
use base64::Engine;
use stb_protocol::content_api::{EnrollRequest, EnrollResponse};
use stb_protocol::identifier::IdentifierError;
use stb_protocol::password::{PolicyViolation, check_policy};
use stb_protocol::{
    Identifier, Password, PasswordKeys, PersonalData, RegisterRequest, SecretArray, SecretVec,
    Suite,
};
use thiserror::Error;
use zeroize::Zeroizing;

/// Why a registration did not work (the UI and the desk's command turn it into words).
#[derive(Debug, Error)]
pub enum RegisterError {
    /// The box's own configuration is unusable (a trust file missing or unreadable).
    #[error("this box is not set up correctly: {0}")]
    Configuration(String),
    /// The operator's enrollment service could not be reached.
    #[error("cannot reach the operator's enrollment service")]
    EnrollmentUnreachable(#[source] reqwest::Error),
    /// The operator refused the code, with its reason.
    #[error("{0}")]
    EnrollmentRefused(String),
    /// The enrollment answer could not be read.
    #[error("unexpected enrollment answer: {0}")]
    EnrollmentAnswer(String),
    /// The identifier is not valid.
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
    /// The password breaks the policy, or the two entries differ.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    /// Making the key pair, the CSR or the sealed record failed on the box.
    #[error("the box could not make its keys: {0}")]
    Keys(String),
    /// The key server could not be reached.
    #[error("cannot reach the key server")]
    KeyServerUnreachable,
    /// The key server refused the upload, with its status and reason.
    #[error("the key server refused the registration ({status}): {reason}")]
    KeyServerRefused {
        /// HTTP status.
        status: reqwest::StatusCode,
        /// Its reason.
        reason: String,
    },
}

fn keys_failed(e: impl std::fmt::Display) -> RegisterError {
    RegisterError::Keys(e.to_string())
}

/// Both halves, as the wizard and the desk's command run them; returns the account name.
pub async fn enroll_and_register(
    config: &BoxConfig,
    code: &str,
    identifier: &str,
    password: Password,
    confirmation: Password,
) -> Result<String, RegisterError> {
    // A code buys one certificate: refuse a password the key server would not get before
    // spending the code on it.
    check_policy(&password, &confirmation, &Identifier::parse(identifier)?)?;
    let data = enroll(config, code).await?;
    let account = data.account.clone();
    register(config, data, identifier, password, confirmation).await?;
    Ok(account)
}

/// The first half: the code buys a certificate for a key made here, and KS.
pub async fn enroll(config: &BoxConfig, code: &str) -> Result<PersonalData, RegisterError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(keys_failed)?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|params| params.serialize_request(&key))
        .map_err(keys_failed)?;
    let http = client_trusting(config.enroll_ca.as_deref(), None)
        .map_err(|e| RegisterError::Configuration(format!("{e:#}")))?;
    let url = format!("{}/v1/enroll", config.enroll_url.trim_end_matches('/'));
    let reply = http
        .post(&url)
        .json(&EnrollRequest {
            code: code.to_owned(),
            csr_pem: csr.pem().map_err(keys_failed)?,
        })
        .send()
        .await
        .map_err(RegisterError::EnrollmentUnreachable)?;
    if !reply.status().is_success() {
        return Err(RegisterError::EnrollmentRefused(
            reply.text().await.unwrap_or_default().trim().to_owned(),
        ));
    }
    let answer = |what: &str| RegisterError::EnrollmentAnswer(what.to_owned());
    let enrolled: EnrollResponse = reply.json().await.map_err(|e| answer(&e.to_string()))?;
    let certificate_der =
        pem_der(&enrolled.certificate_pem).ok_or_else(|| answer("certificate PEM"))?;
    let operator_ca_der =
        pem_der(&enrolled.operator_ca_pem).ok_or_else(|| answer("operator CA PEM"))?;
    let ks = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(enrolled.ks_base64.as_bytes())
            .map_err(|_| answer("KS is not base64"))?,
    );
    Ok(PersonalData {
        account: enrolled.account,
        certificate_der,
        private_key_pkcs8: SecretVec::new(key.serialize_der()),
        ks: SecretArray::from_slice(&ks).ok_or_else(|| answer("KS must be 32 bytes"))?,
        content_server_url: enrolled.content_server_url,
        operator_ca_der,
        keyserver_url: enrolled.keyserver_url,
        // KL is made here, on the box: nobody else ever has it.
        locker_key: Some(SecretArray::new(stb_protocol::random_array())),
    })
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

/// The second half: checks the password, seals D under it and registers (N, VP, F_KP(D)).
pub async fn register(
    config: &BoxConfig,
    data: PersonalData,
    identifier: &str,
    password: Password,
    confirmation: Password,
) -> Result<(), RegisterError> {
    let id = Identifier::parse(identifier)?;
    check_policy(&password, &confirmation, &id)?;
    drop(confirmation);
    let keys = tokio::task::spawn_blocking({
        let id = id.clone();
        move || PasswordKeys::derive(Suite::CURRENT, &id, &password)
    })
    .await
    .map_err(keys_failed)?
    .map_err(keys_failed)?;
    let request =
        RegisterRequest::new(&keys, &data, stb_protocol::random_array()).map_err(keys_failed)?;
    drop(keys);
    let tls_identity =
        identity(&data.certificate_der, data.private_key_pkcs8.expose()).map_err(keys_failed)?;
    KeyServer::new(config)
        .map_err(|e| RegisterError::Configuration(format!("{e:#}")))?
        .register(tls_identity, &request)
        .await?;
    // D, KP and VP are dropped (and wiped) here.
    Ok(())
}
