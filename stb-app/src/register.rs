//! Registration, the origin document's registration application: enrollment code -> key pair
//! made on the box -> CSR -> certificate A and KS from the operator -> password (policy,
//! entered twice) -> D sealed under KP -> upload to the key server -> everything erased.

use crate::config::{BoxConfig, client_trusting};
use crate::keyserver_client::KeyServer;
use crate::session::identity;
use anyhow::{Context, Result, bail};
use base64::Engine;
use stb_protocol::content_api::{EnrollRequest, EnrollResponse};
use stb_protocol::password::check_policy;
use stb_protocol::{
    Identifier, Password, PasswordKeys, PersonalData, RegisterRequest, SecretArray, SecretVec,
    Suite,
};
use zeroize::Zeroizing;

/// The first half: the code buys a certificate for a key made here, and KS.
pub async fn enroll(config: &BoxConfig, code: &str) -> Result<PersonalData> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
    let http = client_trusting(config.enroll_ca.as_deref(), None)?;
    let url = format!("{}/v1/enroll", config.enroll_url.trim_end_matches('/'));
    let reply = http
        .post(&url)
        .json(&EnrollRequest {
            code: code.to_owned(),
            csr_pem: csr.pem()?,
        })
        .send()
        .await
        .context("cannot reach the operator's enrollment service")?;
    if !reply.status().is_success() {
        bail!("{}", reply.text().await.unwrap_or_default().trim());
    }
    let enrolled: EnrollResponse = reply.json().await.context("enrollment answer")?;
    let certificate_der = pem_der(&enrolled.certificate_pem, "certificate")?;
    let operator_ca_der = pem_der(&enrolled.operator_ca_pem, "operator CA")?;
    let ks = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(&enrolled.ks_base64)?);
    Ok(PersonalData {
        account: enrolled.account,
        certificate_der,
        private_key_pkcs8: SecretVec::new(key.serialize_der()),
        ks: SecretArray::from_slice(&ks).context("KS must be 32 bytes")?,
        content_server_url: enrolled.content_server_url,
        operator_ca_der,
        keyserver_url: enrolled.keyserver_url,
    })
}

fn pem_der(pem: &str, what: &str) -> Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .with_context(|| format!("{what} PEM"))
}

/// The second half: checks the password, seals D under it and registers (N, VP, F_KP(D)).
pub async fn register(
    config: &BoxConfig,
    data: PersonalData,
    identifier: &str,
    password: Password,
    confirmation: Password,
) -> Result<()> {
    let id = Identifier::parse(identifier)?;
    check_policy(&password, &confirmation, &id)?;
    drop(confirmation);
    let keys = tokio::task::spawn_blocking({
        let id = id.clone();
        move || PasswordKeys::derive(Suite::CURRENT, &id, &password)
    })
    .await??;
    let request = RegisterRequest::new(&keys, &data, stb_protocol::random_array())?;
    drop(keys);
    let tls_identity = identity(&data.certificate_der, data.private_key_pkcs8.expose())?;
    KeyServer::new(config)?
        .register(tls_identity, config.keyserver_ca.as_deref(), &request)
        .await?;
    // D, KP and VP are dropped (and wiped) here.
    Ok(())
}
