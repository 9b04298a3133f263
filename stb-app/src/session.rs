//! A logged-in session: the recovered personal data, a mutual-TLS client to the content
//! server built from certificate A and KR, the channel list and the unwrapped channel keys.
//! Dropping it (logout, power key, timeout, exit) wipes every secret it holds.

use crate::config::BoxConfig;
use crate::keyserver_client::{KeyServer, LoginError};
use base64::Engine;
use stb_protocol::content_api::ChannelList;
use stb_protocol::{
    ChannelKey, Identifier, KeyId, License, LicenseKey, Password, PasswordKeys, PersonalData, Suite,
};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long each login step took (for the headless report and the benchmark).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoginTimings {
    /// Argon2id and HKDF.
    pub kdf_ms: u64,
    /// EKE round trip, unsealing and confirmation.
    pub recover_ms: u64,
    /// Mutual TLS, channel list and license.
    pub content_ms: u64,
}

/// Everything the box knows while a subscriber is logged in.
pub struct Session {
    data: PersonalData,
    http: reqwest::Client,
    keys: std::sync::RwLock<HashMap<KeyId, ChannelKey>>,
    /// The operator's channel list for this subscriber.
    pub channels: ChannelList,
    /// Login timings.
    pub timings: LoginTimings,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.data.account)
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The subscriber's TLS identity (certificate A + KR) for reqwest.
pub(crate) fn identity(
    certificate_der: &[u8],
    key_pkcs8: &[u8],
) -> anyhow::Result<reqwest::Identity> {
    let mut both = pem("CERTIFICATE", certificate_der);
    both.push_str(&pem("PRIVATE KEY", key_pkcs8));
    Ok(reqwest::Identity::from_pem(both.as_bytes())?)
}

/// Logs in: KP and VP from (N, P), one EKE round trip, then mutual TLS to the content server.
pub async fn login(
    config: &BoxConfig,
    identifier: &str,
    password: Password,
) -> Result<Session, LoginError> {
    let id = Identifier::parse(identifier).map_err(|e| LoginError::BadIdentifier(e.to_string()))?;
    let started = Instant::now();
    // Argon2id takes a few hundred ms and 64 MiB: off the async threads.
    let keys =
        tokio::task::spawn_blocking(move || PasswordKeys::derive(Suite::CURRENT, &id, &password))
            .await
            .map_err(|_| LoginError::Protocol("the key derivation".into()))?
            .map_err(|_| LoginError::Protocol("the key derivation".into()))?;
    let kdf_ms = started.elapsed().as_millis() as u64;
    let keyserver = KeyServer::new(config).map_err(|e| LoginError::Protocol(e.to_string()))?;
    let t = Instant::now();
    let data = keyserver.recover(keys).await?;
    let recover_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    let mut session = Session::open(data).await?;
    session.timings = LoginTimings {
        kdf_ms,
        recover_ms,
        content_ms: t.elapsed().as_millis() as u64,
    };
    Ok(session)
}

impl Session {
    /// Builds the mutual-TLS client from D and fetches the channel list and the license.
    pub async fn open(data: PersonalData) -> Result<Self, LoginError> {
        let unreachable = || LoginError::Unreachable("the content server".into());
        let protocol = |_| LoginError::Protocol("the content server".into());
        let http = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_der(&data.operator_ca_der).map_err(protocol)?
            ])
            .identity(
                identity(&data.certificate_der, data.private_key_pkcs8.expose())
                    .map_err(|e| LoginError::Protocol(e.to_string()))?,
            )
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(protocol)?;
        let mut session = Self {
            data,
            http,
            keys: std::sync::RwLock::new(HashMap::new()),
            channels: ChannelList {
                account: String::new(),
                package: String::new(),
                channels: vec![],
            },
            timings: LoginTimings::default(),
        };
        let list = match session
            .http
            .get(format!("{}/v1/channels", session.content_url()))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.bytes().await.map_err(|_| unreachable())?,
            Ok(r) if r.status().is_client_error() => {
                return Err(LoginError::Refused(
                    r.text().await.unwrap_or_default().trim().to_owned(),
                ));
            }
            _ => return Err(unreachable()),
        };
        session.channels = serde_json::from_slice(&list)
            .map_err(|_| LoginError::Protocol("the content server".into()))?;
        session.refresh_license().await.map_err(|_| unreachable())?;
        Ok(session)
    }

    /// The subscriber's display name.
    pub fn account(&self) -> &str {
        &self.data.account
    }

    /// Base URL of the content server.
    pub fn content_url(&self) -> &str {
        self.data.content_server_url.trim_end_matches('/')
    }

    /// The mutual-TLS client (for the player's stream).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let r = self
            .http
            .get(format!("{}{path}", self.content_url()))
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?.to_vec();
        if !status.is_success() {
            anyhow::bail!("{}", String::from_utf8_lossy(&body).trim());
        }
        Ok(body)
    }

    /// Fetches the license and unwraps the channel keys with KS (current and next epoch).
    /// The feeder calls it again when a segment names a key it does not have (a new epoch).
    pub async fn refresh_license(&self) -> anyhow::Result<()> {
        let license = License::decode(&self.get("/v1/license").await?)?;
        let wrap = LicenseKey::from_ks(&self.data.ks);
        let mut keys = HashMap::new();
        for entry in &license.entries {
            let key = wrap.unwrap(entry)?;
            keys.insert(key.key_id, key);
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// The key of a segment, if the license has it.
    pub fn key(&self, key_id: &KeyId) -> Option<ChannelKey> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
            .cloned()
    }

    /// Number of channel keys held.
    pub fn key_count(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Ends the session. Every secret (D, KS, KR, channel keys) is wiped as it is dropped;
    /// the TLS connections close with the client.
    pub fn logout(self) {
        drop(self);
    }
}
